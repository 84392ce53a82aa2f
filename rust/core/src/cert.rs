//! The server's DTLS identity: one ECDSA P-256 certificate shared by every transport, its SHA-256
//! fingerprint for the SDP answers, and the per-transport DTLS handshake configuration.
//!
//! ECDSA because aiortc's DTLS client (OpenSSL with an ECDSA certificate of its own) and every
//! browser accept it, and an ECDSA server certificate cannot be paired by the peer with an
//! `ECDHE_RSA` suite (webrtc-rs/webrtc#808).
//!
//! ## Fingerprint check
//!
//! [`DtlsIdentity::handshake_config`] builds one `HandshakeConfig` per transport whose
//! verify-peer-certificate callback compares the client's certificate with the `a=fingerprint`
//! of that transport's offer, so a wrong certificate fails *inside* the handshake (the client
//! gets an alert and no SRTP key is ever derived). The build is cheap: the builder template
//! (certificate DER, key handle, suite and profile lists) is made once here and cloned; no CA
//! verifier is built (`insecure_skip_verify`, client auth `RequireAnyClientCert`).
//!
//! Nothing here reads the clock: rcgen's default validity (1975..4096) is used for generated
//! certificates and the expiry of a loaded one is not checked (WebRTC peers do not check it
//! either; they compare fingerprints).

use std::sync::Arc;

use rtc_crypto::{HashAlgorithm, RTCCryptoProvider, SignatureScheme};
use rtc_dtls::cipher_suite::CipherSuiteId;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rustls_pki_types::CertificateDer;

use crate::error::CoreError;

/// The DTLS certificate of the server and its fingerprint. Clone is cheap (shared key handle).
#[derive(Clone)]
pub struct DtlsIdentity {
    provider: Arc<dyn RTCCryptoProvider>,
    certificate: Certificate,
    fingerprint: String,
    template: ConfigBuilder,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// SRTP protection profiles we offer as DTLS server, best first. aiortc (libsrtp through
/// pylibsrtp) and browsers support both.
pub(crate) const SRTP_PROFILES: [SrtpProtectionProfile; 2] = [
    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
];

/// The built-in crypto provider (ring).
pub(crate) fn provider() -> Result<Arc<dyn RTCCryptoProvider>, CoreError> {
    rtc_crypto::default_provider().map_err(|e| CoreError::Dtls(format!("crypto provider: {e}")))
}

/// Upper-case hex with colons of the SHA-256 of `der` (the `a=fingerprint:sha-256` format).
pub(crate) fn sha256_fingerprint(
    provider: &dyn RTCCryptoProvider,
    der: &[u8],
) -> Result<String, CoreError> {
    let digest = provider
        .crypto()
        .hash(HashAlgorithm::Sha256, der)
        .map_err(|e| CoreError::Certificate(format!("sha-256: {e}")))?;
    Ok(hex_colons(&digest))
}

fn hex_colons(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Compares two fingerprints ignoring case and colons.
pub(crate) fn fingerprint_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let (a, b) = (norm(a), norm(b));
    !a.is_empty() && a == b
}

impl DtlsIdentity {
    /// A fresh self-signed ECDSA P-256 certificate (takes a few milliseconds).
    pub fn generate() -> Result<Self, CoreError> {
        let provider = provider()?;
        let certificate =
            Certificate::generate_self_signed(vec!["pms-trio".to_owned()], provider.crypto())
                .map_err(|e| CoreError::Certificate(format!("generate: {e}")))?;
        Self::from_certificate(provider, certificate)
    }

