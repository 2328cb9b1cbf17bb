//! Webhooks end to end: a hub over real QUIC posts chat lifecycle events to
//! a real HTTP receiver on loopback (a small HTTP/1.1 server here, which
//! can answer errors, drop connections and answer slowly). Every signature
//! is checked with HMAC-SHA256; order is checked per chat over every try;
//! the hub binary is `kill -9`ed mid-delivery and restarted.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chathub::client::{AgentClient, ClientConfig, CustomerClient, Started};
use chathub::config::Config;
use chathub::core::{ChatId, Customer, Status};
use common::{TestHub, free_udp_port, metrics_endpoint, scrape, start};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "webhook-secret-0123456789";

/// How a receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// This status, at once.
    Status(u16),
    /// This status after a wait.
    Slow(Duration, u16),
    /// No answer: the connection is closed.
    Drop,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    kind: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    json: Value,
    /// The status answered; 0 if the connection was dropped.
    answered: u16,
}

impl Received {
    fn chat(&self) -> u64 {
        self.json["chat"].as_u64().expect("a chat id")
    }

    /// Where the event sits in its chat: (seq, rating time or 0).
    fn place(&self) -> (u64, u64) {
        let seq = self.json["seq"].as_u64().expect("a seq");
        let sub = self
            .id
            .rsplit_once("-rated-")
            .map_or(0, |(_, at)| at.parse().expect("a rating time"));
        (seq, sub)
    }
}

/// How to answer request number `n` (from 0) whose body is `json`.
type Plan = Box<dyn FnMut(usize, &Value) -> Answer + Send>;

/// A small HTTP/1.1 server that records every request and answers as its
/// plan says (by the request's number, from 0), always with
/// `Connection: close`.
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(plan: Plan) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/chathub", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let plan = Arc::new(Mutex::new(plan));
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let served = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, plan, counter) = (served.clone(), plan.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, log, plan, counter).await;
                });
            }
        });
        Self { url, log }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what arrived.
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{what}; received: {:#?}", summary(&self.received()));
    }
}

fn summary(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| format!("{} {} -> {}", r.id, r.kind, r.answered))
        .collect()
}

