//! A message's own event: the connection that posts a message learns its
//! seq and time from the answer and is not sent its event; every other
//! connection in the chat is. The SDK makes the event from the answer, so
//! an application still sees its own messages in the chat's order.

mod common;

use chathub::core::{ChatEvent, ChatEventKind, Customer, Party};
use chathub::protocol::{
    ClientFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody, Role,
    ServerFrame, encode,
};
use common::{CONFIG, PATIENCE, TestHub, agent_chat_event, customer_chat_event, read_until, start};

/// The first chat event `next` yields that is the message `text`, and the
/// seqs of the chat events before it.
async fn message<F: Future<Output = ChatEvent>>(
    mut next: impl FnMut() -> F,
    text: &str,
) -> (ChatEvent, Vec<u64>) {
    let mut before = Vec::new();
    loop {
        let event = next().await;
        match &event.kind {
            ChatEventKind::Message { text: got, .. } if got == text => return (event, before),
            _ => before.push(event.seq),
        }
    }
}

#[tokio::test]
async fn the_posting_connection_gets_the_answer_and_no_event() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;

    // The customer speaks the protocol itself, to see what the wire carries.
    let (_endpoint, conn, mut send, mut recv) = hub.raw_connection().await;
    let mut wire = Vec::new();
    let hello = ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Customer,
        resume: Vec::new(),
    });
    encode(&hello, &mut wire).unwrap();
    let start = ClientFrame::Request(Request {
        id: 1,
        body: RequestBody::StartChat {
            channel: "support".into(),
            customer: Customer::default(),
            client_id: 1,
            text: "hello".into(),
            secret: "a-secret-of-at-least-sixteen-bytes".into(),
        },
    });
    encode(&start, &mut wire).unwrap();
    send.write_all(&wire).await.unwrap();
    let mut control = FrameBuf::new();
    let answer = read_until(
        &mut recv,
        &mut control,
        |frame| matches!(frame, ServerFrame::Response(r) if r.id == 1),
    )
    .await;
    let ServerFrame::Response(response) = answer else {
        unreachable!()
    };
    let Ok(Reply::ChatStarted { chat, .. }) = response.result else {
        panic!("the chat starts: {:?}", response.result)
    };
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    let mut wire = Vec::new();
    let post = ClientFrame::Request(Request {
        id: 2,
        body: RequestBody::Post {
            chat,
            client_id: 2,
            text: "where is my parcel?".into(),
        },
    });
    encode(&post, &mut wire).unwrap();
    send.write_all(&wire).await.unwrap();
    let answer = read_until(
        &mut recv,
        &mut control,
        |frame| matches!(frame, ServerFrame::Response(r) if r.id == 2),
    )
    .await;
    let ServerFrame::Response(response) = answer else {
        unreachable!()
    };
    let Ok(Reply::Posted { seq, at }) = response.result else {
        panic!("the message is stored: {:?}", response.result)
    };

    // The agent gets the event, with the seq and time of the answer.
    let (event, _) = message(|| agent_chat_event(&alice), "where is my parcel?").await;
    assert_eq!((event.chat, event.seq, event.at), (chat, seq, at));
    assert!(matches!(
        event.kind,
        ChatEventKind::Message {
            from: Party::Customer,
            client_id: 2,
            ..
        }
    ));

    // The customer's chat stream carries everything else, in order, but
    // not its own message: the agent's answer follows right behind.
    let reply = alice.send(chat, "on its way").await.unwrap();
    assert_eq!(reply, seq + 1);
    let mut stream = tokio::time::timeout(PATIENCE, conn.accept_uni())
        .await
        .unwrap()
        .unwrap();
    let mut frames = FrameBuf::new();
    let mut seen = Vec::new();
    read_until(&mut stream, &mut frames, |frame| {
        let ServerFrame::Event(Event::Chat(event)) = frame else {
            return false;
        };
        seen.push(event.seq);
        matches!(&event.kind, ChatEventKind::Message { text, .. } if text == "on its way")
    })
    .await;
    let expected: Vec<u64> = (1..=seq + 1).filter(|&n| n != seq).collect();
    assert_eq!(seen, expected);
    hub.stop().await;
}

#[tokio::test]
async fn every_connection_sees_a_message_once_with_the_same_seq_and_time() {
    let hub = TestHub::start(CONFIG).await;
    // Alice signs in twice: she posts from one connection and watches the
    // chat on the other.
    let (posting, watching) = (hub.present_agent("alice").await, hub.agent("alice").await);
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", Customer::default(), "hello").await;
    posting.get_next("support").await.unwrap();

    let seq = posting.send(chat, "how can I help?").await.unwrap();
    let (own, before) = message(|| agent_chat_event(&posting), "how can I help?").await;
    let (other, _) = message(|| agent_chat_event(&watching), "how can I help?").await;
    let (customers, _) = message(|| customer_chat_event(&customer), "how can I help?").await;
    // The SDK made the poster's event from the answer: it is the event the
    // other connections were sent, and comes in the chat's order.
    assert_eq!(own, other);
    assert_eq!(own, customers);
    assert_eq!(own.seq, seq);
    assert!(
        matches!(&own.kind, ChatEventKind::Message { from: Party::Agent(agent), .. } if agent.as_str() == "alice")
    );
    assert_eq!(before, (1..seq).collect::<Vec<u64>>());

    // And the next event follows it: nothing held back, nothing twice.
    customer.send(chat, "thanks").await.unwrap();
    let (next, between) = message(|| agent_chat_event(&posting), "thanks").await;
    assert_eq!((next.seq, between), (seq + 1, Vec::new()));
    assert_eq!(next.chat, chat);
    hub.stop().await;
}
