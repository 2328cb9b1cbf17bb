//! Durable state in an embedded redb database, `<data_dir>/chathub.redb`,
//! with a commit log beside it, `<data_dir>/chathub.wal` (and `.wal.1`).
//!
//! Every chat event, ended-session row and ticket is written through the
//! [`Writer`], one thread that owns all writes and commits them in groups:
//! whatever accumulated while the previous group was on its way to disk
//! goes into the next one, so one sync covers many writes. A group is
//! durable once its record is synced to the log; each write's completion
//! runs then, which is when the hub acknowledges it to a client. Another
//! thread applies the groups to the database (synced itself only at
//! checkpoints), and a read waits until every acknowledged group is applied. Opening the
//! store applies the groups the log holds beyond the database's last sync.
//!
//! Reads (recovery at start, recent sessions, transcripts, tickets) open
//! their own read transactions beside the writer; each first waits until
//! the apply thread has caught up with what was acknowledged (usually one
//! apply, longer when its queue is long or it is syncing the database).
//!
//! A write whose log sync failed is answered with an error, yet its record
//! may still have reached the disk and come back after a restart; a client
//! retrying it with the same id finds it instead of writing it twice.

mod commit_log;
mod file_bytes;
mod jetstream;
mod log;
mod log_io;
mod outbox;
mod reads;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use crate::core::chat::TRANSCRIPT_PAGE_BYTES;
use crate::core::{
    ChannelId, ChatEvent, ChatId, Customer, FileId, FileRef, Identity, ItemId, KnowledgeItem,
    RatedSession, Rating, SessionSummary, TaggedSession, Ticket, TicketId, TicketSummary,
    Timestamp,
};
use crate::store::commit_log::CommitLog;

pub use file_bytes::{FileBucket, FileBytes};
pub use jetstream::JetStreamTarget;
pub use outbox::{
    OutboxContext, OutboxHook, OutboxItem, OutboxKey, OutboxRow, WEBHOOK_TRANSCRIPT_BYTES,
};
pub use reads::Due;
pub use writer::{Done, Op, Writer};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened (missing permissions, not a
    /// chathub database, corrupted header, ...).
    #[error("cannot open the store {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine failed a read or a commit (disk full, I/O error, ...).
    #[error("store failure: {0}")]
    Engine(String),
    /// A stored record does not decode.
    #[error("corrupt record in the store: {0}")]
    Corrupt(String),
    /// The writer has stopped; nothing more can be made durable.
    #[error("the store writer has stopped")]
    Closed,
    /// The database was written by a build with another layout.
    #[error(
        "the store's layout is version {found}, this build reads version {known}: run the build that wrote it, or a newer one"
    )]
    Schema {
        /// The layout the database declares.
        found: u64,
        /// The layout this build reads.
        known: u64,
    },
    /// A write or sync failed (a full disk, an I/O error): the log and the
    /// database may disagree, so nothing more is written or read until a
    /// restart replays the commit log.
    #[error("writes stopped after a failure; restart the hub to recover from the commit log: {0}")]
    Stopped(String),
    /// Another hub took the commit log over: this one may acknowledge
    /// nothing more.
    #[error("another hub took over the commit log: {0}")]
    Fenced(String),
}

fn engine(err: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(err.to_string())
}

/// Tables whose highest id seeds a counter at start.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// Knowledge items.
    Knowledge,
    /// Shared files.
    Files,
    /// Tickets.
    Tickets,
}

/// A live (not ended) chat as stored: its whole transcript so far.
#[derive(Debug, Clone)]
pub struct StoredChat {
    /// Its events, seq 1 first.
    pub events: Vec<ChatEvent>,
    /// The digest of the customer's resume token, if one was stored.
    pub token_digest: Option<Vec<u8>>,
}

/// A shared file's description and the chat it was shared in.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct StoredFile {
    /// The file as participants see it.
    pub file: FileRef,
    /// The chat it was shared in.
    pub chat: ChatId,
}

