//! The claim cell: exactly one party takes a waiting chat, an alert is
//! raised only for a chat that still waits, and an offer to one agent ends
//! exactly once.
//!
//! A waiting chat can be taken by the channel's get-next, by an agent
//! picking it from the incoming list, by the agent it was offered to
//! accepting the offer, or withdrawn by the customer leaving; meanwhile the
//! channel's alert timer and the offer's timer may fire. These race across
//! threads. Each chat shares one `ClaimCell`; every transition is a single
//! compare-and-swap on one `u64`:
//!
//! ```text
//!   generation << 24 | offer number << 4 | offered << 3 | alerted << 2 | phase
//!   phase: Waiting, Taken, Abandoned
//!
//!   Waiting --raise_alert(g)-->  Waiting+alerted     (only if still generation g;
//!                                                     offered or not)
//!   Waiting --offer(g)-->        Waiting+offered n+1 (only if not offered)
//!   Waiting+offered n --accept(n)-->  Taken          (only that offer)
//!   Waiting+offered n --lapse(n)-->   Waiting        (declined or timed out;
//!                                                     the alert flag stays)
//!   Waiting (offered or not) --claim-->  Taken | Abandoned
//!                                  (exactly one winner; the winner learns
//!                                  whether it was alerted, and so must clear
//!                                  the alert, and which offer it withdrew)
//!   Taken --requeue-->  Waiting, generation + 1 (transfer back to a queue)
//! ```
//!
//! An offer ends exactly once: by its accept, its lapse, or a claim that
//! withdraws it; only one of the three can win the word while the offer
//! stands, so whoever ends it releases the offered agent's reserved slot
//! (or, for an accept, keeps it for the assignment).
//!
//! A timer carries the generation (and an offer timer its offer) it was set
//! for, so a timer from an earlier wait or offer never touches the next.
//!
//! Beside the word, a second atomic says whether the chat's first response
//! is settled (its first-response target breached, or the chat answered
//! before a restart; see [`core::sla`](crate::core::sla)). It only ever goes
//! from unsettled to settled, once, and no transition of the word reads it,
//! so the claim, alert and offer invariants above are untouched by it.

use crate::core::sync::{AtomicU64, Ordering};

use self::word::{
    ABANDONED, ALERTED, OFFERED, TAKEN, WAITING, generation, offer_number, pack, phase, with_offer,
};

/// The layout of a claim cell's word; see the module docs.
pub mod word {
    /// Phase: waiting for an agent.
    pub const WAITING: u64 = 0;
    /// Phase: taken by an agent.
    pub const TAKEN: u64 = 2;
    /// Phase: withdrawn by the customer.
    pub const ABANDONED: u64 = 3;
    /// Flag: an alert stands for this wait.
    pub const ALERTED: u64 = 1 << 2;
    /// Flag: an offer stands for this wait.
    pub const OFFERED: u64 = 1 << 3;
    const PHASE_MASK: u64 = 0b11;
    const OFFER_SHIFT: u32 = 4;
    const OFFER_MASK: u64 = (1 << 20) - 1;
    const GENERATION_SHIFT: u32 = 24;

    /// The word for `phase` in wait `generation`, with no flag and offer 0.
    pub fn pack(generation: u64, phase: u64) -> u64 {
        generation << GENERATION_SHIFT | phase
    }

    /// The wait a word belongs to.
    pub fn generation(word: u64) -> u64 {
        word >> GENERATION_SHIFT
    }

    /// The phase a word is in (without its flags).
    pub fn phase(word: u64) -> u64 {
        word & PHASE_MASK
    }

    /// The number of the wait's latest offer (it wraps).
    pub fn offer_number(word: u64) -> u32 {
        // Masked to 20 bits, so it fits.
        ((word >> OFFER_SHIFT) & OFFER_MASK) as u32
    }

    /// `word` with its offer number set to `number` (kept to 20 bits).
    pub fn with_offer(word: u64, number: u32) -> u64 {
        word & !(OFFER_MASK << OFFER_SHIFT) | (u64::from(number) & OFFER_MASK) << OFFER_SHIFT
    }

    /// The offer number after `number`, wrapping within 20 bits.
    pub fn next_offer(number: u32) -> u32 {
        // OFFER_MASK is 20 bits, so the result fits.
        ((u64::from(number) + 1) & OFFER_MASK) as u32
    }
}

/// Who claims a waiting chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimer {
    /// An agent answers it (get next, pick, or an accepted offer).
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

/// One offer of a waiting chat to one agent: the wait it was made in and
/// its number within that wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OfferId {
    /// The wait the offer was made in.
    pub generation: u64,
    /// Its number within the wait.
    pub number: u32,
}

/// A won claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Won {
    /// An alert had been raised for this wait; the winner must clear it.
    pub alerted: bool,
    /// The wait the claim ended.
    pub generation: u64,
    /// The offer that stood when the claim won, now withdrawn: the winner
    /// ends it (an accept reports its own offer here).
    pub offer: Option<OfferId>,
}

