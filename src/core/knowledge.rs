//! Knowledge: quick replies, FAQ articles and reply templates, and the
//! placeholders filled in when one is sent into a chat.

use bincode::{Decode, Encode};

use crate::core::chat::MAX_MESSAGE_BYTES;
use crate::core::event::Customer;
use crate::core::ids::{AgentId, ChannelId};

/// A knowledge item, unique for the life of a hub's data folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct ItemId(pub u64);

/// A knowledge item named by id or, for quick replies, by shortcut.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ItemRef {
    /// By id.
    Id(ItemId),
    /// By shortcut, e.g. `/refund`.
    Shortcut(String),
}

/// What kind of knowledge an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ItemKind {
    /// A short predefined answer, usually sent by its shortcut.
    QuickReply,
    /// An article from the FAQ.
    Faq,
    /// A longer reply template.
    Template,
}

/// Who an item belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Scope {
    /// Shared by every agent of the channel.
    Channel(ChannelId),
    /// One agent's own.
    Personal(AgentId),
}

/// A quick reply, FAQ article or template.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct KnowledgeItem {
    /// The item.
    pub id: ItemId,
    /// What kind of item.
    pub kind: ItemKind,
    /// Whose it is.
    pub scope: Scope,
    /// A shortcut such as `/refund`, for quick replies.
    pub shortcut: Option<String>,
    /// The title shown in lists.
    pub title: String,
    /// The text, with placeholders such as `{customer.name}`.
    pub body: String,
}

/// What an item says, as given when creating or editing it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ItemDraft {
    /// What kind of item.
    pub kind: ItemKind,
    /// Whose it is.
    pub scope: Scope,
    /// A shortcut such as `/refund`.
    pub shortcut: Option<String>,
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
}

/// Why an item was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The title is empty or too long.
    #[error("a title needs 1 to {MAX_TITLE_BYTES} bytes")]
    Title,
    /// The body is empty or too long.
    #[error("a body needs 1 to {MAX_MESSAGE_BYTES} bytes")]
    Body,
    /// A shortcut must look like `/refund`.
    #[error("a shortcut is '/' and then 1 to 32 letters, digits, '-' or '_'")]
    Shortcut,
}

/// The longest title.
pub const MAX_TITLE_BYTES: usize = 200;

impl ItemDraft {
    /// Checks the draft's fields.
    pub fn check(&self) -> Result<(), ItemError> {
        if self.title.trim().is_empty() || self.title.len() > MAX_TITLE_BYTES {
            return Err(ItemError::Title);
        }
        if self.body.trim().is_empty() || self.body.len() > MAX_MESSAGE_BYTES {
            return Err(ItemError::Body);
        }
        if let Some(shortcut) = &self.shortcut {
            let name = shortcut.strip_prefix('/').ok_or(ItemError::Shortcut)?;
            let valid = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(ItemError::Shortcut);
            }
        }
        Ok(())
    }

    /// The item this draft describes, with its id.
    pub fn into_item(self, id: ItemId) -> KnowledgeItem {
        KnowledgeItem {
            id,
            kind: self.kind,
            scope: self.scope,
            shortcut: self.shortcut,
            title: self.title,
            body: self.body,
        }
    }
}

/// What placeholders are filled with.
#[derive(Clone, Debug)]
pub struct Placeholders<'a> {
    /// The chat's customer.
    pub customer: &'a Customer,
    /// The sending agent's display name.
    pub agent_name: &'a str,
    /// The chat's channel.
    pub channel: &'a ChannelId,
}

/// Fills `{customer.name}`, `{customer.email}`, `{agent.name}` and
/// `{channel}` in `body`. A customer who gave no name is "there" (so
/// "Hi {customer.name}" reads "Hi there"); unknown placeholders stay as
/// written.
pub fn fill(body: &str, with: &Placeholders<'_>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            out.push_str(after);
            return out;
        };
        let name = &after[1..close];
        let value = match name {
            "customer.name" => Some(with.customer.name.as_deref().unwrap_or("there")),
            "customer.email" => Some(with.customer.email.as_deref().unwrap_or("")),
            "agent.name" => Some(with.agent_name),
            "channel" => Some(with.channel.as_str()),
            _ => None,
        };
        match value {
            Some(value) => out.push_str(value),
            None => out.push_str(&after[..=close]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let customer = Customer {
            name: Some("Åsa".into()),
            email: Some("asa@example.com".into()),
        };
        let channel = ChannelId::new("support");
        let with = Placeholders {
            customer: &customer,
            agent_name: "Alice",
            channel: &channel,
        };
        assert_eq!(
            fill(
                "Hej {customer.name}! I'm {agent.name} from {channel} 😀 {unknown} {",
                &with
            ),
            "Hej Åsa! I'm Alice from support 😀 {unknown} {"
        );
        let anonymous = Customer::default();
        let with = Placeholders {
            customer: &anonymous,
            ..with
        };
        assert_eq!(fill("Hi {customer.name},", &with), "Hi there,");
    }

    #[test]
    fn drafts_are_checked() {
        let draft = ItemDraft {
            kind: ItemKind::QuickReply,
            scope: Scope::Channel(ChannelId::new("support")),
            shortcut: Some("/refund".into()),
            title: "Refunds".into(),
            body: "Refunds take 3 days.".into(),
        };
        assert_eq!(draft.check(), Ok(()));
        for bad in ["refund", "/", "/re fund", "/ref😀"] {
            let draft = ItemDraft {
                shortcut: Some(bad.into()),
                ..draft.clone()
            };
            assert_eq!(draft.check(), Err(ItemError::Shortcut), "{bad:?}");
        }
        let empty = ItemDraft {
            body: " ".into(),
            ..draft.clone()
        };
        assert_eq!(empty.check(), Err(ItemError::Body));
    }
}
