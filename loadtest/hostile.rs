//! `--hostile N`: attacking connections beside the honest load, so the
//! report shows what they cost honest customers and agents.
//!
//! The attackers run on a thread of their own (so the honest clients' thread
//! measures the hub, not the attackers), each holding one connection at a
//! time and starting its next round a second after the last, however that
//! one ended. Attacker `i` plays one of five parts (`i % 5`) until the
//! honest run ends:
//! - start flood: a customer starts chats with fresh secrets until refused,
//!   then reconnects for a fresh allowance;
//! - oversized fields: starts with a 100 KB name and a bad email;
//! - never reading: pipelines thousands of requests and never reads its
//!   answers;
//! - slow files: opens file streams and sends no header, or a header and a
//!   byte now and then;
//! - stream flood: opens streams and writes junk into them without reading,
//!   and tries to open unidirectional streams.
//!
//! Each outcome is counted by kind (`refused:<code>`, `closed`, ...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chathub::client::{ClientConfig, CustomerClient};
use chathub::core::{ChatId, Customer};
use chathub::protocol::{ClientFrame, Request, RequestBody, Upload, encode};

/// The attackers' outcomes by kind.
#[derive(Clone, Default)]
pub(crate) struct Tally(Arc<Mutex<BTreeMap<String, u64>>>);

impl Tally {
    fn count(&self, what: impl Into<String>) {
        let mut tally = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        *tally.entry(what.into()).or_default() += 1;
    }

    pub(crate) fn take(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

/// A pause between one attacker's rounds, so a round's reconnect is not a
/// handshake flood of its own (admission has its own test).
const ROUND_PAUSE: Duration = Duration::from_secs(1);

/// Starts `count` attackers against the hub of `client` on a thread of
/// their own; they stop once `stop` is set, and the thread answers their
/// tally.
pub(crate) fn spawn(
    client: ClientConfig,
    count: usize,
    channel: String,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<Tally>> {
    std::thread::Builder::new()
        .name("attackers".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the attackers");
            runtime.block_on(attack(client, count, channel, stop))
        })
}

/// Runs `count` attackers against the hub of `client` until `stop`.
async fn attack(
    client: ClientConfig,
    count: usize,
    channel: String,
    stop: Arc<AtomicBool>,
) -> Tally {
    let tally = Tally::default();
    let mut attackers = tokio::task::JoinSet::new();
    for n in 0..count {
        let (client, stop, tally) = (client.clone(), stop.clone(), tally.clone());
        let channel = channel.clone();
        attackers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let round = match n % 5 {
                    0 => start_flood(&client, &channel, &tally).await,
                    1 => oversized(&client, &channel, &tally).await,
                    2 => never_reading(&client, &stop, &tally).await,
                    3 => slow_files(&client, &stop, &tally).await,
                    _ => stream_flood(&client, &stop, &tally).await,
                };
                if let Err(err) = round {
                    tally.count(format!("failed: {err}"));
                }
                tokio::time::sleep(ROUND_PAUSE).await;
            }
        });
    }
    while attackers.join_next().await.is_some() {}
    tally
}

async fn start_flood(client: &ClientConfig, channel: &str, tally: &Tally) -> anyhow::Result<()> {
    let customer = CustomerClient::connect(client).await?;
    for n in 0..16 {
        match customer
            .start_chat(channel, Customer::default(), format!("junk {n}"))
            .await
        {
            Ok(_) => tally.count("start_flood: started"),
            Err(err) => {
                tally.count(format!("start_flood: refused {:?}", err.code()));
                break;
            }
        }
    }
    customer.close();
    Ok(())
}

async fn oversized(client: &ClientConfig, channel: &str, tally: &Tally) -> anyhow::Result<()> {
    let customer = CustomerClient::connect(client).await?;
    for who in [
        Customer {
            name: Some("n".repeat(100_000)),
            email: None,
        },
        Customer {
            name: None,
            email: Some("not an address".into()),
        },
    ] {
        match customer.start_chat(channel, who, "hi").await {
            Ok(_) => tally.count("oversized: accepted"),
            Err(err) => tally.count(format!("oversized: refused {:?}", err.code())),
        }
    }
    customer.close();
    Ok(())
}

