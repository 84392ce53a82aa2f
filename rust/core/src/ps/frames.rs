//! The frame side of the demuxer: which stream a PES belongs to, the PSM's stream map, how PES
//! payloads become access units and audio frames, and what is announced (see the rules under
//! "Streams", "Access units" and "Codecs" in the module documentation).

use super::headers::parse_psm;
use super::{es, is_audio, is_video, PsDemuxer, PsEvent, Target, MAX_AUDIO, MAX_FRAME, MAX_SNIFF};

impl PsDemuxer {
    pub(super) fn handle_psm(&mut self) {
        let mut entries = std::mem::take(&mut self.psm);
        if parse_psm(&self.hdr, &mut entries).is_some() {
            let video = entries
                .iter()
                .find(|e| is_video(e.stream_id) && es::video_codec(e.stream_type).is_some());
            if let Some(e) = video {
                let codec = es::video_codec(e.stream_type);
                if codec != self.psm_video {
                    // A new codec (or the first PSM): sniff again.
                    self.sniffed_video = None;
                    self.sniff_tries = 0;
                    self.psm_video = codec;
                }
                self.video_id = Some(e.stream_id);
            }
            let audio = entries
                .iter()
                .find(|e| is_audio(e.stream_id) && es::audio_codec(e.stream_type).is_some());
            if let Some(e) = audio {
                self.psm_audio = es::audio_codec(e.stream_type);
                self.audio_id = Some(e.stream_id);
            }
            self.announce();
        }
        self.psm = entries;
    }

    /// Starts a PES of stream `id`: where its payload goes.
    pub(super) fn start_pes(&mut self, id: u8, pts: Option<u64>) -> Target {
        if is_video(id) {
            if *self.video_id.get_or_insert(id) != id {
                self.stats.dropped += 1;
                return Target::Discard;
            }
            match pts {
                Some(p) => {
                    let p = self.video_pts.unwrap(p);
                    if self.video.open && self.video.pts != p {
                        self.emit_video();
                    }
                    if !self.video.open {
                        if self.lost_pts == Some(p) {
                            // The rest of a frame cut by a loss.
                            self.stats.dropped += 1;
                            return Target::Discard;
                        }
                        self.lost_pts = None;
                        self.video.open = true;
                        self.video.overflow = false;
                        self.video.pts = p;
                        self.video.data.reserve(self.size_hint);
                    }
                }
                None if !self.video.open => {
                    self.stats.dropped += 1;
                    return Target::Discard;
                }
                None => {}
            }
            Target::Video
        } else {
            if *self.audio_id.get_or_insert(id) != id {
                self.stats.dropped += 1;
                return Target::Discard;
            }
            let p = match pts {
                Some(p) => self.audio_pts.unwrap(p),
                None => match self.last_audio_pts {
                    Some(p) => p,
                    None => {
                        self.stats.dropped += 1;
                        return Target::Discard;
                    }
                },
            };
            self.last_audio_pts = Some(p);
            self.audio.open = true;
            self.audio.overflow = false;
            self.audio.pts = p;
            self.audio.data.clear();
            Target::Audio
        }
    }

    pub(super) fn sink(&mut self, target: Target, b: &[u8]) {
        let (f, max) = match target {
            Target::Video => (&mut self.video, MAX_FRAME),
            Target::Audio => (&mut self.audio, MAX_AUDIO),
            Target::Discard => return,
        };
        if !f.open || f.overflow || b.is_empty() {
            return;
        }
        if f.data.len() + b.len() > max {
            f.overflow = true;
            f.data.clear();
            self.stats.dropped += 1;
            return;
        }
        f.data.extend_from_slice(b);
    }

    /// Takes back the last `k` bytes sunk (they began a start code).
    pub(super) fn unsink(&mut self, target: Target, k: usize) {
        let f = match target {
            Target::Video => &mut self.video,
            Target::Audio => &mut self.audio,
            Target::Discard => return,
        };
        let n = f.data.len();
        f.data.truncate(n - k.min(n));
    }

    pub(super) fn end_pes(&mut self, target: Target) {
        if target == Target::Audio {
            self.end_audio();
        }
    }

    pub(super) fn end_audio(&mut self) {
        if !self.audio.open {
            return;
        }
        self.audio.open = false;
        if self.audio.overflow || self.audio.data.is_empty() {
            return;
        }
        self.audio_seen = true;
        if self.audio_adts.is_none() {
            self.audio_adts = Some(es::looks_like_adts(&self.audio.data));
        }
        self.announce();
        let data = self.audio.data.split().freeze();
        self.stats.audio_frames += 1;
        self.events.push_back(PsEvent::Audio {
            pts_90k: self.audio.pts,
            data,
        });
    }

    pub(super) fn close_frame_without_emitting(&mut self) {
        self.video.open = false;
        self.video.overflow = false;
        self.video.data.clear();
    }

    /// Emits the open access unit (if any, and if it can be decoded).
    pub(super) fn emit_video(&mut self) {
        if !self.video.open {
            return;
        }
        self.video.open = false;
        if self.video.overflow || self.video.data.is_empty() {
            self.video.data.clear();
            return;
        }
        if self.sniffed_video.is_none() && self.sniff_tries < MAX_SNIFF {
            self.sniff_tries += 1;
            self.sniffed_video = es::sniff_video(&self.video.data);
        }
        self.announce();
        let Some(codec) = self.video_codec() else {
            self.stats.dropped += 1;
            self.video.data.clear();
            return;
        };
        let keyframe = es::is_keyframe(codec, &self.video.data);
        self.size_hint = self.video.data.len();
        let data = self.video.data.split().freeze();
        self.stats.video_frames += 1;
        self.events.push_back(PsEvent::Video {
            pts_90k: self.video.pts,
            data,
            keyframe,
        });
    }

    pub(super) fn announce(&mut self) {
        let now = (self.video_codec(), self.audio_codec());
        if now != self.announced {
            self.announced = now;
            self.events.push_back(PsEvent::StreamsKnown {
                video: now.0,
                audio: now.1,
            });
        }
    }
}
