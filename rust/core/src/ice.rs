//! ICE-lite (RFC 8445 §2.5): we never send checks, we answer the peer's binding requests and
//! follow its nomination. Also the first-byte demultiplexing of a shared UDP socket (RFC 7983)
//! and the USERNAME peek the I/O layer uses to find the transport of a new source address.
//!
//! Rules of [`IceLite`]:
//! - A binding request is valid when it is a well-formed STUN request whose FINGERPRINT is
//!   right, whose USERNAME is `<our ufrag>:<anything>` and whose MESSAGE-INTEGRITY is keyed
//!   with our password. It is answered with a success response (XOR-MAPPED-ADDRESS = source,
//!   MESSAGE-INTEGRITY, FINGERPRINT).
//! - A request with a good FINGERPRINT but missing USERNAME/MESSAGE-INTEGRITY gets 400, a wrong
//!   ufrag or password 401; anything else (bad FINGERPRINT, responses, indications, non-STUN)
//!   is dropped silently.
//! - The source of the first valid request becomes the selected address; a later valid request
//!   carrying USE-CANDIDATE from another address switches to it (renomination, as aioice and
//!   browsers behave after a network change).
//! - Every valid request from the selected address refreshes consent; the owner
//!   ([`crate::transport::WebRtcTransport`]) closes with "ice-timeout" when
//!   [`IceLite::consent_expires`] passes.
//!
//! Never panics on any input: the STUN parsing of `rtc-stun` is reached only with lengths
//! checked here first, and is wrapped in `catch_unwind` anyway.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_crypto::RTCCryptoProvider;
use rtc_stun::attributes::{
    ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use rtc_stun::error_code::{ErrorCode, ErrorCodeAttribute, CODE_BAD_REQUEST, CODE_UNAUTHORIZED};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    Message, Setter, TransactionId, BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, MAGIC_COOKIE,
};
use rtc_stun::xoraddr::XorMappedAddress;

/// How long the peer may stay silent (no valid binding request) before consent expires
/// (RFC 7675 uses 30 s).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a datagram on a shared socket carries, by its first byte (RFC 7983, RFC 5761).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
    Other,
}

/// Classifies a datagram: first byte 0..=3 STUN, 20..=63 DTLS, 128..=191 RTP or RTCP (RTCP when
/// the second byte, the packet type, is 192..=223), anything else (or too short) `Other`.
pub fn classify(data: &[u8]) -> PacketClass {
    let Some(&first) = data.first() else {
        return PacketClass::Other;
    };
    match first {
        0..=3 if data.len() >= 20 => PacketClass::Stun,
        20..=63 if data.len() >= 13 => PacketClass::Dtls,
        128..=191 if data.len() >= 4 => match data[1] {
            192..=223 => PacketClass::Rtcp,
            _ => PacketClass::Rtp,
        },
        _ => PacketClass::Other,
    }
}

/// The local half of the USERNAME (`local:remote`) of a STUN binding request, without copying;
/// `None` if `data` is not a binding request with a UTF-8 USERNAME. Does not check integrity:
/// it only finds which transport to hand the datagram to.
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    let username = stun_attribute(data, ATTR_USERNAME.0)?;
    let local = match username.iter().position(|b| *b == b':') {
        Some(i) => &username[..i],
        None => username,
    };
    std::str::from_utf8(local).ok().filter(|s| !s.is_empty())
}

/// The value of attribute `typ` of a STUN binding request, walking the TLVs by hand.
fn stun_attribute(data: &[u8], typ: u16) -> Option<&[u8]> {
    if data.len() < 20 || data[0] & 0xC0 != 0 {
        return None;
    }
    if u16::from_be_bytes([data[0], data[1]]) != 0x0001 {
        return None;
    }
    if u32::from_be_bytes([data[4], data[5], data[6], data[7]]) != MAGIC_COOKIE {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let l = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let value = rest.get(4..4 + l)?;
        if t == typ {
            return Some(value);
        }
        let padded = (l + 3) & !3;
        rest = rest.get(4 + padded..).unwrap_or(&[]);
    }
    None
}

/// The result of feeding one STUN datagram to [`IceLite::handle_stun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunOutcome {
    /// Not a valid binding request for us (maybe answered with an error response).
    Rejected,
    /// A valid request, answered; `selected_changed` when its source became the selected
    /// address.
    Accepted { selected_changed: bool },
}

/// The ICE-lite agent of one transport: credentials, selected address, consent.
pub struct IceLite {
    local_ufrag: String,
    local_pwd: String,
    selected: Option<SocketAddr>,
    last_consent: Option<Instant>,
    transmits: Vec<(SocketAddr, BytesMut)>,
}

