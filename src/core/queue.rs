//! A channel's queue of waiting chats.
//!
//! First in, first out by enqueue order, with O(1) `pop_front` (get next) and
//! O(1) `remove` by chat id (pick, or a customer leaving). Entries live in a
//! slab and are chained into a doubly linked list by slot index; a hash map
//! finds a chat's slot. No operation walks the queue except iteration.

use std::collections::HashMap;

use crate::core::ids::ChatId;
use crate::core::time::Timestamp;

/// Why a chat could not be enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue already holds its limit of waiting chats.
    #[error("the queue is full ({limit} chats wait)")]
    Full {
        /// The channel's queue limit.
        limit: usize,
    },
    /// The chat is already in this queue.
    #[error("{0} is already queued")]
    AlreadyQueued(ChatId),
}

const NIL: usize = usize::MAX;

#[derive(Debug)]
struct Node<T> {
    chat: ChatId,
    since: Timestamp,
    value: T,
    prev: usize,
    next: usize,
}

#[derive(Debug)]
enum Slot<T> {
    Used(Node<T>),
    Free { next_free: usize },
}

/// A FIFO queue of chats with O(1) removal by id. `T` is what the owner keeps
/// per waiting chat (the incoming-list row, the claim cell, ...).
#[derive(Debug)]
pub struct Queue<T> {
    slots: Vec<Slot<T>>,
    index: HashMap<ChatId, usize>,
    head: usize,
    tail: usize,
    free: usize,
    limit: usize,
}

impl<T> Queue<T> {
    /// An empty queue that holds at most `limit` chats.
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            index: HashMap::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            limit,
        }
    }

    /// Sets the most chats that may wait: chats already waiting beyond a
    /// lowered limit stay; new ones wait once the queue is below it.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// How many chats wait.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no chat waits.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether `chat` waits in this queue.
    pub fn contains(&self, chat: ChatId) -> bool {
        self.index.contains_key(&chat)
    }

    /// Adds `chat` at the back.
    pub fn push_back(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        value: T,
    ) -> Result<(), QueueError> {
        if self.index.len() >= self.limit && !self.index.contains_key(&chat) {
            return Err(QueueError::Full { limit: self.limit });
        }
        self.push_back_beyond_limit(chat, since, value)
    }

    /// Adds `chat` at the back even if the queue is at its limit: for chats
    /// accepted before a restart, which must not be lost to a lower limit.
    pub fn push_back_beyond_limit(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        value: T,
    ) -> Result<(), QueueError> {
        if self.index.contains_key(&chat) {
            return Err(QueueError::AlreadyQueued(chat));
        }
        let node = Node {
            chat,
            since,
            value,
            prev: self.tail,
            next: NIL,
        };
        let slot = if self.free == NIL {
            self.slots.push(Slot::Used(node));
            self.slots.len() - 1
        } else {
            let slot = self.free;
            self.free = match self.slots[slot] {
                Slot::Free { next_free } => next_free,
                Slot::Used(_) => unreachable!("free list points at a used slot"),
            };
            self.slots[slot] = Slot::Used(node);
            slot
        };
        if self.tail == NIL {
            self.head = slot;
        } else {
            self.node_mut(self.tail).next = slot;
        }
        self.tail = slot;
        self.index.insert(chat, slot);
        Ok(())
    }

    /// Takes the chat that has waited longest.
    pub fn pop_front(&mut self) -> Option<(ChatId, Timestamp, T)> {
        if self.head == NIL {
            return None;
        }
        let chat = self.node(self.head).chat;
        self.remove(chat)
    }

    /// Takes `chat` out of the queue wherever it stands.
    pub fn remove(&mut self, chat: ChatId) -> Option<(ChatId, Timestamp, T)> {
        let slot = self.index.remove(&chat)?;
        let taken = std::mem::replace(
            &mut self.slots[slot],
            Slot::Free {
                next_free: self.free,
            },
        );
        self.free = slot;
        let Slot::Used(node) = taken else {
            unreachable!("index points at a free slot")
        };
        if node.prev == NIL {
            self.head = node.next;
        } else {
            self.node_mut(node.prev).next = node.next;
        }
        if node.next == NIL {
            self.tail = node.prev;
        } else {
            self.node_mut(node.next).prev = node.prev;
        }
        if self.index.is_empty() {
            // Nothing waits: drop the slab so a burst does not pin memory.
            self.slots.clear();
            self.free = NIL;
        }
        Some((node.chat, node.since, node.value))
    }

    /// The value kept for `chat`, if it waits here.
    pub fn get(&self, chat: ChatId) -> Option<&T> {
        self.index.get(&chat).map(|&slot| &self.node(slot).value)
    }

    /// Waiting chats, oldest first.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            queue: self,
            at: self.head,
        }
    }

    fn node(&self, slot: usize) -> &Node<T> {
        match &self.slots[slot] {
            Slot::Used(node) => node,
            Slot::Free { .. } => unreachable!("linked list points at a free slot"),
        }
    }

    fn node_mut(&mut self, slot: usize) -> &mut Node<T> {
        match &mut self.slots[slot] {
            Slot::Used(node) => node,
            Slot::Free { .. } => unreachable!("linked list points at a free slot"),
        }
    }
}