/// A raw customer connection that said hello.
async fn raw(
    client: &ClientConfig,
) -> anyhow::Result<(
    quinn::Endpoint,
    quinn::Connection,
    (quinn::SendStream, quinn::RecvStream),
)> {
    let bind: SocketAddr = if client.server().is_ipv6() {
        "[::1]:0".parse()?
    } else {
        "127.0.0.1:0".parse()?
    };
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(client.quic().clone());
    let conn = endpoint
        .connect(client.server(), client.server_name())?
        .await?;
    let (mut send, recv) = conn.open_bi().await?;
    send.write_all(&crate::idle::customer_hello()?).await?;
    Ok((endpoint, conn, (send, recv)))
}

async fn never_reading(
    client: &ClientConfig,
    stop: &AtomicBool,
    tally: &Tally,
) -> anyhow::Result<()> {
    let (_endpoint, conn, (mut send, _recv)) = raw(client).await?;
    let mut frames = Vec::new();
    for id in 1..=5_000u64 {
        let request = ClientFrame::Request(Request {
            id,
            body: RequestBody::Post {
                chat: ChatId(id),
                client_id: id,
                text: "x".repeat(200),
            },
        });
        encode(&request, &mut frames)?;
    }
    // Written without ever reading an answer; the hub stops reading at its
    // in-flight cap and closes the connection once its answers go unread.
    let written = tokio::time::timeout(Duration::from_secs(30), send.write_all(&frames)).await;
    tally.count(match written {
        Ok(Ok(())) => "never_reading: all written",
        Ok(Err(_)) => "never_reading: write refused",
        Err(_) => "never_reading: write blocked",
    });
    wait_closed(&conn, stop, Duration::from_secs(30), "never_reading", tally).await;
    Ok(())
}

async fn slow_files(client: &ClientConfig, stop: &AtomicBool, tally: &Tally) -> anyhow::Result<()> {
    let (_endpoint, conn, _send) = raw(client).await?;
    let mut streams = Vec::new();
    for n in 0..15u64 {
        let (mut send, recv) = conn.open_bi().await?;
        if n % 2 == 1 {
            // A header, then a byte now and then.
            let mut header = Vec::new();
            encode(
                &ClientFrame::Upload(Upload {
                    chat: ChatId(n),
                    name: "slow.bin".into(),
                    content_type: "application/octet-stream".into(),
                    size: 10 << 20,
                }),
                &mut header,
            )?;
            send.write_all(&header).await?;
        }
        streams.push((send, recv));
    }
    let hold = async {
        for _ in 0..30 {
            for (send, _) in &mut streams {
                let _ = send.write_all(&[0]).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), hold).await;
    let mut answered = 0;
    for (_, recv) in &mut streams {
        if let Ok(Ok(bytes)) =
            tokio::time::timeout(Duration::from_millis(10), recv.read(&mut [0; 256])).await
            && bytes.is_some()
        {
            answered += 1;
        }
    }
    tally.count(format!("slow_files: {answered} of 15 streams answered"));
    drop(conn);
    Ok(())
}

async fn stream_flood(
    client: &ClientConfig,
    stop: &AtomicBool,
    tally: &Tally,
) -> anyhow::Result<()> {
    let (_endpoint, conn, _send) = raw(client).await?;
    // The hub gives no credit for unidirectional streams.
    match tokio::time::timeout(Duration::from_millis(500), conn.open_uni()).await {
        Ok(Ok(_)) => tally.count("stream_flood: uni stream opened"),
        Ok(Err(_)) => tally.count("stream_flood: uni stream refused"),
        Err(_) => tally.count("stream_flood: uni stream blocked"),
    }
    let junk = vec![0xA5u8; 1 << 20];
    let mut writes = tokio::task::JoinSet::new();
    for _ in 0..15 {
        let (mut send, _recv) = conn.open_bi().await?;
        let junk = junk.clone();
        writes.spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), send.write_all(&junk)).await
        });
    }
    let mut blocked = 0;
    while let Some(written) = writes.join_next().await {
        if !matches!(written, Ok(Ok(Ok(())))) {
            blocked += 1;
        }
    }
    tally.count(format!(
        "stream_flood: {blocked} of 15 junk writes refused or blocked"
    ));
    wait_closed(&conn, stop, Duration::from_secs(5), "stream_flood", tally).await;
    Ok(())
}

async fn wait_closed(
    conn: &quinn::Connection,
    stop: &AtomicBool,
    patience: Duration,
    part: &str,
    tally: &Tally,
) {
    let deadline = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if tokio::time::timeout(Duration::from_millis(200), conn.closed())
            .await
            .is_ok()
        {
            tally.count(format!("{part}: closed by the hub"));
            return;
        }
    }
    tally.count(format!("{part}: still open"));
}
