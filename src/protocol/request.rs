//! What is true of each request, whoever sends or serves it: its name, who
//! may send it, and whether sending it again after a lost answer is
//! harmless. The hub refuses a request its sender's role may not make; the
//! SDK sends again after a reconnect only what is safe to send again.

use crate::protocol::RequestBody;

/// Who may make a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Customers only.
    Customer,
    /// Signed-in agents only.
    Agent,
    /// Customers and agents.
    Either,
}

impl RequestBody {
    /// The request's name, as logs and error messages give it.
    pub fn name(&self) -> &'static str {
        self.facts().0
    }

    /// Who may make it.
    pub fn sender(&self) -> Sender {
        self.facts().1
    }

    /// Whether a request whose answer was lost can be sent again without a
    /// second effect: messages carry their client id, a start its secret,
    /// an end finds the chat ended, a read mark not beyond the last one
    /// changes nothing, a rating replaces itself, and reads change nothing. Taking a
    /// chat, transferring it, or making a ticket or an item would happen
    /// twice.
    pub fn safe_to_send_again(&self) -> bool {
        self.facts().2
    }

    fn facts(&self) -> (&'static str, Sender, bool) {
        use Sender::{Agent, Customer, Either};
        match self {
            Self::StartChat { .. } => ("StartChat", Customer, true),
            Self::Post { .. } => ("Post", Either, true),
            Self::Leave { .. } => ("Leave", Customer, true),
            Self::SetStatus { .. } => ("SetStatus", Agent, true),
            Self::GetNext { .. } => ("GetNext", Agent, false),
            Self::EndChat { .. } => ("EndChat", Agent, true),
            Self::RecentSessions { .. } => ("RecentSessions", Agent, true),
            Self::Transcript { .. } => ("Transcript", Agent, true),
            Self::Pick { .. } => ("Pick", Agent, false),
            Self::PresentAgents { .. } => ("PresentAgents", Agent, true),
            Self::SubmitOfflineForm { .. } => ("SubmitOfflineForm", Customer, false),
            Self::Tickets { .. } => ("Tickets", Agent, true),
            Self::Ticket { .. } => ("Ticket", Agent, true),
            Self::TransferToAgent { .. } => ("TransferToAgent", Agent, false),
            Self::TransferToChannel { .. } => ("TransferToChannel", Agent, false),
            Self::DeclineTransfer { .. } => ("DeclineTransfer", Agent, false),
            Self::CreateTicket { .. } => ("CreateTicket", Agent, false),
            Self::ReturnToChat { .. } => ("ReturnToChat", Customer, true),
            Self::Contact { .. } => ("Contact", Agent, true),
            Self::CreateItem(_) => ("CreateItem", Agent, false),
            Self::UpdateItem { .. } => ("UpdateItem", Agent, true),
            Self::DeleteItem { .. } => ("DeleteItem", Agent, false),
            Self::Items { .. } => ("Items", Agent, true),
            Self::InsertItem { .. } => ("InsertItem", Agent, true),
            Self::Identify { .. } => ("Identify", Customer, true),
            Self::MarkRead { .. } => ("MarkRead", Either, true),
            Self::Rate { .. } => ("Rate", Customer, true),
            Self::AddNote { .. } => ("AddNote", Agent, true),
            Self::SetPriority { .. } => ("SetPriority", Agent, true),
            Self::AcceptOffer { .. } => ("AcceptOffer", Agent, false),
            // Declining a declined (so ended) offer is refused, not repeated.
            Self::DeclineOffer { .. } => ("DeclineOffer", Agent, true),
            // Supervision: a read; a status set twice is set; a whisper
            // carries its client id; following (or unfollowing) twice is
            // following (or not) once.
            Self::Monitor { .. } => ("Monitor", Agent, true),
            Self::SetAgentStatus { .. } => ("SetAgentStatus", Agent, true),
            Self::Whisper { .. } => ("Whisper", Agent, true),
            Self::Follow { .. } => ("Follow", Agent, true),
            Self::Unfollow { .. } => ("Unfollow", Agent, true),
            // Sent again after it took effect, it would move the chat
            // from its new agent (or be refused as the same agent).
            Self::Reassign { .. } => ("Reassign", Agent, false),
            // Barging in (or leaving) twice is being in (or out) once.
            Self::BargeIn { .. } => ("BargeIn", Agent, true),
            Self::LeaveChat { .. } => ("LeaveChat", Agent, true),
            Self::StartChatNeeding { .. } => ("StartChatNeeding", Customer, true),
            Self::IdentifyClaiming { .. } => ("IdentifyClaiming", Customer, true),
            // A tag the chat carries (or lacks) changes nothing when sent
            // again.
            Self::AddTag { .. } => ("AddTag", Agent, true),
            Self::RemoveTag { .. } => ("RemoveTag", Agent, true),
            // Sent again, an edit would be stored twice and a deletion
            // refused as done.
            Self::EditMessage { .. } => ("EditMessage", Either, false),
            Self::DeleteMessage { .. } => ("DeleteMessage", Either, false),
            Self::RecentSessionsTagged { .. } => ("RecentSessionsTagged", Agent, true),
            // Forgetting again erases what a lost answer's first try left
            // (a contact erased in several commits) or finds nothing.
            Self::ForgetContact { .. } => ("ForgetContact", Agent, true),
            // Watching a watched channel (or unwatching one not watched)
            // changes nothing.
            Self::WatchMonitor { .. } => ("WatchMonitor", Agent, true),
            Self::UnwatchMonitor { .. } => ("UnwatchMonitor", Agent, true),
        }
    }
}
