//! The commit log on a NATS JetStream stream: what a hub in a cluster
//! makes its groups durable in, so that another hub can carry on from them
//! when it dies.
//!
//! One stream per log (`[cluster]` gives each partition its own), file
//! storage, replicated as configured, on servers run with
//! `sync_interval: always` (JetStream otherwise acknowledges before the
//! data is on disk). A group is one message, or several parts when its
//! encoding (see [`encode_group`]) is over what the server takes in one
//! message; each carries its group number and part in headers. It is
//! acknowledged once the server has acknowledged every part, exactly as
//! the file log acknowledges once its record is synced.
//!
//! **Fencing.** Every message is published with the stream's expected
//! last sequence (`Nats-Expected-Last-Sequence`): the sequence of the
//! message this log itself appended last. Opening the log first appends a
//! takeover record fenced on the stream's last sequence as it was found,
//! and only then reads the stream back. So once a new owner has opened the
//! log, every append of the one before fails on the fence (a
//! [`StoreError::Fenced`]): a deposed hub can never acknowledge again, and
//! the new one has read every group that was ever acknowledged.
//!
//! **Replay.** The stream is read from its start up to the takeover
//! record. Parts are put back together; a group whose parts stop short
//! (its writer died between parts) was never acknowledged and is left
//! out, and its number is taken by the next whole group. Groups the
//! database already holds are skipped; one missing in the middle is an
//! error, as in the file log.
//!
//! The store runs on threads of its own, so the log waits for the server
//! with [`Handle::block_on`] on the runtime that drives the NATS client.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::store::commit_log::{
    CommitLog, MAX_PAYLOAD, Replay, decode_group, encode_group, refuse_after,
};
use crate::store::{Op, StoreError};

/// The header naming a part's group.
const GROUP: &str = "Chathub-Group";
/// The header giving a part's place in its group, as `index/count`.
const PART: &str = "Chathub-Part";
/// The header of a takeover record: the new owner's lease epoch.
const TAKEOVER: &str = "Chathub-Takeover";
/// The header naming the hub that wrote a takeover record.
const NODE: &str = "Chathub-Node";

/// Room left in each message for its headers.
const HEADER_ROOM: usize = 1024;

/// How long a publish or a read waits for the server.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where a hub's commit log lives on JetStream, and who opens it.
#[derive(Clone, Debug)]
pub struct JetStreamTarget {
    /// The runtime driving `client`; the store's threads wait on it.
    pub runtime: Handle,
    /// A connected client.
    pub client: async_nats::Client,
    /// The stream (created if missing).
    pub stream: String,
    /// Its one subject.
    pub subject: String,
    /// Replicas for a stream this log creates (1, 3 or 5).
    pub replicas: usize,
    /// The hub opening the log (written into its takeover record).
    pub node: String,
    /// The epoch of the lease under which it opens (likewise).
    pub epoch: u64,
}

/// The commit log on a JetStream stream.
pub(crate) struct JetStreamLog {
    runtime: Handle,
    jetstream: jetstream::Context,
    subject: String,
    /// The stream sequence of the last message this log appended: the
    /// fence of the next.
    last: u64,
    /// The most payload bytes in one message.
    chunk: usize,
    buf: Vec<u8>,
    /// Payload bytes appended since the last switch.
    since_switch: u64,
    /// Why an append failed, once one did: the log appends nothing more.
    failed: Option<String>,
}

/// One message of the stream, as replay sees it.
#[derive(Debug, PartialEq)]
enum Record<'a> {
    /// A hub took the log over.
    Takeover,
    /// Part `index` of `count` of group `group`.
    Part {
        group: u64,
        index: u32,
        count: u32,
        payload: &'a [u8],
    },
}

fn engine(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("commit log stream: {what}: {err}"))
}

