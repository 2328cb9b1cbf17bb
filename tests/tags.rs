//! Tags end to end over QUIC: the holder and a supervisor tag a chat, the
//! bounds refuse bad tags with typed errors, the customer never sees a
//! tag (live, or resumed from the store once ended), and recent sessions
//! list each chat's tags and filter by one.

mod common;

use chathub::client::{AgentClient, ErrorCode};
use chathub::core::{ChatEvent, ChatEventKind, ChatId, Customer, MAX_TAGS, Status};
use chathub::protocol::{
    ClientFrame, Event as WireEvent, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request,
    RequestBody, Resume, Role, Secret, ServerFrame, encode,
};
use common::{TestHub, agent_chat_event, next_stream, read_until};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
[[channel]]
name = "sales"
[[agent]]
id = "alice"
token = "test-token-0123456789"
channels = ["support", "sales"]
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "sam"
token = "test-token-0123456789"
channels = ["support"]
role = "supervisor"
supervises = ["support"]
"#
);

const SECRET: &str = "the-customer's-secret-0123";

/// A customer speaking the protocol frame by frame, so the test sees
/// exactly what the hub puts on the wire for a customer.
struct Raw {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    control: FrameBuf,
    stream: Option<(quinn::RecvStream, FrameBuf)>,
}

impl Raw {
    async fn connect(hub: &TestHub, resume: Vec<Resume>) -> Self {
        let (_endpoint, conn, send, recv) = hub.raw_connection().await;
        let mut raw = Self {
            _endpoint,
            conn,
            send,
            recv,
            control: FrameBuf::new(),
            stream: None,
        };
        raw.write(ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Customer,
            resume,
        }))
        .await;
        raw
    }

    async fn write(&mut self, frame: ClientFrame) {
        let mut wire = Vec::new();
        encode(&frame, &mut wire).unwrap();
        self.send.write_all(&wire).await.unwrap();
    }

    async fn start_chat(&mut self, channel: &str, secret: &str) -> ChatId {
        let body = RequestBody::StartChat {
            channel: channel.into(),
            customer: Customer::default(),
            client_id: 1,
            text: "My order never came".into(),
            secret: Secret::new(secret),
        };
        self.write(ClientFrame::Request(Request { id: 1, body }))
            .await;
        match read_until(&mut self.recv, &mut self.control, |frame| {
            matches!(frame, ServerFrame::Response(_))
        })
        .await
        {
            ServerFrame::Response(response) => match response.result {
                Ok(Reply::ChatStarted { chat, .. }) => chat,
                other => panic!("expected a started chat, got {other:?}"),
            },
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The chat events on the chat's stream up to the first `last` takes.
    async fn events_until(&mut self, last: impl Fn(&ChatEvent) -> bool) -> Vec<ChatEvent> {
        let mut seen = Vec::new();
        let (mut stream, mut frames, mut frame) = match self.stream.take() {
            Some((mut stream, mut frames)) => {
                let frame = read_until(&mut stream, &mut frames, |_| true).await;
                (stream, frames, frame)
            }
            None => next_stream(&self.conn).await,
        };
        loop {
            if let ServerFrame::Event(WireEvent::Chat(event)) = &frame {
                seen.push(event.clone());
                if last(event) {
                    self.stream = Some((stream, frames));
                    return seen;
                }
            }
            frame = read_until(&mut stream, &mut frames, |_| true).await;
        }
    }
}

fn message(text: &str) -> impl Fn(&ChatEvent) -> bool + '_ {
    move |event| matches!(&event.kind, ChatEventKind::Message { text: got, .. } if got == text)
}

fn is_tag(event: &ChatEvent) -> bool {
    matches!(
        event.kind,
        ChatEventKind::Tagged { .. } | ChatEventKind::Untagged { .. }
    )
}

/// The customer saw no tag, a placeholder at each tag's seq, and every
/// seq once in order.
fn assert_no_tags(events: &[ChatEvent], tag_seqs: &[u64]) {
    assert!(
        !events.iter().any(is_tag),
        "a tag reached the customer: {events:?}"
    );
    for seq in tag_seqs {
        let at = events.iter().find(|event| event.seq == *seq);
        assert_eq!(at.map(|event| &event.kind), Some(&ChatEventKind::Withheld));
    }
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
}

async fn present(hub: &TestHub, id: &str) -> AgentClient {
    let agent = hub.agent(id).await;
    agent.set_status(Status::Present).await.unwrap();
    agent
}

/// The tag events an agent receives up to the message `until`.
async fn tags_seen(agent: &AgentClient, until: &str) -> Vec<ChatEvent> {
    let mut seen = Vec::new();
    loop {
        let event = agent_chat_event(agent).await;
        if message(until)(&event) {
            return seen;
        }
        if is_tag(&event) {
            seen.push(event);
        }
    }
}

