//! Per-address (or per-name) pacing of requests that cost the hub durable
//! work or guard a secret: offline forms, failed sign-ins. One token bucket
//! per key, kept only while in use.

use std::hash::Hash;

use dashmap::DashMap;

use crate::core::{Timestamp, TokenBucket};

/// Keys tracked before idle ones are dropped.
const TRACKED: usize = 10_000;

/// A token bucket per key.
#[derive(Debug)]
pub(crate) struct Pace<K: Hash + Eq> {
    per_sec: f64,
    burst: u32,
    buckets: DashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> Pace<K> {
    /// `per_minute` requests a minute per address, `per_minute` at once.
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        Self::new(f64::from(per_minute.max(1)) / 60.0, per_minute.max(1))
    }

    /// `per_sec` units a second per key, `burst` at once.
    pub(crate) fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: burst.max(1),
            buckets: DashMap::new(),
        }
    }

    /// Whether `key` may use `units` more at `now`, counting them if so.
    pub(crate) fn allow_n(&self, key: K, units: u32, now: Timestamp) -> bool {
        self.forget_idle(&key, now);
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst, now))
            .take_n(f64::from(units), now)
    }

    /// Whether `key` may make one more request at `now`, counting it.
    pub(crate) fn allow(&self, key: K, now: Timestamp) -> bool {
        self.forget_idle(&key, now);
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst, now))
            .take(now)
    }

    /// Counts one request of `key` at `now`, allowed or not.
    pub(crate) fn charge(&self, key: K, now: Timestamp) {
        let _ = self.allow(key, now);
    }

    /// Whether `key` could make a request at `now`, without counting one.
    pub(crate) fn has_room(&self, key: &K, now: Timestamp) -> bool {
        self.buckets
            .get_mut(key)
            .is_none_or(|mut bucket| bucket.has_token(now))
    }

    /// At [`TRACKED`] keys, drops those whose buckets refilled (the same
    /// as having none); if that leaves more than half, drops any until half
    /// are left, so the table stays bounded (a dropped key starts afresh)
    /// and the sweep runs once per [`TRACKED`] / 2 new keys at most.
    fn forget_idle(&self, key: &K, now: Timestamp) {
        if self.buckets.len() < TRACKED || self.buckets.contains_key(key) {
            return;
        }
        let full = std::time::Duration::from_secs_f64(f64::from(self.burst) / self.per_sec);
        self.buckets
            .retain(|_, bucket| now.since(bucket.last_taken()) < full);
        let mut excess = self.buckets.len().saturating_sub(TRACKED / 2);
        if excess > 0 {
            self.buckets.retain(|_, _| {
                if excess > 0 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn charges_count_and_room_is_only_looked_at() {
        let pace = Pace::per_minute(2);
        let now = Timestamp(10_000_000);
        assert!(pace.has_room(&"x", now));
        pace.charge("x", now);
        assert!(pace.has_room(&"x", now), "one of two charged");
        pace.charge("x", now);
        assert!(!pace.has_room(&"x", now) && !pace.has_room(&"x", now));
        assert!(pace.has_room(&"y", now));
    }

    #[test]
    fn each_address_has_its_own_allowance() {
        let pace = Pace::per_minute(2);
        let (a, b): (IpAddr, IpAddr) = (
            "198.51.100.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let now = Timestamp(10_000_000);
        assert!(pace.allow(a, now) && pace.allow(a, now));
        assert!(!pace.allow(a, now));
        assert!(pace.allow(b, now));
        assert!(pace.allow(a, now.after(std::time::Duration::from_secs(30))));
    }

    #[test]
    fn idle_addresses_are_forgotten_once_many_are_tracked() {
        let pace = Pace::per_minute(1);
        let now = Timestamp(10_000_000);
        for n in 0..TRACKED as u32 {
            assert!(pace.allow(IpAddr::from(n.to_be_bytes()), now));
        }
        let later = now.after(std::time::Duration::from_secs(120));
        assert!(pace.allow("203.0.113.9".parse().unwrap(), later));
        assert!(pace.buckets.len() < 10, "{}", pace.buckets.len());
    }

    #[test]
    fn the_table_stays_bounded_when_every_address_is_busy() {
        let pace = Pace::per_minute(1);
        let now = Timestamp(10_000_000);
        for n in 0..(3 * TRACKED) as u32 {
            pace.charge(IpAddr::from(n.to_be_bytes()), now);
        }
        assert!(pace.buckets.len() <= TRACKED, "{}", pace.buckets.len());
    }
}
