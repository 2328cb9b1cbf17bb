//! The claim cell: exactly one party takes a waiting chat, and an alert is
//! raised only for a chat that still waits.
//!
//! A waiting chat can be taken by the channel's get-next, by an agent
//! picking it from the incoming list, or withdrawn by the customer leaving;
//! meanwhile the channel's alert timer may fire. These race across threads.
//! Each chat shares one `ClaimCell`; every transition is a single
//! compare-and-swap on one `u64`:
//!
//! ```text
//!   generation << 2 | phase      phase: Waiting, Alerted, Taken, Abandoned
//!
//!   Waiting  --raise_alert(g)-->  Alerted       (only if still generation g)
//!   Waiting | Alerted --claim-->  Taken | Abandoned   (exactly one winner;
//!                                  the winner learns whether it was alerted
//!                                  and so must clear the alert)
//!   Taken --requeue-->  Waiting, generation + 1 (transfer back to a queue)
//! ```
//!
//! A timer carries the generation it was set for, so a timer from an
//! earlier wait never alerts the chat's next wait.

use crate::core::sync::{AtomicU64, Ordering};

use self::word::{ABANDONED, ALERTED, TAKEN, WAITING, generation, pack, phase};

/// The layout of a claim cell's word: `generation << 2 | phase`.
pub mod word {
    /// Waiting, no alert raised.
    pub const WAITING: u64 = 0;
    /// Waiting, alert raised.
    pub const ALERTED: u64 = 1;
    /// Taken by an agent.
    pub const TAKEN: u64 = 2;
    /// Withdrawn by the customer.
    pub const ABANDONED: u64 = 3;
    const PHASE_BITS: u32 = 2;
    const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

    /// The word for `phase` in wait `generation`.
    pub fn pack(generation: u64, phase: u64) -> u64 {
        generation << PHASE_BITS | phase
    }

    /// The wait a word belongs to.
    pub fn generation(word: u64) -> u64 {
        word >> PHASE_BITS
    }

    /// The phase a word is in.
    pub fn phase(word: u64) -> u64 {
        word & PHASE_MASK
    }
}

/// Who claims a waiting chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimer {
    /// An agent answers it (get next, or pick).
    Agent,
    /// The customer withdraws it by leaving.
    Abandon,
}

impl Claimer {
    fn phase(self) -> u64 {
        match self {
            Self::Agent => TAKEN,
            Self::Abandon => ABANDONED,
        }
    }
}

/// The claim was lost: the chat had already been claimed by this party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chat was already claimed ({0:?})")]
pub struct Claimed(pub Claimer);

/// A won claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Won {
    /// An alert had been raised for this wait; the winner must clear it.
    pub alerted: bool,
    /// The wait the claim ended.
    pub generation: u64,
}

/// The cell was not held by an agent, so it cannot go back to waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a chat taken by an agent can be queued again")]
pub struct NotTaken;

/// One per chat; see the module docs.
#[derive(Debug)]
pub struct ClaimCell(AtomicU64);

impl Default for ClaimCell {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaimCell {
    /// A cell for a chat that waits unclaimed (generation 0).
    pub fn new() -> Self {
        Self(AtomicU64::new(pack(0, WAITING)))
    }

    /// The current wait's generation.
    pub fn generation(&self) -> u64 {
        generation(self.0.load(Ordering::Acquire))
    }

    /// Claims the chat for `by`. Of all claims on one wait exactly one
    /// succeeds; it tells whether an alert had been raised.
    pub fn claim(&self, by: Claimer) -> Result<Won, Claimed> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            match phase(current) {
                WAITING | ALERTED => {}
                TAKEN => return Err(Claimed(Claimer::Agent)),
                _ => return Err(Claimed(Claimer::Abandon)),
            }
            let claimed = pack(generation(current), by.phase());
            match self
                .0
                .compare_exchange(current, claimed, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Won {
                        alerted: phase(current) == ALERTED,
                        generation: generation(current),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Marks the chat alerted if it still waits unclaimed in wait
    /// `generation`. True if the caller must raise the alert.
    pub fn raise_alert(&self, generation: u64) -> bool {
        self.0
            .compare_exchange(
                pack(generation, WAITING),
                pack(generation, ALERTED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Puts a chat an agent holds back to waiting, as a new wait. Returns
    /// the new generation.
    pub fn requeue(&self) -> Result<u64, NotTaken> {
        let current = self.0.load(Ordering::Acquire);
        if phase(current) != TAKEN {
            return Err(NotTaken);
        }
        let next = generation(current) + 1;
        self.0
            .compare_exchange(
                current,
                pack(next, WAITING),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| next)
            .map_err(|_| NotTaken)
    }

    /// Who holds the chat, or `None` while it waits unclaimed.
    pub fn holder(&self) -> Option<Claimer> {
        match phase(self.0.load(Ordering::Acquire)) {
            TAKEN => Some(Claimer::Agent),
            ABANDONED => Some(Claimer::Abandon),
            _ => None,
        }
    }

    /// Whether an alert stands for the current wait.
    pub fn is_alerted(&self) -> bool {
        phase(self.0.load(Ordering::Acquire)) == ALERTED
    }

    /// The raw word, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw(&self) -> &AtomicU64 {
        &self.0
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_claim_wins() {
        let cell = ClaimCell::new();
        assert_eq!(cell.holder(), None);
        assert_eq!(
            cell.claim(Claimer::Abandon),
            Ok(Won {
                alerted: false,
                generation: 0
            })
        );
        assert_eq!(cell.claim(Claimer::Agent), Err(Claimed(Claimer::Abandon)));
        assert_eq!(cell.claim(Claimer::Abandon), Err(Claimed(Claimer::Abandon)));
        assert_eq!(cell.holder(), Some(Claimer::Abandon));
    }

    #[test]
    fn the_winner_learns_of_a_raised_alert() {
        let cell = ClaimCell::new();
        assert!(cell.raise_alert(0));
        assert!(!cell.raise_alert(0), "one alert per wait");
        assert!(cell.is_alerted());
        let won = cell.claim(Claimer::Agent).unwrap();
        assert!(won.alerted);
        assert!(!cell.raise_alert(0), "no alert for a taken chat");
    }

    #[test]
    fn a_stale_timer_never_alerts_the_next_wait() {
        let cell = ClaimCell::new();
        cell.claim(Claimer::Agent).unwrap();
        assert_eq!(cell.requeue(), Ok(1));
        assert_eq!(cell.holder(), None);
        assert!(!cell.raise_alert(0), "the first wait's timer is stale");
        assert!(cell.raise_alert(1));
        assert_eq!(
            cell.claim(Claimer::Abandon),
            Ok(Won {
                alerted: true,
                generation: 1
            })
        );
        assert_eq!(cell.requeue(), Err(NotTaken));
    }

    #[test]
    fn racing_threads_have_one_winner() {
        for _ in 0..200 {
            let cell = std::sync::Arc::new(ClaimCell::new());
            let winners: usize = (0..4)
                .map(|i| {
                    let cell = cell.clone();
                    std::thread::spawn(move || {
                        let by = if i == 0 {
                            Claimer::Abandon
                        } else {
                            Claimer::Agent
                        };
                        usize::from(cell.claim(by).is_ok())
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(winners, 1);
        }
    }
}
