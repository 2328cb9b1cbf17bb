//! Per-address pacing of requests that cost the hub durable work, such as
//! offline forms: one token bucket per address, kept only while in use.

use std::net::IpAddr;

use dashmap::DashMap;

use crate::core::{Timestamp, TokenBucket};

/// Addresses tracked before idle ones are dropped.
const TRACKED: usize = 10_000;

/// A token bucket per address.
#[derive(Debug)]
pub(crate) struct Pace {
    per_sec: f64,
    burst: u32,
    buckets: DashMap<IpAddr, TokenBucket>,
}

impl Pace {
    /// `per_minute` requests a minute per address, `per_minute` at once.
    pub(crate) fn per_minute(per_minute: u32) -> Self {
        Self {
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            burst: per_minute.max(1),
            buckets: DashMap::new(),
        }
    }

    /// Whether `ip` may make one more request at `now`.
    pub(crate) fn allow(&self, ip: IpAddr, now: Timestamp) -> bool {
        if self.buckets.len() >= TRACKED && !self.buckets.contains_key(&ip) {
            // A bucket that refilled completely is the same as none.
            let full = std::time::Duration::from_secs_f64(f64::from(self.burst) / self.per_sec);
            self.buckets
                .retain(|_, bucket| now.since(bucket.last_taken()) < full);
        }
        self.buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.per_sec, self.burst, now))
            .take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
