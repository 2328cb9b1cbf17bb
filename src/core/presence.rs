//! Agent presence: who is Present, per channel, readable without asking an
//! actor.
//!
//! Every StartChat reads its channel's Present count to choose between the
//! queue and the offline form, so the counts live in atomics that any
//! connection task reads. An agent's status is one atomic swapped on every
//! change; only the swap that actually changes it moves the counts, so two
//! racing updates of one agent can never count it twice.

use std::sync::Arc;

use bincode::{Decode, Encode};
use dashmap::DashMap;

use crate::core::capacity::Capacity;
use crate::core::ids::{AgentId, ChannelId};
use crate::core::skills::SkillSet;
use crate::core::sync::{AtomicU64, Mutex, Ordering};
use crate::core::time::Timestamp;

/// Whether an agent is at their desk.
///
/// Present agents are listed as present and get alerts about unanswered
/// chats; Absent agents get no alerts but may still answer chats. An
/// agent idle past their channel's `idle_after` becomes Away: like Absent
/// for routing (not counted Present, so a channel whose agents are all
/// Away shows its offline form; offered nothing, not alerted), but shown
/// as Away to supervisors, and back to Present only when their status is
/// set again (activity alone does not bring them back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Status {
    /// Listed, alerted.
    Present,
    /// Not listed, not alerted; may still answer.
    #[default]
    Absent,
    /// Present but idle too long: not counted Present, offered nothing,
    /// not alerted; keeps their chats.
    Away,
}

impl Status {
    fn code(self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::Present => 1,
            Self::Away => 2,
        }
    }

    fn from_code(code: u64) -> Self {
        match code {
            1 => Self::Present,
            2 => Self::Away,
            _ => Self::Absent,
        }
    }
}

/// How many member agents of a channel are Present.
#[derive(Debug, Default)]
pub struct PresentCount(AtomicU64);

impl PresentCount {
    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// The raw counter, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw(&self) -> &AtomicU64 {
        &self.0
    }
}

/// The channels an agent works, each with its Present count.
pub type Membership = Vec<(ChannelId, Arc<PresentCount>)>;

/// One agent's status, channels and capacity.
#[derive(Debug)]
pub struct AgentPresence {
    /// Read without the lock; written only under it.
    status: AtomicU64,
    /// The channels the agent works, with their counts. Every move of a
    /// count (a status change, a change of channels) happens under this
    /// lock, so a channel counts the agent exactly while the agent is
    /// Present and works it.
    channels: Mutex<Membership>,
    /// The agent's chat slots.
    pub capacity: Capacity,
    /// When a chat was last assigned to the agent (ms since the epoch, 0
    /// for never): push routing's `least_busy` prefers the agent who waited
    /// longest.
    last_assigned: AtomicU64,
    /// When the agent last made a request (ms since the epoch).
    last_active: AtomicU64,
    /// What the agent can do. A plain lock: no count depends on it, and it
    /// changes only at a reload.
    skills: std::sync::RwLock<Arc<SkillSet>>,
}

impl AgentPresence {
    /// An Absent agent who works `channels` (with their counts) and may
    /// hold `capacity` chats at once.
    pub fn new(channels: Membership, capacity: u64) -> Self {
        Self {
            status: AtomicU64::new(Status::Absent.code()),
            channels: Mutex::new(channels),
            capacity: Capacity::new(capacity),
            last_assigned: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
            skills: std::sync::RwLock::new(Arc::new(SkillSet::default())),
        }
    }

