//! How actors push events to a connection.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::core::{Alert, ChannelId, ChatEvent, ChatId, QueueUpdate};

/// Identifies one client connection for the life of the hub process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// An event on its way to a connection. Shared (`Arc`) because one event
/// goes to several connections.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A chat event.
    Chat(Arc<ChatEvent>),
    /// A queue change.
    Queue(Arc<QueueUpdate>),
    /// An unanswered-chat alert.
    Alert(Arc<Alert>),
    /// An alert is over.
    AlertCleared {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
    },
}

/// The sending half of a connection's bounded event queue.
///
/// Actors never wait on a connection: [`EventSink::deliver`] either queues
/// the event at once or, when the connection has fallen too far behind,
/// refuses it and raises the connection's overflow flag so the connection
/// task closes it. The client then reconnects and resumes from its last seq
/// instead of the hub buffering without bound.
#[derive(Clone, Debug)]
pub struct EventSink {
    conn: ConnId,
    peer: Option<std::net::IpAddr>,
    tx: mpsc::Sender<(Outbound, Instant)>,
    overflow: Arc<Notify>,
    revoked: Arc<Notify>,
}

/// The connection task's half of an [`EventSink`].
#[derive(Debug)]
pub struct EventSource {
    /// Events in the order actors delivered them, each with when it was
    /// queued.
    pub events: mpsc::Receiver<(Outbound, Instant)>,
    /// Notified when an event had to be refused because the queue was full.
    pub overflow: Arc<Notify>,
    /// Notified when the connection's agent was removed from the
    /// configuration: the connection is closed as unauthorized.
    pub revoked: Arc<Notify>,
}

impl EventSink {
    /// A sink for connection `conn` holding at most `capacity` undelivered
    /// events, and the connection task's end of it.
    pub fn new(conn: ConnId, capacity: usize) -> (Self, EventSource) {
        let (tx, events) = mpsc::channel(capacity);
        let overflow = Arc::new(Notify::new());
        let revoked = Arc::new(Notify::new());
        let sink = Self {
            conn,
            peer: None,
            tx,
            overflow: overflow.clone(),
            revoked: revoked.clone(),
        };
        (
            sink,
            EventSource {
                events,
                overflow,
                revoked,
            },
        )
    }

    /// The connection this sink feeds.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The same sink, noting the address its client connected from (what
    /// per-address limits count).
    pub fn with_peer(mut self, peer: std::net::IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The address the client connected from, if it came over a network.
    pub fn peer(&self) -> Option<std::net::IpAddr> {
        self.peer
    }

    /// Closes the connection: its agent may no longer sign in.
    pub fn revoke(&self) {
        self.revoked.notify_one();
    }

    /// Queues `event`. Returns false when the connection is gone or too far
    /// behind; the caller should then forget this sink.
    #[must_use = "a sink that refused an event is to be forgotten"]
    pub fn deliver(&self, event: Outbound) -> bool {
        match self.tx.try_send((event, Instant::now())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
