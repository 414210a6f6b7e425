//! A session's send queue: what the node actor has handed a connection and
//! the connection has not taken out yet, bounded by bytes.
//!
//! The actor must never wait for a peer, so putting a message in never
//! blocks; and it must never drop one, or the peer's table would be
//! silently wrong while the engine believes it was sent. What a bound can
//! do is end the session: a message that would take the queue past
//! `session.maxQueuedBytes` is not queued, the queue is marked full and
//! the connection is told to end with `send_queue_full` (its routes are
//! withdrawn as for any abnormal end; the peer gets a fresh table when it
//! reconnects), as BGP daemons reset a peer that does not keep up.
//!
//! Routing messages come in encoded, each frame behind its length prefix
//! (`codec::encode_routing`), and are kept as one run of bytes per step
//! ([`SendQueue::push_frame`]): the connection writes them as they are,
//! with no work per message, and the actor, which made the messages,
//! also frees them (on the connection's thread every message cost a
//! free of memory another thread had written, and a reference count
//! taken in turns with the engine). Other items go in as they are.
//!
//! Bytes are the wire size of what is queued: exact for routing frames,
//! an upper bound computed without encoding for other items
//! (`link_state_wire_size`). The actor counts what it put in; the
//! connection counts what it took out in an atomic that only it writes,
//! and the actor reads that only when the bound seems reached, so the
//! common path costs an addition on each side.
//!
//! What the actor puts in during one of its steps is staged and handed
//! over at once when the step ends ([`SendQueue::hand_over`]): one channel
//! send and at most one wake-up of the connection per step, and the
//! connection writes the step's messages with one flush. Handed over one
//! by one, a connection on another CPU took each message as it came and
//! wrote it with a system call of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use tokio::sync::{Notify, mpsc};

use crate::runtime::transport::Outbound;
use fabric_core::message::SignatureBlock;
use fabric_link_state::LinkStateUpdate;

/// State both ends see.
#[derive(Debug, Default)]
struct Shared {
    /// Bytes the connection has taken out, ever.
    taken: AtomicU64,
    /// Woken once, when the queue overflows.
    overflowed: Notify,
}

/// Bytes of routing frames staged as one item at most (one frame above it
/// is staged alone): what the connection writes to its socket at once.
const FRAMES_CHUNK: usize = 64 * 1024;

/// Items handed over together, and their bytes.
type Handed = (Vec<Outbound>, u64);

/// The actor's end.
#[derive(Debug)]
pub struct SendQueue {
    tx: mpsc::UnboundedSender<Handed>,
    shared: Arc<Shared>,
    /// Put in and not handed over yet.
    staged: Vec<Outbound>,
    /// Routing frames put in after the last staged item, one after the
    /// other: staged as one item once `FRAMES_CHUNK` long, before the next
    /// item of another kind, or at the hand-over. Split off when staged, so
    /// that the allocation comes back for the next frames once the
    /// connection has written them (`BytesMut::reserve` reclaims it), and
    /// never grown with frames in it (which copied every frame of a
    /// table's slice again at each doubling).
    frames: BytesMut,
    staged_bytes: u64,
    /// Bytes put in, ever (staged ones included).
    put: u64,
    /// The last reading of `shared.taken`: `put - taken_seen` is at least
    /// what is queued now.
    taken_seen: u64,
    full: bool,
}

/// The connection's end.
#[derive(Debug)]
pub struct SendQueueReceiver {
    rx: mpsc::UnboundedReceiver<Handed>,
    shared: Arc<Shared>,
}

/// Why an item was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This item would have taken the queue past the bound: the queue is
    /// full from now on and the connection was told to end.
    Overflowed { queued: u64 },
    /// The queue overflowed before; the session is ending.
    Full,
}

pub fn send_queue() -> (SendQueue, SendQueueReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let queue = SendQueue {
        tx,
        shared: shared.clone(),
        staged: Vec::new(),
        frames: BytesMut::new(),
        staged_bytes: 0,
        put: 0,
        taken_seen: 0,
        full: false,
    };
    (queue, SendQueueReceiver { rx, shared })
}

impl SendQueue {
    /// Stages `item`, charged `bytes`, unless the queue would then hold
    /// more than `limit` bytes; [`hand_over`](Self::hand_over) passes it on.
    /// A closed connection takes nothing: the item is dropped, as the
    /// session's end is on its way to the actor.
    pub fn push(&mut self, item: Outbound, bytes: u64, limit: u64) -> Result<(), Refused> {
        self.admit(bytes, limit)?;
        self.stage_frames();
        self.staged.push(item);
        Ok(())
    }

