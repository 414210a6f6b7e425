//! One peer connection: length-delimited frames over TCP (or TLS), driven
//! by the sans-IO `Session`. Received routing messages and link-state
//! updates go to the node actor in batches (so signatures can be
//! batch-verified and a burst of updates costs one SPF run); messages from
//! the actor are written with one flush per burst. Reading and writing run
//! at once, and the actor's bounded send queue (`send_queue`) can end the
//! session even while a write waits for the peer.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use crate::runtime::codec::{self, OutFrame, SessionCodec};
use crate::runtime::inbound::{Batch, InFlight, Inbound, MAX_BATCH};
use crate::runtime::node::{Command, NeighborSet, SessionVerdict};
use crate::runtime::send_queue::{SendQueueReceiver, send_queue};
use crate::runtime::tls::PeerIdentity;
use fabric_core::ids::NodeId;
use fabric_core::session::{Received, Session, SessionError, SessionSettings};
use fabric_core::time::Timestamp;
use fabric_core::wire::{self, DecodeLimits, Frame};
use fabric_core::wire_routing;
use fabric_io::clock;
use fabric_link_state::LinkStateUpdate;

pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}
pub(super) type BoxedStream = Box<dyn AsyncStream>;

/// What the actor sends to a connection. A link-state update is shared by
/// every neighbor it is flooded to.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// Routing frames, each behind its length prefix (`codec::encode_routing`).
    Frames(Bytes),
    LinkState(Arc<LinkStateUpdate>),
    Close {
        reason: String,
        restarting: bool,
    },
}

/// Bytes read from the socket at once, and written to it at once when the
/// actor queues faster than the socket takes: a table transfer moves in
/// chunks of hundreds of messages, not tens.
const SOCKET_BUFFER: usize = 64 * 1024;

/// How long a close frame this end sends on an error may wait for the
/// peer to read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Connection {
    pub id: u64,
    pub local: NodeId,
    /// The neighbor we dialed; `None` for accepted connections.
    pub expected: Option<NodeId>,
    pub settings: SessionSettings,
    pub limits: DecodeLimits,
    pub neighbors: NeighborSet,
    pub actor: mpsc::Sender<Command>,
    /// The certificate of an accepted TLS peer: the hello must claim a node
    /// id it names.
    pub identity: Option<PeerIdentity>,
}

/// How a connection ended.
#[derive(Debug)]
pub(super) struct Ended {
    pub reason: String,
    /// One of [`fabric_core::session::SESSION_END_REASONS`], for counting.
    pub label: &'static str,
    /// Keep the peer's routes as stale (graceful restart) rather than
    /// withdrawing them.
    pub keep_routes: bool,
}

impl Ended {
    fn from_session(error: SessionError) -> Self {
        Self { keep_routes: error.keeps_routes(), label: error.label(), reason: error.to_string() }
    }

    /// The session ended without an announced restart (a reset, EOF, a
    /// read error, a protocol violation): the peer's routes are withdrawn
    /// at once.
    fn lost(label: &'static str, reason: String) -> Self {
        Self { reason, label, keep_routes: false }
    }

    /// A read that failed: a reset, a frame above the size limit, or
    /// another I/O error.
    fn read(error: &std::io::Error) -> Self {
        let label = match error.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => "connection_reset",
            std::io::ErrorKind::InvalidData if error.to_string().contains("frame size too big") => "frame_too_large",
            std::io::ErrorKind::UnexpectedEof => "eof",
            _ => "read_error",
        };
        Self::lost(label, format!("read: {error}"))
    }
}

fn encode(frame: &Frame) -> OutFrame {
    let mut buf = Vec::with_capacity(128);
    wire::encode_frame(frame, &mut buf);
    OutFrame::Encoded(Bytes::from(buf))
}