impl JetStreamLog {
    /// Opens the log at `target`, creating its stream if need be: fences
    /// out whoever appended before (a takeover record), then reads back
    /// every group after `durable`, the last group the database holds.
    /// Returns the log, the groups to apply, and the last group number in
    /// the stream (which the writer carries on from).
    pub(crate) fn open(
        target: &JetStreamTarget,
        durable: u64,
    ) -> Result<(Self, Replay, u64), StoreError> {
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(TIMEOUT)
            .build(target.client.clone());
        let chunk = target
            .client
            .server_info()
            .max_payload
            .saturating_sub(HEADER_ROOM)
            .max(HEADER_ROOM);
        let (last, replayed, last_group) = target.runtime.block_on(async {
            let mut stream = jetstream
                .get_or_create_stream(stream::Config {
                    name: target.stream.clone(),
                    subjects: vec![target.subject.clone()],
                    storage: stream::StorageType::File,
                    num_replicas: target.replicas,
                    // Every record stays until the log is trimmed on
                    // purpose: nothing acknowledged ages out.
                    retention: stream::RetentionPolicy::Limits,
                    deny_delete: true,
                    ..Default::default()
                })
                .await
                .map_err(|err| engine("cannot open the stream", err))?;
            let state = stream
                .info()
                .await
                .map_err(|err| engine("cannot read the stream's state", err))?
                .state
                .clone();
            let mut headers = HeaderMap::new();
            headers.insert(TAKEOVER, target.epoch.to_string().as_str());
            headers.insert(NODE, target.node.as_str());
            let takeover = publish(
                &jetstream,
                &target.subject,
                headers,
                Bytes::new(),
                state.last_sequence,
            )
            .await?
            .await
            .map_err(publish_error)?
            .sequence;
            let mut reassembly = Reassembly::new(durable);
            if state.messages > 0 {
                let consumer = stream
                    .create_consumer(jetstream::consumer::pull::OrderedConfig {
                        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: state.first_sequence,
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(|err| engine("cannot read the stream", err))?;
                let mut messages = consumer
                    .messages()
                    .await
                    .map_err(|err| engine("cannot read the stream", err))?;
                loop {
                    let message = tokio::time::timeout(TIMEOUT, messages.next())
                        .await
                        .map_err(|_| engine("cannot read the stream", "timed out"))?
                        .ok_or_else(|| engine("cannot read the stream", "it ended early"))?
                        .map_err(|err| engine("cannot read the stream", err))?;
                    let seq = message
                        .info()
                        .map_err(|err| engine("cannot read the stream", err))?
                        .stream_sequence;
                    if seq >= takeover {
                        break;
                    }
                    reassembly.push(record(message.headers.as_ref(), &message.payload)?)?;
                }
            }
            let (replayed, last_group) = reassembly.finish()?;
            Ok::<_, StoreError>((takeover, replayed, last_group))
        })?;
        let log = Self {
            runtime: target.runtime.clone(),
            jetstream,
            subject: target.subject.clone(),
            last,
            chunk,
            buf: Vec::new(),
            since_switch: 0,
            failed: None,
        };
        Ok((log, replayed, last_group))
    }
}

/// Sends one message fenced on `expected`, the stream's last sequence;
/// the future it returns resolves to the server's acknowledgement.
async fn publish(
    jetstream: &jetstream::Context,
    subject: &str,
    headers: HeaderMap,
    payload: Bytes,
    expected: u64,
) -> Result<jetstream::context::PublishAckFuture, StoreError> {
    let message = jetstream::message::PublishMessage::build()
        .headers(headers)
        .payload(payload)
        .expected_last_sequence(expected);
    jetstream
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(publish_error)
}

fn publish_error(err: jetstream::context::PublishError) -> StoreError {
    match err.kind() {
        PublishErrorKind::WrongLastSequence => StoreError::Fenced(err.to_string()),
        _ => engine("append failed", err),
    }
}

/// What a stream message is, from its headers.
fn record<'a>(headers: Option<&HeaderMap>, payload: &'a [u8]) -> Result<Record<'a>, StoreError> {
    let header = |name: &str| {
        headers
            .and_then(|headers| headers.get(name))
            .map(|v| v.as_str())
    };
    if header(TAKEOVER).is_some() {
        return Ok(Record::Takeover);
    }
    let bad = |why: &str| StoreError::Corrupt(format!("commit log stream: {why}"));
    let group = header(GROUP)
        .ok_or_else(|| bad("a message is neither a part nor a takeover"))?
        .parse::<u64>()
        .map_err(|_| bad("a part's group is not a number"))?;
    let (index, count) = header(PART)
        .and_then(|part| part.split_once('/'))
        .and_then(|(index, count)| Some((index.parse::<u32>().ok()?, count.parse::<u32>().ok()?)))
        .filter(|(index, count)| index < count)
        .ok_or_else(|| bad("a part's place is not index/count"))?;
    Ok(Record::Part {
        group,
        index,
        count,
        payload,
    })
}

