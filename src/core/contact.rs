//! A contact: the person behind a customer's email or name, and their
//! history with the contact center (the agent's side panel).

use bincode::{Decode, Encode};

use crate::core::event::Customer;
use crate::core::ids::{AgentId, ChannelId, ChatId};
use crate::core::satisfaction::Rating;
use crate::core::ticket::TicketSummary;
use crate::core::time::Timestamp;

/// One chat in a contact's history.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ContactChat {
    /// The chat.
    pub chat: ChatId,
    /// Its channel.
    pub channel: ChannelId,
    /// Who the customer said they were.
    pub customer: Customer,
    /// When it started.
    pub started: Timestamp,
    /// When it ended, if it has.
    pub ended: Option<Timestamp>,
    /// The agent who had it last.
    pub agent: Option<AgentId>,
    /// The customer's rating of it, if they gave one.
    pub rating: Option<Rating>,
}

/// The side panel of a contact: earlier chats, tickets, first and last
/// contact.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ContactCard {
    /// The key the contact was found by (`email:...` or `name:...`).
    pub key: String,
    /// Their chats, oldest first.
    pub chats: Vec<ContactChat>,
    /// Their tickets, oldest first.
    pub tickets: Vec<TicketSummary>,
    /// When they first got in touch.
    pub first_contact: Option<Timestamp>,
    /// When they last got in touch.
    pub last_contact: Option<Timestamp>,
}