/// Serves one connection: one request, one answer.
async fn serve(
    mut stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<Plan>>,
    counter: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        assert!(buf.len() < 64 << 10, "headers too long");
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    assert!(
        request_line.starts_with("POST /hooks/chathub HTTP/1.1"),
        "{request_line}"
    );
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers["content-length"].parse().expect("a length");
    assert!(length < 4 << 20);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let json: Value = serde_json::from_slice(&body).expect("a JSON body");
    let number = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let answer = (plan.lock().unwrap())(number, &json);
    let status = match answer {
        Answer::Status(status) => status,
        Answer::Slow(wait, status) => {
            tokio::time::sleep(wait).await;
            status
        }
        Answer::Drop => 0,
    };
    assert_eq!(headers["content-type"], "application/json");
    log.lock().unwrap().push(Received {
        id: headers["chathub-event-id"].clone(),
        kind: headers["chathub-event-kind"].clone(),
        timestamp: headers["chathub-timestamp"].clone(),
        signature: headers["chathub-signature"].clone(),
        body,
        json,
        answered: status,
    });
    if status == 0 {
        return Ok(()); // dropped: the connection closes unanswered
    }
    let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

/// Whether `received` carries a valid signature of its timestamp and body.
fn signed(received: &Received, secret: &str) -> bool {
    let Some(hex) = received.signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut message = format!("{}.", received.timestamp).into_bytes();
    message.extend_from_slice(&received.body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

/// Per chat, the tries in arrival order: each at the same place as the one
/// before (a retry or a duplicate) or after it, never before.
fn assert_in_order_per_chat(received: &[Received]) {
    let mut last: HashMap<u64, ((u64, u64), String)> = HashMap::new();
    for r in received {
        let place = r.place();
        if let Some((before, id)) = last.get(&r.chat()) {
            assert!(
                place >= *before,
                "chat {}: {} (at {place:?}) came after {id} (at {before:?}): {:#?}",
                r.chat(),
                r.id,
                summary(received)
            );
        }
        last.insert(r.chat(), (place, r.id.clone()));
    }
}

/// The kinds each chat's accepted (2xx) events arrived as, first arrivals
/// only, in arrival order.
fn accepted_kinds(received: &[Received]) -> BTreeMap<u64, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut kinds: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for r in received.iter().filter(|r| (200..300).contains(&r.answered)) {
        if seen.insert(r.id.clone()) {
            kinds.entry(r.chat()).or_default().push(r.kind.clone());
        }
    }
    kinds
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[webhook]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nretry_initial = \"50ms\"\nretry_max = \"400ms\"\n{extra}\n"
    )
}

const CHANNELS: &str = r#"
[[channel]]
name = "support"
satisfaction = true
[[channel]]
name = "sales"
[[agent]]
id = "alice"
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
"#;

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chats_lifecycle_arrives_signed_in_order_with_the_transcript() {
    let crm = Receiver::start(Box::new(|_, _| Answer::Status(200))).await;
    let ends = Receiver::start(Box::new(|_, _| Answer::Status(204))).await;
    let config = format!(
        "{}{CHANNELS}{}{}",
        roomy_limits!(),
        webhook("crm", &crm.url, ""),
        webhook(
            "ends",
            &ends.url,
            "events = [\"ended\", \"rated\"]\nchannels = [\"support\"]"
        ),
    );
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "hello, my order is late").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
    customer.send(chat, "order 4711").await.unwrap();
    alice.send(chat, "let me pass you to bob").await.unwrap();
    alice
        .add_note(chat, "private: asked for a refund twice")
        .await
        .unwrap();
    alice.transfer_to_agent(chat, "bob").await.unwrap();
    let ticket = bob
        .create_ticket(chat, "late order 4711", "customer waits")
        .await
        .unwrap();
    bob.end_chat(chat).await.unwrap();
    customer
        .rate(chat, 5, Some("quick and kind".into()))
        .await
        .unwrap();
    // A chat on a channel the second webhook does not want.
    let carol = hub.present_agent("carol").await;
    let (other, _) = start(&customer, "sales", ada(), "a question").await;
    assert_eq!(carol.get_next("sales").await.unwrap().chat, other);
    carol.end_chat(other).await.unwrap();

    let want = [
        "started",
        "answered",
        "transferred",
        "ticket_created",
        "ended",
        "rated",
    ];
    let received = crm
        .until("the whole lifecycle reaches the CRM", |r| {
            accepted_kinds(r).get(&chat.0).map(Vec::len) == Some(want.len())
                && accepted_kinds(r).get(&other.0).map(Vec::len) == Some(3)
        })
        .await;
    assert_eq!(accepted_kinds(&received)[&chat.0], want);
    assert_eq!(
        accepted_kinds(&received)[&other.0],
        ["started", "answered", "ended"]
    );
    assert_in_order_per_chat(&received);
    for r in &received {
        assert!(signed(r, SECRET), "{} is signed with the secret", r.id);
        assert!(!signed(r, "another-secret-0123456789"));
        assert_eq!(r.json["id"], r.id.as_str(), "the header and body agree");
        assert_eq!(r.json["kind"], r.kind.as_str());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(ts <= now && ts + 60 > now, "a fresh timestamp");
    }
    let of = |kind: &str| {
        received
            .iter()
            .find(|r| r.chat() == chat.0 && r.kind == kind)
            .unwrap()
            .json
            .clone()
    };
    assert_eq!(of("started")["channel"], "support");
    assert_eq!(
        of("started")["data"]["customer"]["email"],
        "ada@example.com"
    );
    assert_eq!(of("answered")["data"]["agent"], "alice");
    assert_eq!(of("transferred")["data"]["to_agent"], "bob");
    assert_eq!(of("ticket_created")["data"]["ticket"], ticket.0);
    assert_eq!(of("rated")["data"]["rating"], 5);
    assert_eq!(of("rated")["data"]["comment"], "quick and kind");
    let ended = of("ended");
    assert_eq!(ended["data"]["by"]["agent"], "bob");
    let texts: Vec<&str> = ended["transcript"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert!(texts.contains(&"order 4711"), "{texts:?}");
    assert!(texts.contains(&"let me pass you to bob"), "{texts:?}");
    assert_eq!(ended["transcript"]["omitted"], 0);
    assert_eq!(ended["transcript"]["events"][0]["type"], "started");
    // Private notes stay with the chat, as with tickets.
    for r in &received {
        assert!(
            !r.json.to_string().contains("asked for a refund twice"),
            "a note reached the CRM: {}",
            r.json
        );
    }

    // The filtered webhook: only ends and ratings of support.
    let ends_got = ends
        .until("the end and the rating reach the second webhook", |r| {
            accepted_kinds(r).get(&chat.0).map(Vec::len) == Some(2)
        })
        .await;
    assert_eq!(accepted_kinds(&ends_got)[&chat.0], ["ended", "rated"]);
    // Skipped rows go without a post; give the sales chat's a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        ends.received().iter().all(|r| r.chat() == chat.0),
        "{:?}",
        summary(&ends.received())
    );
    hub.stop().await;
}

