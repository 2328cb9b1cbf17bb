//! A hub on a loopback port with a temporary data folder, and helpers to
//! drive it through the SDK.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use chathub::client::{AgentClient, ClientConfig, CustomerClient, Event, Started};
use chathub::config::Config;
use chathub::core::{AgentId, ChatEvent, ChatId, Customer, QueueUpdate, Status};
use chathub::protocol::{FrameBuf, ServerFrame};
use chathub::server::Server;

pub(crate) mod nats;
pub(crate) mod process;

/// A `[limits]` table for tests that drive many chats from one connection
/// and post in bursts (their subject is not the limits).
#[macro_export]
macro_rules! roomy_limits {
    () => {
        "[limits]\nchats_per_connection = 10000\nchats_per_ip = 100000\nchat_starts_per_minute = 1000000\nmessages_per_sec = 100000.0\nmessage_burst = 100000\n"
    };
}

/// Every agent in [`CONFIG`] signs in with this token.
pub(crate) const TOKEN: &str = "test-token-0123456789";

/// Two channels; alice and bob work support, carol works sales. The tests
/// that use it drive many chats from one connection and post in bursts, so
/// its limits leave room for that; `tests/hostile.rs` holds the hub to the
/// default limits.
pub(crate) const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
welcome = "Welcome to support!"
[[channel]]
name = "sales"
[[agent]]
id = "alice"
name = "Alice"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "carol"
token = "test-token-0123456789"
channels = ["sales"]
"#
);

/// How long a test waits for an event before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) struct TestHub {
    pub server: Server,
    pub client: ClientConfig,
    _data: tempfile::TempDir,
}

impl TestHub {
    /// A hub with `config` (TOML) listening on `127.0.0.1:0`.
    pub(crate) async fn start(config: &str) -> Self {
        Self::start_in(
            config,
            tempfile::tempdir().expect("a temporary data folder"),
        )
        .await
    }

    /// A hub over an existing data folder (to restart one).
    pub(crate) async fn start_in(config: &str, data: tempfile::TempDir) -> Self {
        Self::start_with(test_config(config, data.path()), data).await
    }

    /// Stops the hub and starts it again with `config` over the same data
    /// folder and on the same address, with the same certificate: the SDK's
    /// clients reconnect to it and resume.
    pub(crate) async fn restart(self, config: &str) -> Self {
        let addr = self.server.local_addr();
        let data = self.stop_keeping_data().await;
        // The stopped hub's socket stays open until the last task holding
        // one of its connections has ended, which may be a moment after
        // the stop returns: wait for the address to be free.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while std::net::UdpSocket::bind(addr).is_err() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut config = test_config(config, data.path());
        config.listen = addr;
        Self::start_with(config, data).await
    }

    async fn start_with(config: Config, data: tempfile::TempDir) -> Self {
        let server = Server::start(&config).await.expect("the hub starts");
        let client = ClientConfig::builder(server.local_addr())
            .trust_pem_file(server.cert_path())
            .expect("the generated certificate is readable")
            .build()
            .expect("a usable client configuration");
        Self {
            server,
            client,
            _data: data,
        }
    }

    /// The hub's data folder.
    pub(crate) fn data_dir(&self) -> &Path {
        self._data.path()
    }

    /// `text` (TOML) as a configuration of this hub: with the address, data
    /// folder and metrics [`TestHub::start_in`] gave it, so a reload of it
    /// changes only what `text` changes.
    pub(crate) fn config(&self, text: &str) -> Config {
        test_config(text, self._data.path())
    }

    pub(crate) async fn customer(&self) -> CustomerClient {
        CustomerClient::connect(&self.client)
            .await
            .expect("a customer connects")
    }

    pub(crate) async fn agent(&self, id: impl Into<AgentId>) -> AgentClient {
        AgentClient::connect(&self.client, id, TOKEN)
            .await
            .expect("an agent signs in")
    }

