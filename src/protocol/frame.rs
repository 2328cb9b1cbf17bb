//! Every frame a client or server may send.

use bincode::{Decode, Encode};

use crate::core::{
    AgentId, Alert, Assignment, ChannelId, ChannelMonitor, ChatEvent, ChatId, ContactCard,
    Customer, FileId, FileRef, Forgotten, Identity, ItemDraft, ItemId, ItemKind, ItemRef,
    KnowledgeItem, Offer, OfferEnd, OfflineForm, Party, Priority, QueuePlace, QueueUpdate,
    RatedSession, Status, TaggedSession, Ticket, TicketId, TicketSummary, Timestamp,
};
use crate::protocol::error::ErrorFrame;

/// A secret on the wire: an agent's token, a chat's secret. Encoded as
/// its text; `Debug` never shows it, so no log of a frame leaks one.
#[derive(Clone, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

/// Frames a client sends on its control stream.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ClientFrame {
    /// The first frame of every connection.
    Hello(Hello),
    /// A request; answered by exactly one [`Response`] with its id.
    Request(Request),
    /// First frame of a stream the client opens to share a file: `size`
    /// raw bytes follow. The hub answers on that stream with a response
    /// (id 0) holding [`Reply::FileShared`] or the error.
    Upload(Upload),
    /// First frame of a stream the client opens to fetch a file. The hub
    /// answers on that stream with a response (id 0) holding
    /// [`Reply::File`], followed by the file's bytes, or the error.
    Download {
        /// The file.
        file: FileId,
    },
}

/// A file about to be shared in a chat.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Upload {
    /// The chat.
    pub chat: ChatId,
    /// The file's name.
    pub name: String,
    /// Its content type, e.g. `image/png`.
    pub content_type: String,
    /// Exactly how many bytes follow.
    pub size: u64,
}

/// Opens a connection: the protocol version and who is connecting.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// The client's [`PROTOCOL_VERSION`](crate::protocol::PROTOCOL_VERSION).
    pub version: u16,
    /// Customer, or agent with credentials.
    pub role: Role,
    /// Chats to pick up where this client left off on an earlier
    /// connection: their events after `after` are sent first, then live ones.
    pub resume: Vec<Resume>,
}

/// Where a client left off in one chat.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Resume {
    /// The chat.
    pub chat: ChatId,
    /// The last seq the client has of it.
    pub after: u64,
    /// For customers: the secret given when starting the chat.
    pub secret: Option<Secret>,
}

/// Who is connecting.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Role {
    /// A website visitor; needs no credentials and may only start chats and
    /// act on the chats it started.
    Customer,
    /// An agent, signing in with the token from the hub's configuration.
    Agent {
        /// The agent's sign-in name.
        agent: AgentId,
        /// The agent's secret token.
        token: Secret,
    },
}

