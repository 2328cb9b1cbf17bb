//! The customer's side: start a chat, write, read, leave.

use std::sync::Arc;

use crate::client::link::Link;
use crate::client::{ClientConfig, ClientError};
use crate::core::{
    ChannelId, ChatId, Customer, FileId, FileRef, Identity, OfflineForm, Priority, TicketId,
};
use crate::protocol::{Event, Reply, RequestBody, Role, Upload};

/// What starting a chat came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// The chat waits in the channel's queue.
    Queued {
        /// The new chat.
        chat: ChatId,
        /// How many chats wait in the queue, this one included.
        waiting: u32,
    },
    /// No agent of the channel is Present: fill in the offline form
    /// ([`CustomerClient::submit_offline_form`]) instead.
    Offline(OfflineForm),
}

impl Started {
    /// The new chat, if it was queued.
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            Self::Queued { chat, .. } => Some(*chat),
            Self::Offline(_) => None,
        }
    }
}

/// A customer's connection to the hub. Clones share the connection.
#[derive(Clone)]
pub struct CustomerClient {
    link: Arc<Link>,
}

impl CustomerClient {
    /// Connects as a customer.
    pub async fn connect(config: &ClientConfig) -> Result<Self, ClientError> {
        let link = Link::connect(config, Role::Customer).await?;
        Ok(Self {
            link: Arc::new(link),
        })
    }

    /// Starts a chat on `channel` with a first message. The chat's events
    /// (the message itself, the agent answering, replies) arrive through
    /// [`next_event`](Self::next_event). When no agent of the channel is
    /// Present, the answer is the channel's offline form instead.
    pub async fn start_chat(
        &self,
        channel: impl Into<ChannelId>,
        customer: Customer,
        first_message: impl Into<String>,
    ) -> Result<Started, ClientError> {
        self.start_chat_needing(channel, customer, first_message, Vec::new())
            .await
    }

    /// [`start_chat`](Self::start_chat) for a chat that needs `skills`,
    /// chosen among those the channel offers (none: the channel's
    /// defaults); a skill the channel does not offer is refused
    /// (`Invalid`).
    pub async fn start_chat_needing(
        &self,
        channel: impl Into<ChannelId>,
        customer: Customer,
        first_message: impl Into<String>,
        skills: Vec<String>,
    ) -> Result<Started, ClientError> {
        let secret = self.link.new_secret()?;
        let (channel, client_id, text) = (
            channel.into(),
            self.link.next_client_id(),
            first_message.into(),
        );
        // Plain starts keep the request every hub understands.
        let body = if skills.is_empty() {
            RequestBody::StartChat {
                channel,
                customer,
                client_id,
                text,
                secret: secret.clone(),
            }
        } else {
            RequestBody::StartChatNeeding {
                channel,
                customer,
                client_id,
                text,
                secret: secret.clone(),
                skills,
            }
        };
        match self.link.request(body).await? {
            Reply::ChatStarted { chat, waiting } => {
                self.link.remember_secret(chat, secret);
                Ok(Started::Queued { chat, waiting })
            }
            Reply::Offline(form) => Ok(Started::Offline(form)),
            other => Err(unexpected(other)),
        }
    }

