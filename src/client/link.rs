//! One logical connection to the hub, shared by a client's clones, that
//! survives losing its QUIC connection.
//!
//! Requests go out on the control stream and are matched back by id; events
//! come in on the streams the hub opens. When the connection drops (network
//! loss, hub restart), a supervisor task reconnects with backoff, says hello
//! with where it left off in every chat it knows (and, for a customer, each
//! chat's secret), and sends again every request still unanswered. The hub
//! stores a retried message once (same client id) and replays each chat after
//! the last seq seen; the link drops anything at or below that seq, so the
//! application sees each chat's events once, in order, without a gap.
//!
//! The hub sends no event for a message to the connection that posted it:
//! the answer carries the message's seq and time, and the link makes the
//! event from it and the request, so the application still sees its own
//! messages in the chat's order.

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
use crate::core::{ChannelId, ChatEvent, ChatEventKind, ChatId, Party, Status};
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

struct Waiter {
    body: RequestBody,
    /// The connection generation it was last sent on (0: not yet sent).
    sent_on: u64,
    /// Sent again on a later connection than the first.
    resent: bool,
    tx: oneshot::Sender<Result<Reply, ErrorFrame>>,
}

#[derive(Default)]
struct Pending {
    /// Unanswered requests by id (ids grow, so this is send order).
    waiters: BTreeMap<u64, Waiter>,
    /// Why the link closed for good, once it has.
    closed: Option<String>,
}

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

/// What the link remembers to resume after a reconnect.
#[derive(Default)]
struct Memory {
    /// The last seq handed to the application, per chat.
    positions: HashMap<ChatId, u64>,
    /// Customer chats' secrets.
    secrets: HashMap<ChatId, Secret>,
    /// The agent status last set.
    status: Option<Status>,
    /// The customer's proven identities (`Identify` requests), by channel.
    identities: HashMap<ChannelId, RequestBody>,
    /// Chat events that arrived ahead of an earlier one still on its way
    /// (on another stream), held until the gap fills.
    held: HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
    /// Chat events in the order the application gets them, on their way
    /// to it: whoever orders an event appends what it made ready here in
    /// the same step, so no later event can overtake.
    ready: VecDeque<ChatEvent>,
    /// Chats over for this client for now (ended, or gone to another
    /// agent), each with the number of its finish: not resumed after a
    /// reconnect. Their positions stay, so a chat that comes back is not
    /// handed over twice, for the latest [`MAX_FINISHED`] of them; older
    /// ones are forgotten.
    finished: HashMap<ChatId, u64>,
    /// Finishes in order; one whose chat came back (or finished again
    /// since) no longer matches `finished` and forgets nothing.
    finished_order: VecDeque<(ChatId, u64)>,
    /// The number of the next finish.
    finishes: u64,
}

/// Finished chats whose positions (and secrets) the link keeps.
const MAX_FINISHED: usize = 4096;

impl Memory {
    /// Notes what the events just made ready mean for resuming: a chat
    /// that is over for `role` is not resumed any more; one that is back
    /// is again.
    fn note_ready(&mut self, role: &Role, from: usize) {
        for index in from..self.ready.len() {
            let event = &self.ready[index];
            let chat = event.chat;
            if is_over_for(role, &event.kind) {
                if !self.finished.contains_key(&chat) {
                    self.finishes += 1;
                    self.finished.insert(chat, self.finishes);
                    self.finished_order.push_back((chat, self.finishes));
                }
            } else {
                // Back (returned, transferred back): resumed again.
                self.finished.remove(&chat);
            }
        }
        while self.finished_order.len() > MAX_FINISHED {
            let Some((oldest, finish)) = self.finished_order.pop_front() else {
                break;
            };
            if self.finished.get(&oldest) == Some(&finish) {
                self.finished.remove(&oldest);
                self.positions.remove(&oldest);
                self.secrets.remove(&oldest);
            }
        }
    }

    /// What a hello resumes: every chat known but the finished ones, at
    /// most `limit` of them (the newest).
    fn resume_points(&self, limit: usize) -> Vec<Resume> {
        let mut chats: Vec<ChatId> = self
            .positions
            .keys()
            .chain(self.secrets.keys())
            .filter(|chat| !self.finished.contains_key(chat))
            .copied()
            .collect();
        chats.sort_unstable();
        chats.dedup();
        if chats.len() > limit {
            tracing::warn!(
                "{} chats to resume, more than a hello carries: the oldest {} are not resumed",
                chats.len(),
                chats.len() - limit
            );
            chats.drain(..chats.len() - limit);
        }
        chats
            .into_iter()
            .map(|chat| Resume {
                chat,
                after: self.positions.get(&chat).copied().unwrap_or(0),
                secret: self.secrets.get(&chat).cloned(),
            })
            .collect()
    }
}

