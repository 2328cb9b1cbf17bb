//! The commit log's file I/O, behind [`LogFileIo`].
//!
//! The log ([`FileLog`](crate::store::log::FileLog)) is only as good as what it
//! does when the machine stops mid-append or the disk says no, and neither
//! can be arranged with real files on demand. So the log reaches its two
//! files through this trait: over [`std::fs::File`] in the hub
//! ([`FsLogFile`]), and in tests over a model of a disk with a page cache
//! (`MemDisk`): writes land in the cache, a sync makes them durable, a
//! power cut keeps what was synced and, at most, a prefix of what was not
//! (torn at any byte), and any write or sync can be made to fail with
//! `EIO` or `ENOSPC`. A property test runs the log through random appends,
//! file switches and power cuts against that model (after redb's
//! `tests/crash_consistency.rs`).
//!
//! The log appends one record per group commit, so the trait object's
//! indirect call costs nothing measurable; the growing of the files ahead
//! of their records stays in the log, so the model sees those writes too.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What the commit log does with one of its files.
pub(crate) trait LogFileIo: Send {
    /// The file's whole content (read once, when the log opens).
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Writes all of `bytes` at `offset`, extending the file if need be.
    /// Not durable until [`sync_data`](LogFileIo::sync_data) returns `Ok`.
    fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable, with the length needed to read
    /// them back (`fdatasync`). After an error nothing written since the
    /// last good sync can be trusted, on disk or not: a later sync may
    /// succeed without writing it (the kernel marks the pages clean).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A log file on disk.
pub(crate) struct FsLogFile {
    file: File,
}

impl FsLogFile {
    /// Opens (creating if needed) the log file at `path`; a new file's
    /// name is synced into its directory.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !existed && let Some(dir) = path.parent() {
            // The new file's name must survive a power cut too.
            File::open(dir)?.sync_all()?;
        }
        Ok(Self { file })
    }
}

impl LogFileIo for FsLogFile {
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
pub(crate) use model::{Call, EIO, ENOSPC, MemDisk};

/// The disk model the tests run the log over.
#[cfg(test)]
mod model {
    use std::io;
    use std::sync::{Arc, Mutex, MutexGuard};

    use super::LogFileIo;

    /// `EIO`, as Linux numbers it.
    pub(crate) const EIO: i32 = 5;
    /// `ENOSPC`, as Linux numbers it.
    pub(crate) const ENOSPC: i32 = 28;

    /// A kind of I/O call, to make one fail.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Call {
        Write,
        Sync,
    }

    /// A disk holding the log's two files, shared by every handle on it.
    #[derive(Clone, Default)]
    pub(crate) struct MemDisk {
        state: Arc<Mutex<Disk>>,
    }

    #[derive(Default)]
    struct Disk {
        /// What each file holds on the medium: survives a power cut.
        durable: [Vec<u8>; 2],
        /// What each file reads as: the page cache.
        cache: [Vec<u8>; 2],
        /// Writes in the cache but not yet durable, oldest first.
        unsynced: Vec<Pending>,
        writes: u64,
        syncs: u64,
        /// Calls to fail: the kind, its number (counted from 1), the errno.
        faults: Vec<(Call, u64, i32)>,
        /// The call (writes and syncs counted together) at which the power
        /// goes, and how much of the unsynced bytes the medium keeps.
        cut: Option<(u64, f64)>,
        /// Set when the power went: what the medium held. Every call fails
        /// from then on.
        image: Option<MemDisk>,
    }

    /// A write not yet durable.
    struct Pending {
        file: usize,
        offset: u64,
        bytes: Vec<u8>,
        /// Its file's sync failed after it: no later sync writes it,
        /// although the medium may have it at a power cut.
        abandoned: bool,
    }

    fn write_into(file: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
        let offset = offset as usize;
        let end = offset + bytes.len();
        if file.len() < end {
            // A hole reads as zeros.
            file.resize(end, 0);
        }
        file[offset..end].copy_from_slice(bytes);
    }

    impl Disk {
        fn calls(&self) -> u64 {
            self.writes + self.syncs
        }

        /// What the medium holds if the power goes now: the synced bytes
        /// and the first `keep` (a fraction) of the unsynced ones, in the
        /// order they were written, the last torn at any byte.
        fn image(&self, keep: f64) -> MemDisk {
            let mut files = self.durable.clone();
            let total: usize = self.unsynced.iter().map(|write| write.bytes.len()).sum();
            let mut left = (total as f64 * keep.clamp(0.0, 1.0)).round() as usize;
            for write in &self.unsynced {
                if left == 0 {
                    break;
                }
                let kept = write.bytes.len().min(left);
                write_into(&mut files[write.file], write.offset, &write.bytes[..kept]);
                left -= kept;
            }
            MemDisk::holding(files)
        }

