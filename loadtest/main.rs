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

mod echo;
mod hostile;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chathub::client::{AgentClient, ClientConfig, ClientError, CustomerClient, ErrorCode, Event};
use chathub::config::Config;
use chathub::core::{ChatEvent, ChatEventKind, ChatId, Customer, Party, Status};
use chathub::server::Server;
use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt as _};

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
    /// Also run N attacking connections beside the load (start floods,
    /// oversized fields, never-reading clients, slow file streams, stream
    /// floods) and report their outcomes and the hub's memory.
    #[arg(long, default_value_t = 0)]
    hostile: usize,
    /// The hub's process, to read its resident memory.
    #[arg(long)]
    hub_pid: Option<u32>,
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
        Ok(options)
    }
}

/// Microseconds since the run began, the clock every message carries.
fn micros(clock: Instant) -> u64 {
    clock.elapsed().as_micros() as u64
}

/// Everything observed, shared by the tasks.
#[derive(Default)]
struct Observed {
    owners: Mutex<HashMap<ChatId, Vec<usize>>>,
    answer_us: Mutex<Vec<u64>>,
    /// (sent, latency) of each message, in µs since the run's clock.
    to_agent_us: Mutex<Vec<(u64, u64)>>,
    to_customer_us: Mutex<Vec<(u64, u64)>>,
    /// Per chat, the customer message numbers the agent received.
    received: Mutex<HashMap<ChatId, Vec<u64>>>,
    /// Per chat, the echoes the customer received.
    echoed: Mutex<HashMap<ChatId, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<Vec<String>>,
    delivered: AtomicU64,
    /// Chats agents took that were not this run's customers' (attackers').
    foreign: AtomicU64,
}

impl Observed {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    fn error(&self, err: &ClientError) {
        let kind = match err.code() {
            Some(code) => format!("{code:?}"),
            None => "connection".to_owned(),
        };
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }
}

/// Checks that one client's events of each chat come with seqs 1, 2, 3...
#[derive(Default)]
struct SeqCheck(HashMap<ChatId, u64>);

impl SeqCheck {
    fn see(&mut self, who: &str, event: &ChatEvent, observed: &Observed) {
        let last = self.0.entry(event.chat).or_insert(0);
        if event.seq != *last + 1 {
            observed.violation(format!(
                "{who}: {} seq {} after {}",
                event.chat, event.seq, last
            ));
        }
        *last = event.seq;
    }
}

/// A distribution of microseconds, kept to three significant digits.
struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    /// Up to an hour: a longer delivery is counted as an hour.
    fn of(samples: impl IntoIterator<Item = u64>) -> Self {
        let mut histogram = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("1 µs to an hour at three digits is a valid range");
        for sample in samples {
            histogram.saturating_record(sample);
        }
        Self(histogram)
    }

    fn len(&self) -> u64 {
        self.0.len()
    }

    /// The sample at quantile `q` (0 when there is none).
    fn at(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    fn max(&self) -> u64 {
        self.0.max()
    }

    /// p50, p99 and p999 in milliseconds, for the JSON report.
    fn quantiles(&self) -> Quantiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            p50_ms: ms(self.at(0.5)),
            p99_ms: ms(self.at(0.99)),
            p999_ms: ms(self.at(0.999)),
        }
    }
}