    /// Loads an ordinary PEM certificate (chain; the first block is ours) and its private key,
    /// PKCS#8 (`PRIVATE KEY`, `openssl genpkey`) or SEC1 (`EC PRIVATE KEY`, `openssl ecparam
    /// -genkey`, whose `EC PARAMETERS` block is skipped). Cert and key may also share one text.
    /// Only P-256 keys are accepted.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CoreError> {
        let provider = provider()?;
        let mut certs: Vec<CertificateDer<'static>> = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        for text in [cert_pem, key_pem] {
            let blocks = pem::parse_many(text)
                .map_err(|e| CoreError::Certificate(format!("bad PEM: {e}")))?;
            for block in blocks {
                match block.tag() {
                    "CERTIFICATE" => certs.push(CertificateDer::from(block.contents().to_vec())),
                    "PRIVATE KEY" => key = Some(block.contents().to_vec()),
                    "EC PRIVATE KEY" => key = Some(sec1_p256_to_pkcs8(block.contents())),
                    "EC PARAMETERS" => {}
                    "ENCRYPTED PRIVATE KEY" => {
                        return Err(CoreError::Certificate(
                            "the private key is encrypted; give an unencrypted PKCS#8 or SEC1 key"
                                .into(),
                        ))
                    }
                    other => {
                        return Err(CoreError::Certificate(format!(
                            "unexpected PEM block '{other}' (want CERTIFICATE and PRIVATE KEY or EC PRIVATE KEY)"
                        )))
                    }
                }
            }
        }
        if certs.is_empty() {
            return Err(CoreError::Certificate(
                "no CERTIFICATE block in the PEM".into(),
            ));
        }
        let key = key.ok_or_else(|| {
            CoreError::Certificate("no PRIVATE KEY or EC PRIVATE KEY block in the PEM".into())
        })?;
        let signing_key = provider
            .crypto()
            .import_signing_key(SignatureScheme::EcdsaP256Sha256, &key)
            .map_err(|e| {
                CoreError::Certificate(format!(
                    "the private key is not an ECDSA P-256 key ({e}); WebRTC peers such as aiortc accept only ECDSA certificates"
                ))
            })?;
        let certificate = Certificate::from_signing_key(certs, signing_key);
        Self::from_certificate(provider, certificate)
    }

    fn from_certificate(
        provider: Arc<dyn RTCCryptoProvider>,
        certificate: Certificate,
    ) -> Result<Self, CoreError> {
        if !certificate
            .private_key
            .signing_key
            .supports(SignatureScheme::EcdsaP256Sha256)
        {
            return Err(CoreError::Certificate(
                "the key cannot sign with ECDSA P-256".into(),
            ));
        }
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| CoreError::Certificate("empty certificate chain".into()))?;
        let fingerprint = sha256_fingerprint(provider.as_ref(), der.as_ref())?;
        let template = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_certificates(vec![certificate.clone()])
            .with_cipher_suites(vec![
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
            ])
            .with_srtp_protection_profiles(SRTP_PROFILES.to_vec())
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_extended_master_secret(ExtendedMasterSecretType::Require);
        let identity = DtlsIdentity {
            provider,
            certificate,
            fingerprint,
            template,
        };
        // Fail here, not at the first peer, if the config cannot be built.
        identity.handshake_config("00")?;
        Ok(identity)
    }

    /// The SHA-256 fingerprint of the certificate, upper-case hex with colons
    /// (`AB:CD:...`), as written after `a=fingerprint:sha-256 `.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The certificate chain, DER.
    pub fn certificate_der(&self) -> Vec<Vec<u8>> {
        self.certificate
            .certificate
            .iter()
            .map(|c| c.as_ref().to_vec())
            .collect()
    }

    pub(crate) fn provider(&self) -> &Arc<dyn RTCCryptoProvider> {
        &self.provider
    }

    /// The DTLS server configuration of one transport: our certificate, ECDHE-ECDSA suites,
    /// `use_srtp` (AEAD_AES_128_GCM, AES128_CM_HMAC_SHA1_80), extended master secret required,
    /// a client certificate required whose SHA-256 fingerprint must equal `remote_fingerprint`
    /// (hex, any case, colons optional).
    pub fn handshake_config(
        &self,
        remote_fingerprint: &str,
    ) -> Result<Arc<HandshakeConfig>, CoreError> {
        let expected = remote_fingerprint.to_owned();
        let provider = self.provider.clone();
        let verify: rtc_dtls::config::VerifyPeerCertificateFn = Arc::new(
            move |certs: &[Vec<u8>], _chains: &[CertificateDer<'static>]| {
                let Some(first) = certs.first() else {
                    return Err(rtc_shared::error::Error::ErrNonCertificate);
                };
                let actual = sha256_fingerprint(provider.as_ref(), first)
                    .map_err(|e| rtc_shared::error::Error::Other(e.to_string()))?;
                if fingerprint_eq(&actual, &expected) {
                    Ok(())
                } else {
                    Err(rtc_shared::error::Error::ErrNoMatchingCertificateFingerprint)
                }
            },
        );
        let config = self
            .template
            .clone()
            .with_verify_peer_certificate(Some(verify))
            .build(false, None)
            .map_err(|e| CoreError::Dtls(e.to_string()))?;
        Ok(Arc::new(config))
    }
}

/// Wraps a SEC1 `ECPrivateKey` of curve P-256 into a PKCS#8 `PrivateKeyInfo` (RFC 5915 §3 /
/// RFC 5208): SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, prime256v1 }, OCTET STRING sec1 }.
fn sec1_p256_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    const VERSION: [u8; 3] = [0x02, 0x01, 0x00];
    const ALG_ID: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut octets = vec![0x04];
    der_len(&mut octets, sec1.len());
    octets.extend_from_slice(sec1);
    let body_len = VERSION.len() + ALG_ID.len() + octets.len();
    let mut out = vec![0x30];
    der_len(&mut out, body_len);
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(&ALG_ID);
    out.extend_from_slice(&octets);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_gives_a_fingerprint() {
        let id = DtlsIdentity::generate().unwrap();
        let fp = id.fingerprint();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp
            .chars()
            .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(fingerprint_eq(fp, &fp.to_lowercase()));
        assert!(!fingerprint_eq(fp, "AB"));
        id.handshake_config(fp).unwrap();
    }

    #[test]
    fn from_pem_rejects_garbage() {
        assert!(DtlsIdentity::from_pem("nope", "nope").is_err());
        assert!(DtlsIdentity::from_pem("", "").is_err());
    }
}

#[cfg(test)]
mod pem_tests {
    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{DATA}{name}")).unwrap()
    }

    #[test]
    fn loads_openssl_pkcs8_key() {
        let id =
            DtlsIdentity::from_pem(&read("ec_pkcs8_cert.pem"), &read("ec_pkcs8_key.pem")).unwrap();
        // `openssl x509 -noout -fingerprint -sha256` of the fixture
        assert_eq!(
            id.fingerprint(),
            "90:A9:4A:19:E1:E1:C7:10:5F:53:DA:93:9C:88:85:41:E7:5D:C3:E9:B5:35:19:10:CB:F8:3D:3C:D5:FF:B0:03"
        );
    }

    #[test]
    fn loads_openssl_sec1_key() {
        DtlsIdentity::from_pem(&read("ec_sec1_cert.pem"), &read("ec_sec1_key.pem")).unwrap();
    }
}
