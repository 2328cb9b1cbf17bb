//! What can go wrong for a client.

use crate::protocol::{ErrorCode, ErrorFrame};

/// A failed connection or request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client configuration is unusable (no trusted certificate, a bad
    /// PEM file, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The connection could not be attempted.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The hub answered with an error; see [`ClientError::code`].
    #[error("refused: {0}")]
    Refused(ErrorFrame),
    /// The hub sent something this client does not understand.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The connection closed before the answer came.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A datagram (a typing indicator) could not be sent: the hub takes
    /// none, or the connection is lost.
    #[error("datagram not sent: {0}")]
    Datagram(#[from] quinn::SendDatagramError),
    /// A local file or socket.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The hub's error code, when the hub refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Refused(frame) => Some(frame.code),
            _ => None,
        }
    }
}
