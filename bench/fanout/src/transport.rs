//! A minimal sans-IO WebRTC client transport: ICE as the controlling agent against an ICE-lite
//! server (or as the controlled one when a full-ICE server offered), then DTLS (client or server role, from the answer's `a=setup`), then SRTP contexts.
//!
//! It owns no socket and reads no clock: feed datagrams with [`Transport::handle_datagram`], drive
//! timers with [`Transport::handle_timeout`], and send what [`Transport::poll_transmit`] returns.

use bytes::BytesMut;
use crypto::{HashAlgorithm, RTCCryptoProvider};
use dtls::config::{ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use dtls::crypto::Certificate;
use dtls::endpoint::{Endpoint, EndpointEvent};
use dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rand::Rng;
use shared::TransportProtocol;
use srtp::context::Context;
use srtp::protection_profile::ProtectionProfile;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stun::attributes::*;
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::Username;
use stun::xoraddr::XorMappedAddress;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// The process-wide identity: one crypto provider and one self-signed ECDSA P-256 certificate.
#[derive(Clone)]
pub struct Identity {
    pub crypto: Arc<dyn RTCCryptoProvider>,
    pub certificate: Certificate,
    /// `sha-256` fingerprint of the certificate, `AB:CD:...` (upper-case, as browsers write it).
    pub fingerprint: String,
}

impl Identity {
    pub fn generate() -> Result<Self> {
        let crypto = crypto::default_provider().map_err(|e| format!("crypto provider: {e}"))?;
        let certificate =
            Certificate::generate_self_signed(vec!["pms-fanout".to_string()], crypto.crypto())?;
        let der = certificate.certificate[0].as_ref();
        let fingerprint = fingerprint_sha256(crypto.as_ref(), der)?;
        Ok(Self {
            crypto,
            certificate,
            fingerprint,
        })
    }
}

pub fn fingerprint_sha256(crypto: &dyn RTCCryptoProvider, der: &[u8]) -> Result<String> {
    let hash = crypto
        .crypto()
        .hash(HashAlgorithm::Sha256, der)
        .map_err(|e| format!("sha-256: {e}"))?;
    Ok(hash
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Random ICE credential characters (RFC 8839 ice-char subset).
pub fn random_ice_string(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending binding requests with USE-CANDIDATE until one succeeds.
    Ice,
    /// ICE succeeded; DTLS handshake running.
    Dtls,
    /// SRTP contexts are ready.
    Connected,
    Failed,
}

/// What the remote (server) said in its answer.
#[derive(Debug, Clone)]
pub struct RemoteParams {
    pub addr: SocketAddr,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    /// `sha-256` fingerprint, any case, colon separated; empty = do not verify.
    pub fingerprint: String,
    /// True when we are the DTLS client (answer `a=setup:passive`), false for `active`.
    pub dtls_client: bool,
    /// Our ICE role (RFC 8445 6.1.1): controlling when the server is ICE-lite or we offered; else
    /// (a full-ICE server that offered) controlled: our checks carry ICE-CONTROLLED and no
    /// USE-CANDIDATE, and the server nominates our one pair.
    pub ice_controlling: bool,
}

/// Decrypted packet handed to the application.
pub enum Incoming {
    Rtp(BytesMut),
    Rtcp(BytesMut),
}

/// Raw STUN attribute setter (PRIORITY, ICE-CONTROLLING, USE-CANDIDATE live in rtc-ice, which
/// this client does not depend on).
struct RawAttr(AttrType, Vec<u8>);

impl Setter for RawAttr {
    fn add_to(&self, m: &mut Message) -> shared::error::Result<()> {
        m.add(self.0, &self.1);
        Ok(())
    }
}

const ICE_RTO_START: Duration = Duration::from_millis(50);
const ICE_RTO_MAX: Duration = Duration::from_millis(500);
const ICE_GIVE_UP: Duration = Duration::from_secs(10);
const CONSENT_INTERVAL: Duration = Duration::from_secs(2);

pub struct Transport {
    pub local_addr: SocketAddr,
    pub remote: RemoteParams,
    local_ufrag: String,
    local_pwd: String,
    tie_breaker: u64,
    crypto: Arc<dyn RTCCryptoProvider>,
    state: State,
    started: Instant,
    ice_txid: [u8; TRANSACTION_ID_SIZE],
    ice_rto: Duration,
    next_ice_at: Instant,
    dtls_client_config: Option<Arc<HandshakeConfig>>,
    endpoint: Endpoint,
    out: VecDeque<BytesMut>,
    srtp_local: Option<Context>,
    srtp_remote: Option<Context>,
    pub connected_at: Option<Instant>,
    pub srtp_profile: Option<ProtectionProfile>,
    pub failure: Option<String>,
}

impl Transport {
    pub fn new(
        now: Instant,
        identity: &Identity,
        local_addr: SocketAddr,
        local_ufrag: String,
        local_pwd: String,
        remote: RemoteParams,
    ) -> Result<Self> {
        let config = dtls_config(identity, &remote.fingerprint, remote.dtls_client)?;
        let (client_config, server_config) = if remote.dtls_client {
            (Some(config), None)
        } else {
            (None, Some(config))
        };
        let endpoint = Endpoint::new(local_addr, TransportProtocol::UDP, server_config);
        let mut t = Self {
            local_addr,
            remote,
            local_ufrag,
            local_pwd,
            tie_breaker: rand::random(),
            crypto: identity.crypto.clone(),
            state: State::Ice,
            started: now,
            ice_txid: [0; TRANSACTION_ID_SIZE],
            ice_rto: ICE_RTO_START,
            next_ice_at: now,
            dtls_client_config: client_config,
            endpoint,
            out: VecDeque::new(),
            srtp_local: None,
            srtp_remote: None,
            connected_at: None,
            srtp_profile: None,
            failure: None,
        };
        t.send_binding_request(true)?;
        t.next_ice_at = now + ICE_RTO_START;
        Ok(t)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Next datagram to send to `self.remote.addr`.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.out.pop_front()
    }

    fn fail(&mut self, why: String) {
        if self.state != State::Failed {
            self.state = State::Failed;
            self.failure = Some(why);
        }
    }

    fn send_binding_request(&mut self, use_candidate: bool) -> Result<()> {
        let txid = TransactionId::new();
        let username = format!("{}:{}", self.remote.ice_ufrag, self.local_ufrag);
        // Peer-reflexive priority for a host candidate, component 1 (RFC 8445 5.1.2.1).
        let priority: u32 = (110 << 24) | (65535 << 8) | 255;
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(txid),
            Box::new(Username::new(ATTR_USERNAME, username)),
        ];
        let controlling = self.remote.ice_controlling;
        if use_candidate && controlling {
            setters.push(Box::new(RawAttr(ATTR_USE_CANDIDATE, vec![])));
        }
        setters.push(Box::new(RawAttr(
            if controlling {
                ATTR_ICE_CONTROLLING
            } else {
                ATTR_ICE_CONTROLLED
            },
            self.tie_breaker.to_be_bytes().to_vec(),
        )));
        setters.push(Box::new(RawAttr(
            ATTR_PRIORITY,
            priority.to_be_bytes().to_vec(),
        )));
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(
                self.remote.ice_pwd.clone(),
                self.crypto.crypto(),
            ),
        ));
        setters.push(Box::new(FINGERPRINT));
        let mut msg = Message::new();
        msg.build(&setters)?;
        drop(setters);
        if use_candidate {
            self.ice_txid = txid.0;
        }
        self.out.push_back(BytesMut::from(&msg.raw[..]));
        Ok(())
    }

    fn handle_stun(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Result<()> {
        let mut msg = Message::new();
        msg.unmarshal_binary(data)?;
        if msg.typ == BINDING_SUCCESS {
            if self.state == State::Ice && msg.transaction_id.0 == self.ice_txid {
                let key = self.remote.ice_pwd.as_bytes().to_vec();
                MessageIntegrity::check(&mut msg, &key, self.crypto.crypto())?;
                self.state = State::Dtls;
                if let Some(config) = self.dtls_client_config.take() {
                    self.endpoint.connect(now, self.remote.addr, config, None)?;
                    self.drain_dtls();
                }
            }
            // Consent-freshness responses need no action.
        } else if msg.typ == BINDING_REQUEST {
            // A full (non-lite) server checks us too: answer it.
            let key = self.local_pwd.as_bytes().to_vec();
            MessageIntegrity::check(&mut msg, &key, self.crypto.crypto())?;
            let mut resp = Message::new();
            resp.build(&[
                Box::new(BINDING_SUCCESS),
                Box::new(msg.transaction_id),
                Box::new(XorMappedAddress {
                    ip: from.ip(),
                    port: from.port(),
                }),
                Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                    self.local_pwd.clone(),
                    self.crypto.crypto(),
                )),
                Box::new(FINGERPRINT),
            ])?;
            self.out.push_back(BytesMut::from(&resp.raw[..]));
        } else if msg.typ == BINDING_ERROR && self.state == State::Ice {
            self.fail(format!("ICE binding error response from {from}"));
        }
        Ok(())
    }

    fn drain_dtls(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.out.push_back(t.message);
        }
    }

    fn handle_dtls(&mut self, now: Instant, data: &[u8]) -> Result<()> {
        if self.state == State::Ice {
            // The server may start DTLS (we are the DTLS server) right after its own ICE check
            // succeeded, before our response arrived: accept it.
            if self.dtls_client_config.is_some() {
                return Ok(());
            }
            self.state = State::Dtls;
        }
        let events = self
            .endpoint
            .read(now, self.remote.addr, None, BytesMut::from(data));
        self.drain_dtls();
        for ev in events? {
            if let EndpointEvent::HandshakeComplete = ev {
                let state = self
                    .endpoint
                    .get_connection_state(self.remote.addr)
                    .ok_or("DTLS state missing after handshake")?;
                let (local, remote, profile) = srtp_contexts(state, self.crypto.as_ref())?;
                self.srtp_local = Some(local);
                self.srtp_remote = Some(remote);
                self.srtp_profile = Some(profile);
                self.state = State::Connected;
                self.connected_at = Some(now);
            }
        }
        Ok(())
    }

    /// Feeds one datagram from `from`; returns decrypted RTP/RTCP, if that is what it was.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<Incoming> {
        if data.is_empty() || self.state == State::Failed {
            return None;
        }
        match data[0] {
            0..=3 => {
                if let Err(e) = self.handle_stun(now, from, data) {
                    if self.state == State::Ice {
                        // A bad response (wrong integrity, say): keep trying until the deadline.
                        self.failure = Some(format!("stun: {e}"));
                    }
                }
                None
            }
            20..=63 => {
                if let Err(e) = self.handle_dtls(now, data) {
                    self.fail(format!("dtls: {e}"));
                }
                None
            }
            128..=191 => {
                // RTCP packet types 192..=223 (RFC 5761 demultiplexing).
                let pt = data.get(1).copied().unwrap_or(0);
                if (192..=223).contains(&pt) {
                    let ctx = self.srtp_remote.as_mut()?;
                    ctx.decrypt_rtcp(data).ok().map(Incoming::Rtcp)
                } else {
                    let ctx = self.srtp_remote.as_mut()?;
                    ctx.decrypt_rtp(data).ok().map(Incoming::Rtp)
                }
            }
            _ => None,
        }
    }

    /// When [`Self::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Ice => Some(self.next_ice_at),
            State::Dtls => self.endpoint.poll_timeout(&self.remote.addr),
            State::Connected => Some(self.next_ice_at),
            State::Failed => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Ice => {
                if now.duration_since(self.started) > ICE_GIVE_UP {
                    let why = self.failure.take().unwrap_or_default();
                    self.fail(format!("ICE: no binding success in {ICE_GIVE_UP:?} {why}"));
                    return;
                }
                if now >= self.next_ice_at {
                    if let Err(e) = self.send_binding_request(true) {
                        self.fail(format!("stun build: {e}"));
                        return;
                    }
                    self.ice_rto = (self.ice_rto * 2).min(ICE_RTO_MAX);
                    self.next_ice_at = now + self.ice_rto;
                }
            }
            State::Dtls => {
                if now.duration_since(self.started) > ICE_GIVE_UP * 2 {
                    self.fail("DTLS handshake did not complete".into());
                    return;
                }
                if self
                    .endpoint
                    .poll_timeout(&self.remote.addr)
                    .is_some_and(|t| now >= t)
                {
                    if let Err(e) = self.endpoint.handle_timeout(self.remote.addr, now) {
                        self.fail(format!("dtls timeout: {e}"));
                    }
                    self.drain_dtls();
                }
            }
            State::Connected => {
                // Consent freshness (RFC 7675): a binding request every couple of seconds.
                if now >= self.next_ice_at {
                    let _ = self.send_binding_request(false);
                    self.next_ice_at = now + CONSENT_INTERVAL;
                }
            }
            State::Failed => {}
        }
        if self.state == State::Connected && self.next_ice_at < now {
            self.next_ice_at = now + CONSENT_INTERVAL;
        }
    }

    /// Encrypts a plain RTP packet.
    pub fn protect_rtp(&mut self, plain: &[u8]) -> Option<BytesMut> {
        self.srtp_local.as_mut()?.encrypt_rtp(plain).ok()
    }

    /// Encrypts a plain RTCP compound packet.
    pub fn protect_rtcp(&mut self, plain: &[u8]) -> Option<BytesMut> {
        self.srtp_local.as_mut()?.encrypt_rtcp(plain).ok()
    }
}

