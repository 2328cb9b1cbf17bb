//! The commit log, `<data_dir>/chathub.wal` and `chathub.wal.1`: what
//! makes a group durable.
//!
//! Each group commit appends one record holding all of the group's ops and
//! syncs the file; only then is the group acknowledged, and applied to the
//! database by another thread without waiting for the disk there. A sync of a few sequential
//! kilobytes costs far less than a durable B-tree commit, which rewrites
//! every page the group touched: one leaf per chat for a group of messages
//! spread over many chats.
//!
//! Records go to one of two files. When it is full the writer asks for a
//! checkpoint (the database made durable up to the file's last group) and
//! goes on at once in the other file, from offset 0, overwriting what was
//! there: that file's own checkpoint finished before (the writer waits for
//! it if not). So acknowledgements go on while the database syncs. A record
//! is only trusted when its checksum holds and its group is the next one
//! expected: old records left behind a newer, shorter run carry group
//! numbers the database already holds and are skipped. After a crash the
//! groups beyond the database's may lie in both files, the older run in
//! either; they are read back in group order.
//!
//! The files are reached through [`LogFileIo`] (see [`log_io`](super::log_io)),
//! so that tests can run the log over a disk model with power cuts and
//! failing writes. After a write or sync fails the log appends nothing
//! more: what the failed group left in the file, on disk or not, cannot be
//! known, and Linux may report a later sync as done although the pages the
//! failed one lost never reached the disk.
//!
//! Record layout, little endian:
//! `magic u32 | payload length u32 | crc32 u32 | group u64 | payload`,
//! the checksum covering the group number and the payload (the ops, in
//! bincode).

use std::path::{Path, PathBuf};

use crate::store::commit_log::{
    CommitLog, MAX_PAYLOAD, Replay, decode_group, encode_group, refuse_after,
};
use crate::store::log_io::{FsLogFile, LogFileIo};
use crate::store::{Op, StoreError};

const MAGIC: u32 = 0x4c57_4843; // "CHWL"
const HEADER: usize = 4 + 4 + 4 + 8;
/// The file grows by this many zero bytes at a time, written ahead of the
/// records: overwriting blocks the file already has makes a sync write the
/// data alone, while appending past the end also commits the file's new
/// size to the file system's journal, which costs about as much again.
const GROW_BYTES: u64 = 1 << 20;
/// The encoding buffer is kept between groups up to this size.
const KEEP_BUFFER_BYTES: usize = 4 << 20;

/// The open log and where the next record goes.
pub(crate) struct FileLog {
    files: [LogFile; 2],
    /// The file records go to.
    active: usize,
    buf: Vec<u8>,
    /// How far the files grow at a time ([`GROW_BYTES`]; less in tests).
    grow: u64,
    /// Why a write or sync failed, once one did: the log appends nothing
    /// more.
    failed: Option<String>,
}

/// One of the log's files.
struct LogFile {
    io: Box<dyn LogFileIo>,
    /// Where the next record goes.
    offset: u64,
    /// The file's length: zeros after the last record written.
    allocated: u64,
}

impl LogFile {
    /// Writes `record` at the file's offset, growing the file first if it
    /// is too short, syncs it and moves the offset past it.
    fn write_record(&mut self, record: &[u8], grow: u64) -> std::io::Result<()> {
        let end = self.offset + record.len() as u64;
        if end > self.allocated {
            let more = (end - self.allocated).next_multiple_of(grow);
            let zeros = vec![0; more as usize];
            self.io.write_all_at(&zeros, self.allocated)?;
            self.allocated += more;
        }
        self.io.write_all_at(record, self.offset)?;
        self.io.sync_data()?;
        self.offset = end;
        Ok(())
    }
}

/// The log's second file beside `path`.
fn second_file_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// What went wrong, without the error's own prefix.
fn reason(err: StoreError) -> String {
    match err {
        StoreError::Corrupt(reason) => reason,
        other => other.to_string(),
    }
}

