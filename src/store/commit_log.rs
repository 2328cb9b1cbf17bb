//! What makes a group durable: the [`CommitLog`] the writer's log thread
//! appends each group commit to, and the one encoding of a group's ops that
//! every log stores.
//!
//! Two logs implement it. [`FileLog`](crate::store::log::FileLog) is the
//! single hub's own: two local files, each record synced before the group
//! is acknowledged. [`JetStreamLog`](crate::store::jetstream::JetStreamLog)
//! appends to a NATS JetStream stream, each record fenced by the stream's
//! last sequence so that a hub which lost its partition can never
//! acknowledge again. Either way a group is acknowledged exactly where
//! its append completes, and the database is a view the log can rebuild:
//! after a restart the groups beyond the database's last sync come back
//! from the log ([`Replay`]).

use bincode::config::standard;

use crate::store::{Op, StoreError};

/// The largest encoded group any log takes; anything bigger is refused
/// before it is written.
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

/// Where the log thread makes groups durable.
///
/// Errors of [`append`](CommitLog::append): [`StoreError::Corrupt`] wrote
/// nothing (the group does not encode or is too large) and the log goes
/// on; any other means the append may or may not have become durable, so
/// that append and every later one fail and the writer stops (the hub
/// restarts and replays, or, in a cluster, gives its partition up).
pub(crate) trait CommitLog: Send {
    /// Makes group `group` (`count` ops) durable; returns once it is.
    fn append(
        &mut self,
        group: u64,
        count: usize,
        ops: &mut dyn Iterator<Item = &Op>,
    ) -> Result<(), StoreError>;

    /// Bytes appended since the last [`switch`](CommitLog::switch): once
    /// over `[store] checkpoint_bytes`, the writer makes the database
    /// durable and switches.
    fn len(&self) -> u64;

    /// The groups appended so far are on their way into the durable
    /// database (a checkpoint): the log may reuse their space once that
    /// checkpoint finished, which the writer waits for before the next
    /// switch.
    fn switch(&mut self);
}

/// What opening a log found: the groups after the database's own, in
/// order.
pub(crate) struct Replay {
    /// `(group, ops)` for each record to apply again.
    pub groups: Vec<(u64, Vec<Op>)>,
}

/// Refuses an append once one failed (`failed` says why): what the failed
/// one left behind cannot be known, so nothing may follow it.
pub(crate) fn refuse_after(failed: Option<&str>) -> Result<(), StoreError> {
    match failed {
        Some(failed) => Err(StoreError::Stopped(format!(
            "the commit log appends nothing after a failed append: {failed}"
        ))),
        None => Ok(()),
    }
}

/// Appends the encoding of a group of `count` ops to `buf`: the same bytes
/// as a `Vec<Op>` (the length, then each op). Refuses, as
/// [`StoreError::Corrupt`], an op the database could not hold (its apply
/// would fail after it was acknowledged) and a group over `max` bytes.
pub(crate) fn encode_group(
    buf: &mut Vec<u8>,
    count: usize,
    ops: &mut dyn Iterator<Item = &Op>,
    max: usize,
) -> Result<(), StoreError> {
    let start = buf.len();
    let encode_err = |err: bincode::error::EncodeError| StoreError::Corrupt(err.to_string());
    bincode::encode_into_std_write(count as u64, buf, standard()).map_err(encode_err)?;
    for op in ops {
        let before = buf.len();
        bincode::encode_into_std_write(op, buf, standard()).map_err(encode_err)?;
        if buf.len() - before > crate::store::tables::MAX_VALUE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "an op of {} bytes is over the store's limit",
                buf.len() - before
            )));
        }
    }
    let payload = buf.len() - start;
    if payload > max {
        return Err(StoreError::Corrupt(format!(
            "a group of {payload} bytes is over the log's limit"
        )));
    }
    Ok(())
}

/// The ops of group `group` from their encoding.
pub(crate) fn decode_group(group: u64, payload: &[u8]) -> Result<Vec<Op>, StoreError> {
    let (ops, _): (Vec<Op>, _) =
        bincode::decode_from_slice(payload, standard().with_limit::<MAX_PAYLOAD>())
            .map_err(|err| StoreError::Corrupt(format!("commit log group {group}: {err}")))?;
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::log::tests::message;

    #[test]
    fn a_group_decodes_to_the_ops_it_was_encoded_from() {
        let ops = [message(7, 1), message(7, 2), message(9, 1)];
        let mut buf = vec![0xAA];
        encode_group(&mut buf, ops.len(), &mut ops.iter(), MAX_PAYLOAD).unwrap();
        assert_eq!(buf[0], 0xAA, "what the buffer held stays in front");
        let back = decode_group(3, &buf[1..]).unwrap();
        assert_eq!(format!("{back:?}"), format!("{ops:?}"));
    }

    #[test]
    fn a_group_over_the_limit_is_refused_before_anything_is_kept() {
        let ops = [message(7, 1), message(7, 2)];
        let mut buf = Vec::new();
        let err = encode_group(&mut buf, ops.len(), &mut ops.iter(), 8).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn a_damaged_group_is_an_error_naming_it() {
        let err = decode_group(12, &[0xFF, 0xFF, 0xFF]).unwrap_err();
        assert!(err.to_string().contains("group 12"), "{err}");
    }
}