static METRICS: OnceLock<std::net::SocketAddr> = OnceLock::new();

fn metrics() -> std::net::SocketAddr {
    *METRICS.get_or_init(metrics_endpoint)
}

/// The value of the series of `name` whose labels include each of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_everything_in_order_after_retries() {
    let metrics = metrics();
    // The first three tries answer 500, the fourth loses its connection,
    // and every seventh after that answers 503.
    let crm = Receiver::start(Box::new(|n, _| match n {
        0..=2 => Answer::Status(500),
        3 => Answer::Drop,
        n if n % 7 == 0 => Answer::Status(503),
        _ => Answer::Status(200),
    }))
    .await;
    let config = format!(
        "{}{CHANNELS}{}",
        roomy_limits!(),
        webhook("flaky", &crm.url, "concurrency = 4\ntimeout = \"2s\"")
    );
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let mut chats = Vec::new();
    for n in 0..6 {
        let (chat, _) = start(&customer, "support", ada(), &format!("hello {n}")).await;
        chats.push(chat);
    }
    for &chat in &chats {
        assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
        alice.send(chat, "hi").await.unwrap();
        alice.end_chat(chat).await.unwrap();
    }
    let received = crm
        .until("every chat's start, answer and end are accepted", |r| {
            let kinds = accepted_kinds(r);
            chats
                .iter()
                .all(|chat| kinds.get(&chat.0).map(Vec::len) == Some(3))
        })
        .await;
    for chat in &chats {
        assert_eq!(
            accepted_kinds(&received)[&chat.0],
            ["started", "answered", "ended"]
        );
    }
    assert_in_order_per_chat(&received);
    assert!(received.iter().all(|r| signed(r, SECRET)));
    // A retried event is the same event: same id, same body.
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for r in &received {
        let first = bodies.entry(r.id.as_str()).or_insert(&r.body);
        assert_eq!(*first, r.body.as_slice(), "{} changed between tries", r.id);
    }

    let failed_status = received.iter().filter(|r| r.answered >= 500).count() as f64;
    let delivered = received.iter().filter(|r| r.answered == 200).count() as f64;
    let text = scrape(metrics).await;
    let webhook = "webhook=\"flaky\"";
    // The last 2xx may be counted a moment after the receiver logged it.
    let mut counted = sample(
        &text,
        "chathub_webhook_deliveries_total",
        &[webhook, "outcome=\"delivered\""],
    );
    for _ in 0..40 {
        if counted >= delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        counted = sample(
            &scrape(metrics).await,
            "chathub_webhook_deliveries_total",
            &[webhook, "outcome=\"delivered\""],
        );
    }
    let text = scrape(metrics).await;
    assert_eq!(counted, delivered, "{text}");
    assert_eq!(
        sample(
            &text,
            "chathub_webhook_deliveries_total",
            &[webhook, "outcome=\"status\""]
        ),
        failed_status,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "chathub_webhook_deliveries_total",
            &[webhook, "outcome=\"error\""]
        ) >= 1.0,
        "the dropped connection is an error: {text}"
    );
    assert!(
        sample(&text, "chathub_webhook_lag_seconds_count", &[webhook]) >= 18.0,
        "{text}"
    );
    // The gauge follows the outbox as the delivery task reads it.
    let mut text = text;
    for _ in 0..120 {
        if sample(&text, "chathub_webhook_outbox", &[webhook]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        text = scrape(metrics).await;
    }
    assert_eq!(
        sample(&text, "chathub_webhook_outbox", &[webhook]),
        0.0,
        "nothing left: {text}"
    );
    hub.stop().await;
}

