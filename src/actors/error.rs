//! Why the hub refused or failed a request.

use crate::core::{ChannelId, ChatError, ChatId, Limit, QueueError, TicketId};

/// A refusal or failure, for the server to turn into a typed error frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// No channel has that name.
    #[error("no channel named {0:?}")]
    UnknownChannel(ChannelId),
    /// No live or recent chat has that id.
    #[error("no chat {0}")]
    UnknownChat(ChatId),
    /// The chat refused the operation.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// The queue refused the chat.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No chat waits in the channel's queue.
    #[error("no chat waits in {0}")]
    QueueEmpty(ChannelId),
    /// Another agent answered the chat first.
    #[error("{0} was already taken")]
    ChatAlreadyTaken(ChatId),
    /// The caller acted on a chat that is not theirs.
    #[error("{0} is not yours")]
    NotYourChat(ChatId),
    /// No ticket of the agent's channels has that id.
    #[error("no ticket {0}")]
    UnknownTicket(TicketId),
    /// The agent to transfer to is not a Present member with room.
    #[error("{0} cannot take the chat now")]
    AgentUnavailable(crate::core::AgentId),
    /// No knowledge item or file has that id, or it is not the caller's.
    #[error("no such item")]
    UnknownItem,
    /// The caller may not do this.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// A file above the channel's size limit.
    #[error("the file is {size} bytes, more than the channel's limit of {limit}")]
    FileTooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The agent holds as many chats as they may.
    #[error("already holding the most chats allowed ({0})")]
    AtCapacity(u64),
    /// No offer of the chat to the caller stands.
    #[error(
        "{0} is not offered to you (the offer expired, was declined or withdrawn, or was never made)"
    )]
    NotOffered(ChatId),
    /// The agent is not a member of the channel.
    #[error("not a member of channel {0}")]
    NotAMember(ChannelId),
    /// Unknown agent, or a wrong token.
    #[error("unknown agent or wrong token")]
    Unauthorized,
    /// A value out of range.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The channel needs a verified identity, or the one given does not
    /// verify.
    #[error("unverified: {0}")]
    Unverified(String),
    /// A limit on what one client may do was reached.
    #[error("{detail}")]
    Limited {
        /// The limit.
        limit: Limit,
        /// What was refused, for people.
        detail: String,
    },
    /// The store cannot read or write now (a full disk, an I/O error).
    #[error("the hub cannot store anything now: {0}")]
    StorageUnavailable(String),
    /// The actor that should answer is gone (shutting down, or it failed).
    #[error("the hub could not answer: {0}")]
    Unavailable(String),
    /// The contact has a chat that has not ended; it is erased only once
    /// every chat of theirs has.
    #[error("{0} has a chat that has not ended; end it first")]
    ContactBusy(ChatId),
}

impl HubError {
    /// A refusal at `limit`, counted in `chathub_limit_refusals_total`.
    pub fn limited(limit: Limit, detail: impl Into<String>) -> Self {
        count_refusal(limit);
        Self::Limited {
            limit,
            detail: detail.into(),
        }
    }
}

/// Counts a refusal by the limit it hit.
pub fn count_refusal(limit: Limit) {
    metrics::counter!("chathub_limit_refusals_total", "limit" => limit.name()).increment(1);
}
