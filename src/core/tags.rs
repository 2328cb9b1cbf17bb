//! Tags agents put on a chat: what a tag may be, how many a chat may
//! carry, and the recent-sessions row that lists them. Pure.
//!
//! A tag is added and removed by the chat's `Tagged` and `Untagged`
//! events (for agents only, like notes), so a chat's tag set is whatever
//! its events say; it is stored beside the ended session so recent
//! sessions can be filtered by tag without reading transcripts.

use bincode::{Decode, Encode};

use crate::core::files::is_bidi_control;
use crate::core::satisfaction::RatedSession;

/// The longest tag, in bytes of UTF-8.
pub const MAX_TAG_BYTES: usize = 32;

/// The most tags one chat may carry at once.
pub const MAX_TAGS: usize = 20;

/// Why a tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Empty, longer than [`MAX_TAG_BYTES`], or with a character outside
    /// letters, digits, `-`, `_`, `.`, `:`, `/` and inner spaces.
    #[error("a tag is 1 to {MAX_TAG_BYTES} bytes of letters, digits, spaces and -_.:/, not {0:?}")]
    Invalid(String),
    /// The chat already carries [`MAX_TAGS`] tags.
    #[error("a chat carries at most {MAX_TAGS} tags")]
    TooMany,
}

/// The tag as it is stored and compared: `tag` lowercased, if it is a
/// valid tag. Leading or trailing spaces, control and bidirectional
/// characters and punctuation beyond `-_.:/` are refused rather than
/// cleaned, so what an agent sees is what they typed.
pub fn normalize_tag(tag: &str) -> Result<String, TagError> {
    let allowed = |c: char| {
        (c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | ' '))
            && !c.is_control()
            && !is_bidi_control(c)
    };
    let lower = tag.to_lowercase();
    if lower.is_empty()
        || lower.len() > MAX_TAG_BYTES
        || lower.trim() != lower
        || !lower.chars().all(allowed)
    {
        return Err(TagError::Invalid(tag.chars().take(64).collect()));
    }
    Ok(lower)
}

/// A row of recent sessions with the tags the chat carried when it ended.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TaggedSession {
    /// The ended chat and its rating.
    pub session: RatedSession,
    /// Its tags, in order.
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercased_and_bounded() {
        assert_eq!(normalize_tag("VIP").unwrap(), "vip");
        assert_eq!(normalize_tag("billing/refund").unwrap(), "billing/refund");
        assert_eq!(normalize_tag("needs follow-up").unwrap(), "needs follow-up");
        assert_eq!(normalize_tag("Ärger").unwrap(), "ärger");
        let longest = "a".repeat(MAX_TAG_BYTES);
        assert_eq!(normalize_tag(&longest).unwrap(), longest);
        for bad in [
            "",
            " vip",
            "vip ",
            "v\nip",
            "v\u{202e}ip",
            "a;b",
            "<b>",
            &"a".repeat(MAX_TAG_BYTES + 1),
        ] {
            assert!(
                matches!(normalize_tag(bad), Err(TagError::Invalid(_))),
                "{bad:?} was accepted"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn a_normalized_tag_is_stable_and_within_bounds(tag in "\\PC{0,40}") {
            if let Ok(normal) = normalize_tag(&tag) {
                proptest::prop_assert!(normal.len() <= MAX_TAG_BYTES && !normal.is_empty());
                proptest::prop_assert!(!normal.chars().any(char::is_control));
                proptest::prop_assert_eq!(normalize_tag(&normal), Ok(normal.clone()));
            }
        }
    }
}
