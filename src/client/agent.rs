//! The agent's side: presence, the queue, answering and ending chats.

use std::sync::Arc;

use crate::client::customer::{change_message, post, unexpected};
use crate::client::incoming::IncomingList;
use crate::client::link::Link;
use crate::client::{ClientConfig, ClientError};
use crate::core::{
    AgentId, Assignment, ChannelId, ChannelMonitor, ChatEvent, ChatId, ContactCard, FileId,
    FileRef, Forgotten, ItemDraft, ItemId, ItemKind, ItemRef, KnowledgeItem, Priority,
    RatedSession, Status, TaggedSession, Ticket, TicketId, TicketSummary,
};
use crate::protocol::{AgentProfile, Event, Reply, RequestBody, Role};

/// A signed-in agent's connection to the hub. Clones share the connection.
#[derive(Clone)]
pub struct AgentClient {
    link: Arc<Link>,
}

impl AgentClient {
    /// Connects and signs in with the agent's token. A wrong token fails
    /// with [`ErrorCode::Unauthorized`](crate::protocol::ErrorCode).
    pub async fn connect(
        config: &ClientConfig,
        agent: impl Into<AgentId>,
        token: &str,
    ) -> Result<Self, ClientError> {
        let role = Role::Agent {
            agent: agent.into(),
            token: token.into(),
        };
        let link = Link::connect(config, role).await?;
        if link.welcome.agent.is_none() {
            return Err(ClientError::Protocol(
                "the welcome has no agent profile".into(),
            ));
        }
        Ok(Self {
            link: Arc::new(link),
        })
    }

    /// Who the hub signed this connection in as.
    pub fn profile(&self) -> &AgentProfile {
        self.link
            .welcome
            .agent
            .as_ref()
            .expect("checked when connecting")
    }

    /// Sets Present (listed, alerted) or Absent. A Present agent who makes
    /// no request for their channel's `idle_after` turns Away (offered
    /// nothing, keeping their chats) and gets [`Event::StatusChanged`]
    /// with themselves as `by`; only setting Present again brings them
    /// back.
    pub async fn set_status(&self, status: Status) -> Result<(), ClientError> {
        self.link.remember_status(status);
        expect_done(self.link.request(RequestBody::SetStatus { status }).await?)
    }

    /// Answers the chat that has waited longest in `channel`. Its transcript
    /// so far and every later event arrive through
    /// [`next_event`](Self::next_event).
    pub async fn get_next(&self, channel: impl Into<ChannelId>) -> Result<Assignment, ClientError> {
        let body = RequestBody::GetNext {
            channel: channel.into(),
        };
        match self.link.request(body).await? {
            Reply::Assigned(assignment) => Ok(assignment),
            other => Err(unexpected(other)),
        }
    }

    /// Answers one particular waiting chat, such as a row of the incoming
    /// list. If another agent took it first, the error's code is
    /// [`ErrorCode::ChatAlreadyTaken`](crate::protocol::ErrorCode).
    pub async fn pick(&self, chat: ChatId) -> Result<Assignment, ClientError> {
        match self.link.request(RequestBody::Pick { chat }).await? {
            Reply::Assigned(assignment) => Ok(assignment),
            other => Err(unexpected(other)),
        }
    }

    /// Takes a chat a push channel offered to this agent
    /// ([`Event::Offered`]). Its transcript so far and every later event
    /// arrive through [`next_event`](Self::next_event). If the offer is no
    /// longer standing (it expired or was declined), the error's code is
    /// [`ErrorCode::NotOffered`](crate::protocol::ErrorCode); if someone
    /// picked the chat or its customer left first, `ChatAlreadyTaken` or
    /// `ChatEnded`.
    pub async fn accept(&self, chat: ChatId) -> Result<Assignment, ClientError> {
        match self.link.request(RequestBody::AcceptOffer { chat }).await? {
            Reply::Assigned(assignment) => Ok(assignment),
            other => Err(unexpected(other)),
        }
    }

    /// Declines a chat offered to this agent: the channel offers it to
    /// another agent ([`Event::OfferWithdrawn`] with
    /// [`OfferEnd::Declined`](crate::core::OfferEnd) follows). Fails with
    /// [`ErrorCode::NotOffered`](crate::protocol::ErrorCode) if the offer
    /// no longer stands.
    pub async fn decline(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(
            self.link
                .request(RequestBody::DeclineOffer { chat })
                .await?,
        )
    }

