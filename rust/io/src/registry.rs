//! The media plane's own record of streams and transports, shared by the command methods (called
//! from Python) and the workers (on connect/close only; never per packet).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pms_core::media::{ProducerTrack, TransportId};

pub(crate) struct StreamEntry {
    pub worker: usize,
    pub producer: TransportId,
    pub tracks: Arc<Vec<ProducerTrack>>,
    /// Opus tracks the audio transcoder makes of this stream's tracks (SPEC 11); players
    /// only, never in `tracks` (RTSP players and recorders get the source).
    pub transcoded: Vec<Transcoding>,
}

impl StreamEntry {
    pub fn new(worker: usize, producer: TransportId, tracks: Vec<ProducerTrack>) -> StreamEntry {
        StreamEntry {
            worker,
            producer,
            tracks: Arc::new(tracks),
            transcoded: Vec::new(),
        }
    }
}

/// One source audio track transcoded to Opus, for as long as the stream lives: the Opus
/// track keeps its producer track index across transcoder restarts.
pub(crate) struct Transcoding {
    /// The source's producer track index.
    pub source_track: usize,
    /// The Opus track's producer track index (after the source's tracks).
    pub index: usize,
    pub track: ProducerTrack,
    /// The running transcoder peer (`None`: stopped; the next player starts one).
    pub peer: Option<TransportId>,
    /// Players that consume the Opus track; the transcoder stops a linger after the last.
    pub players: HashSet<TransportId>,
}

pub(crate) struct TransportInfo {
    pub worker: usize,
    pub stream: String,
    pub publisher: bool,
    pub ufrag: String,
    /// (video, audio) mute state as last set by the control plane.
    pub muted: (bool, bool),
    /// An RTSP player or publisher (not WebRTC).
    pub rtsp: bool,
    /// RTSP publisher: ANNOUNCE track index → producer track index (`None`: a codec we do not
    /// forward; its packets are dropped).
    pub announce_map: Vec<Option<usize>>,
}

#[derive(Default)]
pub(crate) struct Registry {
    pub streams: HashMap<String, StreamEntry>,
    pub transports: HashMap<TransportId, TransportInfo>,
    /// Local ICE ufrag → owning worker, for datagrams that reach another worker's socket.
    pub ufrags: HashMap<String, usize>,
    /// Stream names a GB28181 ingest holds until its codecs are known (then it is in
    /// `streams`), with the ingest's id.
    pub reserved: HashMap<String, TransportId>,
}

impl Registry {
    /// The worker with the fewest transports.
    pub fn least_loaded(&self, workers: usize) -> usize {
        let mut load = vec![0usize; workers];
        for t in self.transports.values() {
            if let Some(l) = load.get_mut(t.worker) {
                *l += 1;
            }
        }
        load.iter()
            .enumerate()
            .min_by_key(|(_, l)| **l)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Whether a publisher may not take `stream`: it is live, or reserved by a GB28181 ingest.
    pub fn name_taken(&self, stream: &str) -> bool {
        self.streams.contains_key(stream) || self.reserved.contains_key(stream)
    }

    /// Forgets a transport; returns its info. A publisher's stream (or reservation) goes with it.
    pub fn remove_transport(&mut self, id: TransportId) -> Option<TransportInfo> {
        let info = self.transports.remove(&id)?;
        self.ufrags.remove(&info.ufrag);
        if !info.publisher {
            if let Some(s) = self.streams.get_mut(&info.stream) {
                for t in &mut s.transcoded {
                    t.players.remove(&id);
                }
            }
        }
        if info.publisher {
            if let Some(s) = self.streams.get(&info.stream) {
                if s.producer == id {
                    self.streams.remove(&info.stream);
                }
            }
            if self.reserved.get(&info.stream) == Some(&id) {
                self.reserved.remove(&info.stream);
            }
        }
        Some(info)
    }
}

impl Registry {
    /// A GB28181 ingest's reservation of `stream` becomes a live stream with `tracks`. False
    /// (nothing changes) when the reservation is not `id`'s any more: the ingest was closed
    /// meanwhile and its close is on the way.
    pub fn go_live(
        &mut self,
        stream: &str,
        id: TransportId,
        worker: usize,
        tracks: Vec<ProducerTrack>,
    ) -> bool {
        if self.reserved.get(stream) != Some(&id) {
            return false;
        }
        self.reserved.remove(stream);
        self.streams
            .insert(stream.to_string(), StreamEntry::new(worker, id, tracks));
        true
    }
}

/// Codec names as the control plane shows them (`video/H264`).
pub(crate) fn codec_names(tracks: &[ProducerTrack]) -> Vec<String> {
    tracks
        .iter()
        .map(|t| format!("{}/{}", t.kind.as_str(), t.codec.name.encoding_name()))
        .collect()
}
