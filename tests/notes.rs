//! Private notes end to end over QUIC: the agent holding a chat, their
//! other connections and later holders see them; the customer never does,
//! on any path: live, resumed, returned to after the end, resumed from the
//! store once ended, or in a ticket made from the chat.

mod common;

use chathub::client::{AgentClient, Event};
use chathub::core::{AgentId, ChatEvent, ChatEventKind, ChatId, Customer, Status};
use chathub::protocol::{
    ClientFrame, Event as WireEvent, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request,
    RequestBody, Resume, Role, Secret, ServerFrame, encode,
};
use common::{TestHub, agent_chat_event, customer_chat_event, next_stream, read_until};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
end_form = true
[[agent]]
id = "alice"
token = "test-token-0123456789"
[[agent]]
id = "bob"
token = "test-token-0123456789"
"#
);

const NOTE: &str = "NOTE: asked for a refund twice, escalate";
const SECRET: &str = "the-customer's-secret-0123";

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

/// A customer connection that speaks the protocol frame by frame: what the
/// hub puts on the wire for a customer, before any SDK sees it.
struct RawCustomer {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    control: FrameBuf,
    /// The chat's stream being read.
    current: Option<(quinn::RecvStream, FrameBuf)>,
    /// Streams read to their end.
    done: Vec<quinn::RecvStream>,
}

impl RawCustomer {
    async fn connect(hub: &TestHub, resume: Vec<Resume>) -> Self {
        let (_endpoint, conn, send, recv) = hub.raw_connection().await;
        let mut raw = Self {
            _endpoint,
            conn,
            send,
            recv,
            control: FrameBuf::new(),
            current: None,
            done: Vec::new(),
        };
        raw.write(&ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Customer,
            resume,
        }))
        .await;
        raw
    }

    /// Picks the chat up from its start.
    async fn resume(hub: &TestHub, chat: ChatId) -> Self {
        let resume = Resume {
            chat,
            after: 0,
            secret: Some(Secret::new(SECRET)),
        };
        Self::connect(hub, vec![resume]).await
    }

    async fn write(&mut self, frame: &ClientFrame) {
        let mut wire = Vec::new();
        encode(frame, &mut wire).unwrap();
        self.send.write_all(&wire).await.unwrap();
    }

    async fn start_chat(&mut self) -> ChatId {
        let body = RequestBody::StartChat {
            channel: "support".into(),
            customer: ada(),
            client_id: 1,
            text: "Where is my refund?".into(),
            secret: Secret::new(SECRET),
        };
        self.write(&ClientFrame::Request(Request { id: 1, body }))
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

    /// The chat events the hub sends on the chat's streams, up to and
    /// including the first that `last` accepts. Streams are kept open (a
    /// stream the client stops ends the connection).
    async fn events_until(&mut self, last: impl Fn(&ChatEvent) -> bool) -> Vec<ChatEvent> {
        let mut seen = Vec::new();
        loop {
            let (mut stream, mut frames, mut frame) = match self.current.take() {
                Some((mut stream, mut frames)) => {
                    let frame = read_until(&mut stream, &mut frames, |_| true).await;
                    (stream, frames, frame)
                }
                None => next_stream(&self.conn).await,
            };
            loop {
                if let ServerFrame::Event(WireEvent::Chat(event)) = &frame {
                    seen.push(event.clone());
                    let ended = matches!(event.kind, ChatEventKind::Ended { .. });
                    if last(event) {
                        if ended {
                            self.done.push(stream);
                        } else {
                            self.current = Some((stream, frames));
                        }
                        return seen;
                    }
                    if ended {
                        // Finished; a return opens another stream.
                        self.done.push(stream);
                        break;
                    }
                }
                frame = read_until(&mut stream, &mut frames, |_| true).await;
            }
        }
    }
}

fn message(text: &str) -> impl Fn(&ChatEvent) -> bool + '_ {
    move |event| matches!(&event.kind, ChatEventKind::Message { text: got, .. } if got == text)
}

/// What a customer was sent holds the placeholder at the note's seq, no
/// note, and consecutive seqs.
fn assert_withheld(events: &[ChatEvent], note_seq: u64) {
    let shown = format!("{events:?}");
    assert!(
        !shown.contains(NOTE),
        "the note reached the customer: {shown}"
    );
    assert!(
        events
            .iter()
            .all(|event| !matches!(event.kind, ChatEventKind::Note { .. }))
    );
    let at_note = events.iter().find(|event| event.seq == note_seq);
    assert_eq!(
        at_note.map(|event| &event.kind),
        Some(&ChatEventKind::Withheld),
        "the note's seq holds a placeholder"
    );
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "no gap: {shown}");
    }
}

async fn agent(hub: &TestHub, id: &str) -> AgentClient {
    let agent = hub.agent(id).await;
    agent.set_status(Status::Present).await.unwrap();
    agent
}

