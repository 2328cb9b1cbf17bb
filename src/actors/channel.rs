//! One actor per channel: owns the channel's queue, raises alerts for chats
//! that wait too long, and tells the agents who watch it about every change.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};

use crate::actors::HubError;
use crate::actors::agent::AgentMsg;
use crate::actors::chat::ChatMsg;
use crate::actors::sink::{ConnId, Outbound};
use crate::core::event::SNAPSHOT_ROWS;
use crate::core::{
    AgentId, Alert, Assignment, ChannelSettings, ChatId, ClaimCell, Claimer, Priority, Queue,
    QueueChange, QueueRow, QueueUpdate, Timestamp,
};

/// A chat waiting in the queue.
pub struct Waiting {
    /// Its incoming-list row.
    pub row: QueueRow,
    /// Shared with the chat actor and pickers; whoever claims it owns the chat.
    pub claim: Arc<ClaimCell>,
    /// The chat's actor.
    pub chat: ActorRef<ChatMsg>,
    /// The wait (claim generation) this entry is for; its alert timer
    /// carries it.
    pub generation: u64,
}

/// Messages to a [`ChannelActor`].
pub enum ChannelMsg {
    /// Queue a new chat. Answers how many chats wait, this one included.
    Enqueue {
        /// The chat.
        waiting: Waiting,
        /// A chat restored after a restart: queued even beyond the limit.
        restored: bool,
        /// The queue length, or why it was refused.
        reply: RpcReplyPort<Result<u32, HubError>>,
    },
    /// Give the chat that waited longest to `agent`. The reply is passed on
    /// to the chat's actor, which answers with the assignment.
    TakeNext {
        /// Who takes it.
        agent: AgentId,
        /// The assignment, or `QueueEmpty`.
        reply: RpcReplyPort<Result<Assignment, HubError>>,
    },
    /// Drop a chat that was claimed elsewhere (customer left, or picked),
    /// clearing its alert if one stands.
    Withdraw(ChatId),
    /// Fails the actor, to exercise supervision.
    #[cfg(test)]
    Crash,
    /// A chat's alert timer fired.
    AlertDue {
        /// The chat.
        chat: ChatId,
        /// The wait the timer was set for.
        generation: u64,
    },
    /// Start telling `agent` about changes, and send `conn` a snapshot.
    Watch {
        /// The agent.
        agent: AgentId,
        /// Its actor, which fans updates out to its connections.
        agent_actor: ActorRef<AgentMsg>,
        /// The connection that needs a snapshot first.
        conn: ConnId,
    },
    /// Stop telling `agent` about changes (it no longer works the
    /// channel): its connections get an empty list, and a clear for every
    /// alert that stands.
    Unwatch {
        /// The agent.
        agent: AgentId,
    },
    /// The channel's settings changed (a configuration reload): chats
    /// enqueued from now on follow them.
    Reconfigure(Arc<ChannelSettings>),
    /// Whether no chat waits (a removed channel is gone once drained).
    IsEmpty(RpcReplyPort<bool>),
    /// A waiting chat's priority changed (its event is durable): it takes
    /// its new place in the queue.
    SetPriority {
        /// The chat.
        chat: ChatId,
        /// Its priority now.
        priority: Priority,
    },
}

/// See the module docs.
pub struct ChannelActor;

/// A channel actor's state.
pub struct ChannelState {
    settings: ChannelSettings,
    queue: Queue<Waiting>,
    version: u64,
    watchers: HashMap<AgentId, ActorRef<AgentMsg>>,
    /// Alerts raised and not yet cleared.
    alerts: HashMap<ChatId, Arc<Alert>>,
}

impl ChannelState {
    /// Builds the next update and sends it to every watcher.
    fn broadcast(&mut self, change: QueueChange) {
        let update = Arc::new(self.update(change));
        metrics::gauge!("chathub_chats_waiting", "channel" => self.settings.id.to_string())
            .set(self.queue.len() as f64);
        for agent in self.watchers.values() {
            let _ = agent.cast(AgentMsg::Deliver {
                at: std::time::Instant::now(),
                to: None,
                except: None,
                event: Outbound::Queue(update.clone()),
            });
        }
    }

