//! The one seam between a connection task and its transport: a native
//! QUIC connection (ALPN `chathub/1`) or a browser's WebTransport session
//! (HTTP/3 over QUIC). Everything above it — the hello, the request loop,
//! the per-chat event streams, typing datagrams, file streams — is the
//! same code for both.
//!
//! A WebTransport stream is a QUIC stream that starts with a short header
//! (its kind and the session's id); once `wtransport` has written or read
//! that header, the rest of the stream is ours, byte for byte. So
//! [`SendStream`] and [`RecvStream`] hand out the QUIC stream underneath
//! (they dereference to `quinn`'s types) and the connection code reads and
//! writes it as it does a native stream. What differs is at the level of
//! the connection — accepting and opening streams, datagrams (which
//! WebTransport prefixes with the session's id), closing — and [`Link`]
//! is that difference, an enum rather than a trait so the connection task
//! is compiled once.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use futures::FutureExt as _;

use crate::protocol::CloseCode;

/// Why a transport operation on the connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The native QUIC connection is lost or closed.
    #[error(transparent)]
    Quic(#[from] quinn::ConnectionError),
    /// The WebTransport session is lost or closed.
    #[error(transparent)]
    Web(#[from] wtransport::error::ConnectionError),
    /// A WebTransport stream could not be opened.
    #[error(transparent)]
    WebStream(#[from] wtransport::error::StreamOpeningError),
}

/// A client connection, native or from a browser.
#[derive(Clone, Debug)]
pub(crate) enum Link {
    /// A native SDK's QUIC connection.
    Quic(quinn::Connection),
    /// A browser's WebTransport session.
    Web(wtransport::Connection),
}

impl Link {
    /// Where the client is.
    pub(crate) fn remote_address(&self) -> SocketAddr {
        match self {
            Self::Quic(conn) => conn.remote_address(),
            Self::Web(conn) => conn.remote_address(),
        }
    }

    /// The next bidirectional stream the client opens. Cancel-safe.
    pub(crate) async fn accept_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        match self {
            Self::Quic(conn) => {
                let (send, recv) = conn.accept_bi().await?;
                Ok((SendStream::Quic(send), RecvStream::Quic(recv)))
            }
            Self::Web(conn) => {
                let (send, recv) = conn.accept_bi().await?;
                Ok((SendStream::Web(send), RecvStream::Web(recv)))
            }
        }
    }

    /// Opens a unidirectional stream to the client, its header (for
    /// WebTransport) written.
    pub(crate) async fn open_uni(&self) -> Result<SendStream, LinkError> {
        match self {
            Self::Quic(conn) => Ok(SendStream::Quic(conn.open_uni().await?)),
            Self::Web(conn) => Ok(SendStream::Web(conn.open_uni().await?.await?)),
        }
    }

    /// Opens a unidirectional stream if that needs no waiting; `None`
    /// when it would wait (no stream credit), and always for WebTransport,
    /// whose opening writes the stream's header and must not be cut short
    /// (a writer task opens it instead).
    pub(crate) fn open_uni_now(&self) -> Option<Result<SendStream, LinkError>> {
        match self {
            Self::Quic(conn) => conn
                .open_uni()
                .now_or_never()
                .map(|opened| opened.map(SendStream::Quic).map_err(LinkError::from)),
            Self::Web(_) => None,
        }
    }

    /// The next datagram from the client (for WebTransport, without the
    /// session's prefix). Cancel-safe.
    pub(crate) async fn read_datagram(&self) -> Result<Bytes, LinkError> {
        match self {
            Self::Quic(conn) => Ok(conn.read_datagram().await?),
            Self::Web(conn) => Ok(conn.receive_datagram().await?.payload()),
        }
    }

    /// Sends a datagram; one that cannot go is dropped with the reason.
    pub(crate) fn send_datagram(&self, bytes: Bytes) -> Result<(), String> {
        match self {
            Self::Quic(conn) => conn.send_datagram(bytes).map_err(|err| err.to_string()),
            Self::Web(conn) => conn.send_datagram(bytes).map_err(|err| err.to_string()),
        }
    }

    /// Closes the connection with `code` and a short reason.
    pub(crate) fn close(&self, code: CloseCode, reason: &[u8]) {
        match self {
            Self::Quic(conn) => conn.close(code.code().into(), reason),
            Self::Web(conn) => conn.close(code.code().into(), reason),
        }
    }
}

/// A stream the hub writes: the QUIC stream itself, or a WebTransport
/// stream whose header is written. Dereferences to the QUIC stream.
#[derive(Debug)]
pub(crate) enum SendStream {
    /// Native.
    Quic(quinn::SendStream),
    /// WebTransport.
    Web(wtransport::SendStream),
}

impl Deref for SendStream {
    type Target = quinn::SendStream;

    fn deref(&self) -> &quinn::SendStream {
        match self {
            Self::Quic(stream) => stream,
            Self::Web(stream) => stream.quic_stream(),
        }
    }
}

impl DerefMut for SendStream {
    fn deref_mut(&mut self) -> &mut quinn::SendStream {
        match self {
            Self::Quic(stream) => stream,
            Self::Web(stream) => stream.quic_stream_mut(),
        }
    }
}

/// A stream the hub reads: the QUIC stream itself, or a WebTransport
/// stream whose header is read. Dereferences to the QUIC stream.
#[derive(Debug)]
pub(crate) enum RecvStream {
    /// Native.
    Quic(quinn::RecvStream),
    /// WebTransport.
    Web(wtransport::RecvStream),
}

impl Deref for RecvStream {
    type Target = quinn::RecvStream;

    fn deref(&self) -> &quinn::RecvStream {
        match self {
            Self::Quic(stream) => stream,
            Self::Web(stream) => stream.quic_stream(),
        }
    }
}

impl DerefMut for RecvStream {
    fn deref_mut(&mut self) -> &mut quinn::RecvStream {
        match self {
            Self::Quic(stream) => stream,
            Self::Web(stream) => stream.quic_stream_mut(),
        }
    }
}
