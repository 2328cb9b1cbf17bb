//! Bad input over a real QUIC connection: a typed error frame and a closed
//! connection, never a panic, and the hub keeps serving others.

mod common;

use chathub::core::Customer;
use chathub::protocol::{
    ClientFrame, ErrorCode, FrameBuf, Hello, MAX_FRAME_BYTES, PROTOCOL_VERSION, Request,
    RequestBody, Role, ServerFrame, encode,
};
use common::{CONFIG, TestHub};

/// Opens a raw connection and control stream, writes `bytes`, and returns
/// the frames the hub sent back until it closed the stream.
async fn exchange(hub: &TestHub, bytes: &[u8]) -> Vec<ServerFrame> {
    let (_endpoint, _conn, mut send, mut recv) = hub.raw_connection().await;
    send.write_all(bytes).await.unwrap();
    let mut frames = FrameBuf::new();
    let mut got = Vec::new();
    let read = async {
        loop {
            while let Ok(Some(frame)) = frames.next_frame::<ServerFrame>() {
                got.push(frame);
            }
            match recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => frames.push(&chunk.bytes),
                _ => break,
            }
        }
    };
    tokio::time::timeout(common::PATIENCE, read)
        .await
        .expect("the hub answers");
    got
}

fn frame(frame: &ClientFrame) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(frame, &mut bytes).unwrap();
    bytes
}

fn closing_code(frames: &[ServerFrame]) -> Option<ErrorCode> {
    frames.iter().find_map(|frame| match frame {
        ServerFrame::Closing(error) => Some(error.code),
        _ => None,
    })
}

fn customer_hello() -> Vec<u8> {
    frame(&ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Customer,
        resume: Vec::new(),
    }))
}

#[tokio::test]
async fn garbage_oversize_and_wrong_order_are_refused_with_typed_errors() {
    let hub = TestHub::start(CONFIG).await;

    // Bytes that are no frame at all: an unknown variant.
    let garbage = [0, 0, 0, 3, 0xEE, 0xEE, 0xEE];
    assert_eq!(
        closing_code(&exchange(&hub, &garbage).await),
        Some(ErrorCode::BadFrame)
    );

    // A length prefix far above the limit is refused before it is buffered.
    let huge = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    assert_eq!(
        closing_code(&exchange(&hub, &huge).await),
        Some(ErrorCode::BadFrame)
    );

    // A request before the hello.
    let early = frame(&ClientFrame::Request(Request {
        id: 1,
        body: RequestBody::Leave {
            chat: chathub::core::ChatId(1),
        },
    }));
    assert_eq!(
        closing_code(&exchange(&hub, &early).await),
        Some(ErrorCode::BadFrame)
    );

    // A version this hub does not speak.
    let future = frame(&ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION + 1,
        role: Role::Customer,
        resume: Vec::new(),
    }));
    assert_eq!(
        closing_code(&exchange(&hub, &future).await),
        Some(ErrorCode::UnsupportedVersion)
    );

    // Garbage after a good hello: welcomed first, then refused.
    let mut bytes = customer_hello();
    bytes.extend_from_slice(&garbage);
    let frames = exchange(&hub, &bytes).await;
    assert!(matches!(frames.first(), Some(ServerFrame::Welcome(_))));
    assert_eq!(closing_code(&frames), Some(ErrorCode::BadFrame));

    // A customer asking for an agent's request gets a typed answer and the
    // connection stays usable.
    let mut bytes = customer_hello();
    bytes.extend(frame(&ClientFrame::Request(Request {
        id: 7,
        body: RequestBody::GetNext {
            channel: "support".into(),
        },
    })));
    let (_endpoint, _conn, mut send, mut recv) = hub.raw_connection().await;
    send.write_all(&bytes).await.unwrap();
    let mut frames = FrameBuf::new();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let chunk = recv.read_chunk(usize::MAX, true).await.unwrap().unwrap();
        frames.push(&chunk.bytes);
        while let Some(frame) = frames.next_frame::<ServerFrame>().unwrap() {
            answers.push(frame);
        }
    }
    let ServerFrame::Response(response) = &answers[1] else {
        panic!("expected a response, got {:?}", answers[1])
    };
    assert_eq!(response.id, 7);
    assert_eq!(
        response.result.as_ref().err().map(|e| e.code),
        Some(ErrorCode::NotAllowed)
    );

    // After all that, the hub still serves a normal customer.
    let customer = hub.customer().await;
    customer
        .start_chat("support", Customer::default(), "still there?")
        .await
        .unwrap();
    hub.stop().await;
}