/// Overwrites a stored event with bytes that do not decode, as damage on
/// disk would; false while the database is still open elsewhere.
#[cfg(test)]
pub(crate) fn damage_event_for_tests(data_dir: &Path, chat: ChatId, seq: u64) -> bool {
    let Ok(db) = Database::create(data_dir.join("chathub.redb")) else {
        return false;
    };
    let write = db.begin_write().expect("a write transaction");
    write
        .open_table(tables::EVENTS)
        .expect("the events table")
        .insert((chat.0, seq), [0xFFu8; 3].as_slice())
        .expect("the damage is written");
    write.commit().expect("the damage is committed");
    true
}

/// The chats that have not ended, as stored.
#[derive(Debug, Default)]
pub struct LiveChats {
    /// In chat id order.
    pub chats: Vec<StoredChat>,
    /// Chats with an event that does not decode (damage on disk, or a
    /// value this build does not know): left in the store as they are.
    pub unreadable: Vec<(ChatId, StoreError)>,
}

/// A contact's history: the chats and tickets of one email (or name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactHistory {
    /// Chats, oldest first.
    pub chats: Vec<ChatId>,
    /// Tickets, oldest first.
    pub tickets: Vec<TicketId>,
}

/// The keys a customer is found by: with a verified identity, the
/// backend's id and the email it vouched for (`verified:id:…`,
/// `verified:email:…`); otherwise the email and name they typed
/// (`email:…`, `name:…`), lowercased.
pub fn contact_keys(customer: &Customer, verified: Option<&Identity>) -> Vec<String> {
    if let Some(identity) = verified {
        let mut keys = vec![format!("verified:id:{}", identity.id)];
        if let Some(email) = identity.email.as_deref().map(str::trim) {
            keys.push(format!("verified:email:{}", email.to_lowercase()));
        }
        return keys;
    }
    let mut keys = Vec::new();
    if let Some(email) = customer
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        keys.push(format!("email:{}", email.to_lowercase()));
    }
    if let Some(name) = customer
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        keys.push(format!("name:{}", name.to_lowercase()));
    }
    keys
}

/// See [`Store::channel_of`].
fn channel_of(read: &redb::ReadTransaction, chat: ChatId) -> Result<Option<ChannelId>, StoreError> {
    let ended = read.open_table(tables::SESSION_ENDED).map_err(engine)?;
    if let Some(at) = ended.get(chat.0).map_err(engine)? {
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        if let Some(value) = sessions.get((at.value(), chat.0)).map_err(engine)? {
            return Ok(Some(
                tables::decode::<SessionSummary>(value.value())?.channel,
            ));
        }
    }
    let events = read.open_table(tables::EVENTS).map_err(engine)?;
    let Some(first) = events.get((chat.0, 1)).map_err(engine)? else {
        return Ok(None);
    };
    match tables::decode::<ChatEvent>(first.value())?.kind {
        crate::core::ChatEventKind::Started { channel, .. } => Ok(Some(channel)),
        _ => Err(StoreError::Corrupt(format!(
            "{chat} does not begin with its start"
        ))),
    }
}

/// A page of a stored transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptPage {
    /// The channel the chat belongs to, for access checks.
    pub channel: ChannelId,
    /// Events in seq order.
    pub events: Vec<ChatEvent>,
    /// Whether more events follow.
    pub more: bool,
}

/// How the store runs.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Commit-log bytes after which the database is synced while the log
    /// goes on in its other file.
    pub checkpoint_bytes: u64,
    /// The webhooks whose outbox rows are kept: each lifecycle event and
    /// rating gets a row for each; the rows of any other webhook are
    /// removed at open.
    pub webhooks: Vec<String>,
    /// Where the commit log lives: `None`, in two files beside the
    /// database; else on a JetStream stream (a hub in a cluster).
    /// Opening it over JetStream waits for the server: call
    /// [`Store::open_with`] off the async runtime's threads then.
    pub jetstream: Option<JetStreamTarget>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            checkpoint_bytes: 32 << 20,
            webhooks: Vec::new(),
            jetstream: None,
        }
    }
}

