//! The frame assembly shared by the video depacketizers (by RTP timestamp and marker bit, with
//! the loss rule of [`super`]), and the frame type every depacketizer produces.

use crate::rtp::RtpView;

/// Largest frame kept (a 4K intra frame is a few MB): bounds memory against hostile input.
pub const MAX_FRAME: usize = 16 << 20;

/// One frame of one track, ready for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// RTP timestamp (the presentation time, in the track's clock).
    pub rtp_ts: u32,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// How a video payload format adds one packet to the frame being assembled.
pub(crate) trait VideoFormat {
    /// Appends the packet's media bytes to `frame`. Returns `Err(())` when the payload does not
    /// parse or does not continue the frame (the frame is then broken). `first` is whether this
    /// is the first packet of the frame.
    fn add(&mut self, payload: &[u8], first: bool, frame: &mut Assembly) -> Result<(), ()>;
    /// Called once when the frame is complete; may refuse it (an unfinished fragment).
    fn finish(&mut self, frame: &mut Assembly) -> Result<(), ()>;
}

/// The frame being assembled.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Sequence-number bookkeeping shared by every depacketizer: `Some(true)` the packet follows a
/// gap, `Some(false)` it is the next one, `None` it is late or a duplicate (ignore it).
#[derive(Debug, Default)]
pub(crate) struct SeqCheck {
    next: Option<u16>,
}

impl SeqCheck {
    pub(crate) fn check(&mut self, seq: u16) -> Option<bool> {
        let Some(next) = self.next else {
            self.next = Some(seq.wrapping_add(1));
            return Some(false);
        };
        let ahead = seq.wrapping_sub(next) as i16;
        if ahead < 0 {
            return None;
        }
        self.next = Some(seq.wrapping_add(1));
        Some(ahead > 0)
    }
}

/// Frame assembly by RTP timestamp and marker bit, with the loss rule of the module doc.
#[derive(Debug)]
pub(crate) struct VideoAssembler<F> {
    format: F,
    seq: SeqCheck,
    cur_ts: Option<u32>,
    broken: bool,
    need_key: bool,
    frame: Assembly,
    dropped: u64,
}

impl<F: VideoFormat> VideoAssembler<F> {
    pub(crate) fn new(format: F) -> Self {
        VideoAssembler {
            format,
            seq: SeqCheck::default(),
            cur_ts: None,
            broken: false,
            need_key: true,
            frame: Assembly::default(),
            dropped: 0,
        }
    }

    pub(crate) fn format(&self) -> &F {
        &self.format
    }

    fn close(&mut self, out: &mut Vec<Frame>) {
        let Some(ts) = self.cur_ts.take() else { return };
        let ok = !self.broken && self.format.finish(&mut self.frame).is_ok();
        let frame = std::mem::take(&mut self.frame);
        self.broken = false;
        if !ok || frame.data.is_empty() {
            self.dropped += 1;
            self.need_key = true;
            return;
        }
        if self.need_key && !frame.keyframe {
            self.dropped += 1;
            return;
        }
        self.need_key = false;
        out.push(Frame {
            rtp_ts: ts,
            keyframe: frame.keyframe,
            data: frame.data,
        });
    }

    pub(crate) fn push(&mut self, pkt: &RtpView<'_>, out: &mut Vec<Frame>) {
        let Some(gap) = self.seq.check(pkt.seq) else {
            return;
        };
        if self.cur_ts.is_some_and(|t| t != pkt.timestamp) {
            // The previous frame's marker was lost (or never sent): it may be incomplete.
            self.broken = true;
            self.close(out);
        }
        let first = self.cur_ts.is_none();
        if first {
            self.cur_ts = Some(pkt.timestamp);
        }
        if gap {
            self.broken = true;
        }
        if !self.broken {
            let r = self.format.add(pkt.payload, first, &mut self.frame);
            if r.is_err() || self.frame.data.len() > MAX_FRAME {
                self.broken = true;
                self.frame.data.clear();
            }
        }
        if pkt.marker {
            self.close(out);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}