/// The cell was not held by an agent, so it cannot go back to waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a chat taken by an agent can be queued again")]
pub struct NotTaken;

/// Why a chat could not be offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferRefused {
    /// The chat was claimed.
    #[error("the chat was already claimed ({0:?})")]
    Claimed(Claimer),
    /// The chat waits in another wait than the one asked about.
    #[error("the chat's wait is not the one the offer was for")]
    Stale,
    /// An offer stands already.
    #[error("the chat is offered already")]
    Offered,
}

/// Why an offer could not be accepted: it no longer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferLost {
    /// Someone claimed the chat (a pick, get-next, the customer leaving).
    #[error("the chat was claimed ({0:?})")]
    Claimed(Claimer),
    /// The offer lapsed (timed out or declined), or belongs to an earlier
    /// wait.
    #[error("the offer lapsed")]
    Lapsed,
}

/// One per chat; see the module docs. The word, and the first-response flag
/// (0: unsettled, 1: settled).
#[derive(Debug)]
pub struct ClaimCell(AtomicU64, AtomicU64);

impl Default for ClaimCell {
    fn default() -> Self {
        Self::new()
    }
}

/// The offer standing in `word`, if one does.
fn standing_offer(word: u64) -> Option<OfferId> {
    (phase(word) == WAITING && word & OFFERED != 0).then(|| OfferId {
        generation: generation(word),
        number: offer_number(word),
    })
}

/// Whether `word` is offer `offer`, standing.
fn is_standing(word: u64, offer: OfferId) -> bool {
    standing_offer(word) == Some(offer)
}

fn claimed_by(word: u64) -> Claimer {
    if phase(word) == TAKEN {
        Claimer::Agent
    } else {
        Claimer::Abandon
    }
}

impl ClaimCell {
    /// A cell for a chat that waits unclaimed (generation 0).
    pub fn new() -> Self {
        Self(AtomicU64::new(pack(0, WAITING)), AtomicU64::new(0))
    }

    /// The current wait's generation.
    pub fn generation(&self) -> u64 {
        generation(self.0.load(Ordering::Acquire))
    }

