//! A hub's commit log on NATS JetStream, against a real `nats-server`
//! (see `common/nats.rs`): the stream is the truth a store rebuilds from,
//! whoever opens the log fences out whoever appended before, a lease keeps
//! a hub from running twice, and a hub that was paused past its lease
//! acknowledges nothing once another has taken over.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathub::client::{AgentClient, ClientConfig, CustomerClient, Event, Started};
use chathub::cluster::{Lease, LeaseError};
use chathub::core::{
    ChannelId, ChatEvent, ChatEventKind, ChatId, Customer, FileId, Party, QueueChange, QueueRow,
    Status, Timestamp,
};
use chathub::protocol::ErrorCode;
use chathub::store::{FileBucket, FileBytes, JetStreamTarget, Op, Store, StoreError, StoreOptions};
use common::nats::{NatsCluster, NatsServer};
use common::process::HubProcess;
use common::{Acks, Seen, check_seen, check_transcript, drain, free_udp_port, keep_ack, record};
use tokio::io::AsyncReadExt;

fn event(chat: u64, seq: u64, kind: ChatEventKind) -> Op {
    Op::Event(ChatEvent {
        chat: ChatId(chat),
        seq,
        at: Timestamp(seq * 10),
        kind,
    })
}

fn started(chat: u64) -> Op {
    event(
        chat,
        1,
        ChatEventKind::Started {
            channel: ChannelId::new("support"),
            customer: Customer::default(),
        },
    )
}

fn message(chat: u64, seq: u64, text: &str) -> Op {
    event(
        chat,
        seq,
        ChatEventKind::Message {
            from: Party::Customer,
            client_id: seq,
            text: text.to_owned(),
        },
    )
}

fn write(store: &Store, ops: Vec<Op>) -> Result<(), StoreError> {
    let (tx, rx) = std_mpsc::channel();
    store
        .writer()
        .submit(ops, Box::new(move |result| tx.send(result).unwrap()));
    rx.recv().unwrap()
}

fn texts(store: &Store, chat: u64) -> Vec<String> {
    let mut texts = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .transcript(ChatId(chat), after)
            .unwrap()
            .expect("the chat is stored");
        for event in &page.events {
            after = event.seq;
            if let ChatEventKind::Message { text, .. } = &event.kind {
                texts.push(text.clone());
            }
        }
        if !page.more {
            return texts;
        }
    }
}

/// Opens a store over `data` whose log is `stream` (off the runtime's
/// threads, as the server does).
async fn open(
    data: PathBuf,
    client: &async_nats::Client,
    stream: &str,
    node: &str,
    epoch: u64,
) -> Result<Store, StoreError> {
    let options = StoreOptions {
        jetstream: Some(JetStreamTarget {
            runtime: tokio::runtime::Handle::current(),
            client: client.clone(),
            stream: stream.to_owned(),
            subject: format!("chathub.test.{stream}"),
            replicas: 1,
            node: node.to_owned(),
            epoch,
        }),
        ..StoreOptions::default()
    };
    std::fs::create_dir_all(&data).unwrap();
    tokio::task::spawn_blocking(move || Store::open_with(&data, options))
        .await
        .unwrap()
}

/// `write` off the runtime's threads.
async fn write_off(store: &Store, ops: Vec<Op>) -> Result<(), StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || write(&store, ops))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_is_rebuilt_from_its_stream_and_the_hub_it_took_over_from_is_fenced_out() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nats) = NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    let client = nats.client().await;
    let first = open(dir.path().join("a"), &client, "T1", "a", 1)
        .await
        .unwrap();
    write_off(&first, vec![started(1), message(1, 2, "one")])
        .await
        .unwrap();
    // A group over what the server takes in one message goes in parts.
    let big = "x".repeat(600 << 10);
    write_off(
        &first,
        vec![
            message(1, 3, &big),
            message(1, 4, &big),
            message(1, 5, "two"),
        ],
    )
    .await
    .unwrap();

    // Another hub opens the same log over an empty data folder: it reads
    // everything acknowledged, and from then on the first can append
    // nothing.
    let second = open(dir.path().join("b"), &client, "T1", "b", 2)
        .await
        .unwrap();
    let rebuilt = texts(&second, 1);
    assert_eq!(rebuilt.len(), 4, "every acknowledged message, once");
    assert_eq!(rebuilt[0], "one");
    assert_eq!(
        rebuilt[1].len(),
        big.len(),
        "a group in parts comes back whole"
    );
    assert_eq!(rebuilt[3], "two");
    let fenced = write_off(&first, vec![message(1, 6, "lost")]).await;
    let fenced = fenced.expect_err("the deposed hub's append fails");
    assert!(
        fenced
            .to_string()
            .contains("another hub took over the commit log"),
        "on the fence: {fenced}"
    );
    // The fence holds for a hub that found the stream empty too: the
    // server takes an expected last sequence of 0 at its word.
    let jetstream = async_nats::jetstream::new(client.clone());
    let stale = jetstream
        .send_publish(
            "chathub.test.T1",
            async_nats::jetstream::message::PublishMessage::build()
                .payload("stale".into())
                .expected_last_sequence(0),
        )
        .await
        .unwrap()
        .await;
    assert!(stale.is_err(), "{stale:?}");
    let again = write_off(&first, vec![message(1, 6, "lost too")]).await;
    assert!(again.is_err(), "and it appends nothing after that");
    write_off(&second, vec![message(1, 6, "three")])
        .await
        .unwrap();
    first.close();
    second.close();
    drop((first, second));

    // The second hub restarts over its own folder: it applies only what its
    // database lacks. A third over an empty folder sees all of it.
    let second = open(dir.path().join("b"), &client, "T1", "b", 3)
        .await
        .unwrap();
    let third = open(dir.path().join("c"), &client, "T1", "c", 4)
        .await
        .unwrap();
    for store in [&second, &third] {
        let texts = texts(store, 1);
        assert_eq!(texts.len(), 5);
        assert_eq!(texts[4], "three", "nothing of the fenced append");
    }
    // A database ahead of the stream (another stream's, say) is refused
    // rather than mixed.
    second.close();
    drop(second);
    let wrong = open(dir.path().join("b"), &client, "T2", "b", 5).await;
    assert!(
        matches!(wrong, Err(StoreError::Open { .. })),
        "{:?}",
        wrong.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_groups_survive_a_crash_of_the_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut nats) = NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    let client = nats.client().await;
    let store = open(dir.path().join("a"), &client, "T3", "a", 1)
        .await
        .unwrap();
    write_off(&store, vec![started(1)]).await.unwrap();
    for seq in 2..50 {
        write_off(&store, vec![message(1, seq, &format!("m{seq}"))])
            .await
            .unwrap();
    }
    store.close();
    drop(store);
    // Every acknowledgement came after the server's sync: a kill -9 of the
    // server loses none of them.
    nats.crash_and_restart().await;
    let client = nats.client().await;
    let store = open(dir.path().join("fresh"), &client, "T3", "a", 2)
        .await
        .unwrap();
    let texts = texts(&store, 1);
    assert_eq!(texts.len(), 48);
    assert_eq!(texts.last().map(String::as_str), Some("m49"));
}

