//! A channel's queue of waiting chats.
//!
//! A chat waits at a [`Priority`]; higher priorities are served first,
//! first in first out within a priority. Waiting ages a chat: with an
//! aging step `a`, a chat of priority `p` that started waiting at `t` is
//! served as if it had started waiting at `t - p * a` at the lowest
//! priority, so a low-priority chat that has waited `a` longer than a
//! chat one level above goes first, and nothing waits for ever behind a
//! stream of higher-priority chats. That order does not depend on the
//! time it is asked at, so it is kept without a clock.
//!
//! Chats are grouped by the skills they need ([`SkillSet`]), and each
//! group has one doubly linked list per priority (entries in one slab,
//! chained by slot index); a hash map finds a chat's slot. `pop_next`
//! compares the heads of every group's [`Priority::LEVELS`] lists,
//! `remove` by chat id (pick, or a customer leaving) is O(1), and only
//! iteration and [`Queue::set_priority`] walk a list.
//!
//! [`Queue::pop_next_for`] serves an agent with skills: the best chat whose
//! group the agent's skills cover, or whose wait passed the skill fallback.
//! A list is in order of waiting, so its head is the one to look at in
//! either case: the cost is the number of groups with chats waiting (the
//! distinct skill sets, bounded by the channel's configuration and what
//! customers chose from it), never the number of chats.

use std::collections::HashMap;
use std::time::Duration;

use bincode::{Decode, Encode};
use serde::Deserialize;

use crate::core::ids::ChatId;
use crate::core::skills::SkillSet;
use crate::core::time::Timestamp;

/// How urgent a waiting chat is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served after everything else of its age.
    Low,
    /// The usual.
    #[default]
    Normal,
    /// Served before normal chats.
    High,
    /// Served first.
    Urgent,
}

impl Priority {
    /// How many priorities there are.
    pub const LEVELS: usize = 4;

    /// Its rank, from 0 (low) up.
    pub fn level(self) -> usize {
        self as usize
    }

    /// Its name as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }
}

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
    priority: Priority,
    /// The index of its skill group.
    group: usize,
    value: T,
    prev: usize,
    next: usize,
}

#[derive(Debug)]
enum Slot<T> {
    Used(Node<T>),
    Free { next_free: usize },
}

/// One priority's list: its first and last slot.
#[derive(Debug, Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// The chats that need one set of skills: a list per priority.
#[derive(Debug)]
struct Group {
    skills: SkillSet,
    lists: [List; Priority::LEVELS],
}

/// How an agent is matched to the chats: their skills, and the longest a
/// chat waits for an agent with every skill it needs.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    /// The agent's skills.
    pub skills: &'a SkillSet,
    /// Now.
    pub now: Timestamp,
    /// A chat that began waiting this long before `now` goes to anyone.
    pub fallback: Duration,
}

impl Match<'_> {
    /// Whether the agent may take a chat that needs `needed` and began
    /// waiting at `since`.
    pub fn allows(&self, needed: &SkillSet, since: Timestamp) -> bool {
        self.skills.covers(needed) || self.now.since(since) >= self.fallback
    }
}

/// A queue of chats by priority, with O(1) removal by id. `T` is what the
/// owner keeps per waiting chat (the incoming-list row, the claim cell,
/// ...).
#[derive(Debug)]
pub struct Queue<T> {
    slots: Vec<Slot<T>>,
    index: HashMap<ChatId, usize>,
    /// Skill groups; an emptied one stays (its index may be reused by the
    /// same skills) until the whole queue is empty.
    groups: Vec<Group>,
    group_of: HashMap<SkillSet, usize>,
    free: usize,
    limit: usize,
    /// Milliseconds of waiting worth one priority level (0: priorities
    /// never catch up with each other).
    aging_ms: u64,
}