impl IceLite {
    pub fn new(local_ufrag: String, local_pwd: String) -> Self {
        IceLite {
            local_ufrag,
            local_pwd,
            selected: None,
            last_consent: None,
            transmits: Vec::new(),
        }
    }

    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// The selected remote address, after the first valid binding request.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// When consent expires (last valid request from the selected address + 30 s).
    pub fn consent_expires(&self) -> Option<Instant> {
        self.last_consent.map(|t| t + CONSENT_TIMEOUT)
    }

    /// Takes the queued STUN responses.
    pub fn drain_transmits(&mut self) -> impl Iterator<Item = (SocketAddr, BytesMut)> + '_ {
        self.transmits.drain(..)
    }

    /// Handles one datagram classified as STUN from `from`. Queues at most one response.
    pub fn handle_stun(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        provider: &dyn RTCCryptoProvider,
    ) -> StunOutcome {
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.check_request(from, data, provider)
        }));
        let (use_candidate, response) = match result {
            Ok(Ok(v)) => v,
            Ok(Err(Some(resp))) => {
                self.transmits.push((from, resp));
                return StunOutcome::Rejected;
            }
            Ok(Err(None)) | Err(_) => return StunOutcome::Rejected,
        };
        self.transmits.push((from, response));
        let selected_changed = match self.selected {
            None => true,
            Some(addr) if addr != from && use_candidate => true,
            _ => false,
        };
        if selected_changed {
            self.selected = Some(from);
        }
        if self.selected == Some(from) {
            self.last_consent = Some(now);
        }
        StunOutcome::Accepted { selected_changed }
    }

    /// Ok((use_candidate, success response)); Err(Some(error response)) or Err(None) to drop.
    fn check_request(
        &self,
        from: SocketAddr,
        data: &[u8],
        provider: &dyn RTCCryptoProvider,
    ) -> Result<(bool, BytesMut), Option<BytesMut>> {
        // Exact length: rtc-stun computes FINGERPRINT/MESSAGE-INTEGRITY offsets from raw.len().
        if data.len() < 20 || data.len() != 20 + u16::from_be_bytes([data[2], data[3]]) as usize {
            return Err(None);
        }
        let mut msg = Message::new();
        msg.unmarshal_binary(data).map_err(|_| None)?;
        if msg.typ != BINDING_REQUEST {
            return Err(None);
        }
        // FINGERPRINT must be present, last, and right.
        let last_is_fp = msg
            .attributes
            .0
            .last()
            .is_some_and(|a| a.typ == ATTR_FINGERPRINT);
        if !last_is_fp || FINGERPRINT.check(&msg).is_err() {
            return Err(None);
        }
        let tid = msg.transaction_id;
        let Ok(username) = msg.get(ATTR_USERNAME) else {
            return Err(Some(self.error_response(
                tid,
                CODE_BAD_REQUEST,
                "missing USERNAME",
                provider,
            )));
        };
        let mi_ok = msg
            .attributes
            .0
            .iter()
            .any(|a| a.typ == ATTR_MESSAGE_INTEGRITY && a.length as usize == 20);
        if !mi_ok {
            return Err(Some(self.error_response(
                tid,
                CODE_BAD_REQUEST,
                "missing MESSAGE-INTEGRITY",
                provider,
            )));
        }
        let local = username.split(|b| *b == b':').next().unwrap_or(&[]);
        if local != self.local_ufrag.as_bytes() {
            return Err(Some(self.error_response(
                tid,
                CODE_UNAUTHORIZED,
                "unknown ufrag",
                provider,
            )));
        }
        if MessageIntegrity::check(&mut msg, self.local_pwd.as_bytes(), provider.crypto()).is_err()
        {
            return Err(Some(self.error_response(
                tid,
                CODE_UNAUTHORIZED,
                "bad integrity",
                provider,
            )));
        }
        let use_candidate = msg.contains(ATTR_USE_CANDIDATE);
        let mut resp = Message::new();
        let built = resp.build(&[
            Box::new(BINDING_SUCCESS),
            Box::new(TransactionId(tid.0)),
            Box::new(XorMappedAddress {
                ip: from.ip(),
                port: from.port(),
            }),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                self.local_pwd.clone(),
                provider.crypto(),
            )),
            Box::new(FINGERPRINT),
        ]);
        match built {
            Ok(()) => Ok((use_candidate, BytesMut::from(&resp.raw[..]))),
            Err(_) => Err(None),
        }
    }

    fn error_response(
        &self,
        tid: TransactionId,
        code: ErrorCode,
        reason: &str,
        _provider: &dyn RTCCryptoProvider,
    ) -> BytesMut {
        let mut resp = Message::new();
        let setters: [Box<dyn Setter>; 4] = [
            Box::new(BINDING_ERROR),
            Box::new(TransactionId(tid.0)),
            Box::new(ErrorCodeAttribute {
                code,
                reason: reason.as_bytes().to_vec(),
            }),
            Box::new(FINGERPRINT),
        ];
        match resp.build(&setters) {
            Ok(()) => BytesMut::from(&resp.raw[..]),
            Err(_) => BytesMut::new(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rtc_stun::textattrs::TextAttribute;

    pub(crate) fn binding_request(
        username: &str,
        pwd: &str,
        use_candidate: bool,
        provider: &dyn RTCCryptoProvider,
    ) -> Vec<u8> {
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ];
        if use_candidate {
            setters.push(Box::new(rtc_stun::attributes::RawAttribute {
                typ: ATTR_USE_CANDIDATE,
                length: 0,
                value: vec![],
            }));
        }
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                provider.crypto(),
            ),
        ));
        setters.push(Box::new(FINGERPRINT));
        m.build(&setters).unwrap();
        m.raw
    }

    #[test]
    fn classify_by_first_byte() {
        assert_eq!(classify(&[0u8; 20]), PacketClass::Stun);
        assert_eq!(classify(&[22u8; 20]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80, 96, 0, 0]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 200, 0, 0]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x81, 205, 0, 0]), PacketClass::Rtcp);
        assert_eq!(classify(&[0xff, 0, 0, 0]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn binding_request_is_answered_and_selects() {
        let provider = crate::cert::provider().unwrap();
        let mut ice = IceLite::new("srvu".into(), "serverpassword0123456789".into());
        let req = binding_request(
            "srvu:cli",
            "serverpassword0123456789",
            false,
            provider.as_ref(),
        );
        assert_eq!(stun_local_ufrag(&req), Some("srvu"));
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let now = Instant::now();
        assert_eq!(
            ice.handle_stun(now, a, &req, provider.as_ref()),
            StunOutcome::Accepted {
                selected_changed: true
            }
        );
        let (to, resp) = ice.drain_transmits().next().unwrap();
        assert_eq!(to, a);
        let mut m = Message::new();
        m.unmarshal_binary(&resp).unwrap();
        assert_eq!(m.typ, BINDING_SUCCESS);
        let mut xor = XorMappedAddress::default();
        xor.get_from_as(&m, rtc_stun::attributes::ATTR_XORMAPPED_ADDRESS)
            .unwrap();
        assert_eq!(SocketAddr::new(xor.ip, xor.port), a);
        MessageIntegrity::check(&mut m, b"serverpassword0123456789", provider.crypto()).unwrap();
        FINGERPRINT.check(&m).unwrap();

        // b without USE-CANDIDATE: answered, not selected; with it: selected.
        assert_eq!(
            ice.handle_stun(now, b, &req, provider.as_ref()),
            StunOutcome::Accepted {
                selected_changed: false
            }
        );
        assert_eq!(ice.selected(), Some(a));
        let req2 = binding_request(
            "srvu:cli",
            "serverpassword0123456789",
            true,
            provider.as_ref(),
        );
        assert_eq!(
            ice.handle_stun(now, b, &req2, provider.as_ref()),
            StunOutcome::Accepted {
                selected_changed: true
            }
        );
        assert_eq!(ice.selected(), Some(b));
    }

    #[test]
    fn bad_password_gets_401() {
        let provider = crate::cert::provider().unwrap();
        let mut ice = IceLite::new("srvu".into(), "serverpassword0123456789".into());
        let req = binding_request("srvu:cli", "wrongpassword", false, provider.as_ref());
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(
            ice.handle_stun(Instant::now(), a, &req, provider.as_ref()),
            StunOutcome::Rejected
        );
        let (_, resp) = ice.drain_transmits().next().unwrap();
        let mut m = Message::new();
        m.unmarshal_binary(&resp).unwrap();
        assert_eq!(m.typ, BINDING_ERROR);
        let mut code = ErrorCodeAttribute::default();
        rtc_stun::message::Getter::get_from(&mut code, &m).unwrap();
        assert!(code.code == CODE_UNAUTHORIZED);
        assert_eq!(ice.selected(), None);
    }

    #[test]
    fn garbage_does_not_panic() {
        let provider = crate::cert::provider().unwrap();
        let mut ice = IceLite::new("srvu".into(), "serverpassword0123456789".into());
        let a: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let good = binding_request(
            "srvu:cli",
            "serverpassword0123456789",
            true,
            provider.as_ref(),
        );
        for i in 0..3000usize {
            let mut d = good.clone();
            // flip bytes and truncate at every point
            let n = d.len();
            d[i % n] ^= (i as u8).wrapping_mul(37) | 1;
            d.truncate(n - (i % 7));
            let _ = stun_local_ufrag(&d);
            let _ = classify(&d);
            ice.handle_stun(Instant::now(), a, &d, provider.as_ref());
        }
    }
}
