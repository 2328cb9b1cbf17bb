//! The root of the supervision tree and the handle connection tasks use.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::oneshot;

use crate::actors::HubError;
use crate::actors::agent::{AgentActor, AgentArgs, AgentMsg};
use crate::actors::channel::{ChannelActor, ChannelMsg, Waiting};
use crate::actors::chat::{ChatActor, ChatArgs, ChatMsg};
use crate::actors::sink::{ConnId, EventSink};
use crate::core::ticket::check_offline_form;
use crate::core::{
    AgentId, Assignment, ChannelId, ChannelSettings, Chat, ChatError, ChatEvent, ChatId, ChatState,
    ClaimCell, Claimed, Claimer, ContactCard, ContactChat, Customer, FileId, FileRef, ItemDraft,
    ItemId, ItemKind, ItemRef, KnowledgeItem, OfflineForm, Presence, QueueRow, Scope,
    SessionSummary, Status, Ticket, TicketId, TicketSource, TicketSummary, Timestamp,
};
use crate::store::{Counter, Op, Store, StoreError, TranscriptPage};

/// How many ended sessions the hub keeps for recent sessions.
pub const RECORDS_KEPT: usize = 100_000;

/// The shortest secret a customer may start a chat with.
pub const MIN_SECRET_BYTES: usize = 16;

/// The longest secret a customer may start a chat with.
pub const MAX_SECRET_BYTES: usize = 256;

/// The most rows one recent-sessions page may ask for.
pub const MAX_SESSIONS_PAGE: usize = 100;

/// An agent as configured.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Sign-in name.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// The secret the agent signs in with.
    pub token: String,
    /// Channels whose queues the agent works.
    pub channels: Vec<ChannelId>,
    /// The most chats the agent may hold at once.
    pub capacity: u64,
}

/// What the hub serves: its channels and agents.
#[derive(Clone, Debug, Default)]
pub struct HubConfig {
    /// The channels customers can start chats on.
    pub channels: Vec<ChannelSettings>,
    /// The agents who may sign in.
    pub agents: Vec<AgentConfig>,
    /// How long an agent whose last connection closed stays Present, so a
    /// reconnect does not flap.
    pub presence_grace: Duration,
    /// Where shared files' bytes are kept.
    pub files_dir: std::path::PathBuf,
}

/// What starting a chat came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatStart {
    /// The chat waits in the queue.
    Queued {
        /// The new chat.
        chat: ChatId,
        /// How many chats wait, this one included.
        waiting: u32,
    },
    /// Nobody is Present: the customer gets the offline form.
    Offline(OfflineForm),
}

/// Who makes a request, as far as a chat is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The customer connection with this id.
    Customer(ConnId),
    /// A signed-in agent.
    Agent(AgentId),
}

struct AgentEntry {
    config: AgentConfig,
    token_digest: Vec<u8>,
}

/// A live chat as the registry knows it.
pub(crate) struct ChatEntry {
    pub actor: ActorRef<ChatMsg>,
    pub channel: ChannelId,
    pub claim: Arc<ClaimCell>,
}

struct Shared {
    settings: HashMap<ChannelId, ChannelSettings>,
    channels: DashMap<ChannelId, ActorRef<ChannelMsg>>,
    agents: HashMap<AgentId, AgentEntry>,
    agent_actors: DashMap<AgentId, ActorRef<AgentMsg>>,
    chats: DashMap<ChatId, ChatEntry>,
    /// The agent of every active chat.
    assignments: DashMap<ChatId, AgentId>,
    /// Live chats by the digest of their customer's secret, so a start
    /// retried while the first is still being stored finds it.
    live_tokens: DashMap<Vec<u8>, ChatId>,
    presence: Presence,
    presence_grace: Duration,
    next_chat: AtomicU64,
    next_ticket: AtomicU64,
    next_item: AtomicU64,
    next_file: AtomicU64,
    files_dir: std::path::PathBuf,
    next_conn: AtomicU64,
    failures: AtomicU64,
    root: ActorRef<HubMsg>,
    store: Store,
}
/// A cheap, cloneable handle on a running hub: the API connection tasks
/// call. Lookups of chats, channels and agents go through lock-free maps;
/// only sign-in of a new agent goes through the root actor.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("channels", &self.shared.settings.len())
            .field("chats", &self.shared.chats.len())
            .finish()
    }
}

fn digest(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

fn gone(what: impl std::fmt::Display) -> HubError {
    HubError::Unavailable(what.to_string())
}

fn check_page(limit: usize) -> Result<(), HubError> {
    if limit == 0 || limit > MAX_SESSIONS_PAGE {
        return Err(HubError::Invalid(format!(
            "a page holds 1 to {MAX_SESSIONS_PAGE} rows, not {limit}"
        )));
    }
    Ok(())
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, HubError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| gone(format!("a store task failed: {err}")))?
        .map_err(store_error)
}

fn store_error(err: StoreError) -> HubError {
    HubError::Unavailable(err.to_string())
}

/// Awaits an actor's answer; a dropped reply port means the actor failed.
async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, HubError> {
    rx.await
        .map_err(|_| gone("the actor stopped before answering"))
}

impl Hub {
    /// Starts the supervision tree (the root and one actor per channel)
    /// over `store`, and recovers what the store holds: every chat that had
    /// not ended is live again, queued chats in their original order with
    /// their original wait time, active chats with their agent.
    pub async fn start(config: HubConfig, store: Store) -> Result<Hub, HubError> {
        let (root, _) = Actor::spawn(None, HubActor, ())
            .await
            .map_err(|err| gone(format!("cannot start the hub: {err}")))?;
        let channels = DashMap::new();
        let mut settings = HashMap::new();
        for channel in config.channels {
            let (actor, _) =
                Actor::spawn_linked(None, ChannelActor, channel.clone(), root.get_cell())
                    .await
                    .map_err(|err| gone(format!("cannot start channel {}: {err}", channel.id)))?;
            channels.insert(channel.id.clone(), actor);
            settings.insert(channel.id.clone(), channel);
        }
        let presence = Presence::new(settings.keys().cloned());
        let agents = config
            .agents
            .into_iter()
            .map(|agent| {
                presence.add_agent(agent.id.clone(), &agent.channels, agent.capacity);
                let entry = AgentEntry {
                    token_digest: digest(&agent.token),
                    config: agent,
                };
                (entry.config.id.clone(), entry)
            })
            .collect();
        let (last_chat, last_ticket, last_item, last_file) = blocking({
            let store = store.clone();
            move || {
                Ok((
                    store.last_chat_id()?,
                    store.last_ticket_id()?,
                    store.last_id(Counter::Knowledge)?,
                    store.last_id(Counter::Files)?,
                ))
            }
        })
        .await?;
        let hub = Hub {
            shared: Arc::new(Shared {
                settings,
                channels,
                agents,
                agent_actors: DashMap::new(),
                chats: DashMap::new(),
                assignments: DashMap::new(),
                live_tokens: DashMap::new(),
                presence,
                presence_grace: config.presence_grace,
                next_chat: AtomicU64::new(last_chat + 1),
                next_ticket: AtomicU64::new(last_ticket + 1),
                next_item: AtomicU64::new(last_item + 1),
                next_file: AtomicU64::new(last_file + 1),
                files_dir: config.files_dir,
                next_conn: AtomicU64::new(1),
                failures: AtomicU64::new(0),
                root: root.clone(),
                store,
            }),
        };
        root.cast(HubMsg::Init(hub.clone()))
            .map_err(|_| gone("the hub root stopped"))?;
        hub.recover().await?;
        Ok(hub)
    }

