//! One peer session, sans-IO: the hello exchange, keepalives, the hold
//! timer and the per-peer message rate limit. The runtime feeds it frames
//! and the time and does what it says; the rules are tested without
//! sockets.
//!
//! A session is established when both sides have sent `Hello`; the hold time
//! is the smaller of the two proposals. Any frame resets the hold timer; a
//! keepalive is sent when nothing else was sent for a third of the hold time.

use std::time::Duration;

use crate::ids::NodeId;
use crate::link_state::LinkStateUpdate;
use crate::message::Message;
use crate::time::Timestamp;
use crate::wire::Frame;

/// Why a session ends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("first frame was not a hello")]
    NoHello,
    #[error("hello from {got}, expected {expected}")]
    WrongPeer { expected: NodeId, got: NodeId },
    #[error("{0} is not a configured neighbor")]
    UnknownPeer(NodeId),
    #[error("peer claims to be this node ({0})")]
    SelfConnection(NodeId),
    #[error("second hello on an established session")]
    DuplicateHello,
    #[error("hold time of {0:?} is below the minimum of 300ms")]
    HoldTimeTooShort(Duration),
    #[error("hold timer expired: nothing received for {0:?}")]
    HoldTimerExpired(Duration),
    #[error("more than {limit} messages per second")]
    RateLimited { limit: u32 },
    #[error("peer closed the session: {reason}")]
    ClosedByPeer { reason: String, restarting: bool },
}

impl SessionError {
    /// Whether the peer's routes stay (as stale, for the graceful-restart
    /// window) after this error: only when the peer announced a restart.
    /// A reset, an expired hold timer, a rate-limit or protocol violation
    /// withdraws them at once, so traffic moves to alternatives within a
    /// gossip interval instead of following a dead or cut-off neighbor.
    pub fn keeps_routes(&self) -> bool {
        matches!(self, SessionError::ClosedByPeer { restarting: true, .. })
    }

    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SessionError::NoHello => "no_hello",
            SessionError::WrongPeer { .. } => "wrong_peer",
            SessionError::UnknownPeer(_) => "unknown_peer",
            SessionError::SelfConnection(_) => "self_connection",
            SessionError::DuplicateHello => "duplicate_hello",
            SessionError::HoldTimeTooShort(_) => "hold_time_too_short",
            SessionError::HoldTimerExpired(_) => "hold_timer_expired",
            SessionError::RateLimited { .. } => "rate_limited",
            SessionError::ClosedByPeer { restarting: true, .. } => "restart_announced",
            SessionError::ClosedByPeer { .. } => "closed_by_peer",
        }
    }
}

/// Every reason a connection to a peer ends, established or not: the
/// labels of [`SessionError`] and of the transport's own ends. A fixed
/// set, so every one can be exported (at zero) as a metric series.
pub const SESSION_END_REASONS: &[&str] = &[
    // Protocol (SessionError::label).
    "no_hello",
    "wrong_peer",
    "unknown_peer",
    "self_connection",
    "duplicate_hello",
    "hold_time_too_short",
    "hold_timer_expired",
    "rate_limited",
    "closed_by_peer",
    // Transport.
    "restart_announced",
    "connection_reset",
    "eof",
    "read_error",
    "write_error",
    "send_queue_full",
    "frame_too_large",
    "malformed_frame",
    "closed_locally",
    // Peer TLS: a failed handshake (no, an untrusted or an expired
    // certificate), or a certificate that does not name the claimed node.
    "tls_handshake",
    "identity_mismatch",
];

/// Timers and limits of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    pub hold_time: Duration,
    /// Messages per second a peer may send, averaged over one second with
    /// a burst of the same size.
    pub max_messages_per_second: u32,
}

pub const MIN_HOLD_TIME: Duration = Duration::from_millis(300);

/// What a received frame means for the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// The hello exchange completed: the peer is up.
    Established { peer: NodeId },
    /// A routing message for the engine.
    Routing(Message),
    /// A link-state update for the link-state router.
    LinkState(LinkStateUpdate),
    /// Nothing to do (keepalive).
    Nothing,
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    AwaitingHello,
    Established { peer: NodeId },
}

/// Seconds of the sustained rate a peer may send at once: a whole-table
/// transfer after a session comes up is a legitimate burst.
pub const RATE_BURST_SECONDS: u32 = 10;

