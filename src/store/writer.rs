//! The single writer: group commit.
//!
//! Two threads. The log thread gathers what was submitted while the previous
//! group was on its way to disk into the next group, makes it durable with
//! one synced record in the commit log ([`Log`]) and acknowledges it. The
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
    ChatEvent, ChatEventKind, FileId, ItemId, KnowledgeItem, SessionSummary, Ticket,
};
use crate::store::StoredFile;
use crate::store::log::Log;
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

/// How far the log and the database have got: shared by the two writer
/// threads and the readers.
#[derive(Debug)]
pub(crate) struct Progress {
    marks: Mutex<Marks>,
    moved: Condvar,
    /// The apply thread's queue; `None` once it is told to finish.
    apply: Mutex<Option<ApplyQueue>>,
    /// When a reader last cut the apply thread's gathering short.
    last_flush: Mutex<Option<Instant>>,
}

/// How often readers may cut the apply thread's gathering short: a flood of
/// reads (which anonymous requests can cause) costs at most one early
/// database transaction per interval, not one per read.
const FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// The apply thread's queue and the thread, which sleeps while it gathers
/// groups: a group does not wake it, a checkpoint or a flush does.
#[derive(Debug, Clone)]
struct ApplyQueue {
    tx: mpsc::SyncSender<Apply>,
    thread: std::thread::Thread,
}

#[derive(Debug, Default)]
struct Marks {
    /// The last group synced to the log (and so acknowledged).
    durable: u64,
    /// The last group written into the database.
    applied: u64,
    /// Why writes stopped, if they did.
    broken: Option<StoreError>,
}

impl Progress {
    pub(crate) fn new(group: u64) -> Self {
        Self {
            marks: Mutex::new(Marks {
                durable: group,
                applied: group,
                broken: None,
            }),
            moved: Condvar::new(),
            apply: Mutex::new(None),
            last_flush: Mutex::new(None),
        }
    }

