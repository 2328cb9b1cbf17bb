//! The `[[channel]]` and `[[agent]]` tables.

use std::sync::Arc;

use crate::core::{BusinessHours, HoursError, Priority};

use super::*;

/// Whether a channel takes signed customer identities: `"off"` (the
/// default), `"accept"` or `"require"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Customers are whoever they say they are.
    #[default]
    Off,
    /// A customer may prove who they are.
    Accept,
    /// Only customers who prove who they are may start chats.
    Require,
}

/// How a channel's chats reach agents: `"pull"` (the default: agents take
/// them) or `"push"` (the channel offers each chat to one agent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    /// Agents take chats (get-next, pick).
    #[default]
    Pull,
    /// The channel offers chats to agents.
    Push,
}

/// Which agent a push channel offers a chat to: `"least_busy"` (the
/// default) or `"round_robin"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Fewest chats held, then longest since the last assignment.
    #[default]
    LeastBusy,
    /// The next agent after the one offered last.
    RoundRobin,
}

/// What becomes of a gone agent's chats: `"keep"` (the default: they
/// stay with the agent) or `"requeue"` (back to the front of the queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentGoneMode {
    /// The chats stay with the agent.
    #[default]
    Keep,
    /// The chats go back to the front of the queue.
    Requeue,
}

/// One `[[channel]]` table. `Debug` leaves the identity secret out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The channel's name, e.g. `support`.
    pub name: String,
    /// How long a chat may wait before Present agents are alerted: `"60s"`
    /// (or, as before, `alert_after_secs = 60`).
    #[serde(
        default = "default_alert_after",
        alias = "alert_after_secs",
        deserialize_with = "duration"
    )]
    pub alert_after: Duration,
    /// Offer the offline form when no member agent is Present.
    #[serde(default = "yes")]
    pub offline_form: bool,
    /// Let customers return to an ended chat.
    #[serde(default)]
    pub end_form: bool,
    /// How long after the end a customer may return: `"15m"` (or, as
    /// before, `return_window_secs = 900`).
    #[serde(
        default = "default_return_window",
        alias = "return_window_secs",
        deserialize_with = "duration"
    )]
    pub return_window: Duration,
    /// Posted to the customer when a chat starts.
    #[serde(default)]
    pub welcome: Option<String>,
    /// The most chats that may wait at once.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Text shown above the offline form.
    #[serde(default)]
    pub offline_message: Option<String>,
    /// The most bytes a file shared in a chat may have.
    #[serde(default = "default_file_limit")]
    pub file_limit_bytes: u64,
    /// How long a waiting chat's customer may be gone before the chat is
    /// abandoned (it leaves the queue and its alerts are cleared).
    #[serde(default = "default_abandon_after", with = "humantime_serde")]
    pub abandon_after: Duration,
    /// Signed customer identities: `"off"`, `"accept"` or `"require"`.
    #[serde(default)]
    pub identity: IdentityMode,
    /// The secret the contact center's web backend signs identities with
    /// (HMAC-SHA256, at least 32 bytes); needed unless `identity = "off"`.
    #[serde(default)]
    pub identity_secret: Option<String>,
    /// Let customers rate an ended chat (1 to 5, with a comment) within
    /// `return_window` of its end.
    #[serde(default)]
    pub satisfaction: bool,
    /// When the channel is open (`[channel.hours]`); always, if absent.
    #[serde(default)]
    pub hours: Option<Hours>,
    /// The priority a chat waits at unless an agent sets another: `"low"`,
    /// `"normal"` (the default), `"high"` or `"urgent"`.
    #[serde(default)]
    pub priority: Priority,
    /// How much waiting is worth one priority level, so that no chat
    /// waits for ever behind newer higher-priority ones: `"5m"` (the
    /// default); `"0s"` makes priorities strict.
    #[serde(default = "default_priority_aging", with = "humantime_serde")]
    pub priority_aging: Duration,
    /// `"pull"` (agents take chats) or `"push"` (chats are offered).
    #[serde(default)]
    pub routing: RoutingMode,
    /// For push routing: `"least_busy"` or `"round_robin"`.
    #[serde(default)]
    pub policy: PolicyMode,
    /// For push routing: how long an agent has to accept an offer, `"30s"`
    /// (1 s to 10 min).
    #[serde(default = "default_offer_timeout", with = "humantime_serde")]
    pub offer_timeout: Duration,
    /// The skills customers may ask for when they start a chat.
    #[serde(default)]
    pub skills: Vec<String>,
    /// The skills the channel's chats need unless the customer chose.
    #[serde(default)]
    pub default_skills: Vec<String>,
    /// How long a chat waits for an agent with every skill it needs
    /// before any agent of the channel may take it: `"60s"` (the default).
    #[serde(default = "default_skill_fallback", with = "humantime_serde")]
    pub skill_fallback_after: Duration,
    /// How long a Present member agent may make no request before they
    /// turn Away (offered nothing, not counted Present, keeping their
    /// chats), e.g. `"10m"`; absent (the default): never. At least 100 ms.
    #[serde(default, with = "humantime_serde")]
    pub idle_after: Option<Duration>,
    /// What becomes of the chats an agent holds here once their
    /// connections stay gone past `presence_grace`: `"keep"` (the default)
    /// or `"requeue"` (back to the front of the queue).
    #[serde(default)]
    pub on_agent_gone: AgentGoneMode,
    /// The first-response target: how long a chat may wait from its start
    /// before an agent takes it, e.g. `"2m"` (1 s to 24 h); none if absent.
    /// A breach is counted in `chathub_sla_breaches_total`, raises the
    /// unanswered alert and, with push routing, offers the chat to another
    /// agent.
    #[serde(default, with = "humantime_serde")]
    pub first_response_within: Option<Duration>,
    /// The highest priority a verified identity's signed claim may start a
    /// chat at (a higher claim is lowered to it): `"high"` (the default),
    /// or `"low"`, `"normal"`, `"urgent"`.
    #[serde(default = "default_max_claimed_priority")]
    pub max_claimed_priority: Priority,
    /// How long after posting a message its author may edit or delete
    /// it: `"15m"` (the default); `"0s"` turns edits off; at most `"24h"`.
    #[serde(default = "default_edit_window", with = "humantime_serde")]
    pub edit_window: Duration,
    /// How long ended chats (transcripts, session rows, ratings) are kept
    /// after their end, e.g. `"90d"`; for ever if absent.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How long files shared in ended chats are kept after the chat's end;
    /// `[limits] file_retention` if absent.
    #[serde(default, with = "humantime_serde")]
    pub file_retention: Option<Duration>,
    /// How long tickets are kept after they were made; for ever if absent.
    #[serde(default, with = "humantime_serde")]
    pub ticket_retention: Option<Duration>,
    /// In a cluster, the partition the channel's chats live in; unset, one
    /// chosen from its name. Channels that share agents must share a
    /// partition.
    #[serde(default)]
    pub partition: Option<u32>,
}

