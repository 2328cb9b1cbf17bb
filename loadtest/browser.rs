//! `--browser`: the customers run in one headless Chromium page, each a
//! `CustomerClient` of the web SDK (`web/dist`) on a WebTransport session
//! of its own, and send as the native customers do (the same chats,
//! texts, window and rate); the agents stay native, in this process, and
//! check what they receive as they do for native customers. The page is
//! `web/bench/page.html`, driven by `web/bench/run.mjs` under node with
//! puppeteer-core and Debian's Chromium, as the browser tests drive theirs.
//! Only this mode needs node.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::Options;
use crate::drive::Clock;

/// A hub's WebTransport endpoint, as a page reaches it.
pub(crate) struct Target {
    /// `https://<addr>/chathub`.
    pub(crate) url: String,
    /// The SHA-256 of its certificate, in hex.
    pub(crate) hash: String,
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, hash: &str) -> anyhow::Result<Self> {
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "a WebTransport certificate hash is 64 hex digits (<data_dir>/webtransport-cert.sha256)"
            );
        }
        Ok(Self {
            url: format!("https://{addr}/chathub"),
            hash,
        })
    }

    /// The hash as a Rust WebTransport client trusts it.
    pub(crate) fn digest(&self) -> anyhow::Result<wtransport::tls::Sha256Digest> {
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.hash[2 * i..2 * i + 2], 16)?;
        }
        Ok(wtransport::tls::Sha256Digest::new(bytes))
    }
}

/// What the page observed, as `web/bench/page.html` reports it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageReport {
    /// Each customer's chat.
    pub(crate) chats: Vec<u64>,
    /// The echoes each chat's customer received, in the order of `chats`.
    pub(crate) echoed: Vec<u64>,
    /// Time to answer of each chat, in µs.
    pub(crate) answer_us: Vec<u64>,
    /// (sent, latency) of each echo, flattened, in µs of the run's clock.
    pub(crate) to_customer_us: Vec<u64>,
    /// Each message's round trip on the page's monotonic clock alone.
    pub(crate) round_trip_us: Vec<u64>,
    /// How far behind schedule each message went out.
    pub(crate) send_lag_us: Vec<u64>,
    /// From the page's start to every chat answered.
    pub(crate) setup_us: u64,
    /// The message phase, from every chat answered to the last echo.
    pub(crate) elapsed_us: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) violations: Vec<String>,
}

/// The node driver; on drop (the run gave up) its stdin closes, on which
/// it closes Chromium and exits.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the customers in a page against `target`: answers what it saw.
pub(crate) async fn run_page(
    options: &Options,
    channels: &[String],
    target: &Target,
    clock: Clock,
    run: &str,
) -> anyhow::Result<PageReport> {
    let web: PathBuf = options.web_dir.clone();
    if !web.join("dist/index.js").exists() {
        bail!(
            "no web SDK at {}: build it (cd web && npm ci && npm run build)",
            web.join("dist").display()
        );
    }
    if !web.join("node_modules/puppeteer-core").exists() {
        bail!("no puppeteer-core in {}: cd web && npm ci", web.display());
    }
    let config = serde_json::json!({
        "url": target.url,
        "hash": target.hash,
        "channels": channels,
        "customers": options.customers,
        "messages": options.messages,
        "window": options.window,
        "rate": options.rate,
        "run": run,
        "originUs": clock.origin_us,
    });
    let mut child = Command::new("node")
        .arg("bench/run.mjs")
        .arg(config.to_string())
        .current_dir(&web)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start node, which --browser needs")?;
    let mut stdout = child.stdout.take().context("node's stdout")?;
    let stdin = child.stdin.take();
    let driver = Driver { child, stdin };
    let output = tokio::task::spawn_blocking(move || {
        let mut output = String::new();
        stdout.read_to_string(&mut output).map(|_| output)
    })
    .await??;
    drop(driver);
    let line = output
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .context("the page driver said nothing")?;
    let answer: serde_json::Value =
        serde_json::from_str(line).context("the page driver's answer is not JSON")?;
    if answer["ok"] != serde_json::Value::Bool(true) {
        bail!(
            "the page failed: {}",
            answer["error"].as_str().unwrap_or(line)
        );
    }
    let report: PageReport = serde_json::from_value(answer["value"].clone())
        .context("the page's report is not in its shape")?;
    if report.chats.len() != report.echoed.len() {
        bail!(
            "the page reported echoes for {} of {} chats",
            report.echoed.len(),
            report.chats.len()
        );
    }
    Ok(report)
}
