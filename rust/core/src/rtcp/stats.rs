//! Reception statistics of one incoming RTP source ([`ReceiveStats`], RFC 3550 A.3 and A.8):
//! loss, interarrival jitter and the LSR/DLSR of its last sender report, made into the
//! [`ReportBlock`] of the receiver reports we send to publishers.

use std::time::{Duration, Instant};

use super::ReportBlock;

/// The middle 32 bits of an NTP timestamp (the LSR field).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Reception statistics of one incoming RTP source (RFC 3550 A.3, A.8).
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    base_ext: Option<u64>,
    max_ext: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units, scaled by 16 (RFC 3550 A.8 integer form).
    jitter_q4: u64,
    last_transit: Option<i64>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.max(1),
            base_ext: None,
            max_ext: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_q4: 0,
            last_transit: None,
            last_sr: None,
        }
    }

    /// Records one packet. `since_epoch` is its arrival time relative to any fixed instant;
    /// `retransmission` packets count as received but not for jitter.
    pub fn on_packet(
        &mut self,
        ext_seq: u64,
        timestamp: u32,
        since_epoch: Duration,
        retransmission: bool,
    ) {
        if self.base_ext.is_none_or(|b| ext_seq < b) {
            self.base_ext = Some(ext_seq);
        }
        self.max_ext = self.max_ext.max(ext_seq);
        self.received += 1;
        if retransmission {
            return;
        }
        let arrival = (since_epoch.as_nanos() * self.clock_rate as u128 / 1_000_000_000) as i64;
        let transit = arrival.wrapping_sub(timestamp as i64);
        if let Some(last) = self.last_transit {
            let d = transit
                .wrapping_sub(last)
                .unsigned_abs()
                .min(u32::MAX as u64);
            // J += (|D| - J) / 16, in Q4.
            self.jitter_q4 = (self.jitter_q4 as i64 + d as i64 - ((self.jitter_q4 + 8) >> 4) as i64)
                .max(0) as u64;
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report of this source received at `now`.
    pub fn on_sender_report(&mut self, ntp_time: u64, now: Instant) {
        self.last_sr = Some((ntp_middle(ntp_time), now));
    }

    /// Packets lost since the first one (expected minus received, never below zero: duplicates
    /// and retransmissions can make received exceed expected).
    pub fn lost(&self) -> u64 {
        match self.base_ext {
            Some(base) => (self.max_ext - base + 1).saturating_sub(self.received),
            None => 0,
        }
    }

    /// Whether any packet was received.
    pub fn active(&self) -> bool {
        self.base_ext.is_some()
    }

    /// Makes the report block for `ssrc` and starts a new interval.
    pub fn report(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let base = self.base_ext.unwrap_or(self.max_ext);
        let expected = self.max_ext - base + 1;
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected - self.expected_prior.min(expected);
        let received_interval = self.received - self.received_prior.min(self.received);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                (lsr, (d.as_secs_f64() * 65536.0).min(u32::MAX as f64) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            total_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.max_ext as u32,
            jitter: (self.jitter_q4 >> 4).min(u32::MAX as u64) as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}