/// Iterator over a [`Queue`], oldest first: `(chat, since, value)`.
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    at: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (ChatId, Timestamp, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let node = self.queue.node(self.at);
        self.at = node.next;
        Some((node.chat, node.since, &node.value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    fn ids(queue: &Queue<()>) -> Vec<u64> {
        queue.iter().map(|(chat, _, _)| chat.0).collect()
    }

    #[test]
    fn takes_in_enqueue_order_and_removes_from_the_middle() {
        let mut queue = Queue::new(10);
        for n in 1..=4 {
            queue.push_back(ChatId(n), Timestamp(n * 10), ()).unwrap();
        }
        assert_eq!(
            queue.remove(ChatId(2)).map(|(c, t, _)| (c, t)),
            Some((ChatId(2), Timestamp(20)))
        );
        assert_eq!(ids(&queue), [1, 3, 4]);
        assert_eq!(queue.pop_front().map(|(c, _, _)| c), Some(ChatId(1)));
        queue.push_back(ChatId(5), Timestamp(50), ()).unwrap();
        assert_eq!(ids(&queue), [3, 4, 5]);
        assert_eq!(queue.remove(ChatId(5)).map(|(c, _, _)| c), Some(ChatId(5)));
        assert_eq!(queue.remove(ChatId(5)), None);
        assert_eq!(ids(&queue), [3, 4]);
    }

    #[test]
    fn refuses_duplicates_and_beyond_the_limit() {
        let mut queue = Queue::new(2);
        queue.push_back(ChatId(1), Timestamp(0), ()).unwrap();
        assert_eq!(
            queue.push_back(ChatId(1), Timestamp(0), ()),
            Err(QueueError::AlreadyQueued(ChatId(1)))
        );
        queue.push_back(ChatId(2), Timestamp(0), ()).unwrap();
        assert_eq!(
            queue.push_back(ChatId(3), Timestamp(0), ()),
            Err(QueueError::Full { limit: 2 })
        );
        assert_eq!(queue.len(), 2);
        queue
            .push_back_beyond_limit(ChatId(3), Timestamp(0), ())
            .unwrap();
        assert_eq!(queue.len(), 3);
        assert_eq!(
            queue.push_back_beyond_limit(ChatId(3), Timestamp(0), ()),
            Err(QueueError::AlreadyQueued(ChatId(3)))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Pop,
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Push),
            2 => Just(Op::Pop),
            2 => any::<u8>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a plain `VecDeque` model: the queue never loses, duplicates
        /// or reorders a chat, whatever mix of operations runs.
        #[test]
        fn behaves_like_a_fifo_with_removal(ops in proptest::collection::vec(op(), 0..400)) {
            let mut queue = Queue::new(64);
            let mut model: VecDeque<u64> = VecDeque::new();
            let mut taken = Vec::new();
            let mut model_taken = Vec::new();
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let chat = ChatId(u64::from(n));
                        let expected = if model.contains(&chat.0) {
                            Err(QueueError::AlreadyQueued(chat))
                        } else if model.len() >= 64 {
                            Err(QueueError::Full { limit: 64 })
                        } else {
                            model.push_back(chat.0);
                            Ok(())
                        };
                        prop_assert_eq!(queue.push_back(chat, Timestamp(u64::from(n)), ()), expected);
                    }
                    Op::Pop => {
                        taken.extend(queue.pop_front().map(|(c, _, _)| c.0));
                        model_taken.extend(model.pop_front());
                    }
                    Op::Remove(n) => {
                        let got = queue.remove(ChatId(u64::from(n))).map(|(c, _, _)| c.0);
                        let pos = model.iter().position(|&c| c == u64::from(n));
                        let want = pos.and_then(|p| model.remove(p));
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(ids(&queue), Vec::from(model.clone()));
            }
            prop_assert_eq!(taken, model_taken);
        }
    }
}
