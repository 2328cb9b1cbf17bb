//! `loadtest`: drives a hub over QUIC through the SDK, measures it, and
//! checks its promises.
//!
//! Agents sign in Present and take chats with get-next; customers start
//! chats, and once answered send numbered messages (a window of them in
//! flight); each agent echoes every customer message back. Reported: chats
//! started and answered, time to answer, delivery latency customer -> agent
//! and agent -> customer, relayed messages per second, errors by kind, and
//! the raw QUIC echo rate of this machine for comparison. Checked (exit
//! code 1 if broken): no chat assigned twice; every message delivered
//! exactly once; each chat's events arrive with seqs 1, 2, 3, ... per
//! client, without gap or duplicate.
//!
//! Without `--addr` it starts a hub in this process on a loopback port.
//! With `--browser` the customers are the web SDK's, in a headless
//! Chromium page (`browser.rs`).

mod browser;
mod costs;
mod drive;
mod echo;
mod hostile;
mod idle;
mod report;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chathub::client::ClientConfig;
use chathub::config::Config;
use chathub::server::Server;
use clap::Parser;

/// Customers connecting at once.
const CONNECTING: usize = 64;

/// Drives a hub over QUIC through the SDK, measures it, and checks its
/// promises (exit code 1 if one is broken).
#[derive(Debug, Parser)]
#[command(version)]
struct Options {
    /// Agents answering.
    #[arg(long, default_value_t = 8)]
    agents: usize,
    /// Customers, one chat each.
    #[arg(long, visible_alias = "chats", default_value_t = 200)]
    customers: usize,
    /// Channels load0..load(N-1) the chats spread over (embedded hub only).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Messages each customer sends.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Messages a customer keeps in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Messages per second per customer at fixed times, the customers
    /// spread over the interval; 0 for as fast as the window allows.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Give up after this many seconds.
    #[arg(long = "duration", visible_alias = "timeout", default_value_t = 120)]
    duration_secs: u64,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Also write the delivery latency (both ways) per 50 ms of send time:
    /// start ms, messages, p50, p99, max ms.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
    /// Frames for the raw QUIC echo yardstick (0: skip).
    #[arg(long, default_value_t = 200_000)]
    echo_frames: u64,
    /// A running hub (default: start one in this process).
    #[arg(long)]
    addr: Option<std::net::SocketAddr>,
    /// Its certificate (with --addr).
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// Another hub of the same cluster (with --addr; repeat for each): the
    /// clients try it when one cannot be reached, and every hub sends them
    /// on to the hub serving their chats.
    #[arg(long)]
    also: Vec<std::net::SocketAddr>,
    /// The hubs are a cluster (with --addr): agent N works channel
    /// N % --channels alone (an agent's channels share a partition), so it
    /// asks that channel for chats.
    #[arg(long)]
    cluster: bool,
    /// The agents' token (with --addr).
    #[arg(long)]
    token: Option<String>,
    /// Agents are P0..P(N-1) (with --addr).
    #[arg(long, default_value = "load")]
    agent_prefix: String,
    /// Channels are P0..P(N-1) (with --addr).
    #[arg(long, default_value = "load")]
    channel_prefix: String,
    /// Instead: hold N idle customer connections and report the hub's
    /// memory per connection (with --hub-pid).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// With --idle: hold WebTransport sessions, each with the customer's
    /// hello answered as the web SDK leaves one, instead of native
    /// connections.
    #[arg(long)]
    idle_webtransport: bool,
    /// Instead: start N chats that wait in the first channel's queue (no
    /// agent signs in), --queued-per-connection to a customer connection,
    /// and report the hub's memory per queued chat beside what the
    /// connections cost (with --hub-pid; the hub's limits on chats per
    /// connection, per address and per minute must allow them).
    #[arg(long, default_value_t = 0)]
    queued: usize,
    /// With --queued: chats each customer connection starts.
    #[arg(long, default_value_t = 4)]
    queued_per_connection: usize,
    /// The customers run in one headless Chromium page, each a web SDK
    /// client on a WebTransport session of its own, sending as native
    /// customers do; the agents stay native. Needs node, Chromium and the
    /// SDK built (cd web && npm ci && npm run build).
    #[arg(long)]
    browser: bool,
    /// The running hub's WebTransport address, its `[webtransport]
    /// listen` (with --addr, for --browser or --idle-webtransport).
    #[arg(long)]
    webtransport_addr: Option<std::net::SocketAddr>,
    /// Its certificate's SHA-256 in hex, as in
    /// `<data_dir>/webtransport-cert.sha256` (with --webtransport-addr).
    #[arg(long)]
    webtransport_hash: Option<String>,
    /// The web SDK's folder, with `dist/` built and `node_modules/`
    /// installed (with --browser).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/web"))]
    web_dir: std::path::PathBuf,
    /// Also run N attacking connections beside the load (start floods,
    /// oversized fields, never-reading clients, slow file streams, stream
    /// floods) and report their outcomes and the hub's memory.
    #[arg(long, default_value_t = 0)]
    hostile: usize,
    /// The hub's process, to read its resident memory and CPU time.
    #[arg(long)]
    hub_pid: Option<u32>,
    /// The hub's metrics endpoint (e.g. 127.0.0.1:9464), to report where
    /// messages waited inside it.
    #[arg(long)]
    hub_metrics: Option<std::net::SocketAddr>,
    /// Also post every chat's lifecycle events (started, answered, ended) to
    /// a webhook receiver in this process, and report how fast they
    /// arrive (embedded hub only).
    #[arg(long)]
    webhook: bool,
    /// Posts the webhook keeps in flight (with --webhook).
    #[arg(long, default_value_t = 8)]
    webhook_concurrency: usize,
    /// Push routing: the embedded hub's channels offer chats to agents
    /// (`routing = "push"`) and the agents accept every offer instead of
    /// asking for the next chat.
    #[arg(long)]
    push: bool,
    /// The push policy (with --push): least_busy or round_robin.
    #[arg(long, default_value = "least_busy")]
    policy: String,
    /// Chats that arrive while the messages flow, spread evenly over
    /// --arrivals-secs: each is answered and left, and the report gives
    /// their time from arrival to offer (with --push) and to answer.
    #[arg(long, default_value_t = 0)]
    arrivals: usize,
    /// The time the arrivals spread over.
    #[arg(long, default_value_t = 5.0)]
    arrivals_secs: f64,
    /// Connections the arrivals share, each starting chat after chat (0:
    /// a new connection, with its handshake, per arrival).
    #[arg(long, default_value_t = 0)]
    arrival_connections: usize,
    /// Typing indicators per second each customer sends while its
    /// messages flow (0: none).
    #[arg(long, default_value_t = 0.0)]
    typing: f64,
    /// Threads driving the clients: 1 runs everything on one thread,
    /// leaving the other cores to the hub (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

impl Options {
    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// The command line's options, checked.
    fn parse_checked() -> anyhow::Result<Self> {
        let options = Self::parse();
        if options.agents == 0
            || options.customers == 0
            || options.channels == 0
            || options.window == 0
            || options.threads == Some(0)
        {
            bail!("--agents, --customers, --channels, --window and --threads must be at least 1");
        }
        if !matches!(options.policy.as_str(), "least_busy" | "round_robin") {
            bail!("--policy is least_busy or round_robin");
        }
        let positive = |x: f64| x > 0.0 && x.is_finite();
        if !positive(options.arrivals_secs) || !(options.typing == 0.0 || positive(options.typing))
        {
            bail!("--arrivals-secs must be above 0 and --typing at least 0");
        }
        if options.browser && (options.arrivals > 0 || options.typing > 0.0) {
            bail!("--browser runs neither --arrivals nor --typing");
        }
        if options.browser && options.idle > 0 {
            bail!("--browser and --idle are separate runs");
        }
        if options.idle_webtransport && options.idle == 0 {
            bail!("--idle-webtransport goes with --idle N");
        }
        Ok(options)
    }
}

/// mimalloc: the hub allocates and frees many small buffers per message
/// across threads, where it spends less time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let options = Options::parse_checked()?;
    chathub::process::disable_huge_pages();
    let runtime = match options.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = threads {
                builder.worker_threads(threads);
            }
            builder.enable_all().build()?
        }
    };
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let echo_rate = if options.echo_frames > 0 {
        let rate = echo::frames_per_second(options.echo_frames).await?;
        println!("raw QUIC echo of 100-byte frames: {rate:.0} frames/s");
        Some(rate)
    } else {
        None
    };
    let channels: Vec<String> = (0..options.channels)
        .map(|n| format!("{}{n}", options.channel_prefix))
        .collect();
    let mut embedded = None;
    let receiver = if options.webhook {
        if options.addr.is_some() {
            bail!("--webhook needs the embedded hub (no --addr)");
        }
        Some(webhook::Receiver::start().await?)
    } else {
        None
    };
    let (client, token) = match options.addr {
        Some(addr) => {
            let cert = options.cert.as_ref().context("--addr needs --cert")?;
            let token = options.token.clone().context("--addr needs --token")?;
            let mut builder = ClientConfig::builder(addr).trust_pem_file(cert)?;
            for other in &options.also {
                builder = builder.also(*other);
            }
            (builder.build()?, token)
        }
        None => {
            let data =
                std::env::temp_dir().join(format!("chathub-loadtest-{}", std::process::id()));
            let token = "loadtest-token-0123456789".to_owned();
            let mut toml = String::new();
            for channel in &channels {
                toml.push_str(&format!(
                    "[[channel]]\nname = \"{channel}\"\nqueue_limit = {}\noffline_form = false\n",
                    (options.customers + options.arrivals).max(1)
                ));
                if options.push {
                    toml.push_str(&format!(
                        "routing = \"push\"\npolicy = \"{}\"\n",
                        options.policy
                    ));
                }
            }
            for n in 0..options.agents {
                toml.push_str(&format!(
                    "[[agent]]\nid = \"{}{n}\"\ntoken = \"{token}\"\ncapacity = {}\n",
                    options.agent_prefix,
                    options.customers + options.arrivals
                ));
            }
            if options.browser || options.idle_webtransport {
                toml.push_str("[webtransport]\nenabled = true\nlisten = \"127.0.0.1:0\"\n");
            }
            if let Some(receiver) = &receiver {
                toml.push_str(&format!(
                    "[[webhook]]\nname = \"load\"\nurl = \"{}\"\nsecret = \"loadtest-webhook-secret\"\nconcurrency = {}\n",
                    receiver.url, options.webhook_concurrency
                ));
            }
            let mut config = Config::from_toml(&toml)?;
            // Every simulated customer comes from this one address and
            // posts far faster than a person: lift the per-address and
            // per-chat limits (the others stay as configured).
            config.limits.connections_per_ip = config.limits.connections;
            config.limits.chats_per_ip = usize::MAX;
            config.limits.chat_starts_per_minute = u32::MAX;
            config.limits.messages_per_sec = 1e9;
            config.limits.message_burst = u32::MAX;
            config.limits.chat_events = u64::MAX;
            config.limits.chat_bytes = u64::MAX;
            config.listen = "127.0.0.1:0".parse()?;
            config.data_dir = data.clone();
            config.metrics.enabled = false;
            let server = Server::start(&config).await?;
            let client = ClientConfig::builder(server.local_addr())
                .trust_pem_file(server.cert_path())?
                .build()?;
            embedded = Some((server, data));
            (client, token)
        }
    };
    let client = client.sharing_endpoint()?;
    let target = if options.browser || options.idle_webtransport {
        Some(match &embedded {
            Some((server, _)) => browser::Target::new(
                server
                    .webtransport_addr()
                    .context("the embedded hub serves WebTransport")?,
                &server
                    .webtransport_cert_hash()
                    .context("the embedded hub serves WebTransport")?,
            )?,
            None => browser::Target::new(
                options.webtransport_addr.context(
                    "--browser and --idle-webtransport with --addr need --webtransport-addr",
                )?,
                options
                    .webtransport_hash
                    .as_deref()
                    .context("--webtransport-addr needs --webtransport-hash")?,
            )?,
        })
    } else {
        None
    };
    if options.queued > 0 {
        let hub_pid = options
            .hub_pid
            .or(embedded.as_ref().map(|_| std::process::id()));
        let channel = format!("{}0", options.channel_prefix);
        let held = idle::run_queued(
            &client,
            channel,
            options.queued,
            options.queued_per_connection,
            hub_pid,
        )
        .await;
        if let Some((server, data)) = embedded {
            server.shutdown().await;
            let _ = std::fs::remove_dir_all(data);
        }
        return held;
    }
    if options.idle > 0 {
        let hub_pid = options
            .hub_pid
            .or(embedded.as_ref().map(|_| std::process::id()));
        let held = match &target {
            Some(target) => idle::run_webtransport(target, options.idle, hub_pid).await,
            None => idle::run(&client, options.idle, hub_pid).await,
        };
        if let Some((server, data)) = embedded {
            server.shutdown().await;
            let _ = std::fs::remove_dir_all(data);
        }
        return held;
    }
    let hub_pid = options
        .hub_pid
        .or(embedded.as_ref().map(|_| std::process::id()));
    let resident_before = hub_pid.and_then(idle::resident_bytes);
    let stop_attacks = Arc::new(AtomicBool::new(false));
    let attackers = if options.hostile > 0 {
        Some(hostile::spawn(
            client.clone(),
            options.hostile,
            channels[0].clone(),
            stop_attacks.clone(),
        )?)
    } else {
        None
    };
    let probe = costs::Probe::take(hub_pid, options.hub_metrics).await;
    let report = tokio::time::timeout(
        options.duration(),
        drive::run(&options, &channels, &client, &token, target.as_ref()),
    )
    .await;
    let load_ended = std::time::Instant::now();
    let spent = costs::Probe::take(hub_pid, options.hub_metrics).await;
    let resident_peak = hub_pid.and_then(idle::resident_bytes);
    stop_attacks.store(true, Ordering::Relaxed);
    if let Some(attackers) = attackers {
        let joined = tokio::task::spawn_blocking(move || attackers.join());
        match tokio::time::timeout(Duration::from_secs(60), joined).await {
            Ok(Ok(Ok(tally))) => {
                println!("attackers ({}):", options.hostile);
                for (outcome, count) in tally.take() {
                    println!("  {count:>8}  {outcome}");
                }
            }
            _ => println!("attackers: did not stop within 60 s"),
        }
        let mib = |bytes: Option<u64>| {
            bytes.map_or("?".to_owned(), |b| {
                format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
            })
        };
        println!(
            "hub resident memory: {} before, {} at the end of the load{}",
            mib(resident_before),
            mib(resident_peak),
            if embedded.is_some() {
                " (the hub runs in this process: the figure includes the load generator)"
            } else {
                ""
            }
        );
    }
    if let Some(receiver) = &receiver {
        // Each chat, the arrivals' too: started, answered, ended.
        let want = (options.customers + options.arrivals) * 3;
        if !receiver.wait_for(want, Duration::from_secs(60)).await {
            println!(
                "webhook: only {} of {want} events within 60 s",
                receiver.events()
            );
        }
        println!("{}", receiver.report(load_ended));
    }
    if let Some((server, data)) = embedded {
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(data);
    }
    let mut report = match report {
        Ok(report) => report?,
        Err(_) => bail!("the run did not finish within {:?}", options.duration()),
    };
    report.costs = costs::Costs::between(&probe, &spent, report.relayed);
    report.print(echo_rate);
    if let Some(path) = &options.json {
        std::fs::write(path, report.json(echo_rate))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &options.timeline {
        std::fs::write(path, report.timeline_tsv())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if report.violations.is_empty() {
        Ok(())
    } else {
        for violation in report.violations.iter().take(20) {
            eprintln!("violation: {violation}");
        }
        bail!("{} invariant violations", report.violations.len())
    }
}
