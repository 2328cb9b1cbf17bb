//! The claim cell: exactly one party takes a waiting chat.
//!
//! A waiting chat can be taken by the channel's get-next, by an agent picking
//! it from the incoming list, or withdrawn by the customer leaving, and these
//! race across threads. Each queue entry shares one `ClaimCell`; whoever moves
//! it out of `Waiting` with a single compare-and-swap owns the chat, and
//! everyone else learns who did.

use crate::core::sync::{AtomicU64, Ordering};

const WAITING: u64 = 0;
const TAKEN: u64 = 1;
const ABANDONED: u64 = 2;

/// Who claims a waiting chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimer {
    /// An agent answers it (get next, or pick).
    Agent,
    /// The customer withdraws it by leaving.
    Abandon,
}

impl Claimer {
    fn code(self) -> u64 {
        match self {
            Claimer::Agent => TAKEN,
            Claimer::Abandon => ABANDONED,
        }
    }
}

/// The claim was lost: the chat had already been claimed by this party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the chat was already claimed ({0:?})")]
pub struct Claimed(pub Claimer);

/// One per waiting chat; see the module docs.
#[derive(Debug)]
pub struct ClaimCell(AtomicU64);

impl Default for ClaimCell {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaimCell {
    /// A cell for a chat that waits unclaimed.
    pub fn new() -> Self {
        Self(AtomicU64::new(WAITING))
    }

    /// Claims the chat for `by`. Exactly one call on a cell succeeds.
    pub fn claim(&self, by: Claimer) -> Result<(), Claimed> {
        self.0
            .compare_exchange(WAITING, by.code(), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|current| {
                Claimed(if current == TAKEN {
                    Claimer::Agent
                } else {
                    Claimer::Abandon
                })
            })
    }

    /// Who holds the chat, or `None` while it waits unclaimed.
    pub fn holder(&self) -> Option<Claimer> {
        match self.0.load(Ordering::Acquire) {
            WAITING => None,
            TAKEN => Some(Claimer::Agent),
            _ => Some(Claimer::Abandon),
        }
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_claim_wins() {
        let cell = ClaimCell::new();
        assert_eq!(cell.holder(), None);
        assert_eq!(cell.claim(Claimer::Abandon), Ok(()));
        assert_eq!(cell.claim(Claimer::Agent), Err(Claimed(Claimer::Abandon)));
        assert_eq!(cell.claim(Claimer::Abandon), Err(Claimed(Claimer::Abandon)));
        assert_eq!(cell.holder(), Some(Claimer::Abandon));
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