    /// Brings every stored chat that has not ended back to life.
    async fn recover(&self) -> Result<(), HubError> {
        let store = self.shared.store.clone();
        let stored = blocking(move || store.live_chats()).await?;
        let mut queued = Vec::new();
        let (mut active, mut skipped) = (0, 0);
        for stored in stored {
            let token = stored.token_digest;
            let chat = match Chat::restore(stored.events) {
                Ok(chat) => chat,
                Err(err) => {
                    tracing::error!("a stored chat cannot be restored: {err}");
                    skipped += 1;
                    continue;
                }
            };
            if self.channel(chat.channel()).is_none() {
                tracing::warn!(chat = %chat.id(), channel = %chat.channel(), "stored chat of a channel no longer configured");
                skipped += 1;
                continue;
            }
            match chat.state() {
                ChatState::Queued { since } => queued.push((*since, chat, token)),
                ChatState::Active { agent, .. } => {
                    if let Some(presence) = self.shared.presence.agent(agent) {
                        presence.capacity.force_reserve();
                    }
                    self.spawn_restored(chat, token).await?;
                    active += 1;
                }
                ChatState::Ended { .. } => {}
            }
        }
        queued.sort_by_key(|(since, chat, _)| (*since, chat.id()));
        let waiting = queued.len();
        for (_, chat, token) in queued {
            let (chat_actor, claim, row) = self.spawn_restored(chat, token).await?;
            self.enqueue(chat_actor, claim, row, true).await?;
        }
        tracing::info!(waiting, active, skipped, "recovered chats from the store");
        Ok(())
    }

    /// Starts the actor of a chat restored from the store.
    async fn spawn_restored(
        &self,
        chat: Chat,
        token_digest: Option<Vec<u8>>,
    ) -> Result<(ActorRef<ChatMsg>, Arc<ClaimCell>, QueueRow), HubError> {
        let claim = Arc::new(ClaimCell::new());
        let row = QueueRow {
            chat: chat.id(),
            channel: chat.channel().clone(),
            customer: chat.customer().clone(),
            first_message: crate::core::event::preview(chat.first_message()),
            since: match chat.state() {
                ChatState::Queued { since } => *since,
                _ => Timestamp::default(),
            },
        };
        if !matches!(chat.state(), ChatState::Queued { .. }) {
            // Not waiting: nobody may claim it from a queue.
            let _ = claim.claim(Claimer::Agent);
        }
        let chat_last_seq = chat.events().len() as u64;
        let args = ChatArgs {
            hub: self.clone(),
            chat,
            claim: claim.clone(),
            customer_conn: None,
            token_digest,
            started: None,
            durable: chat_last_seq,
            start_ops: Vec::new(),
        };
        let (actor, _) = Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
            .await
            .map_err(|err| gone(format!("cannot start a restored chat: {err}")))?;
        Ok((actor, claim, row))
    }

    /// Puts a chat into its channel's queue; answers how many wait.
    async fn enqueue(
        &self,
        chat: ActorRef<ChatMsg>,
        claim: Arc<ClaimCell>,
        row: QueueRow,
        restored: bool,
    ) -> Result<u32, HubError> {
        let channel = self
            .channel_actor(&row.channel)
            .ok_or_else(|| HubError::UnknownChannel(row.channel.clone()))?;
        let (tx, rx) = oneshot::channel();
        channel
            .cast(ChannelMsg::Enqueue {
                waiting: Waiting {
                    generation: claim.generation(),
                    row,
                    claim,
                    chat,
                },
                restored,
                reply: tx.into(),
            })
            .map_err(|_| gone("the channel's actor stopped"))?;
        answer(rx).await?
    }

    /// Queues again, in enqueue order, every live chat of `channel` that
    /// waits unclaimed: after its channel actor was restarted.
    async fn requeue_waiting(&self, channel: &ChannelId) -> usize {
        let waiting: Vec<(ActorRef<ChatMsg>, Arc<ClaimCell>)> = self
            .shared
            .chats
            .iter()
            .filter(|entry| &entry.channel == channel && entry.claim.holder().is_none())
            .map(|entry| (entry.actor.clone(), entry.claim.clone()))
            .collect();
        let mut rows = Vec::new();
        for (actor, claim) in waiting {
            let (tx, rx) = oneshot::channel();
            if actor.cast(ChatMsg::WaitingRow { reply: tx.into() }).is_ok()
                && let Ok(Some(row)) = answer(rx).await
            {
                rows.push((row, actor, claim));
            }
        }
        rows.sort_by_key(|(row, _, _)| (row.since, row.chat));
        let count = rows.len();
        for (row, actor, claim) in rows {
            let generation = claim.generation();
            if let Err(err) = self.enqueue_at(actor, claim, generation, row).await {
                tracing::error!("a waiting chat could not rejoin its queue: {err}");
            }
        }
        count
    }

    /// Rebuilds a chat whose actor failed from what the store holds.
    async fn restore_chat(&self, chat: ChatId) -> Result<(), HubError> {
        let store = self.shared.store.clone();
        let Some(stored) = blocking(move || store.chat(chat)).await? else {
            return Ok(());
        };
        let token = stored.token_digest;
        let restored = Chat::restore(stored.events).map_err(|err| gone(err.to_string()))?;
        if matches!(restored.state(), ChatState::Ended { .. }) {
            return Ok(());
        }
        let queued = matches!(restored.state(), ChatState::Queued { .. });
        let (actor, claim, row) = self.spawn_restored(restored, token).await?;
        if queued {
            self.enqueue(actor, claim, row, true).await?;
        }
        tracing::warn!(%chat, "chat restarted from the store");
        Ok(())
    }

    /// Stops every actor and waits for the root to finish.
    pub async fn shutdown(&self) {
        let root = &self.shared.root;
        root.stop_children_and_wait(Some("shutdown".into()), None)
            .await;
        let _ = root.stop_and_wait(Some("shutdown".into()), None).await;
        self.shared.chats.clear();
        self.shared.agent_actors.clear();
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }

