//! Length-prefixed bincode framing.
//!
//! A frame on the wire is a big-endian `u32` payload length followed by the
//! payload, a bincode (2.x, standard configuration) encoding of a
//! [`ClientFrame`](super::ClientFrame) or [`ServerFrame`](super::ServerFrame).
//! Payloads above [`MAX_FRAME_BYTES`] are refused before any of them is
//! buffered, and decoding runs under the same byte limit, so a hostile length
//! field can neither make the reader wait for gigabytes nor make bincode
//! allocate them.

use bincode::config::{Config, standard};
use bincode::{Decode, Encode};
use bytes::{Buf, BytesMut};

/// The largest payload a frame may carry.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

const LEN_BYTES: usize = 4;
/// The most room reserved ahead of bytes that have not arrived.
const RESERVE_AHEAD: usize = 64 << 10;

/// Why bytes could not become a frame, or a frame bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix announces more than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// The announced or encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not a valid frame (unknown variant, bad UTF-8, cut
    /// short inside its declared length, ...).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The payload decoded, but bytes were left over inside its length.
    #[error("frame has {0} bytes after its end")]
    TrailingBytes(usize),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

fn config() -> impl Config {
    standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Appends `frame`, length prefix first, to `out`.
pub fn encode<F: Encode>(frame: &F, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    if let Err(err) = bincode::encode_into_std_write(frame, out, config()) {
        out.truncate(start);
        return Err(CodecError::Malformed(err.to_string()));
    }
    let len = out.len() - start - LEN_BYTES;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(CodecError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    let prefix = u32::try_from(len).expect("bounded by MAX_FRAME_BYTES");
    out[start..start + LEN_BYTES].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// Decodes one frame's payload (without its length prefix). Every byte must
/// belong to the frame.
pub fn decode<F: Decode<()>>(payload: &[u8]) -> Result<F, CodecError> {
    if payload.len() > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge {
            len: payload.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let (frame, used) = bincode::decode_from_slice(payload, config())
        .map_err(|err| CodecError::Malformed(err.to_string()))?;
    if used != payload.len() {
        return Err(CodecError::TrailingBytes(payload.len() - used));
    }
    Ok(frame)
}

/// Collects bytes as they arrive from a stream and cuts them into frames.
#[derive(Debug)]
pub struct FrameBuf {
    buf: BytesMut,
    /// The largest frame accepted (at most [`MAX_FRAME_BYTES`]).
    max: usize,
}

impl Default for FrameBuf {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            max: MAX_FRAME_BYTES,
        }
    }
}

impl FrameBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer that refuses frames above `max` bytes (and above
    /// [`MAX_FRAME_BYTES`]): for streams whose frames are known to be small,
    /// so a peer cannot park a large frame there.
    pub fn with_limit(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max: max.min(MAX_FRAME_BYTES),
        }
    }

    /// Changes the largest frame accepted from now on.
    pub fn set_limit(&mut self, max: usize) {
        self.max = max.min(MAX_FRAME_BYTES);
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed first.
    ///
    /// An error leaves the buffer in an undefined place: the stream is
    /// broken and should be closed.
    pub fn next_frame<F: Decode<()>>(&mut self) -> Result<Option<F>, CodecError> {
        let Some(prefix) = self.buf.get(..LEN_BYTES) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > self.max {
            return Err(CodecError::TooLarge { len, max: self.max });
        }
        if self.buf.len() < LEN_BYTES + len {
            // Room for what is on its way, but not a whole announced frame
            // on the word of four bytes.
            self.buf
                .reserve((LEN_BYTES + len - self.buf.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        self.buf.advance(LEN_BYTES);
        let payload = self.buf.split_to(len);
        decode(&payload).map(Some)
    }

    /// Takes the bytes buffered after the frames read so far (a stream that
    /// carries raw bytes after its first frame).
    pub fn take_rest(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Truncated(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::{
        AgentId, Alert, ChannelId, ChatEvent, ChatEventKind, ChatId, Customer, Party, QueueChange,
        QueueRow, QueueUpdate, Status, Timestamp,
    };
    use crate::protocol::{
        ClientFrame, ErrorCode, ErrorFrame, Event, EventRef, Hello, Reply, Request, RequestBody,
        Response, Resume, Role, ServerEventRef, ServerFrame,
    };

    fn frames_of_every_kind() -> (Vec<ClientFrame>, Vec<ServerFrame>) {
        let customer = Customer {
            name: Some("Åsa".into()),
            email: Some("asa@example.com".into()),
        };
        let client = vec![
            ClientFrame::Hello(Hello {
                version: 1,
                role: Role::Agent {
                    agent: AgentId::new("alice"),
                    token: "secret".into(),
                },
                resume: vec![Resume {
                    chat: ChatId(3),
                    after: 7,
                    secret: None,
                }],
            }),
            ClientFrame::Request(Request {
                id: 7,
                body: RequestBody::StartChat {
                    channel: ChannelId::new("support"),
                    customer: customer.clone(),
                    client_id: 1,
                    text: "Hej! 😀🇸🇪".into(),
                    secret: "a-secret-of-the-customer".into(),
                },
            }),
            ClientFrame::Request(Request {
                id: 8,
                body: RequestBody::SetStatus {
                    status: Status::Present,
                },
            }),
        ];
        let row = QueueRow {
            chat: ChatId(3),
            channel: ChannelId::new("support"),
            customer: customer.clone(),
            first_message: "Hej".into(),
            since: Timestamp(5),
            verified: Some("cust-17".into()),
            priority: None,
        };
        let server = vec![
            ServerFrame::Event(Event::Alert(Alert {
                row: row.clone(),
                raised: Timestamp(65),
            })),
            ServerFrame::Event(Event::AlertCleared {
                channel: ChannelId::new("support"),
                chat: ChatId(3),
            }),
            ServerFrame::Event(Event::Offered(crate::core::Offer {
                row: row.clone(),
                expires_in_ms: 30_000,
            })),
            ServerFrame::Event(Event::OfferWithdrawn {
                channel: ChannelId::new("support"),
                chat: ChatId(3),
                reason: crate::core::OfferEnd::Expired,
            }),
            ServerFrame::Event(Event::QueuePosition(crate::core::QueuePlace {
                chat: ChatId(3),
                position: 4,
                estimated_wait_secs: Some(120),
            })),
            ServerFrame::Event(Event::StatusChanged {
                status: Status::Absent,
                by: AgentId::new("sam"),
            }),
            ServerFrame::Event(Event::Monitor(Box::new(crate::core::ChannelMonitor {
                channel: ChannelId::new("support"),
                at: Timestamp(100),
                waiting_count: 1,
                waiting: vec![crate::core::WaitingChat {
                    chat: ChatId(3),
                    since: Timestamp(5),
                    wait_ms: 95,
                    priority: None,
                    customer: Some("Åsa".into()),
                }],
                active_count: 0,
                active: Vec::new(),
                agents: Vec::new(),
            }))),
            ServerFrame::Event(Event::MonitorStopped {
                channel: ChannelId::new("support"),
            }),
            ServerFrame::Response(Response {
                id: 7,
                result: Ok(Reply::ChatStarted {
                    chat: ChatId(3),
                    waiting: 1,
                }),
            }),
            ServerFrame::Response(Response {
                id: 9,
                result: Err(ErrorFrame::new(ErrorCode::QueueEmpty, "nothing waits")),
            }),
            ServerFrame::Event(Event::Chat(ChatEvent {
                chat: ChatId(3),
                seq: 2,
                at: Timestamp(5),
                kind: ChatEventKind::Message {
                    from: Party::Agent(AgentId::new("alice")),
                    client_id: 4,
                    text: "👍".into(),
                },
            })),
            ServerFrame::Event(Event::Queue(QueueUpdate {
                channel: ChannelId::new("support"),
                version: 4,
                waiting: 1,
                change: QueueChange::Added(row),
            })),
        ];
        (client, server)
    }

    #[test]
    fn every_kind_of_frame_round_trips_through_a_stream_buffer() {
        let (client, server) = frames_of_every_kind();
        let mut wire = Vec::new();
        for frame in &client {
            encode(frame, &mut wire).unwrap();
        }
        // Feed the bytes one at a time: frames come out whole and in order.
        let mut buf = FrameBuf::new();
        let mut decoded = Vec::new();
        for byte in &wire {
            buf.push(std::slice::from_ref(byte));
            while let Some(frame) = buf.next_frame::<ClientFrame>().unwrap() {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded, client);
        buf.finish().unwrap();

        for frame in &server {
            let mut wire = Vec::new();
            encode(frame, &mut wire).unwrap();
            assert_eq!(&decode::<ServerFrame>(&wire[LEN_BYTES..]).unwrap(), frame);
        }
    }

    #[test]
    fn borrowed_events_encode_exactly_like_owned_ones() {
        let (_, server) = frames_of_every_kind();
        for frame in &server {
            let ServerFrame::Event(event) = frame else {
                continue;
            };
            let borrowed = match event {
                Event::Chat(chat) => EventRef::Chat(chat),
                Event::Queue(queue) => EventRef::Queue(queue),
                Event::Alert(alert) => EventRef::Alert(alert),
                Event::AlertCleared { channel, chat } => EventRef::AlertCleared { channel, chat },
                Event::Offered(offer) => EventRef::Offered(offer),
                Event::OfferWithdrawn {
                    channel,
                    chat,
                    reason,
                } => EventRef::OfferWithdrawn {
                    channel,
                    chat,
                    reason,
                },
                Event::QueuePosition(place) => EventRef::QueuePosition(place),
                Event::StatusChanged { status, by } => EventRef::StatusChanged { status, by },
                Event::Monitor(picture) => EventRef::Monitor(picture),
                Event::MonitorStopped { channel } => EventRef::MonitorStopped { channel },
                Event::Typing { .. } => continue,
            };
            let (mut owned_bytes, mut borrowed_bytes) = (Vec::new(), Vec::new());
            encode(frame, &mut owned_bytes).unwrap();
            encode(&ServerEventRef::Event(borrowed), &mut borrowed_bytes).unwrap();
            assert_eq!(owned_bytes, borrowed_bytes);
        }
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_truncated() {
        let (client, _) = frames_of_every_kind();
        let mut wire = Vec::new();
        encode(&client[1], &mut wire).unwrap();
        let mut buf = FrameBuf::new();
        buf.push(&wire[..wire.len() - 3]);
        assert_eq!(buf.next_frame::<ClientFrame>(), Ok(None));
        assert_eq!(buf.finish(), Err(CodecError::Truncated(wire.len() - 3)));
    }

    #[test]
    fn a_length_prefix_above_the_limit_is_refused_before_buffering() {
        let mut buf = FrameBuf::new();
        buf.push(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
        assert_eq!(
            buf.next_frame::<ClientFrame>(),
            Err(CodecError::TooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
    }

    #[test]
    fn an_oversized_frame_is_not_encoded() {
        let frame = ClientFrame::Request(Request {
            id: 1,
            body: RequestBody::Post {
                chat: ChatId(1),
                client_id: 1,
                text: "x".repeat(MAX_FRAME_BYTES),
            },
        });
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            encode(&frame, &mut out),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(
            out,
            [1, 2, 3],
            "a failed encode leaves the buffer as it was"
        );
    }

    #[test]
    fn unknown_variants_short_payloads_and_trailing_bytes_are_typed_errors() {
        // Variant tag 200 of ClientFrame does not exist.
        assert!(matches!(
            decode::<ClientFrame>(&[200]),
            Err(CodecError::Malformed(_))
        ));
        // A Hello cut short inside its own length.
        let mut wire = Vec::new();
        encode(&frames_of_every_kind().0[0], &mut wire).unwrap();
        let payload = &wire[LEN_BYTES..];
        assert!(matches!(
            decode::<ClientFrame>(&payload[..payload.len() - 1]),
            Err(CodecError::Malformed(_))
        ));
        let mut long = payload.to_vec();
        long.push(0);
        assert_eq!(
            decode::<ClientFrame>(&long),
            Err(CodecError::TrailingBytes(1))
        );
        // A string whose length claims far more than the frame holds.
        let mut lying = vec![1, 7, 0, 1, 0, 0, 1, 0xFD];
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode::<ClientFrame>(&lying).is_err());
    }

    proptest! {
        #[test]
        fn posts_round_trip(id: u64, chat: u64, client_id: u64, text in "\\PC{0,200}") {
            let frame = ClientFrame::Request(Request {
                id,
                body: RequestBody::Post { chat: ChatId(chat), client_id, text },
            });
            let mut wire = Vec::new();
            encode(&frame, &mut wire).unwrap();
            let mut buf = FrameBuf::new();
            buf.push(&wire);
            prop_assert_eq!(buf.next_frame::<ClientFrame>().unwrap(), Some(frame));
            prop_assert!(buf.finish().is_ok());
        }

        /// Arbitrary bytes never panic the decoder: a frame or a typed error.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = FrameBuf::new();
            buf.push(&bytes);
            while let Ok(Some(_)) = buf.next_frame::<ClientFrame>() {}
            let _ = decode::<ServerFrame>(&bytes);
        }
    }
}
