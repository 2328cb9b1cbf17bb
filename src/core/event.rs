//! What happens in a chat and in a queue, as values that travel from the
//! actors to connected clients unchanged.

use bincode::{Decode, Encode};

use crate::core::ids::{AgentId, ChannelId, ChatId};
use crate::core::queue::Priority;
use crate::core::skills::SkillSet;
use crate::core::ticket::TicketId;
use crate::core::time::Timestamp;

/// What a customer says about themselves when starting a chat. Both fields
/// are optional; an email links the chat to a contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Customer {
    /// The name the customer typed, if any.
    pub name: Option<String>,
    /// The email the customer typed, if any.
    pub email: Option<String>,
}

/// Who caused a chat event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum Party {
    /// The chat's customer.
    Customer,
    /// An agent, by name.
    Agent(AgentId),
    /// The hub itself (welcome text, notices).
    System,
}

/// One numbered entry in a chat's transcript.
///
/// `seq` starts at 1 and grows by one per event of the chat, so a client can
/// tell a gap or a duplicate and resume after the last one it saw.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ChatEvent {
    /// The chat this event belongs to.
    pub chat: ChatId,
    /// Position in the chat's transcript, from 1.
    pub seq: u64,
    /// When the hub recorded it.
    pub at: Timestamp,
    /// What happened.
    pub kind: ChatEventKind,
}

#[cfg(test)]
impl ChatEvent {
    /// The customer's message `text` as event `seq` of chat `chat`, its
    /// client id and time the seq too: the event most tests need.
    pub(crate) fn customer_message(chat: u64, seq: u64, text: impl Into<String>) -> Self {
        Self {
            chat: ChatId(chat),
            seq,
            at: Timestamp(seq),
            kind: ChatEventKind::Message {
                from: Party::Customer,
                client_id: seq,
                text: text.into(),
            },
        }
    }
}

/// The kinds of chat events.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ChatEventKind {
    /// The customer started the chat on a channel; it is now queued.
    Started {
        /// The channel it was started on.
        channel: ChannelId,
        /// Who the customer said they are.
        customer: Customer,
    },
    /// A chat message. `client_id` is the sender's own id for it, so a
    /// retried send is recognised and stored once.
    Message {
        /// Who wrote it.
        from: Party,
        /// The sender's id for the message (0 for system messages).
        client_id: u64,
        /// The text, UTF-8, emoji and all.
        text: String,
    },
    /// An agent answered the chat.
    Assigned {
        /// The agent now handling the chat.
        agent: AgentId,
    },
    /// The chat ended.
    Ended {
        /// Who ended it: the agent, or the customer leaving.
        by: Party,
    },
    /// The agent handed the chat to another agent, who now has it.
    TransferredToAgent {
        /// The agent who had it.
        from: AgentId,
        /// The agent who has it now.
        to: AgentId,
    },
    /// The agent a chat was transferred to declined it: it went back to
    /// the agent who transferred it, or (`to: None`) to the queue.
    TransferDeclined {
        /// The agent who declined.
        by: AgentId,
        /// The agent who has it again, if any.
        to: Option<AgentId>,
    },
    /// The chat went (back) to a channel's queue, keeping its history.
    Requeued {
        /// The agent who sent it there; `None`: the hub put it back because
        /// its agent was gone (after [`ChatEventKind::AgentGone`]), at the
        /// front of its queue.
        by: Option<AgentId>,
        /// The channel whose queue it waits in now.
        channel: ChannelId,
    },
    /// A ticket was made from the chat.
    TicketCreated {
        /// The ticket.
        ticket: TicketId,
        /// Its subject.
        subject: String,
    },
    /// The customer came back through the end form: the chat is live again,
    /// with its previous agent or in the queue.
    Reopened {
        /// The agent who has it again, if any; otherwise it is queued.
        agent: Option<AgentId>,
    },
    /// A participant shared a file.
    FileShared {
        /// Who shared it.
        from: Party,
        /// The file.
        file: FileRef,
    },
    /// The customer is who the contact center's web backend signed them
    /// to be (see [`Identity`]).
    Verified(Identity),
    /// A participant has read the chat up to a seq: the customer, or the
    /// agent holding the chat. Each party's marks only rise.
    Read {
        /// Who read.
        by: Party,
        /// The last seq they have read.
        up_to: u64,
    },
    /// A private note: written by the agent holding the chat for
    /// themselves, later holders and supervisors. The customer never sees
    /// it; in its place they get [`ChatEventKind::Withheld`].
    Note {
        /// Who wrote it.
        by: AgentId,
        /// The writer's id for the note, so a retried note is stored once.
        client_id: u64,
        /// The text.
        text: String,
    },
    /// An agent set the priority the chat waits at (it keeps it when it is
    /// queued again). For agents only.
    Prioritized {
        /// Who set it.
        by: AgentId,
        /// The new priority.
        priority: Priority,
    },
    /// What the customer is shown in place of an event for agents only (a
    /// note): it keeps the customer's seqs consecutive, so a gap still
    /// means a lost event, and carries nothing of what it stands for. Never
    /// stored; the SDK does not hand it to the application.
    Withheld,
    /// A supervisor barged in: they take part in the chat beside its agent,
    /// posting messages the customer sees, until they leave or the chat
    /// ends. The customer sees this event (a supervisor joined).
    SupervisorJoined {
        /// The supervisor.
        supervisor: AgentId,
    },
    /// A supervisor who barged in left the chat (they asked to, or the
    /// chat ended: then one for each comes just before `Ended`).
    SupervisorLeft {
        /// The supervisor.
        supervisor: AgentId,
    },
    /// The skills an agent needs to be offered the chat or take it with
    /// get-next, until it has waited the channel's skill fallback: the
    /// customer's choice among the channel's skills, or the channel's
    /// defaults. Recorded at the start (never for a chat that needs none),
    /// it keeps them across restarts. For agents only.
    SkillsNeeded {
        /// The skills.
        skills: SkillSet,
    },
    /// The agent holding the chat lost every connection and did not come
    /// back within the hub's presence grace. What follows is the channel's
    /// `on_agent_gone`: with `"requeue"` a [`ChatEventKind::Requeued`] by
    /// nobody comes next in the same commit and the chat waits at the
    /// front of its queue; with `"keep"` the chat stays with the agent.
    /// The customer sees it either way.
    AgentGone {
        /// The agent who was holding the chat.
        agent: AgentId,
    },
    /// The chat starts at the priority its customer's verified identity
    /// claims (signed by the contact center's backend with the identity,
    /// lowered to the channel's `max_claimed_priority`). Recorded at the
    /// start, after `Verified`; it keeps the priority across restarts as
    /// `Prioritized` does. For agents only.
    PriorityClaimed {
        /// The priority the chat starts at.
        priority: Priority,
    },
    /// An agent (the holder, or a supervisor of the channel) put a tag on
    /// the chat. For agents only.
    Tagged {
        /// Who tagged it.
        by: AgentId,
        /// The tag, lowercased (see [`normalize_tag`](crate::core::normalize_tag)).
        tag: String,
    },
    /// An agent took a tag off the chat. For agents only.
    Untagged {
        /// Who took it off.
        by: AgentId,
        /// The tag.
        tag: String,
    },
    /// The author of message `seq` changed its text, within the channel's
    /// `edit_window`. The message's own event keeps what was first said;
    /// readers show this text in its place.
    Edited {
        /// The message's seq.
        seq: u64,
        /// Its text now.
        text: String,
    },
    /// The author of message `seq` deleted it, within the channel's
    /// `edit_window`. The message's own event stays in the log; readers
    /// show it as deleted.
    Deleted {
        /// The message's seq.
        seq: u64,
    },
    /// A supervisor of the chat's channel (or an admin) moved the chat
    /// from the agent holding it to another: the audit record of a
    /// reassign. The move itself is the [`ChatEventKind::TransferredToAgent`]
    /// right after it, in the same commit, which everyone (the customer
    /// too) sees as before. For agents only.
    Reassigned {
        /// The supervisor who reassigned the chat.
        by: AgentId,
        /// The agent who held it.
        from: AgentId,
        /// The agent it went to.
        to: AgentId,
    },
}

