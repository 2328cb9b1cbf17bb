//! The single writer: group commit.
//!
//! Two threads. The log thread gathers what was submitted while the previous
//! group was on its way to disk into the next group, makes it durable with
//! one record in the commit log ([`CommitLog`]) and acknowledges it. The
//! apply thread then writes the acknowledged groups into the database,
//! however many are waiting in one transaction and without a sync of its
//! own. Readers wait (see [`Progress`]) until every group durable when they
//! start is applied, so a read always sees what was acknowledged before it.
//! Every so many bytes of log the database is synced (a checkpoint) while
//! the log goes on in its other file. After a failure that may have left
//! the log and the database apart, the writer refuses everything until
//! the hub restarts and replays the log.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability};

use crate::core::{
    ChatEvent, ChatEventKind, FileId, ItemId, KnowledgeItem, Rating, SessionSummary, Ticket,
};
use crate::store::StoredFile;
use crate::store::commit_log::CommitLog;
use crate::store::outbox::{OutboxHook, OutboxKey};
use crate::store::{StoreError, engine, tables};

/// One write.
#[derive(Debug, Clone, bincode::Encode, bincode::Decode)]
pub enum Op {
    /// Append a chat event. A start marks the chat live; an end, ended.
    Event(ChatEvent),
    /// Keep the digest of a chat's customer resume token.
    Token {
        /// The chat.
        chat: u64,
        /// The digest.
        digest: Vec<u8>,
    },
    /// Keep an ended chat's summary for recent sessions.
    Session(SessionSummary),
    /// Keep a ticket.
    Ticket(Box<Ticket>),
    /// Keep (or replace) a knowledge item.
    Knowledge(Box<KnowledgeItem>),
    /// Forget a knowledge item.
    ForgetKnowledge(ItemId),
    /// Keep a shared file's description (its bytes are already on disk).
    File(StoredFile),
    /// Forget a shared file (its retention ran out; its bytes go next).
    ForgetFile(FileId),
    /// Link a chat to a contact (by a key from [`contact_keys`](crate::store::contact_keys)).
    ContactChat {
        /// The contact key.
        key: String,
        /// The chat.
        chat: u64,
    },
    /// Link a ticket to a contact.
    ContactTicket {
        /// The contact key.
        key: String,
        /// The ticket.
        ticket: u64,
    },
    /// Keep (or replace) a customer's rating of an ended chat.
    Rate {
        /// The chat.
        chat: u64,
        /// The rating.
        rating: Rating,
    },
    /// A webhook's receiver accepted an outbox row: forget it.
    Delivered {
        /// The webhook.
        webhook: String,
        /// The row's key.
        key: OutboxKey,
    },
    /// Keep the tags an ended chat carried at its end (written with its
    /// [`Op::Session`]); no tags forgets any kept before.
    SessionTags {
        /// The chat.
        chat: u64,
        /// Its tags.
        tags: Vec<String>,
    },
    /// Erase an ended chat: its events, resume token, session row,
    /// rating, the records of the files shared in it, its links to its
    /// customer's contact keys and its undelivered webhook rows. A chat
    /// that is live when the op is applied is left as it is. Tickets made
    /// from it are erased by [`Op::EraseTicket`] of their own, and the
    /// files' bytes by whoever submitted the op, once it is durable.
    EraseChat(u64),
    /// Erase a ticket, its list row and its links to contact keys.
    EraseTicket(u64),
    /// Erase every link of a contact key to chats and tickets.
    EraseContact(String),
}

/// Runs once the write is durable (`Ok`) or has failed (`Err`). Called on
/// the writer thread: keep it short (send a message, complete a channel).
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    ops: Vec<Op>,
    done: Done,
}

enum Msg {
    Job(Job),
    /// Commit what came before, then stop; the sender learns when done.
    Stop(mpsc::Sender<()>),
}