/// A request with the client's id for it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Request {
    /// Chosen by the client; echoed in the response.
    pub id: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client can ask.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum RequestBody {
    /// Customer: start a chat on a channel with a first message.
    StartChat {
        /// The channel to start it on.
        channel: ChannelId,
        /// Who the customer says they are.
        customer: Customer,
        /// The customer's id for the first message.
        client_id: u64,
        /// The first message.
        text: String,
        /// A secret of the customer's choosing (16 to 256 bytes) that lets a
        /// later connection resume the chat. Starting again with the same
        /// secret answers the chat already started.
        secret: Secret,
    },
    /// Customer or agent: post a message to a chat. Answered
    /// [`Reply::Posted`] once stored; every other connection in the chat
    /// (the other party's, and the sender's own other connections) gets
    /// the message's event, this one does not: the answer tells it where
    /// the message landed.
    Post {
        /// The chat.
        chat: ChatId,
        /// The sender's id for the message; a retry reuses it.
        client_id: u64,
        /// The text.
        text: String,
    },
    /// Customer: close the chat window, ending the chat.
    Leave {
        /// The chat.
        chat: ChatId,
    },
    /// Agent: set Present or Absent.
    SetStatus {
        /// The new status.
        status: Status,
    },
    /// Agent: answer the chat that has waited longest in a channel's queue.
    GetNext {
        /// The channel.
        channel: ChannelId,
    },
    /// Agent: answer one particular waiting chat (a row of the incoming
    /// list). Fails with `ChatAlreadyTaken` if another agent was first.
    Pick {
        /// The chat.
        chat: ChatId,
    },
    /// Agent: the Present agents of a channel.
    PresentAgents {
        /// The channel.
        channel: ChannelId,
    },
    /// Customer: submit the offline form; it becomes a ticket.
    SubmitOfflineForm {
        /// The channel whose form it is.
        channel: ChannelId,
        /// The customer's name, if given.
        name: Option<String>,
        /// Where to answer.
        email: String,
        /// The customer's message.
        message: String,
    },
    /// Agent: tickets of the agent's channels, newest first.
    Tickets {
        /// Only tickets older than this one (the previous page's last row).
        before: Option<TicketId>,
        /// The most rows to return (at most 100).
        limit: u16,
    },
    /// Agent: one ticket with everything attached.
    Ticket {
        /// The ticket.
        id: TicketId,
    },
    /// Agent: hand a chat they have to another agent of its channel.
    TransferToAgent {
        /// The chat.
        chat: ChatId,
        /// The agent to take it.
        to: AgentId,
    },
    /// Agent: send a chat they have to a channel's queue.
    TransferToChannel {
        /// The chat.
        chat: ChatId,
        /// The channel.
        channel: ChannelId,
    },
    /// Agent: decline a chat just transferred to them.
    DeclineTransfer {
        /// The chat.
        chat: ChatId,
    },
    /// Agent: make a ticket from a chat they have, transcript attached.
    CreateTicket {
        /// The chat.
        chat: ChatId,
        /// The ticket's subject.
        subject: String,
        /// A note for whoever handles the ticket.
        note: String,
    },
    /// Customer: return to an ended chat through the end form.
    ReturnToChat {
        /// The chat.
        chat: ChatId,
        /// The secret the chat was started with.
        secret: Secret,
    },
    /// Agent: a contact's history, by email or name.
    Contact {
        /// The email to look up.
        email: Option<String>,
        /// The name to look up, if no email.
        name: Option<String>,
    },
    /// Agent: create a quick reply, FAQ article or template.
    CreateItem(ItemDraft),
    /// Agent: replace an item.
    UpdateItem {
        /// The item.
        id: ItemId,
        /// What it says now.
        draft: ItemDraft,
    },
    /// Agent: delete an item.
    DeleteItem {
        /// The item.
        id: ItemId,
    },
    /// Agent: the items they may use, of one kind or all.
    Items {
        /// Only this kind, if given.
        kind: Option<ItemKind>,
    },
    /// Agent: send an item into a chat they have, placeholders filled in.
    InsertItem {
        /// The chat.
        chat: ChatId,
        /// The agent's id for the message.
        client_id: u64,
        /// The item, by id or shortcut.
        item: ItemRef,
    },
    /// Agent: end a chat they handle.
    EndChat {
        /// The chat.
        chat: ChatId,
    },
    /// Agent: ended chats of the agent's channels, newest first.
    RecentSessions {
        /// Only sessions that ended before this one (the previous page's last
        /// row); `None` for the first page.
        before: Option<ChatId>,
        /// The most rows to return (at most 100).
        limit: u16,
    },
    /// Agent: the transcript of a live or recent chat of the agent's
    /// channels, after a seq, in pages.
    Transcript {
        /// The chat.
        chat: ChatId,
        /// Events after this seq (0 for all).
        after: u64,
    },
    /// Customer: say who you are on a channel, with an identity the
    /// contact center's web backend signed; chats this connection starts
    /// there from now on are verified. Answered [`Reply::Done`].
    Identify {
        /// The channel whose identity secret signed it.
        channel: ChannelId,
        /// Who the backend says the customer is.
        identity: Identity,
        /// HMAC-SHA256 of `id`, a newline and `email`, in hex.
        signature: String,
    },
    /// Customer or agent holding the chat: the caller has read the chat up
    /// to seq `up_to`. Answered [`Reply::Read`] once stored. A mark beyond
    /// the caller's own makes a `Read` event, which every other connection
    /// in the chat gets and this one does not (the answer tells it where
    /// the event landed); a mark not beyond it, or beyond it over nothing
    /// but read marks, changes nothing. Past the chat's last event:
    /// `ReadBeyondEnd`.
    MarkRead {
        /// The chat.
        chat: ChatId,
        /// The last seq read.
        up_to: u64,
    },
    /// Customer: rate a chat this connection started or resumed, once it
    /// has ended and within its channel's `return_window` (channels with
    /// `satisfaction = true` only, else `NotAllowed`). Answered
    /// [`Reply::Done`] once stored; a later rating replaces this one.
    Rate {
        /// The chat.
        chat: ChatId,
        /// From 1 to 5.
        rating: u8,
        /// What the customer says of it (at most 2,000 characters).
        comment: Option<String>,
    },
    /// Agent holding the chat: write a private note in it, seen by agents
    /// (the holder, later holders) and never by the customer. Answered
    /// with [`Reply::Posted`] once durable; the note's event goes to the
    /// agent's other connections.
    AddNote {
        /// The chat.
        chat: ChatId,
        /// The agent's id for the note; a retry with the same id is stored
        /// once.
        client_id: u64,
        /// The text.
        text: String,
    },
    /// Agent of the chat's channel: set the priority a waiting chat waits
    /// at (it keeps it if it is queued again). Answered with
    /// [`Reply::Done`] once durable; watchers of the channel get the row
    /// changed.
    SetPriority {
        /// The chat.
        chat: ChatId,
        /// Its new priority.
        priority: Priority,
    },
    /// Agent: take a chat a push channel offered to this agent (an
    /// [`Event::Offered`]). Answered [`Reply::Assigned`] once durable;
    /// `NotOffered` if no offer of that chat to this agent stands (it
    /// expired, was declined, or was never made), `ChatAlreadyTaken` or
    /// `ChatEnded` if a pick or the customer leaving won the race.
    AcceptOffer {
        /// The chat.
        chat: ChatId,
    },
    /// Agent: decline a chat offered to this agent; the channel offers it
    /// to another agent. Answered [`Reply::Done`]; `NotOffered` if no offer
    /// of that chat to this agent stands.
    DeclineOffer {
        /// The chat.
        chat: ChatId,
    },
    /// Supervisor of the channel, or admin: a picture of the channel now
    /// (waiting and active chats with their waits and handle times, member
    /// agents with their status and load). Answered [`Reply::Monitor`].
    Monitor {
        /// The channel.
        channel: ChannelId,
    },
    /// Supervisor of one of the agent's channels, or admin: set an agent
    /// Present or Absent. The agent's connections get
    /// [`Event::StatusChanged`]. Answered [`Reply::Done`].
    SetAgentStatus {
        /// The agent.
        agent: AgentId,
        /// Their new status.
        status: Status,
    },
    /// Supervisor of the chat's channel, or admin: write a private note
    /// (a whisper) in a live chat, whoever holds it. Like
    /// [`RequestBody::AddNote`] it reaches agents only, never the
    /// customer. Answered [`Reply::Posted`] once durable.
    Whisper {
        /// The chat.
        chat: ChatId,
        /// The supervisor's id for the note; a retry with the same id is
        /// stored once.
        client_id: u64,
        /// The text.
        text: String,
    },
    /// Supervisor of the chat's channel, or admin: follow a live chat
    /// read-only. The caller's connections get its events so far and then
    /// every new one (notes included) on the chat's stream, without taking
    /// part in it. Following it again changes nothing; more than `[limits]
    /// followed_chats` at once is refused `TooManyChats`. Answered
    /// [`Reply::Done`].
    Follow {
        /// The chat.
        chat: ChatId,
    },
    /// Stop following a chat; not following it is no error. Answered
    /// [`Reply::Done`].
    Unfollow {
        /// The chat.
        chat: ChatId,
    },
    /// Supervisor of the chat's channel, or admin: move an active chat
    /// from the agent holding it to `to` (a Present member of the channel
    /// with a free slot, else `AgentUnavailable`). Recorded as a
    /// `Reassigned { by, from, to }` event for agents only (who moved it),
    /// then the `TransferredToAgent` event from the holder, which both
    /// agents and the customer see; `to` gets the transcript. Answered
    /// [`Reply::Done`] once durable.
    Reassign {
        /// The chat.
        chat: ChatId,
        /// The agent to take it.
        to: AgentId,
    },
    /// Supervisor of the chat's channel, or admin: barge into a live chat,
    /// taking part beside its agent: a `SupervisorJoined` event (the
    /// customer sees it), then the caller may [`RequestBody::Post`] in
    /// the chat, and their connections get its transcript and every
    /// event. Barging in again changes nothing. Answered [`Reply::Done`]
    /// once durable.
    BargeIn {
        /// The chat.
        chat: ChatId,
    },
    /// A supervisor who barged in leaves the chat (a `SupervisorLeft`
    /// event); not being in it is no error. Answered [`Reply::Done`].
    LeaveChat {
        /// The chat.
        chat: ChatId,
    },
    /// Customer: [`RequestBody::StartChat`], for a chat that needs
    /// `skills` (chosen among those the channel offers; none: the
    /// channel's defaults). A separate request so that `StartChat`'s bytes
    /// stay as clients already send them.
    StartChatNeeding {
        /// The channel to start it on.
        channel: ChannelId,
        /// Who the customer says they are.
        customer: Customer,
        /// The customer's id for the first message.
        client_id: u64,
        /// The first message.
        text: String,
        /// As [`RequestBody::StartChat`]'s.
        secret: Secret,
        /// The skills the chat needs (at most
        /// [`MAX_SKILLS`](crate::core::skills::MAX_SKILLS)).
        skills: Vec<String>,
    },
    /// Customer: [`RequestBody::Identify`] with a priority the backend
    /// claims for the customer, covered by the signature; chats this
    /// connection starts there from now on start at it (at most the
    /// channel's `max_claimed_priority`). A separate request so that
    /// `Identify`'s bytes, and the stored `Verified` event's, stay as they
    /// are. Answered [`Reply::Done`].
    IdentifyClaiming {
        /// The channel whose identity secret signed it.
        channel: ChannelId,
        /// Who the backend says the customer is.
        identity: Identity,
        /// The priority the backend claims for them.
        priority: Priority,
        /// HMAC-SHA256 of `id`, a newline, `email`, a newline and the
        /// priority's name (`low`, `normal`, `high`, `urgent`), in hex.
        signature: String,
    },
    /// Agent holding the chat, or supervisor of its channel: put a tag on
    /// a live chat (at most [`MAX_TAG_BYTES`](crate::core::MAX_TAG_BYTES)
    /// of letters, digits, inner spaces and `-_.:/`, stored lowercased;
    /// at most [`MAX_TAGS`](crate::core::MAX_TAGS) per chat). A `Tagged`
    /// chat event, for agents only. Tagging with a tag the chat carries
    /// changes nothing. Answered [`Reply::Done`] once durable.
    AddTag {
        /// The chat.
        chat: ChatId,
        /// The tag.
        tag: String,
    },
    /// As [`RequestBody::AddTag`], taking a tag off (an `Untagged` event);
    /// a tag the chat does not carry changes nothing.
    RemoveTag {
        /// The chat.
        chat: ChatId,
        /// The tag.
        tag: String,
    },
    /// Customer or agent: change the text of one's own message `seq`
    /// within the channel's `edit_window`. An `Edited` chat event, which
    /// every other connection in the chat gets (this one learns its seq
    /// and time from the answer, [`Reply::Posted`]). The message's event
    /// stays in the log as it was.
    EditMessage {
        /// The chat.
        chat: ChatId,
        /// The message's seq.
        seq: u64,
        /// Its new text (bounded like a message's).
        text: String,
    },
    /// As [`RequestBody::EditMessage`], deleting the message: a `Deleted`
    /// chat event; `AlreadyDeleted` for a message deleted already.
    DeleteMessage {
        /// The chat.
        chat: ChatId,
        /// The message's seq.
        seq: u64,
    },
    /// Agent: as [`RequestBody::RecentSessions`], each row with the tags
    /// its chat carried when it ended, and only sessions tagged `tag` if
    /// given. Answered [`Reply::TaggedSessions`].
    RecentSessionsTagged {
        /// Only sessions that ended before this one.
        before: Option<ChatId>,
        /// The most rows to return (at most 100).
        limit: u16,
        /// Only sessions carrying this tag (compared lowercased).
        tag: Option<String>,
    },
    /// Admin: erase everything kept of a contact (a GDPR request): their
    /// ended chats, the tickets made from them or linked to the contact,
    /// the files shared in those chats and the contact's links. Refused
    /// `NotAllowed` to anyone but an admin and `ContactBusy` while a chat
    /// of theirs has not ended. Answered [`Reply::Forgotten`].
    ForgetContact {
        /// The contact key, as the contact card shows it
        /// (`email:…`, `name:…`, `verified:id:…`, `verified:email:…`;
        /// at most [`MAX_CONTACT_KEY_BYTES`](crate::core::retention::MAX_CONTACT_KEY_BYTES)).
        contact: String,
    },
    /// Supervisor of the channel, or admin: watch the channel's monitor
    /// live on this connection. Pictures come as [`Event::Monitor`] on a
    /// stream of their own: the one now at once, then a new one whenever
    /// something but the clock changed (checked every `[limits]
    /// monitor_interval`; a client computes running waits and handle
    /// times from each row's `since`). A client that reads slowly gets the
    /// latest picture, never a backlog. The watch lasts until
    /// [`RequestBody::UnwatchMonitor`] or the connection's end;
    /// [`Event::MonitorStopped`] says the hub ended it (a reload took the
    /// caller's oversight of the channel, or the channel is gone).
    /// Refused `NotAllowed` as [`RequestBody::Monitor`] is; watching a
    /// channel watched already changes nothing; more than `[limits]
    /// monitors_per_connection` at once is refused `TooManyChats`.
    /// Answered [`Reply::Done`].
    WatchMonitor {
        /// The channel.
        channel: ChannelId,
    },
    /// Stop watching a channel's monitor on this connection; not watching
    /// it is no error. Answered [`Reply::Done`].
    UnwatchMonitor {
        /// The channel.
        channel: ChannelId,
    },
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ServerFrame {
    /// Accepts the hello.
    Welcome(Welcome),
    /// The answer to a request.
    Response(Response),
    /// Something happened that the client should know.
    Event(Event),
    /// The server is closing the connection, and why.
    Closing(ErrorFrame),
}

/// The server's answer to a hello.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Welcome {
    /// The server's protocol version.
    pub version: u16,
    /// For agents: who they signed in as.
    pub agent: Option<AgentProfile>,
}

