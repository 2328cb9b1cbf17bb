//! Restart recovery: how long a hub takes to start over a store holding
//! many chats, bringing every queued and active one back to life.
//!
//! `cargo bench --bench recovery [-- CHATS LIVE_PERCENT]` (defaults: 100000
//! chats of which 20% live: half queued, half active; the rest ended).

use std::time::{Duration, Instant};

use chathub::actors::{AgentConfig, Hub, HubConfig};
use chathub::core::{
    AgentId, ChannelId, ChannelSettings, ChatEvent, ChatEventKind, ChatId, Customer, Party,
    SessionSummary, Timestamp,
};
use chathub::store::{Op, Store};

fn event(chat: u64, seq: u64, kind: ChatEventKind) -> Op {
    Op::Event(ChatEvent {
        chat: ChatId(chat),
        seq,
        at: Timestamp(1_700_000_000_000 + chat),
        kind,
    })
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let chats: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let live_percent: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("chathub-recovery-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let channels: Vec<ChannelId> = (0..4)
        .map(|n| ChannelId::new(format!("channel{n}")))
        .collect();
    let agents: Vec<AgentId> = (0..20).map(|n| AgentId::new(format!("agent{n}"))).collect();

    let store = Store::open(&dir).expect("the store opens");
    let filled = Instant::now();
    let (mut queued, mut active) = (0, 0);
    for first in (1..=chats).step_by(1000) {
        let mut ops = Vec::new();
        for chat in first..(first + 1000).min(chats + 1) {
            let channel = channels[(chat % 4) as usize].clone();
            ops.push(event(
                chat,
                1,
                ChatEventKind::Started {
                    channel: channel.clone(),
                    customer: Customer::default(),
                },
            ));
            ops.push(event(
                chat,
                2,
                ChatEventKind::Message {
                    from: Party::Customer,
                    client_id: 1,
                    text: "Hello, where is my order?".into(),
                },
            ));
            let roll = chat * 7919 % 100;
            if roll < live_percent / 2 {
                queued += 1;
                continue;
            }
            let agent = agents[(chat % 20) as usize].clone();
            ops.push(event(
                chat,
                3,
                ChatEventKind::Assigned {
                    agent: agent.clone(),
                },
            ));
            if roll < live_percent {
                active += 1;
                continue;
            }
            ops.push(event(
                chat,
                4,
                ChatEventKind::Ended {
                    by: Party::Agent(agent.clone()),
                },
            ));
            ops.push(Op::Session(SessionSummary {
                chat: ChatId(chat),
                channel,
                customer: Customer::default(),
                agent: Some(agent),
                started: Timestamp(chat),
                ended: Timestamp(chat + 1),
                ended_by: Party::Customer,
                events: 4,
            }));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        store
            .writer()
            .submit(ops, Box::new(move |result| drop(tx.send(result))));
        rx.await.expect("an answer").expect("a durable write");
    }
    store.close();
    drop(store);
    println!(
        "stored {chats} chats ({queued} queued, {active} active, {} ended) in {:?}",
        chats - queued - active,
        filled.elapsed()
    );

    let config = HubConfig {
        channels: channels
            .iter()
            .map(|channel| ChannelSettings::new(channel.clone()))
            .collect(),
        agents: agents
            .iter()
            .map(|agent| AgentConfig {
                id: agent.clone(),
                name: agent.to_string(),
                token: chathub::actors::TokenDigest::of("a-benchmark-token-0123"),
                channels: channels.clone(),
                capacity: 10_000,
                role: Default::default(),
                skills: Default::default(),
            })
            .collect(),
        presence_grace: Duration::from_secs(5),
        files: chathub::store::FileBytes::local(dir.join("files")),
        limits: Default::default(),
        ids_after: 0,
    };
    let started = Instant::now();
    let store = Store::open(&dir).expect("the store reopens");
    let hub = Hub::start(config, store).await.expect("the hub recovers");
    let elapsed = started.elapsed();
    println!(
        "recovered {} live chats out of {chats} stored in {elapsed:?}",
        hub.live_chats()
    );
    assert_eq!(
        hub.live_chats() as u64,
        queued + active,
        "every live chat came back"
    );
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
