//! Typed errors as they travel on the wire.

use bincode::{Decode, Encode};

/// What went wrong, as a code a program can match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame could not be decoded, or broke the protocol's rules.
    BadFrame,
    /// The client speaks a protocol version this server does not.
    UnsupportedVersion,
    /// Unknown agent, or a wrong token.
    Unauthorized,
    /// The caller's role may not make this request.
    NotAllowed,
    /// No channel has that name.
    UnknownChannel,
    /// No live chat has that id.
    UnknownChat,
    /// No ticket of the agent's channels has that id.
    UnknownTicket,
    /// The chat is not the caller's.
    NotYourChat,
    /// The chat has ended.
    ChatEnded,
    /// Another agent answered the chat first.
    ChatAlreadyTaken,
    /// No chat waits in the queue.
    QueueEmpty,
    /// The channel's queue is at its limit.
    QueueFull,
    /// The agent already holds as many chats as they may.
    AtCapacity,
    /// The customer may not return to the chat: no end form on the
    /// channel, or the return window has passed.
    NotReturnable,
    /// The agent to transfer to cannot take the chat (not signed in and
    /// Present, not a member, or at capacity).
    AgentUnavailable,
    /// A file above the channel's size limit.
    FileTooLarge,
    /// No file, or no knowledge item, has that id (or it is not yours).
    UnknownItem,
    /// A message without text.
    EmptyMessage,
    /// A message above the size limit.
    MessageTooLong,
    /// A request whose values are out of range.
    InvalidRequest,
    /// The hub is shutting down or overloaded; try again.
    Unavailable,
    /// A fault inside the hub; the request may not have taken effect.
    Internal,
    /// Too many requests of this kind too fast (messages to one chat,
    /// offline forms from one address); wait a moment and try again.
    RateLimited,
    /// The connection, or its address, already has as many live chats as
    /// it may start; or a supervisor follows as many chats, or a
    /// connection watches as many channel monitors, as it may.
    TooManyChats,
    /// The chat holds as much as a live chat may; the agent can end it or
    /// make a ticket of it.
    ChatTooLong,
    /// The hub cannot store anything now (a full disk, an I/O error). The
    /// request may or may not have taken effect, as with a lost answer:
    /// the hub restarts, replays what its commit log holds, and a request
    /// that is safe to send again can be sent again.
    StorageUnavailable,
    /// The channel takes chats only from customers with a verified
    /// identity, or the identity's signature does not match.
    Unverified,
    /// A read mark past the chat's last event.
    ReadBeyondEnd,
    /// No offer of that chat to this agent stands: it expired, was
    /// declined, was withdrawn, or was never made.
    NotOffered,
    /// A tag that is empty, too long, or has characters a tag may not.
    InvalidTag,
    /// The chat carries as many tags as it may.
    TooManyTags,
    /// An edit or deletion of a message someone else wrote.
    NotYourMessage,
    /// An edit or deletion after the channel's `edit_window`.
    EditWindowPassed,
    /// An edit or deletion of a seq that is no message of the chat.
    UnknownMessage,
    /// An edit or deletion of a message deleted already.
    AlreadyDeleted,
    /// The contact to forget has a chat that has not ended; end it first.
    ContactBusy,
    /// What was asked is served by another hub of the cluster: the message
    /// is its address (`host:port`, see [`ErrorFrame::elsewhere_addr`]).
    /// Nothing was done here; connect there and ask again (the SDK does).
    Elsewhere,
}

/// An error answer: a code plus a human-readable explanation.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ErrorFrame {
    /// What went wrong.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

impl ErrorFrame {
    /// An error with the given code and explanation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// [`ErrorCode::Elsewhere`]: served by the hub at `addr`.
    pub fn elsewhere(addr: std::net::SocketAddr) -> Self {
        Self::new(ErrorCode::Elsewhere, addr.to_string())
    }

    /// [`ErrorCode::Elsewhere`] for a browser: served by the hub at `addr`,
    /// which browsers reach at the WebTransport `url` presenting a
    /// certificate of one of `hashes` (SHA-256, hex). The message is the
    /// three separated by spaces, the hashes by commas.
    pub fn elsewhere_web(addr: std::net::SocketAddr, url: &str, hashes: &[String]) -> Self {
        Self::new(
            ErrorCode::Elsewhere,
            format!("{addr} {url} {}", hashes.join(",")),
        )
    }

    /// Where an [`ErrorCode::Elsewhere`] sends the client; `None` for any
    /// other error (or a message that starts with no address).
    pub fn elsewhere_addr(&self) -> Option<std::net::SocketAddr> {
        match self.code {
            ErrorCode::Elsewhere => self.message.split(' ').next()?.parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_client_reads_the_address_of_either_redirect() {
        let addr: std::net::SocketAddr = "10.0.0.2:4433".parse().unwrap();
        assert_eq!(ErrorFrame::elsewhere(addr).elsewhere_addr(), Some(addr));
        let web = ErrorFrame::elsewhere_web(
            addr,
            "https://10.0.0.2:4434/chathub",
            &["ab".repeat(32), "cd".repeat(32)],
        );
        assert_eq!(web.elsewhere_addr(), Some(addr));
        assert_eq!(
            web.message,
            format!(
                "10.0.0.2:4433 https://10.0.0.2:4434/chathub {},{}",
                "ab".repeat(32),
                "cd".repeat(32)
            ),
            "the web SDK reads the URL and hashes from these places"
        );
        let other = ErrorFrame::new(ErrorCode::Unavailable, "10.0.0.2:4433");
        assert_eq!(other.elsewhere_addr(), None);
    }
}