/// Token bucket refilled continuously at `rate` per second, holding up to
/// `RATE_BURST_SECONDS` worth.
#[derive(Clone, Debug)]
struct RateLimiter {
    rate: u32,
    tokens: f64,
    updated: Timestamp,
}

impl RateLimiter {
    fn capacity(&self) -> f64 {
        f64::from(self.rate) * f64::from(RATE_BURST_SECONDS)
    }

    fn new(rate: u32, now: Timestamp) -> Self {
        let mut limiter = Self { rate, tokens: 0.0, updated: now };
        limiter.tokens = limiter.capacity();
        limiter
    }

    fn admit(&mut self, now: Timestamp) -> bool {
        let elapsed = now.saturating_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(self.rate)).min(self.capacity());
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// State of one session.
#[derive(Clone, Debug)]
pub struct Session {
    local: NodeId,
    /// Set when we dialed a specific neighbor.
    expected: Option<NodeId>,
    settings: SessionSettings,
    hold_time: Duration,
    state: State,
    last_received: Timestamp,
    last_sent: Timestamp,
    limiter: RateLimiter,
}

impl Session {
    /// A new session; `expected` is the neighbor we dialed, `None` for an
    /// accepted connection.
    pub fn new(local: NodeId, expected: Option<NodeId>, settings: SessionSettings, now: Timestamp) -> Self {
        Self {
            local,
            expected,
            settings,
            hold_time: settings.hold_time,
            state: State::AwaitingHello,
            last_received: now,
            last_sent: now,
            limiter: RateLimiter::new(settings.max_messages_per_second, now),
        }
    }

    /// The frame to send first.
    pub fn hello(&mut self, now: Timestamp) -> Frame {
        self.last_sent = now;
        Frame::Hello {
            node_id: self.local.clone(),
            hold_time_ms: u32::try_from(self.settings.hold_time.as_millis()).unwrap_or(u32::MAX),
        }
    }

    pub fn peer(&self) -> Option<&NodeId> {
        match &self.state {
            State::Established { peer } => Some(peer),
            State::AwaitingHello => None,
        }
    }

    /// The negotiated hold time (ours until the hello arrived).
    pub fn hold_time(&self) -> Duration {
        self.hold_time
    }

    /// Handles one received frame. `is_neighbor` tells whether a node id is
    /// a configured neighbor.
    pub fn on_frame(
        &mut self,
        now: Timestamp,
        frame: Frame,
        is_neighbor: impl Fn(&NodeId) -> bool,
    ) -> Result<Received, SessionError> {
        self.last_received = now;
        if !self.limiter.admit(now) {
            return Err(SessionError::RateLimited { limit: self.settings.max_messages_per_second });
        }
        match (&self.state, frame) {
            (_, Frame::Close { reason, restarting }) => Err(SessionError::ClosedByPeer { reason, restarting }),
            (State::AwaitingHello, Frame::Hello { node_id, hold_time_ms }) => {
                if node_id == self.local {
                    return Err(SessionError::SelfConnection(node_id));
                }
                if let Some(expected) = &self.expected
                    && *expected != node_id
                {
                    return Err(SessionError::WrongPeer { expected: expected.clone(), got: node_id });
                }
                if !is_neighbor(&node_id) {
                    return Err(SessionError::UnknownPeer(node_id));
                }
                let proposed = Duration::from_millis(u64::from(hold_time_ms));
                if proposed < MIN_HOLD_TIME {
                    return Err(SessionError::HoldTimeTooShort(proposed));
                }
                self.hold_time = self.settings.hold_time.min(proposed);
                self.state = State::Established { peer: node_id.clone() };
                Ok(Received::Established { peer: node_id })
            }
            (State::AwaitingHello, _) => Err(SessionError::NoHello),
            (State::Established { .. }, Frame::Hello { .. }) => Err(SessionError::DuplicateHello),
            (State::Established { .. }, Frame::Keepalive) => Ok(Received::Nothing),
            (State::Established { .. }, Frame::Routing(message)) => Ok(Received::Routing(message)),
            (State::Established { .. }, Frame::LinkState(update)) => Ok(Received::LinkState(update)),
        }
    }

