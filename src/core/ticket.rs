//! Tickets: requests made from an offline form or from a chat.

use bincode::{Decode, Encode};

use crate::core::chat::MAX_MESSAGE_BYTES;
use crate::core::event::{ChatEvent, Customer};
use crate::core::ids::{ChannelId, ChatId};
use crate::core::time::Timestamp;

/// A ticket, unique for the life of a hub's data folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct TicketId(pub u64);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ticket-{}", self.0)
    }
}

/// Where a ticket came from.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum TicketSource {
    /// A customer filled in the offline form.
    OfflineForm,
    /// An agent made it from a chat.
    Chat(ChatId),
}

/// A ticket with everything attached.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Ticket {
    /// The ticket.
    pub id: TicketId,
    /// The channel it belongs to.
    pub channel: ChannelId,
    /// Where it came from.
    pub source: TicketSource,
    /// Who it is for.
    pub customer: Customer,
    /// A one-line subject.
    pub subject: String,
    /// The customer's message (offline form) or the agent's note.
    pub message: String,
    /// The chat's transcript, for tickets made from a chat.
    pub transcript: Vec<ChatEvent>,
    /// When it was made.
    pub created: Timestamp,
}

/// A ticket as listed: without the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TicketSummary {
    /// The ticket.
    pub id: TicketId,
    /// The channel it belongs to.
    pub channel: ChannelId,
    /// Where it came from.
    pub source: TicketSource,
    /// Who it is for.
    pub customer: Customer,
    /// A one-line subject.
    pub subject: String,
    /// When it was made.
    pub created: Timestamp,
}

impl Ticket {
    /// The list row of this ticket.
    pub fn summary(&self) -> TicketSummary {
        TicketSummary {
            id: self.id,
            channel: self.channel.clone(),
            source: self.source.clone(),
            customer: self.customer.clone(),
            subject: self.subject.clone(),
            created: self.created,
        }
    }
}

/// A field the offline form asks for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct FormField {
    /// The field's key: `name`, `email` or `message`.
    pub key: String,
    /// Whether the form is refused without it.
    pub required: bool,
}

/// What a customer gets instead of a queue place when nobody is Present.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OfflineForm {
    /// The channel whose form it is.
    pub channel: ChannelId,
    /// The text shown above the form.
    pub message: String,
    /// The fields to fill in.
    pub fields: Vec<FormField>,
    /// When the channel opens again, if it is closed by its business hours
    /// (`None` when it is open but nobody is Present, or it opens more
    /// than a year ahead).
    pub opens_at: Option<Timestamp>,
}

impl OfflineForm {
    /// The offline form of `channel`: name (optional), email and message.
    pub fn for_channel(channel: ChannelId, message: Option<&str>) -> Self {
        Self {
            channel,
            message: message
                .unwrap_or(
                    "No agent is available right now. Leave a message and we will get back to you.",
                )
                .to_owned(),
            fields: [("name", false), ("email", true), ("message", true)]
                .into_iter()
                .map(|(key, required)| FormField {
                    key: key.into(),
                    required,
                })
                .collect(),
            opens_at: None,
        }
    }

    /// The form of a channel closed by its business hours until `opens_at`.
    pub fn closed_until(
        channel: ChannelId,
        message: Option<&str>,
        opens_at: Option<Timestamp>,
    ) -> Self {
        Self {
            opens_at,
            ..Self::for_channel(
                channel,
                Some(message.unwrap_or(
                    "We are closed right now. Leave a message and we will get back to you.",
                )),
            )
        }
    }
}

/// Why an offline form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The email is missing or not an address.
    #[error("an email address like name@example.com is needed")]
    Email,
    /// The message is empty.
    #[error("the message is empty")]
    EmptyMessage,
    /// A field holds control or bidirectional-formatting characters
    /// (which could make what an agent reads differ from what was sent).
    #[error("{field} may not hold control or bidirectional formatting characters")]
    Unprintable {
        /// The field.
        field: &'static str,
    },
    /// A field is longer than allowed.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
}

/// The most bytes of transcript (text, plus 64 bytes an
/// event) that a ticket made from a chat carries, so that a ticket always
/// fits one answer.
pub const TICKET_TRANSCRIPT_BYTES: u64 = 512 << 10;

/// What an event costs beyond its text, for [`TICKET_TRANSCRIPT_BYTES`].
const EVENT_OVERHEAD_BYTES: u64 = 64;

/// The transcript a ticket made from a chat carries: the whole of it if it
/// fits [`TICKET_TRANSCRIPT_BYTES`], otherwise the chat's first event and
/// the newest events that fit; with how many were left out. Private notes
/// stay with the chat: a ticket is answered to the customer, so it never
/// carries them (nor counts them as left out). Messages show their latest
/// text, deleted ones as deleted ([`apply_edits`](crate::core::apply_edits)).
pub fn ticket_transcript(events: &crate::core::Transcript) -> (Vec<ChatEvent>, usize) {
    let cost = |event: &ChatEvent| event.text_bytes() + EVENT_OVERHEAD_BYTES;
    let shown: Vec<ChatEvent> = crate::core::apply_edits(events.iter())
        .into_iter()
        .filter(|event| !event.kind.is_for_agents_only())
        .collect();
    let total: u64 = shown.iter().map(cost).sum();
    if total <= TICKET_TRANSCRIPT_BYTES {
        return (shown, 0);
    }
    let Some((first, rest)) = shown.split_first() else {
        return (Vec::new(), 0);
    };
    let mut budget = TICKET_TRANSCRIPT_BYTES.saturating_sub(cost(first));
    let mut newest: Vec<ChatEvent> = Vec::new();
    for event in rest.iter().rev() {
        let cost = cost(event);
        if cost > budget {
            break;
        }
        budget -= cost;
        newest.push(event.clone());
    }
    let left_out = rest.len() - newest.len();
    let mut kept = Vec::with_capacity(newest.len() + 1);
    kept.push(first.clone());
    kept.extend(newest.into_iter().rev());
    (kept, left_out)
}

