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
    /// an end finds the chat ended, and reads change nothing. Taking a
    /// chat, transferring it, or making a ticket or an item would happen
    /// twice.
    pub fn safe_to_send_again(&self) -> bool {
        self.facts().2
    }

    fn facts(&self) -> (&'static str, Sender, bool) {
        use Sender::{Agent, Customer, Either};
        match self {
            RequestBody::StartChat { .. } => ("StartChat", Customer, true),
            RequestBody::Post { .. } => ("Post", Either, true),
            RequestBody::Leave { .. } => ("Leave", Customer, true),
            RequestBody::SetStatus { .. } => ("SetStatus", Agent, true),
            RequestBody::GetNext { .. } => ("GetNext", Agent, false),
            RequestBody::EndChat { .. } => ("EndChat", Agent, true),
            RequestBody::RecentSessions { .. } => ("RecentSessions", Agent, true),
            RequestBody::Transcript { .. } => ("Transcript", Agent, true),
            RequestBody::Pick { .. } => ("Pick", Agent, false),
            RequestBody::PresentAgents { .. } => ("PresentAgents", Agent, true),
            RequestBody::SubmitOfflineForm { .. } => ("SubmitOfflineForm", Customer, false),
            RequestBody::Tickets { .. } => ("Tickets", Agent, true),
            RequestBody::Ticket { .. } => ("Ticket", Agent, true),
            RequestBody::TransferToAgent { .. } => ("TransferToAgent", Agent, false),
            RequestBody::TransferToChannel { .. } => ("TransferToChannel", Agent, false),
            RequestBody::DeclineTransfer { .. } => ("DeclineTransfer", Agent, false),
            RequestBody::CreateTicket { .. } => ("CreateTicket", Agent, false),
            RequestBody::ReturnToChat { .. } => ("ReturnToChat", Customer, true),
            RequestBody::Contact { .. } => ("Contact", Agent, true),
            RequestBody::CreateItem(_) => ("CreateItem", Agent, false),
            RequestBody::UpdateItem { .. } => ("UpdateItem", Agent, true),
            RequestBody::DeleteItem { .. } => ("DeleteItem", Agent, false),
            RequestBody::Items { .. } => ("Items", Agent, true),
            RequestBody::InsertItem { .. } => ("InsertItem", Agent, true),
            RequestBody::Identify { .. } => ("Identify", Customer, true),
        }
    }
}
