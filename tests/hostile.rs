//! Hostile clients over real QUIC on loopback, one test per finding of the
//! November 2026 security review (`F1`..`F24`) that the hub now defends
//! against. Each test attacks with a raw quinn client speaking the protocol
//! frame by frame (or with the SDK, where that is the natural attacker),
//! checks that the attacker gets a typed refusal or a closed connection,
//! and then that an honest customer and agent can still chat.
//!
//! The hub runs with its default `[limits]`, except where a test sets one
//! small on purpose to make the attack cheap.
//!

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathub::client::{AgentClient, ClientConfig, CustomerClient, ErrorCode, Started};
use chathub::core::{AgentId, ChatEvent, ChatEventKind, ChatId, Customer, FileId, Party, Status};
use chathub::protocol::{
    ClientFrame, FrameBuf, Hello, MAX_FRAME_BYTES, PROTOCOL_VERSION, Reply, Request, RequestBody,
    Response, Resume, Role, ServerFrame, Upload, encode,
};
use common::{PATIENCE, TOKEN, TestHub, agent_chat_event, customer_chat_event};

/// The application close code of a connection that did not read what the
/// hub wrote to it.
const CLOSE_TOO_SLOW: u32 = chathub::protocol::CloseCode::TooSlow.code();

/// A second loopback address: an attacker "from elsewhere", so the caps per
/// address that it runs into do not fall on the honest clients, which
/// connect from 127.0.0.1.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The configuration of these tests: `top` (top-level keys and tables),
/// then `[limits]` with `limits` (empty: all defaults), then the `support`
/// channel with `support` added to its table, `sales`, and `help`, which
/// only [`honest_chat_still_works`] uses. Alice works support, carol
/// sales, helper help.
fn config(top: &str, limits: &str, support: &str) -> String {
    format!(
        r#"{top}
[limits]
{limits}
[[channel]]
name = "support"
{support}
[[channel]]
name = "sales"
[[channel]]
name = "help"
[[agent]]
id = "alice"
name = "Alice"
token = "{TOKEN}"
channels = ["support"]
[[agent]]
id = "carol"
token = "{TOKEN}"
channels = ["sales"]
[[agent]]
id = "helper"
token = "{TOKEN}"
channels = ["help"]
"#
    )
}

/// All defaults.
fn defaults() -> String {
    config("", "", "")
}

// ---------------------------------------------------------------------------
// The honest side.

/// An honest customer and agent can still chat: the agent becomes Present,
/// the customer starts a chat (queued), the agent takes it with get-next,
/// and one message goes each way. On the `help` channel, which no attacker
/// touches, so what is measured is the hub, not the attacker's queue.
async fn honest_chat_still_works(hub: &TestHub) {
    honest_chat_with(&hub.client).await;
}

async fn honest_chat_with(client: &ClientConfig) {
    let chat = async {
        let agent = AgentClient::connect(client, "helper", TOKEN)
            .await
            .expect("the honest agent signs in");
        agent
            .set_status(Status::Present)
            .await
            .expect("the honest agent becomes Present");
        let customer = CustomerClient::connect(client)
            .await
            .expect("the honest customer connects");
        let who = Customer {
            name: Some("Honest Hana".into()),
            email: Some("hana@example.com".into()),
        };
        let chat = match customer
            .start_chat("help", who, "hello, is anyone there?")
            .await
            .expect("the honest chat starts")
        {
            Started::Queued { chat, .. } => chat,
            Started::Offline(form) => panic!("an agent is Present, yet the form came: {form:?}"),
        };
        let assignment = agent.get_next("help").await.expect("get-next");
        assert_eq!(assignment.chat, chat, "the agent gets the honest chat");
        agent
            .send(chat, "Hi Hana, how can I help?")
            .await
            .expect("the agent writes");
        wait_message(&customer, Party::Agent(AgentId::new("helper")), |text| {
            text == "Hi Hana, how can I help?"
        })
        .await;
        customer
            .send(chat, "my parcel is late")
            .await
            .expect("the customer writes");
        loop {
            let event = agent_chat_event(&agent).await;
            if matches!(&event.kind, ChatEventKind::Message { from: Party::Customer, text, .. } if text == "my parcel is late")
            {
                break;
            }
        }
        agent.end_chat(chat).await.expect("the agent ends the chat");
        customer.close();
        agent.close();
    };
    tokio::time::timeout(Duration::from_secs(20), chat)
        .await
        .expect("the honest chat within 20 s");
}

/// Waits for the customer's chat message from `from` whose text passes
/// `want`.
async fn wait_message(customer: &CustomerClient, from: Party, want: impl Fn(&str) -> bool) {
    loop {
        let event = customer_chat_event(customer).await;
        if let ChatEventKind::Message {
            from: got, text, ..
        } = &event.kind
            && *got == from
            && want(text)
        {
            return;
        }
    }
}

/// The next chat event of `agent` in `chat` that passes `want`, skipping
/// others.
async fn agent_event_in(
    agent: &AgentClient,
    chat: ChatId,
    want: impl Fn(&ChatEventKind) -> bool,
) -> ChatEvent {
    loop {
        let event = agent_chat_event(agent).await;
        if event.chat == chat && want(&event.kind) {
            return event;
        }
    }
}

// ---------------------------------------------------------------------------
// The raw side: frames by hand.

fn wire(frame: &ClientFrame) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(frame, &mut bytes).expect("a frame within the limit");
    bytes
}

fn request(id: u64, body: RequestBody) -> Vec<u8> {
    wire(&ClientFrame::Request(Request { id, body }))
}

fn hello(role: Role, resume: Vec<Resume>) -> Vec<u8> {
    wire(&ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role,
        resume,
    }))
}

fn agent_role(agent: &str) -> Role {
    Role::Agent {
        agent: AgentId::new(agent),
        token: TOKEN.into(),
    }
}

/// A secret of the customer's choosing (16..256 bytes).
fn secret(tag: &str, n: usize) -> String {
    format!("hostile-secret-{tag}-{n:06}")
}

fn start_body(secret: String) -> RequestBody {
    RequestBody::StartChat {
        channel: "support".into(),
        customer: Customer::default(),
        client_id: 1,
        text: "let me in".into(),
        secret: secret.into(),
    }
}

fn post_body(chat: ChatId, client_id: u64, text: &str) -> RequestBody {
    RequestBody::Post {
        chat,
        client_id,
        text: text.into(),
    }
}

fn code(response: &Response) -> Option<ErrorCode> {
    response.result.as_ref().err().map(|error| error.code)
}

/// A connection we drive frame by frame, with its control stream.
struct Raw {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    frames: FrameBuf,
}

/// A QUIC connection to `addr` from `from`, with `quic`'s settings.
async fn connect_from(
    addr: SocketAddr,
    quic: &quinn::ClientConfig,
    from: IpAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(from, 0)).expect("a client socket");
    endpoint.set_default_client_config(quic.clone());
    let conn = endpoint
        .connect(addr, "localhost")
        .expect("a valid address")
        .await?;
    Ok((endpoint, conn))
}

impl Raw {
    /// A connection with its control stream opened (the hub sees the stream
    /// only once something is written on it).
    async fn open(hub: &TestHub) -> Self {
        Self::open_with(hub.server.local_addr(), hub.client.quic(), HERE).await
    }

    async fn open_with(addr: SocketAddr, quic: &quinn::ClientConfig, from: IpAddr) -> Self {
        let (endpoint, conn) = connect_from(addr, quic, from)
            .await
            .expect("the hub accepts the connection");
        let (send, recv) = conn.open_bi().await.expect("a control stream");
        Self {
            _endpoint: endpoint,
            conn,
            send,
            recv,
            frames: FrameBuf::new(),
        }
    }