/// Whether `event` is the last `role` hears of its chat for now.
fn is_over_for(role: &Role, event: &ChatEventKind) -> bool {
    match (role, event) {
        (_, ChatEventKind::Ended { .. }) => true,
        (Role::Agent { .. }, ChatEventKind::Requeued { .. }) => true,
        (Role::Agent { agent, .. }, ChatEventKind::TransferredToAgent { to, .. }) => to != agent,
        (Role::Agent { agent, .. }, ChatEventKind::TransferDeclined { by, .. }) => by == agent,
        _ => false,
    }
}

/// Queue updates and alerts waiting for the application at most.
const MAX_OTHERS: usize = 4096;

/// The most chats one hello resumes: the hub's default `resume_points`.
const MAX_RESUME_POINTS: usize = 256;

/// The most events held for one chat while waiting for a gap to fill;
/// beyond it they are handed over as they are.
const MAX_HELD: usize = 10_000;

struct Inner {
    config: ClientConfig,
    role: Role,
    endpoint: quinn::Endpoint,
    control: tokio::sync::Mutex<Slot>,
    pending: Mutex<Pending>,
    memory: Mutex<Memory>,
    next_request: AtomicU64,
    events: mpsc::Sender<Event>,
    incoming: Arc<IncomingBoard>,
    closing: AtomicBool,
    connection: Mutex<Option<quinn::Connection>>,
    /// Queue updates and alerts on their way to the application.
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
        let inner = Arc::new(Inner {
            config: config.clone(),
            role,
            endpoint,
            control: tokio::sync::Mutex::new(Slot::default()),
            pending: Mutex::new(Pending::default()),
            memory: Mutex::new(Memory::default()),
            next_request: AtomicU64::new(1),
            events: events_tx,
            incoming: incoming.clone(),
            closing: AtomicBool::new(false),
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
        if let RequestBody::Identify { channel, .. } = &identify {
            lock(&self.inner.memory)
                .identities
                .insert(channel.clone(), identify);
        }
    }

    /// Remembers the agent's status, to set it again after a reconnect.
    pub(super) fn remember_status(&self, status: Status) {
        lock(&self.inner.memory).status = Some(status);
    }

    /// Sends a request and waits for its answer, across reconnects.
    pub(super) async fn request(&self, body: RequestBody) -> Result<Reply, ClientError> {
        let inner = &self.inner;
        let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut slot = inner.control.lock().await;
        {
            let mut pending = lock(&inner.pending);
            if let Some(reason) = &pending.closed {
                return Err(ClientError::Closed(reason.clone()));
            }
            pending.waiters.insert(
                id,
                Waiter {
                    body: body.clone(),
                    sent_on: 0,
                    resent: false,
                    tx,
                },
            );
        }
        // Without a connection the request waits; the reconnect sends it.
        inner.write(&mut slot, id, body).await;
        drop(slot);
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(ClientError::Refused(error)),
            Err(_) => Err(ClientError::Closed(
                lock(&inner.pending)
                    .closed
                    .clone()
                    .unwrap_or_else(|| "the connection closed".into()),
            )),
        }
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
        self.inner
            .fail_all("the client closed the connection".into());
    }
}

