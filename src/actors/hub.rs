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
use crate::actors::records::{RecordsActor, RecordsMsg, SessionRecord, TranscriptPage};
use crate::actors::sink::{ConnId, EventSink};
use crate::core::ticket::check_offline_form;
use crate::core::{
    AgentId, Assignment, ChannelId, ChannelSettings, Chat, ChatError, ChatEvent, ChatId, ClaimCell,
    Claimed, Claimer, Customer, OfflineForm, Presence, QueueRow, SessionSummary, Status, Ticket,
    TicketId, TicketSource, TicketSummary, Timestamp,
};

/// How many ended sessions the hub keeps for recent sessions.
pub const RECORDS_KEPT: usize = 100_000;

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
    presence: Presence,
    presence_grace: Duration,
    next_chat: AtomicU64,
    next_ticket: AtomicU64,
    next_conn: AtomicU64,
    failures: AtomicU64,
    root: ActorRef<HubMsg>,
    records: ActorRef<RecordsMsg>,
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

/// Awaits an actor's answer; a dropped reply port means the actor failed.
async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, HubError> {
    rx.await
        .map_err(|_| gone("the actor stopped before answering"))
}

impl Hub {
    /// Starts the supervision tree: the root, the records keeper and one
    /// actor per channel.
    pub async fn start(config: HubConfig) -> Result<Hub, HubError> {
        let (root, _) = Actor::spawn(None, HubActor, ())
            .await
            .map_err(|err| gone(format!("cannot start the hub: {err}")))?;
        let (records, _) = Actor::spawn_linked(None, RecordsActor, RECORDS_KEPT, root.get_cell())
            .await
            .map_err(|err| gone(format!("cannot start the records: {err}")))?;
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
        let hub = Hub {
            shared: Arc::new(Shared {
                settings,
                channels,
                agents,
                agent_actors: DashMap::new(),
                chats: DashMap::new(),
                presence,
                presence_grace: config.presence_grace,
                next_chat: AtomicU64::new(1),
                next_ticket: AtomicU64::new(1),
                next_conn: AtomicU64::new(1),
                failures: AtomicU64::new(0),
                root: root.clone(),
                records,
            }),
        };
        root.cast(HubMsg::Init(hub.clone()))
            .map_err(|_| gone("the hub root stopped"))?;
        Ok(hub)
    }