    /// The durable store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The actor of a signed-in agent, if one runs.
    pub(crate) fn agent_actor_ref(&self, agent: &AgentId) -> Option<ActorRef<AgentMsg>> {
        self.shared
            .agent_actors
            .get(agent)
            .map(|actor| actor.clone())
    }
    /// A fresh connection id.
    pub fn next_conn(&self) -> ConnId {
        ConnId(self.shared.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// How many actors have failed since the hub started.
    pub fn actor_failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// How many chats are live (queued or active).
    pub fn live_chats(&self) -> usize {
        self.shared.chats.len()
    }

    /// A channel's settings.
    pub fn channel(&self, channel: &ChannelId) -> Option<&ChannelSettings> {
        self.shared.settings.get(channel)
    }

    /// Checks an agent's credentials; the agent's configuration on success.
    pub fn authenticate(&self, agent: &AgentId, token: &str) -> Result<&AgentConfig, HubError> {
        match self.shared.agents.get(agent) {
            Some(entry) if entry.token_digest == digest(token) => Ok(&entry.config),
            _ => Err(HubError::Unauthorized),
        }
    }

    /// The channels an agent is a member of.
    pub fn member_channels(&self, agent: &AgentId) -> &[ChannelId] {
        self.shared
            .agents
            .get(agent)
            .map(|entry| entry.config.channels.as_slice())
            .unwrap_or_default()
    }

    fn is_member(&self, agent: &AgentId, channel: &ChannelId) -> bool {
        self.member_channels(agent).contains(channel)
    }

    pub(crate) fn channel_actor(&self, channel: &ChannelId) -> Option<ActorRef<ChannelMsg>> {
        self.shared.channels.get(channel).map(|actor| actor.clone())
    }

    fn chat_actor(&self, chat: ChatId) -> Option<ActorRef<ChatMsg>> {
        self.shared
            .chats
            .get(&chat)
            .map(|entry| entry.actor.clone())
    }

    pub(crate) fn register_chat(&self, chat: ChatId, entry: ChatEntry) {
        self.shared.chats.insert(chat, entry);
    }

    /// Every agent's status and capacity, and every channel's Present count.
    pub fn presence(&self) -> &Presence {
        &self.shared.presence
    }

    /// Frees one of `agent`'s chat slots.
    pub(crate) fn release_slot(&self, agent: &AgentId) {
        if let Some(presence) = self.shared.presence.agent(agent) {
            presence.capacity.release();
        }
    }

    /// Takes one of `agent`'s chat slots, or refuses with `AtCapacity`.
    fn reserve_slot(&self, agent: &AgentId) -> Result<(), HubError> {
        let presence = self
            .shared
            .presence
            .agent(agent)
            .ok_or(HubError::Unauthorized)?;
        if presence.capacity.try_reserve() {
            Ok(())
        } else {
            Err(HubError::AtCapacity(presence.capacity.max()))
        }
    }

    /// Forgets a chat's actor, unless a newer actor already took its place.
    pub(crate) fn unregister_chat(&self, chat: ChatId, actor: &ActorRef<ChatMsg>) {
        self.shared
            .chats
            .remove_if(&chat, |_, entry| entry.actor.get_id() == actor.get_id());
    }
    /// Signs a connection of an (authenticated) agent in: from now on it
    /// receives the agent's events. Returns the agent's status.
    pub async fn attach_agent(
        &self,
        agent: &AgentId,
        sink: EventSink,
        resume: Vec<(ChatId, u64)>,
    ) -> Result<Status, HubError> {
        let actor = self.agent_actor(agent).await?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(AgentMsg::Attach {
                sink,
                resume,
                reply: tx.into(),
            })
            .map_err(|_| gone("the agent's actor stopped"))?;
        answer(rx).await
    }

    /// A connection of an agent closed.
    pub fn detach_agent(&self, agent: &AgentId, conn: ConnId) {
        if let Some(actor) = self.shared.agent_actors.get(agent) {
            let _ = actor.cast(AgentMsg::Detach { conn });
        }
    }

    async fn agent_actor(&self, agent: &AgentId) -> Result<ActorRef<AgentMsg>, HubError> {
        if let Some(actor) = self.shared.agent_actors.get(agent) {
            return Ok(actor.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .root
            .cast(HubMsg::AgentActor {
                agent: agent.clone(),
                reply: tx.into(),
            })
            .map_err(|_| gone("the hub root stopped"))?;
        answer(rx).await?
    }

    /// Sets an agent Present or Absent.
    pub async fn set_status(&self, agent: &AgentId, status: Status) -> Result<(), HubError> {
        let actor = self.agent_actor(agent).await?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(AgentMsg::SetStatus {
                status,
                reply: tx.into(),
            })
            .map_err(|_| gone("the agent's actor stopped"))?;
        answer(rx).await
    }

    /// Starts a chat for the customer on connection `sink` and queues it,
    /// or, when no member agent of the channel is Present and the channel
    /// has an offline form, answers with the form.
    pub async fn start_chat(
        &self,
        sink: EventSink,
        channel: ChannelId,
        customer: Customer,
        client_id: u64,
        text: String,
        secret: String,
    ) -> Result<ChatStart, HubError> {
        let settings = self
            .channel(&channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        crate::core::chat::check_text(&text)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len()) {
            return Err(HubError::Invalid(format!(
                "a chat's secret needs {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let token = digest(&secret);
        // A start retried after a lost answer finds the chat it made.
        let live = self.shared.live_tokens.get(&token).map(|chat| *chat);
        let known = match live {
            Some(chat) => Some(chat),
            None => {
                let (store, token) = (self.shared.store.clone(), token.clone());
                blocking(move || store.chat_by_token(&token)).await?
            }
        };
        if let Some(chat) = known {
            self.resume_customer(sink, chat, &secret, 0).await?;
            return Ok(ChatStart::Queued { chat, waiting: 0 });
        }
        if settings.offline_form && self.shared.presence.present_count(&channel) == 0 {
            metrics::counter!("chathub_chats_offline_total", "channel" => channel.to_string())
                .increment(1);
            return Ok(ChatStart::Offline(OfflineForm::for_channel(
                channel,
                settings.offline_message.as_deref(),
            )));
        }
        let id = ChatId(self.shared.next_chat.fetch_add(1, Ordering::Relaxed));
        match self.shared.live_tokens.entry(token.clone()) {
            dashmap::Entry::Occupied(existing) => {
                // The same start raced in twice: the first one wins.
                let chat = *existing.get();
                drop(existing);
                self.resume_customer(sink, chat, &secret, 0).await?;
                return Ok(ChatStart::Queued { chat, waiting: 0 });
            }
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(id);
            }
        }
        let now = Timestamp::now();
        let first_message = crate::core::event::preview(&text);
        let chat = Chat::start(
            id,
            channel.clone(),
            customer.clone(),
            client_id,
            text,
            settings.welcome.as_deref(),
            now,
        )?;
        let claim = Arc::new(ClaimCell::new());
        let (started_tx, started_rx) = oneshot::channel();
        let mut start_ops = vec![Op::Token {
            chat: id.0,
            digest: token.clone(),
        }];
        start_ops.extend(
            crate::store::contact_keys(chat.customer())
                .into_iter()
                .map(|key| Op::ContactChat { key, chat: id.0 }),
        );
        let args = ChatArgs {
            hub: self.clone(),
            chat,
            claim: claim.clone(),
            customer_conn: Some(sink.conn()),
            token_digest: Some(token.clone()),
            started: Some(started_tx),
            durable: 0,
            start_ops,
        };
        let (chat_actor, _) =
            Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
                .await
                .map_err(|err| gone(format!("cannot start the chat: {err}")))?;
        let channel_name = channel.clone();
        let row = QueueRow {
            chat: id,
            channel,
            customer,
            first_message,
            since: now,
        };
        // The start is made durable while the chat joins the queue; the
        // customer hears of it once both are done.
        let (durable, queued) = tokio::join!(
            answer(started_rx),
            self.enqueue(chat_actor.clone(), claim, row, false)
        );
        match (durable.and_then(|durable| durable), queued) {
            (Ok(()), Ok(waiting)) => {
                let _ = chat_actor.cast(ChatMsg::AttachCustomer { sink, after: 0 });
                metrics::counter!("chathub_chats_started_total", "channel" => channel_name.to_string()).increment(1);
                Ok(ChatStart::Queued { chat: id, waiting })
            }
            (Err(err), _) => Err(err),
            (Ok(()), Err(err)) => {
                let _ = chat_actor.cast(ChatMsg::Discard);
                Err(err)
            }
        }
    }

    /// A customer's new connection takes over a chat it started earlier (by
    /// its secret) and receives its events after `after`.
    pub async fn resume_customer(
        &self,
        sink: EventSink,
        chat: ChatId,
        secret: &str,
        after: u64,
    ) -> Result<(), HubError> {
        let token = digest(secret);
        if self.chat_actor(chat).is_some() {
            let resumed = self
                .ask_chat(chat, {
                    let (sink, token) = (sink.clone(), token.clone());
                    move |reply| ChatMsg::Resume {
                        sink,
                        token,
                        after,
                        reply,
                    }
                })
                .await;
            match resumed {
                // Ended while we asked: fall through to the stored copy.
                Err(HubError::Chat(ChatError::Ended)) | Err(HubError::UnknownChat(_)) => {}
                other => return other,
            }
        }
        let store = self.shared.store.clone();
        let stored = blocking(move || store.chat(chat))
            .await?
            .ok_or(HubError::UnknownChat(chat))?;
        if stored.token_digest.as_deref() != Some(token.as_slice()) {
            return Err(HubError::NotYourChat(chat));
        }
        for event in stored.events.into_iter().filter(|event| event.seq > after) {
            if !sink.deliver(crate::actors::sink::Outbound::Chat(Arc::new(event))) {
                return Err(gone("the connection fell behind"));
            }
        }
        Ok(())
    }

    /// The chats an agent holds now.
    pub(crate) fn assigned_to(&self, agent: &AgentId) -> Vec<ChatId> {
        self.shared
            .assignments
            .iter()
            .filter(|entry| entry.value() == agent)
            .map(|entry| *entry.key())
            .collect()
    }

    /// A chat with this secret digest is live (or no longer, with `None`).
    pub(crate) fn set_live_token(&self, token: &[u8], chat: Option<ChatId>) {
        match chat {
            Some(chat) => {
                self.shared.live_tokens.insert(token.to_vec(), chat);
            }
            None => {
                self.shared.live_tokens.remove(token);
            }
        }
    }

    pub(crate) fn set_assignment(&self, chat: ChatId, agent: AgentId) {
        self.shared.assignments.insert(chat, agent);
        metrics::gauge!("chathub_chats_active").set(self.shared.assignments.len() as f64);
    }

    pub(crate) fn clear_assignment(&self, chat: ChatId) {
        self.shared.assignments.remove(&chat);
        metrics::gauge!("chathub_chats_active").set(self.shared.assignments.len() as f64);
    }

    /// The live chat actor of `chat`, if any.
    pub(crate) fn live_chat(&self, chat: ChatId) -> Option<ActorRef<ChatMsg>> {
        self.chat_actor(chat)
    }

    /// Stored events of a chat of one of the agent's channels after `after`.
    pub(crate) async fn stored_events_for(
        &self,
        agent: &AgentId,
        chat: ChatId,
        after: u64,
    ) -> Result<Vec<ChatEvent>, HubError> {
        let store = self.shared.store.clone();
        let stored = blocking(move || store.chat(chat))
            .await?
            .ok_or(HubError::UnknownChat(chat))?;
        let channel = match stored.events.first().map(|event| &event.kind) {
            Some(crate::core::ChatEventKind::Started { channel, .. }) => channel.clone(),
            _ => return Err(HubError::UnknownChat(chat)),
        };
        if !self.is_member(agent, &channel) {
            return Err(HubError::NotYourChat(chat));
        }
        Ok(stored
            .events
            .into_iter()
            .filter(|event| event.seq > after)
            .collect())
    }

    /// Takes a slot of `agent` if one is free.
    pub(crate) fn try_reserve_slot(&self, agent: &AgentId) -> bool {
        self.shared
            .presence
            .agent(agent)
            .is_some_and(|presence| presence.capacity.try_reserve())
    }

    /// Puts a chat (back) into its channel's queue as wait `generation`,
    /// beyond the queue limit if need be (the chat was accepted already).
    pub(crate) async fn enqueue_at(
        &self,
        chat: ActorRef<ChatMsg>,
        claim: Arc<ClaimCell>,
        generation: u64,
        row: QueueRow,
    ) -> Result<u32, HubError> {
        let channel = self
            .channel_actor(&row.channel)
            .ok_or_else(|| HubError::UnknownChannel(row.channel.clone()))?;
        let (tx, rx) = oneshot::channel();
        channel
            .cast(ChannelMsg::Enqueue {
                waiting: Waiting {
                    generation,
                    row,
                    claim,
                    chat,
                },
                restored: true,
                reply: tx.into(),
            })
            .map_err(|_| gone("the channel's actor stopped"))?;
        answer(rx).await?
    }

    /// The agent who has `chat` hands it to `to`, who must be a Present
    /// member of the chat's channel with a free slot. `to` gets it with the
    /// whole transcript; the customer is told.
    pub async fn transfer_to_agent(
        &self,
        by: AgentId,
        chat: ChatId,
        to: AgentId,
    ) -> Result<(), HubError> {
        let channel = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone())
            .ok_or(HubError::UnknownChat(chat))?;
        let presence = self
            .shared
            .presence
            .agent(&to)
            .ok_or(HubError::AgentUnavailable(to.clone()))?;
        if !self.is_member(&to, &channel) || presence.status() != Status::Present {
            return Err(HubError::AgentUnavailable(to));
        }
        if !presence.capacity.try_reserve() {
            return Err(HubError::AgentUnavailable(to));
        }
        let done = self
            .ask_chat(chat, {
                let to = to.clone();
                move |reply| ChatMsg::TransferToAgent { by, to, reply }
            })
            .await;
        if done.is_err() {
            presence.capacity.release();
        }
        done
    }

    /// The agent a chat was transferred to declines it: it returns to the
    /// agent who transferred it (if they have room) or to the queue.
    pub fn decline_transfer(
        &self,
        by: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::Decline { by, reply })
    }

    /// The agent who has `chat` sends it to `channel`'s queue (another
    /// channel, or back to its own); it keeps its history.
    pub fn transfer_to_channel(
        &self,
        by: AgentId,
        chat: ChatId,
        channel: ChannelId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        let known = self.channel(&channel).is_some();
        let asked = self.ask_chat(chat, {
            let channel = channel.clone();
            move |reply| ChatMsg::Requeue { by, channel, reply }
        });
        async move {
            if !known {
                return Err(HubError::UnknownChannel(channel));
            }
            asked.await
        }
    }

    /// Makes a ticket from a chat the agent has, with its transcript.
    pub async fn create_ticket(
        &self,
        by: AgentId,
        chat: ChatId,
        subject: String,
        note: String,
    ) -> Result<TicketId, HubError> {
        if subject.trim().is_empty() || subject.len() > crate::core::knowledge::MAX_TITLE_BYTES {
            return Err(HubError::Invalid(
                "a ticket's subject needs 1 to 200 bytes".into(),
            ));
        }
        if note.len() > crate::core::chat::MAX_MESSAGE_BYTES {
            return Err(HubError::Invalid("the note is too long".into()));
        }
        let ticket = TicketId(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        self.ask_chat(chat, move |reply| ChatMsg::CreateTicket {
            by,
            ticket,
            subject,
            note,
            reply,
        })
        .await
    }

    /// The customer comes back to an ended chat through the end form: it
    /// is live again with the same transcript, with its last agent if that
    /// agent is Present and has room, otherwise in its channel's queue.
    pub async fn return_to_chat(
        &self,
        sink: EventSink,
        chat: ChatId,
        secret: String,
    ) -> Result<(), HubError> {
        if self.chat_actor(chat).is_some() {
            // Still (or again) live: nothing to reopen, just take it over.
            return self.resume_customer(sink, chat, &secret, 0).await;
        }
        let store = self.shared.store.clone();
        let stored = blocking(move || store.chat(chat))
            .await?
            .ok_or(HubError::UnknownChat(chat))?;
        if stored.token_digest.as_deref() != Some(digest(&secret).as_slice()) {
            return Err(HubError::NotYourChat(chat));
        }
        let token = stored.token_digest.clone();
        let mut restored = Chat::restore(stored.events).map_err(|err| gone(err.to_string()))?;
        let durable = restored.events().len() as u64;
        let settings = self
            .channel(restored.channel())
            .ok_or_else(|| HubError::UnknownChannel(restored.channel().clone()))?;
        if !settings.end_form {
            return Err(HubError::Chat(ChatError::NotReturnable));
        }
        let window = settings.return_window;
        let last_agent = restored
            .events()
            .iter()
            .rev()
            .find_map(|event| match &event.kind {
                crate::core::ChatEventKind::Assigned { agent }
                | crate::core::ChatEventKind::TransferredToAgent { to: agent, .. } => {
                    Some(agent.clone())
                }
                crate::core::ChatEventKind::TransferDeclined {
                    to: Some(agent), ..
                } => Some(agent.clone()),
                crate::core::ChatEventKind::Reopened { agent: Some(agent) } => Some(agent.clone()),
                _ => None,
            });
        let agent = last_agent.filter(|agent| {
            self.shared.presence.agent(agent).is_some_and(|presence| {
                presence.status() == Status::Present && presence.capacity.try_reserve()
            })
        });
        if let Err(err) = restored.reopen(agent.clone(), window, Timestamp::now()) {
            if let Some(agent) = &agent {
                self.release_slot(agent);
            }
            return Err(err.into());
        }
        let claim = Arc::new(ClaimCell::new());
        if agent.is_some() {
            let _ = claim.claim(Claimer::Agent);
        }
        let (started_tx, started_rx) = oneshot::channel();
        let args = ChatArgs {
            hub: self.clone(),
            chat: restored,
            claim,
            customer_conn: Some(sink.conn()),
            token_digest: token,
            started: Some(started_tx),
            durable,
            start_ops: Vec::new(),
        };
        let (actor, _) = Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
            .await
            .map_err(|err| gone(format!("cannot restart the chat: {err}")))?;
        match answer(started_rx).await.and_then(|durable| durable) {
            Ok(()) => {
                let _ = actor.cast(ChatMsg::AttachCustomer { sink, after: 0 });
                Ok(())
            }
            Err(err) => {
                if let Some(agent) = &agent {
                    self.release_slot(agent);
                }
                Err(err)
            }
        }
    }

    /// The side panel: a contact's earlier chats and tickets, found by
    /// email or name (case does not matter).
    pub async fn contact(
        &self,
        email: Option<String>,
        name: Option<String>,
    ) -> Result<ContactCard, HubError> {
        let who = Customer { name, email };
        let keys = crate::store::contact_keys(&who);
        let Some(key) = keys.first().cloned() else {
            return Err(HubError::Invalid(
                "look a contact up by email or name".into(),
            ));
        };
        let store = self.shared.store.clone();
        blocking(move || {
            let history = store.contact(&key)?;
            let mut chats = Vec::new();
            for chat in history.chats {
                let Some(stored) = store.chat(chat)? else {
                    continue;
                };
                let Ok(restored) = Chat::restore(stored.events) else {
                    continue;
                };
                let session = store.session(chat)?;
                chats.push(ContactChat {
                    chat,
                    channel: restored.channel().clone(),
                    customer: restored.customer().clone(),
                    started: restored.events().first().map(|e| e.at).unwrap_or_default(),
                    ended: session.as_ref().map(|session| session.ended),
                    agent: session
                        .and_then(|session| session.agent)
                        .or_else(|| restored.agent().cloned()),
                });
            }
            let mut tickets = Vec::new();
            for ticket in history.tickets {
                if let Some(ticket) = store.ticket(ticket)? {
                    tickets.push(ticket.summary());
                }
            }
            let first_contact = chats
                .iter()
                .map(|chat| chat.started)
                .chain(tickets.iter().map(|ticket| ticket.created))
                .min();
            let last_contact = chats
                .iter()
                .map(|chat| chat.ended.unwrap_or(chat.started))
                .chain(tickets.iter().map(|ticket| ticket.created))
                .max();
            Ok(ContactCard {
                key,
                chats,
                tickets,
                first_contact,
                last_contact,
            })
        })
        .await
    }

    /// Whether `agent` may see and use `scope`'s items.
    fn may_use(&self, agent: &AgentId, scope: &Scope) -> bool {
        match scope {
            Scope::Channel(channel) => self.is_member(agent, channel),
            Scope::Personal(owner) => owner == agent,
        }
    }

    /// Creates a quick reply, FAQ article or template.
    pub async fn create_item(
        &self,
        agent: &AgentId,
        draft: ItemDraft,
    ) -> Result<KnowledgeItem, HubError> {
        draft
            .check()
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        if !self.may_use(agent, &draft.scope) {
            return Err(HubError::NotAllowed(
                "items of a channel you do not work, or someone else's".into(),
            ));
        }
        let id = ItemId(self.shared.next_item.fetch_add(1, Ordering::Relaxed));
        let item = draft.into_item(id);
        self.write(vec![Op::Knowledge(Box::new(item.clone()))])
            .await?;
        Ok(item)
    }

    /// Replaces an item's text, title, shortcut or scope.
    pub async fn update_item(
        &self,
        agent: &AgentId,
        id: ItemId,
        draft: ItemDraft,
    ) -> Result<KnowledgeItem, HubError> {
        draft
            .check()
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        let current = self.item(agent, id).await?;
        if !self.may_use(agent, &current.scope) || !self.may_use(agent, &draft.scope) {
            return Err(HubError::UnknownItem);
        }
        let item = draft.into_item(id);
        self.write(vec![Op::Knowledge(Box::new(item.clone()))])
            .await?;
        Ok(item)
    }

    /// Deletes an item.
    pub async fn delete_item(&self, agent: &AgentId, id: ItemId) -> Result<(), HubError> {
        self.item(agent, id).await?;
        self.write(vec![Op::ForgetKnowledge(id)]).await
    }

    /// The items `agent` may use: their channels' and their own, of `kind`
    /// if given, by title.
    pub async fn items(
        &self,
        agent: &AgentId,
        kind: Option<ItemKind>,
    ) -> Result<Vec<KnowledgeItem>, HubError> {
        let store = self.shared.store.clone();
        let mut items: Vec<KnowledgeItem> = blocking(move || store.knowledge())
            .await?
            .into_iter()
            .filter(|item| {
                kind.is_none_or(|kind| item.kind == kind) && self.may_use(agent, &item.scope)
            })
            .collect();
        items.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    async fn item(&self, agent: &AgentId, id: ItemId) -> Result<KnowledgeItem, HubError> {
        let store = self.shared.store.clone();
        match blocking(move || store.knowledge_item(id)).await? {
            Some(item) if self.may_use(agent, &item.scope) => Ok(item),
            _ => Err(HubError::UnknownItem),
        }
    }

    /// Sends a knowledge item into a chat the agent has, placeholders
    /// filled in. `item` is an id, or a quick reply's shortcut (the agent's
    /// own before the channel's).
    pub async fn insert_item(
        &self,
        agent: &AgentId,
        chat: ChatId,
        client_id: u64,
        item: ItemRef,
    ) -> Result<u64, HubError> {
        let item = match item {
            ItemRef::Id(id) => self.item(agent, id).await?,
            ItemRef::Shortcut(shortcut) => {
                let mut matching: Vec<KnowledgeItem> = self
                    .items(agent, None)
                    .await?
                    .into_iter()
                    .filter(|item| item.shortcut.as_deref() == Some(shortcut.as_str()))
                    .collect();
                matching.sort_by_key(|item| !matches!(item.scope, Scope::Personal(_)));
                matching.into_iter().next().ok_or(HubError::UnknownItem)?
            }
        };
        let agent_name = self
            .shared
            .agents
            .get(agent)
            .map_or_else(|| agent.to_string(), |entry| entry.config.name.clone());
        let by = agent.clone();
        self.ask_chat(chat, move |reply| ChatMsg::PostKnowledge {
            by,
            agent_name,
            client_id,
            body: item.body,
            reply,
        })
        .await
    }

    /// The most bytes a file shared in `chat`'s channel may have.
    pub fn file_limit(&self, chat: ChatId) -> Option<u64> {
        let channel = self.shared.chats.get(&chat)?.channel.clone();
        self.channel(&channel).map(|settings| settings.file_limit)
    }

    /// Where a shared file's bytes live.
    pub fn file_path(&self, id: FileId) -> std::path::PathBuf {
        self.shared.files_dir.join(id.0.to_string())
    }

    /// A fresh file id.
    pub fn next_file(&self) -> FileId {
        FileId(self.shared.next_file.fetch_add(1, Ordering::Relaxed))
    }

    /// Shares a file whose bytes are durably on disk at
    /// [`file_path`](Self::file_path) in `chat`; answers the event's seq.
    pub fn share_file(
        &self,
        caller: Caller,
        chat: ChatId,
        file: FileRef,
    ) -> impl Future<Output = Result<u64, HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::ShareFile {
            caller,
            file,
            reply,
        })
    }

    /// A shared file's description, if `caller` may download it: the chat's
    /// customer or agent, or an agent of its channel.
    pub async fn file_for(&self, caller: Caller, id: FileId) -> Result<FileRef, HubError> {
        let store = self.shared.store.clone();
        let stored = blocking(move || store.file(id))
            .await?
            .ok_or(HubError::UnknownItem)?;
        let allowed = match &caller {
            Caller::Agent(agent) => {
                let store = self.shared.store.clone();
                let chat = stored.chat;
                let channel = blocking(move || store.transcript(chat, 0))
                    .await?
                    .map(|page| page.channel);
                channel.is_some_and(|channel| self.is_member(agent, &channel))
            }
            Caller::Customer(_) => {
                let caller = caller.clone();
                self.ask_chat(stored.chat, move |reply| ChatMsg::IsParticipant {
                    caller,
                    reply,
                })
                .await
                .unwrap_or(false)
            }
        };
        if allowed {
            Ok(stored.file)
        } else {
            Err(HubError::UnknownItem)
        }
    }

    /// Writes `ops` durably.
    async fn write(&self, ops: Vec<Op>) -> Result<(), HubError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .store
            .writer()
            .submit(ops, Box::new(move |result| drop(tx.send(result))));
        answer(rx).await?.map_err(store_error)
    }

    /// Sends `msg` to a live chat's actor now and returns a future of its
    /// answer. Sending before returning keeps a connection's requests to one
    /// chat in the order they were read.
    fn ask_chat<T: Send + 'static>(
        &self,
        chat: ChatId,
        msg: impl FnOnce(RpcReplyPort<Result<T, HubError>>) -> ChatMsg,
    ) -> impl Future<Output = Result<T, HubError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = match self.chat_actor(chat) {
            Some(actor) => actor.cast(msg(tx.into())).map_err(|_| ()),
            None => Err(()),
        };
        let hub = self.clone();
        async move {
            match sent {
                Ok(()) => answer(rx).await?,
                Err(()) => Err(hub.missing_chat(chat).await),
            }
        }
    }

    /// Why a chat has no live actor: it ended, or it never existed.
    async fn missing_chat(&self, chat: ChatId) -> HubError {
        match self.recorded_transcript(chat, u64::MAX).await {
            Ok(Some(_)) => HubError::Chat(crate::core::ChatError::Ended),
            _ => HubError::UnknownChat(chat),
        }
    }

    /// Posts a message to a chat; answers its seq.
    pub fn post(
        &self,
        caller: Caller,
        chat: ChatId,
        client_id: u64,
        text: String,
    ) -> impl Future<Output = Result<u64, HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::Post {
            caller,
            client_id,
            text,
            reply,
        })
    }

