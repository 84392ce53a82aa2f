//! The STUN/ICE target: [`fuzz_stun`] feeds any bytes to the ICE-lite responder, then the same
//! bytes re-signed with our password so the fuzzer gets past the checksums; and
//! [`binding_request`], the well-formed request other targets and the seed corpus start from.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_USERNAME};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{Message, Setter, TransactionId, BINDING_REQUEST, MAGIC_COOKIE};
use rtc_stun::textattrs::TextAttribute;

use super::{ICE_PWD, ICE_UFRAG};
use crate::ice::{classify, stun_local_ufrag, IceLite, PacketClass, StunOutcome};

/// A binding request as a browser sends it (USERNAME, optional USE-CANDIDATE,
/// MESSAGE-INTEGRITY keyed with `pwd`, FINGERPRINT), built with `rtc-stun`.
pub fn binding_request(username: &str, pwd: &str, use_candidate: bool, tid: [u8; 12]) -> Vec<u8> {
    let provider = crate::cert::provider().expect("the built-in crypto provider");
    let mut m = Message::new();
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId(tid)),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
    ];
    if use_candidate {
        setters.push(Box::new(rtc_stun::attributes::RawAttribute {
            typ: rtc_stun::attributes::ATTR_USE_CANDIDATE,
            length: 0,
            value: vec![],
        }));
    }
    setters.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto()),
    ));
    setters.push(Box::new(FINGERPRINT));
    m.build(&setters).expect("a well-formed binding request");
    m.raw
}

/// Invariant: [`classify`], [`stun_local_ufrag`] and [`IceLite::handle_stun`] (credentials
/// [`ICE_UFRAG`]/[`ICE_PWD`]) take any bytes without panicking; `handle_stun` queues at most
/// one response, to the sender, and accepts only requests naming our ufrag. Then the input is
/// *re-signed* (cut before its first MESSAGE-INTEGRITY or FINGERPRINT, header length fixed,
/// both re-added with `rtc-stun`) so the fuzzer gets past the checksums: a re-signed binding
/// request whose USERNAME is `fuzzsrv[:...]` must be accepted, and `stun_local_ufrag` must
/// agree with `rtc-stun` on its USERNAME.
pub fn fuzz_stun(data: &[u8]) {
    let provider = crate::cert::provider().expect("the built-in crypto provider");
    let from = SocketAddr::from(([198, 51, 100, 7], 50000));
    let mut ice = IceLite::new(ICE_UFRAG.into(), ICE_PWD.into());
    let now = Instant::now();
    let check = |ice: &mut IceLite, msg: &[u8]| -> StunOutcome {
        let class = classify(msg);
        let ufrag = stun_local_ufrag(msg);
        if ufrag.is_some() {
            assert_eq!(class, PacketClass::Stun);
        }
        let outcome = ice.handle_stun(now, from, msg, provider.as_ref());
        let sent: Vec<_> = ice.drain_transmits().collect();
        assert!(sent.len() <= 1 && sent.iter().all(|(to, _)| *to == from));
        if let StunOutcome::Accepted { .. } = outcome {
            // rtc-stun ignores the two top bits of the type; the transport only hands over
            // datagrams classified as STUN (first byte 0..=3), which the peek then agrees with.
            if class == PacketClass::Stun {
                assert_eq!(ufrag, Some(ICE_UFRAG), "accepted a request not for us");
            }
            assert_eq!(sent.len(), 1);
            assert_eq!(ice.selected(), Some(from));
        }
        outcome
    };
    check(&mut ice, data);
    let Some((resigned, username)) = resign(data, provider.as_ref()) else {
        return;
    };
    let outcome = check(&mut ice, &resigned);
    let is_binding_request = resigned[0..2] == [0, 1];
    if is_binding_request {
        let local = username
            .as_deref()
            .map(|u| match u.iter().position(|b| *b == b':') {
                Some(i) => &u[..i],
                None => u,
            });
        let expected = local
            .and_then(|l| std::str::from_utf8(l).ok())
            .filter(|s| !s.is_empty());
        assert_eq!(
            stun_local_ufrag(&resigned),
            expected,
            "USERNAME peek vs rtc-stun"
        );
        if expected == Some(ICE_UFRAG) {
            assert!(
                matches!(outcome, StunOutcome::Accepted { .. }),
                "a re-signed request for us was rejected: {resigned:02x?}"
            );
        }
    }
}

/// `data` cut before its first MESSAGE-INTEGRITY/FINGERPRINT attribute (or its first
/// attribute that runs past the end), with the magic cookie and length fixed, then
/// MESSAGE-INTEGRITY ([`ICE_PWD`]) and FINGERPRINT added; with the first USERNAME's value.
/// None when `rtc-stun` does not decode the cut message.
fn resign(
    data: &[u8],
    provider: &dyn rtc_crypto::RTCCryptoProvider,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    if data.len() < 20 {
        return None;
    }
    let mut off = 20;
    while off + 4 <= data.len() {
        let typ = u16::from_be_bytes([data[off], data[off + 1]]);
        if typ == ATTR_MESSAGE_INTEGRITY.0 || typ == ATTR_FINGERPRINT.0 {
            break;
        }
        let len = u16::from_be_bytes([data[off + 2], data[off + 3]]) as usize;
        let next = off + 4 + ((len + 3) & !3);
        if next > data.len() || next - 20 > 4096 {
            break;
        }
        off = next;
    }
    let mut prefix = data[..off].to_vec();
    prefix[2..4].copy_from_slice(&((off - 20) as u16).to_be_bytes());
    prefix[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    let built = catch_unwind(AssertUnwindSafe(|| {
        let mut m = Message::new();
        m.unmarshal_binary(&prefix).ok()?;
        let username = m.get(ATTR_USERNAME).ok();
        MessageIntegrity::new_short_term_integrity_with_provider(
            ICE_PWD.to_owned(),
            provider.crypto(),
        )
        .add_to(&mut m)
        .ok()?;
        FINGERPRINT.add_to(&mut m).ok()?;
        Some((m.raw, username))
    }));
    built.ok().flatten()
}
