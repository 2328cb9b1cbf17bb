//! The agent's view of each channel's incoming list, kept current from the
//! queue updates the hub pushes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::{ChannelId, QueueChange, QueueRow, QueueUpdate};

/// A channel's unanswered chats as the client last heard of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncomingList {
    /// The badge / "in queue" count.
    pub waiting: u32,
    /// The rows, oldest first.
    pub rows: Vec<QueueRow>,
    version: u64,
}

/// Every channel's [`IncomingList`].
#[derive(Debug, Default)]
pub(crate) struct IncomingBoard {
    lists: Mutex<HashMap<ChannelId, IncomingList>>,
}

impl IncomingBoard {
    /// Applies an update; a delta older than the snapshot is ignored.
    pub(super) fn apply(&self, update: &QueueUpdate) {
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &update.change {
            QueueChange::Snapshot(rows) => {
                lists.insert(
                    update.channel.clone(),
                    IncomingList {
                        waiting: update.waiting,
                        rows: rows.clone(),
                        version: update.version,
                    },
                );
            }
            change => {
                let Some(list) = lists.get_mut(&update.channel) else {
                    return;
                };
                if update.version <= list.version {
                    return;
                }
                list.version = update.version;
                list.waiting = update.waiting;
                match change {
                    QueueChange::Added(row) => list.rows.push(row.clone()),
                    QueueChange::Removed(chat) => list.rows.retain(|row| row.chat != *chat),
                    QueueChange::Changed(changed) => {
                        if let Some(row) = list.rows.iter_mut().find(|row| row.chat == changed.chat)
                        {
                            *row = changed.clone();
                        }
                    }
                    QueueChange::Snapshot(_) => unreachable!("handled above"),
                }
            }
        }
    }

    pub(super) fn get(&self, channel: &ChannelId) -> Option<IncomingList> {
        let lists = self
            .lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lists.get(channel).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ChatId, Customer, Timestamp};

    fn row(chat: u64) -> QueueRow {
        QueueRow {
            chat: ChatId(chat),
            channel: ChannelId::new("support"),
            customer: Customer::default(),
            first_message: "hi".into(),
            since: Timestamp(chat),
            verified: None,
            priority: None,
        }
    }

    fn update(version: u64, waiting: u32, change: QueueChange) -> QueueUpdate {
        QueueUpdate {
            channel: ChannelId::new("support"),
            version,
            waiting,
            change,
        }
    }

    #[test]
    fn deltas_apply_after_the_snapshot_and_stale_ones_are_ignored() {
        let board = IncomingBoard::default();
        let support = ChannelId::new("support");
        // A delta before any snapshot is already part of the snapshot.
        board.apply(&update(1, 1, QueueChange::Added(row(1))));
        assert_eq!(board.get(&support), None);
        board.apply(&update(2, 2, QueueChange::Snapshot(vec![row(1), row(2)])));
        board.apply(&update(2, 3, QueueChange::Added(row(2))));
        board.apply(&update(3, 3, QueueChange::Added(row(3))));
        board.apply(&update(4, 2, QueueChange::Removed(ChatId(1))));
        let list = board.get(&support).unwrap();
        assert_eq!(list.waiting, 2);
        let chats: Vec<u64> = list.rows.iter().map(|row| row.chat.0).collect();
        assert_eq!(chats, [2, 3]);
    }
}