/// The longest name or email accepted.
pub const MAX_FIELD_BYTES: usize = 256;

/// Whether `text` holds a control character or a bidirectional
/// formatting one.
fn unprintable(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() || crate::core::files::is_bidi_control(c))
}

/// Checks what a customer says of themselves (on the offline form and
/// when starting a chat): a name and an email of at most
/// [`MAX_FIELD_BYTES`] without control or bidirectional formatting
/// characters (an agent sees them as sent), and an email that looks like
/// an address.
pub fn check_customer(name: Option<&str>, email: Option<&str>) -> Result<(), FormError> {
    if name.is_some_and(|name| name.len() > MAX_FIELD_BYTES) {
        return Err(FormError::TooLong {
            field: "name",
            max: MAX_FIELD_BYTES,
        });
    }
    if name.is_some_and(unprintable) {
        return Err(FormError::Unprintable { field: "name" });
    }
    let Some(email) = email else {
        return Ok(());
    };
    if email.len() > MAX_FIELD_BYTES {
        return Err(FormError::TooLong {
            field: "email",
            max: MAX_FIELD_BYTES,
        });
    }
    let email_ok = match email.trim().split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    };
    if unprintable(email) {
        return Err(FormError::Unprintable { field: "email" });
    }
    if !email_ok || email.chars().any(char::is_whitespace) {
        return Err(FormError::Email);
    }
    Ok(())
}

/// Checks an offline form submission.
pub fn check_offline_form(name: Option<&str>, email: &str, message: &str) -> Result<(), FormError> {
    check_customer(name, Some(email))?;
    if message.trim().is_empty() {
        return Err(FormError::EmptyMessage);
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(FormError::TooLong {
            field: "message",
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_chat_gives_a_ticket_its_start_and_newest_events_within_the_budget() {
        let mut short = crate::core::Transcript::new();
        for seq in 1..=10 {
            short.push(ChatEvent::customer_message(1, seq, "hello"));
        }
        let (kept, left_out) = ticket_transcript(&short);
        assert_eq!((kept.len(), left_out), (10, 0));

        let mut long = crate::core::Transcript::new();
        let text = "x".repeat(16_000);
        for seq in 1..=200 {
            long.push(ChatEvent::customer_message(1, seq, text.clone()));
        }
        let (kept, left_out) = ticket_transcript(&long);
        let bytes: u64 = kept.iter().map(|e| e.text_bytes() + 64).sum();
        assert!(bytes <= TICKET_TRANSCRIPT_BYTES, "{bytes}");
        assert_eq!(kept[0].seq, 1, "the chat's first event stays");
        assert_eq!(kept.last().unwrap().seq, 200, "the newest stays");
        assert_eq!(kept.len() + left_out, 200);
        assert!(
            kept.windows(2).skip(1).all(|w| w[1].seq == w[0].seq + 1),
            "the newest events kept are consecutive"
        );
    }

    #[test]
    fn names_and_emails_with_control_or_bidi_characters_are_refused() {
        // A right-to-left override would show "Ada" followed by reversed
        // text; a newline or an escape would break an agent's display.
        for name in [
            "Ada\u{202e}nimda",
            "Ada\nAdmin",
            "Ada\u{1b}[31m",
            "\u{2066}Ada",
        ] {
            assert_eq!(
                check_customer(Some(name), None),
                Err(FormError::Unprintable { field: "name" }),
                "{name:?}"
            );
        }
        assert_eq!(
            check_customer(None, Some("ada@exa\u{202e}mple.com")),
            Err(FormError::Unprintable { field: "email" })
        );
        // Letters of any script, accents and emoji are names.
        for name in ["Ada Lovelace", "Åsa Öberg", "محمد", "李雷", "Zoë 🙂"] {
            assert_eq!(check_customer(Some(name), Some("a@b.co")), Ok(()), "{name}");
        }
    }

    #[test]
    fn offline_forms_need_an_address_and_a_message() {
        assert_eq!(
            check_offline_form(Some("Ada"), "ada@example.com", "call me 📞"),
            Ok(())
        );
        assert_eq!(check_offline_form(None, "ada@example.com", "hi"), Ok(()));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada @example.com",
            "ada@.com",
        ] {
            assert_eq!(
                check_offline_form(None, bad, "hi"),
                Err(FormError::Email),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_offline_form(None, "a@b.se", " "),
            Err(FormError::EmptyMessage)
        );
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        assert!(matches!(
            check_offline_form(Some(&long), "a@b.se", "hi"),
            Err(FormError::TooLong { field: "name", .. })
        ));
    }
}