/// DTLS configuration as the rtc crate's `prepare_transport` builds it, verifying the remote's
/// certificate against its SDP fingerprint.
pub fn dtls_config(
    identity: &Identity,
    remote_fingerprint: &str,
    is_client: bool,
) -> Result<Arc<HandshakeConfig>> {
    let expected = remote_fingerprint.replace(':', "").to_lowercase();
    let fp_crypto = identity.crypto.clone();
    let verify: Option<dtls::config::VerifyPeerCertificateFn> = if expected.is_empty() {
        None
    } else {
        Some(Arc::new(
            move |certs: &[Vec<u8>], _chains: &[_]| -> shared::error::Result<()> {
                let first = certs
                    .first()
                    .ok_or(shared::error::Error::ErrNonCertificate)?;
                let got = fingerprint_sha256(fp_crypto.as_ref(), first)
                    .map_err(|e| shared::error::Error::Other(e.to_string()))?
                    .replace(':', "")
                    .to_lowercase();
                if got == expected {
                    Ok(())
                } else {
                    Err(shared::error::Error::ErrNoMatchingCertificateFingerprint)
                }
            },
        ))
    };
    let config = ConfigBuilder::default()
        .with_crypto_provider(identity.crypto.clone())
        .with_certificates(vec![identity.certificate.clone()])
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32,
        ])
        .with_client_auth(dtls::config::ClientAuthType::RequireAnyClientCert)
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(verify)
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .build(is_client, None)?;
    Ok(Arc::new(config))
}

