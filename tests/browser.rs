//! The browser SDK's node tests, then a customer in a real headless
//! Chromium (Debian's, driven by puppeteer-core through
//! `web/test/driver.mjs`) chats over WebTransport with an agent on the
//! native SDK, both ways (messages and typing datagrams), and resumes
//! after a hub restart and after the page is loaded again, with no gap
//! and no duplicate.
//!
//! The agent console, served by the hub at `/console`, holds chats with
//! the widget end to end (quick replies, files' lines, transfer, ticket,
//! end and the end form's return to chat, recent sessions, the contact
//! panel), across a hub restart with no gap and no duplicate on either
//! page; its alert popup shows only while the agent is Present; on a push
//! channel it shows an offer with its countdown, accepts it by the
//! keyboard into a chat that goes both ways, and drops an offer declined
//! or withdrawn.
//!
//! It needs node, Chromium and `web/node_modules` (`.ci/setup` installs
//! them). Without them it passes with a note, unless
//! `CHATHUB_BROWSER_TESTS=1`, which makes a missing tool a failure (CI sets
//! it).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chathub::core::{ChatEventKind, Party};
use chathub::protocol::Event;
use common::{PATIENCE, TestHub};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// What is missing to run the test, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium}"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node".into());
    }
    if !web_dir().join("node_modules/puppeteer-core").exists() {
        return Some("no web/node_modules (npm ci in web/)".into());
    }
    None
}

/// Whether to run; panics when the tools are missing but required.
fn should_run() -> bool {
    let required = std::env::var("CHATHUB_BROWSER_TESTS").is_ok_and(|v| v == "1");
    match missing() {
        None => true,
        Some(what) if required => {
            panic!("CHATHUB_BROWSER_TESTS=1 but {what}: run .ci/setup")
        }
        Some(what) => {
            eprintln!(
                "browser test not run: {what} (CHATHUB_BROWSER_TESTS=1 makes this a failure)"
            );
            false
        }
    }
}

/// Builds the SDK into `web/dist` with the pinned TypeScript, once per
/// test process: tests running side by side would write the same files
/// while another's hub reads them.
fn build_sdk() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(build_sdk_now);
}

fn build_sdk_now() {
    let status = Command::new("node")
        .arg("node_modules/typescript/bin/tsc")
        .args(["-p", "tsconfig.json"])
        .current_dir(web_dir())
        .status()
        .expect("node runs");
    assert!(status.success(), "the SDK builds");
}