    /// The Present agents of a channel.
    pub async fn present_agents(
        &self,
        channel: impl Into<ChannelId>,
    ) -> Result<Vec<AgentId>, ClientError> {
        let body = RequestBody::PresentAgents {
            channel: channel.into(),
        };
        match self.link.request(body).await? {
            Reply::PresentAgents(agents) => Ok(agents),
            other => Err(unexpected(other)),
        }
    }

    /// Tickets of this agent's channels, newest first: `limit` rows (1 to
    /// 100) older than `before`, or the newest if `None`.
    pub async fn tickets(
        &self,
        before: Option<TicketId>,
        limit: u16,
    ) -> Result<Vec<TicketSummary>, ClientError> {
        match self
            .link
            .request(RequestBody::Tickets { before, limit })
            .await?
        {
            Reply::Tickets(rows) => Ok(rows),
            other => Err(unexpected(other)),
        }
    }

    /// One ticket, with its message and any transcript.
    pub async fn ticket(&self, id: TicketId) -> Result<Ticket, ClientError> {
        match self.link.request(RequestBody::Ticket { id }).await? {
            Reply::Ticket(ticket) => Ok(*ticket),
            other => Err(unexpected(other)),
        }
    }

    /// Hands a chat this agent has to another agent of its channel, who must
    /// be Present with room ([`ErrorCode::AgentUnavailable`](crate::protocol::ErrorCode)
    /// otherwise). The other agent gets it with its whole transcript; the
    /// customer is told.
    pub async fn transfer_to_agent(
        &self,
        chat: ChatId,
        to: impl Into<AgentId>,
    ) -> Result<(), ClientError> {
        let body = RequestBody::TransferToAgent {
            chat,
            to: to.into(),
        };
        expect_done(self.link.request(body).await?)
    }

    /// Sends a chat this agent has to a channel's queue; it keeps its
    /// history.
    pub async fn transfer_to_channel(
        &self,
        chat: ChatId,
        channel: impl Into<ChannelId>,
    ) -> Result<(), ClientError> {
        let body = RequestBody::TransferToChannel {
            chat,
            channel: channel.into(),
        };
        expect_done(self.link.request(body).await?)
    }

    /// Declines a chat just transferred to this agent: it goes back to the
    /// agent who transferred it, or to the queue if they have no room.
    pub async fn decline_transfer(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(
            self.link
                .request(RequestBody::DeclineTransfer { chat })
                .await?,
        )
    }

    /// Makes a ticket from a chat this agent has, with its transcript; the
    /// customer is told the ticket's id.
    pub async fn create_ticket(
        &self,
        chat: ChatId,
        subject: impl Into<String>,
        note: impl Into<String>,
    ) -> Result<TicketId, ClientError> {
        let body = RequestBody::CreateTicket {
            chat,
            subject: subject.into(),
            note: note.into(),
        };
        match self.link.request(body).await? {
            Reply::TicketCreated(ticket) => Ok(ticket),
            other => Err(unexpected(other)),
        }
    }

