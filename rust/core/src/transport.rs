//! One WebRTC peer's transport: ICE-lite ([`crate::ice`]), DTLS as server (`rtc-dtls`'s sans-IO
//! `Endpoint` with one association), SRTP/SRTCP (`rtc-srtp`), everything on one 5-tuple
//! (BUNDLE + rtcp-mux).
//!
//! ## Driving it (the I/O layer's loop)
//!
//! ```text
//! datagram from `from` ──► handle_datagram(now, from, bytes) ──► Some(Received::Rtp/Rtcp) (decrypted)
//!                          then drain poll_transmit() (STUN replies, DTLS flights: send to the address given)
//!                          then drain poll_event() (Connected, Closed(reason))
//! timer ─────────────────► handle_timeout(now) when now >= poll_timeout(); then drain as above
//! outbound media ─────────► protect_rtp(plain) / protect_rtcp(plain) ──► send to remote_addr()
//! ```
//!
//! - One datagram produces at most one STUN response, or one DTLS flight (up to ~6 datagrams:
//!   ServerHello..ServerHelloDone fragmented at 1200 bytes, or ChangeCipherSpec + Finished),
//!   or one close_notify. Always drain `poll_transmit` after every call.
//! - `Connected` fires once, inside the `handle_datagram` call that completes the DTLS handshake
//!   (the client's Finished flight). ICE has selected an address by then (DTLS is only accepted
//!   from the selected address), so `remote_addr()` is `Some` and `protect_*` work.
//! - `Closed(reason)` fires once; afterwards every input is ignored, `protect_*` return None,
//!   but `poll_transmit` still yields what was queued (a close_notify). Reasons: "closed" (our
//!   [`WebRtcTransport::close`]), "ice-timeout" (no valid binding request for 30 s once
//!   connected), "dtls-failed" (handshake error, wrong certificate fingerprint, DTLS panic),
//!   "connect-timeout" (ICE + DTLS not done within `connect_timeout` of `new`), "peer-closed"
//!   (the peer's close_notify).
//! - Packets from an address other than the selected one (or before ICE) are dropped, except
//!   STUN, which is how a peer moves (a valid request with USE-CANDIDATE from a new address
//!   switches `remote_addr()`).
//!
//! The DTLS association is keyed by a fixed placeholder address inside the endpoint (as `rtc`
//! does, "tunneled" DTLS), so an ICE address switch keeps the association; its transmits are
//! sent to whatever address ICE has selected.
//!
//! Every call into `rtc-dtls` and `rtc-srtp` runs under `catch_unwind`: a panic of a
//! third-party parser closes this transport with "dtls-failed" instead of the worker thread.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_crypto::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_dtls::state::State;
use rtc_shared::TransportProtocol;
use rtc_srtp::context::Context as SrtpContext;
use rtc_srtp::protection_profile::ProtectionProfile;

use crate::cert::DtlsIdentity;
use crate::error::CoreError;
use crate::ice::{classify, IceLite, PacketClass, StunOutcome};
use crate::media::TransportId;
use crate::sdp::RemoteParams;

/// Replay window of the inbound SRTP/SRTCP contexts, in packets. Wider than rtc's 64 because a
/// publisher's RTX answers to our NACKs arrive late (on their own SSRC, but bursts reorder).
const REPLAY_WINDOW: usize = 512;

/// The key of the single DTLS association inside the endpoint.
const DTLS_PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(0, 0, 0, 1), 9));

/// A decrypted media packet from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A plain RTP packet (header + payload, SRTP tag removed).
    Rtp(BytesMut),
    /// A plain RTCP compound packet (SRTCP index and tag removed).
    Rtcp(BytesMut),
}

/// A change of the transport's state, from [`WebRtcTransport::poll_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportEvent {
    /// ICE selected an address and the DTLS handshake completed: media can flow.
    Connected,
    /// The transport is finished; see the module doc for the reasons.
    Closed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Connected,
    Closed,
}

/// One WebRTC peer (publisher or player): ICE-lite + DTLS server + SRTP. Sans-IO.
pub struct WebRtcTransport {
    id: TransportId,
    ice: IceLite,
    provider: Arc<dyn RTCCryptoProvider>,
    endpoint: Endpoint,
    phase: Phase,
    connect_deadline: Instant,
    last_now: Instant,
    srtp_local: Option<SrtpContext>,
    srtp_remote: Option<SrtpContext>,
    transmits: VecDeque<(SocketAddr, BytesMut)>,
    events: VecDeque<TransportEvent>,
}

impl std::fmt::Debug for WebRtcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcTransport")
            .field("id", &self.id)
            .field("phase", &self.phase)
            .field("remote", &self.ice.selected())
            .finish()
    }
}

