//! Agent presence: who is Present, per channel, readable without asking an
//! actor.
//!
//! Every StartChat reads its channel's Present count to choose between the
//! queue and the offline form, so the counts live in atomics that any
//! connection task reads. An agent's status is one atomic swapped on every
//! change; only the swap that actually changes it moves the counts, so two
//! racing updates of one agent can never count it twice.

use std::collections::HashMap;
use std::sync::Arc;

use bincode::{Decode, Encode};
use dashmap::DashMap;

use crate::core::capacity::Capacity;
use crate::core::ids::{AgentId, ChannelId};
use crate::core::sync::{AtomicU64, Ordering};

/// Whether an agent is at their desk.
///
/// Present agents are listed as present and get alerts about unanswered
/// chats; Absent agents get no alerts but may still answer chats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Status {
    /// Listed, alerted.
    Present,
    /// Not listed, not alerted; may still answer.
    #[default]
    Absent,
}

impl Status {
    fn code(self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::Present => 1,
        }
    }

    fn from_code(code: u64) -> Self {
        if code == 1 {
            Self::Present
        } else {
            Self::Absent
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

/// One agent's status and capacity.
#[derive(Debug)]
pub struct AgentPresence {
    status: AtomicU64,
    channels: Vec<ChannelId>,
    counts: Vec<Arc<PresentCount>>,
    /// The agent's chat slots.
    pub capacity: Capacity,
}

impl AgentPresence {
    /// An Absent agent who works `channels` (with their counts) and may
    /// hold `capacity` chats at once.
    pub fn new(channels: Vec<(ChannelId, Arc<PresentCount>)>, capacity: u64) -> Self {
        let (channels, counts) = channels.into_iter().unzip();
        Self {
            status: AtomicU64::new(Status::Absent.code()),
            channels,
            counts,
            capacity: Capacity::new(capacity),
        }
    }

    /// Sets the status; true if it changed. Each channel's count moves once
    /// per real change, whatever races with it.
    pub fn set(&self, status: Status) -> bool {
        let old = Status::from_code(self.status.swap(status.code(), Ordering::AcqRel));
        if old == status {
            return false;
        }
        for count in &self.counts {
            match status {
                Status::Present => count.0.fetch_add(1, Ordering::AcqRel),
                Status::Absent => count.0.fetch_sub(1, Ordering::AcqRel),
            };
        }
        true
    }

    /// The status now.
    pub fn status(&self) -> Status {
        Status::from_code(self.status.load(Ordering::Acquire))
    }

    /// The channels the agent works.
    pub fn channels(&self) -> &[ChannelId] {
        &self.channels
    }

    /// The raw status word, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw_status(&self) -> &AtomicU64 {
        &self.status
    }
}

/// Every agent's presence and every channel's Present count.
#[derive(Debug, Default)]
pub struct Presence {
    counts: HashMap<ChannelId, Arc<PresentCount>>,
    agents: DashMap<AgentId, Arc<AgentPresence>>,
}

impl Presence {
    /// Presence for these channels, with no agents yet.
    pub fn new(channels: impl IntoIterator<Item = ChannelId>) -> Self {
        Self {
            counts: channels
                .into_iter()
                .map(|channel| (channel, Arc::default()))
                .collect(),
            agents: DashMap::new(),
        }
    }

    /// Adds (or replaces) an Absent agent working `channels`; unknown
    /// channels are ignored.
    pub fn add_agent(
        &self,
        agent: AgentId,
        channels: &[ChannelId],
        capacity: u64,
    ) -> Arc<AgentPresence> {
        let channels = channels
            .iter()
            .filter_map(|channel| Some((channel.clone(), self.counts.get(channel)?.clone())))
            .collect();
        let presence = Arc::new(AgentPresence::new(channels, capacity));
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
            .filter(|entry| entry.status() == Status::Present && entry.channels.contains(channel))
            .map(|entry| entry.key().clone())
            .collect();
        agents.sort();
        agents
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

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
}
