//! The log thread: gathers writes into groups, makes each durable with one
//! commit-log record, and hands it to the apply thread.

use super::*;
/// Why the log thread can no longer hand work on.
pub(super) fn apply_stopped() -> StoreError {
    StoreError::Engine("the apply thread has stopped".into())
}

/// What the log thread owns.
pub(super) struct State {
    pub(super) log: Box<dyn CommitLog>,
    /// Log bytes after which the database is synced and the log goes on in
    /// its other file.
    pub(super) checkpoint_bytes: u64,
    /// The checkpoint of the log's other file, while it runs: answered
    /// once the database holds its groups durably.
    pub(super) checkpointing: Option<mpsc::Receiver<Result<(), StoreError>>>,
    /// The last group written.
    pub(super) group: u64,
    pub(super) progress: Arc<Progress>,
    pub(super) applier: Option<JoinHandle<()>>,
}

impl State {
    /// Makes one group durable.
    pub(super) fn commit(&mut self, jobs: &[Job], ops: usize) -> Result<u64, StoreError> {
        if let Some(err) = self.progress.broken() {
            return Err(err);
        }
        let group = self.group + 1;
        let mut all = jobs.iter().flat_map(|job| &job.ops);
        match self.log.append(group, ops, &mut all) {
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
    pub(super) fn settle(&mut self, jobs: Vec<Job>, ops: usize, result: Result<u64, StoreError>) {
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
    pub(super) fn apply(&mut self, group: u64, ops: Vec<Op>) {
        if !self.progress.send(Apply::Group(group, ops)) {
            self.progress.set_broken(apply_stopped());
        }
    }

    /// Once the log's active file is full: asks for a checkpoint of its
    /// groups and goes on in the other file at once. Waits only if that
    /// file's own checkpoint has not finished yet: its records may be
    /// written over only once the database holds them durably.
    pub(super) fn checkpoint_if_due(&mut self) {
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
    pub(super) fn start_checkpoint(&self) -> Option<mpsc::Receiver<Result<(), StoreError>>> {
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
    pub(super) fn checkpoint_done(&mut self, wait: bool) -> bool {
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
    pub(super) fn checkpoint(&mut self) {
        if self.checkpoint_done(true) {
            self.checkpointing = self.start_checkpoint();
            self.checkpoint_done(true);
        }
    }

    /// Lets the apply thread finish what it has and waits for it.
    pub(super) fn finish(&mut self) {
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

pub(super) fn run(mut state: State, rx: mpsc::Receiver<Msg>) {
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
