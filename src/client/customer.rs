//! The customer's side: start a chat, write, read, leave.

use std::sync::Arc;

use crate::client::link::Link;
use crate::client::{ClientConfig, ClientError};
use crate::core::{ChannelId, ChatId, Customer, OfflineForm, TicketId};
use crate::protocol::{Event, Reply, RequestBody, Role};

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
            Started::Queued { chat, .. } => Some(*chat),
            Started::Offline(_) => None,
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
        let secret = self.link.new_secret();
        let body = RequestBody::StartChat {
            channel: channel.into(),
            customer,
            client_id: self.link.next_client_id(),
            text: first_message.into(),
            secret: secret.clone(),
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

    /// Sends a message; answers its seq in the chat's transcript.
    pub async fn send(&self, chat: ChatId, text: impl Into<String>) -> Result<u64, ClientError> {
        post(&self.link, chat, text.into()).await
    }

    /// Closes the chat window: the chat ends (or, still queued, leaves the
    /// queue).
    pub async fn leave(&self, chat: ChatId) -> Result<(), ClientError> {
        match self.link.request(RequestBody::Leave { chat }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The next event the hub pushed; `None` once the connection is closed.
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
        Reply::Posted { seq } => Ok(seq),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn unexpected(reply: Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}