    /// What [`on_frame`](Self::on_frame) does with a routing message, for a
    /// caller that decoded one without building a `Frame`
    /// (`wire_routing`): it counts against the rate limit, and before the
    /// hello it ends the session.
    pub fn admit_routing(&mut self, now: Timestamp) -> Result<(), SessionError> {
        self.last_received = now;
        if !self.limiter.admit(now) {
            return Err(SessionError::RateLimited { limit: self.settings.max_messages_per_second });
        }
        match self.state {
            State::Established { .. } => Ok(()),
            State::AwaitingHello => Err(SessionError::NoHello),
        }
    }

    /// Records that a frame was sent (any frame defers the next keepalive).
    pub fn on_sent(&mut self, now: Timestamp) {
        self.last_sent = now;
    }

    fn keepalive_interval(&self) -> Duration {
        self.hold_time / 3
    }

    /// When `poll` next has something to do.
    pub fn next_deadline(&self) -> Timestamp {
        self.keepalive_deadline().min(self.hold_deadline())
    }

    /// When a keepalive is due unless something is sent first.
    pub fn keepalive_deadline(&self) -> Timestamp {
        self.last_sent + self.keepalive_interval()
    }

    /// When the hold timer expires unless something arrives first.
    pub fn hold_deadline(&self) -> Timestamp {
        self.last_received + self.hold_time
    }

    /// Timer work at `now`: `Err` when the hold timer expired, `Ok(Some)`
    /// with a keepalive to send, `Ok(None)` otherwise.
    pub fn poll(&mut self, now: Timestamp) -> Result<Option<Frame>, SessionError> {
        self.check_hold_timer(now)?;
        Ok(self.keepalive(now))
    }

    /// `Err` once nothing was received for the hold time. A transport that
    /// reads and writes independently checks this on the reading side, and
    /// only when nothing is waiting to be read.
    pub fn check_hold_timer(&self, now: Timestamp) -> Result<(), SessionError> {
        if now >= self.hold_deadline() {
            return Err(SessionError::HoldTimerExpired(self.hold_time));
        }
        Ok(())
    }