async fn note_events(agent: &AgentClient, until: &str) -> Vec<ChatEvent> {
    let mut seen = Vec::new();
    loop {
        let event = agent_chat_event(agent).await;
        let done = message(until)(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn notes(events: &[ChatEvent]) -> Vec<(AgentId, String)> {
    events
        .iter()
        .filter_map(|event| match &event.kind {
            ChatEventKind::Note { by, text, .. } => Some((by.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_note_reaches_agents_and_never_the_customer_on_any_path() {
    let hub = TestHub::start(CONFIG).await;
    let alice = agent(&hub, "alice").await;
    let alice_elsewhere = hub.agent("alice").await;
    let mut customer = RawCustomer::connect(&hub, Vec::new()).await;
    let chat = customer.start_chat().await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    // A customer cannot write a note: the request is an agent's.
    let mut intruder = RawCustomer::connect(&hub, Vec::new()).await;
    let body = RequestBody::AddNote {
        chat,
        client_id: 9,
        text: "me too".into(),
    };
    intruder
        .write(&ClientFrame::Request(Request { id: 1, body }))
        .await;
    match read_until(&mut intruder.recv, &mut intruder.control, |frame| {
        matches!(frame, ServerFrame::Response(_))
    })
    .await
    {
        ServerFrame::Response(response) => assert!(response.result.is_err()),
        other => panic!("expected a response, got {other:?}"),
    }

    let note_seq = alice.add_note(chat, NOTE).await.unwrap();
    alice.send(chat, "Let me check that for you").await.unwrap();

    // Live: the customer's stream carries a placeholder in its place.
    let live = customer
        .events_until(message("Let me check that for you"))
        .await;
    assert_withheld(&live, note_seq);

    // The writer's other connection sees the note, in order.
    let seen = note_events(&alice_elsewhere, "Let me check that for you").await;
    assert_eq!(notes(&seen), [(AgentId::new("alice"), NOTE.to_owned())]);

    // The next holder sees it with the transcript they are given.
    let bob = agent(&hub, "bob").await;
    alice.transfer_to_agent(chat, "bob").await.unwrap();
    let given = {
        let mut given = Vec::new();
        while given.len() < note_seq as usize {
            given.push(agent_chat_event(&bob).await);
        }
        given
    };
    assert_eq!(notes(&given), [(AgentId::new("alice"), NOTE.to_owned())]);
    let transcript = bob.transcript(chat).await.unwrap();
    assert_eq!(notes(&transcript).len(), 1);

    // A resumed customer connection gets the placeholder too.
    let mut resumed = RawCustomer::resume(&hub, chat).await;
    let replayed = resumed
        .events_until(message("Let me check that for you"))
        .await;
    assert_withheld(&replayed, note_seq);

    // A ticket made from the chat leaves the note with the chat.
    let ticket = bob
        .create_ticket(chat, "Refund", "call back")
        .await
        .unwrap();
    let ticket = bob.ticket(ticket).await.unwrap();
    assert!(!format!("{ticket:?}").contains(NOTE), "{ticket:?}");

    // Ended: a customer connection resuming it from the store gets the
    // placeholder too.
    bob.end_chat(chat).await.unwrap();
    let mut returning = RawCustomer::resume(&hub, chat).await;
    let stored = returning
        .events_until(|event| matches!(event.kind, ChatEventKind::Ended { .. }))
        .await;
    assert_withheld(&stored, note_seq);

    // Returned to through the end form: a note written after the return
    // reaches the customer as a placeholder as well.
    let body = RequestBody::ReturnToChat {
        chat,
        secret: Secret::new(SECRET),
    };
    returning
        .write(&ClientFrame::Request(Request { id: 7, body }))
        .await;
    let reopened = returning
        .events_until(|event| matches!(event.kind, ChatEventKind::Reopened { .. }))
        .await;
    assert_eq!(
        reopened.last().map(|event| &event.kind),
        Some(&ChatEventKind::Reopened {
            agent: Some(AgentId::new("bob"))
        })
    );
    let second = bob.add_note(chat, NOTE).await.unwrap();
    bob.send(chat, "Welcome back").await.unwrap();
    let after = returning.events_until(message("Welcome back")).await;
    assert_withheld(&after, second);
}

#[tokio::test]
async fn the_sdk_hands_the_customer_no_placeholder_and_keeps_its_place() {
    let hub = TestHub::start(CONFIG).await;
    let alice = agent(&hub, "alice").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", ada(), "hello").await;
    alice.get_next("support").await.unwrap();
    alice.add_note(chat, NOTE).await.unwrap();
    alice.send(chat, "after the note").await.unwrap();
    let mut seen = Vec::new();
    loop {
        let event = customer_chat_event(&customer).await;
        let done = message("after the note")(&event);
        seen.push(event);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().all(|event| !matches!(
            event.kind,
            ChatEventKind::Note { .. } | ChatEventKind::Withheld
        )),
        "{seen:?}"
    );
    // A restart: the SDK resumes after the placeholder, with nothing
    // repeated and nothing missing.
    let hub = hub.restart(CONFIG).await;
    let alice = hub.agent("alice").await;
    alice.send(chat, "still here").await.unwrap();
    let next = loop {
        if let Some(Event::Chat(event)) = customer.next_event().await {
            break event;
        }
    };
    assert!(message("still here")(&next), "{next:?}");
    assert_eq!(next.seq, seen.last().unwrap().seq + 1);
    // The note survived the restart, for agents.
    let transcript = alice.transcript(chat).await.unwrap();
    assert_eq!(
        notes(&transcript),
        [(AgentId::new("alice"), NOTE.to_owned())]
    );
}
