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