/// SRTP contexts from a completed handshake, as rtc's `update_srtp_contexts` derives them
/// (no replay protection on the receive side: the benchmark counts duplicates itself).
pub fn srtp_contexts(
    state: &dtls::state::State,
    crypto: &dyn RTCCryptoProvider,
) -> Result<(Context, Context, ProtectionProfile)> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm => ProtectionProfile::AeadAes256Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
            ProtectionProfile::Aes128CmHmacSha1_80
        }
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_32 => {
            ProtectionProfile::Aes128CmHmacSha1_32
        }
        other => return Err(format!("unsupported SRTP profile {other:?}").into()),
    };
    let mut config = srtp::config::Config {
        profile,
        ..Default::default()
    };
    let keying = state.export_keying_material(
        srtp::config::LABEL_EXTRACTOR_DTLS_SRTP,
        &[],
        config.keying_material_len(),
    )?;
    config.set_session_keys_from_keying_material(keying.as_ref(), state.is_client())?;
    let local = Context::new(
        &config.keys.local_master_key,
        &config.keys.local_master_salt,
        profile,
        None,
        None,
        crypto.crypto(),
    )?;
    let remote = Context::new(
        &config.keys.remote_master_key,
        &config.keys.remote_master_salt,
        profile,
        None,
        None,
        crypto.crypto(),
    )?;
    Ok((local, remote, profile))
}
