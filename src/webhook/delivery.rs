//! One webhook's delivery task and the HTTP client it posts with.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::{WebhookError, WebhookSettings, payload};
use crate::core::lifecycle::retry_delay;
use crate::core::{ChatId, LifecycleKind, Timestamp};
use crate::store::{Op, OutboxKey, OutboxRow, Store, StoreError};

/// The client every webhook posts with: HTTP/1.1, over rustls (ring) for
/// `https://`, trusting the Mozilla roots of `webpki-roots`.
pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client.
pub(super) fn client() -> Result<HttpClient, WebhookError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| WebhookError::Tls(err.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// The longest a TCP connect may take (the webhook's `timeout` bounds the
/// whole post too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows read from the outbox at a time.
const PAGE_ROWS: usize = 256;

/// Pages one look at the outbox reads at most.
const PAGES_PER_LOOK: usize = 8;

/// The most bytes of a receiver's answer that are read (and dropped).
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Chats waiting to be retried, at most; past that, no new chat starts
/// until one of them is delivered.
const MAX_RETRYING: usize = 65_536;

/// Failures in a row (no success between) after which the whole webhook
/// pauses too, so a receiver that is down is not asked for every chat.
const PAUSE_AFTER: u32 = 5;

/// The shortest wait between looks that no post or bell prompted.
const MIN_LOOK_GAP: Duration = Duration::from_millis(10);

/// How often an idle task looks at the outbox without being told of rows.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Gives the webhook's series their first values, so `/metrics` lists them
/// from the start.
pub(super) fn export_from_start(webhook: &str) {
    for outcome in ["delivered", "status", "error", "timeout"] {
        metrics::counter!("chathub_webhook_deliveries_total",
            "webhook" => webhook.to_owned(), "outcome" => outcome)
        .increment(0);
    }
    metrics::gauge!("chathub_webhook_outbox", "webhook" => webhook.to_owned()).set(0.0);
    let _ = metrics::histogram!("chathub_webhook_lag_seconds", "webhook" => webhook.to_owned());
}

/// What one try of one row came to.
#[derive(Debug)]
enum Outcome {
    /// The receiver answered 2xx and the row is gone as of this durable
    /// group.
    Delivered(u64),
    /// The webhook does not want the row; it is gone unposted as of this
    /// durable group.
    Skipped(u64),
    /// The receiver answered another status.
    Status(u16),
    /// No answer: the connection failed or broke.
    Error(String),
    /// No answer within the webhook's timeout.
    Timeout,
    /// The store could not be read or written.
    Store(StoreError),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Delivered(_) => f.write_str("delivered"),
            Self::Skipped(_) => f.write_str("not wanted"),
            Self::Status(status) => write!(f, "the receiver answered {status}"),
            Self::Error(err) => write!(f, "no answer: {err}"),
            Self::Timeout => f.write_str("no answer in time"),
            Self::Store(err) => write!(f, "{err}"),
        }
    }
}

impl Outcome {
    fn label(&self) -> Option<&'static str> {
        match self {
            Self::Delivered(_) => Some("delivered"),
            Self::Status(_) => Some("status"),
            Self::Error(_) => Some("error"),
            Self::Timeout => Some("timeout"),
            Self::Skipped(_) | Self::Store(_) => None,
        }
    }
}

/// A chat whose first row failed.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    not_before: Instant,
}

/// What every try of one webhook shares.
struct Shared {
    settings: Arc<WebhookSettings>,
    store: Store,
    client: HttpClient,
}

/// One webhook's delivery task.
pub(super) struct Target {
    shared: Arc<Shared>,
    /// Chats with a post in flight.
    busy: HashSet<u64>,
    /// Chats waiting to be retried.
    retrying: HashMap<u64, Retry>,
    /// Each chat's last row removed by a durable group that may not be
    /// applied yet (so a page may still show it): the row and the group.
    gone: HashMap<u64, (OutboxKey, u64)>,
    /// The chat the next look at the outbox starts from.
    cursor: u64,
    /// Failures since the last success.
    streak: u32,
    /// While the whole webhook waits after many failures.
    paused_until: Option<Instant>,
    in_flight: JoinSet<(OutboxKey, Outcome)>,
    /// The chat of each post in flight, to free it should its task fail.
    tasks: HashMap<tokio::task::Id, OutboxKey>,
    jitter: Jitter,
}

impl Target {
    pub(super) fn new(settings: Arc<WebhookSettings>, store: Store, client: HttpClient) -> Self {
        Self {
            shared: Arc::new(Shared {
                settings,
                store,
                client,
            }),
            busy: HashSet::new(),
            retrying: HashMap::new(),
            gone: HashMap::new(),
            cursor: 0,
            streak: 0,
            paused_until: None,
            in_flight: JoinSet::new(),
            tasks: HashMap::new(),
            jitter: Jitter::default(),
        }
    }

    fn name(&self) -> &str {
        &self.shared.settings.name
    }

