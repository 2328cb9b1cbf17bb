//! Webhooks: chat lifecycle events (started, answered, transferred, ticket
//! created, ended with its transcript, reopened, rated) posted as signed
//! JSON to the URLs of the `[[webhook]]` tables, so a CRM keeps a record of
//! each chat.
//!
//! The store keeps the outbox (see [`crate::store::OutboxRow`]): each
//! event's rows are written in the transaction that applies the event, so
//! nothing acknowledged is ever missing from it, across crashes too. Here a
//! [`Webhooks`] runs one delivery task per webhook that reads its rows in
//! pages, posts each chat's rows one at a time in order (many chats at
//! once, up to `concurrency`), retries a failing chat with exponential
//! backoff and jitter while the other chats go on, and removes a row
//! (through the writer, durably) once its receiver answered 2xx. Delivery
//! is at least once: a row posted but not yet removed when the hub stops is
//! posted again, with the same id.

mod delivery;
pub mod payload;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::core::{ChannelId, LifecycleKind};
use crate::store::Store;

/// One webhook, checked (see [`crate::config::WebhookConfig`]). `Debug`
/// leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Its name, in metrics and logs and as the outbox's key.
    pub name: String,
    /// Where to post.
    pub url: hyper::Uri,
    /// The HMAC-SHA256 key.
    pub secret: Vec<u8>,
    /// The kinds to post; all if `None`.
    pub events: Option<BTreeSet<LifecycleKind>>,
    /// The channels whose chats to post; all if `None`.
    pub channels: Option<BTreeSet<ChannelId>>,
    /// How long one post may take.
    pub timeout: Duration,
    /// The wait before a chat's first retry.
    pub retry_initial: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// The most posts in flight.
    pub concurrency: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("channels", &self.channels)
            .field("timeout", &self.timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    /// Whether a `kind` event of a chat in `channel` is posted.
    pub fn wants(&self, kind: LifecycleKind, channel: Option<&ChannelId>) -> bool {
        self.events
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&kind))
            && self
                .channels
                .as_ref()
                .is_none_or(|channels| channel.is_some_and(|c| channels.contains(c)))
    }
}

/// Why webhooks could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The TLS client could not be set up.
    #[error("cannot set up the webhook client: {0}")]
    Tls(String),
}

/// The running delivery tasks, one per webhook.
pub struct Webhooks {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// How long [`Webhooks::shutdown`] lets posts in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Webhooks {
    /// Starts a delivery task for each of `webhooks` over `store`, whose
    /// outbox must have been opened with the same names. Call from inside
    /// the tokio runtime.
    pub fn start(store: &Store, webhooks: Vec<WebhookSettings>) -> Result<Self, WebhookError> {
        let (stop, stopped) = watch::channel(false);
        if webhooks.is_empty() {
            return Ok(Self {
                stop,
                tasks: Vec::new(),
            });
        }
        let client = delivery::client()?;
        let mut bells = Vec::new();
        let mut tasks = Vec::new();
        for settings in webhooks {
            delivery::export_from_start(&settings.name);
            let bell = Arc::new(Notify::new());
            bells.push(bell.clone());
            let target = delivery::Target::new(Arc::new(settings), store.clone(), client.clone());
            tasks.push(tokio::spawn(target.run(bell, stopped.clone())));
        }
        store.on_outbox_rows(move || {
            for bell in &bells {
                bell.notify_one();
            }
        });
        Ok(Self { stop, tasks })
    }

    /// Stops the delivery tasks, letting posts in flight finish for a
    /// moment; what was not acknowledged is posted again after a restart.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