/// Puts a stream's records back together into whole groups, one record at
/// a time, in stream order: only the groups after `durable` are kept.
struct Reassembly {
    durable: u64,
    groups: Vec<(u64, Vec<Op>)>,
    /// The last whole group's number.
    last_group: u64,
    /// The group being put together: its number, the parts so far, its
    /// count and bytes (none kept for a group the database holds).
    pending: Option<(u64, u32, u32, Vec<u8>)>,
}

impl Reassembly {
    fn new(durable: u64) -> Self {
        Self {
            durable,
            groups: Vec::new(),
            last_group: 0,
            pending: None,
        }
    }

    fn push(&mut self, record: Record<'_>) -> Result<(), StoreError> {
        let Record::Part {
            group,
            index,
            count,
            payload,
        } = record
        else {
            // Whoever wrote a group cut short is gone.
            self.pending = None;
            return Ok(());
        };
        let keep = group > self.durable;
        let next = match self.pending.take() {
            Some((at, got, of, mut bytes)) if at == group && got == index && of == count => {
                if keep {
                    bytes.extend_from_slice(payload);
                }
                (group, got + 1, count, bytes)
            }
            // A group starts; anything unfinished before it was cut short.
            _ if index == 0 => (
                group,
                1,
                count,
                if keep { payload.to_vec() } else { Vec::new() },
            ),
            // A part out of place: its group cannot be whole.
            _ => return Ok(()),
        };
        if next.1 < next.2 {
            self.pending = Some(next);
            return Ok(());
        }
        let (group, _, _, bytes) = next;
        if group != self.last_group + 1 && self.last_group != 0 {
            return Err(StoreError::Corrupt(format!(
                "the commit log stream continues at group {group} after group {}",
                self.last_group
            )));
        }
        self.last_group = group;
        if keep {
            self.groups.push((group, decode_group(group, &bytes)?));
        }
        Ok(())
    }

    /// The whole groups after the database's, and the last whole group's
    /// number.
    fn finish(self) -> Result<(Replay, u64), StoreError> {
        let Self {
            durable,
            groups,
            last_group,
            ..
        } = self;
        if last_group < durable {
            return Err(StoreError::Corrupt(format!(
                "the database holds group {durable} but the commit log stream ends at group {last_group}"
            )));
        }
        if let Some((first, _)) = groups.first()
            && *first != durable + 1
        {
            return Err(StoreError::Corrupt(format!(
                "the commit log stream starts at group {first} but the database ends at group {durable}"
            )));
        }
        Ok((Replay { groups }, last_group))
    }
}

impl CommitLog for JetStreamLog {
    fn append(
        &mut self,
        group: u64,
        count: usize,
        ops: &mut dyn Iterator<Item = &Op>,
    ) -> Result<(), StoreError> {
        refuse_after(self.failed.as_deref())?;
        self.buf.clear();
        encode_group(&mut self.buf, count, ops, MAX_PAYLOAD)?;
        let parts = self.buf.len().div_ceil(self.chunk).max(1);
        let result = self.runtime.block_on(async {
            let mut acks = Vec::with_capacity(parts);
            for (index, part) in self.buf.chunks(self.chunk).enumerate() {
                // Parts follow one another in the stream, or the fence
                // stops the rest.
                let expected = self.last + index as u64;
                let mut headers = HeaderMap::new();
                headers.insert(GROUP, group.to_string().as_str());
                headers.insert(PART, format!("{index}/{parts}").as_str());
                let payload = Bytes::copy_from_slice(part);
                acks.push(
                    publish(&self.jetstream, &self.subject, headers, payload, expected).await?,
                );
            }
            let mut last = self.last;
            for ack in acks {
                last = ack.await.map_err(publish_error)?.sequence;
            }
            Ok::<_, StoreError>(last)
        });
        match result {
            Ok(last) => {
                self.last = last;
                self.since_switch += self.buf.len() as u64;
                if self.buf.capacity() > 4 << 20 {
                    self.buf = Vec::new();
                }
                Ok(())
            }
            Err(err) => {
                self.failed = Some(format!("group {group}: {err}"));
                Err(err)
            }
        }
    }

    fn len(&self) -> u64 {
        self.since_switch
    }