    fn apply_queue(&self) -> Option<ApplyQueue> {
        self.apply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Queues work for the apply thread, waiting while its queue is full
    /// (after waking it, should it be gathering); false if it has stopped.
    fn send(&self, work: Apply) -> bool {
        self.apply_queue().is_some_and(|apply| {
            let urgent = !matches!(work, Apply::Group(..));
            let sent = match apply.tx.try_send(work) {
                Ok(()) => true,
                Err(mpsc::TrySendError::Full(work)) => {
                    apply.thread.unpark();
                    apply.tx.send(work).is_ok()
                }
                Err(mpsc::TrySendError::Disconnected(_)) => false,
            };
            if urgent {
                apply.thread.unpark();
            }
            sent
        })
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        // A panic elsewhere cannot leave the marks half-changed.
        self.marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn broken(&self) -> Option<StoreError> {
        self.marks().broken.clone()
    }

    fn set_durable(&self, group: u64) {
        self.marks().durable = group;
    }

    fn set_applied(&self, group: u64) {
        self.marks().applied = group;
        self.moved.notify_all();
    }

    /// Records why writes stop and returns the error every later write (and
    /// read) gets.
    fn set_broken(&self, err: StoreError) -> StoreError {
        let err = match err {
            StoreError::Stopped(_) => err,
            other => StoreError::Stopped(other.to_string()),
        };
        let mut marks = self.marks();
        if marks.broken.is_none() {
            tracing::error!("{err}");
            marks.broken = Some(err.clone());
        }
        self.moved.notify_all();
        marks.broken.clone().unwrap_or(err)
    }

    /// Waits up to `timeout` for writes to stop after a failure; the reason
    /// if they did.
    pub(crate) fn wait_broken(&self, timeout: Duration) -> Option<StoreError> {
        let marks = self.marks();
        if marks.broken.is_some() {
            return marks.broken.clone();
        }
        let (marks, _) = self
            .moved
            .wait_timeout(marks, timeout)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        marks.broken.clone()
    }

    /// Waits until every group acknowledged so far is in the database,
    /// asking the apply thread not to wait out its gathering (at most once
    /// per [`FLUSH_INTERVAL`], whoever asks).
    pub(crate) fn caught_up(&self) -> Result<(), StoreError> {
        let mut marks = self.marks();
        let target = marks.durable;
        loop {
            if let Some(err) = &marks.broken {
                return Err(err.clone());
            }
            if marks.applied >= target {
                return Ok(());
            }
            drop(marks);
            self.flush_soon();
            marks = self.marks();
            if marks.applied < target && marks.broken.is_none() {
                marks = self
                    .moved
                    .wait_timeout(marks, FLUSH_INTERVAL)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
        }
    }

    /// Cuts the apply thread's gathering short, unless that was done less
    /// than [`FLUSH_INTERVAL`] ago.
    fn flush_soon(&self) {
        let now = Instant::now();
        {
            let mut last = self
                .last_flush
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|last| now.duration_since(last) < FLUSH_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        // A full queue means the apply thread has plenty to do without
        // being asked.
        if let Some(apply) = self.apply_queue() {
            let _ = apply.tx.try_send(Apply::Flush);
            apply.thread.unpark();
        }
    }
}

/// Work for the apply thread.
enum Apply {
    /// A durable group's ops.
    Group(u64, Vec<Op>),
    /// Sync the database (everything sent before is applied first).
    Checkpoint(mpsc::Sender<Result<(), StoreError>>),
    /// A reader waits: write what has been gathered now.
    Flush,
}

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
        log: Log,
        progress: Arc<Progress>,
        checkpoint_bytes: u64,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let (apply_tx, apply_rx) = mpsc::sync_channel(APPLY_BACKLOG);
        let group = progress.marks().durable;
        let applier = {
            let progress = progress.clone();
            std::thread::Builder::new()
                .name("chathub-apply".into())
                .spawn(move || {
                    let run =
                        std::panic::AssertUnwindSafe(|| apply_loop(db, progress.clone(), apply_rx));
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

/// Why the log thread can no longer hand work on.
fn apply_stopped() -> StoreError {
    StoreError::Engine("the apply thread has stopped".into())
}

/// What the log thread owns.
struct State {
    log: Log,
    /// Log bytes after which the database is synced and the log goes on in
    /// its other file.
    checkpoint_bytes: u64,
    /// The checkpoint of the log's other file, while it runs: answered
    /// once the database holds its groups durably.
    checkpointing: Option<mpsc::Receiver<Result<(), StoreError>>>,
    /// The last group written.
    group: u64,
    progress: Arc<Progress>,
    applier: Option<JoinHandle<()>>,
}

impl State {
    /// Makes one group durable.
    fn commit(&mut self, jobs: &[Job], ops: usize) -> Result<u64, StoreError> {
        if let Some(err) = self.progress.broken() {
            return Err(err);
        }
        let group = self.group + 1;
        let all = jobs.iter().flat_map(|job| &job.ops);
        match self.log.append(group, ops, all) {
            Ok(()) => {}
            // Nothing was written: only this group fails.
            Err(err @ StoreError::Corrupt(_)) => return Err(err),
            Err(err) => return Err(self.progress.set_broken(err)),
        }
        self.group = group;
        Ok(group)
    }

    /// Carries out what became of a group: its jobs are told, and a durable
    /// group goes to the apply thread.
    fn settle(&mut self, jobs: Vec<Job>, ops: usize, result: Result<u64, StoreError>) {
        match result {
            Ok(group) => {
                // Queued for the apply thread before it counts as durable,
                // so a reader woken by an acknowledgement finds it queued
                // (and its nudge lands behind it).
                let mut applied = Vec::with_capacity(ops);
                let mut dones = Vec::with_capacity(jobs.len());
                for job in jobs {
                    applied.extend(job.ops);
                    dones.push(job.done);
                }
                self.apply(group, applied);
                self.progress.set_durable(group);
                for done in dones {
                    done(Ok(()));
                }
            }
            Err(err) => {
                tracing::error!("store commit failed: {err}");
                metrics::counter!("chathub_store_commit_failures_total").increment(1);
                for job in jobs {
                    (job.done)(Err(err.clone()));
                }
            }
        }
    }

    /// Hands a durable group to the apply thread.
    fn apply(&mut self, group: u64, ops: Vec<Op>) {
        if !self.progress.send(Apply::Group(group, ops)) {
            self.progress.set_broken(apply_stopped());
        }
    }

    /// Once the log's active file is full: asks for a checkpoint of its
    /// groups and goes on in the other file at once. Waits only if that
    /// file's own checkpoint has not finished yet: its records may be
    /// written over only once the database holds them durably.
    fn checkpoint_if_due(&mut self) {
        self.checkpoint_done(false);
        if self.log.len() < self.checkpoint_bytes || self.progress.broken().is_some() {
            return;
        }
        if !self.checkpoint_done(true) {
            return;
        }
        self.checkpointing = self.start_checkpoint();
        if self.checkpointing.is_some() {
            self.log.switch();
        }
    }

    /// Asks the apply thread to make every group so far durable in the
    /// database, once it has applied them.
    fn start_checkpoint(&self) -> Option<mpsc::Receiver<Result<(), StoreError>>> {
        let (tx, rx) = mpsc::channel();
        if self.progress.send(Apply::Checkpoint(tx)) {
            Some(rx)
        } else {
            self.progress.set_broken(apply_stopped());
            None
        }
    }

    /// Whether no checkpoint runs any more (waiting for the one running if
    /// `wait`) and none failed. A failed one stops all writes.
    fn checkpoint_done(&mut self, wait: bool) -> bool {
        let Some(running) = &self.checkpointing else {
            return self.progress.broken().is_none();
        };
        let result = if wait {
            running.recv().unwrap_or_else(|_| Err(apply_stopped()))
        } else {
            match running.try_recv() {
                Ok(result) => result,
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => Err(apply_stopped()),
            }
        };
        self.checkpointing = None;
        match result {
            Ok(()) => self.progress.broken().is_none(),
            Err(err) => {
                tracing::error!("store checkpoint failed: {err}");
                metrics::counter!("chathub_store_commit_failures_total").increment(1);
                self.progress.set_broken(err);
                false
            }
        }
    }

    /// Waits until the database holds every group so far durably.
    fn checkpoint(&mut self) {
        if self.checkpoint_done(true) {
            self.checkpointing = self.start_checkpoint();
            self.checkpoint_done(true);
        }
    }

    /// Lets the apply thread finish what it has and waits for it.
    fn finish(&mut self) {
        let queue = self
            .progress
            .apply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        // Closing the queue ends the thread once it has applied what was
        // queued; wake it, should it be gathering.
        if let Some(queue) = queue {
            let thread = queue.thread.clone();
            drop(queue);
            thread.unpark();
        }
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
    }
}

/// The apply thread: writes durable groups into the database, as many as
/// are waiting in one transaction, and syncs it when asked.
fn apply_loop(db: Arc<Database>, progress: Arc<Progress>, rx: mpsc::Receiver<Apply>) {
    let mut next = rx.recv().ok();
    let mut synced = Instant::now();
    while let Some(first) = next.take() {
        let mut groups = Vec::new();
        let mut checkpoint = None;
        let mut ops = 0;
        match first {
            Apply::Group(group, group_ops) => {
                ops += group_ops.len();
                groups.push((group, group_ops));
                // Sleep between looks at the queue rather than wait on
                // it, so that each group does not wake the thread.
                let until = Instant::now() + APPLY_GATHER;
                while ops < MAX_APPLY_OPS {
                    match rx.try_recv() {
                        Ok(Apply::Group(group, group_ops)) => {
                            ops += group_ops.len();
                            groups.push((group, group_ops));
                        }
                        Ok(Apply::Checkpoint(reply)) => {
                            checkpoint = Some((reply, Instant::now()));
                            break;
                        }
                        Ok(Apply::Flush) | Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            let now = Instant::now();
                            if now >= until {
                                break;
                            }
                            std::thread::park_timeout(until - now);
                        }
                    }
                }
            }
            Apply::Checkpoint(reply) => checkpoint = Some((reply, Instant::now())),
            Apply::Flush => {}
        }
        if let (Some((last, _)), None) = (groups.last(), progress.broken()) {
            let all = groups.iter().flat_map(|(_, ops)| ops);
            // A long run of unsynced commits makes each one slower (the
            // database tracks every page they left unsynced), so sync now
            // and then even between checkpoints.
            let durability = if synced.elapsed() >= SYNC_EVERY {
                synced = Instant::now();
                Durability::Immediate
            } else {
                Durability::None
            };
            match apply(&db, *last, all, durability) {
                Ok(()) => progress.set_applied(*last),
                Err(err) => {
                    metrics::counter!("chathub_store_commit_failures_total").increment(1);
                    progress.set_broken(err);
                }
            }
        }
        if let Some((reply, asked)) = checkpoint {
            let result = match progress.broken() {
                Some(err) => Err(err),
                // An empty durable commit makes every earlier one durable.
                None => db
                    .begin_write()
                    .map_err(engine)
                    .and_then(|write| write.commit().map_err(engine)),
            };
            if result.is_ok() {
                metrics::histogram!("chathub_store_checkpoint_seconds")
                    .record(asked.elapsed().as_secs_f64());
            }
            let _ = reply.send(result);
        }
        next = rx.recv().ok();
    }
}

fn run(mut state: State, rx: mpsc::Receiver<Msg>) {
    let mut stop = None;
    while stop.is_none() {
        // Work already waiting means the hub is busy: then a small group
        // waits a moment for company (see `GROUP_WAIT`).
        let (first, busy) = match rx.try_recv() {
            Ok(msg) => (Ok(msg), true),
            Err(_) => (rx.recv(), false),
        };
        let first = match first {
            Ok(Msg::Job(job)) => job,
            Ok(Msg::Stop(done)) => {
                stop = Some(done);
                break;
            }
            Err(_) => break,
        };
        let mut ops = first.ops.len();
        let mut jobs = vec![first];
        let until = Instant::now() + GROUP_WAIT_MAX;
        let mut last_arrival = Instant::now();
        while ops < MAX_GROUP_OPS {
            let next = match rx.try_recv() {
                // Sleep in short steps rather than wait on the queue: each
                // write would wake a waiting thread (and its sender pay for
                // that), while a step takes whatever arrived during it.
                Err(mpsc::TryRecvError::Empty) if busy && ops < GROUP_COMPANY => {
                    let now = Instant::now();
                    let left = until
                        .min(last_arrival + GROUP_WAIT)
                        .saturating_duration_since(now);
                    if left.is_zero() {
                        None
                    } else {
                        std::thread::sleep(left.min(GROUP_STEP));
                        continue;
                    }
                }
                next => next.ok(),
            };
            last_arrival = Instant::now();
            match next {
                Some(Msg::Job(job)) => {
                    ops += job.ops.len();
                    jobs.push(job);
                }
                Some(Msg::Stop(done)) => {
                    stop = Some(done);
                    break;
                }
                None => break,
            }
        }
        let started = Instant::now();
        let result = state.commit(&jobs, ops);
        metrics::histogram!("chathub_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chathub_store_commit_ops").record(ops as f64);
        if matches!(result, Err(StoreError::Corrupt(_))) && jobs.len() > 1 {
            // Nothing was written, and one job made the group impossible:
            // each goes again as a group of its own, so only that one fails.
            for job in jobs {
                let ops = job.ops.len();
                let result = state.commit(std::slice::from_ref(&job), ops);
                state.settle(vec![job], ops, result);
            }
            state.checkpoint_if_due();
            continue;
        }
        state.settle(jobs, ops, result);
        state.checkpoint_if_due();
    } // Refuse whatever arrives from now on; leave the database durable so
    // the next start has nothing to replay; release it.
    drop(rx);
    if state.progress.broken().is_none() {
        state.checkpoint();
    }
    state.finish();
    drop(state);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// Applies group `group`'s ops to the database in one transaction, which
/// also records the group as applied.
pub(crate) fn apply<'a>(
    db: &Database,
    group: u64,
    ops: impl Iterator<Item = &'a Op>,
    durability: Durability,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().map_err(engine)?;
    write.set_durability(durability).map_err(engine)?;
    {
        write
            .open_table(tables::META)
            .map_err(engine)?
            .insert(tables::LOG_GROUP, group)
            .map_err(engine)?;
        // Open a table only when an op needs it: most groups touch the
        // events alone, and every opened table costs the commit.
        macro_rules! open {
            ($slot:ident, $table:expr) => {{
                if $slot.is_none() {
                    $slot = Some(write.open_table($table).map_err(engine)?);
                }
                $slot.as_mut().expect("opened just above")
            }};
        }
        let (mut events, mut live, mut tokens, mut token_chats) = (None, None, None, None);
        let (mut sessions, mut ended, mut tickets, mut knowledge) = (None, None, None, None);
        let (mut files, mut contact_chats, mut contact_tickets) = (None, None, None);
        let mut ticket_summaries = None;
        for op in ops {
            match op {
                Op::Event(event) => {
                    let chat = event.chat.0;
                    open!(events, tables::EVENTS)
                        .insert((chat, event.seq), tables::encode(event)?.as_slice())
                        .map_err(engine)?;
                    match event.kind {
                        ChatEventKind::Started { .. } => {
                            open!(live, tables::LIVE).insert(chat, ()).map_err(engine)?;
                        }
                        ChatEventKind::Ended { .. } => {
                            open!(live, tables::LIVE).remove(chat).map_err(engine)?;
                        }
                        // Back from the end form: live again, and no longer
                        // a recent session until it ends anew.
                        ChatEventKind::Reopened { .. } => {
                            open!(live, tables::LIVE).insert(chat, ()).map_err(engine)?;
                            if let Some(at) = open!(ended, tables::SESSION_ENDED)
                                .remove(chat)
                                .map_err(engine)?
                            {
                                let at = at.value();
                                open!(sessions, tables::SESSIONS)
                                    .remove((at, chat))
                                    .map_err(engine)?;
                            }
                        }
                        _ => {}
                    }
                }
                Op::Token { chat, digest } => {
                    open!(tokens, tables::TOKENS)
                        .insert(*chat, digest.as_slice())
                        .map_err(engine)?;
                    open!(token_chats, tables::TOKEN_CHATS)
                        .insert(digest.as_slice(), *chat)
                        .map_err(engine)?;
                }
                Op::Session(summary) => {
                    let at = summary.ended.as_millis();
                    open!(sessions, tables::SESSIONS)
                        .insert((at, summary.chat.0), tables::encode(summary)?.as_slice())
                        .map_err(engine)?;
                    open!(ended, tables::SESSION_ENDED)
                        .insert(summary.chat.0, at)
                        .map_err(engine)?;
                }
                Op::Ticket(ticket) => {
                    open!(tickets, tables::TICKETS)
                        .insert(ticket.id.0, tables::encode(ticket.as_ref())?.as_slice())
                        .map_err(engine)?;
                    open!(ticket_summaries, tables::TICKET_SUMMARIES)
                        .insert(ticket.id.0, tables::encode(&ticket.summary())?.as_slice())
                        .map_err(engine)?;
                }
                Op::Knowledge(item) => {
                    open!(knowledge, tables::KNOWLEDGE)
                        .insert(item.id.0, tables::encode(item.as_ref())?.as_slice())
                        .map_err(engine)?;
                }
                Op::ForgetKnowledge(id) => {
                    open!(knowledge, tables::KNOWLEDGE)
                        .remove(id.0)
                        .map_err(engine)?;
                }
                Op::File(file) => {
                    open!(files, tables::FILES)
                        .insert(file.file.id.0, tables::encode(file)?.as_slice())
                        .map_err(engine)?;
                }
                Op::ForgetFile(id) => {
                    open!(files, tables::FILES).remove(id.0).map_err(engine)?;
                }
                Op::ContactChat { key, chat } => {
                    open!(contact_chats, tables::CONTACT_CHATS)
                        .insert((key.as_str(), *chat), ())
                        .map_err(engine)?;
                }
                Op::ContactTicket { key, ticket } => {
                    open!(contact_tickets, tables::CONTACT_TICKETS)
                        .insert((key.as_str(), *ticket), ())
                        .map_err(engine)?;
                }
            }
        }
    }
    write.commit().map_err(engine)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::core::{ChannelId, ChatId, Customer, Party, Timestamp};
    use crate::store::Store;

    fn event(chat: u64, seq: u64, kind: ChatEventKind) -> ChatEvent {
        ChatEvent {
            chat: ChatId(chat),
            seq,
            at: Timestamp(seq * 10),
            kind,
        }
    }

    fn started(chat: u64) -> ChatEvent {
        event(
            chat,
            1,
            ChatEventKind::Started {
                channel: ChannelId::new("support"),
                customer: Customer::default(),
            },
        )
    }

    fn message(chat: u64, seq: u64) -> ChatEvent {
        event(
            chat,
            seq,
            ChatEventKind::Message {
                from: Party::Customer,
                client_id: seq,
                text: format!("message {seq}"),
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

    #[test]
    fn a_database_of_another_layout_is_refused_by_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.close();
        drop(store);
        {
            let db = Database::create(dir.path().join("chathub.redb")).unwrap();
            let write = db.begin_write().unwrap();
            write
                .open_table(tables::META)
                .unwrap()
                .insert(tables::SCHEMA, 99)
                .unwrap();
            write.commit().unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::Schema { found: 99, known }) => {
                assert_eq!(known, tables::SCHEMA_VERSION);
            }
            Err(other) => panic!("expected a schema error, got {other:?}"),
            Ok(_) => panic!("expected a schema error, got an open store"),
        }
    }

    #[test]
    fn an_op_too_large_to_store_fails_alone_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let huge = event(
            1,
            2,
            ChatEventKind::Message {
                from: Party::Customer,
                client_id: 2,
                text: "x".repeat(tables::MAX_VALUE_BYTES + 1),
            },
        );
        // Submitted together, so they may share a group.
        let (tx, rx) = std_mpsc::channel();
        for (n, ops) in [
            vec![Op::Event(started(1)), Op::Event(huge)],
            vec![Op::Event(started(2))],
            vec![Op::Event(started(3))],
        ]
        .into_iter()
        .enumerate()
        {
            let tx = tx.clone();
            store
                .writer()
                .submit(ops, Box::new(move |result| tx.send((n, result)).unwrap()));
        }
        let mut results: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        results.sort_by_key(|(n, _)| *n);
        assert!(
            matches!(results[0].1, Err(StoreError::Corrupt(_))),
            "{results:?}"
        );
        assert!(results[1].1.is_ok() && results[2].1.is_ok(), "{results:?}");
        // Not broken: later writes and reads work, and the refused op is
        // nowhere.
        write(&store, vec![Op::Event(message(2, 2))]).unwrap();
        let live = store.live_chats().unwrap().chats;
        let chats: Vec<u64> = live.iter().map(|chat| chat.events[0].chat.0).collect();
        assert_eq!(chats, [2, 3]);
        store.close();
    }

    #[test]
    fn writes_survive_reopening_and_live_chats_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            write(
                &store,
                vec![Op::Event(started(1)), Op::Event(message(1, 2))],
            )
            .unwrap();
            write(&store, vec![Op::Event(started(2))]).unwrap();
            let ended = event(
                2,
                2,
                ChatEventKind::Ended {
                    by: Party::Customer,
                },
            );
            write(&store, vec![Op::Event(ended)]).unwrap();
            write(
                &store,
                vec![Op::Token {
                    chat: 1,
                    digest: vec![7; 32],
                }],
            )
            .unwrap();
            store.close();
            assert_eq!(
                write(&store, vec![Op::Event(started(3))]),
                Err(StoreError::Closed)
            );
        }
        let store = Store::open(dir.path()).unwrap();
        let live = store.live_chats().unwrap().chats;
        assert_eq!(live.len(), 1, "the ended chat is not live");
        assert_eq!(
            live[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(live[0].token_digest.as_deref(), Some(&[7u8; 32][..]));
        assert_eq!(store.last_chat_id().unwrap(), 2);
        let page = store.transcript(ChatId(2), 0).unwrap().unwrap();
        assert_eq!(page.events.len(), 2);
        assert!(!page.more);
        assert_eq!(store.transcript(ChatId(9), 0).unwrap(), None);
    }

    #[test]
    fn many_concurrent_writes_are_grouped_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tx, rx) = std_mpsc::channel();
        for chat in 1..=200u64 {
            let tx = tx.clone();
            store.writer().submit(
                vec![Op::Event(started(chat)), Op::Event(message(chat, 2))],
                Box::new(move |result| tx.send((chat, result)).unwrap()),
            );
        }
        drop(tx);
        let acks: Vec<_> = rx.iter().collect();
        assert_eq!(acks.len(), 200);
        assert!(acks.iter().all(|(_, result)| result.is_ok()));
        assert_eq!(store.live_chats().unwrap().chats.len(), 200);
    }

    #[test]
    fn a_read_after_an_acknowledgement_sees_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for chat in 1..=50u64 {
            write(&store, vec![Op::Event(started(chat))]).unwrap();
            // Acknowledged, so applied before any read that starts now,
            // although the apply thread gathers for a while.
            let stored = store.chat(ChatId(chat)).unwrap();
            assert!(
                stored.is_some(),
                "chat {chat} acknowledged but not read back"
            );
        }
    }

    /// The group the database last applied.
    fn applied(dir: &std::path::Path) -> u64 {
        let db = Database::open(dir.join("chathub.redb")).unwrap();
        let read = redb::ReadableDatabase::begin_read(&db).unwrap();
        let meta = read.open_table(tables::META).unwrap();
        meta.get(tables::LOG_GROUP).unwrap().unwrap().value()
    }

    #[test]
    fn groups_only_in_the_log_are_applied_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            write(&store, vec![Op::Event(started(1))]).unwrap();
            write(&store, vec![Op::Event(message(1, 2))]).unwrap();
            store.close();
        }
        assert_eq!(applied(dir.path()), 2);
        // As after a crash: two groups made durable by the log alone.
        {
            let wal = dir.path().join("chathub.wal");
            let (mut log, replay) = Log::open(&wal, 2).unwrap();
            assert!(replay.groups.is_empty(), "a clean close leaves nothing");
            let third = [Op::Event(message(1, 3)), Op::Event(started(2))];
            log.append(3, third.len(), third.iter()).unwrap();
            log.append(4, 1, [Op::Event(message(2, 2))].iter()).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let live = store.live_chats().unwrap().chats;
        let seqs: Vec<Vec<u64>> = live
            .iter()
            .map(|chat| chat.events.iter().map(|e| e.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1, 2, 3], vec![1, 2]]);
        // New groups continue after the replayed ones.
        write(&store, vec![Op::Event(message(2, 3))]).unwrap();
        store.close();
        drop(store);
        assert_eq!(applied(dir.path()), 5);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.live_chats().unwrap().chats[1].events.len(), 3);
    }

