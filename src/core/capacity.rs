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
    /// Changed by a configuration reload; slots already taken beyond a
    /// lowered maximum stay taken until released.
    max: AtomicU64,
}

impl Capacity {
    /// An agent who may hold `max` chats at once.
    pub fn new(max: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
        }
    }

    /// Takes a slot; false if all are in use. A slot taken must be
    /// released when its chat ends or the attempt fails.
    #[must_use = "a slot taken must be released, and a refusal refuses the chat"]
    pub fn try_reserve(&self) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used >= self.max.load(Ordering::Acquire) {
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
        self.max.load(Ordering::Acquire)
    }

    /// Sets the most slots: a raised maximum is usable at once; below a
    /// lowered one, slots in use stay taken and no new one is given until
    /// enough are released.
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Release);
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

    #[test]
    fn a_lowered_maximum_keeps_slots_in_use_and_gives_none_until_below_it() {
        let capacity = Capacity::new(3);
        for _ in 0..3 {
            assert!(capacity.try_reserve());
        }
        capacity.set_max(1);
        assert_eq!(capacity.used(), 3, "chats held stay held");
        capacity.release();
        assert!(!capacity.try_reserve(), "2 in use, 1 allowed");
        capacity.release();
        capacity.release();
        assert!(capacity.try_reserve());
        assert!(!capacity.try_reserve());
        capacity.set_max(2);
        assert!(capacity.try_reserve(), "a raised maximum is usable at once");
    }
}