fn io(err: std::io::Error) -> StoreError {
    StoreError::Engine(format!("commit log: {err}"))
}

impl FileLog {
    /// Opens (creating if needed) the log at `path` (and its second file
    /// beside it) and reads back every record after group `durable`, the
    /// last group the database holds. New records are written from the
    /// start of the first file, over what it held: the caller makes the
    /// replayed groups durable in the database before the first append.
    pub(crate) fn open(path: &Path, durable: u64) -> Result<(Self, Replay), StoreError> {
        let open = |path: &Path| {
            let file: Box<dyn LogFileIo> = Box::new(FsLogFile::open(path).map_err(io)?);
            Ok::<_, StoreError>((path.display().to_string(), file))
        };
        let first = open(path)?;
        let second = open(&second_file_of(path))?;
        Self::open_files([first, second], durable)
    }

    /// [`FileLog::open`] over two files given with their names (for errors),
    /// the first being `chathub.wal`.
    pub(crate) fn open_files(
        files: [(String, Box<dyn LogFileIo>); 2],
        durable: u64,
    ) -> Result<(Self, Replay), StoreError> {
        let [(first_name, mut first), (second_name, mut second)] = files;
        let first_bytes = first.read_all().map_err(io)?;
        let second_bytes = second.read_all().map_err(io)?;
        let named = |name: &str, bytes: &[u8], after: u64| {
            scan(bytes, after)
                .map_err(|err| StoreError::Corrupt(format!("{name}: {}", reason(err))))
        };
        // The run that continues the database first, whichever file holds
        // it; a damaged log fails both ways and says so.
        let in_order = |older: (&str, &[u8]), newer: (&str, &[u8])| {
            let mut groups = named(older.0, older.1, durable)?;
            let after = groups.last().map_or(durable, |(group, _)| *group);
            groups.extend(named(newer.0, newer.1, after)?);
            Ok::<_, StoreError>(groups)
        };
        let first_file = (first_name.as_str(), &first_bytes[..]);
        let second_file = (second_name.as_str(), &second_bytes[..]);
        let groups = match in_order(first_file, second_file) {
            Ok(groups) => groups,
            Err(err) => in_order(second_file, first_file).map_err(|other| {
                StoreError::Corrupt(format!(
                    "{}; read the other way round: {}",
                    reason(err),
                    reason(other)
                ))
            })?,
        };
        let log = Self {
            files: [
                LogFile {
                    io: first,
                    offset: 0,
                    allocated: first_bytes.len() as u64,
                },
                LogFile {
                    io: second,
                    offset: 0,
                    allocated: second_bytes.len() as u64,
                },
            ],
            active: 0,
            buf: Vec::new(),
            grow: GROW_BYTES,
            failed: None,
        };
        Ok((log, Replay { groups }))
    }

    /// The files grow `bytes` at a time from now on.
    #[cfg(test)]
    pub(crate) fn set_grow_step(&mut self, bytes: u64) {
        self.grow = bytes;
    }
}

