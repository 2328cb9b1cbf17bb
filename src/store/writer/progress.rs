//! How far the log and the database have got, and what the apply thread
//! is asked to do.

use super::*;
/// How far the log and the database have got: shared by the two writer
/// threads and the readers.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(super) marks: Mutex<Marks>,
    pub(super) moved: Condvar,
    /// The apply thread's queue; `None` once it is told to finish.
    pub(super) apply: Mutex<Option<ApplyQueue>>,
    /// When a reader last cut the apply thread's gathering short.
    pub(super) last_flush: Mutex<Option<Instant>>,
}

/// How often readers may cut the apply thread's gathering short: a flood of
/// reads (which anonymous requests can cause) costs at most one early
/// database transaction per interval, not one per read.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// The apply thread's queue and the thread, which sleeps while it gathers
/// groups: a group does not wake it, a checkpoint or a flush does.
#[derive(Debug, Clone)]
pub(super) struct ApplyQueue {
    pub(super) tx: mpsc::SyncSender<Apply>,
    pub(super) thread: std::thread::Thread,
}

#[derive(Debug, Default)]
pub(super) struct Marks {
    /// The last group synced to the log (and so acknowledged).
    pub(super) durable: u64,
    /// The last group written into the database.
    pub(super) applied: u64,
    /// Why writes stopped, if they did.
    pub(super) broken: Option<StoreError>,
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

    pub(super) fn apply_queue(&self) -> Option<ApplyQueue> {
        self.apply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Queues work for the apply thread, waiting while its queue is full
    /// (after waking it, should it be gathering); false if it has stopped.
    pub(super) fn send(&self, work: Apply) -> bool {
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

    pub(super) fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        // A panic elsewhere cannot leave the marks half-changed.
        self.marks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn broken(&self) -> Option<StoreError> {
        self.marks().broken.clone()
    }

    pub(super) fn set_durable(&self, group: u64) {
        self.marks().durable = group;
    }

    pub(super) fn set_applied(&self, group: u64) {
        self.marks().applied = group;
        self.moved.notify_all();
    }

    /// Records why writes stop and returns the error every later write (and
    /// read) gets.
    pub(super) fn set_broken(&self, err: StoreError) -> StoreError {
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
    /// The durable and the applied group now; an error once writes
    /// stopped.
    pub(crate) fn now(&self) -> Result<(u64, u64), StoreError> {
        let marks = self.marks();
        match &marks.broken {
            Some(err) => Err(err.clone()),
            None => Ok((marks.durable, marks.applied)),
        }
    }

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
    pub(super) fn flush_soon(&self) {
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
pub(super) enum Apply {
    /// A durable group's ops.
    Group(u64, Vec<Op>),
    /// Sync the database (everything sent before is applied first).
    Checkpoint(mpsc::Sender<Result<(), StoreError>>),
    /// A reader waits: write what has been gathered now.
    Flush,
}