impl WebRtcTransport {
    /// A transport waiting for the peer's binding requests. `local_ufrag`/`local_pwd` are the
    /// credentials written in our answer (ufrag ≥ 4 chars, pwd ≥ 22 chars per RFC 8839; we only
    /// require non-empty), `remote` comes from the offer ([`crate::sdp`]); the peer's DTLS
    /// certificate must match `remote.fingerprint` (sha-256 only).
    pub fn new(
        id: TransportId,
        local_ufrag: String,
        local_pwd: String,
        remote: RemoteParams,
        identity: &DtlsIdentity,
        now: Instant,
        connect_timeout: Duration,
    ) -> Result<Self, CoreError> {
        if local_ufrag.is_empty() || local_pwd.is_empty() || local_ufrag.contains(':') {
            return Err(CoreError::InvalidArgument(
                "ICE ufrag and pwd must be non-empty and the ufrag must not contain ':'".into(),
            ));
        }
        if !remote.fingerprint_algorithm.eq_ignore_ascii_case("sha-256") {
            return Err(CoreError::InvalidArgument(format!(
                "unsupported fingerprint algorithm {}",
                remote.fingerprint_algorithm
            )));
        }
        let config = identity.handshake_config(&remote.fingerprint)?;
        let endpoint = Endpoint::new(
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            TransportProtocol::UDP,
            Some(config),
        );
        Ok(WebRtcTransport {
            id,
            ice: IceLite::new(local_ufrag, local_pwd),
            provider: identity.provider().clone(),
            endpoint,
            phase: Phase::Connecting,
            connect_deadline: now + connect_timeout,
            last_now: now,
            srtp_local: None,
            srtp_remote: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    pub fn id(&self) -> TransportId {
        self.id
    }

    pub fn local_ufrag(&self) -> &str {
        self.ice.local_ufrag()
    }

    /// The address ICE selected (where media goes), once a valid binding request arrived.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.ice.selected()
    }

    /// True after `Closed` was queued.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// True between `Connected` and `Closed`.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Feeds one datagram received from `from`. Returns the decrypted RTP/RTCP packet, if it was
    /// one; STUN and DTLS are handled inside (drain `poll_transmit`/`poll_event` afterwards).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<Received> {
        if self.phase == Phase::Closed {
            return None;
        }
        self.last_now = now;
        match classify(data) {
            PacketClass::Stun => {
                let outcome = self
                    .ice
                    .handle_stun(now, from, data, self.provider.as_ref());
                self.transmits.extend(self.ice.drain_transmits());
                if let StunOutcome::Accepted {
                    selected_changed: true,
                } = outcome
                {
                    log::debug!("transport {}: ICE selected {from}", self.id);
                }
                None
            }
            PacketClass::Dtls => {
                if self.ice.selected() != Some(from) {
                    return None;
                }
                self.handle_dtls(now, data);
                None
            }
            PacketClass::Rtp | PacketClass::Rtcp if self.ice.selected() != Some(from) => None,
            PacketClass::Rtp => {
                let ctx = self.srtp_remote.as_mut()?;
                match catch_unwind(AssertUnwindSafe(|| ctx.decrypt_rtp(data))) {
                    Ok(Ok(plain)) => Some(Received::Rtp(plain)),
                    Ok(Err(_)) => None,
                    Err(_) => {
                        self.close_with("dtls-failed");
                        None
                    }
                }
            }
            PacketClass::Rtcp => {
                let ctx = self.srtp_remote.as_mut()?;
                match catch_unwind(AssertUnwindSafe(|| ctx.decrypt_rtcp(data))) {
                    Ok(Ok(plain)) => Some(Received::Rtcp(plain)),
                    Ok(Err(_)) => None,
                    Err(_) => {
                        self.close_with("dtls-failed");
                        None
                    }
                }
            }
            PacketClass::Other => None,
        }
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) {
        let endpoint = &mut self.endpoint;
        let result = catch_unwind(AssertUnwindSafe(|| {
            endpoint.read(now, DTLS_PEER, None, BytesMut::from(data))
        }));
        self.queue_dtls_transmits();
        let events = match result {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                // Before the handshake completes an error is fatal (bad certificate, no common
                // suite...); afterwards the endpoint already drops forged records itself, so an
                // error is about one record and the association lives on.
                if self.phase == Phase::Connecting {
                    log::debug!("transport {}: DTLS handshake failed: {e}", self.id);
                    self.close_with("dtls-failed");
                }
                return;
            }
            Err(_) => {
                log::warn!("transport {}: rtc-dtls panicked; closing", self.id);
                self.close_with("dtls-failed");
                return;
            }
        };
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => self.on_handshake_complete(),
                EndpointEvent::PeerClosed => self.close_with("peer-closed"),
                _ => {} // application data: no data channels on this server
            }
        }
    }

    fn on_handshake_complete(&mut self) {
        if self.phase != Phase::Connecting {
            return;
        }
        let provider = self.provider.clone();
        let endpoint = &self.endpoint;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let state = endpoint
                .get_connection_state(DTLS_PEER)
                .ok_or_else(|| "no DTLS connection state".to_string())?;
            srtp_contexts(state, provider.as_ref(), REPLAY_WINDOW)
        }));
        match result {
            Ok(Ok((local, remote))) => {
                self.srtp_local = Some(local);
                self.srtp_remote = Some(remote);
                self.phase = Phase::Connected;
                self.events.push_back(TransportEvent::Connected);
            }
            Ok(Err(e)) => {
                log::warn!("transport {}: SRTP keys: {e}", self.id);
                self.close_with("dtls-failed");
            }
            Err(_) => self.close_with("dtls-failed"),
        }
    }

    fn queue_dtls_transmits(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Some(to) = self.ice.selected() {
                self.transmits.push_back((to, t.message));
            }
        }
    }

    fn close_with(&mut self, reason: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.srtp_local = None;
        self.srtp_remote = None;
        self.events.push_back(TransportEvent::Closed(reason));
    }

    /// Encrypts one plain RTP packet for the peer (None before `Connected`, after `Closed`, or
    /// if the packet is not RTP). Send the result to [`Self::remote_addr`].
    pub fn protect_rtp(&mut self, plain: &[u8]) -> Option<BytesMut> {
        let ctx = self.srtp_local.as_mut()?;
        match catch_unwind(AssertUnwindSafe(|| ctx.encrypt_rtp(plain))) {
            Ok(Ok(b)) => Some(b),
            _ => None,
        }
    }

    /// Encrypts one plain RTCP compound packet for the peer (SRTCP), as [`Self::protect_rtp`].
    pub fn protect_rtcp(&mut self, plain: &[u8]) -> Option<BytesMut> {
        let ctx = self.srtp_local.as_mut()?;
        match catch_unwind(AssertUnwindSafe(|| ctx.encrypt_rtcp(plain))) {
            Ok(Ok(b)) => Some(b),
            _ => None,
        }
    }

    /// The next datagram to send: (destination, bytes).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, BytesMut)> {
        self.transmits.pop_front()
    }

    /// The next state change.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next (None once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut deadline = match self.phase {
            Phase::Closed => return None,
            Phase::Connecting => self.connect_deadline,
            Phase::Connected => self.ice.consent_expires()?,
        };
        if let Some(t) = self.endpoint.poll_timeout(&DTLS_PEER) {
            deadline = deadline.min(t);
        }
        Some(deadline)
    }

    /// Runs the timers due at `now`: DTLS retransmissions, the connect timeout, consent expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.last_now = now;
        match self.phase {
            Phase::Connecting if now >= self.connect_deadline => {
                self.close_with("connect-timeout");
                return;
            }
            Phase::Connected if self.ice.consent_expires().is_some_and(|t| now >= t) => {
                self.close_with("ice-timeout");
                return;
            }
            _ => {}
        }
        if self.endpoint.get_connection_state(DTLS_PEER).is_none() {
            return;
        }
        let endpoint = &mut self.endpoint;
        let result = catch_unwind(AssertUnwindSafe(|| endpoint.handle_timeout(DTLS_PEER, now)));
        self.queue_dtls_transmits();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if self.phase == Phase::Connecting {
                    log::debug!("transport {}: DTLS retransmissions exhausted: {e}", self.id);
                    self.close_with("dtls-failed");
                }
            }
            Err(_) => self.close_with("dtls-failed"),
        }
    }

    /// Closes the transport: queues a DTLS close_notify (when a DTLS association exists and ICE
    /// has an address), then `Closed("closed")`. Idempotent.
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let now = self.last_now;
        let endpoint = &mut self.endpoint;
        let _ = catch_unwind(AssertUnwindSafe(|| endpoint.close(now)));
        self.queue_dtls_transmits();
        self.close_with("closed");
    }
}

