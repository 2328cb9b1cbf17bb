//! In-process relay of a chat message through the actors: a post reaches
//! its chat's actor, is made durable through the group-commit writer, and
//! is pushed to the agent's connection sink; no network.
//!
//! `cargo bench --bench relay`

use std::time::{Duration, Instant};

use chathub::actors::{AgentConfig, Caller, ChatStart, EventSink, Hub, HubConfig, Outbound};
use chathub::core::{AgentId, ChannelId, ChannelSettings, Customer};
use chathub::store::Store;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn relay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("chathub-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let support = ChannelId::new("support");
    let alice = AgentId::new("alice");
    let (hub, chat, customer, mut agent_events) = runtime.block_on(async {
        let mut channel = ChannelSettings::new(support.clone());
        channel.offline_form = false;
        let config = HubConfig {
            channels: vec![channel],
            agents: vec![AgentConfig {
                id: alice.clone(),
                name: "Alice".into(),
                token: chathub::actors::TokenDigest::of("a-benchmark-token-0123"),
                channels: vec![support.clone()],
                capacity: 4,
                role: Default::default(),
                skills: Default::default(),
            }],
            presence_grace: Duration::from_secs(5),
            files: chathub::store::FileBytes::local(dir.join("files")),
            // A customer here posts as fast as the hub takes it.
            limits: chathub::core::Limits {
                messages_per_sec: 1e9,
                message_burst: u32::MAX,
                chat_events: u64::MAX,
                chat_bytes: u64::MAX,
                ..Default::default()
            },
            ids_after: 0,
        };
        let hub = Hub::start(config, Store::open(&dir).unwrap())
            .await
            .unwrap();
        let (customer, _customer_events) = EventSink::new(hub.next_conn(), 1 << 20);
        let ChatStart::Queued { chat, .. } = hub
            .start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                1,
                "hello".into(),
                "a-benchmark-secret-01".into(),
            )
            .await
            .unwrap()
        else {
            panic!("queued")
        };
        let (agent_sink, agent_events) = EventSink::new(hub.next_conn(), 1 << 20);
        hub.attach_agent(&alice, agent_sink, Vec::new())
            .await
            .unwrap();
        hub.get_next(alice.clone(), support.clone()).await.unwrap();
        // The transcript so far reaches the agent first: take it out of the way.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut agent_events = agent_events;
        while agent_events.events.try_recv().is_ok() {}
        std::mem::forget(_customer_events);
        (hub, chat, customer, agent_events)
    });
    let mut client_id = 10u64;
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    // 64 messages in flight from the customer until the agent has them all.
    group.bench_function("64 customer messages to the agent, durable", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let posts: Vec<_> = (0..64)
                        .map(|_| {
                            client_id += 1;
                            hub.post(
                                Caller::Customer(customer.conn()),
                                customer.conn(),
                                chat,
                                client_id,
                                "where is my parcel?".into(),
                            )
                        })
                        .collect();
                    for post in posts {
                        post.await.unwrap();
                    }
                    let mut got = 0;
                    while got < 64 {
                        if let Some((Outbound::Chat(_), _)) = agent_events.events.recv().await {
                            got += 1;
                        }
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(hub.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, relay);
criterion_main!(benches);
