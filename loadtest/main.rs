//! `loadtest`: drives a hub over QUIC through the SDK, measures it, and
//! checks its promises.
//!
//! Customers start chats; agents take them with get-next; each customer
//! then sends its messages and the agent ends the chat once all arrived.
//! Reported: time to answer, customer -> agent delivery latency, messages
//! per second. Checked (exit code 1 if broken): no chat assigned twice, no
//! message lost, duplicated or out of order.
//!
//! Without `--addr` it starts a hub in this process on a loopback port.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chathub::client::{AgentClient, ClientConfig, CustomerClient, ErrorCode, Event};
use chathub::config::Config;
use chathub::core::{ChatEventKind, ChatId, Customer, Party, Status};
use chathub::server::Server;

const USAGE: &str = "\
loadtest [options]
  --agents N         agents answering (default 8)
  --chats N          chats to run (default 400)
  --messages N       messages a customer sends per chat (default 50)
  --channel NAME     channel to use (default support)
  --timeout SECS     give up after this long (default 120)
  --addr ADDR        a running hub (default: start one in this process)
  --cert FILE        its certificate (with --addr)
  --token TOKEN      the agents' token (with --addr)
  --agent-prefix P   agents are P0..P(N-1) (with --addr; default load)";

struct Options {
    agents: usize,
    chats: usize,
    messages: usize,
    channel: String,
    timeout: Duration,
    addr: Option<std::net::SocketAddr>,
    cert: Option<std::path::PathBuf>,
    token: Option<String>,
    prefix: String,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        agents: 8,
        chats: 400,
        messages: 50,
        channel: "support".into(),
        timeout: Duration::from_secs(120),
        addr: None,
        cert: None,
        token: None,
        prefix: "load".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--agents" => options.agents = value()?.parse()?,
            "--chats" => options.chats = value()?.parse()?,
            "--messages" => options.messages = value()?.parse()?,
            "--channel" => options.channel = value()?,
            "--timeout" => options.timeout = Duration::from_secs(value()?.parse()?),
            "--addr" => options.addr = Some(value()?.parse()?),
            "--cert" => options.cert = Some(value()?.into()),
            "--token" => options.token = Some(value()?),
            "--agent-prefix" => options.prefix = value()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if options.agents == 0 || options.chats == 0 {
        bail!("--agents and --chats must be at least 1");
    }
    Ok(options)
}

/// What agents observed, shared by their tasks.
#[derive(Default)]
struct Observed {
    /// Chat -> the agents it was assigned to.
    owners: Mutex<HashMap<ChatId, Vec<usize>>>,
    /// Time to answer, ms.
    answer_ms: Mutex<Vec<u64>>,
    /// Customer -> agent delivery latency, µs.
    latency_us: Mutex<Vec<u64>>,
    /// Broken promises, described.
    violations: Mutex<Vec<String>>,
    delivered: AtomicU64,
}

impl Observed {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
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
            let mut toml = format!(
                "[[channel]]\nname = \"{}\"\nqueue_limit = {}\n",
                options.channel,
                options.chats.max(1)
            );
            for n in 0..options.agents {
                toml.push_str(&format!(
                    "[[agent]]\nid = \"{}{n}\"\ntoken = \"{token}\"\n",
                    options.prefix
                ));
            }
            let mut config = Config::from_toml(&toml)?;
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
    let run = tokio::time::timeout(options.timeout, drive(&options, &client, &token)).await;
    if let Some((server, data)) = embedded {
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(data);
    }
    match run {
        Ok(result) => result,
        Err(_) => bail!("the run did not finish within {:?}", options.timeout),
    }
}