/// A distribution's quantiles in the JSON report.
#[derive(serde::Serialize)]
struct Quantiles {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

/// The JSON report (`--json FILE`).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    chats_started: usize,
    chats_answered: usize,
    messages_relayed: u64,
    seconds: f64,
    messages_per_second: f64,
    echo_frames_per_second: Option<f64>,
    time_to_answer: Quantiles,
    delivery_customer_to_agent: Quantiles,
    delivery_agent_to_customer: Quantiles,
    errors: &'a BTreeMap<String, u64>,
    violations: usize,
    foreign_chats: u64,
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
    let (client, token) = match options.addr {
        Some(addr) => {
            let cert = options.cert.as_ref().context("--addr needs --cert")?;
            let token = options.token.clone().context("--addr needs --token")?;
            (
                ClientConfig::builder(addr).trust_pem_file(cert)?.build()?,
                token,
            )
        }
        None => {
            let data =
                std::env::temp_dir().join(format!("chathub-loadtest-{}", std::process::id()));
            let token = "loadtest-token-0123456789".to_owned();
            let mut toml = String::new();
            for channel in &channels {
                toml.push_str(&format!(
                    "[[channel]]\nname = \"{channel}\"\nqueue_limit = {}\noffline_form = false\n",
                    options.customers.max(1)
                ));
            }
            for n in 0..options.agents {
                toml.push_str(&format!(
                    "[[agent]]\nid = \"{}{n}\"\ntoken = \"{token}\"\ncapacity = {}\n",
                    options.agent_prefix, options.customers
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
    if options.idle > 0 {
        let held = idle(
            &client,
            options.idle,
            options
                .hub_pid
                .or(embedded.as_ref().map(|_| std::process::id())),
        )
        .await;
        if let Some((server, data)) = embedded {
            server.shutdown().await;
            let _ = std::fs::remove_dir_all(data);
        }
        return held;
    }
    let hub_pid = options
        .hub_pid
        .or(embedded.as_ref().map(|_| std::process::id()));
    let resident_before = hub_pid.and_then(resident_bytes);
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
    let report = tokio::time::timeout(
        options.duration(),
        drive(&options, &channels, &client, &token),
    )
    .await;
    let resident_peak = hub_pid.and_then(resident_bytes);
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
    if let Some((server, data)) = embedded {
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(data);
    }
    let report = match report {
        Ok(report) => report?,
        Err(_) => bail!("the run did not finish within {:?}", options.duration()),
    };
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

struct Report {
    customers: usize,
    answered: usize,
    elapsed: Duration,
    relayed: u64,
    answer_us: Latencies,
    to_agent_us: Latencies,
    to_customer_us: Latencies,
    /// Delivery latency (both ways) by when the message was sent.
    timeline: Vec<Window>,
    errors: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// Chats agents took and ended that were not this run's customers'.
    foreign: u64,
}

impl Report {
    fn rate(&self) -> f64 {
        self.relayed as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, echo_rate: Option<f64>) {
        println!(
            "chats started {} answered {}; messages relayed {} in {:.2} s: {:.0} msg/s",
            self.customers,
            self.answered,
            self.relayed,
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        if let Some(echo) = echo_rate {
            println!("hub relay / raw QUIC echo: {:.2}", self.rate() / echo);
        }
        if self.foreign > 0 {
            println!("other chats agents took and ended: {}", self.foreign);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "time to answer ms: p50 {:.1} p99 {:.1}",
            ms(self.answer_us.at(0.5)),
            ms(self.answer_us.at(0.99))
        );
        for (name, samples) in [
            ("customer->agent", &self.to_agent_us),
            ("agent->customer", &self.to_customer_us),
        ] {
            println!(
                "delivery {name} ms: p50 {:.2} p99 {:.2} p999 {:.2}",
                ms(samples.at(0.5)),
                ms(samples.at(0.99)),
                ms(samples.at(0.999))
            );
        }
        println!("errors: {:?}", self.errors);
        if self.violations.is_empty() {
            println!(
                "invariants: ok (no chat assigned twice; every message once; seqs without gap or duplicate)"
            );
        }
    }

    /// The timeline as tab-separated lines, one per window.
    fn timeline_tsv(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut text = String::from("start_ms\tmessages\tp50_ms\tp99_ms\tmax_ms\n");
        for window in &self.timeline {
            let latencies = &window.latencies_us;
            text.push_str(&format!(
                "{:.0}\t{}\t{:.3}\t{:.3}\t{:.3}\n",
                ms(window.start_us),
                latencies.len(),
                ms(latencies.at(0.5)),
                ms(latencies.at(0.99)),
                ms(latencies.max()),
            ));
        }
        text
    }

    fn json(&self, echo_rate: Option<f64>) -> String {
        let report = JsonReport {
            chats_started: self.customers,
            chats_answered: self.answered,
            messages_relayed: self.relayed,
            seconds: self.elapsed.as_secs_f64(),
            messages_per_second: self.rate(),
            echo_frames_per_second: echo_rate,
            time_to_answer: self.answer_us.quantiles(),
            delivery_customer_to_agent: self.to_agent_us.quantiles(),
            delivery_agent_to_customer: self.to_customer_us.quantiles(),
            errors: &self.errors,
            violations: self.violations.len(),
            foreign_chats: self.foreign,
        };
        let mut text = serde_json::to_string_pretty(&report).expect("the report serializes");
        text.push('\n');
        text
    }
}

async fn drive(
    options: &Options,
    channels: &[String],
    client: &ClientConfig,
    token: &str,
) -> anyhow::Result<Report> {
    let clock = Instant::now();
    let observed = Arc::new(Observed::default());
    let done = Arc::new(AtomicBool::new(false));
    // Tells this run's messages from those of chats an earlier run left.
    let run = format!("run{}", std::process::id());

    let mut agents = Vec::new();
    for n in 0..options.agents {
        let agent =
            AgentClient::connect(client, format!("{}{n}", options.agent_prefix), token).await?;
        agent.set_status(Status::Present).await?;
        agents.push(agent);
    }
    // Each agent echoes every customer message back, and checks its events.
    for (index, agent) in agents.iter().enumerate() {
        let (agent, observed, run) = (agent.clone(), observed.clone(), run.clone());
        tokio::spawn(async move {
            let mut seqs = SeqCheck::default();
            let who = format!("agent{index}");
            // Echoes in flight, driven by this task.
            let mut echoes = FuturesUnordered::new();
            loop {
                let event = tokio::select! {
                    event = agent.next_event() => event,
                    Some(()) = echoes.next() => continue,
                };
                let Some(event) = event else { break };
                let Event::Chat(event) = event else { continue };
                seqs.see(&who, &event, &observed);
                let ChatEventKind::Message {
                    from: Party::Customer,
                    text,
                    ..
                } = &event.kind
                else {
                    continue;
                };
                // Only this run's messages: "<run> <n> <sent µs>".
                let mut words = text.split(' ');
                if words.next() != Some(run.as_str()) {
                    continue;
                }
                let Some((n, sent)) = words
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .zip(words.next().and_then(|t| t.parse::<u64>().ok()))
                else {
                    continue;
                };
                observed
                    .to_agent_us
                    .lock()
                    .unwrap()
                    .push((sent, micros(clock).saturating_sub(sent)));
                observed
                    .received
                    .lock()
                    .unwrap()
                    .entry(event.chat)
                    .or_default()
                    .push(n);
                observed.delivered.fetch_add(1, Ordering::Relaxed);
                let (agent, observed) = (&agent, &observed);
                let text = format!("echo {n} {}", micros(clock));
                echoes.push(async move {
                    if let Err(err) = agent.send(event.chat, text).await {
                        observed.error(&err);
                    }
                });
            }
        });
    }
    // Agents take chats until every chat was answered.
    let answered = Arc::new(AtomicU64::new(0));
    for (index, agent) in agents.iter().enumerate() {
        let (agent, observed, answered, done, run) = (
            agent.clone(),
            observed.clone(),
            answered.clone(),
            done.clone(),
            run.clone(),
        );
        let channels = channels.to_vec();
        let total = options.customers as u64;
        tokio::spawn(async move {
            let mut turn = index;
            while answered.load(Ordering::Relaxed) < total && !done.load(Ordering::Relaxed) {
                turn += 1;
                match agent
                    .get_next(channels[turn % channels.len()].as_str())
                    .await
                {
                    // Someone else's chat (an attacker's, or one an earlier
                    // run left): ended at once, as an agent would.
                    Ok(assignment) if !assignment.first_message.starts_with(&run) => {
                        observed.foreign.fetch_add(1, Ordering::Relaxed);
                        if let Err(err) = agent.end_chat(assignment.chat).await {
                            observed.error(&err);
                        }
                    }
                    Ok(assignment) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        observed
                            .owners
                            .lock()
                            .unwrap()
                            .entry(assignment.chat)
                            .or_default()
                            .push(index);
                    }
                    Err(err) if err.code() == Some(ErrorCode::QueueEmpty) => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(err) => observed.error(&err),
                }
            }
        });
    }
    // A progress line while the run goes.
    {
        let (observed, done, answered) = (observed.clone(), done.clone(), answered.clone());
        tokio::spawn(async move {
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let delivered = observed.delivered.load(Ordering::Relaxed);
                eprint!(
                    "\r{:>5.1} s  answered {:>6}  delivered {:>9}  {:>8} msg/s   ",
                    clock.elapsed().as_secs_f64(),
                    answered.load(Ordering::Relaxed),
                    delivered,
                    delivered - last
                );
                let _ = std::io::stderr().flush();
                last = delivered;
            }
            eprintln!();
        });
    }

    // Customers arrive at most CONNECTING at a time, as a ramp; once every
    // chat is answered they all start sending together, so the message
    // phase is measured on its own.
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let ready = Arc::new(tokio::sync::Barrier::new(options.customers + 1));
    let customers: Vec<_> = (0..options.customers)
        .map(|n| {
            let (client, observed, connecting, run, ready) = (
                client.clone(),
                observed.clone(),
                connecting.clone(),
                run.clone(),
                ready.clone(),
            );
            let channel = channels[n % channels.len()].clone();
            let (messages, window, rate) = (options.messages as u64, options.window, options.rate);
            let customers = options.customers;
            tokio::spawn(async move {
                customer(
                    n, customers, client, channel, messages, window, rate, clock, observed,
                    connecting, run, ready,
                )
                .await
            })
        })
        .collect();
    // Every chat answered: the message phase begins.
    ready.wait().await;
    let started = Instant::now();
    println!(
        "{} chats started and answered in {:.2} s; sending",
        options.customers,
        clock.elapsed().as_secs_f64()
    );
    let mut chats = Vec::new();
    for customer in customers {
        match customer.await? {
            Ok(chat) => chats.push(chat),
            Err(err) => {
                done.store(true, Ordering::Relaxed);
                return Err(err);
            }
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);

    let owners = observed.owners.lock().unwrap().clone();
    for (chat, agents) in owners.iter().filter(|(_, agents)| agents.len() > 1) {
        observed.violation(format!("{chat} assigned to agents {agents:?}"));
    }
    let received = observed.received.lock().unwrap().clone();
    for chat in &chats {
        let mut got = received.get(chat).cloned().unwrap_or_default();
        got.sort_unstable();
        let expected: Vec<u64> = (0..options.messages as u64).collect();
        if got != expected {
            let unique: HashSet<_> = got.iter().collect();
            observed.violation(format!(
                "{chat}: the agent got {} messages ({} distinct) of {}",
                got.len(),
                unique.len(),
                options.messages
            ));
        }
    }
    let echoed: u64 = observed.echoed.lock().unwrap().values().sum();
    let latencies = |samples: &Mutex<Vec<(u64, u64)>>| {
        Latencies::of(samples.lock().unwrap().iter().map(|s| s.1))
    };
    let mut sends = observed.to_agent_us.lock().unwrap().clone();
    sends.extend(observed.to_customer_us.lock().unwrap().iter());
    let report = Report {
        customers: options.customers,
        answered: owners.len(),
        elapsed,
        relayed: observed.delivered.load(Ordering::Relaxed) + echoed,
        answer_us: Latencies::of(observed.answer_us.lock().unwrap().iter().copied()),
        to_agent_us: latencies(&observed.to_agent_us),
        to_customer_us: latencies(&observed.to_customer_us),
        timeline: timeline(sends),
        errors: observed.errors.lock().unwrap().clone(),
        violations: observed.violations.lock().unwrap().clone(),
        foreign: observed.foreign.load(Ordering::Relaxed),
    };
    Ok(report)
}

/// The messages sent within one [`WINDOW_US`] of the run.
struct Window {
    start_us: u64,
    /// Their delivery latencies.
    latencies_us: Latencies,
}

/// The width of a timeline window: short enough to show a stall.
const WINDOW_US: u64 = 50_000;

/// Groups (sent, latency) samples into windows by send time.
fn timeline(samples: Vec<(u64, u64)>) -> Vec<Window> {
    let mut windows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (sent, latency) in samples {
        windows.entry(sent / WINDOW_US).or_default().push(latency);
    }
    windows
        .into_iter()
        .map(|(window, latencies_us)| Window {
            start_us: window * WINDOW_US,
            latencies_us: Latencies::of(latencies_us),
        })
        .collect()
}

/// One customer: start a chat, wait for an agent, send `messages` with up
/// to `window` in flight (at `rate` per second if set), and wait for every
/// echo.
#[allow(clippy::too_many_arguments)]
async fn customer(
    n: usize,
    customers: usize,
    client: ClientConfig,
    channel: String,
    messages: u64,
    window: usize,
    rate: f64,
    clock: Instant,
    observed: Arc<Observed>,
    connecting: Arc<tokio::sync::Semaphore>,
    run: String,
    ready: Arc<tokio::sync::Barrier>,
) -> anyhow::Result<ChatId> {
    // Connect, start the chat, wait for an agent; then wait for everyone.
    // A failure still reaches the barrier, so the others go on and the run
    // reports it.
    let mut seqs = SeqCheck::default();
    let who = format!("customer{n}");
    let setup = async {
        let permit = connecting.acquire_owned().await?;
        let customer = CustomerClient::connect(&client).await?;
        drop(permit);
        let details = Customer {
            name: Some(format!("customer {n}")),
            email: None,
        };
        let asked = micros(clock);
        let first = format!("{run} hello");
        let Some(chat) = customer.start_chat(channel, details, first).await?.chat() else {
            bail!("the channel answered with its offline form");
        };
        loop {
            let Some(Event::Chat(event)) = customer.next_event().await else {
                bail!("the connection closed before an agent answered");
            };
            seqs.see(&who, &event, &observed);
            if matches!(event.kind, ChatEventKind::Assigned { .. }) {
                observed
                    .answer_us
                    .lock()
                    .unwrap()
                    .push(micros(clock).saturating_sub(asked));
                break;
            }
        }
        anyhow::Ok((customer, chat))
    };
    let setup = setup.await;
    ready.wait().await;
    let (customer, chat) = setup?;
    // Read echoes while sending.
    let reader = {
        let (customer, observed, who) = (customer.clone(), observed.clone(), who.clone());
        tokio::spawn(async move {
            let mut echoes = 0;
            while echoes < messages {
                let Some(Event::Chat(event)) = customer.next_event().await else {
                    break;
                };
                seqs.see(&who, &event, &observed);
                if let ChatEventKind::Message {
                    from: Party::Agent(_),
                    text,
                    ..
                } = &event.kind
                    && let Some(sent) = text.rsplit(' ').next().and_then(|t| t.parse::<u64>().ok())
                {
                    observed
                        .to_customer_us
                        .lock()
                        .unwrap()
                        .push((sent, micros(clock).saturating_sub(sent)));
                    echoes += 1;
                }
            }
            *observed.echoed.lock().unwrap().entry(chat).or_default() += echoes;
        })
    };
    // Sends go out at fixed times (an open-loop load): customer `n` of
    // `customers` starts `n / customers` of an interval late so the
    // customers' sends interleave instead of arriving together.
    let pace = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let first = tokio::time::Instant::now()
        + pace.map_or(Duration::ZERO, |pace| {
            pace.mul_f64(n as f64 / customers as f64)
        });
    let mut sends = FuturesUnordered::new();
    for m in 0..messages {
        while sends.len() >= window {
            sends.next().await;
        }
        if let Some(pace) = pace {
            let due = first + pace * m as u32;
            // Keep the sends in flight moving while waiting.
            let sleep = tokio::time::sleep_until(due);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    Some(()) = sends.next() => {}
                }
            }
        }
        let (customer, observed) = (&customer, &observed);
        let text = format!("{run} {m} {}", micros(clock));
        sends.push(async move {
            if let Err(err) = customer.send(chat, text).await {
                observed.error(&err);
            }
        });
    }
    while sends.next().await.is_some() {}
    reader.await?;
    // Leave, so the chat ends and a later run against the same hub does
    // not find it.
    if let Err(err) = customer.leave(chat).await {
        observed.error(&err);
    }
    Ok(chat)
}

/// A process's resident memory in bytes, from /proc.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Holds `count` idle customer connections and reports the hub's memory
/// for them.
async fn idle(client: &ClientConfig, count: usize, hub_pid: Option<u32>) -> anyhow::Result<()> {
    let before = hub_pid.and_then(resident_bytes);
    let started = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (client, connecting) = (client.clone(), connecting.clone());
            tokio::spawn(async move {
                let _permit = connecting.acquire_owned().await?;
                anyhow::Ok(CustomerClient::connect(&client).await?)
            })
        })
        .collect();
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        held.push(task.await??);
    }
    println!(
        "{count} connections open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    match (before, hub_pid.and_then(resident_bytes)) {
        (Some(before), Some(after)) => println!(
            "hub resident memory {:.1} MiB -> {:.1} MiB: {:.1} KiB per connection",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1024.0 / count as f64
        ),
        _ => println!("(pass --hub-pid to measure the hub's memory)"),
    }
    drop(held);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_groups_messages_by_when_they_were_sent() {
        // Sent at 10 ms, 60 ms, 20 ms and 160 ms: the 10 and 20 ms sends
        // share the first window whatever order they arrived in, and the
        // empty window at 100 ms is left out rather than shown as zeros.
        let windows = timeline(vec![(10_000, 7), (60_000, 5), (20_000, 3), (160_000, 9)]);
        let rows: Vec<(u64, u64, u64)> = windows
            .iter()
            .map(|window| {
                let latencies = &window.latencies_us;
                (window.start_us, latencies.len(), latencies.max())
            })
            .collect();
        assert_eq!(rows, [(0, 2, 7), (50_000, 1, 5), (150_000, 1, 9)]);
        let report = Report {
            customers: 1,
            answered: 1,
            elapsed: Duration::from_secs(1),
            relayed: 4,
            answer_us: Latencies::of([]),
            to_agent_us: Latencies::of([]),
            to_customer_us: Latencies::of([]),
            timeline: windows,
            errors: BTreeMap::new(),
            violations: Vec::new(),
            foreign: 0,
        };
        let tsv = report.timeline_tsv();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines[0], "start_ms\tmessages\tp50_ms\tp99_ms\tmax_ms");
        // The median of two is the lower (nearest rank); the p99 and the
        // maximum are the slower one.
        assert_eq!(lines[1], "0\t2\t0.003\t0.007\t0.007");
        assert_eq!(lines.len(), 4);
        let json: serde_json::Value = serde_json::from_str(&report.json(Some(1000.0))).unwrap();
        assert_eq!(json["messages_relayed"], 4);
        assert_eq!(json["echo_frames_per_second"], 1000.0);
        assert_eq!(json["delivery_customer_to_agent"]["p99_ms"], 0.0);
        // Latencies far above the smallest keep their size.
        let spread = Latencies::of([1_000, 2_000, 3_000, 250_000]);
        assert_eq!(spread.at(0.5), 2_000);
        assert!(
            (249_000..=251_000).contains(&spread.max()),
            "{}",
            spread.max()
        );
    }
}