impl Inner {
    /// Connects and says hello, resuming every chat it knows.
    async fn open(&self) -> Result<Session, ClientError> {
        let conn = self
            .endpoint
            .connect(self.config.server, &self.config.server_name)?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let resume = lock(&self.memory).resume_points(MAX_RESUME_POINTS);
        let mut buf = Vec::new();
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: self.role.clone(),
            resume,
        });
        encode(&hello, &mut buf).map_err(protocol)?;
        send.write_all(&buf)
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;
        let mut frames = FrameBuf::new();
        let welcome = loop {
            match frames.next_frame::<ServerFrame>().map_err(protocol)? {
                Some(ServerFrame::Welcome(welcome)) => break welcome,
                Some(ServerFrame::Closing(error)) => return Err(ClientError::Refused(error)),
                Some(other) => return Err(protocol(format!("expected a welcome, got {other:?}"))),
                None => {}
            }
            match recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => frames.push(&chunk.bytes),
                Ok(None) => {
                    return Err(ClientError::Closed(
                        "the hub closed before the welcome".into(),
                    ));
                }
                Err(quinn::ReadError::ConnectionLost(err)) => return Err(err.into()),
                Err(err) => return Err(ClientError::Closed(err.to_string())),
            }
        };
        Ok(Session {
            conn,
            recv,
            frames,
            control: Control { send, buf },
            welcome,
        })
    }

    /// Writes a request on the current connection, if there is one.
    async fn write(&self, slot: &mut Slot, id: u64, body: RequestBody) {
        let generation = slot.generation;
        let Some(Control { send, buf }) = slot.control.as_mut() else {
            return;
        };
        buf.clear();
        if let Err(err) = encode(&ClientFrame::Request(Request { id, body }), buf) {
            if let Some(waiter) = lock(&self.pending).waiters.remove(&id) {
                let _ = waiter.tx.send(Err(ErrorFrame::new(
                    ErrorCode::InvalidRequest,
                    format!("cannot send the request: {err}"),
                )));
            }
            return;
        }
        if send.write_all(buf).await.is_err() {
            // The connection is going; the reconnect sends it again.
            slot.control = None;
            return;
        }
        if let Some(waiter) = lock(&self.pending).waiters.get_mut(&id) {
            waiter.resent = waiter.sent_on != 0;
            waiter.sent_on = generation;
        }
    }

    /// Answers a waiting request.
    fn answer(&self, id: u64, result: Result<Reply, ErrorFrame>) {
        let Some(Waiter {
            body, resent, tx, ..
        }) = lock(&self.pending).waiters.remove(&id)
        else {
            return;
        };
        let result = match (body, result) {
            // An end sent again after a lost answer finds the chat ended by
            // the first attempt.
            (RequestBody::EndChat { .. } | RequestBody::Leave { .. }, Err(error))
                if resent && error.code == ErrorCode::ChatEnded =>
            {
                Ok(Reply::Done)
            }
            // A message's event comes with its answer, not as an event.
            (
                RequestBody::Post {
                    chat,
                    client_id,
                    text,
                },
                Ok(Reply::Posted { seq, at }),
            ) => {
                let kind = ChatEventKind::Message {
                    from: self.me(),
                    client_id,
                    text,
                };
                self.accept(ChatEvent {
                    chat,
                    seq,
                    at,
                    kind,
                });
                Ok(Reply::Posted { seq, at })
            }
            (_, result) => result,
        };
        let _ = tx.send(result);
    }

    /// Who this client's messages are from.
    fn me(&self) -> Party {
        match &self.role {
            Role::Customer => Party::Customer,
            Role::Agent { agent, .. } => Party::Agent(agent.clone()),
        }
    }

    fn fail_all(&self, reason: String) {
        let mut pending = lock(&self.pending);
        pending.closed.get_or_insert(reason);
        pending.waiters.clear();
    }

    /// Takes a chat event in: queues it for the application with every
    /// held one it makes consecutive, holds it if an earlier one is still
    /// missing, drops it if it was handed over before (a replay after a
    /// reconnect).
    fn accept(&self, event: ChatEvent) {
        {
            let mut memory = lock(&self.memory);
            let before = memory.ready.len();
            let Memory {
                positions,
                held,
                ready,
                ..
            } = &mut *memory;
            if !order(positions, held, event, ready) {
                return;
            }
            memory.note_ready(&self.role, before);
        }
        self.readied.notify_one();
    }

    /// Takes a queue update or an alert in: the incoming list and badge
    /// take it at once, whether or not the application reads its events,
    /// so they are always current; it then waits for the application. If
    /// the application falls [`MAX_OTHERS`] of these behind, the oldest
    /// queue update waiting is dropped for `next_event` (the incoming list
    /// already holds what it said).
    fn accept_other(&self, event: Event) {
        if let Event::Queue(update) = &event {
            self.incoming.apply(update);
        }
        {
            let mut others = lock(&self.others);
            if others.len() >= MAX_OTHERS {
                let oldest_update = others
                    .iter()
                    .position(|event| matches!(event, Event::Queue(_)))
                    .unwrap_or(0);
                others.remove(oldest_update);
            }
            others.push_back(event);
        }
        self.readied.notify_one();
    }

    /// Waits while the application is far behind on chat events.
    async fn room(&self) {
        loop {
            let taken = self.taken.notified();
            let mut taken = std::pin::pin!(taken);
            taken.as_mut().enable();
            if lock(&self.memory).ready.len() < EVENT_BUFFER {
                return;
            }
            taken.await;
        }
    }
}

