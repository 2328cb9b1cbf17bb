//! Customer satisfaction: the rating (1 to 5) and comment a customer may
//! give a chat after its end, and the checks they pass first.

use std::time::Duration;

use bincode::{Decode, Encode};

use crate::core::event::SessionSummary;
use crate::core::files::is_bidi_control;
use crate::core::time::Timestamp;

/// The lowest rating.
pub const MIN_RATING: u8 = 1;

/// The highest rating.
pub const MAX_RATING: u8 = 5;

/// The most characters a comment may have, after cleaning and trimming.
pub const MAX_COMMENT_CHARS: usize = 2_000;

/// A customer's rating of an ended chat.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Rating {
    /// From [`MIN_RATING`] to [`MAX_RATING`].
    pub rating: u8,
    /// What the customer wrote, cleaned; `None` if nothing.
    pub comment: Option<String>,
    /// When the hub recorded it.
    pub at: Timestamp,
}

/// A row of recent sessions: the ended chat and its rating, if it has one.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RatedSession {
    /// The ended chat.
    pub session: SessionSummary,
    /// The customer's rating.
    pub rating: Option<Rating>,
}

/// Why a rating was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// The rating is not from 1 to 5.
    #[error("a rating is from {MIN_RATING} to {MAX_RATING}, not {0}")]
    OutOfRange(u8),
    /// The comment is too long.
    #[error("a comment has at most {MAX_COMMENT_CHARS} characters, not {0}")]
    CommentTooLong(usize),
    /// The chat has not ended.
    #[error("rate a chat once it has ended")]
    NotEnded,
    /// The chat ended longer ago than its channel's return window.
    #[error("the time to rate this chat ran out")]
    TooLate,
}

/// Checks a rating and cleans its comment: control characters (but line
/// breaks) and bidirectional controls removed, trimmed, at most
/// [`MAX_COMMENT_CHARS`]; an empty comment is `None`.
pub fn check_rating(rating: u8, comment: Option<&str>) -> Result<Option<String>, RatingError> {
    if !(MIN_RATING..=MAX_RATING).contains(&rating) {
        return Err(RatingError::OutOfRange(rating));
    }
    let Some(comment) = comment else {
        return Ok(None);
    };
    let clean: String = comment
        .chars()
        .filter(|&c| (c == '\n' || !c.is_control()) && !is_bidi_control(c))
        .collect();
    let clean = clean.trim();
    let chars = clean.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(RatingError::CommentTooLong(chars));
    }
    Ok((!clean.is_empty()).then(|| clean.to_owned()))
}

/// Whether a chat that ended at `ended` (`None`: not ended) may be rated
/// at `now`, with the channel's `window` after the end.
pub fn check_rating_time(
    ended: Option<Timestamp>,
    window: Duration,
    now: Timestamp,
) -> Result<(), RatingError> {
    match ended {
        None => Err(RatingError::NotEnded),
        Some(ended) if now.since(ended) > window => Err(RatingError::TooLate),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_one_to_five() {
        for rating in 1..=5 {
            assert_eq!(check_rating(rating, None), Ok(None));
        }
        assert_eq!(check_rating(0, None), Err(RatingError::OutOfRange(0)));
        assert_eq!(check_rating(6, None), Err(RatingError::OutOfRange(6)));
    }

    #[test]
    fn comments_are_cleaned_trimmed_and_bounded() {
        assert_eq!(
            check_rating(4, Some("  quick\u{202E} and\u{0007} kind\r\nthanks 🙏 ")),
            Ok(Some("quick and kind\nthanks 🙏".to_owned()))
        );
        assert_eq!(check_rating(4, Some(" \t\u{0000} ")), Ok(None));
        let most = "é".repeat(MAX_COMMENT_CHARS);
        assert_eq!(
            check_rating(5, Some(&format!("  {most}  "))),
            Ok(Some(most.clone()))
        );
        assert_eq!(
            check_rating(5, Some(&format!("{most}x"))),
            Err(RatingError::CommentTooLong(MAX_COMMENT_CHARS + 1))
        );
    }

    #[test]
    fn only_ended_chats_within_the_window_are_rated() {
        let window = Duration::from_secs(60);
        let ended = Timestamp(1_000_000);
        assert_eq!(
            check_rating_time(None, window, ended),
            Err(RatingError::NotEnded)
        );
        assert_eq!(check_rating_time(Some(ended), window, ended), Ok(()));
        assert_eq!(
            check_rating_time(Some(ended), window, ended.after(window)),
            Ok(())
        );
        assert_eq!(
            check_rating_time(
                Some(ended),
                window,
                ended.after(window + Duration::from_millis(1))
            ),
            Err(RatingError::TooLate)
        );
    }
}
