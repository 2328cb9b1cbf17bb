//! Agent presence.

use bincode::{Decode, Encode};

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
