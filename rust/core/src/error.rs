//! The crate-wide error type: what went wrong on *our* side of an operation (a certificate that
//! does not load, a transport that cannot be built). Faults of a remote peer never surface here:
//! the transport turns them into [`crate::transport::TransportEvent::Closed`] and the SDP module
//! into [`crate::sdp::SdpError`], which carry a status hint for signaling.

use std::fmt;

/// An error of the media core. New variants may be added (the router adds its own).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// The DTLS certificate or key could not be made or loaded (bad PEM, unsupported key type).
    Certificate(String),
    /// The DTLS handshake configuration could not be built.
    Dtls(String),
    /// Invalid arguments to a constructor (empty ICE credentials, ...): a bug of the caller.
    InvalidArgument(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Certificate(m) => write!(f, "DTLS certificate: {m}"),
            CoreError::Dtls(m) => write!(f, "DTLS configuration: {m}"),
            CoreError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
        }
    }
}

impl std::error::Error for CoreError {}
