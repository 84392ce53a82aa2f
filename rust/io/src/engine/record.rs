//! The recording command of [`Engine`]: a recorder peer (`crate::peers::recorder`) on the
//! stream's worker, consuming every track of the stream into one file of the chosen container.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pms_core::media::{Codec, ConsumerTrack};
use pms_core::record::{Container, TrackSpec};

use super::*;
use crate::peers::recorder::{Recorder, RecorderSpec};

impl Engine {
    /// Records the live `stream` into `folder`, in files named by the `strftime` `pattern`
    /// (local time; a name that exists gets `-1`, `-2`...), as `container` (`webm`, `mkv`,
    /// `mp4`). `segment_seconds` > 0 starts a new file at the first keyframe after that long.
    /// Returns the recorder's id (close it with [`close_transport`](Engine::close_transport)).
    /// 404 when the stream is not live, 415 when the container cannot hold one of its codecs,
    /// 400 for a bad container or pattern.
    pub fn create_recorder(
        &self,
        stream: &str,
        folder: &str,
        pattern: &str,
        container: &str,
        segment_seconds: f64,
    ) -> Result<TransportId, EngineError> {
        let container = match container {
            "webm" => Container::Webm,
            "mkv" => Container::Mkv,
            "mp4" => Container::Mp4,
            other => {
                return Err(EngineError::BadRequest(format!(
                    "unknown container {other:?}: webm, mkv or mp4"
                )))
            }
        };
        if pattern.is_empty() || pattern.contains('/') || pattern.contains('\0') {
            return Err(EngineError::BadRequest(
                "a file name pattern is one plain file name".into(),
            ));
        }
        let segment = if segment_seconds.is_finite() && segment_seconds > 0.0 {
            Some(Duration::from_secs_f64(segment_seconds.min(86_400.0)))
        } else {
            None
        };
        let mut reg = self.shared.registry();
        let Some(entry) = reg.streams.get(stream) else {
            return Err(EngineError::NotFound(format!(
                "stream {stream:?} is not live"
            )));
        };
        let (worker, producer) = (entry.worker, entry.producer);
        let mut rng = rand::thread_rng();
        let tracks: Vec<(ConsumerTrack, TrackSpec)> = entry
            .tracks
            .iter()
            .enumerate()
            .map(|(i, src)| {
                let codec = Codec {
                    rtx_payload_type: None,
                    rtcp_fb: Vec::new(),
                    ..src.codec.clone()
                };
                let spec = TrackSpec::from_codec(&codec);
                let ct = ConsumerTrack {
                    kind: src.kind,
                    mid: i.to_string(),
                    codec,
                    ssrc: rng.gen(),
                    rtx_ssrc: None,
                    extensions: Default::default(),
                    producer_track: i,
                };
                (ct, spec)
            })
            .collect();
        let spec = RecorderSpec {
            stream: stream.to_string(),
            producer,
            folder: PathBuf::from(folder),
            pattern: pattern.to_string(),
            container,
            segment,
            tracks,
        };
        let recorder = Recorder::new(spec, Instant::now()).map_err(|e| match e.status() {
            415 => EngineError::Unsupported(e.to_string()),
            _ => EngineError::BadRequest(e.to_string()),
        })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        reg.transports.insert(
            id,
            TransportInfo {
                worker,
                stream: stream.to_string(),
                publisher: false,
                ufrag: String::new(),
                muted: (false, false),
                rtsp: false,
                announce_map: Vec::new(),
            },
        );
        drop(reg);
        self.add_peer(
            worker,
            id,
            PeerInfo::transport(stream, false),
            Box::new(recorder),
        );
        Ok(id)
    }
}
