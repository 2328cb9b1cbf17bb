//! `--idle N`: holds idle customer connections (or, with
//! `--idle-webtransport`, WebTransport sessions) and reports the hub's
//! resident memory per connection; `--queued N` holds chats waiting in a
//! queue and reports the hub's memory per chat. [`resident_bytes`] also
//! gives the `--hostile` report its figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chathub::client::{ClientConfig, CustomerClient};
use chathub::core::Customer;
use chathub::protocol::{
    ClientFrame, FrameBuf, Hello, MAX_FRAME_BYTES, PROTOCOL_VERSION, Role, ServerFrame, encode,
};

use crate::CONNECTING;
use crate::browser::Target;

/// A new customer's hello, as it goes on the control stream.
pub(crate) fn customer_hello() -> anyhow::Result<Vec<u8>> {
    let mut hello = Vec::new();
    encode(
        &ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Customer,
            resume: Vec::new(),
        }),
        &mut hello,
    )?;
    Ok(hello)
}

/// A process's resident memory in bytes, from /proc.
pub(crate) fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Holds `count` idle native customer connections and reports the hub's
/// memory for them.
pub(crate) async fn run(
    client: &ClientConfig,
    count: usize,
    hub_pid: Option<u32>,
) -> anyhow::Result<()> {
    let client = client.clone();
    let held = hold(count, "connection", hub_pid, move || {
        let client = client.clone();
        async move { anyhow::Ok(CustomerClient::connect(&client).await?) }
    })
    .await?;
    drop(held);
    Ok(())
}

/// Starts `count` chats on `channel`, `per_connection` from each customer
/// connection, that wait in its queue (no agent is signed in), and reports
/// the hub's memory per waiting chat: what it grew by once the connections
/// were open, so the connections' own cost is left out.
pub(crate) async fn run_queued(
    client: &ClientConfig,
    channel: String,
    count: usize,
    per_connection: usize,
    hub_pid: Option<u32>,
) -> anyhow::Result<()> {
    let per_connection = per_connection.max(1);
    let client = client.clone();
    let customers = hold(
        count.div_ceil(per_connection),
        "connection",
        hub_pid,
        move || {
            let client = client.clone();
            async move { anyhow::Ok(CustomerClient::connect(&client).await?) }
        },
    )
    .await?;
    let before = hub_pid.and_then(resident_bytes);
    let started = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let tasks: Vec<_> = customers
        .iter()
        .enumerate()
        .map(|(index, customer)| {
            let chats = per_connection.min(count - index * per_connection);
            let (customer, channel, connecting) =
                (customer.clone(), channel.clone(), connecting.clone());
            tokio::spawn(async move {
                let _permit = connecting.acquire_owned().await?;
                for chat in 0..chats {
                    let details = Customer {
                        name: Some(format!("customer {index}.{chat}")),
                        email: None,
                    };
                    let started = customer
                        .start_chat(channel.clone(), details, "waiting for an agent")
                        .await?;
                    if started.chat().is_none() {
                        bail!("the channel answered with its offline form");
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!(
        "{count} chats waiting in {channel}'s queue, started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    report_growth(before, hub_pid, count, "queued chat").await;
    drop(customers);
    Ok(())
}

/// Holds `count` idle WebTransport sessions to `target`, each with the
/// customer's hello answered, as a browser's SDK leaves one before it
/// starts a chat; reports the hub's memory for them as [`run`] does for
/// native connections.
pub(crate) async fn run_webtransport(
    target: &Target,
    count: usize,
    hub_pid: Option<u32>,
) -> anyhow::Result<()> {
    // One UDP socket for every session, as the native connections share
    // one endpoint; the keep-alive is the native client's, so neither
    // kind is closed for idleness while held.
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([target.digest()?])
        .keep_alive_interval(Some(Duration::from_secs(10) / 3))
        .build();
    let endpoint = Arc::new(wtransport::Endpoint::client(config)?);
    let url = target.url.clone();
    let held = hold(count, "WebTransport session", hub_pid, move || {
        let (endpoint, url) = (endpoint.clone(), url.clone());
        async move { Session::open(&endpoint, &url).await }
    })
    .await?;
    let closed = held.iter().filter(|session| session.closed()).count();
    if closed > 0 {
        bail!("{closed} of {count} sessions were closed while held: the figure is not theirs");
    }
    drop(held);
    Ok(())
}

/// An idle WebTransport session: the session and its control stream, on
/// which the hello was answered.
struct Session {
    conn: wtransport::Connection,
    _send: wtransport::SendStream,
    _recv: wtransport::RecvStream,
}

impl Session {
    async fn open(
        endpoint: &wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
        url: &str,
    ) -> anyhow::Result<Self> {
        let conn = endpoint
            .connect(url)
            .await
            .with_context(|| format!("no WebTransport session with {url}"))?;
        let (mut send, mut recv) = conn.open_bi().await?.await?;
        send.write_all(&customer_hello()?).await?;
        let mut frames = FrameBuf::with_limit(MAX_FRAME_BYTES);
        let mut buf = [0u8; 4096];
        loop {
            match frames.next_frame::<ServerFrame>()? {
                Some(ServerFrame::Welcome(_)) => break,
                Some(other) => bail!("the hub answered the hello with {other:?}"),
                None => {}
            }
            let Some(read) = recv.read(&mut buf).await? else {
                bail!("the hub closed the control stream before its welcome");
            };
            frames.push(&buf[..read]);
        }
        Ok(Self {
            conn,
            _send: send,
            _recv: recv,
        })
    }

    fn closed(&self) -> bool {
        self.conn.quic_connection().close_reason().is_some()
    }
}

/// Opens `count` connections with `open`, [`CONNECTING`] at a time, holds
/// them two seconds, and prints the hub's memory per connection (`noun`);
/// answers them, still open.
async fn hold<T, F, Fut>(
    count: usize,
    noun: &str,
    hub_pid: Option<u32>,
    open: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let before = hub_pid.and_then(resident_bytes);
    let started = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (connecting, opening) = (connecting.clone(), open());
            tokio::spawn(async move {
                let _permit = connecting.acquire_owned().await?;
                opening.await
            })
        })
        .collect();
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        held.push(task.await??);
    }
    println!(
        "{count} {noun}s open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    report_growth(before, hub_pid, count, noun).await;
    Ok(held)
}

/// Waits two seconds for the hub to settle, then prints how much its
/// resident memory grew from `before`, per one of `count` `noun`s.
async fn report_growth(before: Option<u64>, hub_pid: Option<u32>, count: usize, noun: &str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    match (before, hub_pid.and_then(resident_bytes)) {
        (Some(before), Some(after)) => println!(
            "hub resident memory {:.1} MiB -> {:.1} MiB: {:.1} KiB per {noun}",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1024.0 / count as f64
        ),
        _ => println!("(pass --hub-pid to measure the hub's memory)"),
    }
}