impl ChatEventKind {
    /// Whether only agents may see the event (the customer gets
    /// [`ChatEventKind::Withheld`] in its place).
    pub fn is_for_agents_only(&self) -> bool {
        matches!(
            self,
            Self::Note { .. }
                | Self::Prioritized { .. }
                | Self::SkillsNeeded { .. }
                | Self::PriorityClaimed { .. }
                | Self::Tagged { .. }
                | Self::Untagged { .. }
                | Self::Reassigned { .. }
        )
    }
}

/// Who a customer is, as the contact center's own web backend vouches:
/// its id for the customer, and their email if it gave one. Signed with the
/// channel's identity secret, so a stranger cannot claim to be someone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Identity {
    /// The backend's id for the customer.
    pub id: String,
    /// The customer's email, as the backend knows it.
    pub email: Option<String>,
}

impl ChatEvent {
    /// What the customer gets in place of this event if it is for agents
    /// only: a [`ChatEventKind::Withheld`] with the same seq and time and
    /// nothing else. `None`: the customer may see the event itself.
    pub fn withheld_for_customer(&self) -> Option<Self> {
        self.kind.is_for_agents_only().then_some(Self {
            chat: self.chat,
            seq: self.seq,
            at: self.at,
            kind: ChatEventKind::Withheld,
        })
    }

    /// The bytes of text the event carries (message text, names, subjects),
    /// which is what makes one event larger than another.
    pub fn text_bytes(&self) -> u64 {
        let bytes = match &self.kind {
            ChatEventKind::Started { customer, .. } => {
                customer.name.as_ref().map_or(0, String::len)
                    + customer.email.as_ref().map_or(0, String::len)
            }
            ChatEventKind::Message { text, .. }
            | ChatEventKind::Note { text, .. }
            | ChatEventKind::Edited { text, .. } => text.len(),
            ChatEventKind::Tagged { tag, .. } | ChatEventKind::Untagged { tag, .. } => tag.len(),
            ChatEventKind::TicketCreated { subject, .. } => subject.len(),
            ChatEventKind::FileShared { file, .. } => file.name.len() + file.content_type.len(),
            ChatEventKind::Verified(identity) => {
                identity.id.len() + identity.email.as_ref().map_or(0, String::len)
            }
            _ => 0,
        };
        bytes as u64
    }
}