    /// The agent's skills.
    pub fn skills(&self) -> Arc<SkillSet> {
        self.skills
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sets the agent's skills.
    pub fn set_skills(&self, skills: SkillSet) {
        *self
            .skills
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(skills);
    }

    /// Notes that a chat was assigned to the agent at `at`.
    pub fn assigned_at(&self, at: Timestamp) {
        self.last_assigned
            .fetch_max(at.as_millis(), Ordering::AcqRel);
    }

    /// When a chat was last assigned to the agent (`Timestamp(0)` for
    /// never).
    pub fn last_assigned(&self) -> Timestamp {
        Timestamp(self.last_assigned.load(Ordering::Acquire))
    }

    fn membership(&self) -> impl std::ops::DerefMut<Target = Membership> + '_ {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the status; true if it changed. Each channel's count moves once
    /// per real change, whatever races with it.
    pub fn set(&self, status: Status) -> bool {
        let channels = self.membership();
        let old = Status::from_code(self.status.swap(status.code(), Ordering::AcqRel));
        if old == status {
            return false;
        }
        // Only Present counts: Absent and Away are alike to the counts.
        if (old == Status::Present) != (status == Status::Present) {
            for (_, count) in channels.iter() {
                if status == Status::Present {
                    count.0.fetch_add(1, Ordering::AcqRel);
                } else {
                    count.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        true
    }

    /// Makes a Present agent Away (they were idle too long); true if it
    /// did. An agent whose status changed meanwhile (to Absent, say) is
    /// left as it is: the change is one compare-and-swap from Present,
    /// under the lock the counts move under.
    pub fn idle(&self) -> bool {
        let channels = self.membership();
        let swapped = self.status.compare_exchange(
            Status::Present.code(),
            Status::Away.code(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if swapped.is_err() {
            return false;
        }
        for (_, count) in channels.iter() {
            count.0.fetch_sub(1, Ordering::AcqRel);
        }
        true
    }

    /// Notes a request from the agent at `at` (any connection).
    pub fn touch(&self, at: Timestamp) {
        self.last_active.fetch_max(at.as_millis(), Ordering::AcqRel);
    }

    /// When the agent last made a request (`Timestamp(0)`: never).
    pub fn last_active(&self) -> Timestamp {
        Timestamp(self.last_active.load(Ordering::Acquire))
    }

    /// Makes the agent work `channels` from now on: a Present agent leaves
    /// the counts of channels it no longer works and joins the new ones'.
    pub fn set_channels(&self, channels: Membership) {
        let mut current = self.membership();
        if self.status() == Status::Present {
            let works = |list: &Membership, id: &ChannelId| list.iter().any(|(c, _)| c == id);
            for (id, count) in current.iter() {
                if !works(&channels, id) {
                    count.0.fetch_sub(1, Ordering::AcqRel);
                }
            }
            for (id, count) in &channels {
                if !works(&current, id) {
                    count.0.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        *current = channels;
    }

    /// The status now.
    pub fn status(&self) -> Status {
        Status::from_code(self.status.load(Ordering::Acquire))
    }

    /// The channels the agent works.
    pub fn channels(&self) -> Vec<ChannelId> {
        self.membership().iter().map(|(id, _)| id.clone()).collect()
    }

    /// Whether the agent works `channel`.
    pub fn works(&self, channel: &ChannelId) -> bool {
        self.membership().iter().any(|(id, _)| id == channel)
    }

    /// The raw status word, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw_status(&self) -> &AtomicU64 {
        &self.status
    }

    /// The raw membership, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw_channels(&self) -> &Mutex<Membership> {
        &self.channels
    }
}

/// Every agent's presence and every channel's Present count.
#[derive(Debug, Default)]
pub struct Presence {
    counts: DashMap<ChannelId, Arc<PresentCount>>,
    agents: DashMap<AgentId, Arc<AgentPresence>>,
}

impl Presence {
    /// Presence for these channels, with no agents yet.
    pub fn new(channels: impl IntoIterator<Item = ChannelId>) -> Self {
        let presence = Self::default();
        for channel in channels {
            presence.add_channel(channel);
        }
        presence
    }

    /// Counts a channel's Present agents from now on (nobody yet).
    pub fn add_channel(&self, channel: ChannelId) {
        self.counts.entry(channel).or_default();
    }

    /// Stops counting a channel: it must already be gone from every
    /// agent's channels.
    pub fn remove_channel(&self, channel: &ChannelId) {
        self.counts.remove(channel);
    }

    /// `channels` with their counts; unknown channels are left out.
    pub fn membership(&self, channels: &[ChannelId]) -> Membership {
        channels
            .iter()
            .filter_map(|channel| Some((channel.clone(), self.counts.get(channel)?.clone())))
            .collect()
    }

    /// Adds (or replaces) an Absent agent working `channels`; unknown
    /// channels are ignored.
    pub fn add_agent(
        &self,
        agent: AgentId,
        channels: &[ChannelId],
        capacity: u64,
    ) -> Arc<AgentPresence> {
        let presence = Arc::new(AgentPresence::new(self.membership(channels), capacity));
        if let Some(old) = self.agents.insert(agent, presence.clone()) {
            old.set(Status::Absent);
        }
        presence
    }

    /// An agent's presence.
    pub fn agent(&self, agent: &AgentId) -> Option<Arc<AgentPresence>> {
        self.agents.get(agent).map(|entry| entry.clone())
    }

    /// How many member agents of `channel` are Present.
    pub fn present_count(&self, channel: &ChannelId) -> u64 {
        self.counts.get(channel).map_or(0, |count| count.get())
    }

    /// The Present member agents of `channel`, sorted.
    pub fn present_agents(&self, channel: &ChannelId) -> Vec<AgentId> {
        let mut agents: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|entry| entry.status() == Status::Present && entry.works(channel))
            .map(|entry| entry.key().clone())
            .collect();
        agents.sort();
        agents
    }

    /// The Present member agents of `channel` with their presence, sorted
    /// by id.
    pub fn present_members(&self, channel: &ChannelId) -> Vec<(AgentId, Arc<AgentPresence>)> {
        let mut agents: Vec<(AgentId, Arc<AgentPresence>)> = self
            .agents
            .iter()
            .filter(|entry| entry.status() == Status::Present && entry.works(channel))
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        agents.sort_by(|a, b| a.0.cmp(&b.0));
        agents
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_idle_agent_turns_away_uncounted_and_back_present_counted() {
        let support = ChannelId::new("support");
        let presence = Presence::new([support.clone()]);
        let alice = presence.add_agent(AgentId::new("alice"), std::slice::from_ref(&support), 4);
        assert!(!alice.idle(), "an Absent agent does not turn Away");
        assert_eq!(alice.status(), Status::Absent);
        assert!(alice.set(Status::Present));
        assert!(alice.idle());
        assert_eq!(alice.status(), Status::Away);
        assert_eq!(presence.present_count(&support), 0);
        assert!(!alice.idle(), "Away once");
        assert!(alice.set(Status::Absent), "Away to Absent is a change");
        assert_eq!(presence.present_count(&support), 0, "but not of the count");
        assert!(alice.set(Status::Away));
        assert!(alice.set(Status::Present));
        assert_eq!(presence.present_count(&support), 1);
        alice.touch(Timestamp(50));
        alice.touch(Timestamp(40));
        assert_eq!(alice.last_active(), Timestamp(50), "activity only moves on");
    }

    #[test]
    fn counts_follow_real_changes_only() {
        let support = ChannelId::new("support");
        let sales = ChannelId::new("sales");
        let presence = Presence::new([support.clone(), sales.clone()]);
        let alice = presence.add_agent(AgentId::new("alice"), &[support.clone(), sales.clone()], 4);
        let bob = presence.add_agent(AgentId::new("bob"), std::slice::from_ref(&support), 4);
        assert!(alice.set(Status::Present));
        assert!(!alice.set(Status::Present), "no change, no count");
        assert!(bob.set(Status::Present));
        assert_eq!(presence.present_count(&support), 2);
        assert_eq!(presence.present_count(&sales), 1);
        assert_eq!(
            presence.present_agents(&support),
            [AgentId::new("alice"), AgentId::new("bob")]
        );
        assert!(alice.set(Status::Absent));
        assert_eq!(presence.present_count(&support), 1);
        assert_eq!(presence.present_count(&sales), 0);
        assert_eq!(presence.present_agents(&sales), Vec::<AgentId>::new());
    }

    #[test]
    fn a_change_of_channels_moves_the_counts_of_a_present_agent_only() {
        let support = ChannelId::new("support");
        let sales = ChannelId::new("sales");
        let billing = ChannelId::new("billing");
        let presence = Presence::new([support.clone(), sales.clone()]);
        let alice = presence.add_agent(AgentId::new("alice"), &[support.clone(), sales.clone()], 4);
        let bob = presence.add_agent(AgentId::new("bob"), std::slice::from_ref(&support), 4);
        assert!(alice.set(Status::Present));
        presence.add_channel(billing.clone());
        alice.set_channels(presence.membership(&[sales.clone(), billing.clone()]));
        assert_eq!(presence.present_count(&support), 0, "left support");
        assert_eq!(
            presence.present_count(&sales),
            1,
            "still in sales, counted once"
        );
        assert_eq!(presence.present_count(&billing), 1, "joined billing");
        assert!(alice.works(&billing) && !alice.works(&support));
        // An Absent agent's new channels count nothing, now or later wrongly.
        bob.set_channels(presence.membership(std::slice::from_ref(&billing)));
        assert_eq!(presence.present_count(&billing), 1);
        assert!(bob.set(Status::Present));
        assert_eq!(presence.present_count(&billing), 2);
        assert_eq!(presence.present_count(&support), 0);
        alice.set_channels(Vec::new());
        assert!(bob.set(Status::Absent));
        for channel in [&support, &sales, &billing] {
            assert_eq!(presence.present_count(channel), 0, "{channel}");
        }
        presence.remove_channel(&billing);
        assert_eq!(presence.membership(&[billing, sales.clone()]).len(), 1);
    }
}