    /// Claims the chat for `by`, withdrawing a standing offer. Of all claims
    /// (and accepts) on one wait exactly one succeeds; it tells whether an
    /// alert had been raised and which offer it withdrew.
    pub fn claim(&self, by: Claimer) -> Result<Won, Claimed> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if phase(current) != WAITING {
                return Err(Claimed(claimed_by(current)));
            }
            let claimed = with_offer(pack(generation(current), by.phase()), offer_number(current));
            match self
                .0
                .compare_exchange(current, claimed, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Won {
                        alerted: current & ALERTED != 0,
                        generation: generation(current),
                        offer: standing_offer(current),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Offers the chat to one agent if it waits, unclaimed and not offered,
    /// in wait `generation`. The offer then stands until exactly one of its
    /// [`accept`](Self::accept), its [`lapse`](Self::lapse) or a
    /// [`claim`](Self::claim) ends it.
    pub fn offer(&self, generation_asked: u64) -> Result<OfferId, OfferRefused> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if phase(current) != WAITING {
                return Err(OfferRefused::Claimed(claimed_by(current)));
            }
            if generation(current) != generation_asked {
                return Err(OfferRefused::Stale);
            }
            if current & OFFERED != 0 {
                return Err(OfferRefused::Offered);
            }
            let number = word::next_offer(offer_number(current));
            let offered = with_offer(current, number) | OFFERED;
            match self
                .0
                .compare_exchange(current, offered, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(OfferId {
                        generation: generation_asked,
                        number,
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// The offered agent takes the chat, if `offer` still stands. The
    /// winner keeps the slot it reserved for the offer.
    pub fn accept(&self, offer: OfferId) -> Result<Won, OfferLost> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if phase(current) != WAITING {
                return Err(OfferLost::Claimed(claimed_by(current)));
            }
            if !is_standing(current, offer) {
                return Err(OfferLost::Lapsed);
            }
            let taken = with_offer(pack(offer.generation, TAKEN), offer.number);
            match self
                .0
                .compare_exchange(current, taken, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Won {
                        alerted: current & ALERTED != 0,
                        generation: offer.generation,
                        offer: Some(offer),
                    });
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Ends `offer` without taking the chat (the agent declined, or its
    /// time ran out): the chat waits on, its alert flag kept. True if this
    /// call ended the offer; false if it had already ended (accepted,
    /// withdrawn by a claim, lapsed) or belongs to an earlier wait.
    pub fn lapse(&self, offer: OfferId) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        while is_standing(current, offer) {
            match self.0.compare_exchange(
                current,
                current & !OFFERED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
    }

    /// Marks the chat alerted if it still waits unclaimed in wait
    /// `generation` (offered or not). True if the caller must raise the
    /// alert.
    pub fn raise_alert(&self, generation_asked: u64) -> bool {
        let mut current = self.0.load(Ordering::Acquire);
        while phase(current) == WAITING
            && generation(current) == generation_asked
            && current & ALERTED == 0
        {
            match self.0.compare_exchange(
                current,
                current | ALERTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
        false
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
        let current = self.0.load(Ordering::Acquire);
        (phase(current) != WAITING).then(|| claimed_by(current))
    }

    /// Whether an alert stands for the current wait.
    pub fn is_alerted(&self) -> bool {
        let current = self.0.load(Ordering::Acquire);
        phase(current) == WAITING && current & ALERTED != 0
    }

    /// The offer standing now, if any.
    pub fn standing_offer(&self) -> Option<OfferId> {
        standing_offer(self.0.load(Ordering::Acquire))
    }

    /// Settles the chat's first response (a breach of its target, or an
    /// answer before a restart). True for the one call that settled it, so
    /// a breach is counted once per chat however many timers fire.
    pub fn settle_first_response(&self) -> bool {
        self.1.swap(1, Ordering::AcqRel) == 0
    }

    /// Whether the chat's first response is settled.
    pub fn first_response_settled(&self) -> bool {
        self.1.load(Ordering::Acquire) != 0
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
    fn the_first_response_settles_once() {
        let cell = ClaimCell::new();
        assert!(!cell.first_response_settled());
        assert!(cell.settle_first_response());
        assert!(!cell.settle_first_response());
        assert!(cell.first_response_settled());
        // The flag leaves the claim alone.
        assert!(cell.claim(Claimer::Agent).is_ok());
        assert_eq!(cell.requeue(), Ok(1));
        assert!(cell.first_response_settled());
        assert_eq!(cell.holder(), None);
    }

    #[test]
    fn only_the_first_claim_wins() {
        let cell = ClaimCell::new();
        assert_eq!(cell.holder(), None);
        assert_eq!(
            cell.claim(Claimer::Abandon),
            Ok(Won {
                alerted: false,
                generation: 0,
                offer: None,
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
                generation: 1,
                offer: None,
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

    #[test]
    fn an_offer_ends_once_by_accept_lapse_or_claim() {
        let cell = ClaimCell::new();
        let first = cell.offer(0).unwrap();
        assert_eq!(
            cell.offer(0),
            Err(OfferRefused::Offered),
            "one offer at a time"
        );
        assert_eq!(cell.standing_offer(), Some(first));
        assert!(cell.lapse(first));
        assert!(!cell.lapse(first), "a lapsed offer lapses once");
        assert_eq!(cell.accept(first), Err(OfferLost::Lapsed));
        assert_eq!(cell.holder(), None);

        let second = cell.offer(0).unwrap();
        assert_ne!(first, second, "each offer of a wait has its own number");
        let won = cell.accept(second).unwrap();
        assert_eq!(won.offer, Some(second));
        assert!(!cell.lapse(second), "an accepted offer does not lapse");
        assert_eq!(cell.claim(Claimer::Agent), Err(Claimed(Claimer::Agent)));
        assert_eq!(cell.offer(0), Err(OfferRefused::Claimed(Claimer::Agent)));
    }

    #[test]
    fn a_claim_withdraws_a_standing_offer_and_says_so() {
        let cell = ClaimCell::new();
        let offer = cell.offer(0).unwrap();
        assert!(cell.raise_alert(0), "an offered chat can still be alerted");
        let won = cell.claim(Claimer::Abandon).unwrap();
        assert_eq!(
            won,
            Won {
                alerted: true,
                generation: 0,
                offer: Some(offer),
            }
        );
        assert_eq!(
            cell.accept(offer),
            Err(OfferLost::Claimed(Claimer::Abandon))
        );
        assert!(!cell.lapse(offer));
    }

    #[test]
    fn a_lapse_keeps_the_alert_and_an_old_offer_never_touches_the_next_wait() {
        let cell = ClaimCell::new();
        let offer = cell.offer(0).unwrap();
        assert!(cell.raise_alert(0));
        assert!(cell.lapse(offer));
        assert!(cell.is_alerted(), "the alert stands after a lapse");
        cell.claim(Claimer::Agent).unwrap();
        assert_eq!(cell.requeue(), Ok(1));
        assert_eq!(cell.offer(0), Err(OfferRefused::Stale));
        let next = cell.offer(1).unwrap();
        assert!(!cell.lapse(offer), "the first wait's offer is stale");
        assert_eq!(cell.accept(offer), Err(OfferLost::Lapsed));
        assert_eq!(cell.standing_offer(), Some(next));
    }

    #[test]
    fn offer_numbers_wrap_within_their_bits() {
        assert_eq!(word::next_offer((1 << 20) - 1), 0);
        let full = with_offer(pack(7, WAITING), u32::MAX);
        assert_eq!(generation(full), 7, "an offer number never spills over");
    }
}
