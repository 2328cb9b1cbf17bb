//! What supervisors and admins may do: watch a channel's monitor, follow
//! a chat read-only, whisper to the agent of a chat, barge into it,
//! reassign it, set an agent's status. Each request is checked
//! against the caller's role as configured now (a reload applies at once):
//! a supervisor oversees the channels it `supervises`, an admin all.

use std::time::Duration;

use super::*;
use crate::core::roles::{MONITOR_ACTIVE_ROWS, MONITOR_WAITING_ROWS};
use crate::core::{ActiveChat, AgentLoad, AgentRole, ChannelMonitor, QueueChange, WaitingChat};

/// How long a monitor waits for the channel's actor to list its queue.
const MONITOR_QUEUE_WAIT: Duration = Duration::from_secs(2);

impl Hub {
    /// `by`'s role as configured now (an unknown agent has none).
    pub(super) fn role(&self, by: &AgentId) -> AgentRole {
        self.shared
            .agents
            .get(by)
            .map(|entry| entry.config.role.clone())
            .unwrap_or_default()
    }

    /// Refuses `NotAllowed` unless `by` oversees `channel`.
    pub(super) fn oversee(&self, by: &AgentId, channel: &ChannelId) -> Result<(), HubError> {
        if self.role(by).oversees(channel) {
            Ok(())
        } else {
            Err(HubError::NotAllowed(format!(
                "{by} does not supervise channel {channel}"
            )))
        }
    }

    /// A picture of `channel` now, for `by` who oversees it: its waiting
    /// chats (as the channel's actor lists them), its active chats (from
    /// the registry of assignments) and its member agents (from presence).
    /// Only the queue asks an actor, and it answers from memory.
    pub async fn monitor(
        &self,
        by: &AgentId,
        channel: ChannelId,
    ) -> Result<ChannelMonitor, HubError> {
        // Unknown and not overseen look alike to someone who oversees
        // nothing there.
        self.oversee(by, &channel)?;
        self.picture(channel).await
    }