/// Bytes that no two files of these tests share, in more than one of the
/// object store's chunks.
fn file_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ seed)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitions_files_are_served_by_its_next_owner_and_removed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut nats) = NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    let client = nats.client().await;
    let target = FileBucket {
        client: client.clone(),
        bucket: "chathub_files_test".into(),
        replicas: 1,
    };
    let first_dir = dir.path().join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let first = FileBytes::replicated(&first_dir, &target).await.unwrap();
    let (kept, orphan) = (FileId(7), FileId(8));
    let bytes = file_bytes(1, 300 * 1024);
    for id in [kept, orphan] {
        std::fs::write(first.path(id), &bytes).unwrap();
        first.keep(id).await.unwrap();
    }
    drop(first);
    // Acknowledged by a server that syncs: a crash of it loses nothing.
    nats.crash_and_restart().await;
    let client = nats.client().await;
    let target = FileBucket { client, ..target };

    // The next owner's folder is empty: a start's sweep removes the file
    // whose share was never stored, and counts the one that was.
    let next_dir = dir.path().join("next");
    std::fs::create_dir_all(&next_dir).unwrap();
    let next = FileBytes::replicated(&next_dir, &target).await.unwrap();
    let used = next
        .sweep(std::collections::HashSet::from([kept.0]))
        .await
        .unwrap();
    assert_eq!(used, bytes.len() as u64, "only the recorded file counts");
    let err = next.open(orphan).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");

    // The recorded file is fetched on its first download, then read from
    // the folder.
    let mut fetched = Vec::new();
    next.open(kept)
        .await
        .unwrap()
        .read_to_end(&mut fetched)
        .await
        .unwrap();
    assert!(fetched == bytes, "the bytes kept are the bytes served");
    assert!(next.path(kept).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&next_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    // Erased: gone from the folder and the bucket, for every later owner.
    assert_eq!(next.remove(kept).await.unwrap(), Some(bytes.len() as u64));
    let last_dir = dir.path().join("last");
    std::fs::create_dir_all(&last_dir).unwrap();
    let last = FileBytes::replicated(&last_dir, &target).await.unwrap();
    assert!(last.open(kept).await.is_err());
    assert_eq!(
        last.sweep(std::collections::HashSet::new()).await.unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_while_renewed_and_taken_once_its_holder_stops() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nats) = NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    let client = nats.client().await;
    let ttl = Duration::from_secs(1);
    let bucket = async_nats::jetstream::new(client.clone())
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "leases".into(),
            history: 1,
            max_age: ttl,
            ..Default::default()
        })
        .await
        .unwrap();
    let holder = Lease::take(&bucket, "p1", "one", ttl, ttl).await.unwrap();
    // Renewed all along: a contender waiting several lease times gets
    // nothing.
    let held = Lease::take(&bucket, "p1", "two", ttl, ttl * 3).await;
    match held {
        Err(LeaseError::Held { holder, .. }) => assert_eq!(holder, "one"),
        other => panic!("the lease is held: {other:?}"),
    }
    // The holder dies without a word: after a lease time it is taken, at
    // a later epoch, and the old holder learns it lost it.
    let epoch = holder.epoch();
    drop(holder);
    let taken = Lease::take(&bucket, "p1", "two", ttl, ttl * 5)
        .await
        .unwrap();
    assert!(taken.epoch() > epoch);
    // Given up on purpose, it is free at once.
    taken.release().await;
    let started = std::time::Instant::now();
    let next = Lease::take(&bucket, "p1", "three", ttl, ttl * 5)
        .await
        .unwrap();
    assert!(
        started.elapsed() < ttl,
        "a released lease is taken without waiting: {:?}",
        started.elapsed()
    );
    drop(next);
}

/// A hub of a cluster of one NATS server, serving channel `support`.
fn spawn_hub(dir: &Path, name: &str, node: &str, nats: &str, port: u16) -> HubProcess {
    let data = dir.join(name);
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\npresence_grace_secs = 60\n\
         [metrics]\nenabled = false\n\
         [cluster]\nnode = \"{node}\"\nnats = [\"{nats}\"]\nlease_ttl = \"1s\"\nreplicas = 1\npartitions = 2\n\
         [[channel]]\nname = \"support\"\noffline_form = false\n\
         [[agent]]\nid = \"agent\"\ntoken = \"{TOKEN}\"\ncapacity = 10\n",
        data.display()
    );
    HubProcess::spawn_with(dir, name, &toml)
}

