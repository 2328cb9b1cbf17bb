//! One actor per live chat: owns the transcript, numbers its events and
//! sends each one, in order, to the customer and the agent.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::HubError;
use crate::actors::agent::AgentMsg;
use crate::actors::channel::ChannelMsg;
use crate::actors::hub::{Caller, ChatEntry, Hub};
use crate::actors::records::{RecordsMsg, SessionRecord, TranscriptPage};
use crate::actors::sink::{ConnId, EventSink, Outbound};
use crate::core::{
    AgentId, Assignment, Chat, ChatState, ClaimCell, Claimed, Claimer, Party, Posted,
    SessionSummary, Timestamp, transcript_page,
};

/// Messages to a [`ChatActor`].
pub enum ChatMsg {
    /// The customer's connection starts receiving the chat's events after
    /// `after` (0 for all).
    AttachCustomer {
        /// The customer's connection.
        sink: EventSink,
        /// The last seq the customer has.
        after: u64,
    },
    /// The customer's connection closed.
    CustomerGone(ConnId),
    /// The claim on this chat was won for `agent`: answer it.
    Assign {
        /// The answering agent.
        agent: AgentId,
        /// Its actor, which receives the chat's events from now on.
        agent_actor: ActorRef<AgentMsg>,
        /// The assignment.
        reply: RpcReplyPort<Result<Assignment, HubError>>,
    },
    /// Post a message.
    Post {
        /// Who posts.
        caller: Caller,
        /// The sender's id for the message.
        client_id: u64,
        /// The text.
        text: String,
        /// The message's seq.
        reply: RpcReplyPort<Result<u64, HubError>>,
    },
    /// End the chat: the agent ends it, or the customer leaves.
    End {
        /// Who ends it.
        caller: Caller,
        /// Acknowledged once ended.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// A page of the transcript after a seq.
    Transcript {
        /// Events after this seq.
        after: u64,
        /// The page.
        reply: RpcReplyPort<TranscriptPage>,
    },
    /// Fails the actor, to exercise supervision.
    #[cfg(test)]
    Crash,
}

/// See the module docs.
pub struct ChatActor;

/// Startup arguments of a [`ChatActor`].
pub struct ChatArgs {
    /// The hub.
    pub hub: Hub,
    /// The chat, as just started.
    pub chat: Chat,
    /// The claim cell of its queue entry.
    pub claim: Arc<ClaimCell>,
    /// The connection of the customer who started it.
    pub customer_conn: ConnId,
}

/// A chat actor's state.
pub struct ChatActorState {
    hub: Hub,
    chat: Chat,
    claim: Arc<ClaimCell>,
    customer_conn: ConnId,
    customer: Option<EventSink>,
    agent: Option<ActorRef<AgentMsg>>,
    /// The customer left while an agent's claim was on its way here.
    leaving: bool,
}

impl ChatActorState {
    fn party(&self, caller: &Caller) -> Result<Party, HubError> {
        match caller {
            Caller::Customer(conn) if *conn == self.customer_conn => Ok(Party::Customer),
            Caller::Customer(_) => Err(HubError::NotYourChat(self.chat.id())),
            Caller::Agent(agent) => Ok(Party::Agent(agent.clone())),
        }
    }

    /// Sends the newest event to everyone in the chat.
    fn publish_last(&mut self) {
        let Some(event) = self.chat.events().last() else {
            return;
        };
        let event = Arc::new(event.clone());
        if let Some(sink) = &self.customer
            && !sink.deliver(Outbound::Chat(event.clone()))
        {
            self.customer = None;
        }
        if let Some(agent) = &self.agent {
            let _ = agent.cast(AgentMsg::Deliver {
                to: None,
                event: Outbound::Chat(event),
            });
        }
    }

    fn assign(
        &mut self,
        agent: AgentId,
        agent_actor: ActorRef<AgentMsg>,
    ) -> Result<Assignment, HubError> {
        let waiting_since = match self.chat.state() {
            ChatState::Queued { since } => *since,
            _ => Timestamp::default(),
        };
        self.chat.assign(agent, Timestamp::now())?;
        // The agent gets the whole transcript so far, the customer the news.
        for event in self.chat.events() {
            let _ = agent_actor.cast(AgentMsg::Deliver {
                to: None,
                event: Outbound::Chat(Arc::new(event.clone())),
            });
        }
        let _ = agent_actor.cast(AgentMsg::Assigned(self.chat.id()));
        self.agent = Some(agent_actor);
        if let (Some(sink), Some(event)) = (&self.customer, self.chat.events().last())
            && !sink.deliver(Outbound::Chat(Arc::new(event.clone())))
        {
            self.customer = None;
        }
        Ok(Assignment {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            first_message: self.chat.first_message().to_owned(),
            waiting_since,
        })
    }