/// See [`Inner::accept`]: `positions` is the last seq handed over per chat,
/// `held` the events waiting for a gap to fill; what `event` makes ready is
/// appended to `ready`, and the answer says whether anything was.
fn order(
    positions: &mut HashMap<ChatId, u64>,
    held: &mut HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
    event: ChatEvent,
    ready: &mut VecDeque<ChatEvent>,
) -> bool {
    let chat = event.chat;
    let last = positions.entry(chat).or_insert(0);
    if event.seq <= *last {
        return false;
    }
    let next_in_line = event.seq == *last + 1;
    if next_in_line && !held.contains_key(&chat) {
        // The usual case: in order, nothing held.
        *last = event.seq;
        ready.push_back(event);
        return true;
    }
    let waiting = held.entry(chat).or_default();
    waiting.insert(event.seq, event);
    if !next_in_line && waiting.len() <= MAX_HELD {
        return false;
    }
    // It is next in line: it and what now follows on go. Or too many wait
    // for the gap: all of them go, in seq order, past the gap.
    let flush_all = !next_in_line;
    let before = ready.len();
    while let Some(entry) = waiting.first_entry() {
        if !flush_all && *entry.key() != *last + 1 {
            break;
        }
        let next = entry.remove();
        if next.seq > *last {
            *last = next.seq;
            ready.push_back(next);
        }
    }
    if waiting.is_empty() {
        held.remove(&chat);
    }
    ready.len() > before
}

