//! The first-response target of a channel (`first_response_within`).
//!
//! First response here is an agent taking the chat (get-next, a pick, an
//! accepted offer): the moment the customer is answered by a person and the
//! chat leaves the queue, which is also what the unanswered alert measures.
//! The clock runs from the chat's start, over its first wait only: a chat
//! an agent once took has had its first response, so a transfer back to a
//! queue, a requeue or a return through the end form starts no new target.
//!
//! A breach is decided once per chat (the claim cell's first-response flag,
//! [`ClaimCell::settle_first_response`](crate::core::ClaimCell::settle_first_response)),
//! and, like an alert, is held while the channel is closed by its business
//! hours: a chat that reaches its target outside the hours breaches when the
//! channel opens, if it still waits then.

use std::time::Duration;

use crate::core::hours::BusinessHours;
use crate::core::time::Timestamp;

/// The shortest first-response target a channel may set.
pub const MIN_FIRST_RESPONSE: Duration = Duration::from_secs(1);

/// The longest first-response target a channel may set.
pub const MAX_FIRST_RESPONSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether a wait is measured against the target: the channel has one, the
/// wait is the chat's first (generation 0) and its first response is not
/// settled (breached already, or answered before a restart).
pub fn applies(within: Option<Duration>, generation: u64, settled: bool) -> bool {
    within.is_some() && generation == 0 && !settled
}

/// How long from `now` until a chat that started at `since` breaches a
/// target of `within` (zero if it has).
pub fn due_in(within: Duration, since: Timestamp, now: Timestamp) -> Duration {
    within.saturating_sub(now.since(since))
}

/// What business hours make of something due now (an alert, a breach).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// The channel is open (or has no hours): it happens now.
    Now,
    /// The channel is closed: it waits this long, for the opening.
    Until(Duration),
    /// Closed for more than a year: nothing is set; a reload of the hours
    /// sets it again.
    Closed,
}

/// Whether something due at `now` happens now or waits for `hours` to open.
pub fn held(hours: Option<&BusinessHours>, now: Timestamp) -> Held {
    match hours.map(|hours| hours.next_opening(now)) {
        Some(Some(opens)) if opens > now => Held::Until(opens.since(now)),
        Some(None) => Held::Closed,
        _ => Held::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_unsettled_wait_of_a_channel_with_a_target_is_measured() {
        let within = Some(Duration::from_secs(30));
        assert!(applies(within, 0, false));
        assert!(!applies(None, 0, false));
        assert!(!applies(within, 1, false), "a requeued chat was answered");
        assert!(!applies(within, 0, true), "breached or answered once");
    }

    #[test]
    fn the_clock_runs_from_the_start() {
        let start = Timestamp(1_000_000);
        let within = Duration::from_secs(30);
        assert_eq!(due_in(within, start, start), within);
        assert_eq!(
            due_in(within, start, start.after(Duration::from_secs(10))),
            Duration::from_secs(20)
        );
        assert_eq!(
            due_in(within, start, start.after(Duration::from_secs(40))),
            Duration::ZERO
        );
    }

    #[test]
    fn closed_hours_hold_until_the_opening() {
        let nine_to_five = vec!["09:00-17:00".to_string()];
        let week: [&[String]; 7] = [&nine_to_five, &[], &[], &[], &[], &[], &[]];
        let hours = BusinessHours::new("UTC", week, &[]).unwrap();
        // 2024-01-01 was a Monday; 08:00 UTC.
        let monday_eight = Timestamp(1_704_096_000_000);
        assert_eq!(
            held(Some(&hours), monday_eight),
            Held::Until(Duration::from_secs(3600))
        );
        assert_eq!(
            held(Some(&hours), monday_eight.after(Duration::from_secs(7200))),
            Held::Now
        );
        assert_eq!(held(None, monday_eight), Held::Now);
    }
}
