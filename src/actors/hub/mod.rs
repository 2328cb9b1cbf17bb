//! The `Hub` handle that connection tasks call, and the root of the
//! supervision tree.
//!
//! This file holds the handle's state and what every request needs
//! (posting, ending, the registry of live chats); the rest is one file per
//! concern: `start.rs` (the tree started and stopped), `agents.rs` (agents'
//! connections and status), `sign_in.rs`, `identity.rs`, `chats.rs` (start,
//! resume, queueing, get-next, pick), `handover.rs` (transfers, tickets
//! from chats, the end form), `reload.rs` (channels and agents changed while
//! running), `records.rs` (what agents read back),
//! `knowledge.rs` (contacts, quick replies and the like), `files.rs`,
//! `typing.rs` (typing indicators), `receipts.rs` (read marks),
//! `satisfaction.rs` (customers' ratings of ended chats),
//! `supervision.rs` (what supervisors and admins may do), `monitor.rs`
//! (supervisors' live monitors: one feed per watched channel),
//! `recovery.rs` (restart and rebuild), `retention.rs` (erasing what
//! aged out, and an admin's erasure of a contact),
//! `root.rs` (the supervisor).

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
use crate::actors::agent::{AgentActor, AgentArgs, AgentMsg, AgentOutlet};
use crate::actors::channel::{Admit, ChannelActor, ChannelMsg, Waiting};
use crate::actors::chat::{ChatActor, ChatArgs, ChatMsg, Receipt};
use crate::actors::origins::{OriginSlot, Origins};
use crate::actors::pace::Pace;
use crate::actors::sink::{ConnId, EventSink};
use crate::core::tags::normalize_tag;
use crate::core::ticket::check_offline_form;
use crate::core::{
    AgentId, Assignment, ChannelId, ChannelSettings, Chat, ChatError, ChatEvent, ChatId, ChatState,
    ClaimCell, Claimed, Claimer, ContactCard, ContactChat, Customer, FileId, FileRef, Identity,
    IdentityPolicy, ItemDraft, ItemId, ItemKind, ItemRef, KnowledgeItem, Limit, Limits,
    OfflineForm, OnAgentGone, Presence, Priority, QueueRow, RatedSession, ReadMark, Scope,
    SkillSet, Status, TaggedSession, Ticket, TicketId, TicketSource, TicketSummary, Timestamp,
};
use crate::protocol::Secret;
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
    /// The digest of the token the agent signs in with.
    pub token: TokenDigest,
    /// Channels whose queues the agent works.
    pub channels: Vec<ChannelId>,
    /// The most chats the agent may hold at once.
    pub capacity: u64,
    /// What the agent may oversee beyond answering chats.
    pub role: crate::core::AgentRole,
    /// What the agent can do.
    pub skills: SkillSet,
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
    pub files: crate::store::FileBytes,
    /// What any one client may make the hub do.
    pub limits: Limits,
    /// The ids this hub hands out (chats, tickets, knowledge items, files)
    /// are above this one: 0 for a hub alone, a partition's base in a
    /// cluster, so every partition's ids differ and carry it.
    pub ids_after: u64,
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
    /// As configured, its channels as worked now (a removed channel the
    /// agent worked stays among them while it drains).
    config: AgentConfig,
    token_digest: TokenDigest,
}

/// An offer a push channel has standing.
pub(crate) struct OfferRecord {
    pub channel: ChannelId,
    pub agent: AgentId,
    pub offer: crate::core::OfferId,
}

/// A signed-in agent's actor and the outlet its chats deliver into.
#[derive(Clone)]
struct AgentHandle {
    actor: ActorRef<AgentMsg>,
    outlet: Arc<AgentOutlet>,
}

/// A live chat as the registry knows it.
pub(crate) struct ChatEntry {
    pub actor: ActorRef<ChatMsg>,
    pub channel: ChannelId,
    pub claim: Arc<ClaimCell>,
}