    /// Stages one routing frame, length prefix included
    /// (`codec::encode_routing`), charged its length, on the terms of
    /// [`push`](Self::push).
    pub fn push_frame(&mut self, frame: &[u8], limit: u64) -> Result<(), Refused> {
        self.admit(frame.len() as u64, limit)?;
        if self.frames.capacity() - self.frames.len() < frame.len() {
            self.stage_frames();
            self.frames.reserve(FRAMES_CHUNK.max(frame.len()));
        }
        self.frames.extend_from_slice(frame);
        Ok(())
    }

    /// Counts `bytes` in, unless they would take the queue past `limit`.
    fn admit(&mut self, bytes: u64, limit: u64) -> Result<(), Refused> {
        if self.full {
            return Err(Refused::Full);
        }
        if (self.put - self.taken_seen).saturating_add(bytes) > limit {
            self.taken_seen = self.shared.taken.load(Ordering::Relaxed);
            let queued = self.put - self.taken_seen;
            if queued.saturating_add(bytes) > limit {
                self.full = true;
                // What was staged before the overflow still goes out, as
                // it would have one by one; the connection is ending.
                self.hand_over();
                self.shared.overflowed.notify_one();
                return Err(Refused::Overflowed { queued });
            }
        }
        self.put += bytes;
        self.staged_bytes += bytes;
        Ok(())
    }

    fn stage_frames(&mut self) {
        if !self.frames.is_empty() {
            self.staged.push(Outbound::Frames(self.frames.split().freeze()));
        }
    }

    /// Passes what was staged to the connection, in one piece.
    pub fn hand_over(&mut self) {
        self.stage_frames();
        if !self.staged.is_empty() {
            let items = std::mem::take(&mut self.staged);
            let _ = self.tx.send((items, std::mem::take(&mut self.staged_bytes)));
        }
    }

    /// Queues a close after what is staged, whatever the bound: it is
    /// small and the last item.
    pub fn close(&mut self, reason: String, restarting: bool) {
        self.hand_over();
        let _ = self.tx.send((vec![Outbound::Close { reason, restarting }], 0));
    }

    /// Bytes queued now, staged ones included.
    pub fn queued_bytes(&self) -> u64 {
        self.put - self.shared.taken.load(Ordering::Relaxed)
    }
}

impl SendQueueReceiver {
    /// The next items handed over together, in order.
    pub async fn recv(&mut self) -> Option<Vec<Outbound>> {
        let handed = self.rx.recv().await?;
        Some(self.taken(handed))
    }

    pub fn try_recv(&mut self) -> Option<Vec<Outbound>> {
        let handed = self.rx.try_recv().ok()?;
        Some(self.taken(handed))
    }

    fn taken(&self, (items, bytes): Handed) -> Vec<Outbound> {
        self.shared.taken.fetch_add(bytes, Ordering::Relaxed);
        items
    }

    /// Resolves once the actor found the queue full (at once if it already
    /// did), whatever the connection is waiting for meanwhile.
    pub fn overflow_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move { shared.overflowed.notified().await }
    }
}

// Upper bounds of protobuf overheads (`wire::schema`): a length-delimited
// field (string, bytes, nested message) is a tag and a varint length of at
// most 3 bytes for anything below `maxMessageBytes`; a scalar at most 11.
const FIELD: u64 = 4;
/// Length prefix (4), envelope version and body header.
const FRAME: u64 = 4 + 6 + FIELD;

fn strings<'a>(texts: impl IntoIterator<Item = &'a str>) -> u64 {
    texts.into_iter().map(|text| text.len() as u64 + FIELD).sum()
}

fn signature(block: Option<&SignatureBlock>) -> u64 {
    // Nested message: algorithm name (short), key id, 64 signature bytes.
    block.map_or(0, |block| FIELD + (16 + FIELD) + strings([block.key_id.as_str()]) + 64 + FIELD)
}