impl CommitLog for FileLog {
    /// Writes group `group`'s ops and waits until they are on disk.
    ///
    /// An error that is [`StoreError::Corrupt`] wrote nothing (the group
    /// does not encode or is too large): the log goes on. Any other is a
    /// failed write or sync, which may have left part of the group or all
    /// of it on disk: that and every later append fail with an error (a
    /// [`StoreError::Stopped`] for the later ones) and write nothing.
    fn append(
        &mut self,
        group: u64,
        count: usize,
        ops: &mut dyn Iterator<Item = &Op>,
    ) -> Result<(), StoreError> {
        refuse_after(self.failed.as_deref())?;
        let buf = &mut self.buf;
        buf.clear();
        buf.resize(HEADER, 0);
        encode_group(buf, count, ops, MAX_PAYLOAD)?;
        let payload = buf.len() - HEADER;
        buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        buf[4..8].copy_from_slice(&(payload as u32).to_le_bytes());
        buf[12..20].copy_from_slice(&group.to_le_bytes());
        let crc = crc32fast::hash(&buf[12..]);
        buf[8..12].copy_from_slice(&crc.to_le_bytes());
        if let Err(err) = self.files[self.active].write_record(buf, self.grow) {
            self.failed = Some(format!("group {group}: {err}"));
            return Err(io(err));
        }
        if self.buf.capacity() > KEEP_BUFFER_BYTES {
            // One unusually large group does not pin its buffer.
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Bytes written to the active file since it was last started.
    fn len(&self) -> u64 {
        self.files[self.active].offset
    }

    /// The active file's groups are on their way into the durable
    /// database: the next records go to the other file, from its start.
    /// Only once every group in that file is durable in the database (its
    /// checkpoint finished).
    fn switch(&mut self) {
        self.active = 1 - self.active;
        self.files[self.active].offset = 0;
    }
}

/// The record at `at`, if one whole record with a good checksum starts
/// there: its group, its payload, and the offset after it.
fn record_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at + HEADER)?;
    let word = |range: std::ops::Range<usize>| {
        u32::from_le_bytes(header[range].try_into().expect("four bytes"))
    };
    if word(0..4) != MAGIC {
        return None;
    }
    let payload = word(4..8) as usize;
    if payload > MAX_PAYLOAD {
        return None;
    }
    let record = bytes.get(at + 12..at + HEADER + payload)?;
    if crc32fast::hash(record) != word(8..12) {
        return None;
    }
    let group = u64::from_le_bytes(record[0..8].try_into().expect("eight bytes"));
    Some((group, &record[8..], at + HEADER + payload))
}