/// The most operations one group gathers (4,096 messages of the largest
/// size stay well under the log's record limit).
const MAX_GROUP_OPS: usize = 4_096;

/// When writes keep coming, a group of fewer operations than this gathers
/// more before it is synced, as long as the next arrives within
/// [`GROUP_WAIT`] and for [`GROUP_WAIT_MAX`] at most: fewer, fuller syncs
/// (each one a trip to the disk, on a virtual machine an exit to the host)
/// leave more CPU to everything else. An idle hub syncs a lone write at
/// once.
const GROUP_COMPANY: usize = 32;

/// The longest gap between writes a gathering group waits out.
const GROUP_WAIT: Duration = Duration::from_micros(300);

/// How long a gathering group sleeps before it looks for more.
const GROUP_STEP: Duration = Duration::from_micros(100);

/// The longest a group gathers.
const GROUP_WAIT_MAX: Duration = Duration::from_millis(2);

/// The most operations the apply thread puts in one transaction.
const MAX_APPLY_OPS: usize = 65_536;

/// Groups that may wait for the apply thread before the log thread waits
/// too (and so acknowledgements slow down instead of memory growing).
const APPLY_BACKLOG: usize = 4_096;

/// The apply thread syncs the database at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long the apply thread gathers groups before writing them, unless a
/// reader is waiting: one transaction for many groups costs far less than
/// one each, since a chat's leaf is rewritten once for all its messages.
const APPLY_GATHER: Duration = Duration::from_millis(50);

/// A handle on the writer thread. Cheap to clone; the thread stops when the
/// last handle is dropped, after committing what it was given.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Msg>,
}

impl Writer {
    /// Starts the writer over a database that holds every group up to
    /// `progress`'s durable mark, writing new groups to `log`.
    pub(crate) fn start(
        db: Arc<Database>,
        log: Box<dyn CommitLog>,
        progress: Arc<Progress>,
        checkpoint_bytes: u64,
        outbox: Arc<OutboxHook>,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let (apply_tx, apply_rx) = mpsc::sync_channel(APPLY_BACKLOG);
        let group = progress.marks().durable;
        let applier = {
            let progress = progress.clone();
            std::thread::Builder::new()
                .name("chathub-apply".into())
                .spawn(move || {
                    let run = std::panic::AssertUnwindSafe(|| {
                        apply_loop(db, progress.clone(), outbox, apply_rx)
                    });
                    if std::panic::catch_unwind(run).is_err() {
                        // Readers waiting for it must not wait forever.
                        progress.set_broken(StoreError::Engine("the apply thread panicked".into()));
                    }
                })?
        };
        *progress
            .apply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ApplyQueue {
            tx: apply_tx,
            thread: applier.thread().clone(),
        });
        let state = State {
            log,
            checkpoint_bytes,
            checkpointing: None,
            group,
            progress,
            applier: Some(applier),
        };
        let progress = state.progress.clone();
        std::thread::Builder::new()
            .name("chathub-store".into())
            .spawn(move || {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(state, rx)))
                    .is_err()
                {
                    progress.set_broken(StoreError::Engine("the log thread panicked".into()));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Queues `ops` for the next group commit; `done` runs after it.
    pub fn submit(&self, ops: Vec<Op>, done: Done) {
        if let Err(mpsc::SendError(Msg::Job(job))) = self.jobs.send(Msg::Job(Job { ops, done })) {
            (job.done)(Err(StoreError::Closed));
        }
    }

    /// Commits everything submitted so far, stops the thread and waits for
    /// it. Later submissions fail with [`StoreError::Closed`].
    pub fn close(&self) {
        let (tx, rx) = mpsc::channel();
        if self.jobs.send(Msg::Stop(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

mod apply;
mod log_thread;
mod progress;
#[cfg(test)]
mod tests;

pub(crate) use apply::apply;
use apply::apply_loop;
use log_thread::{State, run};
pub(crate) use progress::Progress;
use progress::{Apply, ApplyQueue};