    /// Submits the offline form of `channel`; agents find it as a ticket.
    pub async fn submit_offline_form(
        &self,
        channel: impl Into<ChannelId>,
        name: Option<String>,
        email: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<TicketId, ClientError> {
        let body = RequestBody::SubmitOfflineForm {
            channel: channel.into(),
            name,
            email: email.into(),
            message: message.into(),
        };
        match self.link.request(body).await? {
            Reply::TicketCreated(ticket) => Ok(ticket),
            other => Err(unexpected(other)),
        }
    }

    /// Sends a message; answers its seq in the chat's transcript. The
    /// message also comes back from [`next_event`](Self::next_event) in its
    /// place among the chat's events (made from the answer: the hub does
    /// not send it back over the wire).
    pub async fn send(&self, chat: ChatId, text: impl Into<String>) -> Result<u64, ClientError> {
        post(&self.link, chat, text.into()).await
    }

    /// Marks the chat read up to seq `up_to` (at most its last event's);
    /// answers the customer's mark now, which only rises: a mark not beyond
    /// it, or beyond it over nothing but read marks, changes nothing. The
    /// agent holding the chat gets
    /// [`ChatEventKind::Read`](crate::core::ChatEventKind::Read), and so
    /// does this client, from [`next_event`](Self::next_event) in its place
    /// among the chat's events (made from the answer). Stored, so it is
    /// part of the chat after a restart, a resume and in its transcript.
    pub async fn mark_read(&self, chat: ChatId, up_to: u64) -> Result<u64, ClientError> {
        mark_read(&self.link, chat, up_to).await
    }

    /// Changes the text of the customer's own message `seq` (a seq
    /// [`send`](Self::send) answered) within the channel's `edit_window`
    /// (15 minutes unless configured; `EditWindowPassed` after it, and
    /// `NotYourMessage`, `UnknownMessage` or `AlreadyDeleted` for a seq
    /// that is not the customer's live message). Everyone in the chat gets
    /// [`ChatEventKind::Edited`](crate::core::ChatEventKind::Edited), this
    /// client too from [`next_event`](Self::next_event) in its place among
    /// the chat's events; answers that event's seq. The original stays in
    /// the chat's log. Not sent again after a reconnect (it may have taken
    /// effect): a lost answer is `Unavailable`.
    pub async fn edit_message(
        &self,
        chat: ChatId,
        seq: u64,
        text: impl Into<String>,
    ) -> Result<u64, ClientError> {
        change_message(&self.link, chat, seq, Some(text.into())).await
    }

    /// Deletes the customer's own message `seq`, under
    /// [`edit_message`](Self::edit_message)'s rules: everyone in the chat
    /// gets [`ChatEventKind::Deleted`](crate::core::ChatEventKind::Deleted)
    /// and shows the message as deleted; answers that event's seq.
    pub async fn delete_message(&self, chat: ChatId, seq: u64) -> Result<u64, ClientError> {
        change_message(&self.link, chat, seq, None).await
    }

    /// Tells the chat's agent that the customer is typing, as a QUIC
    /// datagram: never stored, and a lost one is not sent again (call it
    /// again while the customer types, every few seconds at most; the hub
    /// drops what comes faster than `[limits] typing_per_sec`). The agent
    /// holding the chat gets [`Event::Typing`]; nobody does while the chat
    /// waits. Fails only when there is no connection right now or the
    /// connection takes no datagrams.
    pub fn typing(&self, chat: ChatId) -> Result<(), ClientError> {
        self.link.typing(chat)
    }

    /// Says who the customer is on `channel`, with an identity the
    /// contact center's web backend signed (`signature`: HMAC-SHA256 of
    /// the id, a newline and the email, in hex, under the channel's
    /// identity secret). Chats started there afterwards are verified: agents
    /// see it, and only verified chats join that person's contact history.
    /// The SDK proves it again after a reconnect.
    pub async fn identify(
        &self,
        channel: impl Into<ChannelId>,
        identity: Identity,
        signature: impl Into<String>,
    ) -> Result<(), ClientError> {
        let body = RequestBody::Identify {
            channel: channel.into(),
            identity,
            signature: signature.into(),
        };
        match self.link.request(body.clone()).await? {
            Reply::Done => {
                self.link.remember_identity(body);
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// [`identify`](Self::identify) with a priority the backend claims for
    /// the customer (`signature`: HMAC-SHA256 of the id, a newline, the
    /// email, a newline and the priority's name, in hex). Chats started
    /// there afterwards start at that priority, lowered to the channel's
    /// `max_claimed_priority`. A claim that is not signed is refused as
    /// `Unverified`, like a forged identity.
    pub async fn identify_claiming(
        &self,
        channel: impl Into<ChannelId>,
        identity: Identity,
        priority: Priority,
        signature: impl Into<String>,
    ) -> Result<(), ClientError> {
        let body = RequestBody::IdentifyClaiming {
            channel: channel.into(),
            identity,
            priority,
            signature: signature.into(),
        };
        match self.link.request(body.clone()).await? {
            Reply::Done => {
                self.link.remember_identity(body);
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Closes the chat window: the chat ends (or, still queued, leaves the
    /// queue).
    pub async fn leave(&self, chat: ChatId) -> Result<(), ClientError> {
        match self.link.request(RequestBody::Leave { chat }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Rates an ended chat this client started: `rating` from 1 to 5 and
    /// an optional `comment` (at most 2,000 characters; control characters
    /// are dropped). Only on channels configured with `satisfaction =
    /// true` (others answer `NotAllowed`; whether to show the question is
    /// the integrator's choice, as the hub does not announce it), and
    /// within the channel's `return_window` after the end; a live chat
    /// answers `InvalidRequest`. Rating again replaces the earlier rating.
    pub async fn rate(
        &self,
        chat: ChatId,
        rating: u8,
        comment: Option<String>,
    ) -> Result<(), ClientError> {
        match self
            .link
            .request(RequestBody::Rate {
                chat,
                rating,
                comment,
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Comes back to an ended chat through the end form (if the channel has
    /// one and its return window is open): the chat is live again, with its
    /// transcript and seqs continuing, with the same agent if they are
    /// Present and have room, otherwise in the queue.
    pub async fn return_to_chat(&self, chat: ChatId) -> Result<(), ClientError> {
        let secret = self
            .link
            .secret(chat)
            .ok_or_else(|| ClientError::Config(format!("{chat} was not started by this client")))?;
        match self
            .link
            .request(RequestBody::ReturnToChat { chat, secret })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Shares a file in the chat; answers the file and its event's seq.
    pub async fn send_file(
        &self,
        chat: ChatId,
        name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: &[u8],
    ) -> Result<(FileRef, u64), ClientError> {
        send_file(&self.link, chat, name.into(), content_type.into(), bytes).await
    }

    /// Downloads a file shared in the customer's chat.
    pub async fn download(&self, file: FileId) -> Result<(FileRef, Vec<u8>), ClientError> {
        download(&self.link, file).await
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
    ///
    /// Besides messages, a chat's events tell the customer what becomes of
    /// it: `Assigned` (an agent took it), `TransferredToAgent`, `Requeued`
    /// (it waits again: transferred to a queue, or, with `by: None`, put
    /// back at the front of the queue because its agent was gone), and
    /// [`ChatEventKind::AgentGone`](crate::core::ChatEventKind::AgentGone)
    /// (its agent lost their connection and did not come back within the
    /// hub's grace; a `Requeued` follows if the channel requeues such
    /// chats, otherwise the chat stays with that agent).
    pub async fn next_event(&self) -> Option<Event> {
        self.link.next_event().await
    }

    /// Closes the connection. Chats stay as they are.
    pub fn close(&self) {
        self.link.close();
    }
}

pub(crate) async fn post(link: &Link, chat: ChatId, text: String) -> Result<u64, ClientError> {
    let body = RequestBody::Post {
        chat,
        client_id: link.next_client_id(),
        text,
    };
    match link.request(body).await? {
        Reply::Posted { seq, .. } => Ok(seq),
        other => Err(unexpected(other)),
    }
}

/// Edits (`text`) or deletes (`None`) the caller's own message `seq`;
/// answers the seq of the `Edited` or `Deleted` event.
pub(crate) async fn change_message(
    link: &Link,
    chat: ChatId,
    seq: u64,
    text: Option<String>,
) -> Result<u64, ClientError> {
    let body = match text {
        Some(text) => RequestBody::EditMessage { chat, seq, text },
        None => RequestBody::DeleteMessage { chat, seq },
    };
    match link.request(body).await? {
        Reply::Posted { seq, .. } => Ok(seq),
        other => Err(unexpected(other)),
    }
}

pub(crate) async fn mark_read(link: &Link, chat: ChatId, up_to: u64) -> Result<u64, ClientError> {
    match link.request(RequestBody::MarkRead { chat, up_to }).await? {
        Reply::Read { up_to, .. } => Ok(up_to),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

pub(crate) async fn send_file(
    link: &Link,
    chat: ChatId,
    name: String,
    content_type: String,
    bytes: &[u8],
) -> Result<(FileRef, u64), ClientError> {
    let upload = Upload {
        chat,
        name,
        content_type,
        size: bytes.len() as u64,
    };
    match link.upload(upload, bytes).await? {
        Reply::FileShared { file, seq } => Ok((file, seq)),
        other => Err(unexpected(other)),
    }
}

pub(crate) async fn download(link: &Link, file: FileId) -> Result<(FileRef, Vec<u8>), ClientError> {
    match link.download(file).await? {
        (Reply::File(found), bytes) if bytes.len() as u64 == found.size => Ok((found, bytes)),
        (Reply::File(found), bytes) => Err(ClientError::Closed(format!(
            "{} arrived with {} of {} bytes",
            found.id,
            bytes.len(),
            found.size
        ))),
        (other, _) => Err(unexpected(other)),
    }
}
