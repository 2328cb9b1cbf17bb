//! One chat's events never wait behind another's: an agent that stops
//! reading one chat's stream (its QUIC flow-control window fills up) still
//! receives the other chat's messages at once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chathub::core::{ChatEventKind, ChatId, Customer};
use chathub::protocol::{
    ClientFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Request, RequestBody, Role, ServerFrame,
    encode,
};
use common::{CONFIG, TestHub, next_stream, read_until, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_chat_stream_does_not_hold_up_another_chat() {
    let hub = TestHub::start(CONFIG).await;
    // Bob keeps the channel staffed so the chats queue.
    let _bob = hub.present_agent("bob").await;
    let (slow_customer, fast_customer) = (hub.customer().await, hub.customer().await);
    let (slow, _) = start(&slow_customer, "support", Customer::default(), "slow chat").await;
    let (fast, _) = start(&fast_customer, "support", Customer::default(), "fast chat").await;

    // Alice speaks the protocol herself, to control which streams she reads.
    let (_endpoint, conn, mut send, mut recv) = hub.raw_connection().await;
    let mut wire = Vec::new();
    let hello = ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Agent {
            agent: "alice".into(),
            token: common::TOKEN.into(),
        },
        resume: Vec::new(),
    });
    encode(&hello, &mut wire).unwrap();
    for id in 1..=2 {
        let request = ClientFrame::Request(Request {
            id,
            body: RequestBody::GetNext {
                channel: "support".into(),
            },
        });
        encode(&request, &mut wire).unwrap();
    }
    send.write_all(&wire).await.unwrap();
    // Both answers, in whichever order they come.
    let mut control = FrameBuf::new();
    for _ in 1..=2 {
        let answer = read_until(&mut recv, &mut control, |frame| {
            matches!(frame, ServerFrame::Response(_))
        })
        .await;
        assert!(
            matches!(answer, ServerFrame::Response(r) if r.result.is_ok()),
            "both chats are hers"
        );
    }

    // Find each chat's stream by its first event.
    let mut streams: HashMap<ChatId, (quinn::RecvStream, FrameBuf)> = HashMap::new();
    while streams.len() < 2 {
        let (stream, frames, first) = next_stream(&conn).await;
        if let ServerFrame::Event(Event::Chat(event)) = first {
            streams.insert(event.chat, (stream, frames));
        }
    }
    let (mut fast_stream, mut fast_frames) = streams.remove(&fast).unwrap();
    let (_unread_slow_stream, _) = streams.remove(&slow).unwrap();

    // Flood the slow chat far past its stream's flow-control window while
    // Alice reads nothing of it.
    let big = "x".repeat(16 * 1024);
    let floods: Vec<_> = (0..160)
        .map(|_| {
            let (customer, big) = (slow_customer.clone(), big.clone());
            async move { customer.send(slow, big).await.unwrap() }
        })
        .collect();
    futures::future::join_all(floods).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The fast chat's message still reaches her promptly.
    fast_customer.send(fast, "are you there?").await.unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        read_until(&mut fast_stream, &mut fast_frames, |frame| {
            matches!(frame, ServerFrame::Event(Event::Chat(e))
                if matches!(&e.kind, ChatEventKind::Message { text, .. } if text == "are you there?"))
        }),
    )
    .await;
    assert!(got.is_ok(), "the fast chat waited behind the slow one");
    assert!(
        conn.close_reason().is_none(),
        "the connection is still open"
    );
    hub.stop().await;
}
