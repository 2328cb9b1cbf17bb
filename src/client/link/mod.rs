//! One logical connection to the hub, shared by a client's clones, that
//! survives losing its QUIC connection.
//!
//! Requests go out on the control stream and are matched back by id; events
//! come in on the streams the hub opens. When the connection drops (network
//! loss, hub restart), a supervisor task reconnects with backoff, says hello
//! with where it left off in every chat it knows (and, for a customer, each
//! chat's secret), and sends again every unanswered request that is harmless
//! twice (the others are answered `Unavailable`: they may have taken
//! effect). The hub
//! stores a retried message once (same client id) and replays each chat after
//! the last seq seen; the link drops anything at or below that seq, so the
//! application sees each chat's events once, in order, without a gap.
//!
//! The hub sends no event for a message to the connection that posted it:
//! the answer carries the message's seq and time, and the link makes the
//! event from it and the request, so the application still sees its own
//! messages in the chat's order.
//!
//! The rules are pure states, tested without a network: `pending` keeps
//! the unanswered requests (what is sent again on a new connection, what is
//! given up, what an answer means), `memory` what a hello resumes and each
//! chat's event order. The rest of the link performs the I/O they call for.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::incoming::IncomingBoard;
use crate::client::{ClientConfig, ClientError};
use crate::core::{ChannelId, ChatEvent, ChatEventKind, ChatId, Status};
use crate::protocol::{
    ClientFrame, CloseCode, ErrorCode, ErrorFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Reply,
    Request, RequestBody, Response, Resume, Role, Secret, ServerFrame, Upload, Welcome, encode,
};

/// Events the application has not taken yet. When full (and about as many
/// chat events again are ready behind it, and as many in the forwarding
/// task's hands), the hub's streams are no longer read, and QUIC flow
/// control slows the hub down. The events of the client's own messages
/// join the queue whatever its length: they come from answers, which are
/// always read.
const EVENT_BUFFER: usize = 4096;

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The most hubs one connection attempt follows `Elsewhere` through.
const MAX_HOPS: usize = 3;

/// Whoever waits for a request's answer.
type Waiter = oneshot::Sender<Result<Reply, ErrorFrame>>;

struct Control {
    send: quinn::SendStream,
    buf: Vec<u8>,
}

/// The current connection's control stream, if connected, and which
/// connection it is. Requests are sent under its lock, so each is sent
/// once per connection.
#[derive(Default)]
struct Slot {
    control: Option<Control>,
    generation: u64,
}

/// Queue updates, alerts and typing indicators waiting for the
/// application at most.
const MAX_OTHERS: usize = 4096;

/// The most chats one hello resumes: the hub's default `resume_points`.
const MAX_RESUME_POINTS: usize = 256;

/// The most events held for one chat while waiting for a gap to fill;
/// beyond it they are handed over as they are.
const MAX_HELD: usize = 10_000;

struct Inner {
    config: ClientConfig,
    /// The hub connected to, or to connect to next: the configuration's
    /// first, another of its hubs once that one cannot be reached, or the
    /// one a hub sent the client to.
    target: Mutex<SocketAddr>,
    role: Role,
    endpoint: quinn::Endpoint,
    control: tokio::sync::Mutex<Slot>,
    pending: Mutex<Pending<Waiter>>,
    memory: Mutex<Memory>,
    next_request: AtomicU64,
    events: mpsc::Sender<Event>,
    incoming: Arc<IncomingBoard>,
    closing: AtomicBool,
    /// QUIC connections made so far (the first one included).
    connections: AtomicU64,
    connection: Mutex<Option<quinn::Connection>>,
    /// Queue updates, alerts and typing indicators on their way to the
    /// application.
    others: Mutex<VecDeque<Event>>,
    /// Chat events (or others) were made ready (for the forwarding task).
    readied: tokio::sync::Notify,
    /// The forwarding task took the ready chat events (for stream readers
    /// waiting for room).
    taken: tokio::sync::Notify,
}

pub(crate) struct Link {
    inner: Arc<Inner>,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    next_client_id: AtomicU64,
    pub welcome: Welcome,
    pub incoming: Arc<IncomingBoard>,
    supervisor: JoinHandle<()>,
    forwarder: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
        self.supervisor.abort();
        self.forwarder.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn protocol(err: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(err.to_string())
}

/// A connection with its control stream open and the hello answered.
struct Session {
    conn: quinn::Connection,
    recv: quinn::RecvStream,
    frames: FrameBuf,
    control: Control,
    welcome: Welcome,
}

impl Link {
    /// Connects, says hello as `role`, and waits for the welcome. A refusal
    /// (wrong token, unsupported version) fails here; later losses of the
    /// connection are repaired in the background.
    pub(super) async fn connect(config: &ClientConfig, role: Role) -> Result<Self, ClientError> {
        let endpoint = match &config.endpoint {
            Some(shared) => shared.clone(),
            None => {
                let bind: SocketAddr = if config.server.is_ipv6() {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                };
                let mut endpoint =
                    crate::udp::endpoint(bind, crate::udp::CLIENT_BUFFER_BYTES, None)?;
                endpoint.set_default_client_config(config.quic.clone());
                endpoint
            }
        };
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let incoming = Arc::new(IncomingBoard::default());
        let pending = Pending::new(&role);
        let inner = Arc::new(Inner {
            config: config.clone(),
            target: Mutex::new(config.server),
            role,
            endpoint,
            control: tokio::sync::Mutex::new(Slot::default()),
            pending: Mutex::new(pending),
            memory: Mutex::new(Memory::default()),
            next_request: AtomicU64::new(1),
            events: events_tx,
            incoming: incoming.clone(),
            closing: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            connection: Mutex::new(None),
            others: Mutex::new(VecDeque::new()),
            readied: tokio::sync::Notify::new(),
            taken: tokio::sync::Notify::new(),
        });
        let session = inner.open().await?;
        let welcome = session.welcome.clone();
        // Usable at once for file streams; requests are sent as soon as the
        // supervisor has installed the control stream.
        *lock(&inner.connection) = Some(session.conn.clone());
        let supervisor = tokio::spawn(supervise(inner.clone(), session));
        let forwarder = tokio::spawn(forward(inner.clone()));
        Ok(Self {
            inner,
            events: tokio::sync::Mutex::new(events_rx),
            next_client_id: AtomicU64::new(RandomState::new().hash_one(0u8) >> 1),
            welcome,
            incoming,
            supervisor,
            forwarder,
        })
    }