    /// An agent signed in and Present.
    pub(crate) async fn present_agent(&self, id: impl Into<AgentId>) -> AgentClient {
        let agent = self.agent(id).await;
        agent
            .set_status(Status::Present)
            .await
            .expect("the agent becomes Present");
        agent
    }

    /// A QUIC connection of our own to the hub and its control stream, for
    /// tests that speak the protocol frame by frame. Keep the endpoint
    /// alive as long as the connection.
    pub(crate) async fn raw_connection(
        &self,
    ) -> (
        quinn::Endpoint,
        quinn::Connection,
        quinn::SendStream,
        quinn::RecvStream,
    ) {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(self.client.quic().clone());
        let conn = endpoint
            .connect(self.server.local_addr(), "localhost")
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        (endpoint, conn, send, recv)
    }

    pub(crate) async fn stop(self) {
        self.server.shutdown().await;
    }

    /// Stops the hub and hands back its data folder.
    pub(crate) async fn stop_keeping_data(self) -> tempfile::TempDir {
        self.server.shutdown().await;
        self._data
    }
}

/// `text` (TOML) on `127.0.0.1:0` over `data_dir`, without metrics.
fn test_config(text: &str, data_dir: &Path) -> Config {
    let mut config = Config::from_toml(text).expect("a valid test configuration");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = data_dir.to_owned();
    config.metrics.enabled = false;
    config
}

/// The next event, or a test failure after [`PATIENCE`].
async fn next(events: impl Future<Output = Option<Event>>) -> Event {
    tokio::time::timeout(PATIENCE, events)
        .await
        .expect("an event within the test's patience")
        .expect("the connection is open")
}

/// Reads frames off a stream until `want` returns true for one.
pub(crate) async fn read_until(
    recv: &mut quinn::RecvStream,
    frames: &mut FrameBuf,
    mut want: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    tokio::time::timeout(PATIENCE, async {
        loop {
            while let Some(frame) = frames.next_frame::<ServerFrame>().unwrap() {
                if want(&frame) {
                    return frame;
                }
            }
            let chunk = recv
                .read_chunk(usize::MAX, true)
                .await
                .unwrap()
                .expect("the stream is open");
            frames.push(&chunk.bytes);
        }
    })
    .await
    .expect("the frame within the test's patience")
}

/// The next stream the hub opens on `conn`, and its first frame.
pub(crate) async fn next_stream(
    conn: &quinn::Connection,
) -> (quinn::RecvStream, FrameBuf, ServerFrame) {
    let mut stream = tokio::time::timeout(PATIENCE, conn.accept_uni())
        .await
        .expect("a stream within the test's patience")
        .expect("the connection is open");
    let mut frames = FrameBuf::new();
    let first = read_until(&mut stream, &mut frames, |_| true).await;
    (stream, frames, first)
}

/// The next chat event a customer receives, skipping other events.
pub(crate) async fn customer_chat_event(client: &CustomerClient) -> ChatEvent {
    loop {
        if let Event::Chat(event) = next(client.next_event()).await {
            return event;
        }
    }
}

/// The next chat event an agent receives, skipping queue updates.
pub(crate) async fn agent_chat_event(client: &AgentClient) -> ChatEvent {
    loop {
        if let Event::Chat(event) = next(client.next_event()).await {
            return event;
        }
    }
}

/// The next queue update an agent receives, skipping chat events.
pub(crate) async fn queue_update(client: &AgentClient) -> QueueUpdate {
    loop {
        if let Event::Queue(update) = next(client.next_event()).await {
            return update;
        }
    }
}

/// Starts a chat that must be queued: the chat and how many wait.
pub(crate) async fn start(
    customer: &CustomerClient,
    channel: &str,
    who: Customer,
    text: &str,
) -> (ChatId, u32) {
    match customer
        .start_chat(channel, who, text)
        .await
        .expect("the chat starts")
    {
        Started::Queued { chat, waiting } => (chat, waiting),
        Started::Offline(form) => panic!("expected a queue place, got the offline form {form:?}"),
    }
}

