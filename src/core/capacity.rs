//! An agent's capacity: how many chats they may hold at once.
//!
//! Get-next (in a channel actor) and pick (in a connection task) reserve a
//! slot before claiming a chat, concurrently and possibly for the same
//! agent from several connections. A slot is reserved by compare-and-swap,
//! so concurrent reservations never exceed the maximum.

use crate::core::sync::{AtomicU64, Ordering};

/// Slots for one agent's concurrent chats.
#[derive(Debug)]
pub struct Capacity {
    used: AtomicU64,
    max: u64,
}

impl Capacity {
    /// An agent who may hold `max` chats at once.
    pub fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max,
        }
    }

    /// Takes a slot; false if all are in use.
    pub fn try_reserve(&self) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used >= self.max {
                return false;
            }
            match self
                .used
                .compare_exchange(used, used + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => used = actual,
            }
        }
    }

    /// Takes a slot even beyond the maximum: for chats that were already
    /// assigned before a restart.
    pub fn force_reserve(&self) {
        self.used.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives a slot back. Never goes below zero.
    pub fn release(&self) {
        let mut used = self.used.load(Ordering::Acquire);
        while used > 0 {
            match self
                .used
                .compare_exchange(used, used - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => used = actual,
            }
        }
    }

    /// Slots in use.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The most slots.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The raw counter, for loom models of deliberately broken variants.
    #[cfg(chathub_loom)]
    #[doc(hidden)]
    pub fn raw(&self) -> &AtomicU64 {
        &self.used
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_maximum_and_releases_free_slots() {
        let capacity = Capacity::new(2);
        assert!(capacity.try_reserve());
        assert!(capacity.try_reserve());
        assert!(!capacity.try_reserve());
        capacity.release();
        assert_eq!(capacity.used(), 1);
        assert!(capacity.try_reserve());
        capacity.release();
        capacity.release();
        capacity.release();
        assert_eq!(capacity.used(), 0, "a stray release does not underflow");
    }
}
