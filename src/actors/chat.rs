//! One actor per live chat: owns the transcript, numbers its events, makes
//! them durable, and only then sends them, in order, to the customer and
//! the agent and acknowledges the request that caused them.
//!
//! Every change is applied to the in-memory [`Chat`] at once (so the next
//! request sees it) and handed to the store's writer; the writer's commit
//! comes back as [`ChatMsg::Committed`], which publishes the now durable
//! events and answers the requests waiting for them. Many chats' writes share
//! one commit. If a commit fails, the waiting requests get an error and the
//! actor fails, so its supervisor rebuilds it from what is durable.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use crate::actors::HubError;
use crate::actors::agent::AgentMsg;
use crate::actors::channel::ChannelMsg;
use crate::actors::hub::{Caller, ChatEntry, Hub};
use crate::actors::origins::OriginSlot;
use crate::actors::sink::{ConnId, EventSink, Outbound};
use crate::core::{
    AgentId, Assignment, ChannelId, Chat, ChatEvent, ChatEventKind, ChatState, ClaimCell, Claimed,
    Claimer, FileRef, Gate, Limit, Party, Posted, Publish, QueueRow, SessionSummary, Ticket,
    TicketId, TicketSource, Timestamp, TokenBucket, transcript_page,
};
use crate::store::{Op, StoreError, StoredFile, TranscriptPage};

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
    /// A new connection of the customer takes the chat over, proving it
    /// with the digest of the chat's secret, and receives the events after
    /// `after`.
    Resume {
        /// The new connection.
        sink: EventSink,
        /// Digest of the secret the customer gave.
        token: Vec<u8>,
        /// The last seq the customer has.
        after: u64,
        /// Whether the secret matched; if so, whether the chat is still
        /// live (it may have ended, its actor not yet stopped).
        reply: RpcReplyPort<Result<bool, HubError>>,
    },
    /// Send an agent's connection the events after `after`, through the
    /// agent's actor (the same path as live events, so none overtakes).
    Replay {
        /// The agent's actor.
        agent_actor: ActorRef<AgentMsg>,
        /// The connection catching up.
        conn: ConnId,
        /// The last seq the connection has.
        after: u64,
    },
    /// The customer's connection closed.
    CustomerGone(ConnId),
    /// A queued chat's customer may have been gone for the channel's
    /// `abandon_after`: if so (and still queued), the chat is abandoned.
    AbandonIfGone,
    /// The claim on this chat was won for `agent`: answer it.
    Assign {
        /// The answering agent.
        agent: AgentId,
        /// The assignment, once durable.
        reply: RpcReplyPort<Result<Assignment, HubError>>,
    },
    /// Post a message.
    Post {
        /// Who posts.
        caller: Caller,
        /// The connection it came from: it learns the message's seq and
        /// time from the answer, so it is not sent the event.
        conn: ConnId,
        /// The sender's id for the message.
        client_id: u64,
        /// The text.
        text: String,
        /// Where the message landed, once durable.
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    },
    /// End the chat: the agent ends it, or the customer leaves.
    End {
        /// Who ends it.
        caller: Caller,
        /// Acknowledged once the end is durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// The chat was started but could not be queued: end it.
    Discard,
    /// The agent who has the chat hands it to `to`, whose slot the hub has
    /// reserved.
    TransferToAgent {
        /// The agent handing it over.
        by: AgentId,
        /// The agent taking it.
        to: AgentId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// The agent a chat was transferred to declines it.
    Decline {
        /// The declining agent.
        by: AgentId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// The agent sends the chat to a channel's queue.
    Requeue {
        /// The agent.
        by: AgentId,
        /// The channel.
        channel: ChannelId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// The agent makes a ticket from the chat, transcript attached.
    CreateTicket {
        /// The agent.
        by: AgentId,
        /// The new ticket's id.
        ticket: TicketId,
        /// Its subject.
        subject: String,
        /// The agent's note.
        note: String,
        /// The ticket, once durable.
        reply: RpcReplyPort<Result<TicketId, HubError>>,
    },
    /// The agent sends a knowledge item's text, placeholders filled in.
    PostKnowledge {
        /// The agent.
        by: AgentId,
        /// Their display name, for `{agent.name}`.
        agent_name: String,
        /// The agent's id for the message.
        client_id: u64,
        /// The item's text.
        body: String,
        /// Where the message landed, once durable.
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    },
    /// A participant shares a file already written to disk.
    ShareFile {
        /// Who shares it.
        caller: Caller,
        /// The file.
        file: FileRef,
        /// Where its event landed, once durable.
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    },
    /// Its incoming-list row, if the chat waits in a queue now.
    WaitingRow {
        /// The row, or `None` if it does not wait.
        reply: RpcReplyPort<Option<QueueRow>>,
    },
    /// Whether `caller` may share a file in the chat now: takes part in it
    /// and, for the customer, is within the chat's pace and length. Asked
    /// before any byte of the file is taken; the share itself is checked
    /// again.
    MayShare {
        /// Who asks.
        caller: Caller,
        /// The file's size.
        size: u64,
        /// The answer.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// Whether `caller` takes part in the chat (to download its files).
    IsParticipant {
        /// Who asks.
        caller: Caller,
        /// The answer.
        reply: RpcReplyPort<Result<bool, HubError>>,
    },
    /// A page of the durable transcript after a seq.
    Transcript {
        /// Events after this seq.
        after: u64,
        /// The page.
        reply: RpcReplyPort<TranscriptPage>,
    },
    /// The store made every event up to `seq` durable.
    Committed {
        /// The last durable seq.
        seq: u64,
    },
    /// The store failed to make events durable.
    CommitFailed(StoreError),
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
    /// The chat: just started, or restored from the store.
    pub chat: Chat,
    /// The claim cell of its queue entry.
    pub claim: Arc<ClaimCell>,
    /// The connection of the customer who started it (none after a
    /// restore).
    pub customer_conn: Option<ConnId>,
    /// Digest of the customer's secret, which a resuming connection must
    /// match.
    pub token_digest: Option<Vec<u8>>,
    /// For a new (or reopened) chat: told once its events after `durable`
    /// are durable. `None` for a chat restored as it was stored.
    pub started: Option<oneshot::Sender<Result<(), HubError>>>,
    /// The last seq already in the store.
    pub durable: u64,
    /// Ops to store with the start (the customer's resume token).
    pub start_ops: Vec<Op>,
    /// The chat's place in its customer's live-chat counts (none after a
    /// restore), given back when the actor stops.
    pub(crate) origin: Option<OriginSlot>,
}

/// Where a message (or a shared file) landed in its chat's transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Its event's seq.
    pub seq: u64,
    /// When the hub recorded it.
    pub at: Timestamp,
}

impl From<&ChatEvent> for Receipt {
    fn from(event: &ChatEvent) -> Self {
        Self {
            seq: event.seq,
            at: event.at,
        }
    }
}

/// A request waiting for its events to become durable.
enum Answer {
    Started(oneshot::Sender<Result<(), HubError>>),
    Posted(
        RpcReplyPort<Result<Receipt, HubError>>,
        Receipt,
        std::time::Instant,
    ),
    Assigned(RpcReplyPort<Result<Assignment, HubError>>, Assignment),
    Ended(RpcReplyPort<Result<(), HubError>>),
    Ticket(RpcReplyPort<Result<TicketId, HubError>>, TicketId),
}

/// The metrics every message moves, looked up once per chat rather than in
/// the registry for every message.
struct MessageMetrics {
    delivery: metrics::Histogram,
    customer_to_agent: metrics::Counter,
    agent_to_customer: metrics::Counter,
    system: metrics::Counter,
}

impl MessageMetrics {
    fn new() -> Self {
        let messages = |direction: &'static str| metrics::counter!("chathub_messages_total", "direction" => direction);
        Self {
            delivery: metrics::histogram!("chathub_message_delivery_seconds"),
            customer_to_agent: messages("customer_to_agent"),
            agent_to_customer: messages("agent_to_customer"),
            system: messages("system"),
        }
    }
}

impl Answer {
    fn succeed(self, metrics: &MessageMetrics) {
        match self {
            Self::Started(tx) => drop(tx.send(Ok(()))),
            Self::Posted(reply, receipt, received) => {
                metrics.delivery.record(received.elapsed().as_secs_f64());
                drop(reply.send(Ok(receipt)))
            }
            Self::Assigned(reply, assignment) => drop(reply.send(Ok(assignment))),
            Self::Ended(reply) => drop(reply.send(Ok(()))),
            Self::Ticket(reply, ticket) => drop(reply.send(Ok(ticket))),
        }
    }

    fn fail(self, err: HubError) {
        match self {
            Self::Started(tx) => drop(tx.send(Err(err))),
            Self::Posted(reply, _, _) => drop(reply.send(Err(err))),
            Self::Assigned(reply, _) => drop(reply.send(Err(err))),
            Self::Ended(reply) => drop(reply.send(Err(err))),
            Self::Ticket(reply, _) => drop(reply.send(Err(err))),
        }
    }
}

/// A chat actor's state.
pub struct ChatActorState {
    hub: Hub,
    chat: Chat,
    claim: Arc<ClaimCell>,
    customer_conn: Option<ConnId>,
    token_digest: Option<Vec<u8>>,
    customer: Option<EventSink>,
    /// The customer left while an agent's claim was on its way here.
    leaving: bool,
    /// Nothing is answered or published before it is durable: the gate
    /// says what may go out, and when.
    gate: Gate<Answer, ConnId>,
    /// The agent the published events so far are assigned to.
    published_agent: Option<AgentId>,
    /// When the chat's current wait in a queue began, for the wait metric.
    queued_since: Option<Timestamp>,
    metrics: MessageMetrics,
    /// Paces the customer's messages.
    customer_rate: TokenBucket,
    /// The agent was told the chat reached its length limit.
    told_too_long: bool,
    /// Since when no connection of the customer's receives the chat.
    customer_gone_since: Option<std::time::Instant>,
    /// Bytes of the files the customer shared in the chat.
    customer_file_bytes: u64,
    /// The chat's place in its customer's live-chat counts.
    _origin: Option<OriginSlot>,
}

impl ChatActorState {
    /// The durable events after `after`: what may be shown to anyone.
    fn durable_after(&self, after: u64) -> impl Iterator<Item = &ChatEvent> {
        let durable = self.gate.durable();
        self.chat
            .events_after(after)
            .take_while(move |event| event.seq <= durable)
    }

    /// The customer's connection receives the durable events after `after`
    /// and, from then on, every new one.
    fn attach_customer(&mut self, sink: EventSink, after: u64) {
        let delivered = self
            .durable_after(after)
            .all(|event| sink.deliver(Outbound::Chat(Arc::new(event.clone()))));
        self.customer = delivered.then_some(sink);
        if self.customer.is_some() {
            self.customer_gone_since = None;
        } else {
            // The new connection fell behind at once: gone as before.
            self.customer_gone_since
                .get_or_insert_with(std::time::Instant::now);
        }
    }

    fn last_seq(&self) -> u64 {
        self.chat.events().last().map_or(0, |event| event.seq)
    }

    fn party(&self, caller: &Caller) -> Result<Party, HubError> {
        match caller {
            Caller::Customer(conn) if Some(*conn) == self.customer_conn => Ok(Party::Customer),
            Caller::Customer(_) => Err(HubError::NotYourChat(self.chat.id())),
            Caller::Agent(agent) => Ok(Party::Agent(agent.clone())),
        }
    }

    /// Hands the events not yet written (and `extra` ops) to the store; the
    /// commit comes back as a message.
    fn persist(&mut self, myself: &ActorRef<ChatMsg>, extra: Vec<Op>) {
        let last = self.last_seq();
        let mut ops: Vec<Op> = self
            .chat
            .events_after(self.gate.written())
            .cloned()
            .map(Op::Event)
            .collect();
        ops.extend(extra);
        if ops.is_empty() {
            return;
        }
        self.gate.handle_written(last);
        let myself = myself.clone();
        self.hub.store().writer().submit(
            ops,
            Box::new(move |result| {
                let _ = myself.cast(match result {
                    Ok(()) => ChatMsg::Committed { seq: last },
                    Err(err) => ChatMsg::CommitFailed(err),
                });
            }),
        );
    }

    /// Publishes the events up to `seq` and answers what waited for them,
    /// as the gate lets them out.
    fn committed(&mut self, myself: &ActorRef<ChatMsg>, seq: u64) {
        self.gate.handle_durable(seq);
        while let Some(Publish { seq, except }) = self.gate.poll_publish() {
            let index = usize::try_from(seq - 1).unwrap_or(usize::MAX);
            if let Some(event) = self.chat.events().get(index).cloned() {
                self.publish(myself, Arc::new(event), except);
            }
        }
        while let Some(answer) = self.gate.poll_answer() {
            answer.succeed(&self.metrics);
        }
        if matches!(self.chat.state(), ChatState::Ended { .. })
            && self.gate.settled()
            && self.gate.durable() == self.last_seq()
        {
            myself.stop(None);
        }
    }

    /// Sends one durable event to everyone in the chat (but connection
    /// `except`, which sent it and learns of it from its answer) and
    /// carries out what it means for the hub: who holds the chat now, whose
    /// slot is free, whether it goes back to a queue.
    fn publish(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        event: Arc<ChatEvent>,
        except: Option<ConnId>,
    ) {
        if let Some(sink) = &self.customer
            && Some(sink.conn()) != except
            && !sink.deliver(Outbound::Chat(event.clone()))
        {
            self.customer_left(myself);
        }
        // The agent holding the chat sees every event, including the one
        // that takes the chat away from them.
        let previous = self.published_agent.clone();
        if let Some(actor) = previous
            .as_ref()
            .and_then(|agent| self.hub.agent_actor_ref(agent))
        {
            let _ = actor.cast(AgentMsg::Deliver {
                to: None,
                except,
                event: Outbound::Chat(event.clone()),
            });
        }
        self.count(&event);
        let next = match &event.kind {
            ChatEventKind::Assigned { agent }
            | ChatEventKind::TransferredToAgent { to: agent, .. } => Some(agent.clone()),
            ChatEventKind::TransferDeclined { to, .. } => to.clone(),
            ChatEventKind::Reopened { agent } => agent.clone(),
            ChatEventKind::Requeued { .. } | ChatEventKind::Ended { .. } => None,
            _ => previous.clone(),
        };
        if next != previous {
            if let Some(old) = &previous {
                // Durable now: the slot is free before anyone is answered.
                self.hub.release_slot(old);
                if let Some(actor) = self.hub.agent_actor_ref(old) {
                    let _ = actor.cast(AgentMsg::Released(self.chat.id()));
                }
            }
            match &next {
                Some(agent) => {
                    self.hub.set_assignment(self.chat.id(), agent.clone());
                    // The new holder gets the whole transcript so far.
                    if let Some(actor) = self.hub.agent_actor_ref(agent) {
                        for earlier in self.chat.events().iter().take_while(|e| e.seq <= event.seq)
                        {
                            let _ = actor.cast(AgentMsg::Deliver {
                                to: None,
                                except: None,
                                event: Outbound::Chat(Arc::new(earlier.clone())),
                            });
                        }
                        let _ = actor.cast(AgentMsg::Assigned(self.chat.id()));
                    }
                }
                None => self.hub.clear_assignment(self.chat.id()),
            }
            self.published_agent = next;
        }
        match &event.kind {
            ChatEventKind::Requeued { .. }
            | ChatEventKind::TransferDeclined { to: None, .. }
            | ChatEventKind::Reopened { agent: None } => self.queue_again(myself, event.at),
            _ => {}
        }
    }

    /// Records what a durable event means for the metrics.
    fn count(&mut self, event: &ChatEvent) {
        // Labels are built only for the rarer events; messages use the
        // handles looked up when the actor started.
        match &event.kind {
            ChatEventKind::Started { .. }
            | ChatEventKind::Requeued { .. }
            | ChatEventKind::TransferDeclined { to: None, .. }
            | ChatEventKind::Reopened { agent: None } => self.queued_since = Some(event.at),
            ChatEventKind::Assigned { .. } => {
                let channel = self.chat.channel().to_string();
                metrics::counter!("chathub_chats_answered_total", "channel" => channel.clone())
                    .increment(1);
                if let Some(since) = self.queued_since.take() {
                    metrics::histogram!("chathub_chat_wait_seconds", "channel" => channel)
                        .record(event.at.since(since).as_secs_f64());
                }
            }
            ChatEventKind::Message { from, .. } => match from {
                Party::Customer => self.metrics.customer_to_agent.increment(1),
                Party::Agent(_) => self.metrics.agent_to_customer.increment(1),
                Party::System => self.metrics.system.increment(1),
            },
            ChatEventKind::TransferredToAgent { .. } => {
                metrics::counter!("chathub_chats_transferred_total", "channel" => self.chat.channel().to_string(), "to" => "agent").increment(1);
            }
            ChatEventKind::Ended { .. } => {
                metrics::counter!("chathub_chats_ended_total", "channel" => self.chat.channel().to_string()).increment(1);
            }
            _ => {}
        }
        if let ChatEventKind::Requeued {
            by: Some(_),
            channel: to,
        } = &event.kind
        {
            metrics::counter!("chathub_chats_transferred_total", "channel" => to.to_string(), "to" => "channel")
                .increment(1);
        }
    }

    /// Puts the chat (back) into its channel's queue as a new wait.
    fn queue_again(&mut self, myself: &ActorRef<ChatMsg>, since: Timestamp) {
        let generation = self
            .claim
            .requeue()
            .unwrap_or_else(|_| self.claim.generation());
        let channel = self.chat.channel().clone();
        self.hub.register_chat(
            self.chat.id(),
            ChatEntry {
                actor: myself.clone(),
                channel: channel.clone(),
                claim: self.claim.clone(),
            },
        );
        let row = self.chat.queue_row(since);
        if self.customer.is_none() {
            // Waiting again with nobody to wait for: the customer has the
            // channel's `abandon_after` to come back, as at any wait.
            self.arm_abandonment(myself);
        }
        let (hub, chat, claim) = (self.hub.clone(), myself.clone(), self.claim.clone());
        tokio::spawn(async move {
            if let Err(err) = hub.enqueue(chat, claim, generation, row, true).await {
                tracing::error!("a chat could not go back to its queue: {err}");
            }
        });
    }

    /// Whether the customer may post `text` now: within the chat's pace
    /// and length. At the length limit the agent is told once, by a system
    /// message in the chat.
    fn admit_customer_post(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        text: &str,
    ) -> Result<(), HubError> {
        let limits = self.hub.limits();
        let events = self.chat.events();
        if events.len() as u64 >= limits.chat_events
            || events.text_bytes() + text.len() as u64 > limits.chat_bytes
        {
            if !self.told_too_long {
                self.told_too_long = true;
                let notice = "This chat has reached its length limit: the customer cannot \
                              write more. End it, or make a ticket of it.";
                if self
                    .chat
                    .post(Party::System, 0, notice.to_owned(), Timestamp::now())
                    .is_ok()
                {
                    self.persist(myself, Vec::new());
                }
            }
            return Err(HubError::limited(
                Limit::ChatLength,
                "the chat holds as much as a live chat may",
            ));
        }
        if !self.customer_rate.take(Timestamp::now()) {
            return Err(HubError::limited(
                Limit::MessageRate,
                "messages come faster than the chat allows; wait a moment",
            ));
        }
        Ok(())
    }

    /// Whether `caller` may share a file of `size` bytes now; see
    /// [`ChatMsg::MayShare`].
    fn may_share(&mut self, caller: &Caller, size: u64) -> Result<(), HubError> {
        match self.party(caller)? {
            Party::Customer => {
                let limits = self.hub.limits();
                if self.customer_file_bytes.saturating_add(size) > limits.chat_file_bytes {
                    return Err(HubError::limited(
                        Limit::UploadBytes,
                        format!(
                            "the files of a chat may have {} bytes in all",
                            limits.chat_file_bytes
                        ),
                    ));
                }
                let events = self.chat.events();
                if events.len() as u64 >= limits.chat_events
                    || events.text_bytes() >= limits.chat_bytes
                {
                    return Err(HubError::limited(
                        Limit::ChatLength,
                        "the chat holds as much as a live chat may",
                    ));
                }
                if !self.customer_rate.has_token(Timestamp::now()) {
                    return Err(HubError::limited(
                        Limit::MessageRate,
                        "messages come faster than the chat allows; wait a moment",
                    ));
                }
                Ok(())
            }
            Party::Agent(agent) if self.chat.agent() == Some(&agent) => Ok(()),
            _ => Err(HubError::NotYourChat(self.chat.id())),
        }
    }

    /// The customer no longer receives the chat: a queued chat is
    /// abandoned if they stay away for the channel's `abandon_after`.
    fn customer_left(&mut self, myself: &ActorRef<ChatMsg>) {
        self.customer = None;
        self.customer_gone_since = Some(std::time::Instant::now());
        if matches!(self.chat.state(), ChatState::Queued { .. }) {
            self.arm_abandonment(myself);
        }
    }

    /// Checks back after the channel's `abandon_after` whether the customer
    /// (gone since now, or earlier) came back; see
    /// [`ChatActorState::abandon_if_gone`].
    fn arm_abandonment(&mut self, myself: &ActorRef<ChatMsg>) {
        let since = *self
            .customer_gone_since
            .get_or_insert_with(std::time::Instant::now);
        if let Some(after) = self
            .hub
            .channel(self.chat.channel())
            .map(|settings| settings.abandon_after)
        {
            let left = after.saturating_sub(since.elapsed());
            myself.send_after(left, || ChatMsg::AbandonIfGone);
        }
    }

    /// Abandons the chat if it still waits and its customer has been gone
    /// for the channel's `abandon_after`.
    fn abandon_if_gone(&mut self, myself: &ActorRef<ChatMsg>) -> Result<(), HubError> {
        let Some(after) = self
            .hub
            .channel(self.chat.channel())
            .map(|settings| settings.abandon_after)
        else {
            return Ok(());
        };
        let gone_long = self
            .customer_gone_since
            .is_some_and(|since| since.elapsed() >= after);
        if self.customer.is_none()
            && gone_long
            && matches!(self.chat.state(), ChatState::Queued { .. })
        {
            self.leave(myself, Party::System)?;
        }
        Ok(())
    }

    /// Posts a message for `party`, answered once durable. Connection
    /// `sender`, if any, learns of a new message from the answer alone.
    fn post(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        party: Party,
        client_id: u64,
        text: String,
        sender: Option<ConnId>,
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    ) {
        let posted = match self.chat.post(party, client_id, text, Timestamp::now()) {
            Ok(Posted::New(event)) => {
                let receipt = Receipt::from(event);
                if let Some(conn) = sender {
                    self.gate.withhold(receipt.seq, conn);
                }
                Ok(receipt)
            }
            Ok(Posted::Repeat { seq, at }) => Ok(Receipt { seq, at }),
            Err(err) => Err(HubError::from(err)),
        };
        match posted {
            Ok(receipt) => {
                self.persist(myself, Vec::new());
                // A repeat is acknowledged once what it repeats is durable.
                let posted = Answer::Posted(reply, receipt, std::time::Instant::now());
                if let Some(Answer::Posted(reply, receipt, _)) = self.gate.wait(receipt.seq, posted)
                {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Persists a change that succeeded and answers once durable, or
    /// answers the refusal at once.
    fn settle(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        done: Result<(), HubError>,
        reply: RpcReplyPort<Result<(), HubError>>,
        extra: Vec<Op>,
    ) {
        match done {
            Ok(()) => {
                self.persist(myself, extra);
                self.wait(Answer::Ended(reply));
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    fn wait(&mut self, answer: Answer) {
        if let Some(answer) = self.gate.wait(self.last_seq(), answer) {
            answer.succeed(&self.metrics);
        }
    }

    fn assign(&mut self, agent: AgentId) -> Result<Assignment, HubError> {
        let waiting_since = match self.chat.state() {
            ChatState::Queued { since } => *since,
            _ => Timestamp::default(),
        };
        self.chat.assign(agent, Timestamp::now())?;
        Ok(Assignment {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            first_message: self.chat.first_message().to_owned(),
            waiting_since,
        })
    }

    /// Ends the chat for `by`, storing its session row with the end.
    fn end(&mut self, myself: &ActorRef<ChatMsg>, by: Party) -> Result<(), HubError> {
        self.chat.end(by.clone(), Timestamp::now())?;
        let events = self.chat.events();
        let summary = SessionSummary {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            agent: events.iter().rev().find_map(|event| match &event.kind {
                ChatEventKind::Assigned { agent } => Some(agent.clone()),
                _ => None,
            }),
            started: events.first().map(|e| e.at).unwrap_or_default(),
            ended: events.last().map(|e| e.at).unwrap_or_default(),
            ended_by: by,
            events: events.len() as u64,
        };
        self.persist(myself, vec![Op::Session(summary)]);
        Ok(())
    }

    /// The customer leaves. A queued chat is withdrawn from the queue first;
    /// if an agent's claim won the race, the chat ends right after the
    /// assignment arrives.
    fn leave(&mut self, myself: &ActorRef<ChatMsg>, by: Party) -> Result<bool, HubError> {
        if matches!(self.chat.state(), ChatState::Queued { .. }) {
            match self.claim.claim(Claimer::Abandon) {
                Ok(_) => {
                    metrics::counter!("chathub_chats_abandoned_total", "channel" => self.chat.channel().to_string())
                        .increment(1);
                    if let Some(channel) = self.hub.channel_actor(self.chat.channel()) {
                        let _ = channel.cast(ChannelMsg::Withdraw(self.chat.id()));
                    }
                }
                Err(Claimed(Claimer::Agent)) => {
                    self.leaving = true;
                    return Ok(false);
                }
                Err(Claimed(Claimer::Abandon)) => return Err(crate::core::ChatError::Ended.into()),
            }
        }
        self.end(myself, by)?;
        Ok(true)
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
                actor: myself.clone(),
                channel: args.chat.channel().clone(),
                claim: args.claim.clone(),
            },
        );
        let durable = args.durable;
        let limits = args.hub.limits().clone();
        // A chat restored as stored was published before the restart; a new
        // or reopened one has published nothing that gave it an agent.
        let published_agent = if usize::try_from(durable).ok() == Some(args.chat.events().len()) {
            args.chat.agent().cloned()
        } else {
            None
        };
        // A restored queued chat has waited since before the restart.
        let queued_since = match args.chat.state() {
            ChatState::Queued { since } if durable > 0 => Some(*since),
            _ => None,
        };
        let mut state = ChatActorState {
            hub: args.hub,
            chat: args.chat,
            claim: args.claim,
            customer_conn: args.customer_conn,
            token_digest: args.token_digest,
            customer: None,
            leaving: false,
            gate: Gate::new(durable),
            queued_since,
            published_agent,
            metrics: MessageMetrics::new(),
            customer_rate: TokenBucket::new(
                limits.messages_per_sec,
                limits.message_burst,
                Timestamp::now(),
            ),
            told_too_long: false,
            customer_gone_since: None,
            customer_file_bytes: 0,
            _origin: args.origin,
        };
        state.customer_file_bytes = state
            .chat
            .events()
            .iter()
            .filter_map(|event| match &event.kind {
                ChatEventKind::FileShared {
                    from: Party::Customer,
                    file,
                } => Some(file.size),
                _ => None,
            })
            .sum();
        if state.customer_conn.is_none() {
            // Restored after a restart: the customer has until the
            // channel's `abandon_after` to come back.
            state.customer_left(&myself);
        }
        if let Some(agent) = &state.published_agent {
            state.hub.set_assignment(state.chat.id(), agent.clone());
        }
        if let Some(token) = &state.token_digest {
            state.hub.set_live_token(token, Some(state.chat.id()));
        }
        if let Some(started) = args.started {
            state.persist(&myself, args.start_ops);
            state.wait(Answer::Started(started));
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ChatMsg>,
        state: &mut ChatActorState,
    ) -> Result<(), ActorProcessingErr> {
        state.hub.unregister_chat(state.chat.id(), &myself);
        if let Some(token) = &state.token_digest {
            state.hub.set_live_token(token, None);
        }
        for answer in state.gate.fail() {
            answer.fail(HubError::Unavailable("the chat stopped".into()));
        }
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
                if Some(sink.conn()) == state.customer_conn {
                    state.attach_customer(sink, after);
                }
            }
            ChatMsg::Resume {
                sink,
                token,
                after,
                reply,
            } => {
                if state.token_digest.as_deref() != Some(token.as_slice()) {
                    let _ = reply.send(Err(HubError::NotYourChat(state.chat.id())));
                    return Ok(());
                }
                state.customer_conn = Some(sink.conn());
                state.attach_customer(sink, after);
                let live = !matches!(state.chat.state(), ChatState::Ended { .. });
                let _ = reply.send(Ok(live));
            }
            ChatMsg::Replay {
                agent_actor,
                conn,
                after,
            } => {
                let events = state
                    .durable_after(after)
                    .map(|event| Arc::new(event.clone()))
                    .collect();
                let _ = agent_actor.cast(AgentMsg::Replayed {
                    conn,
                    chat: state.chat.id(),
                    events,
                    upto: state.gate.durable().max(after),
                });
            }
            ChatMsg::CustomerGone(conn) => {
                if state
                    .customer
                    .as_ref()
                    .is_some_and(|sink| sink.conn() == conn)
                {
                    state.customer_left(&myself);
                }
            }
            ChatMsg::AbandonIfGone => state.abandon_if_gone(&myself)?,
            ChatMsg::Assign { agent, reply } => match state.assign(agent) {
                Ok(assignment) => {
                    state.persist(&myself, Vec::new());
                    state.wait(Answer::Assigned(reply, assignment));
                    if state.leaving {
                        state.end(&myself, Party::Customer)?;
                    }
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            ChatMsg::Post {
                caller,
                conn,
                client_id,
                text,
                reply,
            } => {
                let admitted = state.party(&caller).and_then(|party| {
                    // A retry of a stored message is answered as stored,
                    // whatever the pace and length now.
                    if party == Party::Customer
                        && state.chat.posted_seq(&party, client_id).is_none()
                    {
                        state.admit_customer_post(&myself, &text)?;
                    }
                    Ok(party)
                });
                match admitted {
                    Ok(party) => state.post(&myself, party, client_id, text, Some(conn), reply),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::End { caller, reply } => {
                let ended = match state.party(&caller) {
                    Ok(Party::Customer) => state.leave(&myself, Party::Customer).map(|_| ()),
                    Ok(party) => state.end(&myself, party),
                    Err(err) => Err(err),
                };
                match ended {
                    Ok(()) => state.wait(Answer::Ended(reply)),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::Discard => {
                if state.claim.claim(Claimer::Abandon).is_ok() {
                    state.end(&myself, Party::System)?;
                }
            }
            ChatMsg::TransferToAgent { by, to, reply } => {
                let done = state
                    .chat
                    .transfer_to_agent(&by, to, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Decline { by, reply } => {
                // Back to the agent who transferred it, if they can take it;
                // otherwise to the queue.
                let back = state
                    .chat
                    .transferred_from()
                    .filter(|from| state.hub.try_reserve_slot(from))
                    .cloned();
                let done = state.chat.decline(&by, back.clone(), Timestamp::now());
                if done.is_err()
                    && let Some(back) = &back
                {
                    state.hub.release_slot(back);
                }
                let done = done.map(|_| ()).map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::Requeue { by, channel, reply } => {
                let done = state
                    .chat
                    .requeue(Some(&by), channel, Timestamp::now())
                    .map(|_| ())
                    .map_err(HubError::from);
                state.settle(&myself, done, reply, Vec::new());
            }
            ChatMsg::CreateTicket {
                by,
                ticket,
                subject,
                note,
                reply,
            } => {
                let made = state
                    .chat
                    .ticket_created(&by, ticket, subject.clone(), Timestamp::now())
                    .map_err(HubError::from)
                    .map(|_| ());
                match made {
                    Ok(()) => {
                        let customer = state.chat.customer().clone();
                        let mut ops: Vec<Op> =
                            crate::store::contact_keys(&customer, state.chat.verified())
                                .into_iter()
                                .map(|key| Op::ContactTicket {
                                    key,
                                    ticket: ticket.0,
                                })
                                .collect();
                        let (transcript, left_out) =
                            crate::core::ticket::ticket_transcript(state.chat.events());
                        let message = if left_out == 0 {
                            note
                        } else {
                            format!(
                                "{note}\n\n(The transcript holds the chat's start and its last {} events; {left_out} in between are in the chat's own transcript.)",
                                transcript.len() - 1
                            )
                        };
                        ops.push(Op::Ticket(Box::new(Ticket {
                            id: ticket,
                            channel: state.chat.channel().clone(),
                            source: TicketSource::Chat(state.chat.id()),
                            customer,
                            subject,
                            message,
                            transcript,
                            created: Timestamp::now(),
                        })));
                        state.persist(&myself, ops);
                        state.wait(Answer::Ticket(reply, ticket));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::PostKnowledge {
                by,
                agent_name,
                client_id,
                body,
                reply,
            } => {
                let text = crate::core::knowledge::fill(
                    &body,
                    &crate::core::knowledge::Placeholders {
                        customer: state.chat.customer(),
                        agent_name: &agent_name,
                        channel: state.chat.channel(),
                    },
                );
                // The agent's connections learn the filled-in text from the
                // event.
                state.post(&myself, Party::Agent(by), client_id, text, None, reply);
            }
            ChatMsg::MayShare {
                caller,
                size,
                reply,
            } => {
                let _ = reply.send(state.may_share(&caller, size));
            }
            ChatMsg::ShareFile {
                caller,
                file,
                reply,
            } => {
                let shared = state.party(&caller).and_then(|party| {
                    if party == Party::Customer {
                        state.admit_customer_post(&myself, &file.name)?;
                        if state.customer_file_bytes.saturating_add(file.size)
                            > state.hub.limits().chat_file_bytes
                        {
                            return Err(HubError::limited(
                                Limit::UploadBytes,
                                "the chat's files are at their limit",
                            ));
                        }
                        state.customer_file_bytes += file.size;
                    }
                    state
                        .chat
                        .share_file(party, file.clone(), Timestamp::now())
                        .map(Receipt::from)
                        .map_err(HubError::from)
                });
                match shared {
                    Ok(receipt) => {
                        let stored = StoredFile {
                            file,
                            chat: state.chat.id(),
                        };
                        state.persist(&myself, vec![Op::File(stored)]);
                        let shared = Answer::Posted(reply, receipt, std::time::Instant::now());
                        if let Some(answer) = state.gate.wait(receipt.seq, shared) {
                            answer.succeed(&state.metrics);
                        }
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            ChatMsg::WaitingRow { reply } => {
                let row = match state.chat.state() {
                    ChatState::Queued { since } => Some(state.chat.queue_row(*since)),
                    _ => None,
                };
                let _ = reply.send(row);
            }
            ChatMsg::IsParticipant { caller, reply } => {
                let participant = match state.party(&caller) {
                    Ok(Party::Customer) => true,
                    Ok(Party::Agent(agent)) => state.chat.agent() == Some(&agent),
                    _ => false,
                };
                let _ = reply.send(Ok(participant));
            }
            ChatMsg::Transcript { after, reply } => {
                let (events, more) = transcript_page(state.durable_after(after));
                let _ = reply.send(TranscriptPage {
                    channel: state.chat.channel().clone(),
                    events,
                    more,
                });
            }
            ChatMsg::Committed { seq } => state.committed(&myself, seq),
            ChatMsg::CommitFailed(err) => {
                for answer in state.gate.fail() {
                    answer.fail(HubError::StorageUnavailable(err.to_string()));
                }
                return Err(format!("{}: {err}", state.chat.id()).into());
            }
            #[cfg(test)]
            ChatMsg::Crash => panic!("chat actor crash requested by a test"),
        }
        Ok(())
    }
}
