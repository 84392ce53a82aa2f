//! RTCP for the forwarding path: a zero-copy reader of compound packets ([`parse_compound`]) for
//! the types the router acts on (SR, RR, generic NACK, PLI, FIR, REMB), writers that append
//! those packets to a buffer, and per-source reception statistics ([`ReceiveStats`], RFC 3550
//! A.3 and A.8) for the receiver reports we send to publishers.
//!
//! The reader never allocates and never panics: a sub-packet whose length field runs past the
//! datagram ends the walk with [`RtcpError`]; the sub-packets before it are still delivered.
//! `rtc-rtcp` types are used in tests to cross-check the wire format.

mod read;
mod stats;
#[cfg(test)]
mod tests;
mod write;

pub use read::{parse_compound, CompoundIter, NackSeqs, ReportBlocks, Rtcp};
pub use stats::{ntp_middle, ReceiveStats};
pub use write::{remb_encode, write_fir, write_nack, write_pli, write_remb, write_rr, write_sr};

/// Why (part of) an RTCP compound packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header, wrong version, or a length past the end of the datagram.
    Malformed,
    /// A known packet type whose body is shorter than its fixed part.
    Truncated { packet_type: u8 },
}

impl std::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtcpError::Malformed => f.write_str("malformed rtcp compound packet"),
            RtcpError::Truncated { packet_type } => {
                write!(f, "truncated rtcp packet type {packet_type}")
            }
        }
    }
}

impl std::error::Error for RtcpError {}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed on the wire).
    pub total_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}
