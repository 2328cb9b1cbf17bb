//! How actors push events to a connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use crate::core::{
    AgentId, Alert, ChannelId, ChatEvent, ChatId, Offer, OfferEnd, Party, QueuePlace, QueueUpdate,
};

/// Signals waiting for a connection at most; more are dropped.
pub const DATAGRAMS_WAITING: usize = 16;

/// Identifies one client connection for the life of the hub process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What may be lost on its way to a connection without harm: never
/// stored, never resent (the connection sends it as a datagram).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `from` is typing in `chat`.
    Typing {
        /// The chat.
        chat: ChatId,
        /// Who types.
        from: Party,
    },
}

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
    /// A push channel offers a chat to the agent.
    Offered(Arc<Offer>),
    /// An offer to the agent is over.
    OfferWithdrawn {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
        /// Why.
        reason: OfferEnd,
    },
    /// Where the customer's waiting chat stands.
    QueuePosition(QueuePlace),
    /// A supervisor set the agent's status.
    StatusChanged {
        /// The status now.
        status: crate::core::Status,
        /// Who set it.
        by: AgentId,
    },
}

/// The sending half of a connection's bounded event queue.
///
/// Actors never wait on a connection: [`EventSink::deliver`] either queues
/// the event at once or, when the connection has fallen too far behind,
/// refuses it and raises the connection's overflow flag so the connection
/// task closes it. The client then reconnects and resumes from its last seq
/// instead of the hub buffering without bound.
///
/// Beside events, a sink takes signals (typing indicators) into a small
/// queue of its own: [`EventSink::offer_signal`] drops one that finds the
/// queue full, and a connection never closes or waits for them.
#[derive(Clone, Debug)]
pub struct EventSink {
    conn: ConnId,
    peer: Option<std::net::IpAddr>,
    tx: mpsc::Sender<(Outbound, Instant)>,
    datagrams: Arc<Signals>,
    overflow: Arc<Notify>,
    revoked: Arc<Notify>,
}

/// The connection task's half of an [`EventSink`].
#[derive(Debug)]
pub struct EventSource {
    /// Events in the order actors delivered them, each with when it was
    /// queued.
    pub events: mpsc::Receiver<(Outbound, Instant)>,
    /// Signals to send as datagrams, at most [`DATAGRAMS_WAITING`].
    pub datagrams: Arc<Signals>,
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
        let datagrams = Arc::new(Signals::default());
        let overflow = Arc::new(Notify::new());
        let revoked = Arc::new(Notify::new());
        let sink = Self {
            conn,
            peer: None,
            tx,
            datagrams: datagrams.clone(),
            overflow: overflow.clone(),
            revoked: revoked.clone(),
        };
        (
            sink,
            EventSource {
                events,
                datagrams,
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

    /// Queues a signal for the connection if there is room; drops it
    /// otherwise (it may be lost on the way all the same). Returns whether
    /// it was queued.
    pub fn offer_signal(&self, signal: Signal) -> bool {
        self.datagrams.offer(signal)
    }
}

/// The signals waiting for a connection, at most [`DATAGRAMS_WAITING`].
///
/// Most connections never carry one, so the queue takes memory only once
/// a signal comes (a channel would hold a block of slots from the start).
#[derive(Debug, Default)]
pub struct Signals {
    waiting: Mutex<VecDeque<Signal>>,
    ready: Notify,
}

impl Signals {
    /// Queues `signal` if there is room; says whether it did.
    fn offer(&self, signal: Signal) -> bool {
        let mut waiting = self
            .waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if waiting.len() >= DATAGRAMS_WAITING {
            return false;
        }
        waiting.push_back(signal);
        drop(waiting);
        self.ready.notify_one();
        true
    }

    /// The oldest waiting signal, once there is one. Cancel-safe: a signal
    /// stays queued until this returns it.
    pub async fn next(&self) -> Signal {
        loop {
            let popped = self
                .waiting
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop_front();
            if let Some(signal) = popped {
                return signal;
            }
            // A permit stored by `offer` meanwhile wakes this at once.
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(chat: u64) -> Signal {
        Signal::Typing {
            chat: ChatId(chat),
            from: Party::Customer,
        }
    }

    #[tokio::test]
    async fn signals_wait_in_order_and_past_the_bound_are_dropped() {
        let (sink, source) = EventSink::new(ConnId(1), 8);
        for chat in 0..DATAGRAMS_WAITING as u64 {
            assert!(sink.offer_signal(typing(chat)));
        }
        assert!(
            !sink.offer_signal(typing(99)),
            "a full queue drops the signal"
        );
        for chat in 0..DATAGRAMS_WAITING as u64 {
            assert_eq!(source.datagrams.next().await, typing(chat));
        }
        // Room again once taken; a waiting reader wakes for the next one.
        let reader = tokio::spawn({
            let signals = source.datagrams.clone();
            async move { signals.next().await }
        });
        tokio::task::yield_now().await;
        assert!(sink.offer_signal(typing(7)));
        assert_eq!(reader.await.expect("the reader ran"), typing(7));
    }
}