const TOKEN: &str = "cluster-test-token-0123456789";

/// A client of the hub in `data`, once it is up.
async fn client_of(hub: &HubProcess, data: &Path, port: u16) -> ClientConfig {
    let cert = data.join("cert.pem");
    for _ in 0..400 {
        if cert.exists()
            && let Ok(built) = ClientConfig::builder(([127, 0, 0, 1], port).into())
                .trust_pem_file(&cert)
                .and_then(|builder| builder.idle_timeout(Duration::from_millis(1500)).build())
            && CustomerClient::connect(&built).await.is_ok()
        {
            return built;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hub did not come up: {}", hub.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_paused_past_its_lease_acknowledges_nothing_once_another_took_over() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nats) = NatsServer::start(&dir.path().join("nats")).await else {
        return;
    };
    let first_port = free_udp_port();
    let first = spawn_hub(dir.path(), "first", "h1", &nats.url(), first_port);
    let first_client = client_of(&first, &dir.path().join("first"), first_port).await;
    let customer = CustomerClient::connect(&first_client).await.unwrap();
    // The hub takes its partitions a moment after it listens.
    let Started::Queued { chat, .. } =
        retry(|| customer.start_chat("support", Customer::default(), "hello")).await
    else {
        panic!("queued")
    };
    let mut acknowledged = vec!["hello".to_owned()];
    for n in 0..5 {
        let text = format!("before {n}");
        customer.send(chat, text.clone()).await.unwrap();
        acknowledged.push(text);
    }

    // The first hub stops (a pause, a partition) for twice its lease; a
    // second process of the same node takes the log over meanwhile.
    first.signal("-STOP");
    let second_port = free_udp_port();
    let second = spawn_hub(dir.path(), "second", "h1", &nats.url(), second_port);
    let second_client = client_of(&second, &dir.path().join("second"), second_port).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.signal("-CONT");

    // Whatever the first hub still has in hand, it acknowledges nothing:
    // its appends are fenced and its leases gone, so it gives its
    // partitions up. A message is acknowledged only where it is stored:
    // sent again by the SDK to the hub that serves the chat now.
    let late = tokio::time::timeout(
        Duration::from_secs(10),
        customer.send(chat, "after the pause"),
    )
    .await;
    if let Ok(Ok(_)) = late {
        acknowledged.push("after the pause".to_owned());
    }
    let mut log = String::new();
    for _ in 0..200 {
        log = first.log();
        if log.contains("giving partition") || log.contains("lost this hub's membership") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log.contains("giving partition") || log.contains("lost this hub's membership"),
        "the deposed hub gives its partitions up, and says so: {log}"
    );
    assert!(
        log.contains("another hub took over the commit log") || log.contains("lease"),
        "and why: {log}"
    );

    // The second hub, over a folder of its own, has the chat with every
    // acknowledged message, and carries on with it.
    let agent = retry(|| AgentClient::connect(&second_client, "agent", TOKEN)).await;
    agent.set_status(Status::Present).await.unwrap();
    let assignment = agent.get_next("support").await.unwrap();
    assert_eq!(assignment.chat, chat, "the waiting chat, back in its queue");
    let transcript = agent.transcript(chat).await.unwrap();
    let texts: Vec<String> = transcript
        .into_iter()
        .filter_map(|event| match event.kind {
            ChatEventKind::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts, acknowledged,
        "every acknowledged message, once, in order"
    );
    agent.send(chat, "hello from the new hub").await.unwrap();
    drop(second);
}

/// Three hubs over one NATS server sharing four channels, one per
/// partition, with a certificate of their own for all.
struct Trio {
    /// The NATS server, when the trio runs over one of its own.
    _nats: Option<NatsServer>,
    nats_urls: Vec<String>,
    replicas: usize,
    hubs: Vec<Option<HubProcess>>,
    ports: Vec<u16>,
    dir: PathBuf,
    client: ClientConfig,
    jetstream: async_nats::jetstream::Context,
}

const CHANNELS: usize = 4;

/// Agents of one chat each per channel, contending for its chats.
const CONTENDERS: usize = 3;

/// Agents per channel who only come and go (Present, Absent).
const PRESENCE_AGENTS: usize = 50;

impl Trio {
    /// Three hubs over a NATS server of their own.
    async fn start(dir: &Path) -> Option<Self> {
        let nats = NatsServer::start(&dir.join("nats")).await?;
        let urls = vec![nats.url()];
        Some(Self::over(dir, urls, 1, Some(nats)).await)
    }

    /// Three hubs over the NATS servers at `nats_urls`, keeping `replicas`
    /// copies of everything.
    async fn over(
        dir: &Path,
        nats_urls: Vec<String>,
        replicas: usize,
        nats: Option<NatsServer>,
    ) -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), signing_key.serialize_pem()).unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
        let mut trio = Self {
            hubs: Vec::new(),
            ports: ports.clone(),
            dir: dir.to_owned(),
            client: {
                let mut builder = ClientConfig::builder(([127, 0, 0, 1], ports[0]).into())
                    .trust_pem_file(dir.join("cert.pem"))
                    .unwrap()
                    .idle_timeout(Duration::from_millis(1500));
                for port in &ports[1..] {
                    builder = builder.also(([127, 0, 0, 1], *port).into());
                }
                builder.build().unwrap()
            },
            jetstream: async_nats::jetstream::new(
                async_nats::connect(nats_urls.as_slice()).await.unwrap(),
            ),
            _nats: nats,
            nats_urls,
            replicas,
        };
        for n in 0..3 {
            let hub = trio.spawn(n);
            trio.hubs.push(Some(hub));
        }
        trio
    }

    fn spawn(&self, n: usize) -> HubProcess {
        let mut toml = format!(
            "listen = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\npresence_grace_secs = 60\n\
             [metrics]\nenabled = false\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [limits]\nmessages_per_sec = 100000.0\nmessage_burst = 100000\n\
             [cluster]\nnode = \"h{n}\"\nnats = [{}]\nlease_ttl = \"1s\"\nreplicas = {}\npartitions = {CHANNELS}\n",
            self.ports[n],
            self.dir.join(format!("h{n}")).display(),
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display(),
            self.nats_urls
                .iter()
                .map(|url| format!("\"{url}\""))
                .collect::<Vec<_>>()
                .join(", "),
            self.replicas,
        );
        // `help` offers its offline form when nobody is Present; it shares
        // c0's partition and the p0 agents.
        toml.push_str("[[channel]]\nname = \"help\"\noffline_form = true\npartition = 0\n");
        for c in 0..CHANNELS {
            toml.push_str(&format!(
                "[[channel]]\nname = \"c{c}\"\noffline_form = false\npartition = {c}\n"
            ));
            // a{c} holds many chats; a{c}_{k} one each (so more of them
            // want chats than wait); w{c} only watches.
            let mut agents = vec![(format!("a{c}"), 10)];
            agents.extend((0..CONTENDERS).map(|k| (format!("a{c}_{k}"), 1)));
            agents.push((format!("w{c}"), 1));
            agents.extend((0..PRESENCE_AGENTS).map(|k| (format!("p{c}_{k}"), 1)));
            for (id, capacity) in agents {
                let help = if c == 0 && id.starts_with('p') {
                    ", \"help\""
                } else {
                    ""
                };
                toml.push_str(&format!(
                    "[[agent]]\nid = \"{id}\"\ntoken = \"{TOKEN}\"\ncapacity = {capacity}\nchannels = [\"c{c}\"{help}]\n"
                ));
            }
        }
        HubProcess::spawn_with(&self.dir, &format!("h{n}"), &toml)
    }

    /// A customer's chat on channel `c` (its first message `c{c}-0`),
    /// taken by agent `a{c}`.
    async fn served_chat(&self, c: usize) -> (CustomerClient, ChatId, AgentClient) {
        let customer = settled(self, || CustomerClient::connect(&self.client)).await;
        let Started::Queued { chat, .. } = settled(self, || {
            customer.start_chat(format!("c{c}"), Customer::default(), format!("c{c}-0"))
        })
        .await
        else {
            panic!("queued")
        };
        let agent = settled(self, || {
            AgentClient::connect(&self.client, format!("a{c}"), TOKEN)
        })
        .await;
        agent.set_status(Status::Present).await.unwrap();
        let assignment = settled(self, || agent.get_next(format!("c{c}"))).await;
        assert_eq!(assignment.chat, chat);
        (customer, chat, agent)
    }

    /// The node owning `partition` now, as its lease says.
    async fn owner(&self, partition: usize) -> Option<usize> {
        let bucket = self
            .jetstream
            .get_key_value("chathub_partitions")
            .await
            .ok()?;
        let value = bucket.get(format!("p{partition}")).await.ok()??;
        let text = String::from_utf8(value.to_vec()).ok()?;
        text.strip_prefix('h')?.split(' ').next()?.parse().ok()
    }

    /// The last lines each hub logged, but for its configuration
    /// warnings.
    fn logs(&self) -> String {
        (0..3)
            .map(|n| {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("h{n}.log"))).unwrap_or_default();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|line| !line.contains("in clear") && !line.contains("UDP receive"))
                    .collect();
                let tail = &lines[lines.len().saturating_sub(25)..];
                format!("--- h{n}:\n{}\n", tail.join("\n"))
            })
            .collect()
    }
}