/// Installs the process's Prometheus exporter on a free loopback port and
/// returns its address (once per test process: the recorder is global).
pub(crate) fn metrics_endpoint() -> std::net::SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    chathub::server::metrics::install(addr).expect("the exporter starts");
    addr
}

/// `GET /metrics` over plain HTTP/1.1.
pub(crate) async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the metrics endpoint");
    let ask = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(ask.as_bytes()).await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of the sample named exactly `series` (name and labels).
pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .and_then(|(_, number)| number.parse().ok())
}

/// A UDP port free on loopback now, for a hub started as its own process.
pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Checks a chat's transcript against what its senders were told: seqs
/// run 1..n, no message is stored twice, and every acknowledged message
/// (`acks`: text and seq) is there at its seq. Answers the messages (but
/// the hub's own), text and seq, in transcript order.
pub(crate) fn check_transcript(
    chat: ChatId,
    transcript: &[ChatEvent],
    acks: &[(String, u64)],
) -> Vec<(String, u64)> {
    let seqs: Vec<u64> = transcript.iter().map(|event| event.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{chat}: seqs 1..n"
    );
    let texts: Vec<(String, u64)> = transcript
        .iter()
        .filter_map(|event| match &event.kind {
            chathub::core::ChatEventKind::Message { text, from, .. }
                if *from != chathub::core::Party::System =>
            {
                Some((text.clone(), event.seq))
            }
            _ => None,
        })
        .collect();
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (text, _) in &texts {
        *counts.entry(text.as_str()).or_default() += 1;
    }
    assert!(
        counts.values().all(|&count| count == 1),
        "{chat}: a message stored twice"
    );
    for (text, seq) in acks {
        assert_eq!(
            texts
                .iter()
                .find(|(stored, _)| stored == text)
                .map(|(_, at)| *at),
            Some(*seq),
            "{chat}: acknowledged {text:?} at seq {seq} is not there"
        );
    }
    texts
}

/// What senders were told: (text, acknowledged seq) per chat, in send
/// order.
pub(crate) type Acks =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ChatId, Vec<(String, u64)>>>>;

/// Seqs an application received per chat, in arrival order.
pub(crate) type Seen =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ChatId, Vec<u64>>>>;

/// Keeps a chat event's seq in `seen`.
pub(crate) fn record(event: &Event, seen: &Seen) {
    if let Event::Chat(event) = event {
        seen.lock()
            .unwrap()
            .entry(event.chat)
            .or_default()
            .push(event.seq);
    }
}

/// The next event within 50 ms, if any.
pub(crate) async fn drain(next: impl Future<Output = Option<Event>>) -> Option<Event> {
    tokio::time::timeout(Duration::from_millis(50), next)
        .await
        .ok()
        .flatten()
}

/// Sends (as `send` does, waiting up to `patience`) and keeps the
/// acknowledgement of `text` in `chat`, if there is one.
pub(crate) async fn keep_ack(
    acks: &Acks,
    chat: ChatId,
    text: String,
    patience: Duration,
    send: impl Future<Output = Result<u64, chathub::client::ClientError>>,
) {
    if let Ok(Ok(seq)) = tokio::time::timeout(patience, send).await {
        acks.lock()
            .unwrap()
            .entry(chat)
            .or_default()
            .push((text, seq));
    }
}

/// Checks that `who` saw every chat's events without a gap or a
/// duplicate.
pub(crate) fn check_seen(who: &str, seen: &Seen) {
    for (chat, seqs) in seen.lock().unwrap().iter() {
        let first = seqs[0];
        let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
        assert_eq!(
            seqs, &expected,
            "{who} saw {chat} with a gap or a duplicate"
        );
    }
}