    /// A chat left the queue: tell the watchers, and clear its alert.
    fn left(&mut self, chat: ChatId) {
        self.broadcast(QueueChange::Removed(chat));
        self.clear_alert(chat);
    }

    fn clear_alert(&mut self, chat: ChatId) {
        if self.alerts.remove(&chat).is_some() {
            metrics::counter!("chathub_alerts_cleared_total", "channel" => self.settings.id.to_string())
                .increment(1);
            for agent in self.watchers.values() {
                let _ = agent.cast(AgentMsg::AlertCleared {
                    channel: self.settings.id.clone(),
                    chat,
                });
            }
        }
    }

    /// Raises the alert of `chat` if it still waits in wait `generation`.
    fn alert_due(&mut self, chat: ChatId, generation: u64) {
        let Some(waiting) = self.queue.get(chat) else {
            return;
        };
        if waiting.generation != generation || !waiting.claim.raise_alert(generation) {
            return;
        }
        let alert = Arc::new(Alert {
            row: waiting.row.clone(),
            raised: Timestamp::now(),
        });
        metrics::counter!("chathub_alerts_raised_total", "channel" => self.settings.id.to_string())
            .increment(1);
        self.alerts.insert(chat, alert.clone());
        for agent in self.watchers.values() {
            let _ = agent.cast(AgentMsg::Alert(alert.clone()));
        }
    }

    /// Sets a new alert timer for every waiting chat not yet alerted, after
    /// a change of `alert_after` or of the business hours: a timer already
    /// set may be due much later (held for an opening that moved). A timer
    /// that fires twice raises the alert once.
    fn rearm_alerts(&self, myself: &ActorRef<ChannelMsg>) {
        let now = Timestamp::now();
        for (chat, since, waiting) in self.queue.iter() {
            if waiting.claim.is_alerted() {
                continue;
            }
            let due = self.settings.alert_after.saturating_sub(now.since(since));
            let generation = waiting.generation;
            myself.send_after(due, move || ChannelMsg::AlertDue { chat, generation });
        }
    }

    fn update(&mut self, change: QueueChange) -> QueueUpdate {
        self.version += 1;
        QueueUpdate {
            channel: self.settings.id.clone(),
            version: self.version,
            waiting: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            change,
        }
    }

    fn snapshot(&self) -> QueueUpdate {
        let rows = self
            .queue
            .iter()
            .take(SNAPSHOT_ROWS)
            .map(|(_, _, waiting)| waiting.row.clone())
            .collect();
        QueueUpdate {
            channel: self.settings.id.clone(),
            version: self.version,
            waiting: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            change: QueueChange::Snapshot(rows),
        }
    }

    fn take_next(&mut self, agent: AgentId, mut reply: RpcReplyPort<Result<Assignment, HubError>>) {
        while let Some((chat, _, waiting)) = self.queue.pop_next() {
            self.left(chat);
            if waiting.claim.claim(Claimer::Agent).is_err() {
                // Withdrawn by the customer (or picked) just now; its own
                // Withdraw will find it gone.
                continue;
            }
            let assign = ChatMsg::Assign {
                agent: agent.clone(),
                reply,
            };
            match waiting.chat.cast(assign) {
                Ok(()) => return,
                // The chat's actor is gone; take the reply back and go on.
                Err(MessagingErr::SendErr(ChatMsg::Assign { reply: back, .. })) => reply = back,
                Err(_) => return,
            }
        }
        let _ = reply.send(Err(HubError::QueueEmpty(self.settings.id.clone())));
    }
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = ChannelSettings;