/// Builds the (local = outbound, remote = inbound) SRTP contexts from a completed DTLS
/// handshake (RFC 5764 §4.2 key export), as `rtc`'s `DtlsHandler::update_srtp_contexts`.
pub(crate) fn srtp_contexts(
    state: &State,
    provider: &dyn RTCCryptoProvider,
    replay_window: usize,
) -> Result<(SrtpContext, SrtpContext), String> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => ProtectionProfile::AeadAes256Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
            ProtectionProfile::Aes128CmHmacSha1_80
        }
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => {
            ProtectionProfile::Aes128CmHmacSha1_32
        }
        _ => return Err("no SRTP protection profile negotiated".into()),
    };
    let mut config = rtc_srtp::config::Config {
        profile,
        ..Default::default()
    };
    let material = state
        .export_keying_material(
            rtc_srtp::config::LABEL_EXTRACTOR_DTLS_SRTP,
            &[],
            config.keying_material_len(),
        )
        .map_err(|e| e.to_string())?;
    config
        .set_session_keys_from_keying_material(material.as_ref(), state.is_client())
        .map_err(|e| e.to_string())?;
    let local = SrtpContext::new(
        &config.keys.local_master_key,
        &config.keys.local_master_salt,
        profile,
        None,
        None,
        provider.crypto(),
    )
    .map_err(|e| e.to_string())?;
    let remote = SrtpContext::new(
        &config.keys.remote_master_key,
        &config.keys.remote_master_salt,
        profile,
        Some(rtc_srtp::option::srtp_replay_protection(replay_window)),
        Some(rtc_srtp::option::srtcp_replay_protection(replay_window)),
        provider.crypto(),
    )
    .map_err(|e| e.to_string())?;
    Ok((local, remote))
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
