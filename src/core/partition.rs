//! How a cluster of hubs shares the work: channels fall into a fixed
//! number of partitions, a chat lives in its channel's partition, and each
//! partition is owned by one hub at a time.
//!
//! Everything here is pure and must give the same answer on every hub and
//! every build: a channel's partition is FNV-1a of its name (not the
//! standard library's hasher, which is seeded per process; with a
//! finalizer that spreads its bits), a chat's is in
//! the top bits of its id (so any hub routes a chat without asking), and
//! the hub a partition prefers is the rendezvous choice (the member with
//! the highest hash of partition and name), so adding or removing one hub
//! moves only the partitions it gains or loses.

use std::collections::BTreeMap;

use crate::core::ChannelId;

/// The bits below a partition number in every id a partition hands out
/// (chats, tickets, knowledge items, files): ids of partition `p` are
/// `p << PARTITION_SHIFT` and up.
pub const PARTITION_SHIFT: u32 = 48;

/// The most partitions a cluster may have.
pub const MAX_PARTITIONS: u32 = 1024;

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's last bytes barely reach its high bits (names that differ in
    // their last letter would prefer partitions together): a finalizer
    // (SplitMix64's) spreads every input bit over the whole word.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The partition of `channel` among `partitions`.
pub fn of_channel(channel: &ChannelId, partitions: u32) -> u32 {
    (fnv1a(&[channel.as_str().as_bytes()]) % u64::from(partitions.max(1))) as u32
}

/// The partition an id was handed out by.
pub fn of_id(id: u64) -> u32 {
    (id >> PARTITION_SHIFT) as u32
}

/// The first id partition `partition` hands out is one above this.
pub fn id_base(partition: u32) -> u64 {
    u64::from(partition) << PARTITION_SHIFT
}

/// Whether `id` is one partition `partition` may hand out.
pub fn id_in(id: u64, partition: u32) -> bool {
    id > id_base(partition) && of_id(id) == partition
}

/// The member that partition `partition` prefers: the rendezvous choice.
pub fn preferred<'a>(
    partition: u32,
    members: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    members.into_iter().max_by_key(|member| {
        (
            fnv1a(&[&partition.to_le_bytes(), member.as_bytes()]),
            *member,
        )
    })
}

/// What a hub should do about ownership, given who is alive and who owns
/// what.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions to take: preferring this hub, and owned by nobody.
    pub take: Vec<u32>,
    /// Partitions to hand over: owned by this hub, preferring another
    /// that is alive (which takes them once they are released).
    pub release: Vec<u32>,
}

/// The plan of hub `me` among the live `members` (`me` among them), with
/// `owners` naming the owner of each owned partition.
pub fn plan(me: &str, partitions: u32, members: &[&str], owners: &BTreeMap<u32, String>) -> Plan {
    let mut plan = Plan::default();
    for partition in 0..partitions {
        let Some(preferred) = preferred(partition, members.iter().copied()) else {
            continue;
        };
        match owners.get(&partition) {
            None if preferred == me => plan.take.push(partition),
            Some(owner) if owner == me && preferred != me => plan.release.push(partition),
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_partition_is_fixed_and_spread() {
        // Fixed: the same on every hub and build (these values are what the
        // cluster's stored ids and placements rest on).
        let pinned: Vec<u32> = ["support", "sales", "billing"]
            .iter()
            .map(|name| of_channel(&ChannelId::new(*name), 16))
            .collect();
        assert_eq!(pinned, vec![2, 14, 12]);
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|n| of_channel(&ChannelId::new(format!("channel-{n}")), 16))
            .collect();
        assert_eq!(
            spread.len(),
            16,
            "200 channels reach every one of 16 partitions"
        );
        assert_eq!(of_channel(&ChannelId::new("support"), 1), 0);
    }

    #[test]
    fn ids_carry_their_partition() {
        let id = id_base(5) + 42;
        assert_eq!(of_id(id), 5);
        assert!(id_in(id, 5));
        assert!(!id_in(id, 4));
        assert!(!id_in(id_base(5), 5), "the base itself is never handed out");
        assert_eq!(of_id(42), 0, "a single hub's ids are partition 0's");
    }

    #[test]
    fn a_new_member_takes_only_what_it_now_prefers() {
        let before = ["h1", "h2", "h3"];
        let after = ["h1", "h2", "h3", "h4"];
        let mut moved = 0;
        for partition in 0..256 {
            let was = preferred(partition, before).unwrap();
            let now = preferred(partition, after).unwrap();
            if was != now {
                assert_eq!(now, "h4", "a partition moves only to the newcomer");
                moved += 1;
            }
        }
        assert!(
            (30..=100).contains(&moved),
            "about a quarter moves: {moved}"
        );
    }

    #[test]
    fn the_plan_takes_what_is_free_and_preferred_and_hands_over_what_another_prefers() {
        let members = ["h1", "h2"];
        let owners = BTreeMap::new();
        let h1 = plan("h1", 8, &members, &owners);
        let h2 = plan("h2", 8, &members, &owners);
        assert!(h1.release.is_empty() && h2.release.is_empty());
        let mut all: Vec<u32> = h1.take.iter().chain(&h2.take).copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..8).collect::<Vec<_>>(),
            "every partition, by exactly one"
        );

        // h1 owns everything (it was alone); h2 joins: h1 hands over what
        // h2 prefers, and h2 takes nothing until it is released.
        let owners: BTreeMap<u32, String> = (0..8).map(|p| (p, "h1".to_owned())).collect();
        let h1 = plan("h1", 8, &members, &owners);
        assert_eq!(h1.release, h2.take);
        assert!(plan("h2", 8, &members, &owners).take.is_empty());

        // h2 dies with its partitions: once their leases lapse (no owner),
        // h1, alone, takes them all.
        let owners: BTreeMap<u32, String> = (0..8)
            .filter(|p| !h2.take.contains(p))
            .map(|p| (p, "h1".to_owned()))
            .collect();
        assert_eq!(plan("h1", 8, &["h1"], &owners).take, h2.take);
    }
}