    /// The side panel for a customer: their earlier chats and tickets, by
    /// email (or, without one, by name).
    pub async fn contact(
        &self,
        email: Option<&str>,
        name: Option<&str>,
    ) -> Result<ContactCard, ClientError> {
        let body = RequestBody::Contact {
            email: email.map(str::to_owned),
            name: name.map(str::to_owned),
        };
        match self.link.request(body).await? {
            Reply::Contact(card) => Ok(card),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a quick reply, FAQ article or template.
    pub async fn create_item(&self, draft: ItemDraft) -> Result<KnowledgeItem, ClientError> {
        match self.link.request(RequestBody::CreateItem(draft)).await? {
            Reply::Item(item) => Ok(item),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces an item.
    pub async fn update_item(
        &self,
        id: ItemId,
        draft: ItemDraft,
    ) -> Result<KnowledgeItem, ClientError> {
        match self
            .link
            .request(RequestBody::UpdateItem { id, draft })
            .await?
        {
            Reply::Item(item) => Ok(item),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes an item.
    pub async fn delete_item(&self, id: ItemId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::DeleteItem { id }).await?)
    }

    /// The items this agent may use (their channels' and their own).
    pub async fn items(&self, kind: Option<ItemKind>) -> Result<Vec<KnowledgeItem>, ClientError> {
        match self.link.request(RequestBody::Items { kind }).await? {
            Reply::Items(items) => Ok(items),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a quick reply, FAQ article or template into a chat this agent
    /// has, by id or shortcut, with `{customer.name}`, `{agent.name}` and
    /// the other placeholders filled in; answers the message's seq.
    pub async fn insert(&self, chat: ChatId, item: ItemRef) -> Result<u64, ClientError> {
        let body = RequestBody::InsertItem {
            chat,
            client_id: self.link.next_client_id(),
            item,
        };
        match self.link.request(body).await? {
            Reply::Posted { seq, .. } => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    /// Supervisors and admins: a picture of `channel` now: its waiting
    /// chats with their waits, its active chats with their agents and
    /// handle times, and its member agents with status and load. Anyone
    /// who does not oversee the channel gets
    /// [`ErrorCode::NotAllowed`](crate::protocol::ErrorCode). For a live
    /// view, [`watch_monitor`](Self::watch_monitor).
    pub async fn monitor(
        &self,
        channel: impl Into<ChannelId>,
    ) -> Result<ChannelMonitor, ClientError> {
        let body = RequestBody::Monitor {
            channel: channel.into(),
        };
        match self.link.request(body).await? {
            Reply::Monitor(monitor) => Ok(*monitor),
            other => Err(unexpected(other)),
        }
    }

    /// Supervisors and admins: watches `channel`'s monitor live. Its
    /// pictures arrive through [`next_event`](Self::next_event) as
    /// [`Event::Monitor`], each the whole of the channel as
    /// [`monitor`](Self::monitor) answers it: the one at hand first, then
    /// a new one whenever a chat starts waiting or stops, is reprioritized,
    /// assigned, transferred or ends, or an agent's status or load
    /// changes (the hub looks every `[limits] monitor_interval`, 1 s by
    /// default). Only the clock moving makes no picture: run waits and
    /// handle times on from each row's `since`. An application that reads
    /// slowly gets the latest picture of a channel, not each one. The
    /// hub's cost is one picture per interval per watched channel,
    /// however many supervisors watch it.
    ///
    /// The watch lasts until [`unwatch_monitor`](Self::unwatch_monitor)
    /// (the client watches it again after a reconnect); if the hub ends
    /// it (a reload took this supervisor's oversight of the channel, or
    /// the channel is gone), [`Event::MonitorStopped`] comes and no
    /// picture follows. Anyone who does not oversee the channel gets
    /// [`ErrorCode::NotAllowed`](crate::protocol::ErrorCode); watching a
    /// watched channel changes nothing; more than the hub's
    /// `monitors_per_connection` at once:
    /// [`ErrorCode::TooManyChats`](crate::protocol::ErrorCode).
    pub async fn watch_monitor(&self, channel: impl Into<ChannelId>) -> Result<(), ClientError> {
        let channel = channel.into();
        // Remembered first: the first picture may come before the answer.
        self.link.remember_monitor(&channel, true);
        let body = RequestBody::WatchMonitor {
            channel: channel.clone(),
        };
        let watched = self.link.request(body).await.and_then(expect_done);
        if watched.is_err() {
            self.link.remember_monitor(&channel, false);
        }
        watched
    }

    /// Supervisors and admins: stops watching `channel`'s monitor; no
    /// picture of it reaches [`next_event`](Self::next_event) after this
    /// is called. Not watching it is no error.
    pub async fn unwatch_monitor(&self, channel: impl Into<ChannelId>) -> Result<(), ClientError> {
        let channel = channel.into();
        self.link.remember_monitor(&channel, false);
        expect_done(
            self.link
                .request(RequestBody::UnwatchMonitor { channel })
                .await?,
        )
    }

    /// Supervisors and admins: sets `agent` (of a channel this supervisor
    /// oversees) Present or Absent; the agent's connections get
    /// [`Event::StatusChanged`]. Otherwise
    /// [`ErrorCode::NotAllowed`](crate::protocol::ErrorCode).
    pub async fn set_agent_status(
        &self,
        agent: impl Into<AgentId>,
        status: Status,
    ) -> Result<(), ClientError> {
        expect_done(
            self.link
                .request(RequestBody::SetAgentStatus {
                    agent: agent.into(),
                    status,
                })
                .await?,
        )
    }

    /// Supervisors and admins: follows `chat` (of a channel this
    /// supervisor oversees) read-only: its events so far, and then every
    /// new one, notes included, arrive through
    /// [`next_event`](Self::next_event) until [`unfollow`](Self::unfollow)
    /// or its end. Following does not let the supervisor post in the
    /// chat. More than the hub's `followed_chats` at once:
    /// [`ErrorCode::TooManyChats`](crate::protocol::ErrorCode).
    pub async fn follow(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::Follow { chat }).await?)
    }

    /// Supervisors and admins: stops following `chat`.
    pub async fn unfollow(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::Unfollow { chat }).await?)
    }

    /// Supervisors and admins: moves `chat` (active, of a channel this
    /// supervisor oversees) from the agent holding it to `to`, a Present
    /// member of its channel with room (else
    /// [`ErrorCode::AgentUnavailable`](crate::protocol::ErrorCode)). Both
    /// agents and the customer see a `TransferredToAgent` event; just
    /// before it the chat records
    /// [`ChatEventKind::Reassigned`](crate::core::ChatEventKind::Reassigned)
    /// naming this supervisor, which agents, followers and transcripts
    /// show and the customer never gets. Not sent again after a lost
    /// connection: it may have taken effect.
    pub async fn reassign(&self, chat: ChatId, to: impl Into<AgentId>) -> Result<(), ClientError> {
        expect_done(
            self.link
                .request(RequestBody::Reassign {
                    chat,
                    to: to.into(),
                })
                .await?,
        )
    }

    /// Supervisors and admins: barges into `chat` (live, of a channel
    /// this supervisor oversees): the customer sees a `SupervisorJoined`
    /// event, this supervisor may then [`send`](Self::send) messages in
    /// it, and its transcript and every event arrive through
    /// [`next_event`](Self::next_event) until
    /// [`leave_chat`](Self::leave_chat) or its end.
    pub async fn barge_in(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::BargeIn { chat }).await?)
    }

    /// Admins: erases everything the hub keeps of a contact (a GDPR
    /// request), named by its contact key as the contact card shows it
    /// (`email:…`, `name:…`, `verified:id:…`, `verified:email:…`): their
    /// ended chats with transcripts, ratings and undelivered webhook rows,
    /// the tickets made from those chats or linked to the key, the files
    /// shared in the chats (on disk too) and the key's links. Answers how
    /// many chats, tickets and files went. Anyone but an admin gets
    /// [`ErrorCode::NotAllowed`](crate::protocol::ErrorCode); a contact
    /// with a chat that has not ended,
    /// [`ErrorCode::ContactBusy`](crate::protocol::ErrorCode) (end it,
    /// then ask again); a malformed key,
    /// [`ErrorCode::InvalidRequest`](crate::protocol::ErrorCode). Asking
    /// again is harmless: it finds nothing more, or finishes an erasure a
    /// crash cut short.
    pub async fn forget_contact(
        &self,
        contact: impl Into<String>,
    ) -> Result<Forgotten, ClientError> {
        let body = RequestBody::ForgetContact {
            contact: contact.into(),
        };
        match self.link.request(body).await? {
            Reply::Forgotten(forgotten) => Ok(forgotten),
            other => Err(unexpected(other)),
        }
    }

    /// Supervisors and admins: leaves a chat this supervisor barged into
    /// (a `SupervisorLeft` event).
    pub async fn leave_chat(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::LeaveChat { chat }).await?)
    }