/// A signed-in agent as the hub knows them.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AgentProfile {
    /// Sign-in name.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Channels the agent is a member of.
    pub channels: Vec<ChannelId>,
    /// Current status.
    pub status: Status,
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What came of it.
    pub result: Result<Reply, ErrorFrame>,
}

/// Successful answers.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Reply {
    /// The chat was started and waits in the queue.
    ChatStarted {
        /// The new chat.
        chat: ChatId,
        /// How many chats wait in the queue, this one included.
        waiting: u32,
    },
    /// Nobody is Present: the customer gets the offline form instead of a
    /// queue place.
    Offline(OfflineForm),
    /// The Present agents of a channel.
    PresentAgents(Vec<AgentId>),
    /// A ticket was made.
    TicketCreated(TicketId),
    /// A page of tickets, newest first.
    Tickets(Vec<TicketSummary>),
    /// One ticket.
    Ticket(Box<Ticket>),
    /// A contact's history.
    Contact(ContactCard),
    /// One knowledge item.
    Item(KnowledgeItem),
    /// Knowledge items.
    Items(Vec<KnowledgeItem>),
    /// A file was shared in its chat with this seq.
    FileShared {
        /// The file.
        file: FileRef,
        /// Its event's seq.
        seq: u64,
    },
    /// A file's description; its bytes follow on the stream.
    File(FileRef),
    /// The message is stored with this seq.
    Posted {
        /// Its place in the transcript.
        seq: u64,
        /// When the hub recorded it.
        at: Timestamp,
    },
    /// Done; nothing to report.
    Done,
    /// A chat was assigned to the agent.
    Assigned(Assignment),
    /// A page of recent sessions, newest first, each with its rating.
    Sessions(Vec<RatedSession>),
    /// A page of a transcript.
    Transcript {
        /// Events in seq order.
        events: Vec<ChatEvent>,
        /// Whether more events follow this page.
        more: bool,
    },
    /// The caller's read mark in the chat, after a [`RequestBody::MarkRead`].
    Read {
        /// Every event up to this seq is read.
        up_to: u64,
        /// The seq of the `Read` event that set the mark (0 while the
        /// caller has marked nothing).
        seq: u64,
        /// When that event was recorded.
        at: Timestamp,
    },
    /// A channel's monitor, after a [`RequestBody::Monitor`].
    Monitor(Box<ChannelMonitor>),
    /// A page of recent sessions with their tags, newest first, after a
    /// [`RequestBody::RecentSessionsTagged`].
    TaggedSessions(Vec<TaggedSession>),
    /// What a [`RequestBody::ForgetContact`] erased.
    Forgotten(Forgotten),
}

