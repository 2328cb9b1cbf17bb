//! One actor per signed-in agent: fans events out to the agent's
//! connections, keeps the agent's status, and decides which alerts the agent
//! sees.
//!
//! Every channel tells all its watching agents about alerts, whatever their
//! status; this actor shows an alert only while the agent is Present, shows
//! the standing ones when the agent becomes Present, and sends a clear for
//! every alert it showed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::channel::ChannelMsg;
use crate::actors::hub::Hub;
use crate::actors::sink::{ConnId, EventSink, Outbound};
use crate::core::{AgentId, AgentPresence, Alert, ChannelId, ChatId, Status};

/// Messages to an [`AgentActor`].
pub enum AgentMsg {
    /// A connection of this agent signed in; it starts receiving the
    /// agent's events, beginning with a snapshot of each channel's queue.
    Attach {
        /// The connection's event sink.
        sink: EventSink,
        /// The agent's current status.
        reply: RpcReplyPort<Status>,
    },
    /// A connection closed.
    Detach {
        /// The connection.
        conn: ConnId,
    },
    /// Push an event to one connection, or to all of them.
    Deliver {
        /// `None` for every connection of the agent.
        to: Option<ConnId>,
        /// The event.
        event: Outbound,
    },
    /// Present or Absent.
    SetStatus {
        /// The new status.
        status: Status,
        /// Acknowledged once set.
        reply: RpcReplyPort<()>,
    },
    /// A channel raised an alert (or repeats a standing one).
    Alert(Arc<Alert>),
    /// A channel's alert is over.
    AlertCleared {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
    },
    /// A chat was assigned to this agent.
    Assigned(ChatId),
    /// A chat of this agent ended or left them; its slot is already free.
    Released(ChatId),
    /// A chat of this agent failed without ending: free its slot.
    ChatFailed(ChatId),
    /// The last connection closed `generation` changes ago; if none came
    /// back since, the agent is no longer Present.
    GraceOver {
        /// The attach/detach generation the timer was set in.
        generation: u64,
    },
}

/// See the module docs.
pub struct AgentActor;

/// Startup arguments of an [`AgentActor`].
pub struct AgentArgs {
    /// The hub.
    pub hub: Hub,
    /// Which agent.
    pub id: AgentId,
    /// The agent's shared status and capacity.
    pub presence: Arc<AgentPresence>,
    /// How long after the last connection closes the agent stays Present.
    pub grace: Duration,
}

/// An agent actor's state.
pub struct AgentState {
    hub: Hub,
    id: AgentId,
    presence: Arc<AgentPresence>,
    grace: Duration,
    /// Bumped by every attach and detach, so a stale grace timer is ignored.
    generation: u64,
    conns: HashMap<ConnId, EventSink>,
    chats: HashSet<ChatId>,
    /// Alerts standing in the agent's channels.
    standing: HashMap<ChatId, Arc<Alert>>,
    /// The standing alerts this agent has been shown.
    shown: HashSet<ChatId>,
}

impl AgentState {
    fn deliver(&mut self, to: Option<ConnId>, event: Outbound) {
        match to {
            Some(conn) => {
                if let Some(sink) = self.conns.get(&conn)
                    && !sink.deliver(event)
                {
                    self.conns.remove(&conn);
                }
            }
            None => self.conns.retain(|_, sink| sink.deliver(event.clone())),
        }
    }

    /// Shows the standing alerts not yet shown, if the agent is Present.
    fn show_standing(&mut self) {
        if self.presence.status() != Status::Present {
            return;
        }
        let unseen: Vec<Arc<Alert>> = self
            .standing
            .iter()
            .filter(|(chat, _)| !self.shown.contains(chat))
            .map(|(_, alert)| alert.clone())
            .collect();
        for alert in unseen {
            self.shown.insert(alert.row.chat);
            self.deliver(None, Outbound::Alert(alert));
        }
    }
}

impl Actor for AgentActor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        _: ActorRef<AgentMsg>,
        args: AgentArgs,
    ) -> Result<AgentState, ActorProcessingErr> {
        Ok(AgentState {
            hub: args.hub,
            id: args.id,
            presence: args.presence,
            grace: args.grace,
            generation: 0,
            conns: HashMap::new(),
            chats: HashSet::new(),
            standing: HashMap::new(),
            shown: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AgentMsg>,
        message: AgentMsg,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AgentMsg::Attach { sink, reply } => {
                state.generation += 1;
                let conn = sink.conn();
                state.conns.insert(conn, sink);
                for channel in state.hub.member_channels(&state.id) {
                    if let Some(actor) = state.hub.channel_actor(channel) {
                        let _ = actor.cast(ChannelMsg::Watch {
                            agent: state.id.clone(),
                            agent_actor: myself.clone(),
                            conn,
                        });
                    }
                }
                // A new connection of a Present agent sees the alerts the
                // agent's other connections were shown.
                let shown: Vec<Arc<Alert>> = state
                    .shown
                    .iter()
                    .filter_map(|chat| state.standing.get(chat).cloned())
                    .collect();
                for alert in shown {
                    state.deliver(Some(conn), Outbound::Alert(alert));
                }
                let _ = reply.send(state.presence.status());
            }
            AgentMsg::Detach { conn } => {
                state.conns.remove(&conn);
                state.generation += 1;
                if state.conns.is_empty() {
                    let generation = state.generation;
                    myself.send_after(state.grace, move || AgentMsg::GraceOver { generation });
                }
            }
            AgentMsg::GraceOver { generation } => {
                if generation == state.generation
                    && state.conns.is_empty()
                    && state.presence.set(Status::Absent)
                {
                    tracing::info!(agent = %state.id, "no connection left: Absent");
                }
            }
            AgentMsg::Deliver { to, event } => state.deliver(to, event),
            AgentMsg::SetStatus { status, reply } => {
                state.presence.set(status);
                state.show_standing();
                let _ = reply.send(());
            }
            AgentMsg::Alert(alert) => {
                state.standing.insert(alert.row.chat, alert);
                state.show_standing();
            }
            AgentMsg::AlertCleared { channel, chat } => {
                state.standing.remove(&chat);
                if state.shown.remove(&chat) {
                    state.deliver(None, Outbound::AlertCleared { channel, chat });
                }
            }
            AgentMsg::Assigned(chat) => {
                state.chats.insert(chat);
            }
            AgentMsg::Released(chat) => {
                state.chats.remove(&chat);
            }
            AgentMsg::ChatFailed(chat) => {
                if state.chats.remove(&chat) {
                    state.presence.capacity.release();
                }
            }
        }
        Ok(())
    }
}