    /// Delivers until `stop` turns true; `bell` rings when rows come.
    pub(super) async fn run(mut self, bell: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            if self.paused_until.is_none_or(|until| now >= until) {
                self.paused_until = None;
                if let Err(err) = self.look(now).await {
                    tracing::warn!(
                        webhook = self.name(),
                        "cannot read the webhook outbox: {err}"
                    );
                }
            }
            let wake = self.next_wake(now);
            tokio::select! {
                changed = stop.changed() => {
                    // Its handle is gone: nobody can stop it any more.
                    if changed.is_err() {
                        break;
                    }
                }
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.joined(done);
                }
                _ = bell.notified() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        // Let posts in flight finish (and their rows go) for a moment.
        let grace = tokio::time::sleep(super::SHUTDOWN_GRACE);
        tokio::pin!(grace);
        while !self.in_flight.is_empty() {
            tokio::select! {
                Some(done) = self.in_flight.join_next_with_id() => self.joined(done),
                _ = &mut grace => break,
            }
        }
    }

    /// When to look at the outbox again without being told.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + IDLE_LOOK;
        if let Some(until) = self.paused_until {
            wake = wake.min(until);
        } else if self.in_flight.len() < self.shared.settings.concurrency {
            if let Some(due) = self.retrying.values().map(|retry| retry.not_before).min() {
                wake = wake.min(due);
            }
        }
        wake.max(now + MIN_LOOK_GAP)
    }

    /// Reads the outbox from the cursor and starts a post for the first
    /// row of each chat that is neither in flight nor waiting for a retry,
    /// as long as posts may be added.
    async fn look(&mut self, now: Instant) -> Result<(), StoreError> {
        let concurrency = self.shared.settings.concurrency;
        let started_at = self.cursor;
        let mut wrapped = false;
        for _ in 0..PAGES_PER_LOOK {
            if self.in_flight.len() >= concurrency {
                break;
            }
            let (store, name, from) = (
                self.shared.store.clone(),
                self.shared.settings.name.clone(),
                self.cursor,
            );
            let rows = tokio::task::spawn_blocking(move || {
                // Before the reads: they see every group up to it.
                let applied = store.applied_mark()?;
                let rows = store.outbox_page(&name, from, PAGE_ROWS)?;
                let pending = store.outbox_len(&name)?;
                Ok::<_, StoreError>((rows, pending, applied))
            })
            .await
            .map_err(|err| StoreError::Engine(err.to_string()))?;
            let (rows, pending, applied) = rows?;
            let mut previous = None;
            let mut stopped_at = None;
            for row in &rows {
                let chat = row.key.chat;
                // Delivered already; its removal is not applied yet.
                if self.gone.get(&chat).is_some_and(|(key, _)| row.key <= *key) {
                    continue;
                }
                // Only a chat's first row may go; the rest wait for it.
                if previous == Some(chat) {
                    continue;
                }
                previous = Some(chat);
                if self.busy.contains(&chat) {
                    continue;
                }
                match self.retrying.get(&chat) {
                    Some(retry) if retry.not_before > now => continue,
                    None if self.retrying.len() >= MAX_RETRYING => continue,
                    _ => {}
                }
                if self.in_flight.len() >= concurrency {
                    stopped_at = Some(chat);
                    break;
                }
                self.busy.insert(chat);
                let task = self
                    .in_flight
                    .spawn(deliver(self.shared.clone(), row.clone()));
                self.tasks.insert(task.id(), row.key);
            }
            // Removals up to `applied` show in every later page.
            self.gone.retain(|_, (_, group)| *group > applied);
            let pending = pending.saturating_sub(self.gone.len() as u64);
            metrics::gauge!("chathub_webhook_outbox", "webhook" => self.name().to_owned())
                .set(pending as f64);
            if let Some(chat) = stopped_at {
                self.cursor = chat;
                break;
            }
            match (rows.first(), rows.last()) {
                (Some(first), Some(last)) if rows.len() == PAGE_ROWS => {
                    // A page of one chat's rows moves past it; otherwise the
                    // last chat, perhaps cut short, is read again whole.
                    self.cursor = if first.key.chat == last.key.chat {
                        last.key.chat.saturating_add(1)
                    } else {
                        last.key.chat
                    };
                }
                _ => {
                    self.cursor = 0;
                    if started_at == 0 || wrapped {
                        break;
                    }
                    wrapped = true;
                }
            }
        }
        Ok(())
    }

    /// Books a post's task that ended: its outcome, or a failure if the
    /// task itself failed.
    fn joined(
        &mut self,
        done: Result<(tokio::task::Id, (OutboxKey, Outcome)), tokio::task::JoinError>,
    ) {
        match done {
            Ok((id, (key, outcome))) => {
                self.tasks.remove(&id);
                self.finished(key, outcome);
            }
            Err(err) => {
                if let Some(key) = self.tasks.remove(&err.id()) {
                    self.finished(
                        key,
                        Outcome::Error(format!("the post's task failed: {err}")),
                    );
                }
            }
        }
    }

    /// Books a finished try.
    fn finished(&mut self, key: OutboxKey, outcome: Outcome) {
        let chat = key.chat;
        self.busy.remove(&chat);
        if let Some(label) = outcome.label() {
            metrics::counter!("chathub_webhook_deliveries_total",
                "webhook" => self.name().to_owned(), "outcome" => label)
            .increment(1);
        }
        match outcome {
            Outcome::Delivered(group) | Outcome::Skipped(group) => {
                self.gone.insert(chat, (key, group));
                self.retrying.remove(&chat);
                self.streak = 0;
                self.paused_until = None;
            }
            failed => {
                let now = Instant::now();
                let settings = &self.shared.settings;
                let retry = self.retrying.entry(chat).or_insert(Retry {
                    failures: 0,
                    not_before: now,
                });
                retry.failures = retry.failures.saturating_add(1);
                let wait = retry_delay(
                    retry.failures,
                    settings.retry_initial,
                    settings.retry_max,
                    self.jitter.next(),
                );
                retry.not_before = now + wait;
                let failures = retry.failures;
                self.streak = self.streak.saturating_add(1);
                if self.streak >= PAUSE_AFTER {
                    let pause = retry_delay(
                        self.streak - PAUSE_AFTER + 1,
                        settings.retry_initial,
                        settings.retry_max,
                        self.jitter.next(),
                    );
                    self.paused_until = Some(now + pause);
                }
                tracing::warn!(
                    webhook = %settings.name,
                    event = %payload::event_id(&key),
                    failures,
                    retry_in = ?wait,
                    "a webhook post failed: {failed}"
                );
            }
        }
    }
}

