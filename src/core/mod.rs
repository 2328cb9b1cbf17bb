//! Sans-IO domain state: ids, time, the channel queue, the chat lifecycle and
//! the small lock-free cells that connection tasks and actors share.
//!
//! Nothing in here reads a clock, touches a socket or knows about tokio or
//! ractor. Time is a [`Timestamp`] passed in by the caller, and every
//! operation returns what happened as a value, so unit, property and loom tests
//! drive this layer directly.

pub mod capacity;
#[cfg(feature = "hub")]
pub mod channel;
pub mod chat;
pub mod claim;
pub mod contact;
pub mod edits;
pub mod event;
pub mod files;
pub mod gate;
pub mod hex;
#[cfg(feature = "hub")]
pub mod hours;
pub mod ids;
pub mod knowledge;
pub mod lifecycle;
pub mod limits;
pub mod partition;
pub mod place;
pub mod presence;
pub mod queue;
pub mod retention;
pub mod roles;
pub mod routing;
pub mod satisfaction;
pub mod skills;
#[cfg(feature = "hub")]
pub mod sla;
pub mod sync;
pub mod tags;
pub mod ticket;
pub mod time;
pub mod transcript;

pub use capacity::Capacity;
#[cfg(feature = "hub")]
pub use channel::{ChannelSettings, IdentityKey, IdentityPolicy, OnAgentGone};
pub use chat::{
    Chat, ChatError, ChatState, Marked, Posted, ReadMark, RestoreError, transcript_page,
};
pub use claim::{ClaimCell, Claimed, Claimer, OfferId, OfferLost, OfferRefused, Won};
pub use contact::{ContactCard, ContactChat};
pub use edits::apply_edits;
pub use event::{
    Alert, Assignment, ChatEvent, ChatEventKind, Customer, FileId, FileRef, Identity, Offer,
    OfferEnd, Party, QueueChange, QueueRow, QueueUpdate, SessionSummary,
};
pub use gate::{Gate, Publish};
#[cfg(feature = "hub")]
pub use hours::{BusinessHours, HoursError};
pub use ids::{AgentId, ChannelId, ChatId};
pub use knowledge::{ItemDraft, ItemId, ItemKind, ItemRef, KnowledgeItem, Scope};
pub use lifecycle::LifecycleKind;
pub use limits::{Limit, Limits, TokenBucket};
pub use place::{AnswerRate, Places, QueuePlace};
pub use presence::{AgentPresence, Membership, Presence, PresentCount, Status};
pub use queue::{Match, Priority, Queue, QueueError};
pub use retention::{ChatTraces, Forgotten, Retention};
pub use roles::{ActiveChat, AgentLoad, AgentRole, ChannelMonitor, WaitingChat};
pub use routing::{Candidate, Choice, Policy, Routing};
pub use satisfaction::{RatedSession, Rating, RatingError};
pub use skills::{SkillError, SkillSet};
pub use tags::{MAX_TAG_BYTES, MAX_TAGS, TagError, TaggedSession, normalize_tag};
pub use ticket::{
    FormError, FormField, OfflineForm, Ticket, TicketId, TicketSource, TicketSummary,
};
pub use time::Timestamp;
pub use transcript::Transcript;