struct Shared {
    /// Every channel with an actor: the configured ones and those removed
    /// from the configuration that still have live chats.
    settings: DashMap<ChannelId, Arc<ChannelSettings>>,
    /// Channels removed from the configuration, still running their live
    /// chats to the end: they take no new chat.
    draining: dashmap::DashSet<ChannelId>,
    channels: DashMap<ChannelId, ActorRef<ChannelMsg>>,
    agents: DashMap<AgentId, Arc<AgentEntry>>,
    /// One configuration reload at a time.
    reloading: tokio::sync::Mutex<()>,
    agent_actors: DashMap<AgentId, AgentHandle>,
    chats: DashMap<ChatId, ChatEntry>,
    /// The agent of every active chat, and since when they hold it.
    assignments: DashMap<ChatId, (AgentId, Timestamp)>,
    /// The offers push channels have standing, as each channel's actor
    /// also keeps them: what a failed channel actor leaves behind is ended
    /// from here before its successor starts.
    offers: DashMap<ChatId, OfferRecord>,
    /// The live chats each supervisor follows (at most
    /// `Limits::followed_chats` each).
    follows: DashMap<AgentId, std::collections::HashSet<ChatId>>,
    /// Live monitors: a feed per watched channel, the watches of each
    /// connection.
    monitors: monitor::Monitors,
    /// Live chats by the digest of their customer's secret, so a start
    /// retried while the first is still being stored finds it.
    live_tokens: DashMap<Vec<u8>, ChatId>,
    presence: Presence,
    presence_grace: Duration,
    limits: Limits,
    /// Who started the live chats.
    origins: Arc<Origins>,
    /// Offline forms per address.
    form_pace: Pace<std::net::IpAddr>,
    /// Chat starts per address.
    start_pace: Pace<std::net::IpAddr>,
    /// Ratings per address.
    rate_pace: Pace<std::net::IpAddr>,
    /// Failed sign-ins.
    sign_in_pace: sign_in::SignInPace,
    /// What an unknown agent's token is compared with, so that takes as
    /// long as a wrong token.
    unknown_agent: TokenDigest,
    /// Ended chats being reopened now, one return at a time per chat.
    reopening: DashMap<ChatId, Arc<tokio::sync::Mutex<()>>>,
    next_chat: AtomicU64,
    next_ticket: AtomicU64,
    next_item: AtomicU64,
    next_file: AtomicU64,
    files: crate::store::FileBytes,
    /// Uploads and downloads in progress may each hold one.
    file_slots: Arc<tokio::sync::Semaphore>,
    /// Uploads and downloads in progress per address.
    file_slots_per_ip: DashMap<std::net::IpAddr, usize>,
    /// Upload bytes per address, in KiB.
    upload_pace: Pace<std::net::IpAddr>,
    /// Bytes the shared files take on disk (uploads in progress included).
    files_used: AtomicU64,
    /// Set once the hub's connections are to close.
    retired: tokio::sync::watch::Sender<bool>,
    failures: AtomicU64,
    /// Why the store stopped writing, once it has.
    storage_failed: tokio::sync::watch::Receiver<Option<String>>,
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

mod chats;
mod conversation;
mod files;
pub use files::FileRoom;
mod agents;
mod handover;
mod identity;
mod knowledge;
mod monitor;
pub use monitor::{MonitorUpdate, MonitorWatch};
mod receipts;
mod records;
mod recovery;
mod reload;
mod retention;
pub use reload::Reconfigured;
mod root;
mod satisfaction;
mod sign_in;
mod start;
mod supervision;
mod typing;
pub use identity::{
    MAX_IDENTITY_ID_BYTES, VerifiedIdentity, sign_identity, sign_identity_claiming,
};
pub use sign_in::{MAX_TOKEN_BYTES, TokenDigest};
#[cfg(test)]
mod tests;

pub use root::{HubActor, HubMsg, HubRoot};

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("channels", &self.shared.settings.len())
            .field("chats", &self.shared.chats.len())
            .finish()
    }
}

fn digest(token: &str) -> Vec<u8> {
    TokenDigest::of(token).as_bytes().to_vec()
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
    HubError::StorageUnavailable(err.to_string())
}

/// Awaits an actor's answer; a dropped reply port means the actor failed.
async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, HubError> {
    rx.await
        .map_err(|_| gone("the actor stopped before answering"))
}