#[tokio::test]
async fn agents_tag_a_chat_the_customer_never_sees_it_and_recent_sessions_filter_by_tag() {
    let hub = TestHub::start(CONFIG).await;
    let alice = present(&hub, "alice").await;
    let alice_elsewhere = hub.agent("alice").await;
    let bob = present(&hub, "bob").await;
    let sam = hub.agent("sam").await;
    let mut customer = Raw::connect(&hub, Vec::new()).await;
    let chat = customer.start_chat("support", SECRET).await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    // The holder tags it (kept lowercased); the same tag again is no
    // second event.
    alice.add_tag(chat, "Refund").await.unwrap();
    alice.add_tag(chat, "refund").await.unwrap();
    alice.add_tag(chat, "late delivery").await.unwrap();
    // A supervisor of the channel tags it too, without holding it.
    sam.add_tag(chat, "escalated").await.unwrap();
    // Another agent of the channel may not; nor may anyone end a tag
    // that is not there.
    let err = bob.add_tag(chat, "mine").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat), "{err}");
    alice.remove_tag(chat, "late delivery").await.unwrap();
    alice.remove_tag(chat, "never-there").await.unwrap();

    // Bounds: bad tags and one tag too many are refused, typed.
    for bad in ["", " padded", "two\nlines", "a;b", &"x".repeat(33)] {
        let err = alice.add_tag(chat, bad).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidTag), "{bad:?}: {err}");
    }
    for n in 2..MAX_TAGS {
        alice.add_tag(chat, format!("t{n}")).await.unwrap();
    }
    let err = alice.add_tag(chat, "one-too-many").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManyTags), "{err}");
    for n in 2..MAX_TAGS {
        alice.remove_tag(chat, format!("t{n}")).await.unwrap();
    }
    alice.send(chat, "Sorted, thank you").await.unwrap();

    // Agents see every change, in order.
    let seen = tags_seen(&alice_elsewhere, "Sorted, thank you").await;
    let first: Vec<_> = seen
        .iter()
        .take(4)
        .map(|event| event.kind.clone())
        .collect();
    assert_eq!(
        first,
        [
            ChatEventKind::Tagged {
                by: "alice".into(),
                tag: "refund".into()
            },
            ChatEventKind::Tagged {
                by: "alice".into(),
                tag: "late delivery".into()
            },
            ChatEventKind::Tagged {
                by: "sam".into(),
                tag: "escalated".into()
            },
            ChatEventKind::Untagged {
                by: "alice".into(),
                tag: "late delivery".into()
            },
        ]
    );
    let tag_seqs: Vec<u64> = seen.iter().map(|event| event.seq).collect();
    assert_eq!(tag_seqs.len(), 4 + 2 * (MAX_TAGS - 2));

    // Live, the customer got a placeholder for each.
    let live = customer.events_until(message("Sorted, thank you")).await;
    assert_no_tags(&live, &tag_seqs);

    // A second chat, tagged differently, in the same channel; a third in
    // another channel bob does not work.
    let mut other = Raw::connect(&hub, Vec::new()).await;
    let second = other
        .start_chat("support", "another-customer's-secret")
        .await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, second);
    alice.add_tag(second, "vip").await.unwrap();
    let mut third_customer = Raw::connect(&hub, Vec::new()).await;
    let third = third_customer
        .start_chat("sales", "a-third-customer's-secret")
        .await;
    assert_eq!(alice.get_next("sales").await.unwrap().chat, third);
    alice.add_tag(third, "refund").await.unwrap();
    alice.end_chat(chat).await.unwrap();
    alice.end_chat(second).await.unwrap();
    alice.end_chat(third).await.unwrap();
    // Tags are fixed at the end.
    let err = alice.add_tag(chat, "late").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ChatEnded), "{err}");

    // Resumed from the store once ended: still no tag.
    let mut resumed = Raw::connect(
        &hub,
        vec![Resume {
            chat,
            after: 0,
            secret: Some(Secret::new(SECRET)),
        }],
    )
    .await;
    let stored = resumed
        .events_until(|event| matches!(event.kind, ChatEventKind::Ended { .. }))
        .await;
    assert_no_tags(&stored, &tag_seqs);

    // Recent sessions list the tags at the end, and filter by one.
    let all = alice.recent_sessions_tagged(None, 10, None).await.unwrap();
    let tags_of = |chat: ChatId| {
        all.iter()
            .find(|row| row.session.session.chat == chat)
            .map(|row| row.tags.clone())
    };
    assert_eq!(
        tags_of(chat),
        Some(vec!["escalated".to_owned(), "refund".to_owned()])
    );
    assert_eq!(tags_of(second), Some(vec!["vip".to_owned()]));
    let refunds = alice
        .recent_sessions_tagged(None, 10, Some("REFUND"))
        .await
        .unwrap();
    let chats: Vec<ChatId> = refunds.iter().map(|row| row.session.session.chat).collect();
    assert_eq!(chats, [third, chat], "newest first, both channels of alice");
    // Bob works support only: the sales chat is not his to see.
    let bobs: Vec<ChatId> = bob
        .recent_sessions_tagged(None, 10, Some("refund"))
        .await
        .unwrap()
        .iter()
        .map(|row| row.session.session.chat)
        .collect();
    assert_eq!(bobs, [chat]);
    // Paging with a filter carries on after the given row.
    let after: Vec<ChatId> = alice
        .recent_sessions_tagged(Some(third), 10, Some("refund"))
        .await
        .unwrap()
        .iter()
        .map(|row| row.session.session.chat)
        .collect();
    assert_eq!(after, [chat]);
    assert!(
        alice
            .recent_sessions_tagged(None, 10, Some("nobody-has-this"))
            .await
            .unwrap()
            .is_empty()
    );
    let err = alice
        .recent_sessions_tagged(None, 10, Some("no;such"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidTag), "{err}");
}

#[tokio::test]
async fn a_customer_cannot_tag() {
    let hub = TestHub::start(CONFIG).await;
    let _alice = present(&hub, "alice").await;
    let mut customer = Raw::connect(&hub, Vec::new()).await;
    let chat = customer.start_chat("support", SECRET).await;
    let body = RequestBody::AddTag {
        chat,
        tag: "me".into(),
    };
    customer
        .write(ClientFrame::Request(Request { id: 2, body }))
        .await;
    match read_until(&mut customer.recv, &mut customer.control, |frame| {
        matches!(frame, ServerFrame::Response(_))
    })
    .await
    {
        ServerFrame::Response(response) => {
            assert_eq!(response.result.unwrap_err().code, ErrorCode::NotAllowed)
        }
        other => panic!("expected a response, got {other:?}"),
    }
}