        /// Counts a call and fails it if asked to (or if the power is
        /// out). A write is passed in to be in progress when the power
        /// goes.
        fn enter(&mut self, call: Call, write: Option<(usize, u64, &[u8])>) -> io::Result<()> {
            if self.image.is_some() {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let number = match call {
                Call::Write => {
                    self.writes += 1;
                    self.writes
                }
                Call::Sync => {
                    self.syncs += 1;
                    self.syncs
                }
            };
            if let Some((at, keep)) = self.cut
                && self.calls() > at
            {
                if let Some((file, offset, bytes)) = write {
                    self.unsynced.push(Pending {
                        file,
                        offset,
                        bytes: bytes.to_vec(),
                        abandoned: false,
                    });
                }
                self.image = Some(self.image(keep));
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let fault = self
                .faults
                .iter()
                .position(|&(kind, nth, _)| kind == call && nth == number);
            match fault {
                Some(index) => {
                    let (_, _, errno) = self.faults.remove(index);
                    Err(io::Error::from_raw_os_error(errno))
                }
                None => Ok(()),
            }
        }

        fn write(&mut self, file: usize, bytes: &[u8], offset: u64) -> io::Result<()> {
            if let Err(err) = self.enter(Call::Write, Some((file, offset, bytes))) {
                if self.image.is_none() {
                    // A failed write may have written part of itself.
                    self.cache_write(file, offset, &bytes[..bytes.len() / 2]);
                }
                return Err(err);
            }
            self.cache_write(file, offset, bytes);
            Ok(())
        }

        fn cache_write(&mut self, file: usize, offset: u64, bytes: &[u8]) {
            write_into(&mut self.cache[file], offset, bytes);
            self.unsynced.push(Pending {
                file,
                offset,
                bytes: bytes.to_vec(),
                abandoned: false,
            });
        }

        fn sync(&mut self, file: usize) -> io::Result<()> {
            if let Err(err) = self.enter(Call::Sync, None) {
                // Linux's answer to a failed writeback: the pages are marked
                // clean, so no later sync writes them. The medium may or may
                // not have them.
                for write in &mut self.unsynced {
                    if write.file == file {
                        write.abandoned = true;
                    }
                }
                return Err(err);
            }
            let (mine, others) = std::mem::take(&mut self.unsynced)
                .into_iter()
                .partition(|write| write.file == file);
            self.unsynced = others;
            for write in mine {
                if !write.abandoned {
                    write_into(&mut self.durable[file], write.offset, &write.bytes);
                }
            }
            Ok(())
        }
    }

    impl MemDisk {
        /// A disk whose files hold `files`, all of it durable.
        fn holding(files: [Vec<u8>; 2]) -> Self {
            let disk = Disk {
                durable: files.clone(),
                cache: files,
                ..Disk::default()
            };
            Self {
                state: Arc::new(Mutex::new(disk)),
            }
        }

        fn disk(&self) -> MutexGuard<'_, Disk> {
            self.state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// The log's two files on this disk, named for error messages.
        pub(crate) fn files(&self) -> [(String, Box<dyn LogFileIo>); 2] {
            [0, 1].map(|index| {
                let file = MemFile {
                    disk: self.clone(),
                    index,
                };
                (
                    format!("memory log {index}"),
                    Box::new(file) as Box<dyn LogFileIo>,
                )
            })
        }

        /// Fails the `nth` call of this kind from now on (1 is the next
        /// one) with `errno`, once. A failing write writes half its bytes.
        pub(crate) fn fail(&self, call: Call, nth: u64, errno: i32) {
            let mut disk = self.disk();
            let done = match call {
                Call::Write => disk.writes,
                Call::Sync => disk.syncs,
            };
            disk.faults.push((call, done + nth, errno));
        }

        /// Cuts the power at the `nth` I/O call from now (writes and syncs
        /// together; 0 is the next one), keeping `keep` (a fraction) of the
        /// bytes not yet synced, a write in progress among them.
        pub(crate) fn cut_power_at(&self, nth: u64, keep: f64) {
            let mut disk = self.disk();
            let at = disk.calls() + nth;
            disk.cut = Some((at, keep));
        }

        /// What the medium held when the power was cut, if it was.
        pub(crate) fn after_power_cut(&self) -> Option<Self> {
            self.disk().image.clone()
        }

        /// What the medium holds if the power goes now, keeping `keep` (a
        /// fraction) of the bytes not yet synced.
        pub(crate) fn crash(&self, keep: f64) -> Self {
            self.disk().image(keep)
        }

        /// Writes and syncs so far.
        pub(crate) fn calls(&self) -> u64 {
            self.disk().calls()
        }
    }

    /// One of the log's files on a [`MemDisk`].
    struct MemFile {
        disk: MemDisk,
        index: usize,
    }

    impl LogFileIo for MemFile {
        fn read_all(&mut self) -> io::Result<Vec<u8>> {
            let disk = self.disk.disk();
            if disk.image.is_some() {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            Ok(disk.cache[self.index].clone())
        }

        fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
            self.disk.disk().write(self.index, bytes, offset)
        }

        fn sync_data(&mut self) -> io::Result<()> {
            self.disk.disk().sync(self.index)
        }
    }
}

#[cfg(test)]
mod tests {
    use bincode::config::standard;
    use proptest::prelude::*;