pub(super) fn default_max_claimed_priority() -> Priority {
    Priority::High
}

pub(super) fn default_edit_window() -> Duration {
    crate::core::channel::DEFAULT_EDIT_WINDOW
}

pub(super) fn default_skill_fallback() -> Duration {
    Duration::from_secs(60)
}

pub(super) fn default_priority_aging() -> Duration {
    Duration::from_secs(300)
}

/// A `[channel.hours]` table, checked as it is read: a time zone, each
/// weekday's opening spans and the holidays.
///
/// ```toml
/// [channel.hours]
/// time_zone = "Europe/Paris"
/// monday = ["09:00-12:30", "13:30-18:00"]
/// saturday = ["10:00-14:00"]
/// holidays = ["2026-12-25"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HoursTable")]
pub struct Hours(pub Arc<BusinessHours>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursTable {
    time_zone: String,
    #[serde(default)]
    monday: Vec<String>,
    #[serde(default)]
    tuesday: Vec<String>,
    #[serde(default)]
    wednesday: Vec<String>,
    #[serde(default)]
    thursday: Vec<String>,
    #[serde(default)]
    friday: Vec<String>,
    #[serde(default)]
    saturday: Vec<String>,
    #[serde(default)]
    sunday: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

impl TryFrom<HoursTable> for Hours {
    type Error = HoursError;

    fn try_from(table: HoursTable) -> Result<Self, HoursError> {
        let week = [
            table.monday.as_slice(),
            &table.tuesday,
            &table.wednesday,
            &table.thursday,
            &table.friday,
            &table.saturday,
            &table.sunday,
        ];
        BusinessHours::new(&table.time_zone, week, &table.holidays)
            .map(|hours| Self(Arc::new(hours)))
    }
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("alert_after", &self.alert_after)
            .field("offline_form", &self.offline_form)
            .field("end_form", &self.end_form)
            .field("return_window", &self.return_window)
            .field("welcome", &self.welcome)
            .field("queue_limit", &self.queue_limit)
            .field("offline_message", &self.offline_message)
            .field("file_limit_bytes", &self.file_limit_bytes)
            .field("abandon_after", &self.abandon_after)
            .field("identity", &self.identity)
            .field(
                "identity_secret",
                &self.identity_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("satisfaction", &self.satisfaction)
            .field("hours", &self.hours)
            .field("priority", &self.priority)
            .field("priority_aging", &self.priority_aging)
            .field("routing", &self.routing)
            .field("policy", &self.policy)
            .field("offer_timeout", &self.offer_timeout)
            .field("skills", &self.skills)
            .field("default_skills", &self.default_skills)
            .field("skill_fallback_after", &self.skill_fallback_after)
            .field("idle_after", &self.idle_after)
            .field("on_agent_gone", &self.on_agent_gone)
            .field("first_response_within", &self.first_response_within)
            .field("max_claimed_priority", &self.max_claimed_priority)
            .field("edit_window", &self.edit_window)
            .field("retention", &self.retention)
            .field("file_retention", &self.file_retention)
            .field("ticket_retention", &self.ticket_retention)
            .field("partition", &self.partition)
            .finish()
    }
}

/// One `[[agent]]` table. `Debug` leaves the token out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFileConfig {
    /// Sign-in name: letters, digits, `.`, `_` and `-`.
    pub id: String,
    /// Display name; the id if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The SHA-256 digest of the sign-in token, `sha256:<64 hex digits>`,
    /// as `chathub token` prints it: the hub never needs the token itself.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// The sign-in token itself (kept for compatibility; prefer
    /// `token_hash`). With neither, a token is generated on first start
    /// and kept in `<data_dir>/agent-tokens/<id>.token`.
    #[serde(default)]
    pub token: Option<String>,
    /// Channels the agent works; all channels if absent.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// The most chats the agent may hold at once.
    #[serde(default = "default_capacity")]
    pub capacity: u64,
    /// What the agent may do beyond answering chats.
    #[serde(default)]
    pub role: RoleName,
    /// The channels a supervisor oversees (supervisors only; admins
    /// oversee every channel).
    #[serde(default)]
    pub supervises: Option<Vec<String>>,
    /// What the agent can do, e.g. `["billing", "french"]`: chats that
    /// need skills go to agents who have them all first.
    #[serde(default)]
    pub skills: Vec<String>,
}

/// `role = "agent" | "supervisor" | "admin"` of an `[[agent]]` table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Answers chats.
    #[default]
    Agent,
    /// Answers chats and oversees the channels in `supervises`.
    Supervisor,
    /// Oversees every channel.
    Admin,
}

impl std::fmt::Debug for AgentFileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFileConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token_hash", &self.token_hash)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("channels", &self.channels)
            .field("capacity", &self.capacity)
            .field("role", &self.role)
            .field("supervises", &self.supervises)
            .field("skills", &self.skills)
            .finish()
    }
}

pub(super) fn default_alert_after() -> Duration {
    Duration::from_secs(60)
}

pub(super) fn default_return_window() -> Duration {
    Duration::from_secs(15 * 60)
}

pub(super) fn default_queue_limit() -> usize {
    10_000
}

pub(super) fn default_file_limit() -> u64 {
    10 << 20
}

pub(super) fn default_abandon_after() -> Duration {
    Duration::from_secs(120)
}

pub(super) fn default_offer_timeout() -> Duration {
    Duration::from_secs(30)
}

pub(super) fn default_capacity() -> u64 {
    4
}
