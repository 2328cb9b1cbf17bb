//! Typing indicators, which travel as QUIC datagrams: sent on the current
//! connection, never again if lost; received ones join the events that
//! wait for the application.

use super::*;
use crate::protocol::{ClientDatagram, ServerDatagram, decode_datagram, encode_datagram};

impl Link {
    /// Sends a typing indicator for `chat` on the current connection.
    pub(crate) fn typing(&self, chat: ChatId) -> Result<(), ClientError> {
        let bytes = encode_datagram(&ClientDatagram::Typing { chat }).map_err(protocol)?;
        self.current()?.send_datagram(bytes.into())?;
        Ok(())
    }
}

/// Reads the hub's datagrams for the life of `conn`, each an event for
/// the application; one that does not decode is dropped.
pub(super) async fn read_datagrams(conn: quinn::Connection, inner: Arc<Inner>) {
    while let Ok(bytes) = conn.read_datagram().await {
        match decode_datagram::<ServerDatagram>(&bytes) {
            Ok(ServerDatagram::Typing { chat, from }) => {
                inner.accept_other(Event::Typing { chat, from });
            }
            Err(err) => tracing::debug!("bad datagram from the hub dropped: {err}"),
        }
    }
}