/// The records after group `durable`, in order, up to the first that is
/// torn or not a record. A record that skips groups is an error, and so is
/// a record of a group not yet applied lying beyond the point where the
/// replay stopped: the log is damaged there, and acknowledged writes would
/// be lost.
fn scan(bytes: &[u8], durable: u64) -> Result<Vec<(u64, Vec<Op>)>, StoreError> {
    let mut groups = Vec::new();
    let mut expected = durable + 1;
    let mut at = 0;
    while let Some((group, payload, next)) = record_at(bytes, at) {
        at = next;
        if group <= durable {
            // Already in the database: a record from before a checkpoint.
            continue;
        }
        if group != expected {
            // Groups are written one after another and the database holds
            // everything before a restart: a later group here means earlier
            // ones were lost.
            return Err(StoreError::Corrupt(format!(
                "the commit log continues at group {group} but the database ends at group {}",
                expected - 1
            )));
        }
        groups.push((group, decode_group(group, payload)?));
        expected += 1;
    }
    // Past the last record written only older runs' records remain, all of
    // groups the database already holds.
    let magic = MAGIC.to_le_bytes();
    for start in at + 1..bytes.len().saturating_sub(HEADER) {
        if bytes[start..start + 4] == magic
            && let Some((group, _, _)) = record_at(bytes, start)
            && group >= expected
        {
            return Err(StoreError::Corrupt(format!(
                "the commit log is damaged at offset {at}: group {group} lies beyond it"
            )));
        }
    }
    Ok(groups)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::core::ChatEvent;

    /// A customer message as an op.
    pub(in crate::store) fn message(chat: u64, seq: u64) -> Op {
        Op::Event(ChatEvent::customer_message(
            chat,
            seq,
            format!("message {seq} 😀"),
        ))
    }

    fn seqs(groups: &[(u64, Vec<Op>)]) -> Vec<(u64, Vec<u64>)> {
        groups
            .iter()
            .map(|(group, ops)| {
                let seqs = ops
                    .iter()
                    .map(|op| match op {
                        Op::Event(event) => event.seq,
                        _ => 0,
                    })
                    .collect();
                (*group, seqs)
            })
            .collect()
    }

    #[test]
    fn records_after_the_durable_group_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chathub.wal");
        {
            let (mut log, replay) = FileLog::open(&path, 0).unwrap();
            assert!(replay.groups.is_empty());
            for group in 1..=3 {
                let ops = [message(1, group * 2), message(2, group * 2 + 1)];
                log.append(group, ops.len(), &mut ops.iter()).unwrap();
            }
        }
        let (_, replay) = FileLog::open(&path, 1).unwrap();
        assert_eq!(seqs(&replay.groups), [(2, vec![4, 5]), (3, vec![6, 7])]);
    }

    #[test]
    fn a_torn_tail_ends_the_replay_and_earlier_records_stand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chathub.wal");
        let end = {
            let (mut log, _) = FileLog::open(&path, 0).unwrap();
            log.append(1, 1, &mut [message(1, 1)].iter()).unwrap();
            log.append(2, 1, &mut [message(1, 2)].iter()).unwrap();
            log.len() as usize
        };
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > end, "the file grows ahead of the records");
        assert!(bytes[end..].iter().all(|&b| b == 0));
        // Cut the second record short.
        bytes.truncate(end - 3);
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = FileLog::open(&path, 0).unwrap();
        assert_eq!(seqs(&replay.groups), [(1, vec![1])]);

        // A flipped bit fails the checksum the same way.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = FileLog::open(&path, 0).unwrap();
        assert!(replay.groups.is_empty());
    }

    #[test]
    fn damage_before_records_not_yet_applied_is_an_error_not_a_silent_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chathub.wal");
        let second = {
            let (mut log, _) = FileLog::open(&path, 0).unwrap();
            log.append(1, 1, &mut [message(1, 1)].iter()).unwrap();
            let second = log.len() as usize;
            log.append(2, 1, &mut [message(1, 2)].iter()).unwrap();
            log.append(3, 1, &mut [message(1, 3)].iter()).unwrap();
            second
        };
        // A flipped bit in group 2, with group 3 whole behind it.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second + HEADER + 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = FileLog::open(&path, 0).err().unwrap();
        assert!(err.to_string().contains("damaged"), "{err}");
        // Once the database holds group 3, nothing is lost: it opens.
        let (_, replay) = FileLog::open(&path, 3).unwrap();
        assert!(replay.groups.is_empty());
    }

    #[test]
    fn the_two_files_come_back_in_group_order_without_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chathub.wal");
        {
            let (mut log, _) = FileLog::open(&path, 0).unwrap();
            // A long first run in the first file: groups 1..=5.
            for group in 1..=5 {
                let ops: Vec<_> = (0..4).map(|n| message(group, n)).collect();
                log.append(group, ops.len(), &mut ops.iter()).unwrap();
            }
            // Checkpoint asked for at 5: on in the second file...
            log.switch();
            log.append(6, 1, &mut [message(9, 60)].iter()).unwrap();
            log.append(7, 1, &mut [message(9, 70)].iter()).unwrap();
            // ...and at 7 (5 being durable by then) back to the first,
            // whose start a shorter run overwrites.
            log.switch();
            log.append(8, 1, &mut [message(9, 80)].iter()).unwrap();
            log.append(9, 1, &mut [message(9, 90)].iter()).unwrap();
        }
        let first = std::fs::read(&path).unwrap();
        assert_eq!(record_at(&first, 0).map(|(group, _, _)| group), Some(8));
        // The checkpoint at 7 had not finished: the second file's groups
        // come first, then the first file's, not its old records.
        let (_, replay) = FileLog::open(&path, 5).unwrap();
        let groups: Vec<u64> = replay.groups.iter().map(|(group, _)| *group).collect();
        assert_eq!(groups, [6, 7, 8, 9]);
        // It had: only the first file's new run.
        let (_, replay) = FileLog::open(&path, 7).unwrap();
        assert_eq!(seqs(&replay.groups), [(8, vec![80]), (9, vec![90])]);
        // Everything durable: nothing to replay, although both files still
        // hold records.
        let (_, replay) = FileLog::open(&path, 9).unwrap();
        assert!(replay.groups.is_empty());
        // Groups missing between the database and the log are an error,
        // not something to skip over.
        let err = FileLog::open(&path, 3).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }
}