    /// A fresh id for a message this client sends.
    pub(super) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A random secret for a new chat: 128 bits from the system's secure
    /// random source.
    pub(super) fn new_secret(&self) -> Result<Secret, ClientError> {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| ClientError::Config("the system random source failed".into()))?;
        Ok(Secret::new(crate::core::hex::encode(&bytes)))
    }

    /// Remembers a customer chat's secret, to resume it after a reconnect.
    pub(super) fn remember_secret(&self, chat: ChatId, secret: Secret) {
        lock(&self.inner.memory).secrets.insert(chat, secret);
    }

    /// The secret of a chat this client started.
    pub(super) fn secret(&self, chat: ChatId) -> Option<Secret> {
        lock(&self.inner.memory).secrets.get(&chat).cloned()
    }

    /// Remembers an `Identify` the hub accepted, to prove it again after a
    /// reconnect.
    pub(super) fn remember_identity(&self, identify: RequestBody) {
        if let RequestBody::Identify { channel, .. }
        | RequestBody::IdentifyClaiming { channel, .. } = &identify
        {
            lock(&self.inner.memory)
                .identities
                .insert(channel.clone(), identify);
        }
    }

    /// Remembers the agent's status, to set it again after a reconnect.
    pub(super) fn remember_status(&self, status: Status) {
        lock(&self.inner.memory).status = Some(status);
    }

    /// Remembers whether the agent watches `channel`'s monitor: a watched
    /// one is watched again after a reconnect, and only watched ones'
    /// pictures reach the application.
    pub(super) fn remember_monitor(&self, channel: &ChannelId, watched: bool) {
        let monitors = &mut lock(&self.inner.memory).monitors;
        if watched {
            monitors.insert(channel.clone());
        } else {
            monitors.remove(channel);
        }
    }

    /// Sends a request and waits for its answer, across reconnects.
    pub(super) async fn request(&self, body: RequestBody) -> Result<Reply, ClientError> {
        let inner = &self.inner;
        let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut slot = inner.control.lock().await;
        lock(&inner.pending)
            .open(id, body.clone(), tx)
            .map_err(|Closed(reason)| ClientError::Closed(reason))?;
        // Without a connection the request waits; the reconnect sends it.
        inner.write(&mut slot, id, body).await;
        drop(slot);
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(ClientError::Refused(error)),
            Err(_) => Err(ClientError::Closed(
                lock(&inner.pending)
                    .closed()
                    .unwrap_or("the connection closed")
                    .to_owned(),
            )),
        }
    }

    /// How many times the link had to connect again since it first
    /// connected (a lost connection, a restarted hub).
    pub(super) fn reconnects(&self) -> u64 {
        self.inner
            .connections
            .load(Ordering::Relaxed)
            .saturating_sub(1)
    }

    /// Moves the link to another UDP socket (the device's network
    /// changed, or a NAT forgot its mapping): the QUIC connection goes on
    /// from the new address (connection migration), with nothing sent
    /// again and no reconnect. Every connection of the endpoint moves, so
    /// a link on a shared endpoint moves the links sharing it.
    pub(super) fn move_to(&self, socket: std::net::UdpSocket) -> Result<(), ClientError> {
        socket.set_nonblocking(true)?;
        // The endpoint pings the hub from the new address at once, so the
        // hub sends there from then on, not at the next request.
        self.inner.endpoint.rebind(socket)?;
        Ok(())
    }

    /// The next pushed event.
    pub(super) async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// Closes the connection for good.
    pub(super) fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        if let Some(conn) = lock(&self.inner.connection).take() {
            conn.close(CloseCode::Normal.code().into(), b"client closed");
        }
        lock(&self.inner.pending).close("the client closed the connection".into());
    }
}

mod datagrams;
mod files;
mod inner;
mod memory;
mod pending;
mod reconnect;
mod streams;
#[cfg(test)]
mod tests;

use datagrams::read_datagrams;
use memory::{Memory, order};
use pending::{Closed, Outcome, Pending, Reconnected};
use reconnect::supervise;
use streams::{accept_event_streams, forward};
