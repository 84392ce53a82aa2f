//! The WebRTC commands of [`Engine`]: SDP offer → answer, a new transport, and its
//! [`WebRtcPeer`] handed to its worker. No packet passes here.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::Instant;

use pms_core::media::TransportId;
use pms_core::sdp::{self, AnswerContext, RemoteParams, SdpError};
use pms_core::transport::WebRtcTransport;

use super::transcode::answer_with_plan;
use super::{random_string, Engine, EngineError};
use crate::peers::webrtc::WebRtcPeer;
use crate::registry::{Registry, StreamEntry, TransportInfo};
use crate::worker::PeerInfo;

/// A negotiated transport, registered but not yet handed to its worker.
struct Negotiated<T> {
    id: TransportId,
    answer: String,
    tracks: T,
    transport: Box<WebRtcTransport>,
}

impl Engine {
    /// What publish and play share: fresh ICE credentials, the answer from `answer_fn`, the
    /// transport, and its entries in the registry (`reg` stays locked throughout, so two
    /// publishers of one name cannot both pass the check made before).
    fn negotiate<T>(
        &self,
        reg: &mut MutexGuard<'_, Registry>,
        worker: usize,
        stream: &str,
        publisher: bool,
        max_bitrate: u32,
        answer_fn: impl FnOnce(&AnswerContext) -> Result<(String, T, RemoteParams), SdpError>,
    ) -> Result<Negotiated<T>, EngineError> {
        let (ufrag, pwd) = (random_string(8), random_string(24));
        let candidates = self.candidates(worker);
        let ctx = AnswerContext {
            ice_ufrag: &ufrag,
            ice_pwd: &pwd,
            fingerprint: self.identity.fingerprint(),
            candidates: &candidates,
            max_bitrate,
        };
        let (answer, tracks, remote) = answer_fn(&ctx).map_err(EngineError::Sdp)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let transport = WebRtcTransport::new(
            id,
            ufrag.clone(),
            pwd,
            remote,
            &self.identity,
            Instant::now(),
            self.connect_timeout,
        )
        .map_err(|e| EngineError::Internal(format!("cannot create the transport: {e}")))?;
        reg.transports.insert(
            id,
            TransportInfo {
                worker,
                stream: stream.to_string(),
                publisher,
                ufrag: ufrag.clone(),
                muted: (false, false),
                rtsp: false,
                announce_map: Vec::new(),
            },
        );
        reg.ufrags.insert(ufrag, worker);
        Ok(Negotiated {
            id,
            answer,
            tracks,
            transport: Box::new(transport),
        })
    }

    /// Accepts a publisher's offer for `stream`.
    pub fn create_publisher(
        &self,
        stream: &str,
        offer: &str,
        max_bitrate: u32,
    ) -> Result<(TransportId, String), EngineError> {
        let mut reg = self.shared.registry();
        if reg.name_taken(stream) {
            return Err(EngineError::Conflict(format!(
                "stream {stream:?} is already published"
            )));
        }
        let worker = reg.least_loaded(self.shared.workers().len());
        let n = self.negotiate(&mut reg, worker, stream, true, max_bitrate, |ctx| {
            sdp::answer_publisher(offer, ctx)
        })?;
        reg.streams.insert(
            stream.to_string(),
            StreamEntry::new(worker, n.id, n.tracks.clone()),
        );
        drop(reg);
        let peer = WebRtcPeer::publisher(n.transport, n.tracks, max_bitrate);
        self.add_peer(
            worker,
            n.id,
            PeerInfo::transport(stream, true),
            Box::new(peer),
        );
        Ok((n.id, n.answer))
    }

    /// Accepts a player's offer for the live `stream`.
    pub fn create_player(
        &self,
        stream: &str,
        offer: &str,
    ) -> Result<(TransportId, String), EngineError> {
        let mut reg = self.shared.registry();
        let Some(entry) = reg.streams.get(stream) else {
            return Err(EngineError::NotFound(format!(
                "stream {stream:?} is not live"
            )));
        };
        let (worker, producer, source) = (entry.worker, entry.producer, entry.tracks.clone());
        let plan = self.transcode_plan(&reg, stream);
        let n = self.negotiate(&mut reg, worker, stream, false, 0, |ctx| {
            answer_with_plan(offer, &source, plan.as_ref(), ctx)
        })?;
        let (tracks, transcoded) = n.tracks;
        if let (true, Some(plan)) = (transcoded, plan) {
            self.transcode_join(&mut reg, stream, n.id, plan);
        }
        drop(reg);
        let peer = WebRtcPeer::player(n.transport, producer, tracks);
        self.add_peer(
            worker,
            n.id,
            PeerInfo::transport(stream, false),
            Box::new(peer),
        );
        Ok((n.id, n.answer))
    }
}
