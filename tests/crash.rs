//! `kill -9` the hub while customers and agents talk, several times, and
//! restart it over the same data folder: every acknowledged message is in
//! its chat's transcript exactly once, at the seq it was acknowledged with,
//! in the order it was sent; no chat is lost or assigned twice; and every
//! client's event stream (kept going by the SDK's reconnect and resume) has
//! no gap and no duplicate.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathub::client::{AgentClient, ClientConfig, CustomerClient, Event, Started};
use chathub::core::{ChatEventKind, ChatId, Customer, Status};
use common::{Acks, Seen, check_seen, check_transcript, drain, free_udp_port, keep_ack, record};

const TOKEN: &str = "crash-test-token-0123456789";
const AGENTS: usize = 3;
const CUSTOMERS: usize = 6;
const KILLS: usize = 4;

struct Hub {
    child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl Hub {
    fn spawn(config: &Path, log: &Path) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_chathub"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the hub binary starts");
        Self {
            child,
            config: config.to_owned(),
            log: log.to_owned(),
        }
    }

    /// `kill -9`, then start again over the same data folder.
    fn crash_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the hub is gone");
        *self = Self::spawn(&self.config, &self.log);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let mut config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npresence_grace_secs = 60\n[metrics]\nenabled = false\n[store]\ncheckpoint_bytes = 65536\n[[channel]]\nname = \"support\"\noffline_form = false\n",
        dir.path().join("data").display()
    );
    for n in 0..AGENTS {
        config.push_str(&format!(
            "[[agent]]\nid = \"agent{n}\"\ntoken = \"{TOKEN}\"\ncapacity = 100\n"
        ));
    }
    let config_path = dir.path().join("chathub.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = dir.path().join("hub.log");
    let mut hub = Hub::spawn(&config_path, &log);

    // Wait for the hub: its certificate, then a first connection.
    let cert = dir.path().join("data").join("cert.pem");
    let mut client = None;
    for _ in 0..300 {
        if cert.exists()
            && let Ok(built) = ClientConfig::builder(([127, 0, 0, 1], port).into())
                .trust_pem_file(&cert)
                .and_then(|builder| builder.idle_timeout(Duration::from_millis(1500)).build())
            && CustomerClient::connect(&built).await.is_ok()
        {
            client = Some(built);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.unwrap_or_else(|| {
        panic!(
            "the hub did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });

    let mut agents = Vec::new();
    for n in 0..AGENTS {
        let agent = AgentClient::connect(&client, format!("agent{n}"), TOKEN)
            .await
            .unwrap();
        agent.set_status(Status::Present).await.unwrap();
        agents.push(agent);
    }
    let mut customers = Vec::new();
    let mut chats = Vec::new();
    for n in 0..CUSTOMERS {
        let customer = CustomerClient::connect(&client).await.unwrap();
        let who = Customer {
            name: Some(format!("customer {n}")),
            email: None,
        };
        let Started::Queued { chat, .. } = customer
            .start_chat("support", who, format!("c{n} hello"))
            .await
            .unwrap()
        else {
            panic!("queued")
        };
        chats.push(chat);
        customers.push(customer);
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let customer_seen: Seen = Arc::default();
    let agent_seen: Vec<Seen> = (0..AGENTS).map(|_| Seen::default()).collect();
    let mut tasks = Vec::new();

    // Customers: send numbered messages one after another, recording acks;
    // and read their events.
    for (n, (customer, &chat)) in customers.iter().zip(&chats).enumerate() {
        let (sender, acks, sender_stop) = (customer.clone(), acks.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (customer, stop) = (sender, sender_stop);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let text = format!("c{n}-{i}");
                keep_ack(
                    &acks,
                    chat,
                    text.clone(),
                    Duration::from_secs(60),
                    customer.send(chat, text),
                )
                .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
        let (customer, seen, stop) = (customer.clone(), customer_seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(event) = drain(customer.next_event()).await {
                    record(&event, &seen);
                }
            }
        }));
    }
    // Agents: take chats, learn their chats from Assigned events, and send
    // numbered messages into each.
    for (n, agent) in agents.iter().enumerate() {
        let (agent, acks, stop, seen) = (
            agent.clone(),
            acks.clone(),
            stop.clone(),
            agent_seen[n].clone(),
        );
        let mine: Arc<Mutex<Vec<ChatId>>> = Arc::default();
        let (events_agent, events_mine, events_stop) = (agent.clone(), mine.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let me = events_agent.profile().id.clone();
            while !events_stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(event) = drain(events_agent.next_event()).await {
                    if let Event::Chat(chat_event) = &event
                        && let ChatEventKind::Assigned { agent } = &chat_event.kind
                        && agent == &me
                    {
                        let mut mine = events_mine.lock().unwrap();
                        if !mine.contains(&chat_event.chat) {
                            mine.push(chat_event.chat);
                        }
                    }
                    record(&event, &seen);
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = agent.get_next("support").await;
                let current: Vec<ChatId> = mine.lock().unwrap().clone();
                for chat in current {
                    let text = format!("a{n}-{i}");
                    keep_ack(
                        &acks,
                        chat,
                        text.clone(),
                        Duration::from_secs(60),
                        agent.send(chat, text),
                    )
                    .await;
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    // Crash the hub at random points while all of that runs.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(400 + rng % 800)).await;
        hub.crash_and_restart();
    }
    // Let every client reconnect and catch up, then stop the traffic.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    // Read every transcript as the hub has it now.
    let reader = AgentClient::connect(&client, "agent0", TOKEN)
        .await
        .unwrap();
    let acks = acks.lock().unwrap().clone();
    let mut total_acked = 0;
    for &chat in &chats {
        let transcript = reader.transcript(chat).await.unwrap();
        let assigned = transcript
            .iter()
            .filter(|event| matches!(event.kind, ChatEventKind::Assigned { .. }))
            .count();
        assert_eq!(assigned, 1, "{chat} was assigned exactly once");
        let acked = acks.get(&chat).cloned().unwrap_or_default();
        total_acked += acked.len();
        let texts = check_transcript(chat, &transcript, &acked);
        // Each sender's messages are stored in the order they were sent.
        let mut last_by_sender: HashMap<String, (u64, u64)> = HashMap::new();
        for (text, seq) in &texts {
            let Some((sender, number)) = text.rsplit_once('-') else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            if let Some((previous, _)) = last_by_sender.insert(sender.to_owned(), (number, *seq)) {
                assert!(previous < number, "{chat}: {sender} out of order");
            }
        }
    }
    assert!(
        total_acked > 50,
        "the test acknowledged only {total_acked} messages"
    );
    println!(
        "{KILLS} kills, {} chats, {total_acked} acknowledged messages verified",
        chats.len()
    );

    // Every application saw each chat's events without a gap or duplicate.
    check_seen("customers", &customer_seen);
    for seen in &agent_seen {
        check_seen("an agent", seen);
    }
    let customers_seen: HashSet<ChatId> = customer_seen.lock().unwrap().keys().copied().collect();
    assert_eq!(
        customers_seen,
        chats.iter().copied().collect(),
        "every customer heard its chat"
    );
    drop(hub);
}