    /// Stops every actor and waits for the root to finish.
    pub async fn shutdown(&self) {
        let root = &self.shared.root;
        root.stop_children_and_wait(Some("shutdown".into()), None)
            .await;
        let _ = root.stop_and_wait(Some("shutdown".into()), None).await;
        self.shared.chats.clear();
        self.shared.agent_actors.clear();
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

    pub(crate) fn unregister_chat(&self, chat: ChatId) {
        self.shared.chats.remove(&chat);
    }

    pub(crate) fn record(&self, record: SessionRecord) {
        let _ = self.shared.records.cast(record.into());
    }

    /// Signs a connection of an (authenticated) agent in: from now on it
    /// receives the agent's events. Returns the agent's status.
    pub async fn attach_agent(&self, agent: &AgentId, sink: EventSink) -> Result<Status, HubError> {
        let actor = self.agent_actor(agent).await?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(AgentMsg::Attach {
                sink,
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
    ) -> Result<ChatStart, HubError> {
        let settings = self
            .channel(&channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        crate::core::chat::check_text(&text)?;
        if settings.offline_form && self.shared.presence.present_count(&channel) == 0 {
            metrics::counter!("chathub_chats_offline_total", "channel" => channel.to_string())
                .increment(1);
            return Ok(ChatStart::Offline(OfflineForm::for_channel(
                channel,
                settings.offline_message.as_deref(),
            )));
        }
        let channel_actor = self
            .channel_actor(&channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        let id = ChatId(self.shared.next_chat.fetch_add(1, Ordering::Relaxed));
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
        let args = ChatArgs {
            hub: self.clone(),
            chat,
            claim: claim.clone(),
            customer_conn: sink.conn(),
        };
        let (chat_actor, _) =
            Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
                .await
                .map_err(|err| gone(format!("cannot start the chat: {err}")))?;
        let waiting = Waiting {
            row: QueueRow {
                chat: id,
                channel,
                customer,
                first_message,
                since: now,
            },
            claim,
            chat: chat_actor.clone(),
            generation: 0,
        };
        let (tx, rx) = oneshot::channel();
        let queued = channel_actor
            .cast(ChannelMsg::Enqueue {
                waiting,
                reply: tx.into(),
            })
            .map_err(|_| gone("the channel's actor stopped"));
        let queued = match queued {
            Ok(()) => answer(rx).await.and_then(|queued| queued),
            Err(err) => Err(err),
        };
        match queued {
            Ok(waiting) => {
                let _ = chat_actor.cast(ChatMsg::AttachCustomer { sink, after: 0 });
                Ok(ChatStart::Queued { chat: id, waiting })
            }
            Err(err) => {
                chat_actor.stop(Some("not queued".into()));
                Err(err)
            }
        }
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
            let agent_actor = hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let (tx, rx) = oneshot::channel();
            let taken = match channel_actor.cast(ChannelMsg::TakeNext {
                agent: agent.clone(),
                agent_actor,
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
            let agent_actor = hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let picked = match claim.claim(Claimer::Agent) {
                Ok(_) => {
                    if let Some(channel) = hub.channel_actor(&channel) {
                        let _ = channel.cast(ChannelMsg::Withdraw(chat));
                    }
                    let (tx, rx) = oneshot::channel();
                    let assign = ChatMsg::Assign {
                        agent: agent.clone(),
                        agent_actor,
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

    /// Turns a submitted offline form into a ticket.
    pub fn submit_offline_form(
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
        self.shared
            .records
            .cast(RecordsMsg::AddTicket(Box::new(ticket)))
            .map_err(|_| gone("the records stopped"))?;
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
        let (tx, rx) = oneshot::channel();
        self.shared
            .records
            .cast(RecordsMsg::Tickets {
                channels: self.member_channels(agent).to_vec(),
                before,
                limit,
                reply: tx.into(),
            })
            .map_err(|_| gone("the records stopped"))?;
        answer(rx).await
    }

    /// One ticket of the agent's channels.
    pub async fn ticket(&self, agent: &AgentId, id: TicketId) -> Result<Box<Ticket>, HubError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .records
            .cast(RecordsMsg::Ticket {
                id,
                reply: tx.into(),
            })
            .map_err(|_| gone("the records stopped"))?;
        match answer(rx).await? {
            Some(ticket) if self.is_member(agent, &ticket.channel) => Ok(ticket),
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
        let (tx, rx) = oneshot::channel();
        self.shared
            .records
            .cast(RecordsMsg::Recent {
                channels: self.member_channels(agent).to_vec(),
                before,
                limit,
                reply: tx.into(),
            })
            .map_err(|_| gone("the records stopped"))?;
        answer(rx).await
    }

    async fn recorded_transcript(
        &self,
        chat: ChatId,
        after: u64,
    ) -> Result<Option<TranscriptPage>, HubError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .records
            .cast(RecordsMsg::Transcript {
                chat,
                after,
                reply: tx.into(),
            })
            .map_err(|_| gone("the records stopped"))?;
        answer(rx).await
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
    fn forget_actor(&self, id: ActorId) {
        let mut failed_chats = Vec::new();
        self.shared.chats.retain(|chat, entry| {
            let failed = entry.actor.get_id() == id;
            if failed {
                failed_chats.push(*chat);
            }
            !failed
        });
        for chat in failed_chats {
            for channel in self.shared.channels.iter() {
                let _ = channel.cast(ChannelMsg::Withdraw(chat));
            }
            for agent in self.shared.agent_actors.iter() {
                let _ = agent.cast(AgentMsg::ChatFailed(chat));
            }
        }
        self.shared
            .agent_actors
            .retain(|_, actor| actor.get_id() != id);
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
                tracing::warn!(%channel, "channel actor restarted; its queue starts empty");
                hub.shared.channels.insert(channel, actor);
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
                    hub.forget_actor(cell.get_id());
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
    use crate::core::{ChatEventKind, QueueChange};

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
    async fn a_panicking_chat_actor_is_counted_and_the_hub_lives_on() {
        let hub = Hub::start(config()).await.unwrap();
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
            )
            .await
            .unwrap(),
        );
        hub.crash_chat(doomed);
        wait_for(|| hub.actor_failures() == 1).await;
        wait_for(|| hub.live_chats() == 0).await;

        // The crashed chat answers a typed error instead of hanging...
        let posted = hub
            .post(
                Caller::Customer(customer.conn()),
                doomed,
                2,
                "hello?".into(),
            )
            .await;
        assert_eq!(posted, Err(HubError::UnknownChat(doomed)));

        // ...and everything else keeps working: a new chat is queued and
        // answered, and the crashed one is never offered.
        let (chat, _) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                3,
                "second".into(),
            )
            .await
            .unwrap(),
        );
        let (agent_sink, mut agent_events) = EventSink::new(hub.next_conn(), 64);
        hub.attach_agent(&alice, agent_sink).await.unwrap();
        let assignment = hub.get_next(alice.clone(), support.clone()).await.unwrap();
        assert_eq!(assignment.chat, chat);
        assert_eq!(assignment.first_message, "second");
        assert_eq!(
            hub.get_next(alice, support.clone()).await,
            Err(HubError::QueueEmpty(support))
        );
        // The agent's connection saw a snapshot holding only the live chat.
        let Some(Outbound::Queue(update)) = agent_events.events.recv().await else {
            panic!("expected a queue snapshot first")
        };
        let QueueChange::Snapshot(rows) = &update.change else {
            panic!("expected a snapshot, got {update:?}")
        };
        assert_eq!(rows.iter().map(|row| row.chat).collect::<Vec<_>>(), [chat]);
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn a_customer_who_leaves_a_queued_chat_withdraws_it() {
        let hub = Hub::start(config()).await.unwrap();
        let support = ChannelId::new("support");
        let (customer, mut events) = EventSink::new(hub.next_conn(), 64);
        let (chat, waiting) = queued(
            hub.start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                1,
                "hi".into(),
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
