//! Wall-clock instants as plain values, so the core never reads a clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bincode::{Decode, Encode};

/// Milliseconds since the Unix epoch.
///
/// The core only ever receives timestamps; the layers above read the clock
/// with [`Timestamp::now`] and pass the value down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Reads the system clock. Only the I/O layers call this.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// This instant moved forward by `by`.
    pub fn after(self, by: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(by.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates_instead_of_wrapping() {
        let early = Timestamp(1_000);
        let late = Timestamp(4_500);
        assert_eq!(late.since(early), Duration::from_millis(3_500));
        assert_eq!(early.since(late), Duration::ZERO);
        assert_eq!(early.after(Duration::from_secs(2)), Timestamp(3_000));
    }
}
