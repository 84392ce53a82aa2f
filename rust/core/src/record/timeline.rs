//! One timeline for every track of a recording.
//!
//! Each track's 32-bit RTP timestamps are unwrapped to 64 bits ([`TsUnwrapper`]: a step of
//! less than half the range either way is taken as the short way round, so wraparound and
//! B-frame reordering both come out right). A track's time is then
//! `offset + (unwrapped - first) / clock_rate`, where `first` is the timestamp of its first
//! packet and `offset` places that packet on the recording's timeline:
//!
//! - by wallclock: the instant the track's first packet arrived, minus the instant the
//!   recording's first packet (of any track) arrived;
//! - by RTCP sender reports, when the caller hands them in ([`Timeline::sender_report`]): the
//!   first report of any track fixes which NTP time is which timeline instant; a later track's
//!   report then places that track exactly. A report only moves a track that has not produced
//!   a frame yet (moving a written track would make its times jump); the writer holds frames
//!   back until every track is ready, so reports that arrive in the first moments count.
//!
//! Times are nanoseconds (`i64`): a frame may land slightly before zero (a B-frame shown before
//! the frame that opened the track); the writers clamp what their container cannot hold.

use std::time::Instant;

/// Extends RTP timestamps to 64 bits. The first timestamp is placed at `2^32` so that an
/// earlier one (reordering) does not underflow.
#[derive(Debug, Clone, Copy, Default)]
pub struct TsUnwrapper {
    last: Option<u64>,
}

impl TsUnwrapper {
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = match self.last {
            None => (1u64 << 32) + ts as u64,
            Some(l) => {
                let delta = ts.wrapping_sub(l as u32) as i32 as i64;
                (l as i64 + delta).max(0) as u64
            }
        };
        // Follow the stream forward only: a reordered (earlier) timestamp does not move the
        // reference, so a later wrap is measured from the newest point.
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
}

#[derive(Debug, Clone)]
struct TrackClock {
    clock_rate: u32,
    unwrap: TsUnwrapper,
    /// Unwrapped timestamp of the first packet.
    first: Option<u64>,
    /// Timeline position of `first`, in ns.
    offset_ns: i64,
    /// A frame of this track has been placed on the timeline: the offset is fixed.
    fixed: bool,
    /// `(ntp, unwrapped rtp)` of a sender report that came before the first packet.
    early_sr: Option<(u64, u32)>,
}

/// The recording's timeline. Tracks are indexed as given to [`Timeline::new`].
#[derive(Debug, Clone)]
pub struct Timeline {
    origin: Option<Instant>,
    /// The NTP time (RFC 3550 64-bit fixed point) of timeline zero, from the first report.
    ntp_zero: Option<u64>,
    /// Added to every time, fixed when the first frame is placed: lifts a track that reports
    /// put before the others' first packet (negative offset) back to zero.
    base_ns: Option<i64>,
    tracks: Vec<TrackClock>,
}

/// NTP 32.32 fixed point to ns (of a difference).
fn ntp_diff_ns(a: u64, b: u64) -> i64 {
    let d = a.wrapping_sub(b) as i64 as i128;
    ((d * 1_000_000_000) >> 32) as i64
}

fn ticks_to_ns(ticks: i64, rate: u32) -> i64 {
    ((ticks as i128 * 1_000_000_000) / rate.max(1) as i128) as i64
}

impl Timeline {
    pub fn new(clock_rates: &[u32]) -> Timeline {
        Timeline {
            origin: None,
            ntp_zero: None,
            base_ns: None,
            tracks: clock_rates
                .iter()
                .map(|&r| TrackClock {
                    clock_rate: r.max(1),
                    unwrap: TsUnwrapper::default(),
                    first: None,
                    offset_ns: 0,
                    fixed: false,
                    early_sr: None,
                })
                .collect(),
        }
    }

    /// Notes that a packet of `track` arrived at `now` (call for every packet, before
    /// [`Timeline::time_ns`] of its frames). The first one anchors the track.
    pub fn packet(&mut self, now: Instant, track: usize, rtp_ts: u32) {
        let origin = *self.origin.get_or_insert(now);
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        if t.first.is_some() {
            return;
        }
        let first = t.unwrap.unwrap(rtp_ts);
        t.first = Some(first);
        t.offset_ns = now.saturating_duration_since(origin).as_nanos() as i64;
        if let Some((ntp, rtp)) = t.early_sr.take() {
            self.sender_report(track, ntp, rtp);
        }
    }