    /// A customer whose hello was welcomed.
    async fn customer(hub: &TestHub) -> Self {
        Self::customer_with(hub.server.local_addr(), hub.client.quic(), HERE).await
    }

    async fn customer_with(addr: SocketAddr, quic: &quinn::ClientConfig, from: IpAddr) -> Self {
        let mut raw = Self::open_with(addr, quic, from).await;
        raw.say_hello(Role::Customer, Vec::new()).await;
        raw
    }

    async fn say_hello(&mut self, role: Role, resume: Vec<Resume>) {
        self.write(&hello(role, resume)).await;
        match self.next_frame().await {
            Some(ServerFrame::Welcome(_)) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.expect("the hub reads");
    }

    /// The next frame on the control stream; `None` once the hub finished
    /// or reset it, or closed the connection.
    async fn next_frame(&mut self) -> Option<ServerFrame> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(frame) = self
                    .frames
                    .next_frame::<ServerFrame>()
                    .expect("valid frames")
                {
                    return Some(frame);
                }
                match self.recv.read_chunk(usize::MAX, true).await {
                    Ok(Some(chunk)) => self.frames.push(&chunk.bytes),
                    Ok(None) | Err(_) => return None,
                }
            }
        })
        .await
        .expect("a frame (or the end) within the test's patience")
    }

    /// The next response, skipping anything else.
    async fn response(&mut self) -> Response {
        loop {
            match self.next_frame().await {
                Some(ServerFrame::Response(response)) => return response,
                Some(_) => {}
                None => panic!("the control stream ended before the answer"),
            }
        }
    }

    /// Sends one request and waits for its answer.
    async fn ask(&mut self, id: u64, body: RequestBody) -> Response {
        self.write(&request(id, body)).await;
        let response = self.response().await;
        assert_eq!(response.id, id, "answers come for the request asked");
        response
    }

    /// Starts a chat on `support` with `secret`; the chat.
    async fn start_chat(&mut self, id: u64, secret: String) -> ChatId {
        match self.ask(id, start_body(secret)).await.result {
            Ok(Reply::ChatStarted { chat, .. }) => chat,
            other => panic!("expected a queued chat, got {other:?}"),
        }
    }
}

/// A client configuration (the SDK's TLS) whose connections take only
/// `window` bytes from the hub ahead of reading them: a client that stops
/// reading fills it fast.
fn small_window(hub: &TestHub, window: u32) -> quinn::ClientConfig {
    let mut quic = hub.client.quic().clone();
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(window.into())
        .receive_window((window * 4).into())
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(Duration::from_secs(30).try_into().unwrap()));
    quic.transport_config(Arc::new(transport));
    quic
}

