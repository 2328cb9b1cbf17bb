//! Per-channel settings.

use std::sync::Arc;
use std::time::Duration;

use crate::core::hours::BusinessHours;
use crate::core::ids::ChannelId;
use crate::core::queue::Priority;
use crate::core::retention::Retention;
use crate::core::routing::{Policy, Routing};
use crate::core::skills::SkillSet;

/// How long a message's author may edit or delete it unless the channel
/// says otherwise.
pub const DEFAULT_EDIT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The longest `edit_window` a channel may give.
pub const MAX_EDIT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// How a channel behaves. Built from the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSettings {
    /// The channel's name, used in every request that names a channel.
    pub id: ChannelId,
    /// How long a chat may wait unanswered before Present agents are alerted.
    pub alert_after: Duration,
    /// Whether customers get the offline form when no member agent is Present.
    pub offline_form: bool,
    /// Whether the end form lets a customer return to an ended chat.
    pub end_form: bool,
    /// How long after the end a customer may return, when `end_form` is on.
    pub return_window: Duration,
    /// Text posted to the customer as the chat's first system message.
    pub welcome: Option<String>,
    /// The most chats that may wait in this channel's queue at once.
    pub queue_limit: usize,
    /// Text shown above the offline form.
    pub offline_message: Option<String>,
    /// The most bytes a file shared in a chat of this channel may have.
    pub file_limit: u64,
    /// How long a waiting chat's customer may be gone (no connection
    /// receiving the chat) before the chat is abandoned.
    pub abandon_after: Duration,
    /// Whether customers may, or must, say who they are with an identity
    /// signed by the contact center's web backend.
    pub identity: IdentityPolicy,
    /// The secret those identities are signed with (HMAC-SHA256).
    pub identity_key: Option<IdentityKey>,
    /// Whether customers may rate a chat of this channel once it ended
    /// (within `return_window` of the end).
    pub satisfaction: bool,
    /// When the channel is open; always, if `None`. Outside its hours a
    /// new chat gets the offline form with the next opening time, and
    /// alerts for chats still waiting are held until it opens.
    pub hours: Option<Arc<BusinessHours>>,
    /// The priority a chat waits at unless an agent sets another.
    pub priority: Priority,
    /// How much waiting is worth one priority level (zero: priorities are
    /// strict); see [`Queue`](crate::core::Queue).
    pub priority_aging: Duration,
    /// Whether agents take the chats (pull) or the channel offers them
    /// (push).
    pub routing: Routing,
    /// Which agent a push channel offers a chat to.
    pub policy: Policy,
    /// How long an offered agent has to accept.
    pub offer_timeout: Duration,
    /// The skills customers may ask for when they start a chat.
    pub skills: SkillSet,
    /// The skills a chat needs unless its customer chose.
    pub default_skills: SkillSet,
    /// How long a chat waits for an agent with every skill it needs
    /// before any agent of the channel may take it.
    pub skill_fallback_after: Duration,
    /// How long a Present member agent may make no request before they
    /// turn Away; `None`: never.
    pub idle_after: Option<Duration>,
    /// What becomes of the chats an agent holds here once their
    /// connections stay gone past the presence grace.
    pub on_agent_gone: OnAgentGone,
    /// The first-response target: a chat that waits this long from its
    /// start without an agent taking it breaches it (counted, alerted and,
    /// on a push channel, offered to someone else); see
    /// [`core::sla`](crate::core::sla). `None`: no target.
    pub first_response_within: Option<Duration>,
    /// The highest priority a verified identity's claim may start a chat
    /// at; a higher claim is lowered to it.
    pub max_claimed_priority: Priority,
    /// How long after posting a message its author may edit or delete
    /// it (zero: never).
    pub edit_window: Duration,
    /// How long the channel keeps its ended chats, their files and its
    /// tickets (none: for ever; files then follow `[limits]
    /// file_retention`).
    pub retention: Retention,
}

/// What becomes of an agent's chats when the agent is gone: every
/// connection closed and none back within the presence grace. The
/// customer is told either way (a `AgentGone` chat event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnAgentGone {
    /// The chats stay with the agent, who finds them on coming back.
    #[default]
    Keep,
    /// The chats go back to the front of the channel's queue and the
    /// agent's slots are freed.
    Requeue,
}

/// Whether a channel takes signed customer identities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdentityPolicy {
    /// Customers are whoever they say they are.
    #[default]
    Off,
    /// A customer may prove who they are; others still chat, unverified.
    Accept,
    /// Only customers who prove who they are may start chats.
    Require,
}

/// A channel's identity secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey(pub Vec<u8>);

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(<redacted>)")
    }
}

impl ChannelSettings {
    /// Settings with the defaults a new channel gets.
    pub fn new(id: ChannelId) -> Self {
        Self {
            id,
            alert_after: Duration::from_secs(60),
            offline_form: true,
            end_form: false,
            return_window: Duration::from_secs(15 * 60),
            welcome: None,
            queue_limit: 10_000,
            offline_message: None,
            file_limit: 10 << 20,
            abandon_after: Duration::from_secs(120),
            identity: IdentityPolicy::Off,
            identity_key: None,
            satisfaction: false,
            hours: None,
            priority: Priority::Normal,
            priority_aging: Duration::from_secs(300),
            routing: Routing::Pull,
            policy: Policy::LeastBusy,
            offer_timeout: Duration::from_secs(30),
            skills: SkillSet::default(),
            default_skills: SkillSet::default(),
            skill_fallback_after: Duration::from_secs(60),
            idle_after: None,
            on_agent_gone: OnAgentGone::Keep,
            first_response_within: None,
            max_claimed_priority: Priority::High,
            edit_window: DEFAULT_EDIT_WINDOW,
            retention: Retention::default(),
        }
    }
}
