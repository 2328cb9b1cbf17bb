//! A chat's lifecycle as the outside world (a CRM, through webhooks) hears
//! it: which chat events are lifecycle events, what each is called, and how
//! long a failing delivery waits before it is tried again.

use std::time::Duration;

use crate::core::event::ChatEventKind;

/// The lifecycle events webhooks report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleKind {
    /// The customer started the chat.
    Started,
    /// An agent answered it (took it from the queue, or got it back).
    Answered,
    /// It moved to another agent or to a channel's queue, or a transfer was
    /// declined.
    Transferred,
    /// A ticket was made from it.
    TicketCreated,
    /// It ended.
    Ended,
    /// The customer came back to it through the end form.
    Reopened,
    /// The customer rated it.
    Rated,
}

impl LifecycleKind {
    /// Every kind, in the order a chat usually meets them.
    pub const ALL: [Self; 7] = [
        Self::Started,
        Self::Answered,
        Self::Transferred,
        Self::TicketCreated,
        Self::Ended,
        Self::Reopened,
        Self::Rated,
    ];

    /// The lifecycle kind of a chat event; `None` for events that are not
    /// lifecycle events (messages, read marks, files, verification).
    pub fn of(kind: &ChatEventKind) -> Option<Self> {
        match kind {
            ChatEventKind::Started { .. } => Some(Self::Started),
            ChatEventKind::Assigned { .. } => Some(Self::Answered),
            ChatEventKind::TransferredToAgent { .. }
            | ChatEventKind::TransferDeclined { .. }
            | ChatEventKind::Requeued { .. } => Some(Self::Transferred),
            ChatEventKind::TicketCreated { .. } => Some(Self::TicketCreated),
            ChatEventKind::Ended { .. } => Some(Self::Ended),
            ChatEventKind::Reopened { .. } => Some(Self::Reopened),
            ChatEventKind::Message { .. }
            | ChatEventKind::FileShared { .. }
            | ChatEventKind::Verified(_)
            | ChatEventKind::Read { .. }
            | ChatEventKind::Note { .. }
            | ChatEventKind::Prioritized { .. }
            | ChatEventKind::Withheld
            | ChatEventKind::SupervisorJoined { .. }
            | ChatEventKind::SupervisorLeft { .. }
            | ChatEventKind::SkillsNeeded { .. }
            | ChatEventKind::AgentGone { .. }
            | ChatEventKind::PriorityClaimed { .. }
            | ChatEventKind::Tagged { .. }
            | ChatEventKind::Untagged { .. }
            | ChatEventKind::Edited { .. }
            | ChatEventKind::Deleted { .. }
            | ChatEventKind::Reassigned { .. } => None,
        }
    }

    /// The name a receiver sees in `kind` (and a configuration lists in
    /// `events`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Answered => "answered",
            Self::Transferred => "transferred",
            Self::TicketCreated => "ticket_created",
            Self::Ended => "ended",
            Self::Reopened => "reopened",
            Self::Rated => "rated",
        }
    }

    /// The kind named `name`, as [`LifecycleKind::name`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for LifecycleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long to wait before try number `failures + 1`, after `failures`
/// failed tries (at least 1): `initial` doubled per earlier failure, at
/// most `max`, then cut by a share of itself chosen by `jitter` (a value
/// in `0.0..1.0`, uniformly random in practice) so that many failing
/// deliveries do not come back in step: the wait is between half the
/// doubled value and all of it.
pub fn retry_delay(failures: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let full = initial
        .saturating_mul(1u32 << doublings.min(31))
        .min(max)
        .max(initial.min(max));
    let jitter = jitter.clamp(0.0, 1.0);
    full.mul_f64(1.0 - jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::{AgentId, ChannelId};

    #[test]
    fn names_round_trip() {
        for kind in LifecycleKind::ALL {
            assert_eq!(LifecycleKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(LifecycleKind::parse("message"), None);
    }

    #[test]
    fn only_lifecycle_events_have_a_kind() {
        let assigned = ChatEventKind::Assigned {
            agent: AgentId::new("a"),
        };
        assert_eq!(LifecycleKind::of(&assigned), Some(LifecycleKind::Answered));
        let requeued = ChatEventKind::Requeued {
            by: None,
            channel: ChannelId::new("sales"),
        };
        assert_eq!(
            LifecycleKind::of(&requeued),
            Some(LifecycleKind::Transferred)
        );
        let read = ChatEventKind::Read {
            by: crate::core::Party::Customer,
            up_to: 3,
        };
        assert_eq!(LifecycleKind::of(&read), None);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap_with_jitter() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(retry_delay(1, initial, max, 0.0), initial);
        assert_eq!(retry_delay(2, initial, max, 0.0), initial * 2);
        assert_eq!(retry_delay(4, initial, max, 0.0), initial * 8);
        assert_eq!(retry_delay(30, initial, max, 0.0), max);
        assert_eq!(retry_delay(u32::MAX, initial, max, 0.0), max);
        assert_eq!(retry_delay(4, initial, max, 1.0), initial * 4);
        let jittered = retry_delay(4, initial, max, 0.5);
        assert!(jittered > initial * 4 && jittered < initial * 8);
    }
}