    use super::*;
    use crate::store::commit_log::CommitLog;
    use crate::store::log::FileLog;
    use crate::store::log::tests::message;
    use crate::store::{Op, StoreError};

    /// Ops as comparable bytes (`Op` has no `PartialEq`).
    fn encoded(ops: &[Op]) -> Vec<u8> {
        bincode::encode_to_vec(ops, standard()).expect("ops encode")
    }

    fn open(disk: &MemDisk, durable: u64, grow: u64) -> (FileLog, Vec<(u64, Vec<Op>)>) {
        let (mut log, replay) = FileLog::open_files(disk.files(), durable)
            .unwrap_or_else(|err| panic!("a crash image opens: {err}"));
        log.set_grow_step(grow);
        (log, replay.groups)
    }

    /// One step of a history.
    #[derive(Debug, Clone)]
    enum Step {
        /// Append a group of messages to these chats.
        Append(Vec<u8>),
        /// The apply thread's own sync (once a second): the database holds
        /// the acknowledged groups up to a point (this share of the way
        /// from its mark to the last acknowledged group, out of 255).
        DbSync(u8),
        /// The checkpoint running, if one is, finishes.
        CheckpointDone,
        /// The power goes between appends; the medium keeps this share
        /// (per mille) of what was written and not synced.
        Crash(u32),
        /// The power goes at the `at`th I/O call of the next append.
        CrashDuring { chats: Vec<u8>, at: u8, keep: u32 },
    }