impl<T> Queue<T> {
    /// An empty queue that holds at most `limit` chats, where priorities
    /// are strict (no aging).
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            index: HashMap::new(),
            groups: Vec::new(),
            group_of: HashMap::new(),
            free: NIL,
            limit,
            aging_ms: 0,
        }
    }

    /// Sets the most chats that may wait: chats already waiting beyond a
    /// lowered limit stay; new ones wait once the queue is below it.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Sets how much waiting is worth one priority level (zero: none,
    /// priorities are strict). Applies to every chat at once.
    pub fn set_aging(&mut self, step: Duration) {
        self.aging_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
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

    /// Adds `chat`, needing no skill, at the back of its priority.
    pub fn push_back(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        priority: Priority,
        value: T,
    ) -> Result<(), QueueError> {
        self.push_needing(chat, since, priority, SkillSet::default(), value, false)
    }

    /// Adds `chat` at the back of its priority even if the queue is at its
    /// limit: for chats accepted before (a restart, a transfer), which must
    /// not be lost to a lower limit.
    pub fn push_back_beyond_limit(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        priority: Priority,
        value: T,
    ) -> Result<(), QueueError> {
        self.push_needing(chat, since, priority, SkillSet::default(), value, true)
    }

    /// Adds `chat`, which needs `skills`, at the back of its priority in
    /// their group; `beyond_limit` as [`Queue::push_back_beyond_limit`].
    pub fn push_needing(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        priority: Priority,
        skills: SkillSet,
        value: T,
        beyond_limit: bool,
    ) -> Result<(), QueueError> {
        self.insert(chat, since, priority, skills, value, beyond_limit, false)
    }

    /// Adds `chat`, which needs `skills`, at the front of its priority,
    /// even beyond the limit (it was accepted before): it is served before
    /// every chat of its priority, whatever skills they need. It counts as
    /// having waited since `since` or, if a chat of its priority waits from
    /// earlier, since just before the earliest of them; the answer says
    /// which.
    pub fn push_front_needing(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        priority: Priority,
        skills: SkillSet,
        value: T,
    ) -> Result<Timestamp, QueueError> {
        let earliest = self
            .groups
            .iter()
            .map(|group| group.lists[priority.level()].head)
            .filter(|&head| head != NIL)
            .map(|head| self.node(head).since)
            .min();
        let since = match earliest {
            Some(earliest) if earliest <= since => {
                Timestamp(earliest.as_millis().saturating_sub(1))
            }
            _ => since,
        };
        self.insert(chat, since, priority, skills, value, true, true)?;
        Ok(since)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        chat: ChatId,
        since: Timestamp,
        priority: Priority,
        skills: SkillSet,
        value: T,
        beyond_limit: bool,
        front: bool,
    ) -> Result<(), QueueError> {
        if self.index.contains_key(&chat) {
            return Err(QueueError::AlreadyQueued(chat));
        }
        if !beyond_limit && self.index.len() >= self.limit {
            return Err(QueueError::Full { limit: self.limit });
        }
        let group = match self.group_of.get(&skills) {
            Some(&group) => group,
            None => {
                self.groups.push(Group {
                    skills: skills.clone(),
                    lists: [EMPTY; Priority::LEVELS],
                });
                self.group_of.insert(skills, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let node = Node {
            chat,
            since,
            priority,
            group,
            value,
            prev: NIL,
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
        let after = if front {
            NIL
        } else {
            self.groups[group].lists[priority.level()].tail
        };
        self.link_after(group, priority, after, slot);
        self.index.insert(chat, slot);
        Ok(())
    }

    /// Takes the chat to serve next, whatever skills it needs: the best of
    /// the lists' first chats (see the module docs).
    pub fn pop_next(&mut self) -> Option<(ChatId, Timestamp, T)> {
        let slot = self.best_head(self.heads())?;
        let chat = self.node(slot).chat;
        self.remove(chat)
    }

    /// Takes the chat to serve next to an agent matched by `by`: the best
    /// first chat of the lists whose skills the agent has, or whose first
    /// chat waited past the fallback. A list's first chat has waited
    /// longest in it, so no other chat of an uncovered list is past the
    /// fallback when its first is not.
    pub fn pop_next_for(&mut self, by: &Match<'_>) -> Option<(ChatId, Timestamp, T)> {
        let heads = self.heads().filter(|&slot| {
            let node = self.node(slot);
            by.allows(&self.groups[node.group].skills, node.since)
        });
        let slot = self.best_head(heads)?;
        let chat = self.node(slot).chat;
        self.remove(chat)
    }

    /// The skills `chat` needs, if it waits here.
    pub fn skills(&self, chat: ChatId) -> Option<&SkillSet> {
        self.index
            .get(&chat)
            .map(|&slot| &self.groups[self.node(slot).group].skills)
    }

    /// The first slot of every list that has one.
    fn heads(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups
            .iter()
            .flat_map(|group| group.lists.iter().map(|list| list.head))
            .filter(|&slot| slot != NIL)
    }

    /// Takes `chat` out of the queue wherever it stands.
    pub fn remove(&mut self, chat: ChatId) -> Option<(ChatId, Timestamp, T)> {
        let slot = self.index.remove(&chat)?;
        self.unlink(slot);
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
        if self.index.is_empty() {
            // Nothing waits: drop the slab and the groups so a burst (or
            // many skill sets once) does not pin memory.
            self.slots.clear();
            self.free = NIL;
            self.groups.clear();
            self.group_of.clear();
        }
        Some((node.chat, node.since, node.value))
    }

    /// Moves a waiting chat to `priority`, in its place by waiting time
    /// among that priority's chats. False if it does not wait here.
    pub fn set_priority(&mut self, chat: ChatId, priority: Priority) -> bool {
        let Some(&slot) = self.index.get(&chat) else {
            return false;
        };
        if self.node(slot).priority == priority {
            return true;
        }
        self.unlink(slot);
        let (since, group) = (self.node(slot).since, self.node(slot).group);
        self.node_mut(slot).priority = priority;
        // After the last chat of the new priority that has waited as long
        // or longer; lists are short where this is used (an agent raising a
        // chat), and this walks from the back.
        let mut after = self.groups[group].lists[priority.level()].tail;
        while after != NIL && self.node(after).since > since {
            after = self.node(after).prev;
        }
        self.link_after(group, priority, after, slot);
        true
    }

    /// The priority `chat` waits at, if it waits here.
    pub fn priority(&self, chat: ChatId) -> Option<Priority> {
        self.index.get(&chat).map(|&slot| self.node(slot).priority)
    }

    /// The value kept for `chat`, if it waits here.
    pub fn get(&self, chat: ChatId) -> Option<&T> {
        self.index.get(&chat).map(|&slot| &self.node(slot).value)
    }

    /// The value kept for `chat`, to change it, if it waits here.
    pub fn get_mut(&mut self, chat: ChatId) -> Option<&mut T> {
        let slot = *self.index.get(&chat)?;
        Some(&mut self.node_mut(slot).value)
    }

    /// Waiting chats in the order they would be served.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            queue: self,
            at: self
                .groups
                .iter()
                .flat_map(|group| group.lists.iter().map(|list| list.head))
                .collect(),
        }
    }

    /// Of the slots `heads`, the one to serve first: the smallest aged
    /// start, then the higher priority, then the older chat.
    fn best_head(&self, heads: impl Iterator<Item = usize>) -> Option<usize> {
        heads.min_by_key(|&slot| {
            let node = self.node(slot);
            (
                self.aged_start(node),
                std::cmp::Reverse(node.priority),
                node.since,
                node.chat,
            )
        })
    }

    /// When a chat counts as having started to wait, its priority turned
    /// into waiting time. Signed: a high priority may reach before 1970.
    fn aged_start(&self, node: &Node<T>) -> i128 {
        let level = node.priority.level() as i128;
        let since = i128::from(node.since.as_millis());
        if self.aging_ms == 0 {
            // Strict priorities: a level outweighs any wait.
            since - (level << 64)
        } else {
            since - level * i128::from(self.aging_ms)
        }
    }

    /// Links `slot` into `group`'s `priority` list after `after` (`NIL`:
    /// first).
    fn link_after(&mut self, group: usize, priority: Priority, after: usize, slot: usize) {
        let level = priority.level();
        let next = if after == NIL {
            self.groups[group].lists[level].head
        } else {
            self.node(after).next
        };
        {
            let node = self.node_mut(slot);
            node.prev = after;
            node.next = next;
        }
        if after == NIL {
            self.groups[group].lists[level].head = slot;
        } else {
            self.node_mut(after).next = slot;
        }
        if next == NIL {
            self.groups[group].lists[level].tail = slot;
        } else {
            self.node_mut(next).prev = slot;
        }
    }

    /// Takes `slot` out of its list.
    fn unlink(&mut self, slot: usize) {
        let (prev, next, level, group) = {
            let node = self.node(slot);
            (node.prev, node.next, node.priority.level(), node.group)
        };
        let list = &mut self.groups[group].lists[level];
        if prev == NIL {
            list.head = next;
        } else {
            self.node_mut(prev).next = next;
        }
        let list = &mut self.groups[group].lists[level];
        if next == NIL {
            list.tail = prev;
        } else {
            self.node_mut(next).prev = prev;
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

/// Iterator over a [`Queue`] in the order it would serve:
/// `(chat, since, value)`.
pub struct Iter<'a, T> {
    queue: &'a Queue<T>,
    /// The next slot of each list (each group's priorities in turn).
    at: Vec<usize>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = (ChatId, Timestamp, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        let at = self
            .queue
            .best_head(self.at.iter().copied().filter(|&slot| slot != NIL))?;
        let node = self.queue.node(at);
        let list = node.group * Priority::LEVELS + node.priority.level();
        self.at[list] = node.next;
        Some((node.chat, node.since, &node.value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    const NORMAL: Priority = Priority::Normal;

    fn ids(queue: &Queue<()>) -> Vec<u64> {
        queue.iter().map(|(chat, _, _)| chat.0).collect()
    }

    #[test]
    fn takes_in_enqueue_order_and_removes_from_the_middle() {
        let mut queue = Queue::new(10);
        for n in 1..=4 {
            queue
                .push_back(ChatId(n), Timestamp(n * 10), NORMAL, ())
                .unwrap();
        }
        assert_eq!(
            queue.remove(ChatId(2)).map(|(c, t, _)| (c, t)),
            Some((ChatId(2), Timestamp(20)))
        );
        assert_eq!(ids(&queue), [1, 3, 4]);
        assert_eq!(queue.pop_next().map(|(c, _, _)| c), Some(ChatId(1)));
        queue
            .push_back(ChatId(5), Timestamp(50), NORMAL, ())
            .unwrap();
        assert_eq!(ids(&queue), [3, 4, 5]);
        assert_eq!(queue.remove(ChatId(5)).map(|(c, _, _)| c), Some(ChatId(5)));
        assert_eq!(queue.remove(ChatId(5)), None);
        assert_eq!(ids(&queue), [3, 4]);
    }

    #[test]
    fn a_chat_pushed_to_the_front_is_served_first_of_its_priority_in_every_group() {
        let mut queue = Queue::new(3);
        let french = SkillSet::new(&["french".to_string()]).unwrap();
        queue
            .push_back(ChatId(1), Timestamp(10), NORMAL, ())
            .unwrap();
        queue
            .push_needing(ChatId(2), Timestamp(5), NORMAL, french.clone(), (), false)
            .unwrap();
        queue
            .push_back(ChatId(3), Timestamp(1), Priority::High, ())
            .unwrap();
        // Beyond the limit of 3, later than everyone: still first of Normal.
        let since = queue
            .push_front_needing(ChatId(4), Timestamp(90), NORMAL, SkillSet::default(), ())
            .unwrap();
        assert_eq!(since, Timestamp(4), "just before the oldest Normal wait");
        assert_eq!(
            ids(&queue),
            [3, 4, 2, 1],
            "a higher priority still goes first"
        );
        assert_eq!(queue.pop_next().map(|(c, _, _)| c), Some(ChatId(3)));
        assert_eq!(queue.pop_next().map(|(c, _, _)| c), Some(ChatId(4)));
        // Into an empty priority, or older than everyone: its own time.
        assert_eq!(
            queue.push_front_needing(ChatId(5), Timestamp(3), Priority::Low, french, ()),
            Ok(Timestamp(3))
        );
        assert_eq!(
            queue.push_front_needing(ChatId(6), Timestamp(2), NORMAL, SkillSet::default(), ()),
            Ok(Timestamp(2))
        );
        assert_eq!(ids(&queue), [6, 2, 1, 5]);
        assert_eq!(
            queue.push_front_needing(ChatId(6), Timestamp(2), NORMAL, SkillSet::default(), ()),
            Err(QueueError::AlreadyQueued(ChatId(6)))
        );
    }

    #[test]
    fn refuses_duplicates_and_beyond_the_limit() {
        let mut queue = Queue::new(2);
        queue
            .push_back(ChatId(1), Timestamp(0), NORMAL, ())
            .unwrap();
        assert_eq!(
            queue.push_back(ChatId(1), Timestamp(0), Priority::High, ()),
            Err(QueueError::AlreadyQueued(ChatId(1)))
        );
        queue
            .push_back(ChatId(2), Timestamp(0), NORMAL, ())
            .unwrap();
        assert_eq!(
            queue.push_back(ChatId(3), Timestamp(0), NORMAL, ()),
            Err(QueueError::Full { limit: 2 })
        );
        assert_eq!(queue.len(), 2);
        queue
            .push_back_beyond_limit(ChatId(3), Timestamp(0), NORMAL, ())
            .unwrap();
        assert_eq!(queue.len(), 3);
        assert_eq!(
            queue.push_back_beyond_limit(ChatId(3), Timestamp(0), NORMAL, ()),
            Err(QueueError::AlreadyQueued(ChatId(3)))
        );
    }

    #[test]
    fn strict_priorities_serve_higher_first_and_first_come_within_one() {
        let mut queue = Queue::new(10);
        queue
            .push_back(ChatId(1), Timestamp(10), Priority::Low, ())
            .unwrap();
        queue
            .push_back(ChatId(2), Timestamp(20), NORMAL, ())
            .unwrap();
        queue
            .push_back(ChatId(3), Timestamp(30), Priority::Urgent, ())
            .unwrap();
        queue
            .push_back(ChatId(4), Timestamp(40), NORMAL, ())
            .unwrap();
        queue
            .push_back(ChatId(5), Timestamp(50), Priority::High, ())
            .unwrap();
        assert_eq!(ids(&queue), [3, 5, 2, 4, 1]);
        assert_eq!(queue.pop_next().map(|(c, _, _)| c), Some(ChatId(3)));
        assert_eq!(ids(&queue), [5, 2, 4, 1]);
    }

    #[test]
    fn waiting_ages_a_chat_past_newer_higher_priorities() {
        let mut queue = Queue::new(10);
        queue.set_aging(Duration::from_secs(60));
        // A low chat that waited since 0; normal chats arrive later.
        queue
            .push_back(ChatId(1), Timestamp(0), Priority::Low, ())
            .unwrap();
        queue
            .push_back(ChatId(2), Timestamp(59_000), NORMAL, ())
            .unwrap();
        queue
            .push_back(ChatId(3), Timestamp(61_000), NORMAL, ())
            .unwrap();
        // Urgent counts as three minutes more: it beats a chat that has
        // waited less than that longer, not one that waited more.
        queue
            .push_back(ChatId(4), Timestamp(150_000), Priority::Urgent, ())
            .unwrap();
        // Aged starts: 1 at 0, 2 at -1000, 3 at 1000, 4 at -30000.
        assert_eq!(ids(&queue), [4, 2, 1, 3]);
        // Strict again: aging off.
        queue.set_aging(Duration::ZERO);
        assert_eq!(ids(&queue), [4, 2, 3, 1]);
    }

    #[test]
    fn a_raised_chat_takes_its_place_by_waiting_time() {
        let mut queue = Queue::new(10);
        for n in 1..=3 {
            queue
                .push_back(ChatId(n), Timestamp(n * 10), Priority::High, ())
                .unwrap();
        }
        queue
            .push_back(ChatId(9), Timestamp(15), NORMAL, ())
            .unwrap();
        assert!(queue.set_priority(ChatId(9), Priority::High));
        assert_eq!(queue.priority(ChatId(9)), Some(Priority::High));
        assert_eq!(ids(&queue), [1, 9, 2, 3]);
        assert!(queue.set_priority(ChatId(1), Priority::Low));
        assert_eq!(ids(&queue), [9, 2, 3, 1]);
        assert!(!queue.set_priority(ChatId(7), Priority::High));
    }

    fn skills(names: &[&str]) -> SkillSet {
        SkillSet::new(names).unwrap()
    }

    #[test]
    fn an_agent_gets_the_best_chat_they_qualify_for_until_the_fallback() {
        let mut queue = Queue::new(10);
        let (french, billing) = (skills(&["french"]), skills(&["billing"]));
        queue
            .push_needing(ChatId(1), Timestamp(0), NORMAL, french.clone(), (), false)
            .unwrap();
        queue
            .push_needing(ChatId(2), Timestamp(10), NORMAL, billing.clone(), (), false)
            .unwrap();
        queue
            .push_back(ChatId(3), Timestamp(20), NORMAL, ())
            .unwrap();
        queue
            .push_needing(ChatId(4), Timestamp(5), Priority::Urgent, french, (), false)
            .unwrap();
        // Served order ignores skills.
        assert_eq!(ids(&queue), [4, 1, 2, 3]);
        assert_eq!(queue.skills(ChatId(2)), Some(&billing));
        let fallback = Duration::from_millis(100);
        let biller = Match {
            skills: &billing,
            now: Timestamp(50),
            fallback,
        };
        assert_eq!(
            queue.pop_next_for(&biller).map(|(c, _, _)| c),
            Some(ChatId(2))
        );
        // No skills: only chats that need none.
        let plain = SkillSet::default();
        let novice = Match {
            skills: &plain,
            now: Timestamp(50),
            fallback,
        };
        assert_eq!(
            queue.pop_next_for(&novice).map(|(c, _, _)| c),
            Some(ChatId(3))
        );
        assert_eq!(queue.pop_next_for(&novice).map(|(c, _, _)| c), None);
        // Past the fallback of the first French chat (since 0) but not of
        // the urgent one (since 5): the first goes to anyone.
        let later = Match {
            skills: &plain,
            now: Timestamp(102),
            fallback,
        };
        assert_eq!(
            queue.pop_next_for(&later).map(|(c, _, _)| c),
            Some(ChatId(1))
        );
        assert_eq!(queue.pop_next_for(&later).map(|(c, _, _)| c), None);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop_next().map(|(c, _, _)| c), Some(ChatId(4)));
        assert!(queue.is_empty());
    }

    proptest! {
        /// With chats spread over skill sets, an agent's next chat is the
        /// first one of the served order they may take, and taking it
        /// keeps the rest in order.
        #[test]
        fn an_agent_takes_the_first_allowed_chat_of_the_served_order(
            chats in proptest::collection::vec((0..4u8, 0..4u8, 0..200u64), 0..60),
            takers in proptest::collection::vec((0..4u8, 0..300u64), 1..30),
        ) {
            let sets = [skills(&[]), skills(&["a"]), skills(&["b"]), skills(&["a", "b"])];
            let mut queue = Queue::new(usize::MAX);
            queue.set_aging(Duration::from_millis(40));
            // Chats join in the order they began waiting, as in a channel.
            let mut chats = chats;
            chats.sort_by_key(|&(_, _, since)| since);
            for (n, &(set, p, since)) in chats.iter().enumerate() {
                queue
                    .push_needing(ChatId(n as u64), Timestamp(since), priority(p), sets[usize::from(set)].clone(), (), false)
                    .unwrap();
            }
            let fallback = Duration::from_millis(100);
            for (set, now) in takers {
                // An uncovered list offers only its first chat (the one
                // that waited longest in it) once past the fallback.
                let by = Match { skills: &sets[usize::from(set)], now: Timestamp(now + 200), fallback };
                let expected = queue
                    .iter()
                    .map(|(chat, since, _)| (chat, since))
                    .find(|&(chat, since)| {
                        let needed = queue.skills(chat).unwrap();
                        let head = queue.iter().find(|&(c, _, _)| queue.skills(c) == Some(needed) && queue.priority(c) == queue.priority(chat)).map(|(c, _, _)| c);
                        by.allows(needed, since) && (by.skills.covers(needed) || head == Some(chat))
                    })
                    .map(|(chat, _)| chat);
                let before: Vec<u64> = ids(&queue);
                let got = queue.pop_next_for(&by).map(|(c, _, _)| c);
                prop_assert_eq!(got, expected);
                let mut after = before.clone();
                after.retain(|&c| Some(ChatId(c)) != got);
                prop_assert_eq!(ids(&queue), after);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, u8),
        Pop,
        Remove(u8),
        Raise(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), 0..4u8).prop_map(|(n, p)| Op::Push(n, p)),
            2 => Just(Op::Pop),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => (any::<u8>(), 0..4u8).prop_map(|(n, p)| Op::Raise(n, p)),
        ]
    }

    fn priority(p: u8) -> Priority {
        [Priority::Low, NORMAL, Priority::High, Priority::Urgent][usize::from(p % 4)]
    }

    /// One list per priority of `(chat, since)`; the next is the front with
    /// the smallest aged start, the higher priority on a tie.
    struct Model {
        levels: [VecDeque<(u64, u64)>; Priority::LEVELS],
        aging: i128,
    }

    impl Model {
        fn order(&self) -> Vec<u64> {
            let mut levels = self.levels.clone();
            let mut out = Vec::new();
            while let Some(level) = self.best(&levels) {
                out.extend(levels[level].pop_front().map(|(chat, _)| chat));
            }
            out
        }

        fn best(&self, levels: &[VecDeque<(u64, u64)>; Priority::LEVELS]) -> Option<usize> {
            (0..Priority::LEVELS)
                .rev()
                .filter_map(|level| {
                    let &(_, since) = levels[level].front()?;
                    Some((i128::from(since) - level as i128 * self.aging, level))
                })
                .min_by_key(|&(aged, _)| aged)
                .map(|(_, level)| level)
        }

        fn remove(&mut self, chat: u64) -> Option<(u64, u64)> {
            self.levels.iter_mut().find_map(|level| {
                let pos = level.iter().position(|&(c, _)| c == chat)?;
                level.remove(pos)
            })
        }

        fn len(&self) -> usize {
            self.levels.iter().map(VecDeque::len).sum()
        }
    }

    proptest! {
        /// Against a plain model: the queue never loses or duplicates a
        /// chat, and serves in the model's order, whatever mix of pushes,
        /// takes, removals and priority changes runs, with aging on.
        #[test]
        fn serves_by_aged_priority_without_losing_a_chat(
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            let mut queue = Queue::new(64);
            queue.set_aging(Duration::from_millis(50));
            let mut model = Model { levels: Default::default(), aging: 50 };
            let mut clock = 0;
            for op in ops {
                clock += 7;
                match op {
                    Op::Push(n, p) => {
                        let chat = ChatId(u64::from(n));
                        let expected = if model.levels.iter().flatten().any(|&(c, _)| c == chat.0) {
                            Err(QueueError::AlreadyQueued(chat))
                        } else if model.len() >= 64 {
                            Err(QueueError::Full { limit: 64 })
                        } else {
                            model.levels[priority(p).level()].push_back((chat.0, clock));
                            Ok(())
                        };
                        prop_assert_eq!(queue.push_back(chat, Timestamp(clock), priority(p), ()), expected);
                    }
                    Op::Pop => {
                        let want = model
                            .best(&model.levels)
                            .and_then(|level| model.levels[level].pop_front())
                            .map(|(chat, _)| chat);
                        prop_assert_eq!(queue.pop_next().map(|(c, _, _)| c.0), want);
                    }
                    Op::Remove(n) => {
                        let got = queue.remove(ChatId(u64::from(n))).map(|(c, _, _)| c.0);
                        let want = model.remove(u64::from(n)).map(|(chat, _)| chat);
                        prop_assert_eq!(got, want);
                    }
                    Op::Raise(n, p) => {
                        let moved = model.remove(u64::from(n));
                        if let Some((chat, since)) = moved {
                            let level = &mut model.levels[priority(p).level()];
                            let at = level.iter().rposition(|&(_, s)| s <= since).map_or(0, |i| i + 1);
                            level.insert(at, (chat, since));
                        }
                        prop_assert_eq!(queue.set_priority(ChatId(u64::from(n)), priority(p)), moved.is_some());
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(ids(&queue), model.order());
            }
        }
    }
}