/// The open database and its writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Writer,
    progress: Arc<writer::Progress>,
    outbox: Arc<OutboxHook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and starts its
    /// writer.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// [`Store::open`] with other options.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let path = data_dir.join("chathub.redb");
        let open_err = |err: &dyn std::fmt::Display| StoreError::Open {
            path: path.clone(),
            reason: err.to_string(),
        };
        let db = Database::create(&path).map_err(|err| open_err(&err))?;
        tables::create_all(&db).map_err(|err| open_err(&err))?;
        tables::check_schema(&db)?;
        // Groups the log made durable after the database's last sync.
        let applied = {
            let read = db.begin_read().map_err(|err| open_err(&err))?;
            let meta = read
                .open_table(tables::META)
                .map_err(|err| open_err(&err))?;
            meta.get(tables::LOG_GROUP)
                .map_err(|err| open_err(&err))?
                .map_or(0, |group| group.value())
        };
        let (log, replay, mut group): (Box<dyn CommitLog>, _, _) =
            match &options.jetstream {
                None => {
                    let log_path = data_dir.join("chathub.wal");
                    let (log, replay) =
                        log::FileLog::open(&log_path, applied).map_err(|err| StoreError::Open {
                            path: log_path.clone(),
                            reason: err.to_string(),
                        })?;
                    (Box::new(log), replay, applied)
                }
                Some(target) => {
                    let (log, replay, last) = jetstream::JetStreamLog::open(target, applied)
                        .map_err(|err| StoreError::Open {
                            path: PathBuf::from(format!("nats:{}", target.stream)),
                            reason: err.to_string(),
                        })?;
                    (Box::new(log), replay, last)
                }
            };
        let outbox = OutboxHook::new(options.webhooks.clone());
        if let Some((last, _)) = replay.groups.last() {
            // In order, in one durable transaction.
            let ops = replay.groups.iter().flat_map(|(_, ops)| ops);
            writer::apply(&db, *last, ops, Durability::Immediate, &outbox)
                .map_err(|err| open_err(&err))?;
            group = *last;
            tracing::info!(
                groups = replay.groups.len(),
                ops = replay
                    .groups
                    .iter()
                    .map(|(_, ops)| ops.len())
                    .sum::<usize>(),
                "replayed the commit log"
            );
        }
        let backfilled =
            tables::backfill_ticket_summaries(&db).map_err(|err| StoreError::Open {
                path: path.clone(),
                reason: err.to_string(),
            })?;
        if backfilled > 0 {
            tracing::info!(
                tickets = backfilled,
                "wrote the list rows of earlier tickets"
            );
        }
        let pruned = outbox::prune(&db, &options.webhooks).map_err(|err| open_err(&err))?;
        if pruned > 0 {
            tracing::warn!(
                rows = pruned,
                "dropped the undelivered webhook rows of webhooks no longer configured"
            );
        }
        let db = Arc::new(db);
        let progress = Arc::new(writer::Progress::new(group));
        let writer = Writer::start(
            db.clone(),
            log,
            progress.clone(),
            options.checkpoint_bytes,
            outbox.clone(),
        )
        .map_err(|err| open_err(&err))?;
        Ok(Self {
            db,
            writer,
            progress,
            outbox,
        })
    }

    /// A read transaction that sees every write acknowledged so far (it
    /// waits for the apply thread to catch up).
    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.progress.caught_up()?;
        self.db.begin_read().map_err(engine)
    }

    /// Commits what was submitted and stops the writer. Once every clone of
    /// the store is dropped, the database file is released.
    pub fn close(&self) {
        self.writer.close();
    }

    /// Calls `failed` (on a thread of its own) if writes stop after a
    /// failure, with the reason. The thread ends with the store.
    pub fn on_failure(&self, failed: impl FnOnce(StoreError) + Send + 'static) {
        let progress = Arc::downgrade(&self.progress);
        let watch = move || {
            loop {
                let Some(progress) = progress.upgrade() else {
                    return;
                };
                if let Some(err) = progress.wait_broken(std::time::Duration::from_secs(1)) {
                    failed(err);
                    return;
                }
            }
        };
        if let Err(err) = std::thread::Builder::new()
            .name("chathub-store-watch".into())
            .spawn(watch)
        {
            tracing::warn!("cannot watch the store for failures: {err}");
        }
    }

    /// The writer, to submit durable writes to.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }
}
