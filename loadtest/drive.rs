//! The load and its checks: agents take chats and echo every customer
//! message back, customers start a chat each and send numbered messages,
//! and everything they observe is checked against the hub's promises (no
//! chat assigned twice, every message delivered once, seqs without gap or
//! duplicate).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use chathub::client::{
    AgentClient, Assignment, ClientConfig, ClientError, CustomerClient, ErrorCode, Event,
};
use chathub::core::{ChatEvent, ChatEventKind, ChatId, Customer, Party, Status};
use futures::stream::{FuturesUnordered, StreamExt as _};

use crate::report::{Latencies, Report, timeline};
use crate::{CONNECTING, Options};

/// The clock every message carries: microseconds of the machine's
/// realtime clock since the run began. A page in a browser on the same
/// machine reads the same clock (`performance.timeOrigin +
/// performance.now()`), so a message's one-way latency is measured on
/// one clock whichever side sent it.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    /// When the run began, in µs since the Unix epoch.
    pub(crate) origin_us: u64,
}

impl Clock {
    fn start() -> Self {
        Self {
            origin_us: unix_micros(),
        }
    }

    /// Microseconds since the run began.
    pub(crate) fn micros(self) -> u64 {
        unix_micros().saturating_sub(self.origin_us)
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
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
    /// When each chat was first offered to an agent, in µs of the clock.
    offered_at: Mutex<HashMap<ChatId, u64>>,
    /// When each chat that arrived during the message phase was asked for.
    arrived_at: Mutex<HashMap<ChatId, u64>>,
    /// Their time from arrival to an agent's answer.
    late_answer_us: Mutex<Vec<u64>>,
    /// Typing datagrams customers handed to their connections.
    typing_sent: AtomicU64,
    /// Typing indicators agents received.
    typing_seen: AtomicU64,
    /// Each message's round trip, customer -> agent -> customer, in µs.
    round_trip_us: Mutex<Vec<u64>>,
    /// How far behind its scheduled time (with --rate) each message went
    /// out, in µs.
    send_lag_us: Mutex<Vec<u64>>,
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

/// Runs the load: signs the agents in, starts the customers' chats, sends
/// their messages, and checks what was observed; answers the report.
pub(crate) async fn run(
    options: &Options,
    channels: &[String],
    client: &ClientConfig,
    token: &str,
    browser: Option<&crate::browser::Target>,
) -> anyhow::Result<Report> {
    let clock = Clock::start();
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
    let answered = Arc::new(AtomicU64::new(0));
    let push = options.push;
    // Each agent echoes every customer message back, accepts every offer
    // (with --push), and checks its events.
    for (index, agent) in agents.iter().enumerate() {
        let (agent, observed, run, answered) = (
            agent.clone(),
            observed.clone(),
            run.clone(),
            answered.clone(),
        );
        tokio::spawn(async move {
            let mut seqs = SeqCheck::default();
            let who = format!("agent{index}");
            // Echoes and accepts in flight, driven by this task.
            let mut echoes: FuturesUnordered<
                std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>,
            > = FuturesUnordered::new();
            loop {
                let event = tokio::select! {
                    event = agent.next_event() => event,
                    Some(()) = echoes.next() => continue,
                };
                let Some(event) = event else { break };
                if let Event::Offered(offer) = &event {
                    let chat = offer.row.chat;
                    observed
                        .offered_at
                        .lock()
                        .unwrap()
                        .entry(chat)
                        .or_insert_with(|| clock.micros());
                    if push {
                        let (agent, observed, answered, run) = (&agent, &observed, &answered, &run);
                        echoes.push(Box::pin(async move {
                            match agent.accept(chat).await {
                                Ok(assignment) => {
                                    took(agent, index, &assignment, run, observed, answered).await
                                }
                                // Someone took it first, or the offer lapsed.
                                Err(err) if err.code() == Some(ErrorCode::NotOffered) => {}
                                Err(err) => observed.error(&err),
                            }
                        }));
                    }
                    continue;
                }
                if let Event::Typing { .. } = &event {
                    observed.typing_seen.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
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
                    .push((sent, clock.micros().saturating_sub(sent)));
                observed
                    .received
                    .lock()
                    .unwrap()
                    .entry(event.chat)
                    .or_default()
                    .push(n);
                observed.delivered.fetch_add(1, Ordering::Relaxed);
                let (agent, observed) = (&agent, &observed);
                let text = format!("echo {n} {}", clock.micros());
                echoes.push(Box::pin(async move {
                    if let Err(err) = agent.send(event.chat, text).await {
                        observed.error(&err);
                    }
                }));
            }
        });
    }
    // Without push, agents take chats until every chat was answered.
    let total = (options.customers + options.arrivals) as u64;
    for (index, agent) in agents.iter().enumerate().filter(|_| !push) {
        let (agent, observed, answered, done, run) = (
            agent.clone(),
            observed.clone(),
            answered.clone(),
            done.clone(),
            run.clone(),
        );
        // In a cluster an agent works one channel (its partition's).
        let channels = if options.cluster {
            vec![channels[index % channels.len()].clone()]
        } else {
            channels.to_vec()
        };
        tokio::spawn(async move {
            let mut turn = index;
            while answered.load(Ordering::Relaxed) < total && !done.load(Ordering::Relaxed) {
                turn += 1;
                match agent
                    .get_next(channels[turn % channels.len()].as_str())
                    .await
                {
                    Ok(assignment) => {
                        took(&agent, index, &assignment, &run, &observed, &answered).await
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
                    clock.micros() as f64 / 1e6,
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

    // The customers: native ones here, or a browser page's.
    let customers = match browser {
        Some(target) => page_customers(options, channels, target, clock, &observed, &run).await,
        None => native_customers(options, channels, client, clock, &observed, &run).await,
    };
    done.store(true, Ordering::Relaxed);
    let (chats, elapsed) = customers?;

    let owners = observed.owners.lock().unwrap().clone();
    let mut per_agent = vec![0_usize; options.agents];
    for agents in owners.values() {
        for &agent in agents {
            per_agent[agent] += 1;
        }
    }
    per_agent.sort_unstable();
    let arrived = observed.arrived_at.lock().unwrap().clone();
    let offered = observed.offered_at.lock().unwrap().clone();
    let late_offer_us = Latencies::of(
        arrived
            .iter()
            .filter_map(|(chat, asked)| offered.get(chat).map(|at| at.saturating_sub(*asked))),
    );
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
        per_agent,
        arrivals: arrived.len(),
        late_offer_us,
        late_answer_us: Latencies::of(observed.late_answer_us.lock().unwrap().iter().copied()),
        typing_sent: observed.typing_sent.load(Ordering::Relaxed),
        typing_seen: observed.typing_seen.load(Ordering::Relaxed),
        elapsed,
        relayed: observed.delivered.load(Ordering::Relaxed) + echoed,
        answer_us: Latencies::of(observed.answer_us.lock().unwrap().iter().copied()),
        to_agent_us: latencies(&observed.to_agent_us),
        to_customer_us: latencies(&observed.to_customer_us),
        round_trip_us: Latencies::of(observed.round_trip_us.lock().unwrap().iter().copied()),
        send_lag_us: Latencies::of(observed.send_lag_us.lock().unwrap().iter().copied()),
        customers_in: if browser.is_some() {
            "browser"
        } else {
            "native"
        },
        offered: (options.rate > 0.0).then_some(options.rate * options.customers as f64),
        to_agents: observed.delivered.load(Ordering::Relaxed),
        timeline: timeline(sends),
        errors: observed.errors.lock().unwrap().clone(),
        violations: observed.violations.lock().unwrap().clone(),
        foreign: observed.foreign.load(Ordering::Relaxed),
        costs: Default::default(),
    };
    Ok(report)
}

/// The native customers, each on a connection of its own, and the chats
/// arriving during their messages: answers their chats and how long the
/// message phase took.
async fn native_customers(
    options: &Options,
    channels: &[String],
    client: &ClientConfig,
    clock: Clock,
    observed: &Arc<Observed>,
    run: &str,
) -> anyhow::Result<(Vec<ChatId>, Duration)> {
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
                run.to_owned(),
                ready.clone(),
            );
            let channel = channels[n % channels.len()].clone();
            let (messages, window, rate) = (options.messages as u64, options.window, options.rate);
            let (customers, typing) = (options.customers, options.typing);
            tokio::spawn(async move {
                customer(
                    n, customers, client, channel, messages, window, rate, typing, clock, observed,
                    connecting, run, ready,
                )
                .await
            })
        })
        .collect();
    // Every chat answered: the message phase begins, and the arrivals with
    // it.
    ready.wait().await;
    let started = Instant::now();
    let late = (options.arrivals > 0).then(|| {
        arrivals(
            options.arrivals,
            Duration::from_secs_f64(options.arrivals_secs),
            options.arrival_connections,
            client,
            channels,
            clock,
            observed,
            run,
        )
    });
    println!(
        "{} chats started and answered in {:.2} s; sending",
        options.customers,
        clock.micros() as f64 / 1e6
    );
    let mut chats = Vec::new();
    for customer in customers {
        chats.push(customer.await??);
    }
    let elapsed = started.elapsed();
    if let Some(late) = late {
        late.await??;
    }
    Ok((chats, elapsed))
}

/// The customers in a browser page (`--browser`): what the page observed
/// joins what the agents observe here.
async fn page_customers(
    options: &Options,
    channels: &[String],
    target: &crate::browser::Target,
    clock: Clock,
    observed: &Observed,
    run: &str,
) -> anyhow::Result<(Vec<ChatId>, Duration)> {
    let page = crate::browser::run_page(options, channels, target, clock, run).await?;
    println!(
        "{} chats started and answered in the page in {:.2} s; it sent for {:.2} s",
        page.chats.len(),
        page.setup_us as f64 / 1e6,
        page.elapsed_us as f64 / 1e6
    );
    let chats: Vec<ChatId> = page.chats.iter().map(|&chat| ChatId(chat)).collect();
    observed.answer_us.lock().unwrap().extend(&page.answer_us);
    observed.to_customer_us.lock().unwrap().extend(
        page.to_customer_us
            .chunks_exact(2)
            .map(|pair| (pair[0], pair[1])),
    );
    observed
        .round_trip_us
        .lock()
        .unwrap()
        .extend(&page.round_trip_us);
    observed
        .send_lag_us
        .lock()
        .unwrap()
        .extend(&page.send_lag_us);
    {
        let mut echoed = observed.echoed.lock().unwrap();
        for (chat, count) in chats.iter().zip(&page.echoed) {
            *echoed.entry(*chat).or_default() += count;
        }
    }
    for (kind, count) in &page.errors {
        *observed
            .errors
            .lock()
            .unwrap()
            .entry(kind.clone())
            .or_default() += count;
    }
    for violation in &page.violations {
        observed.violation(format!("page: {violation}"));
    }
    Ok((chats, Duration::from_micros(page.elapsed_us)))
}

/// An agent took `assignment`: counts this run's chats and their owners,
/// and ends at once, as an agent would, a chat that is someone else's (an
/// attacker's, or one an earlier run left).
async fn took(
    agent: &AgentClient,
    index: usize,
    assignment: &Assignment,
    run: &str,
    observed: &Observed,
    answered: &AtomicU64,
) {
    if !assignment.first_message.starts_with(run) {
        observed.foreign.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = agent.end_chat(assignment.chat).await {
            observed.error(&err);
        }
        return;
    }
    answered.fetch_add(1, Ordering::Relaxed);
    observed
        .owners
        .lock()
        .unwrap()
        .entry(assignment.chat)
        .or_default()
        .push(index);
}

/// Chats arriving during the message phase: `count` customers spread
/// evenly over `over`, each starting a chat, waiting for its answer, and
/// leaving. With `connections` above 0 the arrivals share that many
/// connections (each connection a page that starts chat after chat), so
/// the arrival rate is not bounded by TLS handshakes.
#[allow(clippy::too_many_arguments)]
fn arrivals(
    count: usize,
    over: Duration,
    connections: usize,
    client: &ClientConfig,
    channels: &[String],
    clock: Clock,
    observed: &Arc<Observed>,
    run: &str,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (client, channels, observed, run) = (
        client.clone(),
        channels.to_vec(),
        observed.clone(),
        run.to_owned(),
    );
    tokio::spawn(async move {
        let mut pool = Vec::with_capacity(connections);
        for _ in 0..connections {
            let customer = CustomerClient::connect(&client).await?;
            pool.push(Shared::watch(customer, clock));
        }
        let began = tokio::time::Instant::now();
        let mut arriving = Vec::with_capacity(count);
        for n in 0..count {
            tokio::time::sleep_until(began + over.mul_f64(n as f64 / count as f64)).await;
            let (client, observed, run) = (client.clone(), observed.clone(), run.clone());
            let channel = channels[n % channels.len()].clone();
            let shared = (!pool.is_empty()).then(|| pool[n % pool.len()].clone());
            arriving.push(tokio::spawn(async move {
                let (customer, shared) = match shared {
                    Some(shared) => (shared.customer.clone(), Some(shared)),
                    None => (CustomerClient::connect(&client).await?, None),
                };
                let details = Customer {
                    name: Some(format!("arrival {n}")),
                    email: None,
                };
                let asked = clock.micros();
                let started = customer
                    .start_chat(channel, details, format!("{run} arrival"))
                    .await?;
                let Some(chat) = started.chat() else {
                    bail!("the channel answered with its offline form");
                };
                observed.arrived_at.lock().unwrap().insert(chat, asked);
                let answered = match &shared {
                    Some(shared) => shared.answered(chat).await?,
                    None => loop {
                        let Some(event) = customer.next_event().await else {
                            bail!("the connection closed before an agent answered");
                        };
                        if let Event::Chat(event) = event
                            && matches!(event.kind, ChatEventKind::Assigned { .. })
                        {
                            break clock.micros();
                        }
                    },
                };
                observed
                    .late_answer_us
                    .lock()
                    .unwrap()
                    .push(answered.saturating_sub(asked));
                customer.leave(chat).await?;
                anyhow::Ok(())
            }));
        }
        for arrival in arriving {
            arrival.await??;
        }
        Ok(())
    })
}

/// A customer connection that several arrivals start chats on: one task
/// reads its events and notes when each chat was answered.
#[derive(Clone)]
struct Shared {
    customer: CustomerClient,
    /// When each chat was answered, in µs of the clock; `None` once the
    /// connection closed.
    answers: Arc<Mutex<Option<HashMap<ChatId, u64>>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Shared {
    fn watch(customer: CustomerClient, clock: Clock) -> Self {
        let shared = Self {
            customer,
            answers: Arc::new(Mutex::new(Some(HashMap::new()))),
            changed: Arc::new(tokio::sync::Notify::new()),
        };
        let reader = shared.clone();
        tokio::spawn(async move {
            while let Some(event) = reader.customer.next_event().await {
                if let Event::Chat(event) = event
                    && matches!(event.kind, ChatEventKind::Assigned { .. })
                {
                    let at = clock.micros();
                    if let Some(answers) = reader.answers.lock().unwrap().as_mut() {
                        answers.insert(event.chat, at);
                    }
                    reader.changed.notify_waiters();
                }
            }
            *reader.answers.lock().unwrap() = None;
            reader.changed.notify_waiters();
        });
        shared
    }

    /// When `chat` was answered (waiting for it).
    async fn answered(&self, chat: ChatId) -> anyhow::Result<u64> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.answers.lock().unwrap().as_mut() {
                None => bail!("the connection closed before an agent answered"),
                Some(answers) => {
                    if let Some(at) = answers.remove(&chat) {
                        return Ok(at);
                    }
                }
            }
            changed.await;
        }
    }
}

/// One customer: start a chat, wait for an agent, send `messages` with up
/// to `window` in flight (at `rate` per second if set), and wait for every
/// echo; meanwhile it signals typing `typing` times a second, if above 0.
#[allow(clippy::too_many_arguments)]
async fn customer(
    n: usize,
    customers: usize,
    client: ClientConfig,
    channel: String,
    messages: u64,
    window: usize,
    rate: f64,
    typing: f64,
    clock: Clock,
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
        let asked = clock.micros();
        let first = format!("{run} hello");
        let Some(chat) = customer.start_chat(channel, details, first).await?.chat() else {
            bail!("the channel answered with its offline form");
        };
        loop {
            let Some(event) = customer.next_event().await else {
                bail!("the connection closed before an agent answered");
            };
            // Queue positions and the like come while the chat waits.
            let Event::Chat(event) = event else {
                continue;
            };
            seqs.see(&who, &event, &observed);
            if matches!(event.kind, ChatEventKind::Assigned { .. }) {
                observed
                    .answer_us
                    .lock()
                    .unwrap()
                    .push(clock.micros().saturating_sub(asked));
                break;
            }
        }
        anyhow::Ok((customer, chat))
    };
    let setup = setup.await;
    ready.wait().await;
    let (customer, chat) = setup?;
    // When each message went out, in µs of the clock, for its round trip.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
    // Read echoes while sending.
    let reader = {
        let (customer, observed, who, sent_at) = (
            customer.clone(),
            observed.clone(),
            who.clone(),
            sent_at.clone(),
        );
        tokio::spawn(async move {
            let mut echoes = 0;
            while echoes < messages {
                let Some(event) = customer.next_event().await else {
                    break;
                };
                let Event::Chat(event) = event else {
                    continue;
                };
                seqs.see(&who, &event, &observed);
                if let ChatEventKind::Message {
                    from: Party::Agent(_),
                    text,
                    ..
                } = &event.kind
                    && let Some(sent) = text.rsplit(' ').next().and_then(|t| t.parse::<u64>().ok())
                {
                    let now = clock.micros();
                    observed
                        .to_customer_us
                        .lock()
                        .unwrap()
                        .push((sent, now.saturating_sub(sent)));
                    // "echo <n> <sent µs>": the round trip of message n.
                    if let Some(asked) = text
                        .split(' ')
                        .nth(1)
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| sent_at.get(n))
                    {
                        let asked = asked.load(Ordering::Relaxed);
                        observed
                            .round_trip_us
                            .lock()
                            .unwrap()
                            .push(now.saturating_sub(asked));
                    }
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
    let typist = (typing > 0.0).then(|| {
        let (customer, observed) = (customer.clone(), observed.clone());
        let every = Duration::from_secs_f64(1.0 / typing);
        let offset = every.mul_f64(n as f64 / customers as f64);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            loop {
                ticks.tick().await;
                // A datagram: lost or refused without harm, by design.
                if customer.typing(chat).is_ok() {
                    observed.typing_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
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
            let behind = tokio::time::Instant::now().saturating_duration_since(due);
            observed
                .send_lag_us
                .lock()
                .unwrap()
                .push(behind.as_micros() as u64);
        }
        let (customer, observed) = (&customer, &observed);
        let sent = clock.micros();
        sent_at[m as usize].store(sent, Ordering::Relaxed);
        let text = format!("{run} {m} {sent}");
        sends.push(async move {
            if let Err(err) = customer.send(chat, text).await {
                observed.error(&err);
            }
        });
    }
    while sends.next().await.is_some() {}
    reader.await?;
    if let Some(typist) = typist {
        typist.abort();
    }
    // Leave, so the chat ends and a later run against the same hub does
    // not find it.
    if let Err(err) = customer.leave(chat).await {
        observed.error(&err);
    }
    Ok(chat)
}