    fn keep() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0), Just(1000), 0..=1000u32]
    }

    fn chats() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(0..4u8, 1..8)
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            12 => chats().prop_map(Step::Append),
            2 => any::<u8>().prop_map(Step::DbSync),
            3 => Just(Step::CheckpointDone),
            1 => keep().prop_map(Step::Crash),
            1 => (chats(), 0..4u8, keep())
                .prop_map(|(chats, at, keep)| Step::CrashDuring { chats, at, keep }),
        ]
    }

    /// The writer's use of the log, and what it may count on.
    struct Model {
        disk: MemDisk,
        log: FileLog,
        grow: u64,
        /// Log bytes after which the writer switches files.
        checkpoint_bytes: u64,
        /// Every group of this history (group `n` at `n - 1`), the last one
        /// perhaps written but never acknowledged.
        groups: Vec<Vec<Op>>,
        /// The last group whose append returned `Ok`.
        acked: u64,
        /// The last group the database holds durably.
        db: u64,
        /// The checkpoint running: it makes the groups up to this one
        /// durable in the database.
        checkpointing: Option<u64>,
        /// Makes every message different.
        seq: u64,
    }

    impl Model {
        fn new(grow: u64, checkpoint_bytes: u64) -> Self {
            let disk = MemDisk::default();
            let (log, replay) = open(&disk, 0, grow);
            assert!(replay.is_empty());
            Self {
                disk,
                log,
                grow,
                checkpoint_bytes,
                groups: Vec::new(),
                acked: 0,
                db: 0,
                checkpointing: None,
                seq: 0,
            }
        }

        /// Appends the next group as the writer does, then switches files
        /// if the active one is full, as the writer does: only once the
        /// other file's checkpoint is done (waiting for it), asking for one
        /// of everything so far.
        fn append(&mut self, chats: &[u8]) -> Result<(), StoreError> {
            let ops: Vec<Op> = chats
                .iter()
                .map(|&chat| {
                    self.seq += 1;
                    message(u64::from(chat), self.seq)
                })
                .collect();
            let group = self.acked + 1;
            self.groups.truncate(self.acked as usize);
            self.groups.push(ops);
            let ops = &self.groups[group as usize - 1];
            self.log.append(group, ops.len(), &mut ops.iter())?;
            self.acked = group;
            if self.log.len() >= self.checkpoint_bytes {
                if let Some(group) = self.checkpointing.take() {
                    self.db = self.db.max(group);
                }
                self.checkpointing = Some(self.acked);
                self.log.switch();
            }
            Ok(())
        }

        /// Starts again from what a power cut left on the medium, and
        /// checks what the log gives back.
        fn restart(&mut self, image: MemDisk) {
            let (log, replay) = open(&image, self.db, self.grow);
            let numbers: Vec<u64> = replay.iter().map(|(group, _)| *group).collect();
            let expected: Vec<u64> = (self.db + 1..=self.db + numbers.len() as u64).collect();
            // In order, each once, right after the database's last.
            assert_eq!(numbers, expected, "groups replayed after {}", self.db);
            // Every acknowledged group the database lacks...
            assert!(
                self.db + numbers.len() as u64 >= self.acked,
                "acknowledged up to {}, database at {}, replayed {numbers:?}",
                self.acked,
                self.db
            );
            // ...and nothing never written (at most the one in flight).
            assert!(
                self.db + numbers.len() as u64 <= self.groups.len() as u64,
                "written up to {}, replayed {numbers:?}",
                self.groups.len()
            );
            for (group, ops) in &replay {
                assert_eq!(
                    encoded(ops),
                    encoded(&self.groups[*group as usize - 1]),
                    "group {group}'s ops"
                );
            }
            // The store applies them durably before it writes anew.
            self.db += numbers.len() as u64;
            self.acked = self.db;
            self.groups.truncate(self.db as usize);
            self.checkpointing = None;
            self.disk = image;
            self.log = log;
        }

        fn run(&mut self, step: &Step) {
            match step {
                Step::Append(chats) => {
                    if let Err(err) = self.append(chats) {
                        panic!("append failed with no fault: {err}");
                    }
                }
                Step::DbSync(share) => {
                    let to = self.db + (self.acked - self.db) * u64::from(*share) / 255;
                    self.db = self.db.max(to);
                }
                Step::CheckpointDone => {
                    if let Some(group) = self.checkpointing.take() {
                        self.db = self.db.max(group);
                    }
                }
                Step::Crash(keep) => {
                    let image = self.disk.crash(f64::from(*keep) / 1000.0);
                    self.restart(image);
                }
                Step::CrashDuring { chats, at, keep } => {
                    let keep = f64::from(*keep) / 1000.0;
                    self.disk.cut_power_at(u64::from(*at), keep);
                    let result = self.append(chats);
                    let image = match self.disk.after_power_cut() {
                        Some(image) => {
                            assert!(result.is_err(), "an append the power cut returned Ok");
                            image
                        }
                        // The append needed fewer calls: the power goes
                        // after it.
                        None => {
                            assert!(result.is_ok());
                            self.disk.crash(keep)
                        }
                    };
                    self.restart(image);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Random appends, file switches, database syncs, checkpoints and
        /// power cuts (between appends, or at any write or sync of one,
        /// keeping any prefix of the unsynced bytes): after each cut the
        /// log gives back every acknowledged group the database lacks,
        /// once, in order, with its ops, and nothing else but perhaps the
        /// group in flight.
        #[test]
        fn acknowledged_groups_survive_any_power_cut(
            grow in prop_oneof![Just(64u64), Just(512), Just(4096)],
            checkpoint_bytes in 64..2048u64,
            steps in prop::collection::vec(step(), 1..80),
            last in keep(),
        ) {
            let mut model = Model::new(grow, checkpoint_bytes);
            for step in &steps {
                model.run(step);
            }
            model.run(&Step::Crash(last));
        }
    }

    /// Appends groups 1..=3 to a fresh disk.
    fn three_groups() -> (MemDisk, FileLog, Vec<Vec<Op>>) {
        let disk = MemDisk::default();
        let (mut log, _) = open(&disk, 0, 4096);
        let groups: Vec<Vec<Op>> = (1..=3)
            .map(|group| vec![message(1, group), message(2, group)])
            .collect();
        for (group, ops) in (1..).zip(&groups) {
            log.append(group, ops.len(), &mut ops.iter()).unwrap();
        }
        (disk, log, groups)
    }

    #[test]
    fn a_failed_write_or_sync_fails_the_append_and_every_later_one() {
        // The group's first write grows the file, its second is the record.
        for (call, nth) in [(Call::Write, 1), (Call::Write, 2), (Call::Sync, 1)] {
            for errno in [EIO, ENOSPC] {
                let case = format!("{call:?} {nth}, errno {errno}");
                let (disk, mut log, groups) = three_groups();
                // Large enough to grow the file.
                let big: Vec<Op> = (0..200).map(|seq| message(3, seq)).collect();
                disk.fail(call, nth, errno);
                let err = log.append(4, big.len(), &mut big.iter()).unwrap_err();
                assert!(matches!(err, StoreError::Engine(_)), "{case}: {err}");
                let os = io::Error::from_raw_os_error(errno).to_string();
                assert!(err.to_string().contains(&os), "{case}: {err}");
                // Refused without touching the disk, whatever comes next,
                // the same group again or the next, in either file.
                let calls = disk.calls();
                let small = [message(4, 1)];
                for group in [4, 5] {
                    let err = log.append(group, 1, &mut small.iter()).unwrap_err();
                    assert!(matches!(err, StoreError::Stopped(_)), "{case}: {err}");
                }
                log.switch();
                assert!(log.append(4, 1, &mut small.iter()).is_err(), "{case}");
                assert_eq!(disk.calls(), calls, "{case}");

                // What was synced comes back, exactly.
                let (_, replay) = open(&disk.crash(0.0), 0, 4096);
                let replayed: Vec<_> = replay.iter().map(|(g, ops)| (*g, encoded(ops))).collect();
                let acked: Vec<_> = (1..).zip(groups.iter().map(|ops| encoded(ops))).collect();
                assert_eq!(replayed, acked, "{case}");
                // With all that was written, the failed group may come
                // back too (if the medium took it before the sync failed),
                // but only whole and after the others.
                let (_, replay) = open(&disk.crash(1.0), 0, 4096);
                let replayed: Vec<_> = replay.iter().map(|(g, ops)| (*g, encoded(ops))).collect();
                assert_eq!(replayed[..3], acked[..], "{case}");
                if let Some((group, ops)) = replayed.get(3) {
                    assert_eq!(call, Call::Sync, "{case}: a torn record came back");
                    assert_eq!((*group, ops), (4, &encoded(&big)), "{case}");
                }
                assert!(replayed.len() <= 4, "{case}");
            }
        }
    }

    #[test]
    fn the_model_loses_what_a_failed_sync_left_even_when_a_later_one_succeeds() {
        // What a log that went on after a failed sync would meet: the later
        // sync says Ok, the earlier group is gone, and the later one lies
        // beyond a gap.
        let disk = MemDisk::default();
        let [(_, mut file), _] = disk.files();
        file.write_all_at(b"first", 0).unwrap();
        disk.fail(Call::Sync, 1, EIO);
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(EIO));
        file.write_all_at(b"later", 5).unwrap();
        file.sync_data().unwrap();
        assert_eq!(
            file.read_all().unwrap(),
            b"firstlater",
            "the cache has both"
        );
        let [(_, mut crashed), _] = disk.crash(0.0).files();
        assert_eq!(crashed.read_all().unwrap(), b"\0\0\0\0\0later");
    }

    #[test]
    fn the_writer_stops_at_a_failed_sync_and_a_restart_replays_what_it_acknowledged() {
        use std::sync::{Arc, mpsc};

        use crate::store::writer::{Progress, Writer};

        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("chathub.redb")).unwrap();
        crate::store::tables::create_all(&db).unwrap();
        let disk = MemDisk::default();
        let (log, _) = open(&disk, 0, 4096);
        let writer = Writer::start(
            Arc::new(db),
            Box::new(log),
            Arc::new(Progress::new(0)),
            1 << 20,
            Default::default(),
        )
        .unwrap();
        let write = |ops: Vec<Op>| {
            let (tx, rx) = mpsc::channel();
            writer.submit(ops, Box::new(move |result| tx.send(result).unwrap()));
            rx.recv().unwrap()
        };
        let groups: Vec<Vec<Op>> = (1..=3).map(|seq| vec![message(1, seq)]).collect();
        for ops in &groups {
            write(ops.clone()).unwrap();
        }
        disk.fail(Call::Sync, 1, ENOSPC);
        let err = write(vec![message(1, 4)]).unwrap_err();
        assert!(matches!(err, StoreError::Stopped(_)), "{err}");
        let calls = disk.calls();
        let err = write(vec![message(1, 5)]).unwrap_err();
        assert!(matches!(err, StoreError::Stopped(_)), "{err}");
        writer.close();
        assert_eq!(disk.calls(), calls, "nothing written after the failure");

        let (_, replay) = open(&disk.crash(0.0), 0, 4096);
        let replayed: Vec<_> = replay.iter().map(|(g, ops)| (*g, encoded(ops))).collect();
        let acked: Vec<_> = (1..).zip(groups.iter().map(|ops| encoded(ops))).collect();
        assert_eq!(replayed, acked);
    }
}