    /// The stream keeps every record: it is what another hub rebuilds the
    /// partition from, so a checkpoint of this hub's database frees
    /// nothing in it. The count restarts, so the database is still
    /// checkpointed every so many bytes (which bounds what a restart of
    /// this hub applies again).
    fn switch(&mut self) {
        self.since_switch = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::log::tests::message;

    fn encoded(ops: &[Op]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_group(&mut buf, ops.len(), &mut ops.iter(), MAX_PAYLOAD).unwrap();
        buf
    }

    fn part(group: u64, index: u32, count: u32, payload: &[u8]) -> Record<'_> {
        Record::Part {
            group,
            index,
            count,
            payload,
        }
    }

    fn replay(records: Vec<Record<'_>>, durable: u64) -> Result<(Replay, u64), StoreError> {
        let mut reassembly = Reassembly::new(durable);
        for record in records {
            reassembly.push(record)?;
        }
        reassembly.finish()
    }

    fn chats(groups: &[(u64, Vec<Op>)]) -> Vec<(u64, String)> {
        groups
            .iter()
            .map(|(group, ops)| (*group, format!("{ops:?}")))
            .collect()
    }

    #[test]
    fn parts_are_put_back_together_and_groups_come_back_in_order() {
        let one = encoded(&[message(1, 1)]);
        let two = encoded(&[message(1, 2), message(2, 1)]);
        let (a, b) = two.split_at(3);
        let records = vec![
            Record::Takeover,
            part(1, 0, 1, &one),
            part(2, 0, 2, a),
            part(2, 1, 2, b),
        ];
        let (Replay { groups }, last) = replay(records, 0).unwrap();
        assert_eq!(last, 2);
        assert_eq!(
            chats(&groups),
            vec![
                (1, format!("{:?}", vec![message(1, 1)])),
                (2, format!("{:?}", vec![message(1, 2), message(2, 1)])),
            ]
        );
    }

    #[test]
    fn a_group_cut_short_by_a_takeover_is_left_out_and_its_number_taken_again() {
        let whole = encoded(&[message(1, 1)]);
        let cut = encoded(&[message(1, 2), message(1, 3)]);
        let again = encoded(&[message(1, 4)]);
        let records = vec![
            part(1, 0, 1, &whole),
            part(2, 0, 2, &cut[..2]),
            Record::Takeover,
            part(2, 0, 1, &again),
        ];
        let (Replay { groups }, last) = replay(records, 0).unwrap();
        assert_eq!(last, 2);
        assert_eq!(groups.len(), 2);
        assert_eq!(
            format!("{:?}", groups[1].1),
            format!("{:?}", vec![message(1, 4)]),
            "the group after the takeover, not the one cut short"
        );
    }

    #[test]
    fn groups_the_database_holds_are_skipped() {
        let records = [1, 2, 3].map(|seq| encoded(&[message(1, seq)]));
        let parsed = records
            .iter()
            .enumerate()
            .map(|(at, bytes)| part(at as u64 + 1, 0, 1, bytes))
            .collect();
        let (Replay { groups }, last) = replay(parsed, 2).unwrap();
        assert_eq!(last, 3);
        assert_eq!(groups.iter().map(|(g, _)| *g).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_missing_group_or_a_database_ahead_of_the_stream_is_an_error() {
        let one = encoded(&[message(1, 1)]);
        let three = encoded(&[message(1, 3)]);
        let gap = vec![part(1, 0, 1, &one[..]), part(3, 0, 1, &three[..])];
        assert!(matches!(replay(gap, 0), Err(StoreError::Corrupt(_))));
        let short = vec![part(1, 0, 1, &one[..])];
        let err = replay(short, 5).err().expect("refused");
        assert!(err.to_string().contains("ends at group 1"), "{err}");
    }

    #[test]
    fn headers_name_parts_and_takeovers_and_anything_else_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(GROUP, "7");
        headers.insert(PART, "1/3");
        assert_eq!(record(Some(&headers), b"xy").unwrap(), part(7, 1, 3, b"xy"));
        let mut takeover = HeaderMap::new();
        takeover.insert(TAKEOVER, "4");
        assert_eq!(record(Some(&takeover), b"").unwrap(), Record::Takeover);
        let mut beyond = HeaderMap::new();
        beyond.insert(GROUP, "7");
        beyond.insert(PART, "3/3");
        assert!(record(Some(&beyond), b"").is_err());
        assert!(record(None, b"stray").is_err());
    }
}
