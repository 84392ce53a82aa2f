//! Audio for browsers in the player's negotiation (SPEC 11): when a WebRTC player cannot take
//! the stream's audio as it is (AAC always; G.711 when its offer has neither PCMA nor PCMU) and
//! `webrtc.transcodeAudio` is on, its answer takes the Opus track of a transcoder
//! (`crate::peers::transcoder`) instead, which is started here if none runs.
//!
//! Rules: the player's offer is answered against the source first; only when that leaves its
//! audio idle is it answered again with the source's first audio track replaced by the Opus
//! track (at its own producer track index). One transcoder per stream and source track, shared
//! by all its players; the registry's `Transcoding` entry counts them.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pms_core::media::{
    Codec, CodecName, ConsumerTrack, HeaderExtensions, MediaKind, ProducerTrack, TransportId,
};
use pms_core::transcode::{self, OpusSpec, SourceSpec, Transcoder, OPUS_CLOCK, OPUS_SDP_CHANNELS};
use rand::Rng;

use super::Engine;
use crate::peers::transcoder::{TranscoderPeer, TranscoderSpec};
use crate::registry::{Registry, Transcoding};
use crate::worker::PeerInfo;

/// Payload type of our Opus producer track (players get their own).
const OPUS_PT: u8 = 111;

/// One transcoded track as the control plane lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodedTrack {
    /// `audio/MPEG4-GENERIC`, `audio/PCMA`...
    pub source: String,
    pub codec: String,
    pub players: usize,
    pub running: bool,
}

/// What a player's negotiation may use: the source's first audio track and the Opus track that
/// would stand for it.
pub(super) struct Plan {
    pub source_track: usize,
    pub index: usize,
    pub track: ProducerTrack,
    /// A new transcoder to start when the answer takes the Opus track (none runs).
    pub start: Option<Transcoder>,
}

fn opus_track(ssrc: u32) -> ProducerTrack {
    ProducerTrack {
        kind: MediaKind::Audio,
        mid: "opus".into(),
        codec: Codec {
            name: CodecName::Opus,
            payload_type: OPUS_PT,
            clock_rate: OPUS_CLOCK,
            channels: OPUS_SDP_CHANNELS,
            fmtp: "minptime=10;useinbandfec=1".into(),
            rtx_payload_type: None,
            rtcp_fb: Vec::new(),
        },
        ssrc: Some(ssrc),
        rtx_ssrc: None,
        extensions: HeaderExtensions::default(),
    }
}

impl Engine {
    /// `webrtc.transcodeAudio`, how long a transcoder runs on after its last player, and the
    /// libopus complexity (0-10) of new transcoders.
    pub fn set_transcode_audio(&self, enabled: bool, linger_ms: u64, complexity: u8) {
        self.shared
            .transcode_audio
            .store(enabled, Ordering::Relaxed);
        self.shared
            .transcode_linger_ms
            .store(linger_ms, Ordering::Relaxed);
        self.shared
            .transcode_complexity
            .store(u64::from(complexity.min(10)), Ordering::Relaxed);
    }

    /// The transcoded tracks of a live stream.
    pub fn stream_transcodes(&self, stream: &str) -> Vec<TranscodedTrack> {
        let reg = self.shared.registry();
        let Some(s) = reg.streams.get(stream) else {
            return Vec::new();
        };
        s.transcoded
            .iter()
            .map(|t| TranscodedTrack {
                source: s
                    .tracks
                    .get(t.source_track)
                    .map(|p| format!("audio/{}", p.codec.name.encoding_name()))
                    .unwrap_or_default(),
                codec: "audio/opus".into(),
                players: t.players.len(),
                running: t.peer.is_some(),
            })
            .collect()
    }

    /// The plan for a player of `stream` (`None`: transcoding off, no audio to transcode, or a
    /// source the decoder cannot take).
    pub(super) fn transcode_plan(&self, reg: &Registry, stream: &str) -> Option<Plan> {
        if !self.shared.transcode_audio.load(Ordering::Relaxed) {
            return None;
        }
        let entry = reg.streams.get(stream)?;
        let si = entry
            .tracks
            .iter()
            .position(|t| t.kind == MediaKind::Audio)?;
        let src = &entry.tracks[si];
        if !transcode::transcodable(src.codec.name) {
            return None;
        }
        let (index, track, running) = match entry.transcoded.iter().find(|t| t.source_track == si) {
            Some(t) => (t.index, t.track.clone(), t.peer.is_some()),
            None => (
                entry.tracks.len() + entry.transcoded.len(),
                opus_track(rand::thread_rng().gen::<u32>() | 1),
                false,
            ),
        };
        let start = if running {
            None
        } else {
            let mut rng = rand::thread_rng();
            let source = SourceSpec {
                codec: src.codec.name,
                clock_rate: src.codec.clock_rate,
                fmtp: src.codec.fmtp.clone(),
            };
            let opus = OpusSpec {
                ssrc: track.ssrc.unwrap_or(1),
                payload_type: OPUS_PT,
                first_seq: rng.gen(),
                ts_base: rng.gen(),
            };
            match Transcoder::new(source, opus) {
                Ok(mut t) => {
                    let c = self.shared.transcode_complexity.load(Ordering::Relaxed);
                    t.set_complexity(c.min(10) as i32);
                    Some(t)
                }
                Err(e) => {
                    log::info!(target: "pms_io::transcode", "{stream}: no transcoding: {e}");
                    return None;
                }
            }
        };
        Some(Plan {
            source_track: si,
            index,
            track,
            start,
        })
    }

