//! A webhook receiver for the embedded hub (`--webhook`): a small
//! keep-alive HTTP/1.1 server that answers every post 200 at once and
//! counts events, duplicates and the lag from each event to its arrival.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest request head or body accepted.
const MAX_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Tally {
    ids: HashSet<String>,
    posts: u64,
    lags_ms: Vec<u64>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The running receiver.
pub(crate) struct Receiver {
    /// Where the hub posts.
    pub(crate) url: String,
    tally: Arc<Mutex<Tally>>,
}

impl Receiver {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let shared = tally.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(Self { url, tally })
    }

    /// Distinct events received.
    pub(crate) fn events(&self) -> usize {
        self.lock().ids.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `events` distinct events arrived or `patience` passed;
    /// answers whether they did.
    pub(crate) async fn wait_for(&self, events: usize, patience: Duration) -> bool {
        let until = Instant::now() + patience;
        while Instant::now() < until {
            if self.events() >= events {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// One paragraph: events, duplicates, rate, lag.
    pub(crate) fn report(&self, load_ended: Instant) -> String {
        let mut tally = self.lock();
        let events = tally.ids.len();
        let duplicates = tally.posts - events as u64;
        tally.lags_ms.sort_unstable();
        let at = |q: f64| {
            let lags = &tally.lags_ms;
            lags.get(((lags.len() as f64 * q) as usize).min(lags.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let span = match (tally.first, tally.last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let drained = tally.last.map_or(0.0, |last| {
            last.saturating_duration_since(load_ended).as_secs_f64()
        });
        format!(
            "webhook: {events} events ({duplicates} duplicates) over {span:.2} s, {:.0} events/s; \
             lag from event to arrival p50 {} ms, p99 {} ms, max {} ms; \
             the last arrived {drained:.2} s after the load ended",
            events as f64 / span.max(1e-9),
            at(0.5),
            at(0.99),
            at(1.0),
        )
    }
}

/// Serves one keep-alive connection.
async fn serve(mut stream: tokio::net::TcpStream, tally: Arc<Mutex<Tally>>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if buf.len() > MAX_BYTES || !read_more(&mut stream, &mut buf).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) else {
            return;
        };
        if length > MAX_BYTES {
            return;
        }
        let id = header("chathub-event-id").unwrap_or_default();
        while buf.len() < head_end + 4 + length {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let body: Vec<u8> = buf
            .drain(..head_end + 4 + length)
            .skip(head_end + 4)
            .collect();
        let at = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| json["at"].as_u64());
        let now_ms = chathub::core::Timestamp::now().as_millis();
        {
            let mut tally = tally
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            tally.first.get_or_insert(now);
            tally.last = Some(now);
            tally.posts += 1;
            if tally.ids.insert(id) {
                tally
                    .lags_ms
                    .push(now_ms.saturating_sub(at.unwrap_or(now_ms)));
            }
        }
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 << 10];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}