/// Retries `attempt` while the cluster is settling (a partition changing
/// hands answers `Unavailable`), for up to 30 s.
async fn settled<T, F, Fut>(trio: &Trio, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, chathub::client::ClientError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), attempt()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(err)) if tokio::time::Instant::now() < deadline => {
                tracing_note(&err.to_string());
            }
            Err(_) if tokio::time::Instant::now() < deadline => tracing_note("timed out"),
            Ok(Err(err)) => panic!("the cluster did not settle: {err}\n{}", trio.logs()),
            Err(_) => panic!("the cluster did not settle: timed out\n{}", trio.logs()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retries `attempt` for up to 10 s while it fails (a hub that has not
/// taken its partitions yet answers `Unavailable`).
async fn retry<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, chathub::client::ClientError>>,
{
    for _ in 0..100 {
        match attempt().await {
            Ok(value) => return value,
            Err(err) => tracing_note(&err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    attempt().await.expect("served within 10 s")
}

fn tracing_note(what: &str) {
    eprintln!("retrying: {what}");
}

fn message_texts(events: Vec<ChatEvent>) -> Vec<String> {
    events
        .into_iter()
        .filter_map(|event| match event.kind {
            ChatEventKind::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_sent_to_the_partitions_owner_and_carry_on_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut trio) = Trio::start(dir.path()).await else {
        return;
    };
    // Every channel's chat lands in its partition, whichever hub the
    // customer reached first.
    let mut chats = Vec::new();
    let mut customers = Vec::new();
    for c in 0..CHANNELS {
        let customer = settled(&trio, || CustomerClient::connect(&trio.client)).await;
        let started = settled(&trio, || {
            customer.start_chat(format!("c{c}"), Customer::default(), format!("hello {c}"))
        })
        .await;
        let Started::Queued { chat, .. } = started else {
            panic!("queued")
        };
        assert_eq!(
            chathub::core::partition::of_id(chat.0),
            c as u32,
            "a chat lives in its channel's partition"
        );
        chats.push(chat);
        customers.push(customer);
    }
    let mut agents = Vec::new();
    for c in 0..CHANNELS {
        let agent = settled(&trio, || {
            AgentClient::connect(&trio.client, format!("a{c}"), TOKEN)
        })
        .await;
        agent.set_status(Status::Present).await.unwrap();
        let assignment = settled(&trio, || agent.get_next(format!("c{c}"))).await;
        assert_eq!(assignment.chat, chats[c]);
        customers[c].send(chats[c], "before").await.unwrap();
        agents.push(agent);
    }
    // A file shared before the kill lives beyond its hub.
    let shared = file_bytes(2, 200 * 1024);
    let (file, _) = customers[0]
        .send_file(chats[0], "invoice.pdf", "application/pdf", &shared)
        .await
        .unwrap();

    // kill -9 the owner of partition 0.
    let owner = trio.owner(0).await.expect("partition 0 is owned");
    let mut killed = trio.hubs[owner].take().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    drop(killed);

    // Its customer and agent come back through the other hubs to the new
    // owner, which took the partition over with the chat and its agent.
    let after = settled(&trio, || customers[0].send(chats[0], "after")).await;
    assert!(after > 0);
    let transcript = settled(&trio, || agents[0].transcript(chats[0])).await;
    assert_eq!(
        message_texts(transcript),
        ["hello 0", "before", "after"],
        "every acknowledged message once, in order"
    );
    let reply = settled(&trio, || agents[0].send(chats[0], "still here")).await;
    assert!(reply > after, "the chat is still the agent's");
    let (_, downloaded) = settled(&trio, || agents[0].download(file.id)).await;
    assert!(
        downloaded == shared,
        "the new owner serves the file's bytes"
    );
    let new_owner = trio.owner(0).await.expect("partition 0 is owned again");
    assert_ne!(new_owner, owner);
    // The other partitions carry on too.
    for c in 1..CHANNELS {
        settled(&trio, || customers[c].send(chats[c], "after")).await;
    }
    // The killed hub comes back and takes its share again, by handover.
    trio.hubs[owner] = Some(trio.spawn(owner));
    for c in 0..CHANNELS {
        settled(&trio, || customers[c].send(chats[c], "once more")).await;
        let texts = message_texts(settled(&trio, || agents[c].transcript(chats[c])).await);
        assert_eq!(texts.iter().filter(|text| *text == "once more").count(), 1);
    }
    let (_, downloaded) = settled(&trio, || customers[0].download(file.id)).await;
    assert!(downloaded == shared, "whichever hub owns the partition now");
}

/// The first queue snapshot of `channel` a newly attached agent gets.
async fn snapshot(agent: &AgentClient, channel: &str) -> Vec<QueueRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Some(Event::Queue(update)) = drain(agent.next_event()).await
            && update.channel.as_str() == channel
            && let QueueChange::Snapshot(rows) = update.change
        {
            return rows;
        }
    }
    panic!("no queue snapshot of {channel}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_random_hubs_under_load_loses_and_doubles_nothing() {
    const WAITING: usize = 2;
    // CHATHUB_CLUSTER_KILLS=20 for a longer run.
    let kills: usize = std::env::var("CHATHUB_CLUSTER_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let Some(mut trio) = Trio::start(dir.path()).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let customers_seen: Seen = Arc::default();
    let agents_seen: Seen = Arc::default();
    let mut tasks = Vec::new();
    let mut assigned: HashMap<ChatId, String> = HashMap::new();
    let mut waiting: Vec<Vec<QueueRow>> = Vec::new();
    let mut chats_of: Vec<Vec<ChatId>> = Vec::new();
    for c in 0..CHANNELS {
        // More chats than contenders: some are taken, the rest wait.
        let mut chats = Vec::new();
        let mut customers = Vec::new();
        for n in 0..CONTENDERS + WAITING {
            let customer = settled(&trio, || CustomerClient::connect(&trio.client)).await;
            let Started::Queued { chat, .. } = settled(&trio, || {
                customer.start_chat(format!("c{c}"), Customer::default(), format!("c{c}n{n}-0"))
            })
            .await
            else {
                panic!("queued")
            };
            chats.push(chat);
            customers.push(customer);
        }
        // The contenders all ask at once: each chat goes to one of them.
        let mut contenders = Vec::new();
        for k in 0..CONTENDERS {
            let agent = settled(&trio, || {
                AgentClient::connect(&trio.client, format!("a{c}_{k}"), TOKEN)
            })
            .await;
            agent.set_status(Status::Present).await.unwrap();
            contenders.push(agent);
        }
        let asks = contenders
            .iter()
            .map(|agent| agent.get_next(format!("c{c}")));
        for (k, answer) in futures::future::join_all(asks)
            .await
            .into_iter()
            .enumerate()
        {
            let chat = answer.expect("a chat for every contender").chat;
            let before = assigned.insert(chat, format!("a{c}_{k}"));
            assert!(before.is_none(), "{chat} handed out twice");
        }
        let watcher = settled(&trio, || {
            AgentClient::connect(&trio.client, format!("w{c}"), TOKEN)
        })
        .await;
        let rows = snapshot(&watcher, &format!("c{c}")).await;
        assert_eq!(
            rows.iter().map(|row| row.chat).collect::<Vec<_>>(),
            chats[CONTENDERS..].to_vec(),
            "the chats nobody took wait in the order they came"
        );
        waiting.push(rows);

        // Customers of taken chats and their agents talk until told to
        // stop; every client keeps what it sees; the agents keep asking
        // for more (they may get none: each holds all it may).
        for (n, customer) in customers.into_iter().enumerate() {
            let chat = chats[n];
            if !assigned.contains_key(&chat) {
                // Its customer only listens.
                let (seen, stop) = (customers_seen.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        if let Some(event) = drain(customer.next_event()).await {
                            record(&event, &seen);
                        }
                    }
                }));
                continue;
            }
            let (sender, acks, stop_sending) = (customer.clone(), acks.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 1;
                while !stop_sending.load(Ordering::SeqCst) {
                    let text = format!("c{c}n{n}-{i}");
                    keep_ack(
                        &acks,
                        chat,
                        text.clone(),
                        Duration::from_secs(5),
                        sender.send(chat, text),
                    )
                    .await;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
            let (seen, stop) = (customers_seen.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(event) = drain(customer.next_event()).await {
                        record(&event, &seen);
                    }
                }
            }));
        }
        for (k, agent) in contenders.into_iter().enumerate() {
            let name = format!("a{c}_{k}");
            let chat = *assigned
                .iter()
                .find(|(_, holder)| **holder == name)
                .expect("each contender holds a chat")
                .0;
            let (sender, acks, stop_sending) = (agent.clone(), acks.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 1;
                while !stop_sending.load(Ordering::SeqCst) {
                    let text = format!("{name}-{i}");
                    keep_ack(
                        &acks,
                        chat,
                        text.clone(),
                        Duration::from_secs(5),
                        sender.send(chat, text),
                    )
                    .await;
                    if i % 10 == 0 {
                        // At capacity: nothing more may be handed out.
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            sender.get_next(format!("c{c}")),
                        )
                        .await;
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
            let (seen, stop) = (agents_seen.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if let Some(event) = drain(agent.next_event()).await {
                        record(&event, &seen);
                    }
                }
            }));
        }
        chats_of.push(chats);
    }

    // kill -9 a random hub, bring it back, again and again, with the
    // traffic running.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Per kill of a hub that owned partitions: until another hub held
    // their leases, and until a chat of theirs had a message acknowledged.
    let mut leases_taken = Vec::new();
    let mut first_acks = Vec::new();
    for _ in 0..kills {
        let victim = (next() % 3) as usize;
        tokio::time::sleep(Duration::from_millis(500 + next() % 1000)).await;
        let mut moved = Vec::new();
        for partition in 0..CHANNELS {
            if trio.owner(partition).await == Some(victim) {
                moved.push(partition);
            }
        }
        let moved_chats: Vec<ChatId> = moved
            .iter()
            .flat_map(|partition| chats_of[*partition].iter().copied())
            .filter(|chat| assigned.contains_key(chat))
            .collect();
        let acked_before = |acks: &Acks| -> usize {
            let acks = acks.lock().unwrap();
            moved_chats
                .iter()
                .map(|chat| acks.get(chat).map_or(0, Vec::len))
                .sum()
        };
        let before = acked_before(&acks);
        let mut hub = trio.hubs[victim].take().unwrap();
        hub.child.kill().unwrap();
        hub.child.wait().unwrap();
        drop(hub);
        let killed = tokio::time::Instant::now();
        let back = killed + Duration::from_millis(1500 + next() % 1000);
        if !moved.is_empty() {
            let (mut leased, mut acked) = (None, None);
            while (leased.is_none() || acked.is_none())
                && killed.elapsed() < Duration::from_secs(15)
            {
                if leased.is_none() {
                    let mut all = true;
                    for partition in &moved {
                        let owner = trio.owner(*partition).await;
                        all &= owner.is_some() && owner != Some(victim);
                    }
                    if all {
                        leased = Some(killed.elapsed());
                    }
                }
                if acked.is_none() && acked_before(&acks) > before {
                    acked = Some(killed.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            leases_taken.push(leased.expect("the dead hub's partitions are taken over"));
            first_acks.push(acked.expect("a moved chat is served again"));
        }
        tokio::time::sleep_until(back).await;
        trio.hubs[victim] = Some(trio.spawn(victim));
    }
    // Let every client come back and catch up, then stop.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    let acks = acks.lock().unwrap().clone();
    let mut total = 0;
    for c in 0..CHANNELS {
        let watcher = settled(&trio, || {
            AgentClient::connect(&trio.client, format!("w{c}"), TOKEN)
        })
        .await;
        // The chats nobody took still wait, in their order, with the time
        // they started waiting.
        assert_eq!(
            snapshot(&watcher, &format!("c{c}")).await,
            waiting[c],
            "c{c}'s queue as it was"
        );
        for &chat in &chats_of[c] {
            let transcript = settled(&trio, || watcher.transcript(chat)).await;
            let holders: Vec<_> = transcript
                .iter()
                .filter_map(|event| match &event.kind {
                    ChatEventKind::Assigned { agent } => Some(agent.as_str().to_owned()),
                    _ => None,
                })
                .collect();
            match assigned.get(&chat) {
                Some(holder) => {
                    assert_eq!(
                        &holders,
                        std::slice::from_ref(holder),
                        "{chat}: assigned once"
                    )
                }
                None => assert!(holders.is_empty(), "{chat} waits: assigned to nobody"),
            }
            let acked = acks.get(&chat).cloned().unwrap_or_default();
            total += acked.len();
            check_transcript(chat, &transcript, &acked);
        }
    }
    assert!(
        total > 200,
        "only {total} acknowledged messages: the load did not run"
    );
    check_seen("customers", &customers_seen);
    check_seen("agents", &agents_seen);
    println!("{kills} kills of random hubs: {total} acknowledged messages verified");
    // The failover's timeline: from the hubs' logs, how long taking a
    // partition took once its lease was held.
    let (mut opened, mut recovered) = (Vec::new(), Vec::new());
    for n in 0..3 {
        let log = std::fs::read_to_string(trio.dir.join(format!("h{n}.log"))).unwrap_or_default();
        for line in log.lines().filter(|line| line.contains("took partition")) {
            let field = |name: &str| -> Option<u64> {
                let at = line.find(&format!("{name}="))? + name.len() + 1;
                line[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            if let (Some(open), Some(recover)) = (field("opened_ms"), field("recovered_ms")) {
                opened.push(Duration::from_millis(open));
                recovered.push(Duration::from_millis(recover));
            }
        }
    }
    let summary = |what: &str, mut times: Vec<Duration>| {
        times.sort();
        if let (Some(max), false) = (times.last(), times.is_empty()) {
            println!(
                "{what}: p50 {:?}, max {max:?} over {}",
                times[times.len() / 2],
                times.len()
            );
        }
    };
    summary(
        "kill -> the dead hub's partitions leased by others",
        leases_taken,
    );
    summary(
        "takeover appended and stream applied (per partition)",
        opened,
    );
    summary("chats back in their actors (per partition)", recovered);
    summary(
        "kill -> first acknowledged message on a moved chat",
        first_acks,
    );
}

/// What a sender was told, with when it asked and when it was answered.
type TimedAcks = Arc<
    Mutex<
        Vec<(
            ChatId,
            String,
            u64,
            tokio::time::Instant,
            tokio::time::Instant,
        )>,
    >,
>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_servers_dying_lose_nothing_acknowledged_and_without_a_quorum_nothing_is_acknowledged()
{
    let dir = tempfile::tempdir().unwrap();
    let Some(mut nats) = NatsCluster::start(&dir.path().join("nats")).await else {
        return;
    };
    let trio = Trio::over(dir.path(), nats.urls(), 3, None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acks: TimedAcks = Arc::default();
    let mut chats = Vec::new();
    let mut tasks = Vec::new();
    let mut agents = Vec::new();
    for c in 0..CHANNELS {
        let (customer, chat, agent) = trio.served_chat(c).await;
        agents.push(agent);
        chats.push(chat);
        let (acks, stop) = (acks.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                let text = format!("c{c}-{i}");
                let asked = tokio::time::Instant::now();
                if let Ok(Ok(seq)) =
                    tokio::time::timeout(Duration::from_secs(5), customer.send(chat, text.clone()))
                        .await
                {
                    let answered = tokio::time::Instant::now();
                    acks.lock()
                        .unwrap()
                        .push((chat, text, seq, asked, answered));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let acked = || acks.lock().unwrap().len();

    // One server of three dies and comes back: the streams keep a quorum.
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.kill(1);
    tokio::time::sleep(Duration::from_secs(6)).await;
    nats.restart(1);
    nats.wait_for_jetstream().await;
    let before = acked();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        acked() > before,
        "acknowledgements go on once the server is back"
    );

    // Two of three die: nothing is acknowledged without a quorum.
    nats.kill(0);
    nats.kill(2);
    let lost = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let back = tokio::time::Instant::now();
    nats.restart(0);
    nats.restart(2);
    nats.wait_for_jetstream().await;
    // Then the hubs take their partitions again and the traffic resumes.
    let resumed = settled(&trio, || async {
        let before = acked();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if acked() > before {
            Ok(())
        } else {
            Err(chathub::client::ClientError::Closed(
                "no acknowledgement yet".into(),
            ))
        }
    });
    resumed.await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }

    let acks = acks.lock().unwrap().clone();
    // A request sent a second after the quorum was gone (one in flight
    // may have been appended just before) is answered, if at all, only
    // once the quorum is back.
    let margin = Duration::from_secs(1);
    for (chat, text, _, asked, answered) in &acks {
        assert!(
            !(*asked > lost + margin && *answered < back),
            "{chat}: {text:?} acknowledged without a quorum"
        );
    }
    for (c, chat) in chats.iter().enumerate() {
        let transcript = settled(&trio, || agents[c].transcript(*chat)).await;
        let texts: Vec<(String, u64)> = transcript
            .iter()
            .filter_map(|event| match &event.kind {
                ChatEventKind::Message { text, .. } => Some((text.clone(), event.seq)),
                _ => None,
            })
            .collect();
        for (acked_chat, text, seq, _, _) in &acks {
            if acked_chat == chat {
                assert_eq!(
                    texts
                        .iter()
                        .filter(|(stored, _)| stored == text)
                        .map(|(_, at)| *at)
                        .collect::<Vec<_>>(),
                    vec![*seq],
                    "{chat}: acknowledged {text:?} at {seq}, once"
                );
            }
        }
    }
    println!(
        "{} acknowledged messages verified across NATS server failures",
        acks.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_and_removing_a_hub_moves_partitions_with_no_error_but_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut trio) = Trio::start(dir.path()).await else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Acks = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut chats = Vec::new();
    let mut agents = Vec::new();
    let mut tasks = Vec::new();
    for c in 0..CHANNELS {
        let (customer, chat, agent) = trio.served_chat(c).await;
        agents.push(agent);
        chats.push(chat);
        let (acks, errors, stop) = (acks.clone(), errors.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                let text = format!("c{c}-{i}");
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    customer.send(chat, text.clone()),
                )
                .await
                {
                    Ok(Ok(seq)) => acks
                        .lock()
                        .unwrap()
                        .entry(chat)
                        .or_default()
                        .push((text, seq)),
                    Ok(Err(chathub::client::ClientError::Refused(error)))
                        if error.code == ErrorCode::Unavailable => {}
                    Ok(Err(err)) => errors.lock().unwrap().push(format!("{chat}: {err}")),
                    Err(_) => errors
                        .lock()
                        .unwrap()
                        .push(format!("{chat}: no answer in 10 s")),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let owners = async |trio: &Trio| {
        let mut owners = Vec::new();
        for partition in 0..CHANNELS {
            owners.push(trio.owner(partition).await);
        }
        owners
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = owners(&trio).await;
    // One hub stops (SIGTERM): it hands its partitions over as it goes.
    let leaving = trio.hubs[2].take().unwrap();
    leaving.signal("-TERM");
    let mut leaving = leaving;
    let status = tokio::task::spawn_blocking(move || leaving.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "a hub stops cleanly: {}", trio.logs());
    let without = settled(&trio, || async {
        let now = owners(&trio).await;
        if now.iter().all(|owner| matches!(owner, Some(0 | 1))) {
            Ok(now)
        } else {
            Err(chathub::client::ClientError::Closed(format!(
                "owners {now:?}"
            )))
        }
    })
    .await;
    // It comes back: the partitions it prefers move to it again.
    trio.hubs[2] = Some(trio.spawn(2));
    let with = settled(&trio, || async {
        let now = owners(&trio).await;
        if now == before {
            Ok(now)
        } else {
            Err(chathub::client::ClientError::Closed(format!(
                "owners {now:?}"
            )))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "errors other than Unavailable: {errors:?}"
    );
    let acks = acks.lock().unwrap().clone();
    for (c, chat) in chats.iter().enumerate() {
        let texts = message_texts(settled(&trio, || agents[c].transcript(*chat)).await);
        for (text, _) in acks.get(chat).into_iter().flatten() {
            assert_eq!(
                texts.iter().filter(|stored| *stored == text).count(),
                1,
                "{chat}: acknowledged {text:?} once"
            );
        }
    }
    println!("owners {before:?} -> {without:?} -> {with:?}, no error but Unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn present_counts_stay_exact_across_hubs_while_a_hub_dies() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut trio) = Trio::start(dir.path()).await else {
        return;
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // 200 agents, each Present or not at random.
    let mut agents = Vec::new();
    let mut truth: Vec<Vec<bool>> = vec![vec![false; PRESENCE_AGENTS]; CHANNELS];
    for (c, truth) in truth.iter_mut().enumerate() {
        let mut channel = Vec::new();
        for (k, present) in truth.iter_mut().enumerate() {
            let agent = settled(&trio, || {
                AgentClient::connect(&trio.client, format!("p{c}_{k}"), TOKEN)
            })
            .await;
            if next() % 2 == 0 {
                settled(&trio, || agent.set_status(Status::Present)).await;
                *present = true;
            }
            channel.push(agent);
        }
        agents.push(channel);
    }
    // They come and go while a hub dies and comes back; each change is
    // made until the hub that serves the agent has it.
    let victim = trio.owner(0).await.expect("partition 0 is owned");
    for round in 0..120 {
        if round == 40 {
            let mut hub = trio.hubs[victim].take().unwrap();
            hub.child.kill().unwrap();
            hub.child.wait().unwrap();
        }
        if round == 80 {
            trio.hubs[victim] = Some(trio.spawn(victim));
        }
        // Half the changes are of the dying hub's partition.
        let c = if round % 2 == 0 {
            0
        } else {
            (next() % CHANNELS as u64) as usize
        };
        let k = (next() % PRESENCE_AGENTS as u64) as usize;
        let present = !truth[c][k];
        let status = if present {
            Status::Present
        } else {
            Status::Absent
        };
        settled(&trio, || agents[c][k].set_status(status)).await;
        truth[c][k] = present;
    }
    // Every channel's Present agents are exactly those whose last word was
    // Present, once they are all back (within the lease and the grace).
    for c in 0..CHANNELS {
        let expected: Vec<String> = (0..PRESENCE_AGENTS)
            .filter(|k| truth[c][*k])
            .map(|k| format!("p{c}_{k}"))
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        let asker = &agents[c][0];
        settled(&trio, || async {
            let mut present: Vec<String> = asker
                .present_agents(format!("c{c}"))
                .await?
                .into_iter()
                .map(|agent| agent.as_str().to_owned())
                .collect();
            present.sort();
            if present == expected_sorted {
                Ok(())
            } else {
                Err(chathub::client::ClientError::Closed(format!(
                    "c{c}: {} Present, {} expected",
                    present.len(),
                    expected_sorted.len()
                )))
            }
        })
        .await;
    }
    // The offline form shows only while nobody of the channel is Present.
    for k in 0..PRESENCE_AGENTS {
        if truth[0][k] {
            settled(&trio, || agents[0][k].set_status(Status::Absent)).await;
        }
    }
    let customer = settled(&trio, || CustomerClient::connect(&trio.client)).await;
    let offline = settled(&trio, || {
        customer.start_chat("help", Customer::default(), "anyone?")
    })
    .await;
    assert!(
        matches!(offline, Started::Offline(_)),
        "nobody Present: the form"
    );
    settled(&trio, || agents[0][7].set_status(Status::Present)).await;
    let customer = settled(&trio, || CustomerClient::connect(&trio.client)).await;
    let queued = settled(&trio, || {
        customer.start_chat("help", Customer::default(), "anyone?")
    })
    .await;
    assert!(
        matches!(queued, Started::Queued { .. }),
        "someone Present: the queue"
    );
}
