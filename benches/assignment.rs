//! The cost of one assignment with many agents and a long queue, through
//! the actors in-process (no network): 1,000 agents signed in and Present
//! and 100,000 chats waiting, each assignment takes a chat out of the
//! queue, tells every agent of the channel that it left their incoming
//! list, and makes the assignment durable.
//!
//! - `push`: the channel offers chats (least busy first) and each agent
//!   accepts every offer, until every agent holds `CAPACITY` chats;
//! - `pull`: each agent asks for the next chat `CAPACITY` times.
//!
//! Prints the wall time and the process's CPU time per assignment.
//!
//! `cargo bench --bench assignment [-- AGENTS WAITING]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chathub::actors::{AgentConfig, ChatStart, EventSink, Hub, HubConfig, Outbound};
use chathub::core::{
    AgentId, ChannelId, ChannelSettings, Customer, Limits, Policy, Routing, Status,
};
use chathub::store::Store;

/// Chats each agent takes in a measurement.
const CAPACITY: u64 = 2;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let waiting: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for routing in [Routing::Push, Routing::Pull] {
        runtime.block_on(measure(routing, agents, waiting));
    }
}

async fn measure(routing: Routing, agents: usize, waiting: u64) {
    let dir = std::env::temp_dir().join(format!(
        "chathub-assignment-bench-{}-{routing:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let channel = ChannelId::new("support");
    let mut settings = ChannelSettings::new(channel.clone());
    settings.offline_form = false;
    settings.queue_limit = usize::try_from(waiting).unwrap_or(usize::MAX);
    settings.routing = routing;
    settings.policy = Policy::LeastBusy;
    settings.offer_timeout = Duration::from_secs(60);
    settings.alert_after = Duration::from_secs(3600);
    let ids: Vec<AgentId> = (0..agents).map(|n| AgentId::new(format!("a{n}"))).collect();
    let config = HubConfig {
        channels: vec![settings],
        agents: ids
            .iter()
            .map(|id| AgentConfig {
                id: id.clone(),
                name: id.to_string(),
                token: chathub::actors::TokenDigest::of("a-benchmark-token-0123"),
                channels: vec![channel.clone()],
                capacity: CAPACITY,
                role: Default::default(),
                skills: Default::default(),
            })
            .collect(),
        presence_grace: Duration::from_secs(60),
        files: chathub::store::FileBytes::local(dir.join("files")),
        limits: Limits {
            chats_per_connection: usize::MAX,
            chats_per_ip: usize::MAX,
            chat_starts_per_minute: u32::MAX,
            ..Default::default()
        },
        ids_after: 0,
    };
    let hub = Hub::start(config, Store::open(&dir).expect("a store"))
        .await
        .expect("the hub starts");

    // The queue fills with nobody signed in, a customer connection per
    // chat, 64 starts in flight at a time.
    let filling = Instant::now();
    let mut customers = Vec::new();
    let mut started = 0u64;
    while started < waiting {
        let starts: Vec<_> = (started..waiting.min(started + 64))
            .map(|n| {
                let (sink, mut source) = EventSink::new(hub.next_conn(), 64);
                // Queue positions: read and dropped.
                tokio::spawn(async move { while source.events.recv().await.is_some() {} });
                customers.push(sink.clone());
                let (hub, channel) = (hub.clone(), channel.clone());
                tokio::spawn(async move {
                    hub.start_chat(
                        sink,
                        channel,
                        Customer::default(),
                        1,
                        "hello".into(),
                        // Each chat its own resume secret: a start with the
                        // same secret is a retry of the same chat.
                        format!("a-benchmark-secret-{n:08}").into(),
                    )
                    .await
                })
            })
            .collect();
        for start in starts {
            match start.await.expect("the start runs") {
                Ok(ChatStart::Queued { .. }) => {}
                other => panic!("a chat start was not queued: {other:?}"),
            }
        }
        started = waiting.min(started + 64);
    }
    println!(
        "{routing:?}: {waiting} chats waiting after {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    // Every agent signs in (a snapshot of the queue's first rows each).
    let taken = Arc::new(AtomicU64::new(0));
    let total = agents as u64 * CAPACITY;
    let mut readers = Vec::new();
    for id in &ids {
        let (sink, mut source) = EventSink::new(hub.next_conn(), 1 << 16);
        hub.attach_agent(id, sink, Vec::new())
            .await
            .expect("the agent signs in");
        let (hub, id, taken) = (hub.clone(), id.clone(), taken.clone());
        readers.push(tokio::spawn(async move {
            while let Some((event, _)) = source.events.recv().await {
                if let Outbound::Offered(offer) = event {
                    let accept = hub.accept_offer(id.clone(), offer.row.chat);
                    let taken = taken.clone();
                    tokio::spawn(async move {
                        match accept.await {
                            Ok(_) => {
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(err) => eprintln!("an accept failed: {err}"),
                        }
                    });
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cpu_before = cpu_seconds();
    let measured = Instant::now();
    match routing {
        Routing::Push => {
            // Present: the channel offers each agent chats up to capacity.
            for id in &ids {
                hub.set_status(id, Status::Present)
                    .await
                    .expect("the agent is Present");
            }
        }
        Routing::Pull => {
            for id in &ids {
                hub.set_status(id, Status::Present)
                    .await
                    .expect("the agent is Present");
            }
            let asks: Vec<_> = ids
                .iter()
                .map(|id| {
                    let (hub, id, channel, taken) =
                        (hub.clone(), id.clone(), channel.clone(), taken.clone());
                    tokio::spawn(async move {
                        for _ in 0..CAPACITY {
                            if hub.get_next(id.clone(), channel.clone()).await.is_ok() {
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for ask in asks {
                ask.await.expect("the asks run");
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while taken.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = measured.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let assigned = taken.load(Ordering::Relaxed);
    println!(
        "{routing:?}: {assigned} of {total} assignments with {agents} agents and {} waiting: \
         {:.1} us wall, {:.1} us CPU per assignment ({:.0} assignments/s)",
        waiting - assigned,
        wall.as_secs_f64() * 1e6 / assigned.max(1) as f64,
        cpu * 1e6 / assigned.max(1) as f64,
        assigned as f64 / wall.as_secs_f64()
    );
    for reader in readers {
        reader.abort();
    }
    drop(customers);
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CPU time this process has used, user and system, in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name (in parentheses): state is field 3, utime 14
    // and stime 15, in clock ticks of 1/100 s.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}