    /// Ends the chat for `by` and hands it to the records; the actor stops.
    fn end(&mut self, myself: &ActorRef<ChatMsg>, by: Party) -> Result<(), HubError> {
        let holder = self.chat.agent().cloned();
        self.chat.end(by.clone(), Timestamp::now())?;
        self.publish_last();
        if let Some(holder) = holder {
            self.hub.release_slot(&holder);
        }
        if let Some(agent) = &self.agent {
            let _ = agent.cast(AgentMsg::Released(self.chat.id()));
        }
        let events = self.chat.events().to_vec();
        let summary = SessionSummary {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            agent: self.chat_agent(),
            started: events.first().map(|e| e.at).unwrap_or_default(),
            ended: events.last().map(|e| e.at).unwrap_or_default(),
            ended_by: by,
            events: events.len() as u64,
        };
        self.hub.record(SessionRecord { summary, events });
        myself.stop(None);
        Ok(())
    }

    /// The agent who answered the chat, read from the transcript.
    fn chat_agent(&self) -> Option<AgentId> {
        self.chat
            .events()
            .iter()
            .rev()
            .find_map(|event| match &event.kind {
                crate::core::ChatEventKind::Assigned { agent } => Some(agent.clone()),
                _ => None,
            })
    }

    /// The customer leaves. A queued chat is withdrawn from the queue first;
    /// if an agent's claim won the race, the chat ends right after the
    /// assignment arrives.
    fn leave(&mut self, myself: &ActorRef<ChatMsg>) -> Result<(), HubError> {
        if matches!(self.chat.state(), ChatState::Queued { .. }) {
            match self.claim.claim(Claimer::Abandon) {
                Ok(_) => {
                    if let Some(channel) = self.hub.channel_actor(self.chat.channel()) {
                        let _ = channel.cast(ChannelMsg::Withdraw(self.chat.id()));
                    }
                }
                Err(Claimed(Claimer::Agent)) => {
                    self.leaving = true;
                    return Ok(());
                }
                Err(Claimed(Claimer::Abandon)) => return Err(crate::core::ChatError::Ended.into()),
            }
        }
        self.end(myself, Party::Customer)
    }
}

impl Actor for ChatActor {
    type Msg = ChatMsg;
    type State = ChatActorState;
    type Arguments = ChatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ChatMsg>,
        args: ChatArgs,
    ) -> Result<ChatActorState, ActorProcessingErr> {
        args.hub.register_chat(
            args.chat.id(),
            ChatEntry {
                actor: myself,
                channel: args.chat.channel().clone(),
                claim: args.claim.clone(),
            },
        );
        Ok(ChatActorState {
            hub: args.hub,
            chat: args.chat,
            claim: args.claim,
            customer_conn: args.customer_conn,
            customer: None,
            agent: None,
            leaving: false,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ChatMsg>,
        state: &mut ChatActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.hub.unregister_chat(state.chat.id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChatMsg>,
        message: ChatMsg,
        state: &mut ChatActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChatMsg::AttachCustomer { sink, after } => {
                if sink.conn() != state.customer_conn {
                    return Ok(());
                }
                let delivered = state
                    .chat
                    .events_after(after)
                    .iter()
                    .all(|event| sink.deliver(Outbound::Chat(Arc::new(event.clone()))));
                state.customer = delivered.then_some(sink);
            }
            ChatMsg::CustomerGone(conn) => {
                if state
                    .customer
                    .as_ref()
                    .is_some_and(|sink| sink.conn() == conn)
                {
                    state.customer = None;
                }
            }
            ChatMsg::Assign {
                agent,
                agent_actor,
                reply,
            } => {
                let _ = reply.send(state.assign(agent, agent_actor));
                if state.leaving {
                    state.end(&myself, Party::Customer)?;
                }
            }
            ChatMsg::Post {
                caller,
                client_id,
                text,
                reply,
            } => {
                let posted = state.party(&caller).and_then(|party| {
                    match state.chat.post(party, client_id, text, Timestamp::now())? {
                        Posted::New(event) => Ok((event.seq, true)),
                        Posted::Repeat(seq) => Ok((seq, false)),
                    }
                });
                if let Ok((_, true)) = posted {
                    state.publish_last();
                }
                let _ = reply.send(posted.map(|(seq, _)| seq));
            }
            ChatMsg::End { caller, reply } => {
                let ended = match state.party(&caller) {
                    Ok(Party::Customer) => state.leave(&myself),
                    Ok(party) => state.end(&myself, party),
                    Err(err) => Err(err),
                };
                let _ = reply.send(ended);
            }
            ChatMsg::Transcript { after, reply } => {
                let (events, more) = transcript_page(state.chat.events(), after);
                let _ = reply.send(TranscriptPage {
                    channel: state.chat.channel().clone(),
                    events,
                    more,
                });
            }
            #[cfg(test)]
            ChatMsg::Crash => panic!("chat actor crash requested by a test"),
        }
        Ok(())
    }
}

impl From<SessionRecord> for RecordsMsg {
    fn from(record: SessionRecord) -> Self {
        RecordsMsg::Ended(Box::new(record))
    }
}