/// At least the bytes `update` takes on the wire, length prefix included
/// (scalars are counted at their largest), and not much more.
pub fn link_state_wire_size(update: &LinkStateUpdate) -> u64 {
    // cost, latency, reliability
    let metrics = 6 + 6 + 5;
    let links: u64 = update.links.iter().map(|link| FIELD + strings([link.neighbor.as_str()]) + metrics).sum();
    let summary = update.summary.as_ref().map_or(0, |summary| {
        FIELD
            + summary
                .entries
                .iter()
                .map(|entry| FIELD + strings([entry.destination.as_str(), entry.source_area.as_str()]) + metrics)
                .sum::<u64>()
            + summary
                .destinations
                .iter()
                .map(|entry| {
                    FIELD
                        + strings([entry.name.as_str(), entry.source_area.as_str()])
                        + 6
                        + strings(entry.tags.iter().map(|tag| tag.as_str()))
                })
                .sum::<u64>()
    });
    // name, metric, tags
    let destinations: u64 = update
        .destinations
        .iter()
        .map(|d| FIELD + strings([d.name.as_str()]) + 6 + strings(d.tags.iter().map(|tag| tag.as_str())))
        .sum();
    // sequence, TTL
    FRAME
        + strings([update.origin.as_str(), update.area.as_str()])
        + 11
        + 6
        + links
        + summary
        + destinations
        + signature(update.signature.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fabric_core::wire;
    use fabric_link_state::{AreaSummary, DestinationAdvert, LinkAdvert, SummaryDestination, SummaryEntry};

    /// The length-prefixed frame, as the connection writes it.
    fn framed_len(encoded: usize) -> u64 {
        encoded as u64 + 4
    }

    #[test]
    fn the_estimate_bounds_the_encoding_from_above_and_closely() {
        let update = LinkStateUpdate {
            origin: "node-0".into(),
            area: "backbone".into(),
            sequence: u64::MAX,
            ttl_ms: u32::MAX,
            links: (0..8)
                .map(|i| LinkAdvert { neighbor: format!("node-{i}").into(), cost: 10, latency_us: 5, reliability: 0.9 })
                .collect(),
            summary: Some(AreaSummary {
                entries: vec![SummaryEntry {
                    destination: "far".into(),
                    source_area: "edge".into(),
                    cost: 3,
                    latency_us: 1,
                    reliability: 1.0,
                }],
                destinations: vec![SummaryDestination {
                    name: "edge-svc".into(),
                    source_area: "edge".into(),
                    cost: 4,
                    tags: vec!["t1".into(), "t2".into()],
                }],
            }),
            destinations: (0..4)
                .map(|i| DestinationAdvert { name: format!("svc-{i}").into(), metric: 7, tags: vec!["eu".into()] })
                .collect(),
            signature: None,
        };
        let mut buf = Vec::new();
        wire::encode_link_state_update(&update, &mut buf);
        let (actual, estimate) = (framed_len(buf.len()), link_state_wire_size(&update));
        assert!(estimate >= actual && estimate <= actual * 3 / 2 + 64, "{estimate} for {actual}");
    }

    fn item() -> Outbound {
        Outbound::Close { reason: "an item".into(), restarting: false }
    }

    /// Takes everything handed over so far, in order.
    fn drain(rx: &mut SendQueueReceiver) -> Vec<Outbound> {
        std::iter::from_fn(|| rx.try_recv()).flatten().collect()
    }

    #[tokio::test]
    async fn past_the_bound_the_queue_refuses_once_signals_and_stays_full() {
        let (mut queue, mut rx) = send_queue();
        let overflowed = rx.overflow_signal();
        for _ in 0..10 {
            queue.push(item(), 100, 1_000).unwrap();
        }
        assert_eq!(queue.queued_bytes(), 1_000, "staged items count");
        assert!(rx.try_recv().is_none(), "nothing is handed over before the step ends");
        queue.hand_over();
        // What the connection took out makes room again.
        assert_eq!(rx.recv().await.map(|items| items.len()), Some(10), "one step, one hand-over");
        assert_eq!(queue.queued_bytes(), 0);
        for _ in 0..8 {
            queue.push(item(), 100, 1_000).unwrap();
        }
        queue.push(item(), 200, 1_000).unwrap();
        assert_eq!(queue.push(item(), 1, 1_000), Err(Refused::Overflowed { queued: 1_000 }));
        assert_eq!(queue.queued_bytes(), 1_000, "the refused item is not queued");
        tokio::time::timeout(std::time::Duration::from_secs(1), overflowed).await.expect("signalled");
        assert_eq!(drain(&mut rx).len(), 9, "what was staged before the overflow is handed over");
        // Full for good, even once drained: the session is ending.
        assert_eq!(queue.push(item(), 1, 1_000), Err(Refused::Full));
        queue.close("bye".into(), false);
        assert!(matches!(drain(&mut rx)[..], [Outbound::Close { .. }]), "a close still goes in");
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn frames_go_over_in_runs_between_other_items_and_a_close_follows_them() {
        let (mut queue, mut rx) = send_queue();
        queue.push_frame(b"one", 1_000).unwrap();
        queue.push_frame(b"two", 1_000).unwrap();
        queue.push(item(), 10, 1_000).unwrap();
        queue.push_frame(b"three", 1_000).unwrap();
        assert_eq!(queue.queued_bytes(), 3 + 3 + 10 + 5, "frames count their exact length");
        queue.close("restarting".into(), true);
        let items = drain(&mut rx);
        let [
            Outbound::Frames(first),
            Outbound::Close { .. },
            Outbound::Frames(second),
            Outbound::Close { restarting: true, .. },
        ] = &items[..]
        else {
            panic!("{items:?}")
        };
        assert_eq!((&first[..], &second[..]), (&b"onetwo"[..], &b"three"[..]));
        assert_eq!(queue.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_frame_past_the_bound_is_refused_and_what_came_before_goes_out() {
        let (mut queue, mut rx) = send_queue();
        queue.push_frame(&[1; 600], 1_000).unwrap();
        assert_eq!(queue.push_frame(&[2; 600], 1_000), Err(Refused::Overflowed { queued: 600 }));
        let items = drain(&mut rx);
        assert!(matches!(&items[..], [Outbound::Frames(frames)] if frames[..] == [1; 600]), "{items:?}");
        assert_eq!(queue.push_frame(b"x", 1_000), Err(Refused::Full));
    }

    #[tokio::test]
    async fn frames_are_staged_in_chunks_that_never_grow_with_frames_in_them() {
        let (mut queue, mut rx) = send_queue();
        let frame = [9u8; 1000];
        let count = 3 * FRAMES_CHUNK / frame.len();
        for _ in 0..count {
            queue.push_frame(&frame, u64::MAX).unwrap();
        }
        queue.hand_over();
        let items = drain(&mut rx);
        let chunks: Vec<usize> = items
            .iter()
            .map(|item| match item {
                Outbound::Frames(frames) => frames.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(chunks.iter().all(|&len| len <= FRAMES_CHUNK && len % frame.len() == 0), "{chunks:?}");
        assert_eq!(chunks.iter().sum::<usize>(), count * frame.len(), "every frame, once, in order");
        assert!(chunks.len() >= 3, "{chunks:?}");
        // A frame longer than a chunk goes alone.
        queue.push_frame(&[1], u64::MAX).unwrap();
        queue.push_frame(&vec![2; FRAMES_CHUNK + 1], u64::MAX).unwrap();
        queue.hand_over();
        let lengths: Vec<usize> =
            drain(&mut rx).iter().map(|item| if let Outbound::Frames(f) = item { f.len() } else { 0 }).collect();
        assert_eq!(lengths, [1, FRAMES_CHUNK + 1]);
    }

    #[tokio::test]
    async fn a_chunk_s_allocation_is_reused_once_the_connection_wrote_it() {
        let (mut queue, mut rx) = send_queue();
        let address = |items: &[Outbound]| match &items[0] {
            Outbound::Frames(frames) => frames.as_ptr(),
            other => panic!("{other:?}"),
        };
        // Almost a whole chunk, written (dropped) by the connection.
        queue.push_frame(&vec![1; FRAMES_CHUNK - 10], u64::MAX).unwrap();
        queue.hand_over();
        let written = drain(&mut rx);
        let first = address(&written);
        drop(written);
        // The next frame does not fit the rest: the whole allocation again.
        queue.push_frame(&[2; 100], u64::MAX).unwrap();
        queue.hand_over();
        let held = drain(&mut rx);
        assert_eq!(address(&held), first, "the same allocation");
        // Not yet written: the next chunk needs memory of its own.
        queue.push_frame(&vec![3; FRAMES_CHUNK - 10], u64::MAX).unwrap();
        queue.hand_over();
        assert_ne!(address(&drain(&mut rx)), first);
    }

    #[tokio::test]
    async fn the_signal_is_not_given_below_the_bound_nor_when_the_actor_drops_its_end() {
        let (mut queue, rx) = send_queue();
        let overflowed = rx.overflow_signal();
        queue.push(item(), 1_000, 1_000).unwrap();
        drop(queue);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), overflowed).await;
        assert!(waited.is_err(), "no overflow signalled");
    }
}