async fn drive(options: &Options, client: &ClientConfig, token: &str) -> anyhow::Result<()> {
    let clock = Instant::now();
    let observed = Arc::new(Observed::default());
    let messages = options.messages;

    let mut agents = Vec::new();
    for n in 0..options.agents {
        let agent = AgentClient::connect(client, format!("{}{n}", options.prefix), token).await?;
        agent.set_status(Status::Present).await?;
        agents.push(agent);
    }
    // Each agent watches its events: checks every chat's order and ends a
    // chat once all its messages arrived.
    for (index, agent) in agents.iter().enumerate() {
        let (agent, observed) = (agent.clone(), observed.clone());
        tokio::spawn(async move {
            let mut next_message: HashMap<ChatId, usize> = HashMap::new();
            let mut last_seq: HashMap<ChatId, u64> = HashMap::new();
            while let Some(event) = agent.next_event().await {
                let Event::Chat(event) = event else { continue };
                let last = last_seq.entry(event.chat).or_insert(0);
                if event.seq != *last + 1 {
                    observed.violation(format!(
                        "agent{index}: {} seq {} after {}",
                        event.chat, event.seq, last
                    ));
                }
                *last = event.seq;
                let ChatEventKind::Message {
                    from: Party::Customer,
                    text,
                    ..
                } = &event.kind
                else {
                    continue;
                };
                let Some((n, sent_us)) = text.split_once(' ') else {
                    continue;
                };
                let (Ok(n), Ok(sent_us)) = (n.parse::<usize>(), sent_us.parse::<u64>()) else {
                    continue;
                };
                let now_us = clock.elapsed().as_micros() as u64;
                observed
                    .latency_us
                    .lock()
                    .unwrap()
                    .push(now_us.saturating_sub(sent_us));
                observed.delivered.fetch_add(1, Ordering::Relaxed);
                let expected = next_message.entry(event.chat).or_insert(0);
                if n != *expected {
                    observed.violation(format!(
                        "{}: message {n} arrived when {expected} was due",
                        event.chat
                    ));
                }
                *expected = n + 1;
                if n + 1 == messages {
                    let agent = agent.clone();
                    tokio::spawn(async move { agent.end_chat(event.chat).await });
                }
            }
        });
    }

    // Customers start their chats, wait to be answered, send, and wait for
    // the end.
    let started = clock.elapsed();
    let customers = (0..options.chats).map(|n| {
        let (client, channel) = (client.clone(), options.channel.clone());
        tokio::spawn(async move {
            let customer = CustomerClient::connect(&client).await?;
            let who = Customer {
                name: Some(format!("customer {n}")),
                email: None,
            };
            let Some(chat) = customer.start_chat(channel, who, "hello").await?.chat() else {
                bail!("the channel answered with its offline form");
            };
            wait_for(&customer, |kind| {
                matches!(kind, ChatEventKind::Assigned { .. })
            })
            .await?;
            for m in 0..messages {
                let sent_us = clock.elapsed().as_micros() as u64;
                customer.send(chat, format!("{m} {sent_us}")).await?;
            }
            wait_for(&customer, |kind| {
                matches!(kind, ChatEventKind::Ended { .. })
            })
            .await?;
            anyhow::Ok(chat)
        })
    });
    let customers: Vec<_> = customers.collect();

    // Agents take chats until every chat was answered.
    let answered = Arc::new(AtomicU64::new(0));
    let takers = agents.iter().enumerate().map(|(index, agent)| {
        let (agent, observed, answered) = (agent.clone(), observed.clone(), answered.clone());
        let (channel, total) = (options.channel.clone(), options.chats as u64);
        tokio::spawn(async move {
            while answered.load(Ordering::Relaxed) < total {
                match agent.get_next(channel.as_str()).await {
                    Ok(assignment) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        let waited =
                            chathub::core::Timestamp::now().since(assignment.waiting_since);
                        observed
                            .answer_ms
                            .lock()
                            .unwrap()
                            .push(waited.as_millis() as u64);
                        observed
                            .owners
                            .lock()
                            .unwrap()
                            .entry(assignment.chat)
                            .or_default()
                            .push(index);
                    }
                    Err(err) if err.code() == Some(ErrorCode::QueueEmpty) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(err) => return Err(anyhow::Error::from(err)),
                }
            }
            anyhow::Ok(())
        })
    });
    for taker in futures::future::join_all(takers).await {
        taker??;
    }
    let mut finished = 0;
    for customer in customers {
        customer.await??;
        finished += 1;
    }
    let elapsed = clock.elapsed() - started;

    let owners = observed.owners.lock().unwrap();
    for (chat, agents) in owners.iter().filter(|(_, agents)| agents.len() > 1) {
        observed.violation(format!("{chat} assigned to agents {agents:?}"));
    }
    let delivered = observed.delivered.load(Ordering::Relaxed);
    let expected = (options.chats * messages) as u64;
    if delivered != expected {
        observed.violation(format!("{delivered} messages delivered, {expected} sent"));
    }
    let mut latency = observed.latency_us.lock().unwrap().clone();
    latency.sort_unstable();
    let mut answer = observed.answer_ms.lock().unwrap().clone();
    answer.sort_unstable();
    println!(
        "chats started {} answered {} finished {finished} in {:.2} s",
        options.chats,
        owners.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "time to answer ms: p50 {} p99 {}",
        percentile(&answer, 0.5),
        percentile(&answer, 0.99)
    );
    println!(
        "delivery customer->agent µs: p50 {} p99 {} p999 {}",
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        percentile(&latency, 0.999)
    );
    println!(
        "messages delivered {delivered}: {:.0} msg/s",
        delivered as f64 / elapsed.as_secs_f64()
    );
    let violations = observed.violations.lock().unwrap();
    if violations.is_empty() {
        println!(
            "invariants: ok (no chat assigned twice; no message lost, duplicated or out of order)"
        );
        Ok(())
    } else {
        for violation in violations.iter().take(20) {
            eprintln!("violation: {violation}");
        }
        bail!("{} invariant violations", violations.len())
    }
}

/// Reads a customer's events until one matches.
async fn wait_for(
    customer: &CustomerClient,
    done: impl Fn(&ChatEventKind) -> bool,
) -> anyhow::Result<()> {
    while let Some(event) = customer.next_event().await {
        if let Event::Chat(event) = event
            && done(&event.kind)
        {
            return Ok(());
        }
    }
    bail!("the connection closed")
}