    /// Supervisors and admins: whispers to whoever handles `chat` (of a
    /// channel this supervisor oversees), waiting or active: a private
    /// note the agents of the chat see and the customer never does.
    /// Returns its seq once stored; a retry after a lost connection is
    /// stored once.
    pub async fn whisper(&self, chat: ChatId, text: impl Into<String>) -> Result<u64, ClientError> {
        let body = RequestBody::Whisper {
            chat,
            client_id: self.link.next_client_id(),
            text: text.into(),
        };
        match self.link.request(body).await? {
            Reply::Posted { seq, .. } => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    /// Writes a private note in a chat this agent holds: kept with the
    /// chat for this agent, whoever holds the chat later and supervisors,
    /// and never shown to the customer (nor put into a ticket made from
    /// the chat). Answers the note's seq; the note comes back as an
    /// [`Event::Chat`](crate::client::Event::Chat) event like a message.
    pub async fn add_note(
        &self,
        chat: ChatId,
        text: impl Into<String>,
    ) -> Result<u64, ClientError> {
        let body = RequestBody::AddNote {
            chat,
            client_id: self.link.next_client_id(),
            text: text.into(),
        };
        match self.link.request(body).await? {
            Reply::Posted { seq, .. } => Ok(seq),
            other => Err(unexpected(other)),
        }
    }

    /// Puts `tag` on a live chat this agent holds (or, for a supervisor,
    /// any live chat of a channel they oversee): 1 to
    /// [`MAX_TAG_BYTES`](crate::core::MAX_TAG_BYTES) bytes of letters,
    /// digits, inner spaces and `-_.:/` (else `InvalidTag`), kept
    /// lowercased, at most [`MAX_TAGS`](crate::core::MAX_TAGS) per chat
    /// (else `TooManyTags`). A tag the chat carries changes nothing.
    /// Agents get [`ChatEventKind::Tagged`](crate::core::ChatEventKind::Tagged);
    /// the customer never sees tags. The tags the chat carries when it ends
    /// are listed with it by [`recent_sessions_tagged`](Self::recent_sessions_tagged).
    pub async fn add_tag(&self, chat: ChatId, tag: impl Into<String>) -> Result<(), ClientError> {
        let body = RequestBody::AddTag {
            chat,
            tag: tag.into(),
        };
        expect_done(self.link.request(body).await?)
    }

    /// Takes `tag` off a live chat, as [`add_tag`](Self::add_tag) puts it
    /// on ([`ChatEventKind::Untagged`](crate::core::ChatEventKind::Untagged));
    /// a tag the chat does not carry changes nothing.
    pub async fn remove_tag(
        &self,
        chat: ChatId,
        tag: impl Into<String>,
    ) -> Result<(), ClientError> {
        let body = RequestBody::RemoveTag {
            chat,
            tag: tag.into(),
        };
        expect_done(self.link.request(body).await?)
    }

    /// Changes the text of this agent's own message `seq` in a chat they
    /// take part in, within the channel's `edit_window`; see
    /// [`CustomerClient::edit_message`](crate::client::CustomerClient::edit_message).
    pub async fn edit_message(
        &self,
        chat: ChatId,
        seq: u64,
        text: impl Into<String>,
    ) -> Result<u64, ClientError> {
        change_message(&self.link, chat, seq, Some(text.into())).await
    }

    /// Deletes this agent's own message `seq`; see
    /// [`CustomerClient::delete_message`](crate::client::CustomerClient::delete_message).
    pub async fn delete_message(&self, chat: ChatId, seq: u64) -> Result<u64, ClientError> {
        change_message(&self.link, chat, seq, None).await
    }

    /// Sets the priority a waiting chat of one of this agent's channels
    /// waits at: higher priorities are answered first (get-next), and the
    /// chat keeps it if it is queued again. Watchers of the channel see
    /// its row changed; the customer is not told.
    pub async fn set_priority(&self, chat: ChatId, priority: Priority) -> Result<(), ClientError> {
        match self
            .link
            .request(RequestBody::SetPriority { chat, priority })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Shares a file in a chat this agent has.
    pub async fn send_file(
        &self,
        chat: ChatId,
        name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: &[u8],
    ) -> Result<(FileRef, u64), ClientError> {
        crate::client::customer::send_file(
            &self.link,
            chat,
            name.into(),
            content_type.into(),
            bytes,
        )
        .await
    }

    /// Downloads a file shared in a chat of this agent's channels.
    pub async fn download(&self, file: FileId) -> Result<(FileRef, Vec<u8>), ClientError> {
        crate::client::customer::download(&self.link, file).await
    }

    /// Sends a message to a chat assigned to this agent; answers its seq.
    /// The message also comes back from [`next_event`](Self::next_event) in
    /// its place among the chat's events, on this connection made from the
    /// answer, on the agent's other connections sent by the hub.
    pub async fn send(&self, chat: ChatId, text: impl Into<String>) -> Result<u64, ClientError> {
        post(&self.link, chat, text.into()).await
    }

    /// Marks a chat this agent holds read up to seq `up_to` (at most its
    /// last event's); answers the agent's mark now, which only rises: a
    /// mark not beyond it, or beyond it over nothing but read marks,
    /// changes nothing. The customer gets
    /// [`ChatEventKind::Read`](crate::core::ChatEventKind::Read), and so
    /// does the agent from [`next_event`](Self::next_event) in its place
    /// among the chat's events: on this connection made from the answer,
    /// on the agent's other connections sent by the hub.
    pub async fn mark_read(&self, chat: ChatId, up_to: u64) -> Result<u64, ClientError> {
        crate::client::customer::mark_read(&self.link, chat, up_to).await
    }

    /// Tells the customer of a chat this agent holds that the agent is
    /// typing, as a QUIC datagram: never stored, and a lost one is not sent
    /// again (call it again while the agent types, every few seconds at
    /// most; the hub drops what one connection sends faster than
    /// `[limits] typing_per_sec`, over all its chats). The customer gets
    /// [`Event::Typing`]. Fails only when there is no connection right now
    /// or the connection takes no datagrams.
    pub fn typing(&self, chat: ChatId) -> Result<(), ClientError> {
        self.link.typing(chat)
    }

    /// Ends a chat assigned to this agent; it moves to recent sessions.
    pub async fn end_chat(&self, chat: ChatId) -> Result<(), ClientError> {
        expect_done(self.link.request(RequestBody::EndChat { chat }).await?)
    }

    /// Ended chats of this agent's channels, newest first, each with the
    /// customer's rating if they gave one: `limit` rows (1 to 100) ending
    /// before `before` (the last row of the previous page), or the newest
    /// if `None`.
    pub async fn recent_sessions(
        &self,
        before: Option<ChatId>,
        limit: u16,
    ) -> Result<Vec<RatedSession>, ClientError> {
        match self
            .link
            .request(RequestBody::RecentSessions { before, limit })
            .await?
        {
            Reply::Sessions(rows) => Ok(rows),
            other => Err(unexpected(other)),
        }
    }

    /// As [`recent_sessions`](Self::recent_sessions), each row with the
    /// tags its chat carried when it ended; with `tag`, only the sessions
    /// carrying it (compared lowercased; `InvalidTag` if it could not be a
    /// tag). The filter may read many sessions to fill a page.
    pub async fn recent_sessions_tagged(
        &self,
        before: Option<ChatId>,
        limit: u16,
        tag: Option<&str>,
    ) -> Result<Vec<TaggedSession>, ClientError> {
        let body = RequestBody::RecentSessionsTagged {
            before,
            limit,
            tag: tag.map(str::to_owned),
        };
        match self.link.request(body).await? {
            Reply::TaggedSessions(rows) => Ok(rows),
            other => Err(unexpected(other)),
        }
    }

    /// The whole transcript of a live or recent chat of this agent's
    /// channels, fetched page by page.
    pub async fn transcript(&self, chat: ChatId) -> Result<Vec<ChatEvent>, ClientError> {
        let mut all: Vec<ChatEvent> = Vec::new();
        loop {
            let after = all.last().map_or(0, |event| event.seq);
            match self
                .link
                .request(RequestBody::Transcript { chat, after })
                .await?
            {
                Reply::Transcript { events, more } => {
                    let progressed = !events.is_empty();
                    all.extend(events);
                    if !more || !progressed {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    /// A channel's incoming list (badge count and rows) as last pushed by
    /// the hub; `None` until the first snapshot arrived.
    pub fn incoming(&self, channel: impl Into<ChannelId>) -> Option<IncomingList> {
        self.link.incoming.get(&channel.into())
    }

    /// Moves the client to another UDP socket (the device changed
    /// networks, say from Wi-Fi to mobile): its QUIC connection goes on
    /// from the new address, with no reconnect and nothing sent twice. A
    /// client on a [`ClientConfig::sharing_endpoint`] endpoint moves every
    /// client sharing it.
    pub fn move_to_socket(&self, socket: std::net::UdpSocket) -> Result<(), ClientError> {
        self.link.move_to(socket)
    }

    /// How many times the client had to connect again since it first
    /// connected (a lost connection, a restarted hub); moving to another
    /// socket is not one.
    pub fn reconnects(&self) -> u64 {
        self.link.reconnects()
    }

    /// The next event the hub pushed; `None` once the connection is closed.
    pub async fn next_event(&self) -> Option<Event> {
        self.link.next_event().await
    }

    /// Signs this connection out.
    pub fn close(&self) {
        self.link.close();
    }
}

fn expect_done(reply: Reply) -> Result<(), ClientError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}
