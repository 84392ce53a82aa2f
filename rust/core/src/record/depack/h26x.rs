//! H.264 (RFC 6184: single NAL unit, STAP-A, FU-A) and H.265 (RFC 7798: single NAL unit, AP,
//! FU; no DONL) payloads to length-prefixed NAL units. STAP-B, MTAP, FU-B and PACI packets are
//! refused (their frame is dropped): WebRTC, RTSP and our GB28181 gateway never send them.

use super::assembly::{Assembly, VideoFormat};
use crate::codec::ParamSets;
use crate::media::CodecName;

#[derive(Debug)]
pub struct H26x {
    h265: bool,
    params: ParamSets,
    /// Where the length prefix of the NAL unit being reassembled from fragments sits.
    fu_at: Option<usize>,
}

impl H26x {
    /// `None` unless `codec` is H.264 or H.265.
    pub fn new(codec: CodecName, fmtp: &str) -> Option<H26x> {
        let mut params = ParamSets::new(codec)?;
        params.load_fmtp(fmtp);
        Some(H26x {
            h265: codec == CodecName::H265,
            params,
            fu_at: None,
        })
    }

    pub fn params(&self) -> &ParamSets {
        &self.params
    }

    fn nal_type(&self, nal: &[u8]) -> u8 {
        match nal.first() {
            Some(b) if self.h265 => (b >> 1) & 0x3f,
            Some(b) => b & 0x1f,
            None => 0,
        }
    }

    fn is_key(&self, t: u8) -> bool {
        if self.h265 {
            (16..=21).contains(&t)
        } else {
            t == 5
        }
    }

    /// Appends one whole NAL unit.
    fn nal(&mut self, nal: &[u8], frame: &mut Assembly) -> Result<(), ()> {
        let hdr = if self.h265 { 2 } else { 1 };
        if nal.len() < hdr {
            return Err(());
        }
        let t = self.nal_type(nal);
        frame.keyframe |= self.is_key(t);
        self.params.offer_nal(nal);
        frame
            .data
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        frame.data.extend_from_slice(nal);
        Ok(())
    }

    fn aggregate(&mut self, p: &[u8], start: usize, frame: &mut Assembly) -> Result<(), ()> {
        let mut at = start;
        let mut any = false;
        while at < p.len() {
            let n = u16::from_be_bytes([*p.get(at).ok_or(())?, *p.get(at + 1).ok_or(())?]);
            at += 2;
            let nal = p.get(at..at + n as usize).ok_or(())?;
            self.nal(nal, frame)?;
            at += n as usize;
            any = true;
        }
        if any {
            Ok(())
        } else {
            Err(())
        }
    }

    /// One fragmentation unit: `hdr` is the rebuilt NAL header, `body` the fragment.
    fn fragment(
        &mut self,
        start: bool,
        end: bool,
        hdr: &[u8],
        body: &[u8],
        frame: &mut Assembly,
    ) -> Result<(), ()> {
        if start {
            if self.fu_at.is_some() {
                return Err(());
            }
            let t = self.nal_type(hdr);
            frame.keyframe |= self.is_key(t);
            self.fu_at = Some(frame.data.len());
            frame.data.extend_from_slice(&[0; 4]);
            frame.data.extend_from_slice(hdr);
        } else if self.fu_at.is_none() {
            return Err(());
        }
        frame.data.extend_from_slice(body);
        if end {
            self.end_fragment(frame)?;
        }
        Ok(())
    }

    fn end_fragment(&mut self, frame: &mut Assembly) -> Result<(), ()> {
        let at = self.fu_at.take().ok_or(())?;
        let len = frame.data.len().checked_sub(at + 4).ok_or(())?;
        let nal = frame.data.get(at + 4..).ok_or(())?;
        // A parameter set large enough to be fragmented is rare but legal.
        let nal = nal.to_vec();
        self.params.offer_nal(&nal);
        let slot = frame.data.get_mut(at..at + 4).ok_or(())?;
        slot.copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

impl VideoFormat for H26x {
    fn add(&mut self, p: &[u8], first: bool, frame: &mut Assembly) -> Result<(), ()> {
        if first {
            self.fu_at = None;
        }
        if self.h265 {
            if p.len() < 3 {
                return Err(());
            }
            let t = (p[0] >> 1) & 0x3f;
            match t {
                0..=47 => self.nal(p, frame),
                48 => self.aggregate(p, 2, frame),
                49 => {
                    let fu = p[2];
                    let hdr = [(p[0] & 0x81) | ((fu & 0x3f) << 1), p[1]];
                    self.fragment(fu & 0x80 != 0, fu & 0x40 != 0, &hdr, &p[3..], frame)
                }
                _ => Err(()),
            }
        } else {
            let Some(&b0) = p.first() else { return Err(()) };
            match b0 & 0x1f {
                1..=23 => self.nal(p, frame),
                24 => self.aggregate(p, 1, frame),
                28 => {
                    let fu = *p.get(1).ok_or(())?;
                    let hdr = [(b0 & 0xe0) | (fu & 0x1f)];
                    self.fragment(fu & 0x80 != 0, fu & 0x40 != 0, &hdr, &p[2..], frame)
                }
                _ => Err(()),
            }
        }
    }

    fn finish(&mut self, _frame: &mut Assembly) -> Result<(), ()> {
        // A fragmented NAL unit without its end fragment is incomplete.
        match self.fu_at.take() {
            Some(_) => Err(()),
            None => Ok(()),
        }
    }
}