    /// The player `player` takes the plan's Opus track: record it in the registry and start
    /// the transcoder if none runs. Call with the registry locked, before the player is added
    /// to its worker (the transcoder's Opus track must exist when the player joins).
    pub(super) fn transcode_join(
        &self,
        reg: &mut Registry,
        stream: &str,
        player: TransportId,
        plan: Plan,
    ) {
        let linger = Duration::from_millis(self.shared.transcode_linger_ms.load(Ordering::Relaxed));
        let Some(entry) = reg.streams.get_mut(stream) else {
            return;
        };
        let (worker, producer) = (entry.worker, entry.producer);
        let pos = match entry
            .transcoded
            .iter()
            .position(|t| t.source_track == plan.source_track)
        {
            Some(p) => p,
            None => {
                entry.transcoded.push(Transcoding {
                    source_track: plan.source_track,
                    index: plan.index,
                    track: plan.track.clone(),
                    peer: None,
                    players: HashSet::new(),
                });
                entry.transcoded.len() - 1
            }
        };
        let source = entry.tracks.get(plan.source_track).cloned();
        let t = &mut entry.transcoded[pos];
        t.players.insert(player);
        if t.peer.is_some() {
            return;
        }
        let (Some(core), Some(source)) = (plan.start, source) else {
            return;
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        t.peer = Some(id);
        let consumer = ConsumerTrack {
            kind: MediaKind::Audio,
            mid: "0".into(),
            codec: Codec {
                rtx_payload_type: None,
                rtcp_fb: Vec::new(),
                ..source.codec.clone()
            },
            ssrc: rand::thread_rng().gen::<u32>() | 1,
            rtx_ssrc: None,
            extensions: HeaderExtensions::default(),
            producer_track: plan.source_track,
        };
        let spec = TranscoderSpec {
            stream: stream.to_string(),
            producer,
            index: t.index,
            opus_track: t.track.clone(),
            consumer,
            linger,
        };
        self.add_peer(
            worker,
            id,
            PeerInfo::service(),
            Box::new(TranscoderPeer::new(spec, core)),
        );
    }
}

/// A player's answer, its tracks and whether they take a transcoded track, the remote
/// parameters.
type PlayerAnswer = (
    String,
    (Vec<ConsumerTrack>, bool),
    pms_core::sdp::RemoteParams,
);

/// Answers a player's offer with the source, and again with the plan's Opus track in place of
/// the source audio when the first answer left the audio idle. Returns the answer, its tracks
/// (indexes into the producer's tracks), the remote parameters and whether the Opus track was
/// taken.
pub(super) fn answer_with_plan(
    offer: &str,
    source: &[ProducerTrack],
    plan: Option<&Plan>,
    ctx: &pms_core::sdp::AnswerContext,
) -> Result<PlayerAnswer, pms_core::sdp::SdpError> {
    let mut rng = rand::thread_rng();
    let mut new_ssrc = || rng.gen::<u32>() | 1;
    let (answer, tracks, remote) = pms_core::sdp::answer_player(offer, source, ctx, &mut new_ssrc)?;
    let Some(plan) = plan else {
        return Ok((answer, (tracks, false), remote));
    };
    if tracks.iter().any(|t| t.kind == MediaKind::Audio) {
        return Ok((answer, (tracks, false), remote));
    }
    let mut alt = source.to_vec();
    alt[plan.source_track] = plan.track.clone();
    let Ok((answer2, mut tracks2, remote2)) =
        pms_core::sdp::answer_player(offer, &alt, ctx, &mut new_ssrc)
    else {
        return Ok((answer, (tracks, false), remote));
    };
    let mut taken = false;
    for t in &mut tracks2 {
        if t.kind == MediaKind::Audio && t.producer_track == plan.source_track {
            t.producer_track = plan.index;
            taken = true;
        }
    }
    if !taken {
        return Ok((answer, (tracks, false), remote));
    }
    Ok((answer2, (tracks2, true), remote2))
}