    async fn pre_start(
        &self,
        _: ActorRef<ChannelMsg>,
        settings: ChannelSettings,
    ) -> Result<ChannelState, ActorProcessingErr> {
        let mut queue = Queue::new(settings.queue_limit);
        queue.set_aging(settings.priority_aging);
        Ok(ChannelState {
            queue,
            settings,
            version: 0,
            watchers: HashMap::new(),
            alerts: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ChannelMsg>,
        message: ChannelMsg,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChannelMsg::Enqueue {
                waiting,
                restored,
                reply,
            } => {
                let row = waiting.row.clone();
                let generation = waiting.generation;
                let priority = row.priority.unwrap_or(state.settings.priority);
                let pushed = if restored {
                    state
                        .queue
                        .push_back_beyond_limit(row.chat, row.since, priority, waiting)
                } else {
                    state
                        .queue
                        .push_back(row.chat, row.since, priority, waiting)
                };
                match pushed {
                    Ok(()) => {
                        let chat = row.chat;
                        // A chat restored from the store has waited already.
                        let due = state
                            .settings
                            .alert_after
                            .saturating_sub(Timestamp::now().since(row.since));
                        state.broadcast(QueueChange::Added(row));
                        myself.send_after(due, move || ChannelMsg::AlertDue { chat, generation });
                        let _ =
                            reply.send(Ok(u32::try_from(state.queue.len()).unwrap_or(u32::MAX)));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            ChannelMsg::TakeNext { agent, reply } => state.take_next(agent, reply),
            ChannelMsg::Withdraw(chat) => {
                if state.queue.remove(chat).is_some() {
                    state.broadcast(QueueChange::Removed(chat));
                }
                state.clear_alert(chat);
            }
            ChannelMsg::AlertDue { chat, generation } => {
                // Outside business hours an alert waits for the opening.
                let now = Timestamp::now();
                match state
                    .settings
                    .hours
                    .as_ref()
                    .map(|hours| hours.next_opening(now))
                {
                    Some(Some(opens)) if opens > now => {
                        myself.send_after(opens.since(now), move || ChannelMsg::AlertDue {
                            chat,
                            generation,
                        });
                    }
                    // Closed for more than a year: a reload re-arms it.
                    Some(None) => {}
                    _ => state.alert_due(chat, generation),
                }
            }
            #[cfg(test)]
            ChannelMsg::Crash => panic!("channel actor crash requested by a test"),
            ChannelMsg::Watch {
                agent,
                agent_actor,
                conn,
            } => {
                let snapshot = Arc::new(state.snapshot());
                let _ = agent_actor.cast(AgentMsg::Deliver {
                    at: std::time::Instant::now(),
                    to: Some(conn),
                    except: None,
                    event: Outbound::Queue(snapshot),
                });
                for alert in state.alerts.values() {
                    let _ = agent_actor.cast(AgentMsg::Alert(alert.clone()));
                }
                state.watchers.insert(agent, agent_actor);
            }
            ChannelMsg::Unwatch { agent } => {
                if let Some(agent_actor) = state.watchers.remove(&agent) {
                    let empty = QueueUpdate {
                        channel: state.settings.id.clone(),
                        version: state.version,
                        waiting: 0,
                        change: QueueChange::Snapshot(Vec::new()),
                    };
                    let _ = agent_actor.cast(AgentMsg::Deliver {
                        at: std::time::Instant::now(),
                        to: None,
                        except: None,
                        event: Outbound::Queue(Arc::new(empty)),
                    });
                    for &chat in state.alerts.keys() {
                        let _ = agent_actor.cast(AgentMsg::AlertCleared {
                            channel: state.settings.id.clone(),
                            chat,
                        });
                    }
                }
            }
            ChannelMsg::Reconfigure(settings) => {
                state.queue.set_limit(settings.queue_limit);
                state.queue.set_aging(settings.priority_aging);
                let rearm = settings.hours != state.settings.hours
                    || settings.alert_after != state.settings.alert_after;
                state.settings = (*settings).clone();
                if rearm {
                    state.rearm_alerts(&myself);
                }
            }
            ChannelMsg::IsEmpty(reply) => {
                let _ = reply.send(state.queue.is_empty());
            }
            ChannelMsg::SetPriority { chat, priority } => {
                state.queue.set_priority(chat, priority);
                if let Some(waiting) = state.queue.get_mut(chat) {
                    waiting.row.priority = Some(priority);
                    let row = waiting.row.clone();
                    state.broadcast(QueueChange::Changed(row));
                }
            }
        }
        Ok(())
    }
}
