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
use crate::actors::agent::{AgentMsg, AgentOutlet};
use crate::actors::channel::{Admit, ChannelMsg};
use crate::actors::hub::{Caller, ChatEntry, Hub};
use crate::actors::origins::OriginSlot;
use crate::actors::sink::{ConnId, EventSink, Outbound, Signal};
use crate::actors::stages::{self, STAGES};
use crate::core::{
    AgentId, Assignment, ChannelId, Chat, ChatEvent, ChatEventKind, ChatState, ClaimCell, Claimed,
    Claimer, FileRef, Gate, Limit, Marked, Party, Posted, Publish, QueueRow, ReadMark,
    SessionSummary, Ticket, TicketId, TicketSource, Timestamp, TokenBucket, transcript_page,
};
use crate::core::{Priority, QueuePlace};
use crate::store::{Op, StoreError, StoredFile, TranscriptPage};

/// A message or note to post, as a chat actor takes it.
pub(crate) struct Post {
    /// The sender's id for it.
    pub(crate) client_id: u64,
    /// The text.
    pub(crate) text: String,
    /// A private note (agents only) rather than a message.
    pub(crate) note: bool,
    /// The note is a supervisor's whisper: its writer need not hold the
    /// chat (the hub checked they oversee its channel).
    pub(crate) whisper: bool,
}

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
        /// Where the agent's chat events go.
        outlet: Arc<AgentOutlet>,
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
        /// A private note (agents only) rather than a message.
        note: bool,
        /// A supervisor's whisper (a note by someone who need not hold
        /// the chat); the hub checked they oversee its channel.
        whisper: bool,
        /// When the connection task sent it on.
        sent: std::time::Instant,
        /// Where the message landed, once durable.
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    },
    /// `caller` has read the chat up to `up_to`.
    MarkRead {
        /// Who read.
        caller: Caller,
        /// The connection it came from: it learns of a new mark's event
        /// from the answer, so it is not sent the event.
        conn: ConnId,
        /// The last seq read.
        up_to: u64,
        /// The caller's mark, once durable.
        reply: RpcReplyPort<Result<ReadMark, HubError>>,
    },
    /// `caller` is typing: passed on to the other party if `caller` takes
    /// part (an agent only while holding the chat), never stored.
    Typing {
        /// Who is typing.
        caller: Caller,
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
    /// A supervisor (whom the hub checked) moves the active chat from its
    /// holder to `to`, whose slot the hub has reserved.
    Reassign {
        /// The supervisor, recorded with the move.
        by: AgentId,
        /// The agent taking it.
        to: AgentId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// An agent of the channel sets the priority the waiting chat waits at.
    SetPriority {
        /// The agent.
        by: AgentId,
        /// The new priority.
        priority: Priority,
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
    /// `agent`, who holds the chat, is gone (no connection past the
    /// presence grace): the customer is told, and with `requeue` the chat
    /// goes back to the front of its channel's queue. Nothing happens if
    /// the agent no longer holds it.
    AgentGone {
        /// The agent.
        agent: AgentId,
        /// Whether the chat goes back to the queue.
        requeue: bool,
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
    /// Its incoming-list row and the skills it needs, if the chat waits
    /// in a queue now.
    WaitingRow {
        /// The row and skills, or `None` if it does not wait.
        reply: RpcReplyPort<Option<(QueueRow, crate::core::SkillSet)>>,
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
        /// When the store said so.
        at: std::time::Instant,
    },
    /// The store failed to make events durable.
    CommitFailed(StoreError),
    /// Where the waiting chat stands in its queue now: told to the
    /// customer (and to a customer connection that resumes it).
    Place(QueuePlace),
    /// Fails the actor, to exercise supervision.
    #[cfg(test)]
    Crash,
    /// A supervisor (whom the hub checked oversees the chat's channel)
    /// follows the chat read-only: their actor gets the durable events so
    /// far, then every new one, until they unfollow or the chat ends.
    Follow {
        /// The supervisor.
        by: AgentId,
        /// Answered once the events so far are on their way.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// A supervisor (whom the hub checked oversees the chat's channel)
    /// barges in, taking part beside the holder.
    BargeIn {
        /// The supervisor.
        by: AgentId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// A supervisor who barged in leaves the chat.
    LeaveBargeIn {
        /// The supervisor.
        by: AgentId,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// A supervisor stops following the chat.
    Unfollow {
        /// The supervisor.
        by: AgentId,
    },
    /// An agent puts a tag on the chat (`add`) or takes one off.
    Tag {
        /// The agent.
        by: AgentId,
        /// The hub checked `by` oversees the chat's channel, so they need
        /// not hold the chat.
        overseer: bool,
        /// The tag as given.
        tag: String,
        /// On (`true`) or off.
        add: bool,
        /// Acknowledged once durable.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// The author of message `seq` edits it (`text`) or deletes it
    /// (`None`) within the channel's `edit_window`.
    Change {
        /// Who asks.
        caller: Caller,
        /// The connection it came from: it learns the new event's seq and
        /// time from the answer, so it is not sent the event.
        conn: ConnId,
        /// The message's seq.
        seq: u64,
        /// Its new text, or `None` to delete it.
        text: Option<String>,
        /// Where the `Edited` or `Deleted` event landed, once durable.
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    },
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
    Read(RpcReplyPort<Result<ReadMark, HubError>>, ReadMark),
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
            Self::Read(reply, mark) => drop(reply.send(Ok(mark))),
        }
    }

    fn fail(self, err: HubError) {
        match self {
            Self::Started(tx) => drop(tx.send(Err(err))),
            Self::Posted(reply, _, _) => drop(reply.send(Err(err))),
            Self::Assigned(reply, _) => drop(reply.send(Err(err))),
            Self::Ended(reply) => drop(reply.send(Err(err))),
            Self::Ticket(reply, _) => drop(reply.send(Err(err))),
            Self::Read(reply, _) => drop(reply.send(Err(err))),
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
    /// Supervisors following the chat read-only: each gets every
    /// published event (the hub bounds how many chats each follows).
    followers: std::collections::BTreeSet<AgentId>,
    /// Supervisors in the chat (barged in) as the published events so far
    /// say: each gets every published event.
    barged: std::collections::BTreeSet<AgentId>,
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
    /// Where the chat stands in its queue, as its customer was last told,
    /// while it waits.
    place: Option<QueuePlace>,
}

mod actor;
mod customer;
mod state;
