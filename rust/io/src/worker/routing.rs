//! The worker's router and the control plane: lending the router with its output [`Out`], and
//! turning the router's events (a producer started, its parameter sets) into control-plane
//! events named by stream.

use std::sync::Arc;

use pms_core::media::{ProducerTrack, TransportId as PeerId};
use pms_core::router::{Router, RouterEvent};

use super::peer::{MediaOut, MediaSink, Out, Parts, Table};
use super::shared::Shared;
use crate::events::Event;

/// Runs `f` with the router and its output borrowed together; `me` is the running peer (out
/// of the table). What it batches leaves at the end of the poll iteration.
pub(super) fn with_router<'a, R>(
    peers: &'a mut Table,
    parts: &'a mut Parts,
    me: Option<(PeerId, &'a mut dyn MediaSink)>,
    f: impl FnOnce(&mut Router, &mut Out<'_>) -> R,
) -> R {
    let Parts {
        router,
        socket,
        batch,
        counters,
        flush,
        shared,
        ..
    } = parts;
    let shared_gso = shared.udp_gso.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = Out {
        peers,
        me,
        media: MediaOut {
            to: 0,
            socket,
            batch,
            counters,
            flush,
            shared_gso,
        },
    };
    f(router, &mut out)
}

/// Turns the router's events into control-plane events.
pub(super) fn router_events(router: &mut Router, peers: &Table, shared: &Shared) {
    while let Some(ev) = router.poll_event() {
        match ev {
            RouterEvent::ProducerStarted { producer } => {
                let Some((stream, tracks)) = producer_stream(peers, shared, producer) else {
                    continue;
                };
                let codecs = tracks
                    .map(|t| crate::registry::codec_names(&t))
                    .unwrap_or_default();
                shared
                    .events
                    .push(Event::ProducerStarted { stream, codecs });
            }
            RouterEvent::ParameterSets {
                producer,
                track,
                nals,
            } => {
                let Some((stream, tracks)) = producer_stream(peers, shared, producer) else {
                    continue;
                };
                let codec = tracks
                    .and_then(|t| {
                        t.get(track)
                            .map(|t| t.codec.name.encoding_name().to_string())
                    })
                    .unwrap_or_default();
                shared.events.push(Event::ParameterSets {
                    stream,
                    codec,
                    nals,
                });
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// The stream name of peer `producer` and, once the stream is live in the registry, its
/// tracks. `None` for a peer this worker does not have.
fn producer_stream(
    peers: &Table,
    shared: &Shared,
    producer: PeerId,
) -> Option<(String, Option<Arc<Vec<ProducerTrack>>>)> {
    let stream = peers.get(&producer)?.info.stream.clone()?;
    let tracks = shared
        .registry()
        .streams
        .get(&stream)
        .map(|s| Arc::clone(&s.tracks));
    Some((stream, tracks))
}