    /// A picture of `channel` now, for whoever may see it (see
    /// [`Hub::monitor`]).
    pub(super) async fn picture(&self, channel: ChannelId) -> Result<ChannelMonitor, HubError> {
        let actor = self
            .channel_actor(&channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(ChannelMsg::Snapshot(tx.into()))
            .map_err(|_| gone("the channel's actor stopped"))?;
        let queue = tokio::time::timeout(MONITOR_QUEUE_WAIT, answer(rx))
            .await
            .map_err(|_| gone("the channel's actor did not answer in time"))??;
        let at = Timestamp::now();
        let waiting = match queue.change {
            QueueChange::Snapshot(rows) => rows
                .into_iter()
                .take(MONITOR_WAITING_ROWS)
                .map(|row| WaitingChat {
                    chat: row.chat,
                    since: row.since,
                    wait_ms: at.0.saturating_sub(row.since.0),
                    priority: row.priority,
                    customer: row.customer.name,
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut active: Vec<ActiveChat> = self
            .shared
            .assignments
            .iter()
            .filter(|entry| {
                self.shared
                    .chats
                    .get(entry.key())
                    .is_some_and(|chat| chat.channel == channel)
            })
            .map(|entry| {
                let (agent, since) = entry.value().clone();
                ActiveChat {
                    chat: *entry.key(),
                    agent,
                    since,
                    handle_ms: at.0.saturating_sub(since.0),
                }
            })
            .collect();
        active.sort_by_key(|row| (row.since, row.chat));
        let active_count = u32::try_from(active.len()).unwrap_or(u32::MAX);
        active.truncate(MONITOR_ACTIVE_ROWS);
        let mut agents: Vec<AgentLoad> = self
            .shared
            .agents
            .iter()
            .map(|entry| entry.key().clone())
            .filter_map(|agent| {
                let presence = self.shared.presence.agent(&agent)?;
                presence.works(&channel).then(|| AgentLoad {
                    status: presence.status(),
                    used: presence.capacity.used(),
                    max: presence.capacity.max(),
                    agent,
                })
            })
            .collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        Ok(ChannelMonitor {
            channel,
            at,
            waiting_count: queue.waiting,
            waiting,
            active_count,
            active,
            agents,
        })
    }

    /// Sets `agent`'s status for `by`, who oversees one of the channels
    /// the agent works; the agent's connections are told.
    pub async fn set_agent_status(
        &self,
        by: &AgentId,
        agent: &AgentId,
        status: Status,
    ) -> Result<(), HubError> {
        let role = self.role(by);
        let overseen = match role {
            AgentRole::Admin => self.is_configured(agent),
            _ => self
                .member_channels(agent)
                .iter()
                .any(|channel| role.oversees(channel)),
        };
        if !overseen || !self.is_configured(agent) {
            return Err(HubError::NotAllowed(format!(
                "{by} supervises no channel of agent {agent}"
            )));
        }
        self.set_status_by(agent, status, Some(by.clone())).await
    }

    /// Writes `by`'s whisper in a live chat of a channel they oversee: a
    /// private note the holder (and later holders) see and the customer
    /// never does, answered once durable with its seq and time.
    pub fn whisper(
        &self,
        by: AgentId,
        conn: ConnId,
        chat: ChatId,
        client_id: u64,
        text: String,
    ) -> impl Future<Output = Result<Receipt, HubError>> + Send + 'static {
        let channel = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone());
        // Someone who oversees nothing is refused before the chat is
        // looked for.
        let allowed = if self.role(&by).oversees_any() {
            channel.as_ref().map(|channel| self.oversee(&by, channel))
        } else {
            Some(self.oversee(&by, &channel.unwrap_or_else(|| ChannelId::new("-"))))
        };
        let sent = std::time::Instant::now();
        let asked = match allowed {
            Some(Ok(())) => Some(self.ask_chat(chat, move |reply| ChatMsg::Post {
                caller: Caller::Agent(by),
                conn,
                client_id,
                text,
                note: true,
                whisper: true,
                sent,
                reply,
            })),
            _ => None,
        };
        let hub = self.clone();
        async move {
            match (allowed, asked) {
                (Some(Err(err)), _) => Err(err),
                (_, Some(asked)) => asked.await,
                // No live chat: ended, or never there.
                _ => Err(hub.missing_chat(chat).await),
            }
        }
    }

    /// The channel of live `chat` if `by` oversees it: `NotAllowed` for
    /// someone who oversees nothing (without looking the chat up) or not
    /// that channel, why there is no live chat otherwise.
    async fn overseen_chat(&self, by: &AgentId, chat: ChatId) -> Result<ChannelId, HubError> {
        if !self.role(by).oversees_any() {
            return Err(HubError::NotAllowed(format!("{by} supervises no channel")));
        }
        let channel = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone());
        match channel {
            Some(channel) => self.oversee(by, &channel).map(|()| channel),
            None => Err(self.missing_chat(chat).await),
        }
    }

    /// `by` follows a live chat of a channel they oversee, read-only: their
    /// connections get its transcript so far and then every new event
    /// (notes included) until they unfollow or it ends. Following a chat
    /// followed already changes nothing. At most `[limits]
    /// followed_chats` live chats per supervisor.
    pub async fn follow(&self, by: &AgentId, chat: ChatId) -> Result<(), HubError> {
        self.overseen_chat(by, chat).await?;
        // The events go through the supervisor's actor.
        self.agent_actor(by).await?;
        {
            let mut followed = self.shared.follows.entry(by.clone()).or_default();
            // Chats that ended (or whose actor failed) no longer count.
            followed.retain(|chat| self.shared.chats.contains_key(chat));
            if !followed.contains(&chat) && followed.len() >= self.shared.limits.followed_chats {
                return Err(HubError::limited(
                    Limit::FollowedChats,
                    format!(
                        "{by} follows {} chats already",
                        self.shared.limits.followed_chats
                    ),
                ));
            }
            followed.insert(chat);
        }
        let (tx, rx) = oneshot::channel();
        let asked = match self.chat_actor(chat) {
            Some(actor) => actor
                .cast(ChatMsg::Follow {
                    by: by.clone(),
                    reply: tx.into(),
                })
                .map_err(|_| gone("the chat's actor stopped")),
            None => Err(HubError::Chat(ChatError::Ended)),
        };
        let followed = match asked {
            Ok(()) => answer(rx).await.and_then(|result| result),
            Err(err) => Err(err),
        };
        if followed.is_err()
            && let Some(mut chats) = self.shared.follows.get_mut(by)
        {
            chats.remove(&chat);
        }
        followed
    }

    /// `by` stops following `chat`; not following it is no error.
    pub fn unfollow(&self, by: &AgentId, chat: ChatId) -> Result<(), HubError> {
        if !self.role(by).oversees_any() {
            return Err(HubError::NotAllowed(format!("{by} supervises no channel")));
        }
        if let Some(mut chats) = self.shared.follows.get_mut(by) {
            chats.remove(&chat);
        }
        if let Some(actor) = self.chat_actor(chat) {
            let _ = actor.cast(ChatMsg::Unfollow { by: by.clone() });
        }
        Ok(())
    }

    /// A chat's actor stopped: its followers follow it no more.
    pub(crate) fn forget_followers(
        &self,
        chat: ChatId,
        followers: impl IntoIterator<Item = AgentId>,
    ) {
        for follower in followers {
            if let Some(mut chats) = self.shared.follows.get_mut(&follower) {
                chats.remove(&chat);
            }
        }
    }

    /// `by` moves a live chat of a channel they oversee from the agent
    /// holding it to `to`, as a transfer: `to` must be a Present member of
    /// the channel with a free slot, which is reserved first (and given
    /// back if the chat refuses); the old holder's slot is freed once the
    /// move is durable. The chat records who moved it (`Reassigned`, for
    /// agents only) with the move.
    pub async fn reassign(&self, by: &AgentId, chat: ChatId, to: AgentId) -> Result<(), HubError> {
        let channel = self.overseen_chat(by, chat).await?;
        let presence = self
            .shared
            .presence
            .agent(&to)
            .ok_or_else(|| HubError::AgentUnavailable(to.clone()))?;
        if !self.is_member(&to, &channel) || presence.status() != Status::Present {
            return Err(HubError::AgentUnavailable(to));
        }
        if !presence.capacity.try_reserve() {
            return Err(HubError::AgentUnavailable(to));
        }
        let done = self
            .ask_chat(chat, {
                let (by, to) = (by.clone(), to.clone());
                move |reply| ChatMsg::Reassign { by, to, reply }
            })
            .await;
        if done.is_err() {
            self.release_slot(&to);
        }
        done
    }

    /// `by` barges into a live chat of a channel they oversee: they take
    /// part beside its agent (posting messages the customer sees) and
    /// their connections get its transcript and every event, until they
    /// leave or it ends. Barging in again changes nothing.
    pub async fn barge_in(&self, by: &AgentId, chat: ChatId) -> Result<(), HubError> {
        self.overseen_chat(by, chat).await?;
        // The events go through the supervisor's actor.
        self.agent_actor(by).await?;
        let by = by.clone();
        self.ask_chat(chat, move |reply| ChatMsg::BargeIn { by, reply })
            .await
    }

    /// `by`, who barged into `chat`, leaves it; not being in it is no
    /// error.
    pub async fn leave_barge_in(&self, by: &AgentId, chat: ChatId) -> Result<(), HubError> {
        self.overseen_chat(by, chat).await?;
        let by = by.clone();
        self.ask_chat(chat, move |reply| ChatMsg::LeaveBargeIn { by, reply })
            .await
    }
}