    /// A keepalive to send, when one is due at `now` (counted as sent).
    pub fn keepalive(&mut self, now: Timestamp) -> Option<Frame> {
        if matches!(self.state, State::Established { .. }) && now >= self.keepalive_deadline() {
            self.last_sent = now;
            return Some(Frame::Keepalive);
        }
        None
    }
}

/// Reconnect delays: doubling from `initial` up to `max`, with a
/// deterministic spread per (local, peer) pair so that a fabric that lost
/// a node does not reconnect in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    spread: f64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, local: &NodeId, peer: &NodeId) -> Self {
        // FNV-1a over both ids: stable across runs and platforms.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in local.as_str().bytes().chain([0]).chain(peer.as_str().bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let spread = 0.75 + (hash % 1000) as f64 / 2000.0; // 0.75 .. 1.25
        Self { initial, max, attempt: 0, spread }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2f64.powi(self.attempt.min(20) as i32);
        self.attempt += 1;
        self.initial.mul_f64(factor * self.spread).min(self.max)
    }

    /// After a session was established.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SessionSettings {
        SessionSettings { hold_time: Duration::from_secs(3), max_messages_per_second: 5 }
    }

    fn hello(id: &str, hold_ms: u32) -> Frame {
        Frame::Hello { node_id: id.into(), hold_time_ms: hold_ms }
    }

    fn any(_: &NodeId) -> bool {
        true
    }

    #[test]
    fn hello_exchange_negotiates_the_smaller_hold_time() {
        let mut s = Session::new("a".into(), Some("b".into()), settings(), Timestamp(0));
        assert!(matches!(s.hello(Timestamp(0)), Frame::Hello { .. }));
        assert_eq!(s.on_frame(Timestamp(1), hello("b", 1500), any), Ok(Received::Established { peer: "b".into() }));
        assert_eq!(s.hold_time(), Duration::from_millis(1500));
        assert_eq!(s.peer().map(|p| p.as_str()), Some("b"));
    }

    #[test]
    fn wrong_unknown_self_and_missing_hello_end_the_session() {
        let mut s = Session::new("a".into(), Some("b".into()), settings(), Timestamp(0));
        assert!(matches!(s.on_frame(Timestamp(0), hello("c", 3000), any), Err(SessionError::WrongPeer { .. })));
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        assert_eq!(s.on_frame(Timestamp(0), hello("z", 3000), |_| false), Err(SessionError::UnknownPeer("z".into())));
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        assert_eq!(s.on_frame(Timestamp(0), hello("a", 3000), any), Err(SessionError::SelfConnection("a".into())));
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        assert_eq!(s.on_frame(Timestamp(0), Frame::Keepalive, any), Err(SessionError::NoHello));
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        assert!(matches!(s.on_frame(Timestamp(0), hello("b", 10), any), Err(SessionError::HoldTimeTooShort(_))));
    }

    #[test]
    fn keepalives_are_sent_at_a_third_of_the_hold_time_and_silence_expires_the_session() {
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        s.on_frame(Timestamp(0), hello("b", 3000), any).unwrap();
        assert_eq!(s.next_deadline(), Timestamp(1000));
        assert_eq!(s.poll(Timestamp(999)), Ok(None));
        assert_eq!(s.poll(Timestamp(1000)), Ok(Some(Frame::Keepalive)));
        assert_eq!(s.poll(Timestamp(1500)), Ok(None));
        s.on_frame(Timestamp(2000), Frame::Keepalive, any).unwrap();
        assert_eq!(s.poll(Timestamp(4999)).map(|f| f.is_some()), Ok(true));
        assert_eq!(s.poll(Timestamp(5000)), Err(SessionError::HoldTimerExpired(Duration::from_secs(3))));
    }

    #[test]
    fn rate_limit_cuts_off_a_flooding_peer_but_allows_its_steady_rate() {
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        s.on_frame(Timestamp(0), hello("b", 3000), any).unwrap();
        // The hello took one token; a burst of 10 s worth (50) is allowed.
        for i in 0..49 {
            assert!(s.on_frame(Timestamp(i), Frame::Keepalive, any).is_ok());
        }
        let error = s.on_frame(Timestamp(50), Frame::Keepalive, any).unwrap_err();
        assert_eq!(error, SessionError::RateLimited { limit: 5 });
        assert!(!error.keeps_routes(), "only an announced restart keeps routes");
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        s.on_frame(Timestamp(0), hello("b", 3000), any).unwrap();
        for i in 1..50 {
            assert!(s.on_frame(Timestamp(i * 200), Frame::Keepalive, any).is_ok(), "5/s is allowed");
        }
    }

    #[test]
    fn admitting_a_decoded_routing_message_is_receiving_its_frame() {
        let end = || Frame::Routing(crate::message::Message::EndOfTable { advertiser: "b".into() });
        let (mut framed, mut admitted) = (
            Session::new("a".into(), None, settings(), Timestamp(0)),
            Session::new("a".into(), None, settings(), Timestamp(0)),
        );
        assert_eq!(framed.on_frame(Timestamp(0), end(), any).map(|_| ()), admitted.admit_routing(Timestamp(0)));
        for s in [&mut framed, &mut admitted] {
            s.on_frame(Timestamp(1), hello("b", 3000), any).unwrap();
        }
        for at in 2..80 {
            let via_frame = framed.on_frame(Timestamp(at), end(), any).map(|_| ());
            assert_eq!(via_frame, admitted.admit_routing(Timestamp(at)), "at {at} ms");
            assert_eq!(framed.hold_deadline(), admitted.hold_deadline());
        }
        assert!(admitted.admit_routing(Timestamp(80)).is_err(), "the burst is spent");
    }

    #[test]
    fn close_reports_whether_the_peer_is_restarting() {
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        s.on_frame(Timestamp(0), hello("b", 3000), any).unwrap();
        let error = s.on_frame(Timestamp(1), Frame::Close { reason: "upgrade".into(), restarting: true }, any);
        assert!(error.unwrap_err().keeps_routes());
        let mut s = Session::new("a".into(), None, settings(), Timestamp(0));
        let error = s.on_frame(Timestamp(1), Frame::Close { reason: "bye".into(), restarting: false }, any);
        assert!(!error.unwrap_err().keeps_routes());
    }

    #[test]
    fn backoff_doubles_with_a_stable_spread_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), &"a".into(), &"b".into());
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert!(delays[0] >= Duration::from_millis(75) && delays[0] <= Duration::from_millis(125));
        assert_eq!(*delays.last().unwrap(), Duration::from_secs(2));
        let mut again = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), &"a".into(), &"b".into());
        assert_eq!(again.next_delay(), delays[0]);
        b.reset();
        assert_eq!(b.next_delay(), delays[0]);
    }
}