/// One try of one row: read what the body needs, post it, and remove the
/// row once the receiver accepted it.
async fn deliver(shared: Arc<Shared>, row: OutboxRow) -> (OutboxKey, Outcome) {
    let key = row.key;
    (key, try_row(&shared, row).await)
}

async fn try_row(shared: &Shared, row: OutboxRow) -> Outcome {
    let kind = row.item.kind();
    let store = shared.store.clone();
    let (chat, seq) = (ChatId(row.key.chat), row.key.seq);
    let context = tokio::task::spawn_blocking(move || {
        store.outbox_context(chat, seq, kind == LifecycleKind::Ended)
    })
    .await;
    let context = match context {
        Ok(Ok(context)) => context,
        Ok(Err(err)) => return Outcome::Store(err),
        Err(err) => return Outcome::Store(StoreError::Engine(err.to_string())),
    };
    let settings = &shared.settings;
    if !settings.wants(kind, context.channel.as_ref()) {
        return match forget(shared, row.key).await {
            Ok(group) => Outcome::Skipped(group),
            Err(err) => Outcome::Store(err),
        };
    }
    let body = payload::body(&row, &context);
    let timestamp = Timestamp::now().as_millis() / 1000;
    let signature = payload::signature(&settings.secret, timestamp, &body);
    let request = Request::post(settings.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("chathub/", env!("CARGO_PKG_VERSION"))),
        )
        .header("chathub-event-id", payload::event_id(&row.key))
        .header("chathub-event-kind", kind.name())
        .header("chathub-timestamp", timestamp.to_string())
        .header("chathub-signature", signature)
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(request) => request,
        Err(err) => return Outcome::Error(err.to_string()),
    };
    let post = async {
        let answer = shared.client.request(request).await?;
        let status = answer.status();
        // Read the answer so the connection can be used again; its bytes
        // do not matter.
        let _ = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await;
        Ok::<_, hyper_util::client::legacy::Error>(status)
    };
    let status = match tokio::time::timeout(settings.timeout, post).await {
        Err(_) => return Outcome::Timeout,
        Ok(Err(err)) => return Outcome::Error(error_chain(&err)),
        Ok(Ok(status)) => status,
    };
    if !status.is_success() {
        return Outcome::Status(status.as_u16());
    }
    let group = match forget(shared, row.key).await {
        Ok(group) => group,
        Err(err) => return Outcome::Store(err),
    };
    let lag = Timestamp::now().since(payload::happened(&row.item));
    metrics::histogram!("chathub_webhook_lag_seconds", "webhook" => settings.name.clone())
        .record(lag.as_secs_f64());
    Outcome::Delivered(group)
}

/// Removes a row, durably, and answers a durable group at or after the
/// removal's: a page read once that group is applied no longer shows it.
async fn forget(shared: &Shared, key: OutboxKey) -> Result<u64, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.store.writer().submit(
        vec![Op::Delivered {
            webhook: shared.settings.name.clone(),
            key,
        }],
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    rx.await.unwrap_or(Err(StoreError::Closed))?;
    shared.store.durable_mark()
}

/// An error and its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Uniform values in `0.0..1.0` to spread retries, from a per-process
/// random hash key and a counter.
#[derive(Default)]
struct Jitter {
    state: std::collections::hash_map::RandomState,
    count: u64,
}

impl Jitter {
    fn next(&mut self) -> f64 {
        self.count = self.count.wrapping_add(1);
        let bits = self.state.hash_one(self.count) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}
