//! Roles and supervision: who may oversee which channels, and the live
//! picture of a channel a supervisor watches (its monitor).
//!
//! Every signed-in person is an agent; a supervisor also oversees the
//! channels it lists, and an admin oversees every channel. Overseeing a
//! channel is what the supervision requests check (monitor, whisper, set an
//! agent Absent); it does not make anyone a member of the channel's queue.

use bincode::{Decode, Encode};

use crate::core::{AgentId, ChannelId, ChatId, Priority, Status, Timestamp};

/// What an agent may do beyond answering chats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AgentRole {
    /// Answers chats of the channels they work; oversees none.
    #[default]
    Agent,
    /// Answers chats as an agent and oversees these channels.
    Supervisor {
        /// The channels overseen.
        supervises: Vec<ChannelId>,
    },
    /// Oversees every channel.
    Admin,
}

impl AgentRole {
    /// Whether this role oversees `channel`.
    pub fn oversees(&self, channel: &ChannelId) -> bool {
        match self {
            Self::Agent => false,
            Self::Supervisor { supervises } => supervises.contains(channel),
            Self::Admin => true,
        }
    }

    /// Whether this role oversees any channel at all.
    pub fn oversees_any(&self) -> bool {
        match self {
            Self::Agent => false,
            Self::Supervisor { supervises } => !supervises.is_empty(),
            Self::Admin => true,
        }
    }

    /// The role's name as the configuration writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor { .. } => "supervisor",
            Self::Admin => "admin",
        }
    }
}

/// The most waiting chats a monitor lists (the count covers them all).
pub const MONITOR_WAITING_ROWS: usize = 200;

/// How often, by default, a watched channel's monitor is taken again
/// (`[limits] monitor_interval`): a new picture goes to its watchers only
/// if something but the clock changed.
pub const MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The most active chats a monitor lists (the count covers them all).
pub const MONITOR_ACTIVE_ROWS: usize = 1_000;

/// A channel as its supervisor sees it at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChannelMonitor {
    /// The channel.
    pub channel: ChannelId,
    /// When the picture was taken; waits and handle times run to here.
    pub at: Timestamp,
    /// How many chats wait, whether or not all are listed.
    pub waiting_count: u32,
    /// The waiting chats, the next to be answered first (at most
    /// [`MONITOR_WAITING_ROWS`]).
    pub waiting: Vec<WaitingChat>,
    /// How many chats of the channel are active, whether or not all are
    /// listed.
    pub active_count: u32,
    /// The active chats, longest held first (at most
    /// [`MONITOR_ACTIVE_ROWS`]).
    pub active: Vec<ActiveChat>,
    /// The channel's member agents, by id.
    pub agents: Vec<AgentLoad>,
}

impl ChannelMonitor {
    /// Whether `other` shows the same channel as this picture but for the
    /// clock: the same rows and counts, each row's `since` included, with
    /// only `at` and the waits and handle times run to it allowed to
    /// differ. A watcher is sent a new picture only when this is false;
    /// it runs waits and handle times on from `since` itself.
    pub fn same_but_clock(&self, other: &Self) -> bool {
        let waiting = |picture: &Self| {
            picture
                .waiting
                .iter()
                .map(|row| (row.chat, row.since, row.priority, row.customer.clone()))
                .collect::<Vec<_>>()
        };
        let active = |picture: &Self| {
            picture
                .active
                .iter()
                .map(|row| (row.chat, row.agent.clone(), row.since))
                .collect::<Vec<_>>()
        };
        self.channel == other.channel
            && self.waiting_count == other.waiting_count
            && self.active_count == other.active_count
            && self.agents == other.agents
            && waiting(self) == waiting(other)
            && active(self) == active(other)
    }
}

/// A waiting chat in a monitor.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WaitingChat {
    /// The chat.
    pub chat: ChatId,
    /// When it started waiting.
    pub since: Timestamp,
    /// How long it has waited, in milliseconds, when the picture was taken.
    pub wait_ms: u64,
    /// The priority it waits at, if one was set for it.
    pub priority: Option<Priority>,
    /// The name the customer gave, if any.
    pub customer: Option<String>,
}

/// An active chat in a monitor.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ActiveChat {
    /// The chat.
    pub chat: ChatId,
    /// The agent holding it.
    pub agent: AgentId,
    /// When that agent got it.
    pub since: Timestamp,
    /// How long that agent has held it, in milliseconds, when the picture
    /// was taken.
    pub handle_ms: u64,
}

/// A member agent of a channel in a monitor.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AgentLoad {
    /// The agent.
    pub agent: AgentId,
    /// Present or Absent.
    pub status: Status,
    /// Chat slots in use (held chats, offers and transfers standing).
    pub used: u64,
    /// The most chats the agent may hold.
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(at: u64) -> ChannelMonitor {
        ChannelMonitor {
            channel: ChannelId::new("support"),
            at: Timestamp(at),
            waiting_count: 1,
            waiting: vec![WaitingChat {
                chat: ChatId(2),
                since: Timestamp(100),
                wait_ms: at - 100,
                priority: None,
                customer: Some("Ada".into()),
            }],
            active_count: 1,
            active: vec![ActiveChat {
                chat: ChatId(1),
                agent: AgentId::new("alice"),
                since: Timestamp(50),
                handle_ms: at - 50,
            }],
            agents: vec![AgentLoad {
                agent: AgentId::new("alice"),
                status: Status::Present,
                used: 1,
                max: 4,
            }],
        }
    }

    #[test]
    fn only_the_clock_moving_is_no_change_of_the_picture() {
        let earlier = picture(1_000);
        let later = picture(9_000);
        assert_ne!(earlier, later);
        assert!(earlier.same_but_clock(&later));
        let changes: [fn(&mut ChannelMonitor); 9] = [
            |p| p.waiting_count = 2,
            |p| p.waiting[0].since = Timestamp(101),
            |p| p.waiting[0].priority = Some(Priority::High),
            |p| p.waiting.clear(),
            |p| p.active[0].agent = AgentId::new("bob"),
            |p| p.active[0].since = Timestamp(900),
            |p| p.active_count = 0,
            |p| p.agents[0].status = Status::Absent,
            |p| p.agents[0].used = 2,
        ];
        for (n, change) in changes.into_iter().enumerate() {
            let mut changed = later.clone();
            change(&mut changed);
            assert!(!earlier.same_but_clock(&changed), "change {n} went unseen");
        }
    }

    #[test]
    fn roles_oversee_their_channels_only() {
        let support = ChannelId::new("support");
        let sales = ChannelId::new("sales");
        assert!(!AgentRole::Agent.oversees(&support));
        assert!(!AgentRole::Agent.oversees_any());
        let supervisor = AgentRole::Supervisor {
            supervises: vec![support.clone()],
        };
        assert!(supervisor.oversees(&support));
        assert!(!supervisor.oversees(&sales));
        assert!(supervisor.oversees_any());
        assert!(AgentRole::Admin.oversees(&sales));
        assert!(
            !AgentRole::Supervisor {
                supervises: Vec::new()
            }
            .oversees_any()
        );
    }
}