/// Pushed by the server.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    /// A chat event, on that chat's own stream.
    Chat(ChatEvent),
    /// A queue change of a channel the agent belongs to.
    Queue(QueueUpdate),
    /// A chat has waited too long; only Present agents get this.
    Alert(Alert),
    /// An alert this agent got is over: the chat was answered or abandoned.
    AlertCleared {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
    },
    /// Someone in a chat is typing. The hub never sends this as a frame:
    /// the SDK makes it from a [`ServerDatagram`](crate::protocol::ServerDatagram),
    /// which may be lost.
    Typing {
        /// The chat.
        chat: ChatId,
        /// Who is typing.
        from: Party,
    },
    /// A push channel offers a waiting chat to this agent: accept it with
    /// [`RequestBody::AcceptOffer`] (or decline it) before it expires.
    Offered(Offer),
    /// An offer made to this agent is over, and why.
    OfferWithdrawn {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
        /// Why.
        reason: OfferEnd,
    },
    /// Customer: where a waiting chat stands in its queue, sent when it
    /// changes (checked at most once a second).
    QueuePosition(QueuePlace),
    /// Agent: a supervisor set this agent's status, or the agent turned
    /// `Away` after their channel's `idle_after` without a request.
    StatusChanged {
        /// The agent's status now.
        status: Status,
        /// The supervisor (or admin) who set it; the agent themselves when
        /// idleness turned them Away.
        by: AgentId,
    },
    /// Supervisor: a picture of a channel this connection watches
    /// ([`RequestBody::WatchMonitor`]), the whole of it each time, on a
    /// stream of the channel's watch. Waits and handle times run to its
    /// `at`; a later picture comes only when something but the clock
    /// changed.
    Monitor(Box<ChannelMonitor>),
    /// Supervisor: the hub ended this connection's watch of a channel's
    /// monitor: the caller no longer oversees it (a reload), or the
    /// channel is gone. No picture of it follows.
    MonitorStopped {
        /// The channel.
        channel: ChannelId,
    },
}