/// A stored file, as chat participants see it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FileRef {
    /// The file's id, to download it.
    pub id: FileId,
    /// Its name as the sender gave it.
    pub name: String,
    /// Its content type, e.g. `image/png`.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A stored file, unique for the life of a hub's data folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct FileId(pub u64);

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file-{}", self.0)
    }
}

/// One row of a channel's incoming list: a chat waiting to be answered.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueueRow {
    /// The waiting chat.
    pub chat: ChatId,
    /// The channel whose queue it waits in.
    pub channel: ChannelId,
    /// Who the customer said they are.
    pub customer: Customer,
    /// The customer's first message.
    pub first_message: String,
    /// When it was enqueued.
    pub since: Timestamp,
    /// The backend's id for the customer, if their identity is verified.
    pub verified: Option<String>,
    /// The priority an agent set for the chat; the channel's
    /// (`[[channel]] priority`) if `None`.
    pub priority: Option<Priority>,
}

/// A change to a channel's queue, pushed to the agents who watch it.
///
/// `waiting` is the badge / "in queue" count after the change. `version`
/// grows by one per change, so a client that got a snapshot ignores older
/// deltas.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueueUpdate {
    /// The channel whose queue changed.
    pub channel: ChannelId,
    /// The queue's change counter after this change.
    pub version: u64,
    /// How many chats wait unanswered.
    pub waiting: u32,
    /// What changed.
    pub change: QueueChange,
}

/// What a [`QueueUpdate`] changed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum QueueChange {
    /// The whole incoming list, oldest first (at most the first
    /// [`SNAPSHOT_ROWS`] rows; `waiting` still counts them all).
    Snapshot(Vec<QueueRow>),
    /// A chat joined the queue.
    Added(QueueRow),
    /// A chat left the queue: answered, picked or abandoned.
    Removed(ChatId),
    /// A waiting chat's row changed (an agent set its priority).
    Changed(QueueRow),
}

/// The most rows a queue snapshot carries.
pub const SNAPSHOT_ROWS: usize = 500;

/// An ended chat as listed in recent sessions and a contact's history.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionSummary {
    /// The chat.
    pub chat: ChatId,
    /// The channel it was started on.
    pub channel: ChannelId,
    /// Who the customer said they are.
    pub customer: Customer,
    /// The agent who answered it, if anyone did.
    pub agent: Option<AgentId>,
    /// When the customer started it.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Timestamp,
    /// Who ended it.
    pub ended_by: Party,
    /// How many events its transcript holds.
    pub events: u64,
}

/// A chat an agent just answered.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Assignment {
    /// The chat.
    pub chat: ChatId,
    /// Its channel.
    pub channel: ChannelId,
    /// Who the customer said they are.
    pub customer: Customer,
    /// The customer's first message.
    pub first_message: String,
    /// When the chat was enqueued.
    pub waiting_since: Timestamp,
}

/// A chat has waited unanswered for its channel's `alert_after`. Sent to
/// the channel's Present agents; cleared when the chat is answered or
/// abandoned.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Alert {
    /// The waiting chat's incoming-list row.
    pub row: QueueRow,
    /// When the alert was raised.
    pub raised: Timestamp,
}

/// A waiting chat offered to one agent by a push channel: the agent
/// accepts or declines it before it expires.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Offer {
    /// The chat's incoming-list row (its chat and channel included).
    pub row: QueueRow,
    /// How long the agent has left to accept, in milliseconds.
    pub expires_in_ms: u64,
}

/// Why an offer ended without the offered agent taking the chat, or that it
/// did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum OfferEnd {
    /// The offered agent accepted it (the agent's other connections learn
    /// the offer is over).
    Accepted,
    /// Someone took the chat first (a pick, get-next).
    Taken,
    /// The offer's time ran out.
    Expired,
    /// The offered agent declined it.
    Declined,
    /// The customer left.
    Left,
    /// The agent can no longer take it: Absent, no longer a member, or the
    /// chat cannot be given now.
    Withdrawn,
}

impl OfferEnd {
    /// The outcome's name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Taken | Self::Left | Self::Withdrawn => "withdrawn",
            Self::Expired => "timed_out",
            Self::Declined => "declined",
        }
    }
}

/// The most characters of the first message an incoming-list row shows.
pub const PREVIEW_CHARS: usize = 200;

/// The first message as an incoming-list row shows it: at most
/// [`PREVIEW_CHARS`] characters, cut on a character boundary.
pub fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_cut_long_text_on_a_character_boundary() {
        assert_eq!(preview("short 😀"), "short 😀");
        let long = "😀".repeat(PREVIEW_CHARS + 5);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