impl Hub {
    /// What any one client may make the hub do.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
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
            .map(|handle| handle.actor.clone())
    }

    /// Where a signed-in agent's chat events go, if its actor runs.
    pub(crate) fn agent_outlet(&self, agent: &AgentId) -> Option<Arc<AgentOutlet>> {
        self.shared
            .agent_actors
            .get(agent)
            .map(|handle| handle.outlet.clone())
    }
    /// A fresh connection id, unique in the process (hubs of several
    /// partitions may serve one connection in turn).
    pub fn next_conn(&self) -> ConnId {
        static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether `other` is a handle on this very hub.
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Why the store stopped writing, if it has.
    pub fn storage_failure(&self) -> Option<String> {
        self.shared.storage_failed.borrow().clone()
    }

    /// Tells every connection served by this hub to close: its business
    /// moves to another hub (a partition handed over or taken away).
    pub fn retire(&self) {
        self.shared.retired.send_replace(true);
    }

    /// Resolves once [`Hub::retire`] was called (or the hub is gone).
    pub fn retired(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut retired = self.shared.retired.subscribe();
        async move {
            let _ = retired.wait_for(|retired| *retired).await;
        }
    }

    /// Resolves, with the reason, once the store has stopped writing after
    /// a failure (a full disk, an I/O error). The hub then answers every
    /// write `StorageUnavailable`; a restart replays the commit log and
    /// carries on, so the process should exit and be restarted.
    pub async fn storage_failed(&self) -> String {
        let mut failed = self.shared.storage_failed.clone();
        match failed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The store is gone with the hub: nothing will fail any more.
            Err(_) => std::future::pending().await,
        }
    }

    /// How many actors have failed since the hub started.
    pub fn actor_failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// How many chats are live (queued or active).
    pub fn live_chats(&self) -> usize {
        self.shared.chats.len()
    }

    /// A channel's settings (a removed channel's while its live chats
    /// drain).
    pub fn channel(&self, channel: &ChannelId) -> Option<Arc<ChannelSettings>> {
        self.shared
            .settings
            .get(channel)
            .map(|settings| settings.clone())
    }

    /// A channel's settings if it takes new chats: configured and not
    /// removed since.
    fn open_channel(&self, channel: &ChannelId) -> Result<Arc<ChannelSettings>, HubError> {
        match self.channel(channel) {
            Some(settings) if !self.shared.draining.contains(channel) => Ok(settings),
            _ => Err(HubError::UnknownChannel(channel.clone())),
        }
    }

    /// The channels an agent is a member of.
    pub fn member_channels(&self, agent: &AgentId) -> Vec<ChannelId> {
        self.shared
            .presence
            .agent(agent)
            .map(|presence| presence.channels())
            .unwrap_or_default()
    }

    fn is_member(&self, agent: &AgentId, channel: &ChannelId) -> bool {
        self.shared
            .presence
            .agent(agent)
            .is_some_and(|presence| presence.works(channel))
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

    /// Frees one of `agent`'s chat slots; the agent's push channels may
    /// offer them a chat now.
    pub(crate) fn release_slot(&self, agent: &AgentId) {
        if let Some(presence) = self.shared.presence.agent(agent) {
            presence.capacity.release();
        }
        self.poke_channels(agent);
    }

    /// Tells `agent`'s push channels that whether the agent may get an
    /// offer may have changed (a slot freed, a new status).
    pub(crate) fn poke_channels(&self, agent: &AgentId) {
        for channel in self.member_channels(agent) {
            self.poke_channel(&channel);
        }
    }

    /// [`Hub::poke_channels`] but for `except`, which knows already.
    pub(crate) fn poke_channels_except(&self, agent: &AgentId, except: &ChannelId) {
        for channel in self.member_channels(agent) {
            if channel != *except {
                self.poke_channel(&channel);
            }
        }
    }

    /// A channel's actor made an offer.
    pub(crate) fn note_offer(&self, chat: ChatId, record: OfferRecord) {
        self.shared.offers.insert(chat, record);
    }

    /// A channel's actor ended its offer `offer` of `chat`. Only that
    /// record goes: a later offer of the chat by another channel (after a
    /// transfer) stays known.
    pub(crate) fn forget_offer(
        &self,
        chat: ChatId,
        channel: ChannelId,
        offer: crate::core::OfferId,
    ) {
        self.shared.offers.remove_if(&chat, |_, record| {
            record.channel == channel && record.offer == offer
        });
    }

    /// Ends the offers a failed channel actor left standing: each chat
    /// waits unoffered for the next actor, and each offered slot is freed
    /// (the failed actor can no longer free it).
    fn end_orphaned_offers(&self, channel: &ChannelId) {
        let chats: Vec<ChatId> = self
            .shared
            .offers
            .iter()
            .filter(|entry| entry.channel == *channel)
            .map(|entry| *entry.key())
            .collect();
        for chat in chats {
            let Some((_, record)) = self.shared.offers.remove(&chat) else {
                continue;
            };
            if let Some(entry) = self.shared.chats.get(&chat) {
                entry.claim.lapse(record.offer);
            }
            if let Some(actor) = self.agent_actor_ref(&record.agent) {
                let _ = actor.cast(AgentMsg::OfferOver {
                    channel: record.channel.clone(),
                    chat,
                    reason: crate::core::OfferEnd::Withdrawn,
                });
            }
            self.release_slot(&record.agent);
        }
    }

    /// Asks a push channel to check its offers and offer waiting chats.
    pub(crate) fn poke_channel(&self, channel: &ChannelId) {
        let push = self
            .channel(channel)
            .is_some_and(|settings| settings.routing == crate::core::Routing::Push);
        if push && let Some(actor) = self.channel_actor(channel) {
            let _ = actor.cast(ChannelMsg::Dispatch);
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

    /// Runs `work` to its end even if the caller stops waiting (its
    /// connection closed mid-request): work that reserved an agent's slot
    /// then still assigns the chat or gives the slot back.
    fn detached<T: Send + 'static>(
        work: impl Future<Output = Result<T, HubError>> + Send + 'static,
    ) -> impl Future<Output = Result<T, HubError>> + Send + 'static {
        let task = tokio::spawn(work);
        async move {
            task.await
                .unwrap_or_else(|_| Err(gone("the request's task failed")))
        }
    }

    /// Why a chat has no live actor: it ended, or it never existed.
    async fn missing_chat(&self, chat: ChatId) -> HubError {
        // An id never handed out is answered without a store read.
        if chat.0 >= self.shared.next_chat.load(Ordering::Relaxed) {
            return HubError::UnknownChat(chat);
        }
        match self.recorded_transcript(chat, u64::MAX).await {
            Ok(Some(_)) => HubError::Chat(ChatError::Ended),
            Ok(None) => HubError::UnknownChat(chat),
            // Never "ended" or "unknown" for a chat the store cannot read.
            Err(err) => err,
        }
    }

    /// Posts a message to a chat from connection `conn`; answers its seq
    /// and time. Everyone in the chat gets its event but `conn`, which
    /// learns of it from this answer.
    pub fn post(
        &self,
        caller: Caller,
        conn: ConnId,
        chat: ChatId,
        client_id: u64,
        text: String,
    ) -> impl Future<Output = Result<Receipt, HubError>> + Send + 'static {
        let sent = std::time::Instant::now();
        self.ask_chat(chat, move |reply| ChatMsg::Post {
            caller,
            conn,
            client_id,
            text,
            note: false,
            whisper: false,
            sent,
            reply,
        })
    }

    /// Writes agent `by`'s private note in a chat they hold: answered once
    /// durable with its seq and time; the event goes to the agent's other
    /// connections (and later holders), never to the customer.
    pub fn note(
        &self,
        by: AgentId,
        conn: ConnId,
        chat: ChatId,
        client_id: u64,
        text: String,
    ) -> impl Future<Output = Result<Receipt, HubError>> + Send + 'static {
        let sent = std::time::Instant::now();
        self.ask_chat(chat, move |reply| ChatMsg::Post {
            caller: Caller::Agent(by),
            conn,
            client_id,
            text,
            note: true,
            whisper: false,
            sent,
            reply,
        })
    }

    /// Sets the priority a waiting chat of one of `agent`'s channels waits
    /// at: answered once durable; the chat takes its place in the queue.
    pub fn set_priority(
        &self,
        agent: AgentId,
        chat: ChatId,
        priority: Priority,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        let channel = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone());
        // Checked before the chat actor is asked: asking sends at once.
        let refused = match &channel {
            None => Some(HubError::UnknownChat(chat)),
            Some(channel) if !self.is_member(&agent, channel) => {
                Some(HubError::NotAMember(channel.clone()))
            }
            Some(_) => None,
        };
        let asked = match refused {
            Some(err) => Err(err),
            None => Ok(self.ask_chat(chat, move |reply| ChatMsg::SetPriority {
                by: agent,
                priority,
                reply,
            })),
        };
        async move { asked?.await }
    }

    /// Ends a chat: an agent ends it, or its customer leaves.
    pub fn end_chat(
        &self,
        caller: Caller,
        chat: ChatId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::End { caller, reply })
    }

    /// The customer connection `conn` closed; its chats stop sending to it.
    pub fn customer_gone(&self, conn: ConnId, chats: impl IntoIterator<Item = ChatId>) {
        for chat in chats {
            if let Some(actor) = self.chat_actor(chat) {
                let _ = actor.cast(ChatMsg::CustomerGone(conn));
            }
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
            .retain(|_, handle| handle.actor.get_id() != id);
        failed_chats
    }
}
