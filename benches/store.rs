//! Durable, acknowledged writes through the group-commit writer.
//!
//! Many chats each keep one message in flight, as a chat actor does for a
//! customer who waits for each acknowledgement: the writer gathers what
//! arrives while a commit is on its way to disk into the next transaction.
//! Prints acknowledged messages per second and acknowledgement latency.
//!
//! `cargo bench --bench store [-- CHATS MESSAGES_PER_CHAT]`

use std::time::{Duration, Instant};

use chathub::core::{ChannelId, ChatEvent, ChatEventKind, ChatId, Customer, Party, Timestamp};
use chathub::store::{Op, Store};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let chats: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let per_chat: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("chathub-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let store = Store::open(&dir).expect("the store opens");

    let started = Instant::now();
    let tasks: Vec<_> = (1..=chats)
        .map(|chat| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_chat as usize);
                for seq in 1..=per_chat {
                    let kind = if seq == 1 {
                        ChatEventKind::Started {
                            channel: ChannelId::new("support"),
                            customer: Customer::default(),
                        }
                    } else {
                        ChatEventKind::Message {
                            from: Party::Customer,
                            client_id: seq,
                            text: "Hello, I have a question about my order 📦 number 1234".into(),
                        }
                    };
                    let event = ChatEvent {
                        chat: ChatId(chat),
                        seq,
                        at: Timestamp::now(),
                        kind,
                    };
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let sent = Instant::now();
                    store.writer().submit(
                        vec![Op::Event(event)],
                        Box::new(move |result| drop(tx.send(result))),
                    );
                    rx.await.expect("an answer").expect("a durable write");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a writer task"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let total = latencies.len() as f64;
    println!(
        "{} chats x {} messages: {:.0} acknowledged durable messages/s",
        chats,
        per_chat,
        total / elapsed.as_secs_f64()
    );
    println!(
        "acknowledgement latency: p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    // Recovery: open the store afresh and read back every live chat.
    store.close();
    drop(store);
    let reopened = Instant::now();
    let store = Store::open(&dir).expect("the store reopens");
    let live = store.live_chats().expect("live chats").chats;
    println!(
        "recovery read of {} live chats ({} events): {:?}",
        live.len(),
        live.iter().map(|chat| chat.events.len()).sum::<usize>(),
        reopened.elapsed()
    );
    store.close();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
