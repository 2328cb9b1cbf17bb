//! A message's own event: the connection that posts a message learns its
//! seq and time from the answer and is not sent its event; every other
//! connection in the chat is. The SDK makes the event from the answer, so
//! an application still sees its own messages in the chat's order.

mod common;

use chathub::core::{ChatEvent, ChatEventKind, ChatId, Customer, Party, Status, Timestamp};
use chathub::protocol::{
    ClientFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody, Role,
    ServerFrame, encode,
};
use common::{
    CONFIG, TestHub, agent_chat_event, customer_chat_event, next_stream, read_until, start,
};

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

/// A connection that speaks the protocol frame by frame.
struct Raw {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    control: FrameBuf,
    next_id: u64,
}

impl Raw {
    async fn connect(hub: &TestHub, role: Role) -> Self {
        let (_endpoint, conn, send, recv) = hub.raw_connection().await;
        let mut raw = Self {
            _endpoint,
            conn,
            send,
            recv,
            control: FrameBuf::new(),
            next_id: 1,
        };
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role,
            resume: Vec::new(),
        });
        raw.write(&hello).await;
        raw
    }

    async fn write(&mut self, frame: &ClientFrame) {
        let mut wire = Vec::new();
        encode(frame, &mut wire).unwrap();
        self.send.write_all(&wire).await.unwrap();
    }

    async fn request(&mut self, body: RequestBody) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&ClientFrame::Request(Request { id, body }))
            .await;
        let answer = read_until(
            &mut self.recv,
            &mut self.control,
            |frame| matches!(frame, ServerFrame::Response(r) if r.id == id),
        )
        .await;
        match answer {
            ServerFrame::Response(response) => response.result.expect("the request succeeds"),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Posts `text`: the message's seq and time from the answer.
    async fn post(&mut self, chat: ChatId, client_id: u64, text: &str) -> (u64, Timestamp) {
        let body = RequestBody::Post {
            chat,
            client_id,
            text: text.into(),
        };
        match self.request(body).await {
            Reply::Posted { seq, at } => (seq, at),
            other => panic!("expected the message's place, got {other:?}"),
        }
    }

    /// The seqs of the chat events on the first stream the hub opens with
    /// chat events (an agent's queue updates come on another), up to and
    /// including the message `text`.
    async fn seqs_until(&mut self, text: &str) -> Vec<u64> {
        let is_it = |event: &ChatEvent| matches!(&event.kind, ChatEventKind::Message { text: got, .. } if got == text);
        let (mut others, mut seen) = (Vec::new(), Vec::new());
        let (mut stream, mut frames) = loop {
            let (stream, frames, first) = next_stream(&self.conn).await;
            if let ServerFrame::Event(Event::Chat(event)) = first {
                seen.push(event.seq);
                if is_it(&event) {
                    return seen;
                }
                break (stream, frames);
            }
            // Kept open: a stream the client stops ends the connection.
            others.push(stream);
        };
        read_until(&mut stream, &mut frames, |frame| {
            let ServerFrame::Event(Event::Chat(event)) = frame else {
                return false;
            };
            seen.push(event.seq);
            is_it(event)
        })
        .await;
        seen
    }
}

/// Every seq from 1 to `last` but `skipped`.
fn all_but(last: u64, skipped: u64) -> Vec<u64> {
    (1..=last).filter(|&seq| seq != skipped).collect()
}

#[tokio::test]
async fn a_posting_customer_gets_the_answer_and_no_event() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let mut customer = Raw::connect(&hub, Role::Customer).await;
    let started = customer
        .request(RequestBody::StartChat {
            channel: "support".into(),
            customer: Customer::default(),
            client_id: 1,
            text: "hello".into(),
            secret: "a-secret-of-at-least-sixteen-bytes".into(),
        })
        .await;
    let Reply::ChatStarted { chat, .. } = started else {
        panic!("expected the chat, got {started:?}")
    };
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    let (seq, at) = customer.post(chat, 2, "where is my parcel?").await;
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
    assert_eq!(alice.send(chat, "on its way").await.unwrap(), seq + 1);
    assert_eq!(
        customer.seqs_until("on its way").await,
        all_but(seq + 1, seq)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_posting_agent_connection_gets_the_answer_and_no_event() {
    let hub = TestHub::start(CONFIG).await;
    let role = Role::Agent {
        agent: "alice".into(),
        token: common::TOKEN.into(),
    };
    let mut alice = Raw::connect(&hub, role).await;
    alice
        .request(RequestBody::SetStatus {
            status: Status::Present,
        })
        .await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", Customer::default(), "hello").await;
    let taken = alice
        .request(RequestBody::GetNext {
            channel: "support".into(),
        })
        .await;
    assert!(
        matches!(taken, Reply::Assigned(ref a) if a.chat == chat),
        "{taken:?}"
    );

    let (seq, at) = alice.post(chat, 7, "how can I help?").await;
    let (event, _) = message(|| customer_chat_event(&customer), "how can I help?").await;
    assert_eq!((event.seq, event.at), (seq, at));
    // Her chat stream (the transcript, then live events) skips just that.
    assert_eq!(customer.send(chat, "thanks").await.unwrap(), seq + 1);
    assert_eq!(alice.seqs_until("thanks").await, all_but(seq + 1, seq));
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
