//! Many agents doing get-next and pick at random against many queued chats,
//! over QUIC: no chat is assigned twice and no agent ever holds more chats
//! than its capacity.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathub::client::{AgentClient, ErrorCode};
use chathub::core::{ChatId, Customer};
use common::TestHub;

const AGENTS: usize = 10;
const CAPACITY: usize = 3;
const CHATS: usize = 300;

fn config() -> String {
    let mut config = String::from(roomy_limits!());
    config.push_str("[[channel]]\nname = \"support\"\noffline_form = false\n");
    for n in 0..AGENTS {
        config.push_str(&format!(
            "[[agent]]\nid = \"agent{n}\"\ntoken = \"{}\"\ncapacity = {CAPACITY}\n",
            common::TOKEN
        ));
    }
    config
}

/// xorshift64: a small deterministic random source per agent.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn work(
    agent: AgentClient,
    seed: u64,
    assigned: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<(ChatId, String)>>>,
) -> (usize, usize) {
    let name = agent.profile().id.to_string();
    let mut rng = Rng(seed);
    let mut held: Vec<ChatId> = Vec::new();
    let (mut refusals, mut races) = (0, 0);
    while assigned.load(Ordering::SeqCst) < CHATS {
        if held.len() == CAPACITY || (!held.is_empty() && rng.next() % 3 == 0) {
            if held.len() == CAPACITY {
                // At capacity the hub must refuse, whichever way we ask.
                let err = agent.get_next("support").await.unwrap_err();
                assert_eq!(
                    err.code(),
                    Some(ErrorCode::AtCapacity),
                    "{name} beyond capacity"
                );
                refusals += 1;
            }
            let chat = held.swap_remove(rng.next() as usize % held.len());
            agent.end_chat(chat).await.unwrap();
            continue;
        }
        let rows = agent
            .incoming("support")
            .map(|list| list.rows)
            .unwrap_or_default();
        let result = if rows.is_empty() || rng.next() % 2 == 0 {
            agent.get_next("support").await
        } else {
            agent
                .pick(rows[rng.next() as usize % rows.len()].chat)
                .await
        };
        match result {
            Ok(assignment) => {
                held.push(assignment.chat);
                assert!(held.len() <= CAPACITY, "{name} holds {} chats", held.len());
                log.lock().unwrap().push((assignment.chat, name.clone()));
                assigned.fetch_add(1, Ordering::SeqCst);
            }
            Err(err) => match err.code() {
                Some(ErrorCode::ChatAlreadyTaken | ErrorCode::ChatEnded) => races += 1,
                Some(ErrorCode::QueueEmpty) => tokio::time::sleep(Duration::from_millis(1)).await,
                _ => panic!("{name}: unexpected error {err}"),
            },
        }
    }
    (refusals, races)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_get_next_and_pick_never_double_assign_or_overbook() {
    let hub = TestHub::start(&config()).await;
    let customers: Vec<_> = futures::future::join_all((0..10).map(|_| hub.customer())).await;
    let starts = (0..CHATS).map(|n| {
        let customer = customers[n % customers.len()].clone();
        async move {
            common::start(
                &customer,
                "support",
                Customer::default(),
                &format!("chat {n}"),
            )
            .await
            .0
        }
    });
    let mut started: Vec<ChatId> = futures::future::join_all(starts).await;

    let agents =
        futures::future::join_all((0..AGENTS).map(|n| hub.present_agent(format!("agent{n}"))))
            .await;
    // Let every agent's incoming list fill from its snapshot.
    for agent in &agents {
        for _ in 0..500 {
            if agent
                .incoming("support")
                .is_some_and(|list| list.rows.len() == CHATS)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let assigned = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let workers = agents.into_iter().enumerate().map(|(n, agent)| {
        tokio::spawn(work(
            agent,
            0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1),
            assigned.clone(),
            log.clone(),
        ))
    });
    let outcomes =
        tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(workers))
            .await
            .expect("the stress run finishes");
    let (mut refusals, mut races) = (0, 0);
    for outcome in outcomes {
        let (r, c) = outcome.expect("no agent task panicked");
        refusals += r;
        races += c;
    }

    let log = std::mem::take(&mut *log.lock().unwrap());
    let mut owners: HashMap<ChatId, Vec<&str>> = HashMap::new();
    for (chat, agent) in log.iter() {
        owners.entry(*chat).or_default().push(agent);
    }
    let doubles: Vec<_> = owners
        .iter()
        .filter(|(_, agents)| agents.len() > 1)
        .collect();
    assert!(doubles.is_empty(), "chats assigned twice: {doubles:?}");
    let mut all: Vec<ChatId> = owners.keys().copied().collect();
    all.sort_unstable();
    started.sort_unstable();
    assert_eq!(all, started, "every chat was assigned exactly once");
    assert!(refusals > 0, "the run reached capacity and saw it enforced");
    println!("{CHATS} chats, {races} lost races, {refusals} capacity refusals");
    hub.stop().await;
}