/// The frame of a link-state update, or `None` when it is above this node's
/// `maxMessageBytes`: the codec would refuse to write it and end the
/// session, and a peer with the same limit would refuse to read it.
fn encode_link_state(update: &LinkStateUpdate, limits: &DecodeLimits) -> Option<OutFrame> {
    let mut buf = Vec::with_capacity(256);
    wire::encode_link_state_update(update, &mut buf);
    if buf.len() > limits.max_message_bytes {
        tracing::warn!(
            origin = %update.origin, area = %update.area, sequence = update.sequence, bytes = buf.len(),
            limit = limits.max_message_bytes, "link-state update above limits.maxMessageBytes; not sent"
        );
        return None;
    }
    Some(OutFrame::Encoded(Bytes::from(buf)))
}

/// The end of a session whose send queue overflowed: the peer does not
/// read fast enough. A close frame goes out only if the socket takes it at
/// once; the connection is dropped either way.
fn send_queue_full(framed: &mut Framed<BoxedStream, SessionCodec>) -> Ended {
    let reason = "send queue full: the peer does not read fast enough (session.maxQueuedBytes)".to_string();
    let close = encode(&Frame::Close { reason: reason.clone(), restarting: false });
    let _ = framed.send(close).now_or_never();
    Ended::lost("send_queue_full", reason)
}

/// After this end sent its close frame: half-closes the connection and
/// reads (and drops) what the peer still sends until it closes too, at most
/// `CLOSE_TIMEOUT`. A socket closed with unread data in its receive buffer
/// (a keepalive, say) sends a reset instead of a FIN, and the peer's kernel
/// may then drop the close frame before the peer reads it: the peer would
/// see a lost connection instead of, for instance, an announced restart.
async fn linger(framed: &mut Framed<BoxedStream, SessionCodec>) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = framed.get_mut().shutdown().await;
        while let Some(Ok(_)) = framed.next().await {}
    })
    .await;
}

impl Connection {
    /// Runs the connection to its end and tells the actor. Returns whether
    /// the session was established.
    pub(super) async fn run(self, stream: BoxedStream) -> bool {
        let mut framed = Framed::with_capacity(stream, SessionCodec::new(&self.limits), SOCKET_BUFFER);
        framed.set_backpressure_boundary(SOCKET_BUFFER);
        let mut session = Session::new(self.local.clone(), self.expected.clone(), self.settings, clock::now());
        let (peer, ended) = match self.handshake(&mut framed, &mut session).await {
            Ok(Some((peer, outbound))) => {
                // Also while a write waits for a peer that does not read.
                let overflowed = outbound.overflow_signal();
                let ended = tokio::select! {
                    ended = self.established(&mut framed, session, &peer, outbound) => ended,
                    () = overflowed => send_queue_full(&mut framed),
                };
                (Some(peer), ended)
            }
            Ok(None) => return false,
            Err(ended) => (None, ended),
        };
        match peer {
            Some(peer) => {
                let down = Command::SessionDown {
                    conn: self.id,
                    peer,
                    keep_routes: ended.keep_routes,
                    reason: ended.reason,
                    label: ended.label,
                };
                let _ = self.actor.send(down).await;
                true
            }
            None => {
                tracing::info!(conn = self.id, reason = %ended.reason, label = ended.label, "session failed before hello");
                let failed = Command::SessionFailed {
                    expected: self.expected.clone(),
                    label: ended.label,
                    reason: ended.reason,
                };
                let _ = self.actor.send(failed).await;
                false
            }
        }
    }