/// The hub binary over `config`, logging into `log`.
fn spawn_hub(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_chathub"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the hub binary starts")
}

async fn connect(port: u16, cert: &Path, log: &Path) -> ClientConfig {
    for _ in 0..300 {
        if cert.exists()
            && let Ok(built) = ClientConfig::builder(([127, 0, 0, 1], port).into())
                .trust_pem_file(cert)
                .and_then(|builder| builder.build())
            && CustomerClient::connect(&built).await.is_ok()
        {
            return built;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the hub did not come up: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_loses_nothing_and_keeps_each_chats_order() {
    // A slow receiver that also fails now and then: the hub is killed with
    // posts in flight, rows waiting for a retry, and rows not yet tried.
    let crm = Receiver::start(Box::new(|n, _| {
        if n % 5 == 1 {
            Answer::Status(500)
        } else {
            Answer::Slow(Duration::from_millis(60), 200)
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}[metrics]\nenabled = false\n[[channel]]\nname = \"support\"\noffline_form = false\n[[agent]]\nid = \"alice\"\ntoken = \"test-token-0123456789\"\ncapacity = 100\n{}",
        dir.path().join("data").display(),
        roomy_limits!(),
        webhook("crm", &crm.url, "concurrency = 2"),
    );
    let config_path = dir.path().join("chathub.toml");
    std::fs::write(&config_path, &config).unwrap();
    let log = dir.path().join("hub.log");
    let cert = dir.path().join("data").join("cert.pem");
    let mut child = spawn_hub(&config_path, &log);
    let client = connect(port, &cert, &log).await;
    let alice = AgentClient::connect(&client, "alice", "test-token-0123456789")
        .await
        .unwrap();
    alice.set_status(Status::Present).await.unwrap();
    let customer = CustomerClient::connect(&client).await.unwrap();
    let mut chats: Vec<ChatId> = Vec::new();
    for n in 0..12 {
        let Started::Queued { chat, .. } = customer
            .start_chat("support", ada(), format!("hello {n}"))
            .await
            .unwrap()
        else {
            panic!("queued")
        };
        chats.push(chat);
    }
    for &chat in &chats {
        assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
        alice.end_chat(chat).await.unwrap();
    }
    // Every start, answer and end above was acknowledged. Kill the hub once
    // deliveries are under way, far from done.
    crm.until("deliveries start", |r| r.len() >= 6).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let before = crm.received().len();
    assert!(before < 36, "the kill came mid-delivery ({before} tries)");
    drop((alice, customer));

    let mut child = spawn_hub(&config_path, &log);
    let _client = connect(port, &cert, &log).await;
    let received = crm
        .until(
            "every acknowledged event is accepted after the restart",
            |r| {
                let kinds = accepted_kinds(r);
                chats
                    .iter()
                    .all(|chat| kinds.get(&chat.0).map(Vec::len) == Some(3))
            },
        )
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    for chat in &chats {
        assert_eq!(
            accepted_kinds(&received)[&chat.0],
            ["started", "answered", "ended"],
            "chat {chat}"
        );
    }
    assert_in_order_per_chat(&received);
    // A duplicate is the same event: same id, same body.
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for r in &received {
        assert!(signed(r, SECRET));
        let first = bodies.entry(r.id.as_str()).or_insert(&r.body);
        assert_eq!(*first, r.body.as_slice(), "{} changed", r.id);
    }
}

#[test]
fn a_bad_webhook_is_refused_with_a_clear_error() {
    let refused = |table: &str| {
        let text = format!("[[channel]]\nname = \"support\"\n{table}");
        Config::from_toml(&text)
            .expect_err("the webhook is refused")
            .to_string()
    };
    let secret = format!("secret = \"{SECRET}\"");
    let err = refused(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"ftp://crm.example.com/in\"\n{secret}"
    ));
    assert!(
        err.contains("webhook \"crm\"") && err.contains("http:// or https://"),
        "{err}"
    );
    let err = refused(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"not a url\"\n{secret}"
    ));
    assert!(err.contains("is not a URL"), "{err}");
    let err = refused("[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"");
    assert!(err.contains("a secret (or secret_file) is needed"), "{err}");
    let err = refused(
        "[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"\nsecret = \"short\"",
    );
    assert!(err.contains("at least 16 bytes"), "{err}");
    let err = refused(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"\n{secret}\nevents = [\"ended\", \"messaged\"]"
    ));
    assert!(err.contains("unknown event \"messaged\""), "{err}");
    let err = refused(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"\n{secret}\nchannels = [\"sales\"]"
    ));
    assert!(err.contains("unknown channel \"sales\""), "{err}");
    let err = refused(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"\n{secret}\nevents = []"
    ));
    assert!(err.contains("at least one"), "{err}");

    // `chathub check-config` says the same, and fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chathub.toml");
    std::fs::write(
        &path,
        format!("[[webhook]]\nname = \"crm\"\nurl = \"ftp://crm.example.com/in\"\n{secret}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chathub"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("http:// or https://"), "{said}");

    // A good one passes, with the secret from a file, and never shows it.
    let secret_file = dir.path().join("crm.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let config = Config::from_toml(&format!(
        "[[webhook]]\nname = \"crm\"\nurl = \"https://crm.example.com/in\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    ))
    .unwrap();
    let settings = config.webhook_settings().unwrap();
    assert_eq!(settings[0].secret, SECRET.as_bytes());
    assert!(!format!("{config:?}{settings:?}").contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_change_only_at_a_restart() {
    let crm = Receiver::start(Box::new(|_, _| Answer::Status(200))).await;
    let other = Receiver::start(Box::new(|_, _| Answer::Status(200))).await;
    let text = |url: &str| format!("{}{CHANNELS}{}", roomy_limits!(), webhook("crm", url, ""));
    let hub = TestHub::start(&text(&crm.url)).await;
    let reloaded = hub
        .server
        .reload(&hub.config(&text(&other.url)))
        .await
        .unwrap();
    assert_eq!(reloaded.needs_restart, ["webhook"]);
    // The running webhook stays.
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "hello").await;
    crm.until("the start reaches the running webhook", |r| {
        accepted_kinds(r).contains_key(&chat.0)
    })
    .await;
    assert!(other.received().is_empty());
    // After a restart, the new URL gets what follows.
    drop(alice);
    let hub = hub.restart(&text(&other.url)).await;
    let alice = hub.present_agent("alice").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
    other
        .until("the answer reaches the new URL", |r| {
            accepted_kinds(r)
                .get(&chat.0)
                .is_some_and(|k| k.contains(&"answered".to_owned()))
        })
        .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_the_receiver_keeps_refusing_holds_up_only_itself() {
    // Every event of chat 1 is refused; the others are accepted.
    let crm = Receiver::start(Box::new(|_, json| {
        if json["chat"] == 1 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    }))
    .await;
    let config = format!(
        "{}{CHANNELS}{}",
        roomy_limits!(),
        webhook("crm", &crm.url, "concurrency = 2")
    );
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let mut chats = Vec::new();
    for n in 0..5 {
        let (chat, _) = start(&customer, "support", ada(), &format!("hello {n}")).await;
        chats.push(chat);
    }
    assert_eq!(chats[0], ChatId(1));
    for &chat in &chats {
        assert_eq!(alice.get_next("support").await.unwrap().chat, chat);
        alice.end_chat(chat).await.unwrap();
    }
    let received = crm
        .until("every other chat's events are accepted", |r| {
            let kinds = accepted_kinds(r);
            chats[1..]
                .iter()
                .all(|chat| kinds.get(&chat.0).map(Vec::len) == Some(3))
        })
        .await;
    // Chat 1 was tried again and again, and only its first event: the
    // rest wait behind it.
    let refused: Vec<&Received> = received.iter().filter(|r| r.chat() == 1).collect();
    assert!(refused.len() >= 2, "{:?}", summary(&received));
    assert!(
        refused.iter().all(|r| r.id == "1-1"),
        "{:?}",
        summary(&received)
    );
    assert_in_order_per_chat(&received);
    hub.stop().await;
}