    /// An RTCP sender report of `track`: `ntp` (64-bit NTP timestamp) is the wallclock of RTP
    /// time `rtp_ts`.
    pub fn sender_report(&mut self, track: usize, ntp: u64, rtp_ts: u32) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        let Some(first) = t.first else {
            t.early_sr = Some((ntp, rtp_ts));
            return;
        };
        if t.fixed {
            return;
        }
        // Where the report's RTP time sits on this track's current timeline.
        let ext = t.unwrap.unwrap(rtp_ts);
        let sr_ns = t.offset_ns + ticks_to_ns(ext as i64 - first as i64, t.clock_rate);
        match self.ntp_zero {
            None => {
                let back = ((sr_ns as i128) << 32) / 1_000_000_000;
                self.ntp_zero = Some(ntp.wrapping_sub(back as u64));
            }
            Some(zero) => {
                let want = ntp_diff_ns(ntp, zero);
                t.offset_ns += want - sr_ns;
            }
        }
    }

    /// The timeline time of `rtp_ts` on `track`, in ns; fixes the track's offset (and, on the
    /// first call, the base). `None` for a track that has had no packet (or does not exist).
    pub fn time_ns(&mut self, track: usize, rtp_ts: u32) -> Option<i64> {
        let base = self.base();
        self.base_ns = Some(base);
        let t = self.tracks.get_mut(track)?;
        let first = t.first?;
        t.fixed = true;
        let ext = t.unwrap.unwrap(rtp_ts);
        Some(base + t.offset_ns + ticks_to_ns(ext as i64 - first as i64, t.clock_rate))
    }

    /// Like [`Timeline::time_ns`] without fixing anything.
    pub fn peek_ns(&mut self, track: usize, rtp_ts: u32) -> Option<i64> {
        let base = self.base();
        let t = self.tracks.get_mut(track)?;
        let first = t.first?;
        let ext = t.unwrap.unwrap(rtp_ts);
        Some(base + t.offset_ns + ticks_to_ns(ext as i64 - first as i64, t.clock_rate))
    }

    fn base(&self) -> i64 {
        self.base_ns.unwrap_or_else(|| {
            let lowest = self
                .tracks
                .iter()
                .filter(|t| t.first.is_some())
                .map(|t| t.offset_ns);
            -lowest.min().unwrap_or(0).min(0)
        })
    }

    /// Whether a frame of the track has been placed (its offset can no longer change).
    pub fn is_fixed(&self, track: usize) -> bool {
        self.tracks.get(track).is_some_and(|t| t.fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unwraps_forward_and_back_over_the_wrap() {
        let mut u = TsUnwrapper::default();
        let a = u.unwrap(u32::MAX - 10);
        assert_eq!(u.unwrap(5), a + 16);
        assert_eq!(
            u.unwrap(u32::MAX - 5),
            a + 5,
            "a reordered packet before the wrap"
        );
        assert_eq!(u.unwrap(100), a + 111);
        // Many wraps in 90 kHz steps of one frame.
        let mut u = TsUnwrapper::default();
        let mut ts = 0u32;
        let base = u.unwrap(ts);
        for i in 1..200_000u64 {
            ts = ts.wrapping_add(3000 * 10);
            assert_eq!(u.unwrap(ts), base + i * 30_000);
        }
    }

    #[test]
    fn tracks_share_the_wallclock_origin() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(&[90_000, 48_000]);
        tl.packet(t0, 0, 1000);
        tl.packet(t0 + Duration::from_millis(200), 1, 77);
        assert_eq!(tl.time_ns(0, 1000 + 90_000), Some(1_000_000_000));
        assert_eq!(tl.time_ns(1, 77 + 48_000), Some(1_200_000_000));
        assert_eq!(tl.time_ns(1, 77u32.wrapping_sub(480)), Some(190_000_000));
        assert_eq!(tl.time_ns(5, 0), None);
    }

    #[test]
    fn a_track_reported_earlier_than_the_first_lifts_the_timeline() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(&[90_000, 48_000]);
        let ntp = 1000u64 << 32;
        tl.packet(t0, 1, 0);
        tl.sender_report(1, ntp, 0);
        tl.packet(t0, 0, 0);
        tl.sender_report(0, ntp - (1u64 << 32) / 10, 0); // video 100 ms before audio
        let v = tl.time_ns(0, 0).unwrap_or(-1);
        let a = tl.time_ns(1, 0).unwrap_or(-1);
        assert!(v.abs() < 2 && (a - 100_000_000).abs() < 2, "{v} {a}");
    }

    #[test]
    fn sender_reports_align_tracks() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(&[90_000, 48_000]);
        // Both tracks arrive together, but the sender says audio RTP 0 was captured 100 ms
        // after video RTP 0.
        tl.packet(t0, 0, 0);
        tl.packet(t0, 1, 0);
        let ntp = 1000u64 << 32;
        tl.sender_report(0, ntp, 90_000); // video t=1s at NTP 1000.0
        let tenth = (1u64 << 32) / 10;
        tl.sender_report(1, ntp + tenth, 48_000); // audio t=1s at NTP 1000.1
        assert_eq!(tl.time_ns(0, 0), Some(0));
        let a = tl.time_ns(1, 0).unwrap_or_default();
        assert!((a - 100_000_000).abs() < 2, "{a}");
        // Fixed now: a later report changes nothing.
        tl.sender_report(1, ntp, 48_000);
        assert_eq!(tl.time_ns(1, 0), Some(a));
        assert!(tl.is_fixed(1));
    }
}
