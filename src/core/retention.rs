//! How long a channel keeps what ended, what is due for erasure, and what
//! an admin's erasure of a contact (a GDPR request) removed.

use std::time::Duration;

use bincode::{Decode, Encode};

use crate::core::event::{ChatEvent, ChatEventKind, Customer, FileId, Identity};
use crate::core::ticket::TicketId;
use crate::core::time::Timestamp;

/// How long a channel keeps its ended chats, their files and its tickets;
/// `None` keeps them for ever (files then follow `[limits] file_retention`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Ended chats (session row, transcript, rating, contact links),
    /// counted from their end.
    pub chats: Option<Duration>,
    /// Files shared in ended chats, counted from the chat's end.
    pub files: Option<Duration>,
    /// Tickets, counted from when they were made.
    pub tickets: Option<Duration>,
}

impl Retention {
    /// How long the files of an ended chat are kept: the channel's own
    /// `file_retention`, else the hub's, and never beyond the chat itself.
    pub fn files_or(&self, global: Duration) -> Duration {
        let files = self.files.unwrap_or(global);
        match self.chats {
            Some(chats) => files.min(chats),
            None => files,
        }
    }

    /// Whether any kind is kept for a limited time.
    pub fn limits_any(&self) -> bool {
        self.chats.is_some() || self.files.is_some() || self.tickets.is_some()
    }
}

/// Whether something from `at` and kept `keep` is due for erasure at
/// `now`: strictly older than `keep`.
pub fn is_due(at: Timestamp, keep: Duration, now: Timestamp) -> bool {
    let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    now.0.saturating_sub(at.0) > keep
}

/// The longest a contact key may be (a verified id or an email with its
/// prefix fits well within it).
pub const MAX_CONTACT_KEY_BYTES: usize = 512;

/// The prefixes a contact key has (see `store::contact_keys`).
const KEY_PREFIXES: [&str; 4] = ["email:", "name:", "verified:id:", "verified:email:"];

/// Checks a contact key as an admin names it for erasure: one of the
/// kinds the hub links chats by, with something after its prefix, within
/// [`MAX_CONTACT_KEY_BYTES`].
pub fn check_contact_key(key: &str) -> Result<(), &'static str> {
    if key.len() > MAX_CONTACT_KEY_BYTES {
        return Err("a contact key has at most 512 bytes");
    }
    let rest = KEY_PREFIXES
        .iter()
        .find_map(|prefix| key.strip_prefix(prefix));
    match rest {
        Some(rest) if !rest.trim().is_empty() => Ok(()),
        Some(_) => Err("the contact key names no one"),
        None => Err(
            "a contact key begins with email:, name:, verified:id: or verified:email: (as the contact card shows it)",
        ),
    }
}

/// What a chat's stored events say an erasure must also reach: who the
/// customer was (for their contact links), the files shared and the
/// tickets made in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatTraces {
    /// Who the customer said they were, from the start.
    pub customer: Customer,
    /// The identity the backend vouched for, if any.
    pub verified: Option<Identity>,
    /// Files shared in the chat.
    pub files: Vec<FileId>,
    /// Tickets made from the chat.
    pub tickets: Vec<TicketId>,
}

impl ChatTraces {
    /// Gathers the traces from a chat's events, in any order.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a ChatEvent>) -> Self {
        let mut traces = Self::default();
        for event in events {
            traces.note(event);
        }
        traces
    }

    /// Takes one event into account.
    pub fn note(&mut self, event: &ChatEvent) {
        match &event.kind {
            ChatEventKind::Started { customer, .. } => self.customer = customer.clone(),
            ChatEventKind::Verified(identity) => self.verified = Some(identity.clone()),
            ChatEventKind::FileShared { file, .. } => self.files.push(file.id),
            ChatEventKind::TicketCreated { ticket, .. } => self.tickets.push(*ticket),
            _ => {}
        }
    }
}

/// What forgetting a contact erased, as the admin is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Forgotten {
    /// Ended chats (transcripts, session rows, ratings, webhook rows).
    pub chats: u32,
    /// Tickets (made from their chats or their offline forms).
    pub tickets: u32,
    /// Files shared in their chats, records and bytes.
    pub files: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{FileRef, Party};
    use crate::core::ids::{ChannelId, ChatId};

    #[test]
    fn due_only_once_strictly_older_than_kept() {
        let keep = Duration::from_millis(300);
        let at = Timestamp(1_000);
        assert!(!is_due(at, keep, Timestamp(1_000)));
        assert!(!is_due(at, keep, Timestamp(1_300)));
        assert!(is_due(at, keep, Timestamp(1_301)));
        // A clock that went back never makes anything due.
        assert!(!is_due(at, keep, Timestamp(500)));
        // Kept "for ever" in practice.
        assert!(!is_due(at, Duration::MAX, Timestamp(u64::MAX)));
    }

    #[test]
    fn files_follow_the_channel_then_the_hub_and_never_outlive_the_chat() {
        let global = Duration::from_secs(30);
        let none = Retention::default();
        assert_eq!(none.files_or(global), global);
        assert!(!none.limits_any());
        let own = Retention {
            files: Some(Duration::from_secs(5)),
            ..Retention::default()
        };
        assert_eq!(own.files_or(global), Duration::from_secs(5));
        let short_chats = Retention {
            chats: Some(Duration::from_secs(2)),
            files: Some(Duration::from_secs(5)),
            tickets: None,
        };
        assert_eq!(short_chats.files_or(global), Duration::from_secs(2));
        assert!(short_chats.limits_any());
    }

    #[test]
    fn contact_keys_must_name_someone_by_a_known_kind() {
        assert!(check_contact_key("email:bob@example.com").is_ok());
        assert!(check_contact_key("verified:id:42").is_ok());
        assert!(check_contact_key("verified:email:bob@example.com").is_ok());
        assert!(check_contact_key("name:bob").is_ok());
        assert!(check_contact_key("bob@example.com").is_err());
        assert!(check_contact_key("email:  ").is_err());
        assert!(check_contact_key("").is_err());
        let long = format!("email:{}", "a".repeat(MAX_CONTACT_KEY_BYTES));
        assert!(check_contact_key(&long).is_err());
    }

    #[test]
    fn traces_gather_customer_identity_files_and_tickets() {
        let chat = ChatId(7);
        let event = |seq, kind| ChatEvent {
            chat,
            seq,
            at: Timestamp(seq),
            kind,
        };
        let customer = Customer {
            name: Some("Bob".into()),
            email: Some("bob@example.com".into()),
        };
        let file = FileRef {
            id: FileId(3),
            name: "a.pdf".into(),
            content_type: "application/pdf".into(),
            size: 4,
        };
        let events = [
            event(
                1,
                ChatEventKind::Started {
                    channel: ChannelId::new("support"),
                    customer: customer.clone(),
                },
            ),
            event(
                2,
                ChatEventKind::FileShared {
                    from: Party::Customer,
                    file,
                },
            ),
            event(
                3,
                ChatEventKind::TicketCreated {
                    ticket: TicketId(9),
                    subject: "s".into(),
                },
            ),
        ];
        let traces = ChatTraces::of(&events);
        assert_eq!(traces.customer, customer);
        assert_eq!(traces.verified, None);
        assert_eq!(traces.files, vec![FileId(3)]);
        assert_eq!(traces.tickets, vec![TicketId(9)]);
    }
}