/// A borrowed [`ServerFrame::Event`], encoded to the same bytes, so an event
/// shared by several connections is encoded without being copied first.
#[derive(Clone, Copy, Debug, Encode)]
pub enum ServerEventRef<'a> {
    /// Never constructed; keeps the variant index of [`ServerFrame::Welcome`].
    #[doc(hidden)]
    Welcome(&'a Welcome),
    /// Never constructed; keeps the variant index of [`ServerFrame::Response`].
    #[doc(hidden)]
    Response(&'a Response),
    /// The event.
    Event(EventRef<'a>),
}

/// A borrowed [`Event`]: the events the hub sends as frames
/// ([`Event::Typing`] travels as a datagram).
#[derive(Clone, Copy, Debug, Encode)]
pub enum EventRef<'a> {
    /// A chat event.
    Chat(&'a ChatEvent),
    /// A queue change.
    Queue(&'a QueueUpdate),
    /// An alert.
    Alert(&'a Alert),
    /// An alert cleared.
    AlertCleared {
        /// The chat's channel.
        channel: &'a ChannelId,
        /// The chat.
        chat: &'a ChatId,
    },
    /// Never constructed; keeps the variant index of [`Event::Typing`].
    #[doc(hidden)]
    Typing(&'a ChatId, &'a Party),
    /// An offer.
    Offered(&'a Offer),
    /// An offer is over.
    OfferWithdrawn {
        /// The chat's channel.
        channel: &'a ChannelId,
        /// The chat.
        chat: &'a ChatId,
        /// Why.
        reason: &'a OfferEnd,
    },
    /// A waiting chat's place.
    QueuePosition(&'a QueuePlace),
    /// A supervisor set the agent's status.
    StatusChanged {
        /// The agent's status now.
        status: &'a Status,
        /// Who set it.
        by: &'a AgentId,
    },
    /// A watched channel's picture.
    Monitor(&'a ChannelMonitor),
    /// A watch of a channel's monitor is over.
    MonitorStopped {
        /// The channel.
        channel: &'a ChannelId,
    },
}