/// Serves a connection until it is lost, then reconnects, for as long as
/// the link is open.
async fn supervise(inner: Arc<Inner>, mut session: Session) {
    let mut backoff = Duration::from_millis(50);
    loop {
        *lock(&inner.connection) = Some(session.conn.clone());
        let streams = tokio::spawn(accept_event_streams(session.conn.clone(), inner.clone()));
        {
            let mut slot = inner.control.lock().await;
            slot.generation += 1;
            slot.control = Some(session.control);
            // After a reconnect the agent's status comes back first: a
            // restarted hub forgot it.
            let status = lock(&inner.memory).status.filter(|_| slot.generation > 1);
            if let Some(status) = status {
                let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
                inner
                    .write(&mut slot, id, RequestBody::SetStatus { status })
                    .await;
            }
            // So do the customer's proven identities, before any start.
            let identities: Vec<RequestBody> = if slot.generation > 1 {
                lock(&inner.memory).identities.values().cloned().collect()
            } else {
                Vec::new()
            };
            for identify in identities {
                let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
                inner.write(&mut slot, id, identify).await;
            }
            // Everything unanswered goes out again on the new connection, if
            // doing it twice is harmless; a request that may have taken effect
            // and would take effect again is answered with an error instead.
            let generation = slot.generation;
            let unanswered: Vec<(u64, RequestBody)> = {
                let mut pending = lock(&inner.pending);
                let unsafe_again: Vec<u64> = pending
                    .waiters
                    .iter()
                    .filter(|(_, waiter)| waiter.sent_on != 0 && !waiter.body.safe_to_send_again())
                    .map(|(id, _)| *id)
                    .collect();
                for id in unsafe_again {
                    if let Some(waiter) = pending.waiters.remove(&id) {
                        let _ = waiter.tx.send(Err(ErrorFrame::new(
                            ErrorCode::Unavailable,
                            "the connection was lost before the answer: the request may have taken effect",
                        )));
                    }
                }
                pending
                    .waiters
                    .iter()
                    .filter(|(_, waiter)| waiter.sent_on != generation)
                    .map(|(id, waiter)| (*id, waiter.body.clone()))
                    .collect()
            };
            for (id, body) in unanswered {
                inner.write(&mut slot, id, body).await;
            }
        }
        let outcome = read_responses(&inner, session.recv, session.frames).await;
        inner.control.lock().await.control = None;
        streams.abort();
        lock(&inner.connection).take();
        if inner.closing.load(Ordering::SeqCst) {
            return;
        }
        if let Err(refusal) = outcome {
            inner.fail_all(refusal);
            return;
        }
        // Reconnect with backoff.
        session = loop {
            if inner.closing.load(Ordering::SeqCst) {
                return;
            }
            match inner.open().await {
                Ok(session) => {
                    backoff = Duration::from_millis(50);
                    break session;
                }
                // Refused for now (a limit, a hub that cannot store):
                // try again after the backoff like any failed connect.
                Err(ClientError::Refused(error)) if !refusal_is_final(error.code) => {
                    tracing::debug!("reconnecting in {backoff:?}: {error}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(ClientError::Refused(error)) => {
                    inner.fail_all(format!("the hub refused to resume: {error}"));
                    return;
                }
                Err(err) => {
                    tracing::debug!("reconnecting in {backoff:?}: {err}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
    }
}

/// A wait of between half and all of `backoff`, drawn anew each time, so
/// the clients of a hub that restarted do not all come back at the same
/// instants.
fn jittered(backoff: Duration) -> Duration {
    let draw = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = 0.5 + (draw % 1_000) as f64 / 2_000.0;
    backoff.mul_f64(fraction)
}

/// Whether a connection the hub closed or refused with `code` would be
/// refused again the same way (bad frames, wrong credentials, another
/// protocol version, a hello out of bounds), so the link gives up; any
/// other refusal (a limit, a hub that cannot store now) is tried again
/// after a backoff.
fn refusal_is_final(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadFrame
            | ErrorCode::Unauthorized
            | ErrorCode::UnsupportedVersion
            | ErrorCode::InvalidRequest
            | ErrorCode::NotAllowed
    )
}

/// Matches responses on the control stream to their requests until the
/// stream ends. `Err` when the hub closed the connection for good (it
/// refused something about the connection itself).
async fn read_responses(
    inner: &Inner,
    mut recv: quinn::RecvStream,
    mut frames: FrameBuf,
) -> Result<(), String> {
    loop {
        match frames.next_frame::<ServerFrame>() {
            Ok(Some(ServerFrame::Response(response))) => {
                inner.answer(response.id, response.result);
                continue;
            }
            Ok(Some(ServerFrame::Closing(error))) => {
                return if refusal_is_final(error.code) {
                    Err(format!("the hub closed the connection: {error}"))
                } else {
                    Ok(())
                };
            }
            Ok(Some(other)) => {
                return Err(format!("unexpected frame on the control stream: {other:?}"));
            }
            Ok(None) => {}
            Err(err) => return Err(format!("bad frame from the hub: {err}")),
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}

/// Hands the ready chat events to the application, in the order they
/// became ready, and the other events (queue updates, alerts) beside them.
async fn forward(inner: Arc<Inner>) {
    let mut batch = VecDeque::new();
    let mut others = VecDeque::new();
    loop {
        std::mem::swap(&mut batch, &mut lock(&inner.memory).ready);
        std::mem::swap(&mut others, &mut lock(&inner.others));
        if batch.is_empty() && others.is_empty() {
            inner.readied.notified().await;
            continue;
        }
        inner.taken.notify_waiters();
        let events = others.drain(..).chain(batch.drain(..).map(Event::Chat));
        for event in events {
            if inner.events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Reads every stream the hub opens, each on its own task, so one chat's
/// events never wait behind another's.
async fn accept_event_streams(conn: quinn::Connection, inner: Arc<Inner>) {
    let mut readers = tokio::task::JoinSet::new();
    while let Ok(recv) = conn.accept_uni().await {
        readers.spawn(read_events(recv, inner.clone()));
        while readers.try_join_next().is_some() {}
    }
}

async fn read_events(mut recv: quinn::RecvStream, inner: Arc<Inner>) {
    let mut frames = FrameBuf::new();
    loop {
        loop {
            match frames.next_frame::<ServerFrame>() {
                Ok(Some(ServerFrame::Event(Event::Chat(event)))) => inner.accept(event),
                Ok(Some(ServerFrame::Event(event))) => inner.accept_other(event),
                Ok(Some(other)) => {
                    tracing::warn!("unexpected frame on an event stream: {other:?}");
                    return;
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!("bad frame on an event stream: {err}");
                    return;
                }
            }
        }
        // Chat events wait in order for the application; while too many
        // do, stop reading, and QUIC flow control holds the hub back.
        inner.room().await;
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
    }
}

impl Link {
    /// The connection now, for a stream of its own.
    fn current(&self) -> Result<quinn::Connection, ClientError> {
        lock(&self.inner.connection)
            .clone()
            .ok_or_else(|| ClientError::Closed("not connected right now; try again".into()))
    }

    /// Shares `bytes` as a file in `chat`, on a stream of its own.
    pub(super) async fn upload(&self, upload: Upload, bytes: &[u8]) -> Result<Reply, ClientError> {
        if upload.size != bytes.len() as u64 {
            return Err(ClientError::Protocol(
                "the upload's size does not match its bytes".into(),
            ));
        }
        let (mut send, recv) = self.current()?.open_bi().await?;
        let mut buf = Vec::new();
        encode(&ClientFrame::Upload(upload), &mut buf).map_err(protocol)?;
        // The hub may refuse the upload after its header (too large, not
        // this caller's chat) and stop reading: its answer, not the
        // stopped stream, is what the caller hears.
        let write = async {
            send.write_all(&buf).await?;
            send.write_all(bytes).await?;
            let _ = send.finish();
            Ok::<(), quinn::WriteError>(())
        };
        let answer = read_stream_answer(recv);
        tokio::pin!(answer);
        let answered = tokio::select! {
            answered = &mut answer => answered,
            _ = write => answer.await,
        };
        let (reply, _) = answered?;
        Ok(reply)
    }

    /// Fetches a file: its description and its bytes.
    pub(super) async fn download(
        &self,
        file: crate::core::FileId,
    ) -> Result<(Reply, Vec<u8>), ClientError> {
        let (mut send, recv) = self.current()?.open_bi().await?;
        let mut buf = Vec::new();
        encode(&ClientFrame::Download { file }, &mut buf).map_err(protocol)?;
        send.write_all(&buf)
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;
        let _ = send.finish();
        read_stream_answer(recv).await
    }
}

/// Reads a file stream's response, then every byte after it.
async fn read_stream_answer(mut recv: quinn::RecvStream) -> Result<(Reply, Vec<u8>), ClientError> {
    let mut frames = FrameBuf::new();
    let response = loop {
        if let Some(frame) = frames.next_frame::<ServerFrame>().map_err(protocol)? {
            break frame;
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) => {
                return Err(ClientError::Closed(
                    "the file stream ended without an answer".into(),
                ));
            }
            Err(err) => return Err(ClientError::Closed(err.to_string())),
        }
    };
    let reply = match response {
        ServerFrame::Response(Response {
            result: Ok(reply), ..
        }) => reply,
        ServerFrame::Response(Response {
            result: Err(error), ..
        }) => return Err(ClientError::Refused(error)),
        other => {
            return Err(protocol(format!(
                "unexpected frame on a file stream: {other:?}"
            )));
        }
    };
    let mut bytes = frames.take_rest().to_vec();
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.bytes),
            Ok(None) => return Ok((reply, bytes)),
            Err(err) => return Err(ClientError::Closed(err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(chat: u64, seq: u64) -> ChatEvent {
        ChatEvent::customer_message(chat, seq, format!("m{seq}"))
    }

    fn with_kind(chat: u64, seq: u64, kind: ChatEventKind) -> ChatEvent {
        ChatEvent {
            kind,
            ..event(chat, seq)
        }
    }

    fn hand_over(memory: &mut Memory, role: &Role, event: ChatEvent) {
        let before = memory.ready.len();
        let Memory {
            positions,
            held,
            ready,
            ..
        } = memory;
        super::order(positions, held, event, ready);
        memory.note_ready(role, before);
    }

    fn resumed(memory: &Memory) -> Vec<u64> {
        memory
            .resume_points(MAX_RESUME_POINTS)
            .iter()
            .map(|resume| resume.chat.0)
            .collect()
    }

    #[test]
    fn backoffs_are_spread_over_their_second_half() {
        let backoff = Duration::from_millis(1_000);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
        assert!(
            waits
                .iter()
                .all(|wait| *wait >= backoff / 2 && *wait <= backoff)
        );
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "{} distinct waits", distinct.len());
    }

    #[test]
    fn chats_over_for_an_agent_are_not_resumed_until_they_come_back() {
        let me = crate::core::AgentId::new("ana");
        let role = Role::Agent {
            agent: me.clone(),
            token: "t".into(),
        };
        let mut memory = Memory::default();
        for chat in 1..=4 {
            hand_over(&mut memory, &role, event(chat, 1));
        }
        let ended = ChatEventKind::Ended {
            by: Party::Customer,
        };
        hand_over(&mut memory, &role, with_kind(1, 2, ended));
        let away = ChatEventKind::TransferredToAgent {
            from: me.clone(),
            to: "bo".into(),
        };
        hand_over(&mut memory, &role, with_kind(2, 2, away));
        let requeued = ChatEventKind::Requeued {
            by: Some(me.clone()),
            channel: "support".into(),
        };
        hand_over(&mut memory, &role, with_kind(3, 2, requeued));
        assert_eq!(resumed(&memory), [4]);
        // Chat 2 comes back: it is resumed again, and what was handed over
        // before is not handed over twice.
        let back = ChatEventKind::TransferredToAgent {
            from: "bo".into(),
            to: me.clone(),
        };
        hand_over(&mut memory, &role, with_kind(2, 3, back));
        assert_eq!(resumed(&memory), [2, 4]);
        let before = memory.ready.len();
        hand_over(&mut memory, &role, event(2, 1));
        assert_eq!(memory.ready.len(), before, "a replayed event is dropped");
    }

    #[test]
    fn the_memory_of_finished_chats_is_bounded_and_a_hello_fits() {
        let role = Role::Customer;
        let mut memory = Memory::default();
        let chats = (MAX_FINISHED + 100) as u64;
        for chat in 1..=chats {
            hand_over(&mut memory, &role, event(chat, 1));
            let ended = ChatEventKind::Ended {
                by: Party::Customer,
            };
            hand_over(&mut memory, &role, with_kind(chat, 2, ended));
            memory.ready.clear();
        }
        assert_eq!(memory.positions.len(), MAX_FINISHED);
        assert!(resumed(&memory).is_empty());
        // Live chats beyond what a hello carries: the newest go.
        for chat in 0..(MAX_RESUME_POINTS as u64 + 10) {
            hand_over(&mut memory, &role, event(1_000_000 + chat, 1));
        }
        let points = resumed(&memory);
        assert_eq!(points.len(), MAX_RESUME_POINTS);
        assert_eq!(points[0], 1_000_010);
    }

    /// What [`super::order`] made ready for `event`.
    fn order(
        positions: &mut HashMap<ChatId, u64>,
        held: &mut HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
        event: ChatEvent,
    ) -> Vec<ChatEvent> {
        let mut ready = VecDeque::new();
        super::order(positions, held, event, &mut ready);
        ready.into()
    }

    fn seqs(events: Vec<ChatEvent>) -> Vec<u64> {
        events.iter().map(|event| event.seq).collect()
    }

    #[test]
    fn events_from_several_streams_reach_the_application_in_order_once() {
        let (mut positions, mut held) = (HashMap::new(), HashMap::new());
        assert_eq!(seqs(order(&mut positions, &mut held, event(1, 1))), [1]);
        // 3 and 4 overtook 2 on another stream: held until 2 comes.
        assert!(order(&mut positions, &mut held, event(1, 3)).is_empty());
        assert!(order(&mut positions, &mut held, event(1, 4)).is_empty());
        // Another chat is not held up.
        assert_eq!(seqs(order(&mut positions, &mut held, event(2, 1))), [1]);
        assert_eq!(
            seqs(order(&mut positions, &mut held, event(1, 2))),
            [2, 3, 4]
        );
        // A replay after a reconnect repeats what was handed over: dropped.
        assert!(order(&mut positions, &mut held, event(1, 3)).is_empty());
        assert_eq!(seqs(order(&mut positions, &mut held, event(1, 5))), [5]);
        assert!(held.is_empty());
    }

    #[test]
    fn past_the_hold_limit_every_held_event_goes_in_seq_order() {
        let (mut positions, mut held) = (HashMap::new(), HashMap::new());
        assert_eq!(seqs(order(&mut positions, &mut held, event(1, 1))), [1]);
        // Seq 2 never comes; 3 and on fill the hold to its limit...
        let limit = MAX_HELD as u64;
        for seq in 3..3 + limit {
            assert!(order(&mut positions, &mut held, event(1, seq)).is_empty());
        }
        // ...and one more lets all of them go, the newest last.
        let ready = order(&mut positions, &mut held, event(1, 3 + limit));
        let expected: Vec<u64> = (3..=3 + limit).collect();
        assert_eq!(seqs(ready), expected);
        assert!(held.is_empty());
        // Nothing at or below what went is handed over again.
        assert!(order(&mut positions, &mut held, event(1, 2)).is_empty());
    }
}
