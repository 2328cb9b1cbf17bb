//! One actor per signed-in agent: fans events out to the agent's
//! connections and keeps the agent's status and chats.

use std::collections::{HashMap, HashSet};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::channel::ChannelMsg;
use crate::actors::hub::Hub;
use crate::actors::sink::{ConnId, EventSink, Outbound};
use crate::core::{AgentId, ChatId, Status};

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
    /// A chat was assigned to this agent.
    Assigned(ChatId),
    /// A chat of this agent ended or left them.
    Released(ChatId),
}

/// See the module docs.
pub struct AgentActor;

/// Startup arguments of an [`AgentActor`].
pub struct AgentArgs {
    /// The hub.
    pub hub: Hub,
    /// Which agent.
    pub id: AgentId,
}

/// An agent actor's state.
pub struct AgentState {
    hub: Hub,
    id: AgentId,
    status: Status,
    conns: HashMap<ConnId, EventSink>,
    chats: HashSet<ChatId>,
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
            status: Status::Absent,
            conns: HashMap::new(),
            chats: HashSet::new(),
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
                let _ = reply.send(state.status);
            }
            AgentMsg::Detach { conn } => {
                state.conns.remove(&conn);
            }
            AgentMsg::Deliver { to, event } => state.deliver(to, event),
            AgentMsg::SetStatus { status, reply } => {
                state.status = status;
                let _ = reply.send(());
            }
            AgentMsg::Assigned(chat) => {
                state.chats.insert(chat);
            }
            AgentMsg::Released(chat) => {
                state.chats.remove(&chat);
            }
        }
        Ok(())
    }
}
