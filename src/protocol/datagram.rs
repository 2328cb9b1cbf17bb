//! What travels as QUIC datagrams: typing indicators, in both directions.
//!
//! A datagram may be lost, is never resent and is never stored; a lost
//! indicator is simply not shown. Each datagram is one bincode value
//! (standard configuration, as frames) with no length prefix: a datagram
//! is self-delimiting. [`MAX_DATAGRAM_BYTES`] bounds both directions, well
//! below any path's datagram size.

use bincode::{Decode, Encode};

use crate::core::{ChatId, Party};
use crate::protocol::codec::{self, CodecError};

/// The largest datagram either side sends or accepts.
pub const MAX_DATAGRAM_BYTES: usize = 256;

/// Datagrams a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ClientDatagram {
    /// The client is typing in a chat it takes part in.
    Typing {
        /// The chat.
        chat: ChatId,
    },
}

/// Datagrams the hub sends.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ServerDatagram {
    /// Someone in a chat of this client's is typing.
    Typing {
        /// The chat.
        chat: ChatId,
        /// Who is typing.
        from: Party,
    },
}

/// The bytes of one datagram.
pub fn encode_datagram<T: Encode>(datagram: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::encode_to_vec(datagram, bincode::config::standard())
        .map_err(|err| CodecError::Malformed(err.to_string()))?;
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: MAX_DATAGRAM_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes one datagram. Every byte must belong to it.
pub fn decode_datagram<T: Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: MAX_DATAGRAM_BYTES,
        });
    }
    codec::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::AgentId;

    #[test]
    fn datagrams_round_trip() {
        let client = ClientDatagram::Typing { chat: ChatId(7) };
        let bytes = encode_datagram(&client).unwrap();
        assert_eq!(decode_datagram::<ClientDatagram>(&bytes), Ok(client));
        for from in [Party::Customer, Party::Agent(AgentId::new("alice"))] {
            let server = ServerDatagram::Typing {
                chat: ChatId(u64::MAX),
                from,
            };
            let bytes = encode_datagram(&server).unwrap();
            assert_eq!(decode_datagram::<ServerDatagram>(&bytes), Ok(server));
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode_datagram(&ClientDatagram::Typing { chat: ChatId(7) }).unwrap();
        bytes.push(0);
        assert_eq!(
            decode_datagram::<ClientDatagram>(&bytes),
            Err(CodecError::TrailingBytes(1))
        );
    }

    #[test]
    fn short_and_unknown_datagrams_are_refused() {
        assert!(decode_datagram::<ClientDatagram>(&[]).is_err());
        assert!(matches!(
            decode_datagram::<ClientDatagram>(&[9, 1]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_datagrams_are_refused_both_ways() {
        let bytes = vec![0; MAX_DATAGRAM_BYTES + 1];
        assert_eq!(
            decode_datagram::<ClientDatagram>(&bytes),
            Err(CodecError::TooLarge {
                len: MAX_DATAGRAM_BYTES + 1,
                max: MAX_DATAGRAM_BYTES
            })
        );
        let long = ServerDatagram::Typing {
            chat: ChatId(1),
            from: Party::Agent(AgentId::new("a".repeat(MAX_DATAGRAM_BYTES))),
        };
        assert!(matches!(
            encode_datagram(&long),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