    /// Hello exchange; then asks the actor to register the session.
    /// `Ok(None)` when the actor refused it (collision).
    async fn handshake(
        &self,
        framed: &mut Framed<BoxedStream, SessionCodec>,
        session: &mut Session,
    ) -> Result<Option<(NodeId, SendQueueReceiver)>, Ended> {
        let hello = session.hello(clock::now());
        framed.send(encode(&hello)).await.map_err(|e| Ended::lost("write_error", format!("write: {e}")))?;
        let deadline = tokio::time::Instant::now() + session.hold_time();
        let frame = tokio::select! {
            frame = framed.next() => frame,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Ended::lost("no_hello", "no hello within the hold time".into()));
            }
        };
        let bytes = match frame {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Err(Ended::read(&e)),
            None => return Err(Ended::lost("eof", "closed before hello".into())),
        };
        let frame =
            wire::decode_frame(&bytes, &self.limits).map_err(|e| Ended::lost("malformed_frame", e.to_string()))?;
        let neighbors = self.neighbors.clone();
        let peer = match session.on_frame(clock::now(), frame, |id| neighbors.contains(id)) {
            Ok(Received::Established { peer }) if self.identity.as_ref().is_some_and(|id| !id.names(&peer)) => {
                let reason = format!("the peer's certificate does not name {peer}, the node id its hello claims");
                let _ = framed.send(encode(&Frame::Close { reason: reason.clone(), restarting: false })).await;
                return Err(Ended::lost("identity_mismatch", reason));
            }
            Ok(Received::Established { peer }) => peer,
            Ok(_) => return Err(Ended::lost("malformed_frame", "unexpected frame before hello".into())),
            Err(error) => {
                let _ = framed.send(encode(&Frame::Close { reason: error.to_string(), restarting: false })).await;
                return Err(Ended::from_session(error));
            }
        };
        let (tx, rx) = send_queue();
        let (reply, accepted) = oneshot::channel();
        let up = Command::SessionUp {
            conn: self.id,
            peer: peer.clone(),
            dialed: self.expected.is_some(),
            outbound: tx,
            reply,
        };
        if self.actor.send(up).await.is_err() {
            return Ok(None);
        }
        let (reason, restarting) = match accepted.await {
            Ok(SessionVerdict::Accepted) => return Ok(Some((peer, rx))),
            Ok(SessionVerdict::ShuttingDown { restarting }) => ("node shutting down", restarting),
            Ok(SessionVerdict::Collision) | Err(_) => ("duplicate session (collision)", false),
        };
        let close = Frame::Close { reason: reason.into(), restarting };
        let _ = framed.send(encode(&close)).await;
        linger(framed).await;
        Ok(None)
    }

    /// The established session: reading and writing run at once, so a
    /// write that waits for the peer to read never stops this end from
    /// reading (two nodes sending each other tables larger than the socket
    /// buffers would otherwise wait on each other for ever).
    async fn established(
        &self,
        framed: &mut Framed<BoxedStream, SessionCodec>,
        session: Session,
        peer: &NodeId,
        outbound: SendQueueReceiver,
    ) -> Ended {
        // Both loops use the session: the reader for what arrives and the
        // hold timer, the writer for what it sent and the keepalives.
        let shared = Mutex::new(session);
        framed.codec_mut().read_runs();
        let (sink, stream) = framed.split();
        let (ended, close) = tokio::select! {
            ended = self.write_loop(sink, outbound, &shared) => (ended, None),
            (ended, close) = self.read_loop(stream, &shared, peer) => (ended, close),
        };
        let sent_close = close.is_some() || ended.label == "closed_locally";
        if let Some(reason) = close {
            // Bounded: a peer that does not read must not keep the
            // connection (and its session) alive.
            let frame = encode(&Frame::Close { reason, restarting: false });
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, framed.send(frame)).await;
        }
        if sent_close {
            linger(framed).await;
        }
        ended
    }

    /// Reads frames and hands them to the actor in batches; runs the hold
    /// timer. Returns how the session ended and, when this end should tell
    /// the peer why, the reason for a close frame.
    ///
    /// Batches adapt to the actor: what was read goes to the actor at once
    /// while it has room (`BATCHES_IN_FLIGHT`), and keeps collecting while
    /// it is busy, up to `MAX_BATCH` messages, after which the connection
    /// stops reading until the actor takes the batch. A fast peer so meets
    /// a few large batches instead of many small ones, each of which costs
    /// the actor a wake-up and a dispatch.
    async fn read_loop(
        &self,
        mut stream: SplitStream<&mut Framed<BoxedStream, SessionCodec>>,
        session: &Mutex<Session>,
        peer: &NodeId,
    ) -> (Ended, Option<String>) {
        let inbound = Inbound::new(peer);
        let lock = || session.lock().expect("session lock");
        let mut batch = inbound.batch();
        loop {
            let hold = clock::instant_at(lock().hold_deadline());
            // A full batch waits for the actor, and so does the peer (TCP);
            // the hold timer is the peer's, so it waits too.
            let room = batch.len() < MAX_BATCH;
            tokio::select! {
                biased;
                // A batch the actor has room for goes before more reading:
                // read first, the frames waiting in the socket (up to a
                // whole batch) were decoded while the actor sat idle.
                slot = inbound.slot(), if !batch.is_empty() => {
                    self.hand_over(peer, &mut batch, &inbound, slot).await;
                }
                // Frames before the hold timer: while the actor was busy
                // with the last batch, the next ones may have waited in the
                // socket past the hold time; they were received, not missed.
                run = stream.next(), if room => {
                    // One reading of the clock per burst: its frames were
                    // all received by now.
                    let now = clock::now();
                    let mut next = Some(run);
                    while let Some(run) = next.take() {
                        let run = match run {
                            Some(Ok(run)) => run,
                            Some(Err(e)) => {
                                self.flush_batch(peer, &mut batch, &inbound).await;
                                return (Ended::read(&e), None);
                            }
                            None => {
                                self.flush_batch(peer, &mut batch, &inbound).await;
                                return (Ended::lost("eof", "connection closed by peer".into()), None);
                            }
                        };
                        for bytes in codec::frames_of(&run) {
                            // Announcements and withdrawals as encoders
                            // write them are read directly, their ids
                            // shared on the way; anything else goes through
                            // prost, which also reports the errors.
                            let Some(message) = wire_routing::decode_routing_frame(bytes, &self.limits, &mut batch.ids) else {
                                let taken = self.take_other_frame(bytes, now, peer, &mut batch, &inbound, session).await;
                                if let ControlFlow::Break(ended) = taken {
                                    return ended;
                                }
                                continue;
                            };
                            let admitted = lock().admit_routing(now);
                            if let Err(error) = admitted {
                                self.flush_batch(peer, &mut batch, &inbound).await;
                                let reason = error.to_string();
                                return (Ended::from_session(error), Some(reason));
                            }
                            batch.push(message);
                        }
                        // Each run goes to the actor as soon as it has
                        // room, while the rest is decoded.
                        if let Some(slot) = inbound.try_slot() {
                            self.hand_over(peer, &mut batch, &inbound, slot).await;
                        }
                        if batch.len() < MAX_BATCH {
                            next = stream.next().now_or_never();
                        }
                    }
                }
                _ = tokio::time::sleep_until(hold), if room => {
                    let checked = lock().check_hold_timer(clock::now());
                    if let Err(error) = checked {
                        return (Ended::from_session(error), None);
                    }
                }
            }
        }
    }

    /// Takes a frame the direct decoder did not into `batch`, through prost,
    /// or hands the actor what it says alone (a message refused on its
    /// own). `Break`: the session ends, with what `read_loop` returns.
    async fn take_other_frame(
        &self,
        bytes: &[u8],
        now: Timestamp,
        peer: &NodeId,
        batch: &mut Batch,
        inbound: &Inbound,
        session: &Mutex<Session>,
    ) -> ControlFlow<(Ended, Option<String>)> {
        let frame = match wire::decode_frame(bytes, &self.limits) {
            Ok(frame) => frame,
            Err(error) if error.is_per_message() => {
                // One bad message is refused alone (treated as a withdrawal
                // of its destination); the session and every other route
                // stay.
                self.flush_batch(peer, batch, inbound).await;
                let destination = wire::destination_of(bytes, &self.limits);
                tracing::debug!(%peer, %error, ?destination, "message refused; session kept");
                let refused = Command::MalformedMessage {
                    peer: peer.clone(),
                    conn: self.id,
                    destination,
                    detail: error.to_string(),
                };
                let _ = self.actor.send(refused).await;
                return ControlFlow::Continue(());
            }
            Err(error) => {
                self.flush_batch(peer, batch, inbound).await;
                let _ = self.actor.send(Command::Malformed { peer: peer.clone(), detail: error.to_string() }).await;
                let reason = format!("malformed frame: {error}");
                return ControlFlow::Break((Ended::lost("malformed_frame", reason.clone()), Some(reason)));
            }
        };
        let received = session.lock().expect("session lock").on_frame(now, frame, |id| self.neighbors.contains(id));
        match received {
            Ok(Received::Routing(mut message)) => {
                batch.ids.share(&mut message);
                batch.push(message);
            }
            Ok(Received::LinkState(update)) => batch.link_state.push(update),
            Ok(_) => {}
            Err(error) => {
                self.flush_batch(peer, batch, inbound).await;
                let close = (!matches!(error, SessionError::ClosedByPeer { .. })).then(|| error.to_string());
                return ControlFlow::Break((Ended::from_session(error), close));
            }
        }
        ControlFlow::Continue(())
    }

    /// Writes what the actor queues, one flush per burst (the actor hands
    /// over what one of its steps produced at once), and a keepalive when
    /// nothing was sent for a third of the hold time.
    async fn write_loop(
        &self,
        mut sink: SplitSink<&mut Framed<BoxedStream, SessionCodec>, OutFrame>,
        mut outbound: SendQueueReceiver,
        session: &Mutex<Session>,
    ) -> Ended {
        let write_error = |e: std::io::Error| Ended::lost("write_error", format!("write: {e}"));
        let lock = || session.lock().expect("session lock");
        loop {
            let keepalive_at = clock::instant_at(lock().keepalive_deadline());
            let first = tokio::select! {
                biased;
                items = outbound.recv() => match items {
                    Some(items) => items,
                    None => return Ended::lost("closed_locally", "node shutting down".into()),
                },
                _ = tokio::time::sleep_until(keepalive_at) => {
                    let keepalive = lock().keepalive(clock::now());
                    if let Some(frame) = keepalive
                        && let Err(e) = sink.send(encode(&frame)).await
                    {
                        return write_error(e);
                    }
                    continue;
                }
            };
            let mut next = Some(first);
            while let Some(items) = next.take() {
                for item in items {
                    let frame = match item {
                        Outbound::Frames(frames) => OutFrame::Framed(frames),
                        Outbound::LinkState(update) => match encode_link_state(&update, &self.limits) {
                            Some(frame) => frame,
                            None => continue,
                        },
                        Outbound::Close { reason, restarting } => {
                            let _ = sink.send(encode(&Frame::Close { reason: reason.clone(), restarting })).await;
                            return Ended { reason, label: "closed_locally", keep_routes: false };
                        }
                    };
                    if let Err(e) = sink.feed(frame).await {
                        return write_error(e);
                    }
                }
                next = outbound.try_recv();
            }
            if let Err(e) = sink.flush().await {
                return write_error(e);
            }
            lock().on_sent(clock::now());
        }
    }

    /// Hands `batch` to the actor once fewer than `BATCHES_IN_FLIGHT` of
    /// this connection's are waiting there (before anything else goes to
    /// the actor, which must see the frames in order).
    async fn flush_batch(&self, peer: &NodeId, batch: &mut Batch, inbound: &Inbound) {
        if !batch.is_empty() {
            let slot = inbound.slot().await;
            self.hand_over(peer, batch, inbound, slot).await;
        }
    }

    async fn hand_over(&self, peer: &NodeId, batch: &mut Batch, inbound: &Inbound, slot: InFlight) {
        let Batch { messages, link_state, .. } = std::mem::replace(batch, inbound.batch());
        let frames = Command::Frames { peer: peer.clone(), conn: self.id, messages, link_state, slot };
        let _ = self.actor.send(frames).await;
    }
}