/// The node process that drives the page.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Driver {
    /// A driver of the SDK's test page, served at
    /// `http://127.0.0.1:<page_port>` (its origin, for the hub to allow).
    fn start(page_port: u16) -> Self {
        Self::launch(None, Some(page_port))
    }

    /// A driver of the page at `url` (one holding the chat widget, or the
    /// console).
    fn start_at(url: Option<&str>) -> Self {
        Self::launch(url, None)
    }

    fn launch(url: Option<&str>, page_port: Option<u16>) -> Self {
        let mut command = Command::new("node");
        command.arg("test/driver.mjs").args(url);
        if let Some(port) = page_port {
            command.env("CHATHUB_PAGE_PORT", port.to_string());
        }
        let mut child = command
            .current_dir(web_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the driver starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut driver = Self {
            child,
            stdin,
            lines,
        };
        assert_eq!(driver.answer(Duration::from_secs(60)), json!("ready"));
        driver
    }

    fn answer(&mut self, patience: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(patience)
            .expect("the driver answers in time");
        let answer: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(answer["ok"], json!(true), "the page: {answer}");
        answer["value"].clone()
    }

    /// Calls `window.harness[name](...args)` in the page.
    fn call(&mut self, name: &str, args: Value) -> Value {
        let line = json!({ "fn": name, "args": args }).to_string();
        writeln!(self.stdin, "{line}").expect("the driver reads");
        tokio::task::block_in_place(|| self.answer(PATIENCE * 3))
    }

    /// The page's chat events once `want` holds for them.
    /// Waits until the widget's element at `selector` says `want`.
    async fn widget_says(&mut self, selector: &str, want: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let text = self.call("text", json!([selector]));
            let text = text.as_str().unwrap_or_default().to_owned();
            if text.contains(want) {
                return text;
            }
            if tokio::time::Instant::now() >= deadline {
                let shown = self.call("texts", json!(["section:not([hidden])"]));
                panic!("the page's {selector} says {text:?}, not {want:?}; it shows {shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element at `selector` is hidden (or shown).
    async fn until_hidden(&mut self, selector: &str, hidden: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            if self.call("hidden", json!([selector])) == json!(hidden) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{selector} is still {}",
                if hidden { "shown" } else { "hidden" }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of every element at `selector`.
    fn texts(&mut self, selector: &str) -> Vec<String> {
        let texts = self.call("texts", json!([selector]));
        serde_json::from_value(texts).expect("a list of texts")
    }

    async fn events_until(&mut self, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            let events = self.call("events", json!([]));
            let events = events.as_array().expect("a list").clone();
            if want(&events) {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page's events: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|event| event["kind"]["type"] == "Message")
        .map(|event| {
            event["kind"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Each seq once, in order, from 1 without a gap.
fn assert_whole(events: &[Value]) {
    let seqs: Vec<u64> = events
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate: {events:#?}");
}

/// Waits for `customer` to get an agent's message `text`; answers the
/// agent who sent it.
async fn customer_hears(
    customer: &chathub::client::CustomerClient,
    text: &str,
) -> chathub::core::AgentId {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Event::Chat(event)) = customer.next_event().await
                && let ChatEventKind::Message {
                    from: Party::Agent(agent),
                    text: said,
                    ..
                } = event.kind
                && said == text
            {
                return agent;
            }
        }
    })
    .await
    .expect("the customer hears the console")
}

async fn agent_hears(agent: &chathub::client::AgentClient, text: &str) {
    let heard = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Event::Chat(event)) = agent.next_event().await
                && let ChatEventKind::Message {
                    from: Party::Customer,
                    text: said,
                    ..
                } = event.kind
                && said == text
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the agent hears {text:?}");
}

/// The SDK's own tests under node: its codec against
/// `tests/golden/formats.txt`, chat order and resume points, and decoders
/// against cut and mutated bytes. (Run from the browser test, after the
/// one build of `web/dist` both use: two builds at once would write the
/// same files.)
fn node_tests() {
    let status = Command::new("node")
        .args([
            "--test",
            "test/golden.test.mjs",
            "test/client.test.mjs",
            "test/console.test.mjs",
            "test/offers.test.mjs",
        ])
        .current_dir(web_dir())
        .status()
        .expect("node runs");
    assert!(status.success(), "web/test passes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_customer_chats_with_a_native_agent_across_a_restart_and_a_reload() {
    if !should_run() {
        return;
    }
    build_sdk();
    node_tests();
    let metrics = common::metrics_endpoint();
    let (port, page_port) = (common::free_udp_port(), free_tcp_port());
    let with_origins = |origins: &str| {
        format!(
            "{}\n[webtransport]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
             allowed_origins = [{origins}]\n",
            common::CONFIG
        )
    };
    let hub = TestHub::start(&with_origins("\"https://shop.example\"")).await;
    let agent = hub.present_agent("alice").await;
    let url = format!("https://127.0.0.1:{port}/chathub");
    let hash = hub
        .server
        .webtransport_cert_hash()
        .expect("WebTransport is on");

    // The test page's origin is not allowed: Chromium's session is refused
    // at the handshake. Once a reload lists it, the same page connects.
    let mut page = Driver::start(page_port);
    let refused = page.call("refusedConnect", json!([url, hash]));
    assert_eq!(refused["name"], json!("ConnectionError"), "{refused}");
    let refusals = common::value(
        &common::scrape(metrics).await,
        "chathub_webtransport_origin_refusals_total",
    );
    assert_eq!(refusals, Some(1.0), "Chromium sent its page's origin");
    let config = with_origins(&format!(
        "\"https://shop.example\", \"http://127.0.0.1:{page_port}\""
    ));
    let reloaded = hub.server.reload(&hub.config(&config)).await.unwrap();
    assert_eq!(reloaded.applied, ["webtransport.allowed_origins"]);
    page.call("connect", json!([url, hash]));
    let started = page.call("start", json!(["support", "Ada", "Hello from Chromium"]));
    assert_eq!(started["type"], json!("Queued"), "{started}");
    let chat = started["chat"].as_u64().expect("a chat id");

    let assignment = agent.get_next("support").await.unwrap();
    assert_eq!(assignment.chat.0, chat);
    assert_eq!(assignment.first_message, "Hello from Chromium");
    agent
        .send(assignment.chat, "Hello from the agent")
        .await
        .unwrap();
    page.events_until(|events| texts(events).contains(&"Hello from the agent".to_owned()))
        .await;

    page.call("send", json!([chat, "Thanks, from the page"]));
    agent_hears(&agent, "Thanks, from the page").await;

    // The page says the customer is typing: a datagram to the agent.
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            page.call("typing", json!([chat]));
            match tokio::time::timeout(Duration::from_millis(300), agent.next_event()).await {
                Ok(Some(Event::Typing {
                    chat: typing,
                    from: Party::Customer,
                })) if typing == assignment.chat => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the agent sees the page's customer typing");
    let mut tries = 0;
    loop {
        agent.typing(assignment.chat).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = page.call("typingSeen", json!([]));
        if seen.as_array().is_some_and(|from| !from.is_empty()) {
            assert_eq!(seen[0], json!({ "type": "Agent", "agent": "alice" }));
            break;
        }
        tries += 1;
        assert!(tries < 50, "the page sees the agent typing");
    }

    // Someone else's chat is refused with a typed error.
    let refused = page.call("refused", json!([chat + 1000]));
    assert_eq!(
        refused,
        json!({ "name": "HubError", "code": "NotYourChat" })
    );

    // The hub restarts; the agent writes while the page is away, and
    // again once it is back: the page resumes after its last event.
    let hub = hub.restart(&config).await;
    assert_eq!(
        hub.server.webtransport_cert_hash().as_deref(),
        Some(hash.as_str()),
        "a certificate not due is kept across a restart"
    );
    agent
        .send(assignment.chat, "Sent while you were away")
        .await
        .unwrap();
    let events = page
        .events_until(|events| texts(events).contains(&"Sent while you were away".to_owned()))
        .await;
    assert!(page.call("reconnects", json!([])).as_u64().unwrap() >= 1);
    page.call("send", json!([chat, "Back again"]));
    agent_hears(&agent, "Back again").await;
    agent.send(assignment.chat, "Welcome back").await.unwrap();
    let events_after = page
        .events_until(|events| texts(events).contains(&"Welcome back".to_owned()))
        .await;
    assert!(events_after.len() > events.len());
    assert_whole(&events_after);
    assert_eq!(
        texts(&events_after),
        [
            "Hello from Chromium",
            "Welcome to support!",
            "Hello from the agent",
            "Thanks, from the page",
            "Sent while you were away",
            "Back again",
            "Welcome back",
        ],
    );
    assert_eq!(page.call("errors", json!([])), json!([]));

    // The page is loaded again: it resumes from what it saved, after the
    // last event it showed.
    let saved = page.call("save", json!([]));
    let last = events_after.len() as u64;
    assert_eq!(saved[0]["after"], json!(last), "{saved}");
    page.call("reload", json!([]));
    page.call("connect", json!([url, hash]));
    agent
        .send(assignment.chat, "After the reload")
        .await
        .unwrap();
    let reloaded = page
        .events_until(|events| texts(events).contains(&"After the reload".to_owned()))
        .await;
    let seqs: Vec<u64> = reloaded
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [last + 1], "only what is new: {reloaded:#?}");
    page.call("send", json!([chat, "Still here"]));
    agent_hears(&agent, "Still here").await;
    drop(page);
    hub.stop().await;
}

/// `loadtest --browser` (its customers in a page of headless Chromium,
/// its agents native) against a running hub, briefly and slowly: every
/// message arrives once, and the latencies it reports are of a delivery
/// on one machine (neither zero, which a page clock running ahead would
/// give, nor seconds, which one running behind would give) and no larger
/// than the round trips they are part of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_loadtest_reports_latencies_of_a_page_against_native_agents() {
    if !should_run() {
        return;
    }
    build_sdk();
    let config = format!(
        "{}\n{}",
        roomy_limits!(),
        r#"
[[channel]]
name = "load0"
offline_form = false
[[agent]]
id = "load0"
token = "test-token-0123456789"
capacity = 10
[[agent]]
id = "load1"
token = "test-token-0123456789"
capacity = 10
[webtransport]
enabled = true
listen = "127.0.0.1:0"
# The bench page is served by the loadtest, on a port of its own.
allowed_origins = ["*"]
"#
    );
    let hub = TestHub::start(&config).await;
    let json = tempfile::NamedTempFile::new().unwrap();
    let args = [
        "--addr".to_owned(),
        hub.server.local_addr().to_string(),
        "--cert".into(),
        hub.server.cert_path().display().to_string(),
        "--token".into(),
        common::TOKEN.into(),
        "--webtransport-addr".into(),
        hub.server.webtransport_addr().unwrap().to_string(),
        "--webtransport-hash".into(),
        hub.server.webtransport_cert_hash().unwrap(),
        "--browser".into(),
        "--agents".into(),
        "2".into(),
        "--customers".into(),
        "2".into(),
        "--messages".into(),
        "20".into(),
        "--rate".into(),
        "10".into(),
        "--echo-frames".into(),
        "0".into(),
        "--duration".into(),
        "60".into(),
        "--json".into(),
        json.path().display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(args)
            .output()
            .expect("the loadtest runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(json.path()).unwrap()).unwrap();
    assert_eq!(report["customers_in"], "browser");
    assert_eq!(report["chats_answered"], 2);
    // 2 customers x 20 messages, each echoed.
    assert_eq!(report["messages_relayed"], 80, "{report:#}");
    assert_eq!(report["violations"], 0);
    assert_eq!(report["offered_messages_per_second"], 20.0);
    let ms = |what: &str, q: &str| report[what][q].as_f64().unwrap();
    let round_trip = ms("round_trip", "p99_ms");
    for way in ["delivery_customer_to_agent", "delivery_agent_to_customer"] {
        let (p50, p99) = (ms(way, "p50_ms"), ms(way, "p99_ms"));
        assert!(p50 > 0.0 && p99 < 2000.0, "{way}: {report:#}");
        // A clock offset between the page and the loadtest shows here;
        // the round trip is on the page's clock alone.
        assert!(p50 <= round_trip + 1.0, "{way}: {report:#}");
    }
    assert!(ms("round_trip", "p50_ms") > 0.0, "{report:#}");
    drop(json);
    hub.stop().await;
}

/// Where the browser tests leave what a person would look at.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_served_by_the_hub_offers_the_offline_form_then_holds_a_chat() {
    if !should_run() {
        return;
    }
    build_sdk();
    let port = common::free_udp_port();
    let config = format!(
        "{}\n[webtransport]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
         [web]\nenabled = true\nlisten = \"127.0.0.1:0\"\nassets = {:?}\n",
        common::CONFIG,
        web_dir().join("dist")
    );
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    // The hub's own demo page: the widget's one script tag, nothing else.
    let mut page = Driver::start_at(Some(&format!("http://{web}/")));

    // Nobody is Present: the first message leads to the offline form,
    // which makes a ticket.
    page.call("click", json!([".launcher"]));
    page.call("type", json!(["input[name=name]", "Ada"]));
    page.call(
        "type",
        json!(["textarea[name=message]", "Is my parcel lost? 📦"]),
    );
    page.call("press", json!(["Tab"]));
    page.call("press", json!(["Enter"]));
    page.widget_says(".offline .note", "No agent is available")
        .await;
    page.call(
        "type",
        json!([".offline input[name=email]", "ada@example.com"]),
    );
    page.call("click", json!([".offline button[type=submit]"]));
    let thanks = page.widget_says(".thanks", "ticket").await;

    let agent = hub.present_agent("alice").await;
    let tickets = agent.tickets(None, 10).await.unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert!(
        thanks.contains(&format!("ticket {}", tickets[0].id.0)),
        "{thanks}"
    );
    assert_eq!(
        tickets[0].customer.email.as_deref(),
        Some("ada@example.com")
    );

    // With alice Present the same widget starts a chat, after a reload.
    page.call("reload", json!([]));
    page.call("click", json!([".launcher"]));
    page.call(
        "type",
        json!(["textarea[name=message]", "Hello from the widget"]),
    );
    page.call("click", json!([".start button[type=submit]"]));
    page.widget_says(".log", "Hello from the widget").await;
    let assignment = agent.get_next("support").await.unwrap();
    assert_eq!(assignment.first_message, "Hello from the widget");
    agent
        .send(assignment.chat, "Hello, Ada. How can I help? 🙂")
        .await
        .unwrap();
    page.widget_says(".log", "How can I help? 🙂").await;
    page.widget_says(".log", "alice joined the chat").await;

    // The keyboard alone: type in the message field and press Enter.
    page.call(
        "type",
        json!(["textarea[name=text]", "It was due on Monday"]),
    );
    page.call("press", json!(["Enter"]));
    agent_hears(&agent, "It was due on Monday").await;
    page.widget_says(".log", "It was due on Monday").await;
    // An emoji from the picker goes where the caret is, and arrives whole.
    page.call("type", json!(["textarea[name=text]", "Thanks "]));
    page.call("click", json!([".emoji-toggle"]));
    page.call("click", json!([".emoji button[aria-label='thumbs up']"]));
    page.call("press", json!(["Enter"]));
    agent_hears(&agent, "Thanks 👍").await;
    let shot = artifacts().join("widget.png");
    page.call("screenshot", json!([shot.display().to_string()]));
    assert!(shot.exists());

    // The agent ends it: the widget says so and offers a new chat.
    agent.end_chat(assignment.chat).await.unwrap();
    page.widget_says(".log", "The chat has ended").await;
    assert_eq!(
        page.call("hidden", json!([".chat .actions .primary"])),
        json!(false)
    );
    drop(page);
    hub.stop().await;
}

/// A TCP port free a moment ago, so that a restarted hub serves its pages
/// where the pages were loaded from.
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A hub whose `support` channel has the end form and alerts after
/// 600 ms, with its pages on `web` and WebTransport on `wt`.
fn console_config(web: u16, wt: u16) -> String {
    format!(
        "{}\n\
         [[channel]]\nname = \"support\"\nwelcome = \"Welcome to support!\"\n\
         alert_after = \"600ms\"\nend_form = true\nreturn_window = \"60s\"\n\
         [[agent]]\nid = \"alice\"\nname = \"Alice\"\ntoken = \"{}\"\nchannels = [\"support\"]\n\
         [[agent]]\nid = \"bob\"\ntoken = \"{}\"\nchannels = [\"support\"]\n\
         [webtransport]\nenabled = true\nlisten = \"127.0.0.1:{wt}\"\n\
         [web]\nenabled = true\nlisten = \"127.0.0.1:{web}\"\nassets = {:?}\n",
        roomy_limits!(),
        common::TOKEN,
        common::TOKEN,
        web_dir().join("dist")
    )
}

/// Opens the hub's console and signs `agent` in with the token.
async fn console(web: std::net::SocketAddr, agent: &str) -> Driver {
    let mut page = Driver::start_at(Some(&format!("http://{web}/console")));
    page.call("type", json!(["input[name=agent]", agent]));
    page.call("type", json!(["input[name=token]", common::TOKEN]));
    page.call("press", json!(["Enter"]));
    page.widget_says(".me", agent).await;
    page
}

/// Each message text once, in this order.
fn assert_once_in_order(shown: &[String], texts: &[&str]) {
    let mut at = 0;
    for text in texts {
        let found: Vec<usize> = shown
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains(text))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found.len(), 1, "{text:?} once in {shown:#?}");
        assert!(found[0] >= at, "{text:?} in its place in {shown:#?}");
        at = found[0];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_widget_hold_a_chat_across_a_restart_and_return_to_it() {
    if !should_run() {
        return;
    }
    build_sdk();
    let (web_port, wt_port) = (free_tcp_port(), common::free_udp_port());
    let config = console_config(web_port, wt_port);
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    // A channel quick reply, made by another agent of the channel.
    let bob = hub.agent("bob").await;
    bob.create_item(chathub::core::ItemDraft {
        kind: chathub::core::ItemKind::QuickReply,
        scope: chathub::core::Scope::Channel(chathub::core::ChannelId::new("support")),
        shortcut: Some("/thanks".into()),
        title: "Thanks".into(),
        body: "Thank you, {customer.name}!".into(),
    })
    .await
    .unwrap();

    let mut desk = console(web, "alice").await;
    assert_eq!(desk.call("text", json!([".presence"])), json!("Absent"));
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Present").await;

    // The customer writes from the hub's demo page.
    let mut widget = Driver::start_at(Some(&format!("http://{web}/")));
    widget.call("click", json!([".launcher"]));
    widget.call("type", json!(["input[name=name]", "Ada"]));
    widget.call(
        "type",
        json!(["textarea[name=message]", "Hello from the widget"]),
    );
    widget.call("click", json!([".start button[type=submit]"]));
    widget.widget_says(".log", "Hello from the widget").await;

    // The badge and the incoming list are live; get next takes the chat.
    desk.widget_says(".channel[data-channel=support] .badge", "1")
        .await;
    desk.widget_says(".incoming", "Hello from the widget").await;
    desk.call("click", json!([".channel[data-channel=support] .next"]));
    desk.widget_says("article.chat .log", "Hello from the widget")
        .await;
    desk.widget_says(".channel[data-channel=support] .badge", "0")
        .await;
    widget.widget_says(".log", "alice joined the chat").await;

    // Both ways, by the keyboard.
    desk.call(
        "type",
        json!([
            "article.chat textarea[name=text]",
            "Hello Ada, how can I help?"
        ]),
    );
    desk.call("press", json!(["Enter"]));
    widget.widget_says(".log", "how can I help?").await;
    widget.call("type", json!(["textarea[name=text]", "My parcel is late"]));
    widget.call("press", json!(["Enter"]));
    desk.widget_says("article.chat .log", "My parcel is late")
        .await;

    // A quick reply by its shortcut, placeholders filled in by the hub.
    desk.call("type", json!(["article.chat textarea[name=text]", "/tha"]));
    desk.widget_says("article.chat .suggest", "Thank you, {customer.name}!")
        .await;
    desk.call("press", json!(["Tab"]));
    desk.call("press", json!(["Enter"]));
    widget.widget_says(".log", "Thank you, Ada!").await;
    desk.widget_says("article.chat .log", "Thank you, Ada!")
        .await;
    // The contact panel of the chat in focus.
    desk.widget_says(".contact", "name:ada").await;

    let shot = artifacts().join("console.png");
    desk.call("screenshot", json!([shot.display().to_string()]));
    assert!(shot.exists());

    // The hub restarts: both pages reconnect by themselves and the chat
    // goes on, with nothing lost and nothing twice.
    let hub = hub.restart(&config).await;
    assert_eq!(hub.server.web_addr(), Some(web));
    desk.call(
        "type",
        json!([
            "article.chat textarea[name=text]",
            "Still there after the restart?"
        ]),
    );
    desk.call("press", json!(["Enter"]));
    widget
        .widget_says(".log", "Still there after the restart?")
        .await;
    widget.call("type", json!(["textarea[name=text]", "Yes, still here"]));
    widget.call("press", json!(["Enter"]));
    desk.widget_says("article.chat .log", "Yes, still here")
        .await;
    let said = [
        "Hello from the widget",
        "Welcome to support!",
        "how can I help?",
        "My parcel is late",
        "Thank you, Ada!",
        "Still there after the restart?",
        "Yes, still here",
    ];
    assert_once_in_order(&desk.texts("article.chat .log li"), &said);
    assert_once_in_order(&widget.texts(".log li"), &said);
    let seqs: Vec<u64> = serde_json::from_value::<Vec<String>>(
        desk.call("attrs", json!(["article.chat .log li", "data-seq"])),
    )
    .unwrap()
    .iter()
    .map(|seq| seq.parse().unwrap())
    .collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs rise, each once: {seqs:?}"
    );

    // The agent ends the chat: it is among the recent sessions, and the
    // customer's end form takes them back into the same chat.
    desk.call("click", json!(["article.chat .end"]));
    widget.widget_says(".log", "The chat has ended").await;
    desk.widget_says(".recent-list", "Ada").await;
    assert_eq!(
        desk.call("hidden", json!(["article.chat .compose"])),
        json!(true)
    );
    // The agent closes the ended chat's panel; when the customer comes
    // back, a panel opens again with the whole transcript, each line once.
    desk.call("click", json!(["article.chat .close"]));
    assert_eq!(desk.texts("article.chat").len(), 0);
    widget.until_hidden(".chat .return", false).await;
    widget.call("click", json!([".chat .return"]));
    widget.widget_says(".log", "The chat is open again").await;
    desk.widget_says("article.chat .log", "came back to the chat")
        .await;
    desk.until_hidden("article.chat .compose", false).await;
    widget.call("type", json!(["textarea[name=text]", "One more thing"]));
    widget.call("press", json!(["Enter"]));
    desk.widget_says("article.chat .log", "One more thing")
        .await;
    let again: Vec<&str> = said
        .iter()
        .copied()
        .chain([
            "The chat has ended",
            "came back to the chat",
            "One more thing",
        ])
        .collect();
    assert_once_in_order(&desk.texts("article.chat .log li"), &again);
    let shot = artifacts().join("widget-returned.png");
    widget.call("screenshot", json!([shot.display().to_string()]));
    assert_eq!(
        desk.call("texts", json!(["article.chat"]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(widget.call("text", json!([".chat .error"])), json!(""));
    drop((desk, widget));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_alerts_only_while_present_and_holds_chats_side_by_side() {
    if !should_run() {
        return;
    }
    build_sdk();
    let config = console_config(free_tcp_port(), common::free_udp_port());
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    // Bob is Present so that chats queue; alice's console starts Absent.
    let bob = hub.present_agent("bob").await;
    let mut desk = console(web, "alice").await;
    assert_eq!(desk.call("text", json!([".presence"])), json!("Absent"));

    let customer = hub.customer().await;
    let ada = chathub::core::Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    };
    let (first, _) = common::start(&customer, "support", ada.clone(), "Where is my parcel?").await;
    desk.widget_says(".channel[data-channel=support] .badge", "1")
        .await;
    // Well past alert_after (600 ms): no popup for an Absent agent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(desk.call("hidden", json!([".alert"])), json!(true));

    // Present: the standing alert pops up; Absent again: it goes away.
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Present").await;
    desk.until_hidden(".alert", false).await;
    desk.widget_says(".alert", "Where is my parcel?").await;
    assert_eq!(
        desk.call("attrs", json!(["[role=alertdialog]", "data-chat"])),
        json!([first.0.to_string()])
    );
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Absent").await;
    assert_eq!(desk.call("hidden", json!([".alert"])), json!(true));
    desk.call("click", json!([".presence"]));
    desk.until_hidden(".alert", false).await;

    // Taking it from the popup opens the chat and clears the alert.
    desk.call("click", json!([".alert .pick"]));
    desk.widget_says(
        &format!("article[data-chat='{}'] .log", first.0),
        "Where is my parcel?",
    )
    .await;
    desk.until_hidden(".alert", true).await;

    // A second chat, by get next: both side by side.
    let other = hub.customer().await;
    let grace = chathub::core::Customer {
        name: Some("Grace".into()),
        email: None,
    };
    let (second, _) = common::start(&other, "support", grace, "Can I change my order?").await;
    desk.widget_says(".incoming", "Can I change my order?")
        .await;
    desk.call("click", json!([".channel[data-channel=support] .next"]));
    let second_chat = format!("article[data-chat='{}']", second.0);
    desk.widget_says(&format!("{second_chat} .log"), "Can I change my order?")
        .await;
    assert_eq!(desk.texts("article.chat").len(), 2);

    // A ticket from the first chat; then it goes to bob.
    let first_chat = format!("article[data-chat='{}']", first.0);
    desk.call(
        "type",
        json!([format!("{first_chat} input[name=subject]"), "Lost parcel"]),
    );
    desk.call("click", json!([format!("{first_chat} .ticket button")]));
    desk.widget_says(&format!("{first_chat} .log"), "Lost parcel")
        .await;
    let tickets = bob.tickets(None, 10).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].subject, "Lost parcel");
    desk.call(
        "type",
        json!([format!("{first_chat} input[name=to]"), "bob"]),
    );
    desk.call("click", json!([format!("{first_chat} .transfer button")]));
    desk.widget_says(&format!("{first_chat} .log"), "transferred the chat to bob")
        .await;
    desk.until_hidden(&format!("{first_chat} .compose"), true)
        .await;
    bob.send(first, "Bob here, I have your parcel case")
        .await
        .unwrap();

    // The second chat goes on; the agent ends it and it is a recent session.
    desk.call(
        "type",
        json!([format!("{second_chat} textarea[name=text]"), "Yes, you can"]),
    );
    desk.call("press", json!(["Enter"]));
    let heard = customer_hears(&other, "Yes, you can").await;
    assert_eq!(heard.as_str(), "alice");
    desk.call("click", json!([format!("{second_chat} .end")]));
    desk.widget_says(".recent-list", "Grace").await;
    drop(desk);
    hub.stop().await;
}

/// The certificate hashes the hub's `[web]` listener serves to pages.
async fn served_hashes(web: std::net::SocketAddr) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(web).await.unwrap();
    let ask = format!("GET /chathub/cert-hashes.json HTTP/1.1\r\nHost: {web}\r\n\r\n");
    stream.write_all(ask.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let json: Value = serde_json::from_str(body).expect("JSON");
    serde_json::from_value(json["hashes"].clone()).expect("a list of hashes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_open_across_a_certificate_replacement_reconnect_with_the_new_hash() {
    if !should_run() {
        return;
    }
    build_sdk();
    let (web_port, wt_port) = (free_tcp_port(), common::free_udp_port());
    let config = console_config(web_port, wt_port);
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    let old = hub
        .server
        .webtransport_cert_hash()
        .expect("WebTransport is on");
    assert_eq!(served_hashes(web).await, [old.as_str()]);

    let mut desk = console(web, "alice").await;
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Present").await;
    let mut widget = Driver::start_at(Some(&format!("http://{web}/")));
    widget.call("click", json!([".launcher"]));
    widget.call("type", json!(["input[name=name]", "Ada"]));
    widget.call(
        "type",
        json!(["textarea[name=message]", "Before the new certificate"]),
    );
    widget.call("click", json!([".start button[type=submit]"]));
    desk.widget_says(".incoming", "Before the new certificate")
        .await;
    desk.call("click", json!([".channel[data-channel=support] .next"]));
    widget.widget_says(".log", "alice joined the chat").await;

    // The hub replaces its certificate: the sessions open go on with the
    // old one, and the pages are given the new hash.
    let new = hub
        .server
        .replace_webtransport_certificate()
        .await
        .expect("a new certificate")
        .expect("WebTransport is on");
    assert_ne!(new, old);
    assert_eq!(served_hashes(web).await, [new.as_str()]);
    let written = std::fs::read_to_string(hub.data_dir().join("webtransport-cert.sha256")).unwrap();
    assert_eq!(written.trim(), new);
    desk.call(
        "type",
        json!(["article.chat textarea[name=text]", "The session goes on"]),
    );
    desk.call("press", json!(["Enter"]));
    widget.widget_says(".log", "The session goes on").await;

    // A restart cuts both pages' sessions: each connects again by itself,
    // and only with the new hash, which it reads anew from the hub.
    let hub = hub.restart(&config).await;
    assert_eq!(
        hub.server.webtransport_cert_hash().as_deref(),
        Some(new.as_str())
    );
    desk.call(
        "type",
        json!(["article.chat textarea[name=text]", "After the restart"]),
    );
    desk.call("press", json!(["Enter"]));
    widget.widget_says(".log", "After the restart").await;
    widget.call("type", json!(["textarea[name=text]", "Still here"]));
    widget.call("press", json!(["Enter"]));
    desk.widget_says("article.chat .log", "Still here").await;

    let said = [
        "Before the new certificate",
        "Welcome to support!",
        "The session goes on",
        "After the restart",
        "Still here",
    ];
    assert_once_in_order(&desk.texts("article.chat .log li"), &said);
    assert_once_in_order(&widget.texts(".log li"), &said);
    let seqs: Vec<u64> = serde_json::from_value::<Vec<String>>(
        desk.call("attrs", json!(["article.chat .log li", "data-seq"])),
    )
    .unwrap()
    .iter()
    .map(|seq| seq.parse().unwrap())
    .collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs rise, each once: {seqs:?}"
    );
    assert_eq!(widget.call("text", json!([".chat .error"])), json!(""));
    drop((desk, widget));
    hub.stop().await;
}

/// `len` bytes that are not all alike (every byte value, shifted).
fn file_bytes(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ salt)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_both_ways_between_the_console_and_a_native_customer() {
    if !should_run() {
        return;
    }
    build_sdk();
    let config = console_config(free_tcp_port(), common::free_udp_port());
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    let mut desk = console(web, "alice").await;
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Present").await;

    let customer = hub.customer().await;
    let ada = chathub::core::Customer {
        name: Some("Ada".into()),
        email: None,
    };
    let (chat, _) = common::start(&customer, "support", ada, "I will send a receipt").await;
    desk.widget_says(".incoming", "I will send a receipt").await;
    desk.call("click", json!([".channel[data-channel=support] .next"]));
    let panel = format!("article[data-chat='{}']", chat.0);
    desk.widget_says(&format!("{panel} .log"), "I will send a receipt")
        .await;

    // The agent chooses a file in the console; the customer gets its
    // bytes as they were.
    let files = tempfile::tempdir().unwrap();
    let label = file_bytes(256 * 1024 + 17, 0x5a);
    let label_path = files.path().join("label.bin");
    std::fs::write(&label_path, &label).unwrap();
    desk.call(
        "upload",
        json!([
            format!("{panel} input[type=file]"),
            label_path.display().to_string()
        ]),
    );
    let shared = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Event::Chat(event)) = customer.next_event().await
                && let ChatEventKind::FileShared { from, file } = event.kind
            {
                return (from, file);
            }
        }
    })
    .await
    .expect("the customer hears of the file");
    assert_eq!(shared.0, Party::Agent("alice".into()));
    assert_eq!(shared.1.name, "label.bin");
    assert_eq!(shared.1.size, label.len() as u64);
    let (_, got) = customer.download(shared.1.id).await.unwrap();
    assert!(got == label, "the customer's bytes are the console's");
    desk.widget_says(&format!("{panel} .log"), "shared label.bin")
        .await;

    // The customer shares one; the console downloads it, byte for byte.
    let receipt = file_bytes(100_003, 0xa5);
    let (file, _) = customer
        .send_file(chat, "receipt.bin", "application/octet-stream", &receipt)
        .await
        .unwrap();
    desk.widget_says(&format!("{panel} .log"), "shared receipt.bin")
        .await;
    let saved = tempfile::tempdir().unwrap();
    let path = desk.call(
        "download",
        json!([
            format!("{panel} .download[data-file='{}']", file.id.0),
            saved.path().display().to_string()
        ]),
    );
    let path = PathBuf::from(path.as_str().expect("the saved file's path"));
    assert_eq!(path.file_name().unwrap(), "receipt.bin");
    assert!(
        std::fs::read(&path).unwrap() == receipt,
        "the console's download is the customer's file"
    );
    assert_eq!(
        desk.call("text", json!([format!("{panel} .error")])),
        json!("")
    );
    drop(desk);
    hub.stop().await;
}

/// A hub whose `support` channel offers its chats to agents (push
/// routing, 30 s to answer), with its pages on `web` and WebTransport on
/// `wt`.
fn push_config(web: u16, wt: u16) -> String {
    format!(
        "{}\n\
         [[channel]]\nname = \"support\"\nrouting = \"push\"\noffer_timeout = \"30s\"\n\
         [[agent]]\nid = \"alice\"\nname = \"Alice\"\ntoken = \"{}\"\nchannels = [\"support\"]\n\
         [[agent]]\nid = \"bob\"\ntoken = \"{}\"\nchannels = [\"support\"]\n\
         [webtransport]\nenabled = true\nlisten = \"127.0.0.1:{wt}\"\n\
         [web]\nenabled = true\nlisten = \"127.0.0.1:{web}\"\nassets = {:?}\n",
        roomy_limits!(),
        common::TOKEN,
        common::TOKEN,
        web_dir().join("dist")
    )
}

/// The seconds an offer's countdown shows ("28 s left to answer").
fn seconds_left(page: &mut Driver, offer: &str) -> u64 {
    let text = page.call("text", json!([format!("{offer} .left")]));
    let text = text.as_str().unwrap_or_default();
    text.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a countdown, not {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_accepts_a_push_offer_by_the_keyboard_and_a_declined_one_goes_on() {
    if !should_run() {
        return;
    }
    build_sdk();
    let config = push_config(free_tcp_port(), common::free_udp_port());
    let hub = TestHub::start(&config).await;
    let web = hub.server.web_addr().expect("[web] is on");
    let mut desk = console(web, "alice").await;
    desk.call("click", json!([".presence"]));
    desk.widget_says(".presence", "Present").await;

    // Alice is the only Present agent: a native customer's chat is offered
    // to her, shown with who, what and the time left.
    let customer = hub.customer().await;
    let ada = chathub::core::Customer {
        name: Some("Ada".into()),
        email: None,
    };
    let (first, _) = common::start(&customer, "support", ada, "Is my order on its way?").await;
    let offer = format!(".offer[data-chat='{}']", first.0);
    desk.widget_says(&offer, "Is my order on its way?").await;
    desk.widget_says(&format!("{offer} .what"), "Ada").await;
    assert_eq!(
        desk.call("attrs", json!([offer, "role"])),
        json!(["alertdialog"]),
        "announced as the alert popup is"
    );
    let left = seconds_left(&mut desk, &offer);
    assert!((20..=30).contains(&left), "{left} s of the 30 left");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = seconds_left(&mut desk, &offer);
    assert!(later < left, "the countdown runs: {left} s, then {later} s");

    // The offer took the keyboard focus (the agent was not writing):
    // Enter accepts it, and the chat opens in its panel.
    assert_eq!(
        desk.call("focused", json!([format!("{offer} .accept")])),
        json!(true)
    );
    let shot = artifacts().join("console-offer.png");
    desk.call("screenshot", json!([shot.display().to_string()]));
    desk.call("press", json!(["Enter"]));
    let panel = format!("article[data-chat='{}']", first.0);
    desk.widget_says(&format!("{panel} .log"), "Is my order on its way?")
        .await;
    desk.widget_says(&format!("{panel} .log"), "alice joined")
        .await;
    desk.until_hidden(&offer, true).await;

    // The chat goes both ways.
    desk.call(
        "type",
        json!([format!("{panel} textarea[name=text]"), "Yes, it left today"]),
    );
    desk.call("press", json!(["Enter"]));
    let heard = customer_hears(&customer, "Yes, it left today").await;
    assert_eq!(heard.as_str(), "alice");
    customer.send(first, "Great, thanks").await.unwrap();
    desk.widget_says(&format!("{panel} .log"), "Great, thanks")
        .await;
    assert_once_in_order(
        &desk.texts(&format!("{panel} .log li")),
        &[
            "Is my order on its way?",
            "Yes, it left today",
            "Great, thanks",
        ],
    );

    // A second chat is offered to alice; bob comes in, and alice declines:
    // the chat is offered to bob, and alice's console shows it no more.
    let other = hub.customer().await;
    let grace = chathub::core::Customer {
        name: Some("Grace".into()),
        email: None,
    };
    let (second, _) = common::start(&other, "support", grace, "Can I change my address?").await;
    let offer = format!(".offer[data-chat='{}']", second.0);
    desk.widget_says(&offer, "Can I change my address?").await;
    let bob = hub.present_agent("bob").await;
    desk.call("click", json!([format!("{offer} .decline")]));
    desk.until_hidden(&offer, true).await;
    let offered = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Event::Offered(offer)) = bob.next_event().await {
                return offer.row.chat;
            }
        }
    })
    .await
    .expect("bob is offered the declined chat");
    assert_eq!(offered, second);
    assert_eq!(desk.texts(".offer").len(), 0, "one agent at a time");
    assert_eq!(
        desk.call("focused", json!([".presence"])),
        json!(true),
        "the focus goes on from the offer that went"
    );
    desk.widget_says(".offer-status", "You declined the chat of Grace")
        .await;

    // A third, offered to alice (bob's offer stands): its customer leaves,
    // and the offer is withdrawn from the console.
    let third = hub.customer().await;
    let lin = chathub::core::Customer {
        name: Some("Lin".into()),
        email: None,
    };
    let (chat, _) = common::start(&third, "support", lin, "Hello?").await;
    let offer = format!(".offer[data-chat='{}']", chat.0);
    desk.widget_says(&offer, "Hello?").await;
    third.leave(chat).await.unwrap();
    desk.until_hidden(&offer, true).await;
    desk.widget_says(".offer-status", "Lin left before the chat was answered")
        .await;
    assert_eq!(
        desk.call("text", json!([format!("{panel} .error")])),
        json!("")
    );
    assert_eq!(desk.call("text", json!([".desk > .error"])), json!(""));
    drop(desk);
    hub.stop().await;
}

/// Retries `attempt` for up to 30 s while a cluster settles (a partition
/// changing hands answers `Unavailable`).
async fn settled<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, chathub::client::ClientError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), attempt()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(err)) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying: {err}")
            }
            Err(_) if tokio::time::Instant::now() < deadline => eprintln!("retrying: timed out"),
            Ok(Err(err)) => panic!("the cluster did not settle: {err}"),
            Err(_) => panic!("the cluster did not settle: timed out"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_sent_to_the_hub_serving_its_channel_and_follows_it_when_it_moves() {
    if !should_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(nats) = common::nats::NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    build_sdk();
    // Both hubs present one certificate to native clients; each has a
    // WebTransport certificate of its own, as generated.
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), signing_key.serialize_pem()).unwrap();
    let page_port = free_tcp_port();
    let ports: Vec<(u16, u16)> = (0..2)
        .map(|_| (common::free_udp_port(), common::free_udp_port()))
        .collect();
    let spawn = |n: usize| {
        let (quic, wt) = ports[n];
        let toml = format!(
            "listen = \"127.0.0.1:{quic}\"\ndata_dir = \"{data}\"\npresence_grace_secs = 60\n\
             [tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n\
             [metrics]\nenabled = false\n\
             [webtransport]\nenabled = true\nlisten = \"127.0.0.1:{wt}\"\n\
             allowed_origins = [\"http://127.0.0.1:{page_port}\"]\n\
             [cluster]\nnode = \"h{n}\"\nnats = [\"{nats}\"]\nlease_ttl = \"1s\"\nreplicas = 1\npartitions = 2\n\
             [[channel]]\nname = \"support\"\noffline_form = false\npartition = 0\n\
             [[agent]]\nid = \"alice\"\ntoken = \"{token}\"\ncapacity = 10\nchannels = [\"support\"]\n",
            data = dir.path().join(format!("h{n}")).display(),
            dir = dir.path().display(),
            nats = nats.url(),
            token = common::TOKEN,
        );
        common::process::HubProcess::spawn_with(dir.path(), &format!("h{n}"), &toml)
    };
    let mut hubs: Vec<Option<common::process::HubProcess>> =
        (0..2).map(|n| Some(spawn(n))).collect();
    let client = chathub::client::ClientConfig::builder(([127, 0, 0, 1], ports[0].0).into())
        .trust_pem_file(dir.path().join("cert.pem"))
        .unwrap()
        .also(([127, 0, 0, 1], ports[1].0).into())
        .idle_timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let agent =
        settled(|| chathub::client::AgentClient::connect(&client, "alice", common::TOKEN)).await;
    agent
        .set_status(chathub::core::Status::Present)
        .await
        .unwrap();

    // The hub that does not own the channel's partition is where the page
    // comes in.
    let partitions = async_nats::jetstream::new(nats.client().await)
        .get_key_value("chathub_partitions")
        .await
        .unwrap();
    let owner = settled(|| async {
        let value = partitions.get("p0").await.ok().flatten();
        value
            .and_then(|value| String::from_utf8(value.to_vec()).ok())
            .and_then(|text| {
                text.strip_prefix('h')?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .ok_or_else(|| chathub::client::ClientError::Closed("no owner yet".into()))
    })
    .await;
    let entry = 1 - owner;
    let hash_file = dir
        .path()
        .join(format!("h{entry}/webtransport-cert.sha256"));
    let hash = settled(|| async {
        std::fs::read_to_string(&hash_file)
            .map(|hash| hash.trim().to_owned())
            .map_err(|err| chathub::client::ClientError::Closed(err.to_string()))
    })
    .await;
    let url = format!("https://127.0.0.1:{}/chathub", ports[entry].1);
    let mut page = Driver::start(page_port);
    page.call("connect", json!([url, hash]));
    // Its chat starts where the channel is served: the page follows the
    // entry hub's word to the owner's WebTransport endpoint, with the
    // owner's certificate hash.
    let started = page.call(
        "start",
        json!(["support", "Ada", "Hello through the lobby"]),
    );
    assert_eq!(started["type"], json!("Queued"), "{started}");
    let chat = started["chat"].as_u64().expect("a chat id");
    let assignment = settled(|| agent.get_next("support")).await;
    assert_eq!(assignment.chat.0, chat);
    assert_eq!(assignment.first_message, "Hello through the lobby");
    agent
        .send(assignment.chat, "Served by the owner")
        .await
        .unwrap();
    page.events_until(|events| texts(events).contains(&"Served by the owner".to_owned()))
        .await;

    // The owner leaves (SIGTERM hands its partitions over, closing their
    // connections): the page comes back to it or, once it is gone,
    // through the hub it was given, is sent on to the new owner and
    // resumes the chat. (A hub killed outright is noticed by a browser
    // only after its QUIC idle timeout, 30 s.)
    let mut leaving = hubs[owner].take().unwrap();
    leaving.signal("-TERM");
    leaving.child.wait().unwrap();
    let after = settled(|| agent.send(assignment.chat, "Still here after the handover")).await;
    assert!(after > 0);
    let events = page
        .events_until(|events| texts(events).contains(&"Still here after the handover".to_owned()))
        .await;
    assert_whole(&events);
    let sent = page.call("send", json!([chat, "And the page goes on"]));
    assert!(sent.as_u64().is_some(), "{sent}");
    agent_hears(&agent, "And the page goes on").await;
    let errors = page.call("errors", json!([]));
    assert_eq!(errors, json!([]), "{}", hubs[entry].as_ref().unwrap().log());
}