    #[test]
    fn the_log_alternates_its_files_at_each_checkpoint_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::store::StoreOptions {
            checkpoint_bytes: 2048,
        };
        {
            let store = Store::open_with(dir.path(), options).unwrap();
            for chat in 1..=40u64 {
                write(&store, vec![Op::Event(started(chat))]).unwrap();
                for seq in 2..=20 {
                    let mut long = message(chat, seq);
                    if let ChatEventKind::Message { text, .. } = &mut long.kind {
                        *text = "x".repeat(4000);
                    }
                    write(&store, vec![Op::Event(long)]).unwrap();
                }
            }
            // 3 MB of records, a checkpoint every 2 KiB: the log went from
            // one file to the other each time, starting it over, so neither
            // grew past its first 1 MiB step.
            for name in ["chathub.wal", "chathub.wal.1"] {
                let wal = std::fs::metadata(dir.path().join(name)).unwrap();
                assert_eq!(wal.len(), 1 << 20, "{name}");
            }
            store.close();
        }
        let store = Store::open_with(dir.path(), options).unwrap();
        let live = store.live_chats().unwrap().chats;
        assert_eq!(live.len(), 40);
        for chat in &live {
            let seqs: Vec<u64> = chat.events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_log_file_is_written_over_only_once_its_checkpoint_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chathub.wal");
        let (log, _) = Log::open(&path, 0).unwrap();
        let progress = Arc::new(Progress::new(0));
        // This test is the apply thread: it answers checkpoints when it
        // chooses.
        let (tx, applier) = mpsc::sync_channel(APPLY_BACKLOG);
        *progress.apply.lock().unwrap() = Some(ApplyQueue {
            tx,
            thread: std::thread::current(),
        });
        let mut state = State {
            log,
            // Every group fills its file.
            checkpoint_bytes: 1,
            checkpointing: None,
            group: 0,
            progress,
            applier: None,
        };
        let log_thread = std::thread::spawn(move || {
            for seq in 1..=3 {
                let job = Job {
                    ops: vec![Op::Event(message(1, seq))],
                    done: Box::new(|_| {}),
                };
                let group = state.commit(&[job], 1).unwrap();
                state.apply(group, Vec::new());
                state.checkpoint_if_due();
            }
        });
        let next = || applier.recv_timeout(Duration::from_secs(10)).unwrap();
        let answer = |work: Apply| match work {
            // The last one's asker may be gone.
            Apply::Checkpoint(reply) => drop(reply.send(Ok(()))),
            _ => panic!("expected a checkpoint"),
        };
        let groups = |durable| {
            let (_, replay) = Log::open(&path, durable).unwrap();
            replay
                .groups
                .iter()
                .map(|(group, _)| *group)
                .collect::<Vec<_>>()
        };
        // Group 1 filled the first file; the log went on in the second
        // without waiting for the checkpoint...
        assert!(matches!(next(), Apply::Group(1, _)));
        let first_checkpoint = next();
        assert!(matches!(next(), Apply::Group(2, _)));
        // ...but, the second full too, it waits: the first file still holds
        // group 1, not yet durable in the database.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!log_thread.is_finished());
        assert_eq!(groups(0), [1, 2]);
        // Checkpoint done: group 3 goes over group 1.
        answer(first_checkpoint);
        let second_checkpoint = next();
        assert!(matches!(next(), Apply::Group(3, _)));
        assert_eq!(groups(1), [2, 3]);
        answer(second_checkpoint);
        log_thread.join().unwrap();
        answer(next());
    }

    #[test]
    fn a_log_that_skips_groups_stops_the_open_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            write(&store, vec![Op::Event(started(1))]).unwrap();
            store.close();
        }
        {
            let (mut log, _) = Log::open(&dir.path().join("chathub.wal"), 1).unwrap();
            log.append(3, 1, [Op::Event(message(1, 2))].iter()).unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("chathub.wal"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("chathub.redb"),
            b"this is not a database, just text",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("chathub.redb"));
    }
}
