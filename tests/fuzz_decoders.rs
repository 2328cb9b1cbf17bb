//! The decoders of every frame the hub reads from a stranger (hello,
//! requests, file headers) and the SDK reads from a hub, and of the
//! datagrams each reads from the other, take arbitrary bytes: a frame or a typed error, never a panic, never a buffer past the
//! frame limit. Valid frames are mutated (bytes flipped, cut, spliced,
//! length prefixes rewritten) so the cases reach deep into the decoders.
//!
//! `CHATHUB_FUZZ_CASES` sets the number of cases (10,000 by default; run a
//! million outside CI with `CHATHUB_FUZZ_CASES=1000000 cargo test --release
//! --test fuzz_decoders`).

use chathub::core::{AgentId, ChannelId, ChatId, Customer, Party, Status};
use chathub::protocol::{
    ClientDatagram, ClientFrame, FrameBuf, Hello, MAX_DATAGRAM_BYTES, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, Request, RequestBody, Resume, Role, ServerDatagram, ServerFrame, Upload,
    decode, decode_datagram, encode, encode_datagram,
};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("CHATHUB_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(10_000)
}

/// One valid frame of each kind a client sends, encoded with its prefix.
fn seeds() -> Vec<Vec<u8>> {
    let customer = Customer {
        name: Some("Åsa".into()),
        email: Some("asa@example.com".into()),
    };
    let frames = [
        ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Agent {
                agent: "alice".into(),
                token: "a-secret-token-0123".into(),
            },
            resume: (0..5)
                .map(|chat| Resume {
                    chat: ChatId(chat),
                    after: chat * 7,
                    secret: Some("a-secret-of-sixteen".into()),
                })
                .collect(),
        }),
        ClientFrame::Request(Request {
            id: 7,
            body: RequestBody::StartChat {
                channel: ChannelId::new("support"),
                customer,
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
        ClientFrame::Request(Request {
            id: 9,
            body: RequestBody::Post {
                chat: ChatId(3),
                client_id: 4,
                text: "where is my parcel?".into(),
            },
        }),
        ClientFrame::Request(Request {
            id: 10,
            body: RequestBody::MarkRead {
                chat: ChatId(3),
                up_to: 5,
            },
        }),
        ClientFrame::Request(Request {
            id: 11,
            body: RequestBody::Rate {
                chat: ChatId(3),
                rating: 5,
                comment: Some("tack 🙏".into()),
            },
        }),
        ClientFrame::Upload(Upload {
            chat: ChatId(3),
            name: "photo.png".into(),
            content_type: "image/png".into(),
            size: 1 << 20,
        }),
        ClientFrame::Download {
            file: chathub::core::FileId(5),
        },
    ];
    frames
        .iter()
        .map(|frame| {
            let mut bytes = Vec::new();
            encode(frame, &mut bytes).expect("a valid frame encodes");
            bytes
        })
        .collect()
}

/// One valid datagram of each kind either side sends (no length prefix).
fn datagram_seeds() -> Vec<Vec<u8>> {
    vec![
        encode_datagram(&ClientDatagram::Typing { chat: ChatId(3) }).expect("a datagram encodes"),
        encode_datagram(&ServerDatagram::Typing {
            chat: ChatId(3),
            from: Party::Customer,
        })
        .expect("a datagram encodes"),
        encode_datagram(&ServerDatagram::Typing {
            chat: ChatId(u64::MAX),
            from: Party::Agent(AgentId::new("alice")),
        })
        .expect("a datagram encodes"),
    ]
}

/// Both sides' datagram decoders on `bytes`: a datagram or a typed error.
fn decode_datagrams(bytes: &[u8]) {
    let client = decode_datagram::<ClientDatagram>(bytes);
    let server = decode_datagram::<ServerDatagram>(bytes);
    if bytes.len() > MAX_DATAGRAM_BYTES {
        assert!(client.is_err() && server.is_err());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Cut {
        at: usize,
    },
    Splice {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Rewrites the length prefix, as a liar would.
    Prefix(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        1 => any::<usize>().prop_map(|at| Mutation::Cut { at }),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        1 => prop_oneof![
            Just(0u32),
            Just(MAX_FRAME_BYTES as u32),
            Just(MAX_FRAME_BYTES as u32 + 1),
            Just(u32::MAX),
            0..4096u32,
        ]
        .prop_map(Mutation::Prefix),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Flip { at, bits } => {
            if let Some(byte) = bytes.get_mut(at % len) {
                *byte ^= bits;
            }
        }
        Mutation::Cut { at } => bytes.truncate(at % len),
        Mutation::Splice { at, bytes: more } => {
            let at = at % len;
            let at = at.min(bytes.len());
            bytes.splice(at..at, more.iter().copied());
        }
        Mutation::Prefix(len) => {
            if bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }
}

/// Feeds `bytes` to a stream buffer in pieces, as QUIC would, decoding as
/// `F` until a frame fails or none is left; the buffer never holds more
/// than what came plus one frame.
fn feed<F: bincode::Decode<()>>(bytes: &[u8], piece: usize) {
    let mut buf = FrameBuf::new();
    for chunk in bytes.chunks(piece.max(1)) {
        buf.push(chunk);
        loop {
            match buf.next_frame::<F>() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = buf.finish();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn mutated_frames_are_a_frame_or_a_typed_error(
        seed in 0..7usize,
        mutations in proptest::collection::vec(mutation(), 1..4),
        piece in 1..64usize,
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = seeds()[seed].clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        bytes.extend_from_slice(&tail);
        // The hub's side: hellos, requests, file headers.
        feed::<ClientFrame>(&bytes, piece);
        // The payload alone, as the hub decodes it.
        let _ = decode::<ClientFrame>(bytes.get(4..).unwrap_or_default());
        let _ = decode::<RequestBody>(bytes.get(4..).unwrap_or_default());
        let _ = decode::<Hello>(bytes.get(4..).unwrap_or_default());
        // The SDK's side reads the same bytes as server frames.
        feed::<ServerFrame>(&bytes, piece);
    }

    #[test]
    fn mutated_datagrams_are_a_datagram_or_a_typed_error(
        seed in 0..3usize,
        mutations in proptest::collection::vec(mutation(), 1..4),
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut bytes = datagram_seeds()[seed].clone();
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        bytes.extend_from_slice(&tail);
        decode_datagrams(&bytes);
    }

    #[test]
    fn random_bytes_are_a_frame_or_a_typed_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        piece in 1..256usize,
    ) {
        feed::<ClientFrame>(&bytes, piece);
        feed::<ServerFrame>(&bytes, piece);
        let _ = decode::<ClientFrame>(&bytes);
        decode_datagrams(&bytes);
    }
}

#[test]
fn the_seeds_decode_unmutated() {
    for seed in seeds() {
        let mut buf = FrameBuf::new();
        buf.push(&seed);
        assert!(buf.next_frame::<ClientFrame>().unwrap().is_some());
        assert!(buf.finish().is_ok());
    }
    for seed in datagram_seeds() {
        assert!(
            decode_datagram::<ClientDatagram>(&seed).is_ok()
                || decode_datagram::<ServerDatagram>(&seed).is_ok()
        );
    }
}
