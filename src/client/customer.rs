//! The customer's side: start a chat, write, read, leave.

use std::sync::Arc;

use crate::client::link::Link;
use crate::client::{ClientConfig, ClientError};
use crate::core::{ChannelId, ChatId, Customer};
use crate::protocol::{Event, Reply, RequestBody, Role};

/// A chat the hub accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    /// The new chat.
    pub chat: ChatId,
    /// How many chats wait in the channel's queue, this one included.
    pub waiting: u32,
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
    /// [`next_event`](Self::next_event).
    pub async fn start_chat(
        &self,
        channel: impl Into<ChannelId>,
        customer: Customer,
        first_message: impl Into<String>,
    ) -> Result<Started, ClientError> {
        let body = RequestBody::StartChat {
            channel: channel.into(),
            customer,
            client_id: self.link.next_client_id(),
            text: first_message.into(),
        };
        match self.link.request(body).await? {
            Reply::ChatStarted { chat, waiting } => Ok(Started { chat, waiting }),
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
