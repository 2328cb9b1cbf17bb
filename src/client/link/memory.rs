//! What the link remembers to resume after a reconnect, and how it puts
//! each chat's events in order: a pure state, tested without a network.

use super::*;

/// What the link remembers to resume after a reconnect.
#[derive(Default)]
pub(super) struct Memory {
    /// The last seq handed to the application, per chat.
    pub(super) positions: HashMap<ChatId, u64>,
    /// Customer chats' secrets.
    pub(super) secrets: HashMap<ChatId, Secret>,
    /// The agent status last set.
    pub(super) status: Option<Status>,
    /// The customer's proven identities (`Identify` requests), by channel.
    pub(super) identities: HashMap<ChannelId, RequestBody>,
    /// The channels whose monitors the agent watches: watched again after
    /// a reconnect, and the only ones whose pictures reach the
    /// application.
    pub(super) monitors: std::collections::BTreeSet<ChannelId>,
    /// Chat events that arrived ahead of an earlier one still on its way
    /// (on another stream), held until the gap fills.
    pub(super) held: HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
    /// Chat events in the order the application gets them, on their way
    /// to it: whoever orders an event appends what it made ready here in
    /// the same step, so no later event can overtake.
    pub(super) ready: VecDeque<ChatEvent>,
    /// Chats over for this client for now (ended, or gone to another
    /// agent), each with the number of its finish: not resumed after a
    /// reconnect. Their positions stay, so a chat that comes back is not
    /// handed over twice, for the latest [`MAX_FINISHED`] of them; older
    /// ones are forgotten.
    pub(super) finished: HashMap<ChatId, u64>,
    /// Finishes in order; one whose chat came back (or finished again
    /// since) no longer matches `finished` and forgets nothing.
    pub(super) finished_order: VecDeque<(ChatId, u64)>,
    /// The number of the next finish.
    pub(super) finishes: u64,
}

/// Finished chats whose positions (and secrets) the link keeps.
pub(super) const MAX_FINISHED: usize = 4096;

impl Memory {
    /// Notes what the events just made ready mean for resuming: a chat
    /// that is over for `role` is not resumed any more; one that is back
    /// is again.
    pub(super) fn note_ready(&mut self, role: &Role, from: usize) {
        for index in from..self.ready.len() {
            let event = &self.ready[index];
            let chat = event.chat;
            if is_over_for(role, &event.kind) {
                if !self.finished.contains_key(&chat) {
                    self.finishes += 1;
                    self.finished.insert(chat, self.finishes);
                    self.finished_order.push_back((chat, self.finishes));
                }
            } else {
                // Back (returned, transferred back): resumed again.
                self.finished.remove(&chat);
            }
        }
        while self.finished_order.len() > MAX_FINISHED {
            let Some((oldest, finish)) = self.finished_order.pop_front() else {
                break;
            };
            if self.finished.get(&oldest) == Some(&finish) {
                self.finished.remove(&oldest);
                self.positions.remove(&oldest);
                self.secrets.remove(&oldest);
            }
        }
    }

    /// What a hello resumes: every chat known but the finished ones, at
    /// most `limit` of them (the newest).
    pub(super) fn resume_points(&self, limit: usize) -> Vec<Resume> {
        let mut chats: Vec<ChatId> = self
            .positions
            .keys()
            .chain(self.secrets.keys())
            .filter(|chat| !self.finished.contains_key(chat))
            .copied()
            .collect();
        chats.sort_unstable();
        chats.dedup();
        if chats.len() > limit {
            tracing::warn!(
                "{} chats to resume, more than a hello carries: the oldest {} are not resumed",
                chats.len(),
                chats.len() - limit
            );
            chats.drain(..chats.len() - limit);
        }
        chats
            .into_iter()
            .map(|chat| Resume {
                chat,
                after: self.positions.get(&chat).copied().unwrap_or(0),
                secret: self.secrets.get(&chat).cloned(),
            })
            .collect()
    }
}

/// Whether `event` is the last `role` hears of its chat for now.
pub(super) fn is_over_for(role: &Role, event: &ChatEventKind) -> bool {
    match (role, event) {
        (_, ChatEventKind::Ended { .. }) => true,
        (Role::Agent { .. }, ChatEventKind::Requeued { .. }) => true,
        (Role::Agent { agent, .. }, ChatEventKind::TransferredToAgent { to, .. }) => to != agent,
        (Role::Agent { agent, .. }, ChatEventKind::TransferDeclined { by, .. }) => by == agent,
        _ => false,
    }
}

/// See [`Inner::accept`]: `positions` is the last seq handed over per chat,
/// `held` the events waiting for a gap to fill; what `event` makes ready is
/// appended to `ready`, and the answer says whether anything was.
pub(super) fn order(
    positions: &mut HashMap<ChatId, u64>,
    held: &mut HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
    event: ChatEvent,
    ready: &mut VecDeque<ChatEvent>,
) -> bool {
    let chat = event.chat;
    let last = positions.entry(chat).or_insert(0);
    if event.seq <= *last {
        return false;
    }
    let next_in_line = event.seq == *last + 1;
    if next_in_line && !held.contains_key(&chat) {
        // The usual case: in order, nothing held.
        *last = event.seq;
        return hand_over(ready, event);
    }
    let waiting = held.entry(chat).or_default();
    waiting.insert(event.seq, event);
    if !next_in_line && waiting.len() <= MAX_HELD {
        return false;
    }
    // It is next in line: it and what now follows on go. Or too many wait
    // for the gap: all of them go, in seq order, past the gap.
    let flush_all = !next_in_line;
    let before = ready.len();
    while let Some(entry) = waiting.first_entry() {
        if !flush_all && *entry.key() != *last + 1 {
            break;
        }
        let next = entry.remove();
        if next.seq > *last {
            *last = next.seq;
            hand_over(ready, next);
        }
    }
    if waiting.is_empty() {
        held.remove(&chat);
    }
    ready.len() > before
}

/// Gives `event` to the application, unless it only stands in for one the
/// customer may not see (it has done its part: the seqs stay consecutive).
fn hand_over(ready: &mut VecDeque<ChatEvent>, event: ChatEvent) -> bool {
    if event.kind == ChatEventKind::Withheld {
        return false;
    }
    ready.push_back(event);
    true
}