    /// Ends a chat: an agent ends it, or its customer leaves.
    pub fn end_chat(
        &self,
        caller: Caller,
        chat: ChatId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::End { caller, reply })
    }

    /// Gives `agent` the chat that has waited longest in `channel`.
    pub fn get_next(
        &self,
        agent: AgentId,
        channel: ChannelId,
    ) -> impl Future<Output = Result<Assignment, HubError>> + Send + 'static {
        let hub = self.clone();
        async move {
            let channel_actor = hub
                .channel_actor(&channel)
                .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
            if !hub.is_member(&agent, &channel) {
                return Err(HubError::NotAMember(channel));
            }
            hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let (tx, rx) = oneshot::channel();
            let taken = match channel_actor.cast(ChannelMsg::TakeNext {
                agent: agent.clone(),
                reply: tx.into(),
            }) {
                Ok(()) => answer(rx).await.and_then(|taken| taken),
                Err(_) => Err(gone("the channel's actor stopped")),
            };
            if taken.is_err() {
                hub.release_slot(&agent);
            }
            taken
        }
    }

    /// Gives `agent` one particular waiting chat, racing with get-next and
    /// other pickers: exactly one wins; the others get `ChatAlreadyTaken`.
    pub fn pick(
        &self,
        agent: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<Assignment, HubError>> + Send + 'static {
        let hub = self.clone();
        async move {
            let (channel, claim, chat_actor) = match hub.shared.chats.get(&chat) {
                Some(entry) => (
                    entry.channel.clone(),
                    entry.claim.clone(),
                    entry.actor.clone(),
                ),
                None => return Err(hub.missing_chat(chat).await),
            };
            if !hub.is_member(&agent, &channel) {
                return Err(HubError::NotAMember(channel));
            }
            hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let picked = match claim.claim(Claimer::Agent) {
                Ok(_) => {
                    if let Some(channel) = hub.channel_actor(&channel) {
                        let _ = channel.cast(ChannelMsg::Withdraw(chat));
                    }
                    let (tx, rx) = oneshot::channel();
                    let assign = ChatMsg::Assign {
                        agent: agent.clone(),
                        reply: tx.into(),
                    };
                    match chat_actor.cast(assign) {
                        Ok(()) => answer(rx).await.and_then(|assigned| assigned),
                        Err(_) => Err(HubError::UnknownChat(chat)),
                    }
                }
                Err(Claimed(Claimer::Agent)) => Err(HubError::ChatAlreadyTaken(chat)),
                Err(Claimed(Claimer::Abandon)) => Err(HubError::Chat(ChatError::Ended)),
            };
            if picked.is_err() {
                hub.release_slot(&agent);
            }
            picked
        }
    }

    /// The Present member agents of `channel`.
    pub fn present_agents(&self, channel: &ChannelId) -> Result<Vec<AgentId>, HubError> {
        if self.channel(channel).is_none() {
            return Err(HubError::UnknownChannel(channel.clone()));
        }
        Ok(self.shared.presence.present_agents(channel))
    }

    /// Turns a submitted offline form into a ticket, answered once durable.
    pub async fn submit_offline_form(
        &self,
        channel: ChannelId,
        name: Option<String>,
        email: String,
        message: String,
    ) -> Result<TicketId, HubError> {
        let settings = self
            .channel(&channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        if !settings.offline_form {
            return Err(HubError::Invalid(format!(
                "channel {channel} has no offline form"
            )));
        }
        check_offline_form(name.as_deref(), &email, &message)
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        let id = TicketId(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        let subject = format!("Offline message from {}", name.as_deref().unwrap_or(&email));
        let ticket = Ticket {
            id,
            channel,
            source: TicketSource::OfflineForm,
            customer: Customer {
                name,
                email: Some(email),
            },
            subject,
            message,
            transcript: Vec::new(),
            created: Timestamp::now(),
        };
        let mut ops: Vec<Op> = crate::store::contact_keys(&ticket.customer)
            .into_iter()
            .map(|key| Op::ContactTicket { key, ticket: id.0 })
            .collect();
        ops.push(Op::Ticket(Box::new(ticket)));
        self.write(ops).await?;
        Ok(id)
    }

    /// Tickets of the agent's channels, newest first.
    pub async fn tickets(
        &self,
        agent: &AgentId,
        before: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, HubError> {
        check_page(limit)?;
        let (store, channels) = (
            self.shared.store.clone(),
            self.member_channels(agent).to_vec(),
        );
        blocking(move || store.tickets(&channels, before, limit)).await
    }

    /// One ticket of the agent's channels.
    pub async fn ticket(&self, agent: &AgentId, id: TicketId) -> Result<Box<Ticket>, HubError> {
        let store = self.shared.store.clone();
        match blocking(move || store.ticket(id)).await? {
            Some(ticket) if self.is_member(agent, &ticket.channel) => Ok(Box::new(ticket)),
            _ => Err(HubError::UnknownTicket(id)),
        }
    }

    /// The customer connection `conn` closed; its chats stop sending to it.
    pub fn customer_gone(&self, conn: ConnId, chats: impl IntoIterator<Item = ChatId>) {
        for chat in chats {
            if let Some(actor) = self.chat_actor(chat) {
                let _ = actor.cast(ChatMsg::CustomerGone(conn));
            }
        }
    }

    /// Ended chats of the agent's channels, newest first.
    pub async fn recent_sessions(
        &self,
        agent: &AgentId,
        before: Option<ChatId>,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, HubError> {
        check_page(limit)?;
        let (store, channels) = (
            self.shared.store.clone(),
            self.member_channels(agent).to_vec(),
        );
        blocking(move || store.recent_sessions(&channels, before, limit)).await
    }

    async fn recorded_transcript(
        &self,
        chat: ChatId,
        after: u64,
    ) -> Result<Option<TranscriptPage>, HubError> {
        let store = self.shared.store.clone();
        blocking(move || store.transcript(chat, after)).await
    }

    /// A page of the transcript of a live or recent chat of the agent's
    /// channels.
    pub async fn transcript(
        &self,
        agent: &AgentId,
        chat: ChatId,
        after: u64,
    ) -> Result<(Vec<ChatEvent>, bool), HubError> {
        let mut page = None;
        if let Some(actor) = self.chat_actor(chat) {
            let (tx, rx) = oneshot::channel();
            if actor
                .cast(ChatMsg::Transcript {
                    after,
                    reply: tx.into(),
                })
                .is_ok()
            {
                page = Some(answer(rx).await?);
            }
        }
        if page.is_none() {
            page = self.recorded_transcript(chat, after).await?;
        }
        match page {
            Some(page) if self.is_member(agent, &page.channel) => Ok((page.events, page.more)),
            Some(_) => Err(HubError::NotYourChat(chat)),
            None => Err(HubError::UnknownChat(chat)),
        }
    }

    /// Crashes a channel's actor, for supervision tests.
    #[cfg(test)]
    pub(crate) fn crash_channel(&self, channel: &ChannelId) {
        if let Some(actor) = self.channel_actor(channel) {
            let _ = actor.cast(ChannelMsg::Crash);
        }
    }

    /// Crashes a chat's actor, for supervision tests.
    #[cfg(test)]
    pub(crate) fn crash_chat(&self, chat: ChatId) {
        if let Some(actor) = self.chat_actor(chat) {
            let _ = actor.cast(ChatMsg::Crash);
        }
    }

    /// Drops a failed actor from the maps. A failed chat also leaves the
    /// queue it may wait in, so no agent is offered a chat nobody runs, and
    /// its agent gets the chat's slot back.
    fn forget_actor(&self, id: ActorId) -> Vec<ChatId> {
        let mut failed_chats = Vec::new();
        self.shared.chats.retain(|chat, entry| {
            let failed = entry.actor.get_id() == id;
            if failed {
                failed_chats.push(*chat);
            }
            !failed
        });
        for &chat in &failed_chats {
            for channel in self.shared.channels.iter() {
                let _ = channel.cast(ChannelMsg::Withdraw(chat));
            }
        }
        self.shared
            .agent_actors
            .retain(|_, actor| actor.get_id() != id);
        failed_chats
    }
}

/// Messages to the root actor.
pub enum HubMsg {
    /// Hands the root its hub, once built.
    Init(Hub),
    /// The actor of a signed-in agent, started on first sign-in.
    AgentActor {
        /// The agent.
        agent: AgentId,
        /// Its actor.
        reply: RpcReplyPort<Result<ActorRef<AgentMsg>, HubError>>,
    },
}

/// The root supervisor. It starts agent actors (so two connections of one
/// agent share one actor) and decides what happens when a child fails.
pub struct HubActor;

/// The root's state.
pub struct HubRoot {
    hub: Option<Hub>,
}

impl HubRoot {
    async fn spawn_agent(
        &self,
        myself: &ActorRef<HubMsg>,
        agent: AgentId,
    ) -> Result<ActorRef<AgentMsg>, HubError> {
        let hub = self
            .hub
            .as_ref()
            .ok_or_else(|| gone("the hub is starting"))?;
        if let Some(actor) = hub.shared.agent_actors.get(&agent) {
            return Ok(actor.clone());
        }
        let presence = hub
            .shared
            .presence
            .agent(&agent)
            .ok_or(HubError::Unauthorized)?;
        let args = AgentArgs {
            hub: hub.clone(),
            id: agent.clone(),
            presence,
            grace: hub.shared.presence_grace,
        };
        let (actor, _) = Actor::spawn_linked(None, AgentActor, args, myself.get_cell())
            .await
            .map_err(|err| gone(format!("cannot start the agent's actor: {err}")))?;
        hub.shared.agent_actors.insert(agent, actor.clone());
        Ok(actor)
    }

    /// A channel's actor failed: start a new one with the same settings.
    async fn restart_channel(&self, myself: &ActorRef<HubMsg>, failed: &ActorCell) {
        let Some(hub) = &self.hub else { return };
        let channel = hub
            .shared
            .channels
            .iter()
            .find(|entry| entry.value().get_id() == failed.get_id())
            .map(|entry| entry.key().clone());
        let Some(channel) = channel else { return };
        let Some(settings) = hub.channel(&channel).cloned() else {
            return;
        };
        match Actor::spawn_linked(None, ChannelActor, settings, myself.get_cell()).await {
            Ok((actor, _)) => {
                hub.shared.channels.insert(channel.clone(), actor);
                // The chats that waited in the failed actor's queue wait on
                // in the new one, in their order.
                let hub = hub.clone();
                tokio::spawn(async move {
                    let requeued = hub.requeue_waiting(&channel).await;
                    tracing::warn!(%channel, requeued, "channel actor restarted");
                });
            }
            Err(err) => tracing::error!(%channel, "cannot restart the channel actor: {err}"),
        }
    }
}

impl Actor for HubActor {
    type Msg = HubMsg;
    type State = HubRoot;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<HubMsg>, (): ()) -> Result<HubRoot, ActorProcessingErr> {
        Ok(HubRoot { hub: None })
    }

    async fn handle(
        &self,
        myself: ActorRef<HubMsg>,
        message: HubMsg,
        state: &mut HubRoot,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HubMsg::Init(hub) => state.hub = Some(hub),
            HubMsg::AgentActor { agent, reply } => {
                let _ = reply.send(state.spawn_agent(&myself, agent).await);
            }
        }
        Ok(())
    }

    /// A child that fails is logged and counted; it never takes the hub
    /// down. A failed channel is started again; a failed chat or agent actor
    /// is forgotten (a later sign-in starts a new agent actor).
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<HubMsg>,
        event: SupervisionEvent,
        state: &mut HubRoot,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(actor = %cell.get_id(), "actor failed: {err}");
                metrics::counter!("chathub_actor_restarts_total").increment(1);
                if let Some(hub) = &state.hub {
                    hub.shared.failures.fetch_add(1, Ordering::Relaxed);
                    for chat in hub.forget_actor(cell.get_id()) {
                        // Restart from durable state, off the root's loop.
                        let hub = hub.clone();
                        tokio::spawn(async move {
                            if let Err(err) = hub.restore_chat(chat).await {
                                tracing::error!(%chat, "cannot restart the chat: {err}");
                            }
                        });
                    }
                }
                state.restart_channel(&myself, &cell).await;
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(hub) = &state.hub {
                    hub.shared
                        .agent_actors
                        .retain(|_, actor| actor.get_id() != cell.get_id());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::actors::sink::Outbound;
    use crate::core::ChatEventKind;

    fn config() -> HubConfig {
        let mut support = ChannelSettings::new(ChannelId::new("support"));
        support.offline_form = false;
        HubConfig {
            channels: vec![support],
            agents: vec![AgentConfig {
                id: AgentId::new("alice"),
                name: "Alice".into(),
                token: "secret".into(),
                channels: vec![ChannelId::new("support")],
                capacity: 4,
            }],
            presence_grace: Duration::from_secs(5),
            files_dir: std::env::temp_dir(),
        }
    }

    fn queued(start: ChatStart) -> (ChatId, u32) {
        match start {
            ChatStart::Queued { chat, waiting } => (chat, waiting),
            ChatStart::Offline(_) => panic!("expected a queued chat"),
        }
    }

    async fn wait_for(mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached in 5 s");
    }

    #[tokio::test]
    async fn a_panicking_chat_actor_is_restarted_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        let support = ChannelId::new("support");
        let alice = AgentId::new("alice");
        let (customer, _customer_events) = EventSink::new(hub.next_conn(), 64);
        let (doomed, _) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                1,
                "first".into(),
                format!("test-secret-for-chat-{}", 1),
            )
            .await
            .unwrap(),
        );
        let seq = hub
            .post(
                Caller::Customer(customer.conn()),
                doomed,
                2,
                "still there?".into(),
            )
            .await
            .unwrap();
        hub.crash_chat(doomed);
        wait_for(|| hub.actor_failures() == 1).await;

        // The hub lives on: a new chat is queued behind the restarted one...
        let (second, _) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                3,
                "second".into(),
                format!("test-secret-for-chat-{}", 3),
            )
            .await
            .unwrap(),
        );
        let (agent_sink, _agent_events) = EventSink::new(hub.next_conn(), 64);
        hub.attach_agent(&alice, agent_sink, Vec::new())
            .await
            .unwrap();
        // ...and the crashed chat came back from the store, transcript and all.
        let mut taken = Vec::new();
        for _ in 0..100 {
            match hub.get_next(alice.clone(), support.clone()).await {
                Ok(assignment) => taken.push(assignment.chat),
                Err(HubError::QueueEmpty(_)) if taken.len() == 2 => break,
                Err(HubError::QueueEmpty(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(err) => panic!("{err}"),
            }
        }
        taken.sort_unstable();
        assert_eq!(taken, [doomed, second]);
        let (events, _) = hub.transcript(&alice, doomed, 0).await.unwrap();
        assert!(events.iter().any(|event| event.seq == seq));
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn a_store_that_cannot_write_refuses_to_acknowledge() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        let support = ChannelId::new("support");
        let (customer, _events) = EventSink::new(hub.next_conn(), 64);
        let (chat, _) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                1,
                "hi".into(),
                "test-secret-for-chat-1".into(),
            )
            .await
            .unwrap(),
        );
        // The writer stops: from now on nothing can be made durable.
        hub.store().close();
        let posted = hub
            .post(Caller::Customer(customer.conn()), chat, 2, "lost?".into())
            .await;
        assert!(
            matches!(posted, Err(HubError::Unavailable(_))),
            "{posted:?}"
        );
        let started = hub
            .start_chat(
                customer.clone(),
                support,
                Customer::default(),
                3,
                "another".into(),
                "test-secret-for-chat-3".into(),
            )
            .await;
        assert!(
            matches!(started, Err(HubError::Unavailable(_))),
            "{started:?}"
        );
        // What was refused was never stored.
        let stored = hub.store().chat(chat).unwrap().unwrap();
        assert!(stored.events.iter().all(
            |event| !matches!(&event.kind, ChatEventKind::Message { text, .. } if text == "lost?")
        ));
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn a_restarted_channel_actor_gets_its_waiting_chats_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        let support = ChannelId::new("support");
        let alice = AgentId::new("alice");
        let (customer, _events) = EventSink::new(hub.next_conn(), 64);
        let mut started = Vec::new();
        for n in 1..=3u64 {
            let start = hub
                .start_chat(
                    customer.clone(),
                    support.clone(),
                    Customer::default(),
                    n,
                    format!("chat {n}"),
                    format!("test-secret-for-chat-{n}"),
                )
                .await
                .unwrap();
            started.push(queued(start).0);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        hub.crash_channel(&support);
        wait_for(|| hub.actor_failures() == 1).await;
        let (agent_sink, _agent_events) = EventSink::new(hub.next_conn(), 64);
        hub.attach_agent(&alice, agent_sink, Vec::new())
            .await
            .unwrap();
        let mut taken = Vec::new();
        for _ in 0..200 {
            match hub.get_next(alice.clone(), support.clone()).await {
                Ok(assignment) => taken.push(assignment.chat),
                Err(HubError::QueueEmpty(_)) if taken.len() == 3 => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
            if taken.len() == 3 {
                break;
            }
        }
        assert_eq!(taken, started, "the same chats, in the same order");
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn a_customer_who_leaves_a_queued_chat_withdraws_it() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
            .await
            .unwrap();
        let support = ChannelId::new("support");
        let (customer, mut events) = EventSink::new(hub.next_conn(), 64);
        let (chat, waiting) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                1,
                "hi".into(),
                format!("test-secret-for-chat-{}", 1),
            )
            .await
            .unwrap(),
        );
        assert_eq!(waiting, 1);
        hub.end_chat(Caller::Customer(customer.conn()), chat)
            .await
            .unwrap();
        let alice = AgentId::new("alice");
        assert_eq!(
            hub.get_next(alice.clone(), support.clone()).await,
            Err(HubError::QueueEmpty(support))
        );
        // Started, first message, ended; in order.
        let mut kinds = Vec::new();
        while kinds.len() < 3 {
            match events.events.recv().await {
                Some(Outbound::Chat(event)) => kinds.push((event.seq, event.kind.clone())),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(kinds[0].0, 1);
        assert!(matches!(kinds[2], (3, ChatEventKind::Ended { .. })));
        let recent = hub.recent_sessions(&alice, None, 10).await.unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].chat, chat);
        hub.shutdown().await;
    }
}
