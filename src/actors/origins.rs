//! Who started the live chats: counts per customer connection and per
//! address, so one client cannot fill a channel's queue.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::actors::sink::ConnId;
use crate::core::{Limit, Limits};

/// Live chats by the connection and the address that started them.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    per_conn: DashMap<ConnId, usize>,
    per_ip: DashMap<IpAddr, usize>,
}

/// One live chat's place in the counts; given back when dropped (when the
/// chat's actor stops).
#[derive(Debug)]
pub(crate) struct OriginSlot {
    origins: Arc<Origins>,
    conn: ConnId,
    ip: Option<IpAddr>,
}

impl Origins {
    /// Counts a new live chat of `conn` (from `ip`, if known), unless that
    /// would pass a limit.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        conn: ConnId,
        ip: Option<IpAddr>,
        limits: &Limits,
    ) -> Result<OriginSlot, Limit> {
        if !take(&self.per_conn, conn, limits.chats_per_connection) {
            return Err(Limit::ChatsPerConnection);
        }
        if let Some(ip) = ip
            && !take(&self.per_ip, ip, limits.chats_per_ip)
        {
            give(&self.per_conn, conn);
            return Err(Limit::ChatsPerIp);
        }
        Ok(OriginSlot {
            origins: self.clone(),
            conn,
            ip,
        })
    }

    /// The limit a new chat of `conn` (from `ip`) would pass, if any;
    /// nothing is counted.
    pub(crate) fn at_cap(
        &self,
        conn: ConnId,
        ip: Option<IpAddr>,
        limits: &Limits,
    ) -> Option<Limit> {
        if count(&self.per_conn, &conn) >= limits.chats_per_connection {
            return Some(Limit::ChatsPerConnection);
        }
        match ip {
            Some(ip) if count(&self.per_ip, &ip) >= limits.chats_per_ip => Some(Limit::ChatsPerIp),
            _ => None,
        }
    }

    /// Live chats that `ip` started.
    #[cfg(test)]
    fn of_ip(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).map_or(0, |count| *count)
    }
}

fn count<K: std::hash::Hash + Eq>(map: &DashMap<K, usize>, key: &K) -> usize {
    map.get(key).map_or(0, |count| *count)
}

fn take<K: std::hash::Hash + Eq>(map: &DashMap<K, usize>, key: K, max: usize) -> bool {
    let mut count = map.entry(key).or_insert(0);
    if *count >= max {
        return false;
    }
    *count += 1;
    true
}

fn give<K: std::hash::Hash + Eq>(map: &DashMap<K, usize>, key: K) {
    map.remove_if_mut(&key, |_, count| {
        *count = count.saturating_sub(1);
        *count == 0
    });
}

impl Drop for OriginSlot {
    fn drop(&mut self) {
        give(&self.origins.per_conn, self.conn);
        if let Some(ip) = self.ip {
            give(&self.origins.per_ip, ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_and_an_address_get_their_share_and_it_comes_back() {
        let origins = Arc::new(Origins::default());
        let limits = Limits {
            chats_per_connection: 2,
            chats_per_ip: 3,
            ..Limits::default()
        };
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a1 = origins.reserve(ConnId(1), Some(ip), &limits).unwrap();
        let _a2 = origins.reserve(ConnId(1), Some(ip), &limits).unwrap();
        assert_eq!(
            origins.reserve(ConnId(1), Some(ip), &limits).unwrap_err(),
            Limit::ChatsPerConnection
        );
        let _b1 = origins.reserve(ConnId(2), Some(ip), &limits).unwrap();
        assert_eq!(
            origins.reserve(ConnId(3), Some(ip), &limits).unwrap_err(),
            Limit::ChatsPerIp
        );
        // The refused reservation left no count behind on connection 3.
        assert!(
            origins
                .per_conn
                .get(&ConnId(3))
                .is_none_or(|count| *count == 0)
        );
        drop(a1);
        assert_eq!(origins.of_ip(ip), 2);
        let _a3 = origins.reserve(ConnId(1), Some(ip), &limits).unwrap();
    }

    #[test]
    fn counts_go_away_with_the_last_chat() {
        let origins = Arc::new(Origins::default());
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        let slot = origins
            .reserve(ConnId(9), Some(ip), &Limits::default())
            .unwrap();
        drop(slot);
        assert!(origins.per_conn.is_empty() && origins.per_ip.is_empty());
    }
}