/// Waits until `done` holds, checking every 20 ms, for at most `within`.
async fn eventually(within: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if done().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The data folder's `files/` directory.
fn files_dir(hub: &TestHub) -> PathBuf {
    hub.server
        .cert_path()
        .parent()
        .expect("the certificate is in the data folder")
        .join("files")
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the files folder exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// F9: client-opened unidirectional streams.

/// F9: the hub only opens unidirectional streams; a client gets no credit
/// to open one, so it cannot pin buffers in the hub with data nobody
/// reads. The request half of a download is stopped, not left to fill.
#[tokio::test]
async fn f9_client_uni_streams_get_no_credit_and_download_requests_are_stopped() {
    let hub = TestHub::start(&defaults()).await;
    let mut attacker = Raw::customer(&hub).await;

    let opened = tokio::time::timeout(Duration::from_secs(1), attacker.conn.open_uni()).await;
    assert!(
        opened.is_err(),
        "a client must get no credit for unidirectional streams, got {opened:?}"
    );
    // Sixteen more attempts at once fare no better.
    let attempts = futures::future::join_all(
        (0..16).map(|_| tokio::time::timeout(Duration::from_millis(300), attacker.conn.open_uni())),
    )
    .await;
    assert_eq!(attempts.iter().filter(|attempt| attempt.is_ok()).count(), 0);

    // A download request followed by a megabyte of junk on the same stream:
    // the hub stops the stream instead of letting the junk sit in its
    // buffers.
    let (mut send, mut recv) = attacker.conn.open_bi().await.unwrap();
    let mut bytes = wire(&ClientFrame::Download { file: FileId(1) });
    bytes.extend(std::iter::repeat_n(0x5A, 1 << 20));
    let written = tokio::time::timeout(PATIENCE, send.write_all(&bytes))
        .await
        .expect("the write ends: taken or refused");
    assert!(
        matches!(written, Err(quinn::WriteError::Stopped(_))),
        "junk after a download request must be refused, got {written:?}"
    );
    // The download itself is answered (there is no such file).
    let mut frames = FrameBuf::new();
    let answer = common::read_until(&mut recv, &mut frames, |_| true).await;
    assert!(
        matches!(&answer, ServerFrame::Response(r) if r.id == 0 && r.result.is_err()),
        "{answer:?}"
    );

    // The attacker's connection itself still works, and so does the hub.
    let answer = attacker
        .ask(1, post_body(ChatId(1), 1, "still here?"))
        .await;
    assert_eq!(code(&answer), Some(ErrorCode::NotYourChat));
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F1 / F6: requests in flight and the message rate.

/// F1: 5,000 posts (over a megabyte) pipelined into the connection's own
/// chat without reading a single answer while they are sent. The hub
/// takes them at its own pace and keeps serving others meanwhile; then
/// every request is answered exactly once (or the connection is closed
/// for not reading), and only what the chat's pace allows is stored, in
/// the order sent.
#[tokio::test]
async fn f1_five_thousand_pipelined_posts_neither_grow_the_hub_nor_stall_others() {
    const POSTS: u64 = 5_000;
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let mut attacker = Raw::customer(&hub).await;
    let chat = attacker.start_chat(1, secret("f1", 0)).await;

    let text = "x".repeat(250);
    let mut flood = Vec::new();
    for n in 0..POSTS {
        flood.extend(request(10 + n, post_body(chat, 10 + n, &text)));
    }
    assert!(flood.len() > 1 << 20, "more than the hub's windows hold");
    let began = Instant::now();
    // The flood is written (as fast as the hub takes it) while an honest
    // customer and agent chat: they are served meanwhile.
    let (written, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), attacker.send.write_all(&flood)),
        honest_chat_still_works(&hub),
    );
    let written = written.expect("the hub takes (or refuses) the flood within 30 s");
    // Now read the answers: all of them, or a connection closed for not
    // reading them in time.
    let mut answers: BTreeMap<u64, Response> = BTreeMap::new();
    let mut closed = false;
    while answers.len() < POSTS as usize {
        match attacker.next_frame().await {
            Some(ServerFrame::Response(response)) => {
                assert!(
                    answers.insert(response.id, response).is_none(),
                    "a request answered twice"
                );
            }
            Some(_) => {}
            None => {
                closed = true;
                break;
            }
        }
    }
    let elapsed = began.elapsed();
    if closed {
        let reason = attacker.conn.close_reason();
        assert!(
            matches!(&reason, Some(quinn::ConnectionError::ApplicationClosed(close)) if close.error_code == CLOSE_TOO_SLOW.into()),
            "the answers end early only when the hub closes for not reading: {reason:?}"
        );
    } else {
        assert!(written.is_ok(), "{written:?}");
        assert_eq!(
            answers.keys().copied().collect::<Vec<_>>(),
            (10..10 + POSTS).collect::<Vec<_>>(),
            "every request answered exactly once"
        );
    }
    // What was stored is what the chat's pace allows (a burst of 20, then
    // 5 a second), in the order sent.
    let mut posted = Vec::new();
    for (id, answer) in &answers {
        match &answer.result {
            Ok(Reply::Posted { seq, .. }) => posted.push((*id, *seq)),
            Err(error) => assert_eq!(error.code, ErrorCode::RateLimited, "{error:?}"),
            Ok(other) => panic!("unexpected answer {other:?}"),
        }
    }
    let allowed = 20 + (5.0 * elapsed.as_secs_f64()).ceil() as usize + 2;
    assert!(
        !posted.is_empty() && posted.len() <= allowed,
        "{} of {POSTS} posts stored in {elapsed:?}; the pace allows {allowed}",
        posted.len()
    );
    assert!(
        posted.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "stored posts keep the order they were sent in"
    );
    let transcript = alice.transcript(chat).await.unwrap();
    assert!(
        transcript.len() <= posted.len() + 3,
        "the chat holds {} events for {} stored posts",
        transcript.len(),
        posted.len()
    );
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F6: a burst of customer posts beyond the chat's burst (20) is refused
/// `RateLimited`; the burst itself and, a moment later, the next message
/// are accepted.
#[tokio::test]
async fn f6_a_burst_of_customer_posts_is_rate_limited() {
    let hub = TestHub::start(&defaults()).await;
    let _alice = hub.present_agent("alice").await;
    let mut attacker = Raw::customer(&hub).await;
    let chat = attacker.start_chat(1, secret("f6", 0)).await;

    let mut burst = Vec::new();
    for n in 1..=30 {
        burst.extend(request(100 + n, post_body(chat, n, "spam")));
    }
    attacker.write(&burst).await;
    let mut answers = BTreeMap::new();
    for _ in 0..30 {
        let response = attacker.response().await;
        answers.insert(response.id, response);
    }
    let posted: Vec<u64> = answers
        .iter()
        .filter(|(_, r)| r.result.is_ok())
        .map(|(id, _)| *id)
        .collect();
    assert!(
        (101..=120).all(|id| posted.contains(&id)),
        "the first 20 (the burst) are accepted: {posted:?}"
    );
    let limited = answers
        .values()
        .filter(|r| code(r) == Some(ErrorCode::RateLimited))
        .count();
    assert!(limited >= 5, "only {limited} of 30 refused RateLimited");
    assert_eq!(posted.len() + limited, 30, "nothing else went wrong");

    // The pace refills: a message a moment later is taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = attacker.ask(200, post_body(chat, 200, "sorry")).await;
    assert!(
        matches!(later.result, Ok(Reply::Posted { .. })),
        "{later:?}"
    );
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F6: a chat holds at most `chat_events` events; past it the customer
/// is refused `ChatTooLong` and the agent is told once, by a system
/// message, while the agent can still write and end the chat.
#[tokio::test]
async fn f6_a_chat_past_its_length_is_refused_and_the_agent_is_told_once() {
    let hub = TestHub::start(&config("", "chat_events = 30", "")).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hi").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    let began = Instant::now();
    let mut accepted = 0;
    let refused = loop {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "no ChatTooLong after {accepted} posts"
        );
        match customer.send(chat, format!("message {accepted}")).await {
            Ok(_) => accepted += 1,
            Err(err) if err.code() == Some(ErrorCode::RateLimited) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(refused.code(), Some(ErrorCode::ChatTooLong), "{refused}");
    // Started, the first message and Assigned, then the customer's posts up
    // to 30 events.
    assert_eq!(accepted, 27);
    let notice = agent_event_in(&alice, chat, |kind| {
        matches!(
            kind,
            ChatEventKind::Message {
                from: Party::System,
                ..
            }
        )
    })
    .await;
    let ChatEventKind::Message { text, .. } = &notice.kind else {
        unreachable!()
    };
    assert!(text.contains("length limit"), "{text}");

    // Again: refused, and no second notice.
    for n in 0..3 {
        let again = customer.send(chat, format!("more {n}")).await.unwrap_err();
        assert_eq!(again.code(), Some(ErrorCode::ChatTooLong));
    }
    alice
        .send(chat, "I will make a ticket of this")
        .await
        .expect("the agent can still write");
    let transcript = alice.transcript(chat).await.unwrap();
    let notices = transcript
        .iter()
        .filter(|e| {
            matches!(
                &e.kind,
                ChatEventKind::Message {
                    from: Party::System,
                    ..
                }
            )
        })
        .count();
    assert_eq!(notices, 1, "the agent is told once");
    assert_eq!(
        transcript.len(),
        32,
        "30 events, the notice, the agent's line"
    );
    alice.end_chat(chat).await.unwrap();
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F17 and the hello deadline: clients that stop reading or never speak.

/// F17: a client that pipelines requests and stops reading its control
/// stream is closed once a write has waited `control_write_timeout`; an
/// agent doing so is no longer Present after the grace.
#[tokio::test]
async fn f17_a_client_that_stops_reading_its_answers_is_closed() {
    let hub = TestHub::start(&config(
        "presence_grace = \"300ms\"",
        "control_write_timeout = \"500ms\"",
        "",
    ))
    .await;
    let quic = small_window(&hub, 4096);
    let addr = hub.server.local_addr();

    // A customer: cheap requests whose answers it never reads.
    let mut customer = Raw::customer_with(addr, &quic, HERE).await;
    let mut flood = Vec::new();
    for n in 0..2_000 {
        flood.extend(request(n, RequestBody::Leave { chat: ChatId(n) }));
    }
    customer.write(&flood).await;
    let began = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), customer.conn.closed())
        .await
        .expect("the hub closes a connection that does not read its answers");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == CLOSE_TOO_SLOW.into()),
        "{closed:?} after {:?}",
        began.elapsed()
    );

    // An agent: Present, then the same.
    let present = || hub.server.hub().present_agents(&"support".into()).unwrap();
    let mut agent = Raw::open_with(addr, &quic, HERE).await;
    agent.say_hello(agent_role("alice"), Vec::new()).await;
    let answer = agent
        .ask(
            1,
            RequestBody::SetStatus {
                status: Status::Present,
            },
        )
        .await;
    assert!(answer.result.is_ok(), "{answer:?}");
    assert_eq!(present(), vec![AgentId::new("alice")]);
    let mut flood = Vec::new();
    for n in 0..2_000 {
        flood.extend(request(
            10 + n,
            RequestBody::PresentAgents {
                channel: "support".into(),
            },
        ));
    }
    agent.write(&flood).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), agent.conn.closed())
        .await
        .expect("the hub closes an agent that does not read its answers");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == CLOSE_TOO_SLOW.into()),
        "{closed:?}"
    );
    // Alice has no connection left: after the grace she is Absent, not
    // Present with no working connection.
    eventually(
        Duration::from_secs(5),
        "alice Absent after the grace",
        async || present().is_empty(),
    )
    .await;
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F13: a connection that never says hello, or sends a hello only in
/// part, is closed after `hello_timeout`; one that says it in time is
/// welcomed.
#[tokio::test]
async fn hello_deadline_closes_silent_and_slow_connections() {
    let hub = TestHub::start(&config("", "hello_timeout = \"300ms\"", "")).await;

    // Silent: handshake, then nothing at all.
    let silent = Raw::open(&hub).await;
    // Slow: two bytes of a hello's length prefix.
    let mut slow = Raw::open(&hub).await;
    slow.write(&[0, 0]).await;
    // A hello announcing a megabyte, sent in part.
    let mut partial = Raw::open(&hub).await;
    let mut bytes = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(1u8, 1000));
    partial.write(&bytes).await;

    let began = Instant::now();
    for (what, raw) in [("silent", &silent), ("slow", &slow), ("partial", &partial)] {
        let closed = tokio::time::timeout(Duration::from_secs(3), raw.conn.closed()).await;
        assert!(
            closed.is_ok(),
            "the {what} connection is still open after {:?}",
            began.elapsed()
        );
        assert!(
            !matches!(
                closed.unwrap(),
                quinn::ConnectionError::LocallyClosed | quinn::ConnectionError::TimedOut
            ),
            "closed by the hub"
        );
    }

    // An honest client that is quick enough is welcomed.
    let mut quick = Raw::open(&hub).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    quick.say_hello(Role::Customer, Vec::new()).await;
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F13: one address may hold `connections_per_ip` connections; the next
/// is refused, a place that closes comes back, and other addresses are
/// not affected.
#[tokio::test]
async fn f13_connections_per_address_are_capped() {
    let hub = TestHub::start(&config("", "connections_per_ip = 8", "")).await;
    let addr = hub.server.local_addr();
    let quic = hub.client.quic().clone();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(Raw::customer_with(addr, &quic, ELSEWHERE).await);
    }
    let refused = connect_from(addr, &quic, ELSEWHERE).await;
    assert!(
        refused.is_err(),
        "a ninth connection from one address must be refused"
    );
    // Meanwhile another address is served.
    honest_chat_still_works(&hub).await;
    // One place given back is one place free again.
    let gone = held.pop().unwrap();
    gone.conn.close(0u32.into(), b"bye");
    drop(gone);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(conn) = connect_from(addr, &quic, ELSEWHERE).await {
            again = Some(conn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.is_some(),
        "the place of a closed connection comes back"
    );
    assert!(
        connect_from(addr, &quic, ELSEWHERE).await.is_err(),
        "and only that one"
    );
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F4 / F5: queue flooding.

/// F4: a customer connection may start 4 live chats; the 5th is refused
/// `TooManyChats`, and one that ends gives its place back.
#[tokio::test]
async fn f4_the_fifth_chat_on_one_connection_is_refused() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let attacker = hub.customer().await;
    let mut chats = Vec::new();
    for n in 0..4 {
        let (chat, _) = common::start(&attacker, "support", Customer::default(), "hi").await;
        chats.push(chat);
        assert_eq!(chats.len(), n + 1);
    }
    let fifth = attacker
        .start_chat("support", Customer::default(), "one more")
        .await
        .unwrap_err();
    assert_eq!(fifth.code(), Some(ErrorCode::TooManyChats), "{fifth}");
    // Leaving one gives its place back.
    attacker.leave(chats[0]).await.unwrap();
    eventually(
        Duration::from_secs(5),
        "a place comes back",
        async || match attacker
            .start_chat("support", Customer::default(), "again")
            .await
        {
            Ok(Started::Queued { .. }) => true,
            Err(err) if err.code() == Some(ErrorCode::TooManyChats) => false,
            other => panic!("{other:?}"),
        },
    )
    .await;
    eventually(
        Duration::from_secs(3),
        "four wait: the refused starts queued nothing",
        async || alice.incoming("support").map(|list| list.waiting) == Some(4),
    )
    .await;
    assert_eq!(hub.server.hub().live_chats(), 4);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F4: the customers of one address may have 64 live chats (16
/// connections of 4); the next start from that address is refused
/// `TooManyChats`, while another address starts chats as before.
#[tokio::test]
async fn f4_chats_per_address_are_capped() {
    // Starts are paced per address too (the next test): not the subject here.
    let hub = TestHub::start(&config("", "chat_starts_per_minute = 1000", "")).await;
    let _alice = hub.present_agent("alice").await;
    let addr = hub.server.local_addr();
    let quic = hub.client.quic().clone();
    let mut held = Vec::new();
    for conn in 0..16 {
        let mut raw = Raw::customer_with(addr, &quic, ELSEWHERE).await;
        let mut starts = Vec::new();
        for n in 0..4 {
            starts.extend(request(
                n,
                start_body(secret("f4ip", conn * 4 + n as usize)),
            ));
        }
        raw.write(&starts).await;
        for _ in 0..4 {
            let answer = raw.response().await;
            assert!(
                matches!(answer.result, Ok(Reply::ChatStarted { .. })),
                "{answer:?}"
            );
        }
        held.push(raw);
    }
    let mut one_more = Raw::customer_with(addr, &quic, ELSEWHERE).await;
    let refused = one_more.ask(1, start_body(secret("f4ip", 999))).await;
    assert_eq!(code(&refused), Some(ErrorCode::TooManyChats), "{refused:?}");
    assert_eq!(hub.server.hub().live_chats(), 64);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F4 by churn: starting and leaving chats stays under the live-chat caps,
/// but each start costs durable writes and a push to every agent, so starts
/// are paced per address (`chat_starts_per_minute`, 30 by default).
#[tokio::test]
async fn f4_starts_are_paced_per_address() {
    let hub = TestHub::start(&defaults()).await;
    let _alice = hub.present_agent("alice").await;
    let addr = hub.server.local_addr();
    let quic = hub.client.quic().clone();
    let mut raw = Raw::customer_with(addr, &quic, ELSEWHERE).await;
    let mut id = 0;
    let mut refused = None;
    for n in 0..40 {
        id += 1;
        let answer = raw.ask(id, start_body(secret("churn", n))).await;
        match answer.result {
            Ok(Reply::ChatStarted { chat, .. }) => {
                id += 1;
                let left = raw.ask(id, RequestBody::Leave { chat }).await;
                assert!(matches!(left.result, Ok(Reply::Done)), "{left:?}");
            }
            Err(error) => {
                refused = Some((n, error.code));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, Some((30, ErrorCode::RateLimited)));
    // Another address starts as before.
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F4: a waiting chat whose customer went away is abandoned after the
/// channel's `abandon_after`, so junk does not pile up in the queue; a
/// waiting chat whose customer is still there stays.
#[tokio::test]
async fn f4_queued_chats_of_customers_who_left_are_abandoned() {
    let hub = TestHub::start(&config("", "", "abandon_after = \"300ms\"")).await;
    let alice = hub.present_agent("alice").await;
    let staying = hub.customer().await;
    let (kept, _) = common::start(&staying, "support", Customer::default(), "I wait").await;
    let leaving = hub.customer().await;
    for n in 0..3 {
        common::start(
            &leaving,
            "support",
            Customer::default(),
            &format!("junk {n}"),
        )
        .await;
    }
    eventually(Duration::from_secs(3), "four chats wait", async || {
        alice.incoming("support").map(|list| list.waiting) == Some(4)
    })
    .await;
    leaving.close();
    eventually(
        Duration::from_secs(5),
        "the chats of the customer who left are abandoned",
        async || {
            alice.incoming("support").map(|list| list.waiting) == Some(1)
                && hub.server.hub().live_chats() == 1
        },
    )
    .await;
    // Well past abandon_after, the customer who stayed still waits.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, kept);
    let empty = alice.get_next("support").await.unwrap_err();
    assert_eq!(empty.code(), Some(ErrorCode::QueueEmpty));
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F5: a start whose customer name is longer than 256 bytes, or whose
/// email is not an address, is refused `InvalidRequest` and queues
/// nothing.
#[tokio::test]
async fn f5_oversized_names_and_bad_emails_are_refused() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let attacker = hub.customer().await;
    let bad = [
        Customer {
            name: Some("A".repeat(300)),
            email: None,
        },
        Customer {
            name: None,
            email: Some(format!("{}@example.com", "a".repeat(300))),
        },
        Customer {
            name: Some("Eve".into()),
            email: Some("not an address".into()),
        },
        Customer {
            name: Some("Eve".into()),
            email: Some("eve@localhost".into()),
        },
    ];
    for who in bad {
        let refused = attacker
            .start_chat("support", who.clone(), "hi")
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Some(ErrorCode::InvalidRequest),
            "{who:?}: {refused}"
        );
    }
    assert_eq!(hub.server.hub().live_chats(), 0, "nothing was started");
    // At the limit is fine.
    let (chat, waiting) = common::start(
        &attacker,
        "support",
        Customer {
            name: Some("é".repeat(128)),
            email: Some("eve@example.com".into()),
        },
        "hi",
    )
    .await;
    assert_eq!(waiting, 1);
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F16: offline forms.

/// F16: the offline form is refused `NotAllowed` while an agent of the
/// channel is Present; with nobody Present, one address may send 5 a
/// minute and the 6th is refused `RateLimited`, from any connection.
#[tokio::test]
async fn f16_offline_forms_only_while_nobody_is_present_and_paced_per_address() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let attacker = hub.customer().await;
    let form = async |customer: &CustomerClient, n: usize| {
        customer
            .submit_offline_form(
                "support",
                Some("Mallory".into()),
                "mallory@example.com",
                format!("buy cheap watches {n}"),
            )
            .await
    };
    let refused = form(&attacker, 0).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotAllowed), "{refused}");

    alice.set_status(Status::Absent).await.unwrap();
    for n in 1..=5 {
        form(&attacker, n).await.expect("five forms a minute");
    }
    let sixth = form(&attacker, 6).await.unwrap_err();
    assert_eq!(sixth.code(), Some(ErrorCode::RateLimited), "{sixth}");
    // A fresh connection from the same address does not start over.
    let again = hub.customer().await;
    let seventh = form(&again, 7).await.unwrap_err();
    assert_eq!(seventh.code(), Some(ErrorCode::RateLimited), "{seventh}");
    let tickets = alice.tickets(None, 100).await.unwrap();
    assert_eq!(tickets.len(), 5, "only the accepted forms became tickets");
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F3 / F2 / F21: files.

/// F3: an upload to someone else's chat (or to no chat) is answered
/// `NotYourChat` right after its header, before a byte of the file is
/// sent, the rest is refused, and nothing is written to disk.
#[tokio::test]
async fn f3_an_upload_to_someone_elses_chat_is_refused_before_its_bytes() {
    let hub = TestHub::start(&defaults()).await;
    let _alice = hub.present_agent("alice").await;
    let victim = hub.customer().await;
    let (chat, _) = common::start(&victim, "support", Customer::default(), "hello").await;
    let attacker = Raw::customer(&hub).await;
    let files = files_dir(&hub);

    for target in [chat, ChatId(chat.0 + 1_000)] {
        let (mut send, mut recv) = attacker.conn.open_bi().await.unwrap();
        let header = wire(&ClientFrame::Upload(Upload {
            chat: target,
            name: "payload.bin".into(),
            content_type: "application/octet-stream".into(),
            size: 10 << 20,
        }));
        send.write_all(&header).await.unwrap();
        // Only the header is sent; the answer must come anyway.
        let mut frames = FrameBuf::new();
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            common::read_until(&mut recv, &mut frames, |_| true),
        )
        .await
        .expect("the refusal comes right after the header");
        let ServerFrame::Response(answer) = answer else {
            panic!("expected a response, got {answer:?}")
        };
        assert_eq!(code(&answer), Some(ErrorCode::NotYourChat), "{answer:?}");
        let parts: Vec<_> = names_in(&files)
            .into_iter()
            .filter(|name| name.ends_with(".part"))
            .collect();
        assert!(parts.is_empty(), "nothing is written: {parts:?}");
        // The bytes that follow are not wanted.
        let rest = tokio::time::timeout(PATIENCE, send.write_all(&vec![0u8; 1 << 20]))
            .await
            .expect("the write ends");
        assert!(
            matches!(rest, Err(quinn::WriteError::Stopped(_))),
            "{rest:?}"
        );
    }
    assert!(names_in(&files).is_empty(), "{:?}", names_in(&files));

    // The chat's own customer shares a file as before.
    let (file, _) = victim
        .send_file(chat, "receipt.txt", "text/plain", b"paid")
        .await
        .expect("the victim's own upload");
    assert_eq!(names_in(&files), vec![file.id.0.to_string()]);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// Sends `size` announced bytes' header on a new stream of `raw`, then
/// `bytes`; the stream's answer, if one comes within the patience.
async fn upload(raw: &Raw, chat: ChatId, size: u64, bytes: &[u8]) -> Option<Response> {
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    let header = wire(&ClientFrame::Upload(Upload {
        chat,
        name: "file.bin".into(),
        content_type: "application/octet-stream".into(),
        size,
    }));
    send.write_all(&header).await.unwrap();
    let _ = send.write_all(bytes).await;
    let mut frames = FrameBuf::new();
    match tokio::time::timeout(
        PATIENCE,
        common::read_until(&mut recv, &mut frames, |_| true),
    )
    .await
    {
        Ok(ServerFrame::Response(answer)) => Some(answer),
        _ => None,
    }
}

/// F3 by volume: the bytes a customer may share are bounded per chat
/// (`chat_file_bytes`), so one address cannot fill the hub's file quota
/// with its chats' files.
#[tokio::test]
async fn f3_a_customers_files_are_bounded_per_chat() {
    let hub = TestHub::start(&config("", "chat_file_bytes = 1000", "")).await;
    let _alice = hub.present_agent("alice").await;
    let mut raw = Raw::customer_with(hub.server.local_addr(), hub.client.quic(), ELSEWHERE).await;
    let chat = raw.start_chat(1, secret("files", 1)).await;
    let first = upload(&raw, chat, 600, &[7; 600]).await.expect("an answer");
    assert!(
        matches!(first.result, Ok(Reply::FileShared { .. })),
        "{first:?}"
    );
    // The second would pass the chat's budget: refused after its header.
    let second = upload(&raw, chat, 600, &[]).await.expect("an answer");
    assert_eq!(code(&second), Some(ErrorCode::FileTooLarge), "{second:?}");
    assert_eq!(names_in(&files_dir(&hub)).len(), 1);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F2 with a header: an upload whose bytes come slower than
/// `file_min_bytes_per_sec` (after the header's grace) is cut off, so it
/// cannot hold a transfer slot for the whole of its nominal time.
#[tokio::test]
async fn f2_an_upload_slower_than_the_minimum_rate_is_cut_off() {
    let hub = TestHub::start(&config(
        "",
        "file_header_timeout = \"300ms\"\nfile_min_bytes_per_sec = 10000",
        "",
    ))
    .await;
    let _alice = hub.present_agent("alice").await;
    let mut raw = Raw::customer_with(hub.server.local_addr(), hub.client.quic(), ELSEWHERE).await;
    let chat = raw.start_chat(1, secret("slow", 1)).await;
    let started = Instant::now();
    // 100 KB announced (10 s at the minimum rate), 1 KB sent, then nothing.
    let answer = upload(&raw, chat, 100_000, &[1; 1000])
        .await
        .expect("an answer");
    assert_eq!(code(&answer), Some(ErrorCode::InvalidRequest), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut off when the bytes fall behind, not at the end: {:?}",
        started.elapsed()
    );
    assert!(
        names_in(&files_dir(&hub)).is_empty(),
        "{:?}",
        names_in(&files_dir(&hub))
    );
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F2 by number: one address may have `files_in_flight_per_ip` transfers
/// going at once; more are refused, so it cannot hold every slot.
#[tokio::test]
async fn f2_file_transfers_are_capped_per_address() {
    let hub = TestHub::start(&config("", "files_in_flight_per_ip = 2", "")).await;
    let _alice = hub.present_agent("alice").await;
    let mut raw = Raw::customer_with(hub.server.local_addr(), hub.client.quic(), ELSEWHERE).await;
    let chat = raw.start_chat(1, secret("slots", 1)).await;
    // Two uploads hold their slots (header sent, bytes owed)...
    let mut held = Vec::new();
    for _ in 0..2 {
        let (mut send, recv) = raw.conn.open_bi().await.unwrap();
        let header = wire(&ClientFrame::Upload(Upload {
            chat,
            name: "big.bin".into(),
            content_type: "application/octet-stream".into(),
            size: 1 << 20,
        }));
        send.write_all(&header).await.unwrap();
        send.write_all(&[0; 100]).await.unwrap();
        held.push((send, recv));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so a third from the same address is refused at once.
    let third = upload(&raw, chat, 10, &[1; 10]).await.expect("an answer");
    assert_eq!(code(&third), Some(ErrorCode::RateLimited), "{third:?}");
    honest_chat_still_works(&hub).await;
    drop(held);
    hub.stop().await;
}

/// F2: a file stream that does not finish its header within
/// `file_header_timeout` is answered with an error and closed, so it
/// cannot hold a task (and a file) forever.
#[tokio::test]
async fn f2_a_file_stream_without_a_header_is_closed_after_the_deadline() {
    let hub = TestHub::start(&config("", "file_header_timeout = \"300ms\"", "")).await;
    let attacker = Raw::customer(&hub).await;
    let mut streams = Vec::new();
    for bytes in [&[0u8, 0][..], &[0, 0, 0, 40, 3][..]] {
        let (mut send, recv) = attacker.conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        streams.push((send, recv));
    }
    let began = Instant::now();
    for (mut send, mut recv) in streams {
        let mut frames = FrameBuf::new();
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            common::read_until(&mut recv, &mut frames, |_| true),
        )
        .await
        .expect("the hub gives up on the header");
        assert!(
            began.elapsed() >= Duration::from_millis(250),
            "not before the deadline"
        );
        let ServerFrame::Response(answer) = answer else {
            panic!("expected a response, got {answer:?}")
        };
        assert_eq!(answer.id, 0);
        assert_eq!(code(&answer), Some(ErrorCode::InvalidRequest), "{answer:?}");
        let end = tokio::time::timeout(PATIENCE, recv.read_chunk(usize::MAX, true))
            .await
            .expect("the stream ends");
        assert!(matches!(end, Ok(None)), "{end:?}");
        let rest = tokio::time::timeout(PATIENCE, send.write_all(&vec![0u8; 1 << 20]))
            .await
            .expect("the write ends");
        assert!(
            matches!(rest, Err(quinn::WriteError::Stopped(_))),
            "{rest:?}"
        );
    }
    assert!(names_in(&files_dir(&hub)).is_empty());
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F21: a file's name loses control and bidirectional characters and its
/// path, and a content type off the safe list is served as a download,
/// so an agent's desktop is not fooled by `invoice<U+202E>fdp.exe` (shown
/// as `invoiceexe.pdf`) or by `text/html`.
#[tokio::test]
async fn f21_uploaded_names_are_cleaned_and_content_types_made_safe() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hello").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
    let (file, _) = customer
        .send_file(
            chat,
            "../../x/invoice\u{202E}fdp.exe\u{0}",
            "text/html",
            b"<script>alert(1)</script>",
        )
        .await
        .unwrap();
    assert_eq!(file.name, "invoicefdp.exe");
    assert_eq!(file.content_type, "application/octet-stream");
    let shared = agent_event_in(&alice, chat, |kind| {
        matches!(kind, ChatEventKind::FileShared { .. })
    })
    .await;
    let ChatEventKind::FileShared { file: seen, .. } = &shared.kind else {
        unreachable!()
    };
    assert_eq!(seen, &file, "the agent sees the cleaned name and type");
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F6 through files: a customer's shared files are events of the chat
/// like its messages, so they must count against the same length cap
/// and pace; otherwise a customer whose messages are refused
/// `ChatTooLong` goes on growing the chat (and the files folder) one
/// tiny upload after another, as fast as it likes.
#[tokio::test]
async fn f6_file_shares_count_against_the_chats_length_and_pace() {
    let hub = TestHub::start(&config("", "chat_events = 30", "")).await;
    let _alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hi").await;
    let mut accepted = 0;
    let began = Instant::now();
    loop {
        assert!(began.elapsed() < Duration::from_secs(20));
        match customer.send(chat, format!("message {accepted}")).await {
            Ok(_) => accepted += 1,
            Err(err) if err.code() == Some(ErrorCode::RateLimited) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => {
                assert_eq!(err.code(), Some(ErrorCode::ChatTooLong), "{err}");
                break;
            }
        }
    }
    // The chat is full: 30 files in a row must not make it longer.
    let mut shared = 0;
    for n in 0..30 {
        if customer
            .send_file(chat, format!("f{n}.txt"), "text/plain", b"x")
            .await
            .is_ok()
        {
            shared += 1;
        }
    }
    let files = names_in(&files_dir(&hub)).len();
    assert_eq!(
        (shared, files),
        (0, 0),
        "a chat refused ChatTooLong took {shared} more files ({files} on disk)"
    );
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F8: the customer's resume list.

/// F8: a hello may carry at most `resume_points` (256) resume points;
/// more is refused with a `Closing` frame (`InvalidRequest`) before any
/// is looked up. 256 are fine.
#[tokio::test]
async fn f8_a_hello_with_too_many_resume_points_is_refused() {
    let hub = TestHub::start(&defaults()).await;
    let points = |n: u64| -> Vec<Resume> {
        (1..=n)
            .map(|chat| Resume {
                chat: ChatId(chat),
                after: 0,
                secret: Some(secret("f8", chat as usize).into()),
            })
            .collect()
    };
    let mut attacker = Raw::open(&hub).await;
    attacker.write(&hello(Role::Customer, points(257))).await;
    match attacker.next_frame().await {
        Some(ServerFrame::Closing(error)) => {
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{error:?}");
        }
        other => panic!("expected a Closing frame, got {other:?}"),
    }
    tokio::time::timeout(PATIENCE, attacker.conn.closed())
        .await
        .expect("and the connection closes");
    // The same for an agent.
    let mut agent = Raw::open(&hub).await;
    agent.write(&hello(agent_role("alice"), points(300))).await;
    assert!(
        matches!(agent.next_frame().await, Some(ServerFrame::Closing(e)) if e.code == ErrorCode::InvalidRequest)
    );

    let mut at_limit = Raw::open(&hub).await;
    at_limit.say_hello(Role::Customer, points(256)).await;
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F11: returns to one chat take turns.

/// F11: two `ReturnToChat` for the same ended chat in one write both
/// answer `Done`, but only one chat actor comes to life: the chat is live
/// once, the agent gets it back once with its capacity intact, and the
/// transcript has consecutive seqs and no duplicates. Twenty times.
#[tokio::test]
async fn f11_racing_returns_to_one_chat_make_one_live_chat() {
    const ROUNDS: usize = 20;
    let hub = TestHub::start(&config("", "", "end_form = true")).await;
    let alice = hub.present_agent("alice").await;
    for round in 0..ROUNDS {
        let secret = secret("f11", round);
        let mut starter = Raw::customer(&hub).await;
        let chat = starter.start_chat(1, secret.clone()).await;
        starter.conn.close(0u32.into(), b"bye");
        let assigned = alice.get_next("support").await.unwrap();
        assert_eq!(assigned.chat, chat);
        alice.end_chat(chat).await.unwrap();
        eventually(Duration::from_secs(5), "the ended chat stops", async || {
            hub.server.hub().live_chats() == 0
        })
        .await;

        let mut returner = Raw::customer(&hub).await;
        let mut both = request(
            1,
            RequestBody::ReturnToChat {
                chat,
                secret: secret.clone().into(),
            },
        );
        both.extend(request(
            2,
            RequestBody::ReturnToChat {
                chat,
                secret: secret.into(),
            },
        ));
        returner.write(&both).await;
        let mut answered = HashSet::new();
        for _ in 0..2 {
            let answer = returner.response().await;
            assert!(
                matches!(answer.result, Ok(Reply::Done)),
                "round {round}: {answer:?}"
            );
            answered.insert(answer.id);
        }
        assert_eq!(answered, HashSet::from([1, 2]));
        assert_eq!(
            hub.server.hub().live_chats(),
            1,
            "round {round}: one chat, one actor"
        );
        // Alice has it back (her capacity did not leak in earlier rounds).
        agent_event_in(&alice, chat, |kind| {
            matches!(kind, ChatEventKind::Reopened { agent: Some(agent) } if agent.as_str() == "alice")
        })
        .await;
        alice
            .send(chat, "welcome back")
            .await
            .unwrap_or_else(|err| panic!("round {round}: alice holds the chat again: {err}"));
        let posted = returner.ask(3, post_body(chat, 7, "thanks")).await;
        assert!(
            matches!(posted.result, Ok(Reply::Posted { .. })),
            "round {round}: {posted:?}"
        );
        let transcript = alice.transcript(chat).await.unwrap();
        let seqs: Vec<u64> = transcript.iter().map(|event| event.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}: consecutive seqs, no duplicates"
        );
        let reopened = transcript
            .iter()
            .filter(|event| matches!(event.kind, ChatEventKind::Reopened { .. }))
            .count();
        assert_eq!(reopened, 1, "round {round}: reopened once");
        let texts: Vec<&str> = transcript
            .iter()
            .filter_map(|event| match &event.kind {
                ChatEventKind::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            ["let me in", "welcome back", "thanks"],
            "round {round}"
        );
        alice.end_chat(chat).await.unwrap();
        returner.conn.close(0u32.into(), b"bye");
        eventually(
            Duration::from_secs(5),
            "the returned chat stops",
            async || hub.server.hub().live_chats() == 0,
        )
        .await;
    }
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// F10 / F12: what answers tell.

/// F10: an agent of `sales` looking up the contact of a `support`
/// customer sees none of their chats or tickets; an agent of `support`
/// sees them.
#[tokio::test]
async fn f10_contact_cards_show_only_the_agents_channels() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let carol = hub.present_agent("carol").await;
    let victim = hub.customer().await;
    let vera = Customer {
        name: Some("Victim Vera".into()),
        email: Some("Vera@Example.com".into()),
    };
    let (chat, _) = common::start(&victim, "support", vera, "my account number is ...").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
    alice.end_chat(chat).await.unwrap();
    alice.set_status(Status::Absent).await.unwrap();
    victim
        .submit_offline_form(
            "support",
            Some("Victim Vera".into()),
            "vera@example.com",
            "please call me back",
        )
        .await
        .unwrap();

    let seen = alice.contact(Some("vera@example.com"), None).await.unwrap();
    assert_eq!(
        seen.chats.iter().map(|c| c.chat).collect::<Vec<_>>(),
        [chat],
        "support sees the chat"
    );
    assert_eq!(seen.tickets.len(), 1, "support sees the ticket");
    let card = carol.contact(Some("vera@example.com"), None).await.unwrap();
    assert!(
        card.chats.is_empty() && card.tickets.is_empty(),
        "sales sees nothing of support's customer: {card:?}"
    );
    assert_eq!(card.first_contact, None);
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// F8/F12: a customer's requests name only its own chats. A post, a leave
/// or a return with a wrong secret for a chat that exists but is not
/// theirs get the same answer as for a chat that does not exist:
/// `NotYourChat`, word for word but for the id.
#[tokio::test]
async fn answers_do_not_tell_whether_a_chat_exists() {
    let hub = TestHub::start(&config("", "", "end_form = true")).await;
    let alice = hub.present_agent("alice").await;
    let victim = hub.customer().await;
    let (live, _) = common::start(&victim, "support", Customer::default(), "live").await;
    let (ended, _) = common::start(&victim, "support", Customer::default(), "ended").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, live);
    assert_eq!(alice.get_next("support").await.unwrap().chat, ended);
    alice.end_chat(ended).await.unwrap();
    let missing = ChatId(live.0.max(ended.0) + 1_000);

    let mut attacker = Raw::customer(&hub).await;
    let bodies = |chat: ChatId| {
        [
            post_body(chat, 1, "is this yours?"),
            RequestBody::Leave { chat },
            RequestBody::ReturnToChat {
                chat,
                secret: secret("guess", 0).into(),
            },
        ]
    };
    let mut id = 0;
    for exists in [live, ended] {
        for (existing, absent) in bodies(exists).into_iter().zip(bodies(missing)) {
            let mut refusal = async |body: RequestBody, chat: ChatId| {
                id += 1;
                let what = format!("{body:?}");
                let error = attacker
                    .ask(id, body)
                    .await
                    .result
                    .expect_err("a customer acts only on its own chats");
                assert_eq!(error.code, ErrorCode::NotYourChat, "{what}: {error:?}");
                error.message.replace(&chat.to_string(), "#")
            };
            let told = refusal(existing, exists).await;
            let told_missing = refusal(absent, missing).await;
            assert_eq!(told, told_missing, "the words do not tell either");
        }
    }
    // The victim's chat is untouched.
    assert!(victim.send(live, "still mine").await.is_ok());
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

/// The chat events that arrive on `conn`'s streams within `window`.
async fn chat_events_within(conn: &quinn::Connection, window: Duration) -> Vec<ChatEvent> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let accept = async {
        while let Ok(mut stream) = conn.accept_uni().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut frames = FrameBuf::new();
                while let Ok(Some(chunk)) = stream.read_chunk(usize::MAX, true).await {
                    frames.push(&chunk.bytes);
                    while let Ok(Some(frame)) = frames.next_frame::<ServerFrame>() {
                        if let ServerFrame::Event(chathub::protocol::Event::Chat(event)) = frame {
                            let _ = tx.send(event);
                        }
                    }
                }
            });
        }
    };
    let _ = tokio::time::timeout(window, accept).await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

/// F7: an agent resumes a chat by the channel it is in now: once a chat
/// moved to another channel, an agent of the first one cannot read what
/// is said there by listing it in a hello's resume points, just as
/// `Transcript` refuses them.
#[tokio::test]
async fn f7_resume_does_not_show_a_chat_that_moved_to_another_channel() {
    let hub = TestHub::start(&defaults()).await;
    let alice = hub.present_agent("alice").await;
    let carol = hub.present_agent("carol").await;
    let customer = hub.customer().await;
    // A chat that stays in support, which alice may resume...
    let (stays, _) = common::start(&customer, "support", Customer::default(), "a question").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, stays);
    alice.send(stays, "support may read this").await.unwrap();
    alice.end_chat(stays).await.unwrap();
    // ...and one that moves to sales.
    let (moved, _) = common::start(&customer, "support", Customer::default(), "billing").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, moved);
    alice.transfer_to_channel(moved, "sales").await.unwrap();
    assert_eq!(carol.get_next("sales").await.unwrap().chat, moved);
    carol.send(moved, "only sales may read this").await.unwrap();
    let refused = alice.transcript(moved).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotYourChat), "{refused}");

    let mut snoop = Raw::open(&hub).await;
    let resume = [stays, moved]
        .into_iter()
        .map(|chat| Resume {
            chat,
            after: 0,
            secret: None,
        })
        .collect();
    snoop.say_hello(agent_role("alice"), resume).await;
    let seen: Vec<(ChatId, String)> = chat_events_within(&snoop.conn, Duration::from_secs(2))
        .await
        .into_iter()
        .filter_map(|event| match event.kind {
            ChatEventKind::Message { text, .. } => Some((event.chat, text)),
            _ => None,
        })
        .collect();
    assert!(
        seen.contains(&(stays, "support may read this".into())),
        "the chat that stayed in support is resumed: {seen:?}"
    );
    assert!(
        !seen.iter().any(|(chat, _)| *chat == moved),
        "alice read the chat that moved to sales by resuming it: {seen:?}"
    );
    honest_chat_still_works(&hub).await;
    hub.stop().await;
}

// ---------------------------------------------------------------------------
// The hub as a process: memory under a flood.

struct Child {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/<pid>/status`, in KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the hub is running");
        status
            .lines()
            .find_map(|line| {
                line.strip_prefix(field)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {field} in the status"))
    }
}

/// Starts `chathub serve` over a fresh data folder in `dir`; the process
/// and a client configuration once the hub answers.
async fn spawn_hub(dir: &Path) -> (Child, ClientConfig) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = dir.join("data");
    let top = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[metrics]\nenabled = false",
        data.display()
    );
    let path = dir.join("chathub.toml");
    std::fs::write(&path, config(&top, "", "")).unwrap();
    let log = dir.join("hub.log");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chathub"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the hub binary starts");
    let child = Child { child, log };
    let cert = data.join("cert.pem");
    for _ in 0..300 {
        if cert.exists()
            && let Ok(client) = ClientConfig::builder(([127, 0, 0, 1], port).into())
                .trust_pem_file(&cert)
                .and_then(|builder| builder.build())
            && CustomerClient::connect(&client).await.is_ok()
        {
            return (child, client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the hub did not come up: {}",
        std::fs::read_to_string(&child.log).unwrap_or_default()
    );
}

/// What one flooding connection keeps open.
struct Flood {
    _conn: quinn::Connection,
    _streams: Vec<(quinn::SendStream, quinn::RecvStream)>,
    _uni: Vec<Option<quinn::SendStream>>,
    uni_opened: usize,
}

/// One connection: hello, then `streams` bidirectional streams each
/// carrying `bytes` of a frame that announces a megabyte (so the hub
/// cannot decide on it early), never reading; then 16 attempts at
/// unidirectional streams, each filled with 1.25 MB if it opens.
async fn flood_one(
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    streams: usize,
    bytes: usize,
) -> Flood {
    let conn = endpoint
        .connect(addr, "localhost")
        .unwrap()
        .await
        .expect("the hub accepts the connection");
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&hello(Role::Customer, Vec::new()))
        .await
        .unwrap();
    let mut frames = FrameBuf::new();
    let welcome = common::read_until(&mut recv, &mut frames, |_| true).await;
    assert!(matches!(welcome, ServerFrame::Welcome(_)), "{welcome:?}");
    let mut kept = vec![(send, recv)];
    let mut junk = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
    junk.resize(4 + bytes, 0xA5);
    for _ in 0..streams {
        let Ok(Ok((mut send, recv))) =
            tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await
        else {
            break;
        };
        // Taken or held back by flow control: either is fine, as long as
        // the hub does not keep more than it should.
        let _ = tokio::time::timeout(Duration::from_secs(5), send.write_all(&junk)).await;
        kept.push((send, recv));
    }
    let attempts = futures::future::join_all((0..16).map(|_| {
        let conn = conn.clone();
        async move {
            let mut stream = tokio::time::timeout(Duration::from_millis(500), conn.open_uni())
                .await
                .ok()?
                .ok()?;
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                stream.write_all(&vec![0x3C; 1_250_000]),
            )
            .await;
            Some(stream)
        }
    }))
    .await;
    let uni_opened = attempts.iter().filter(|stream| stream.is_some()).count();
    Flood {
        _conn: conn,
        _streams: kept,
        _uni: attempts,
        uni_opened,
    }
}

/// Floods the hub process from 50 connections and answers its resident
/// memory before and at its peak during the flood (KiB).
async fn flood_process(streams: usize, bytes: usize) -> (u64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (child, client) = spawn_hub(dir.path()).await;
    let before = child.status_kib("VmRSS:");
    let addr = client.server();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(client.quic().clone());
    let floods = futures::future::join_all(
        (0..50).map(|_| tokio::spawn(flood_one(endpoint.clone(), addr, streams, bytes))),
    )
    .await;
    let floods: Vec<Flood> = floods.into_iter().map(Result::unwrap).collect();
    let uni_opened = floods.iter().map(|flood| flood.uni_opened).sum();
    // Give the hub a moment with everything in flight, then read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = child.status_kib("VmRSS:");
    let peak = child.status_kib("VmHWM:").max(now);
    // An honest chat still works with the flood still connected.
    honest_chat_with(&client).await;
    drop(floods);
    drop(child);
    (before, peak, uni_opened)
}

/// F9/F1/F13 on the real process: 50 connections each open bidirectional
/// streams and write about a megabyte without reading, and try 16
/// unidirectional streams; the hub grants no unidirectional stream and its
/// resident memory stays under 300 MiB (it grew by ~1 GB before the
/// limits: 50 × 16 × 1.25 MB pinned).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unread_streams_keeps_the_hub_process_small() {
    let (before, peak, uni_opened) = flood_process(4, 256 << 10).await;
    eprintln!(
        "hub RSS before {} MiB, peak {} MiB",
        before >> 10,
        peak >> 10
    );
    assert_eq!(uni_opened, 0, "no unidirectional stream is granted");
    assert!(
        peak < 300 << 10,
        "the hub's resident memory peaked at {} MiB",
        peak >> 10
    );
}

/// The same flood with every bidirectional stream a client may open (15
/// besides the control stream) each announcing a megabyte of a header that
/// never completes: a file stream's header is refused past a few KiB, so
/// the hub holds none of it (it used to read each into its frame buffer
/// and hold it for `file_header_timeout`: ~750 MiB for 50 connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_file_headers_keeps_the_hub_process_small() {
    let (before, peak, uni_opened) = flood_process(15, MAX_FRAME_BYTES - 1).await;
    eprintln!(
        "hub RSS before {} MiB, peak {} MiB",
        before >> 10,
        peak >> 10
    );
    assert_eq!(uni_opened, 0, "no unidirectional stream is granted");
    assert!(
        peak < 300 << 10,
        "the hub's resident memory peaked at {} MiB",
        peak >> 10
    );
}
