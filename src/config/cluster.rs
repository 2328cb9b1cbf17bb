//! The `[cluster]` table: hubs sharing a contact center's channels over
//! NATS JetStream. Channels fall into partitions; each partition is owned
//! by one hub at a time, under a lease, and its commit log is a JetStream
//! stream that outlives any machine.

use std::net::SocketAddr;

use super::*;

/// The `[cluster]` table. Without it the hub runs alone on its own files,
/// as it always has.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This hub's id in the cluster (letters, digits, `_` and `-`, at
    /// most 32), unique among the hubs running at once.
    pub node: String,
    /// The NATS servers to connect to (`nats://host:port`); the client
    /// moves among them when one fails.
    pub nats: Vec<String>,
    /// How long a hub's leases (its membership, each partition it owns)
    /// last without a renewal (renewed every third of it): `"3s"`. When a
    /// partition's runs out another hub takes it over, and the old owner's
    /// appends fail from then on.
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// Copies JetStream keeps of the commit logs and the leases (1, 3 or
    /// 5; at most the number of NATS servers).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How many partitions the channels fall into: the same on every hub
    /// of the cluster, and never changed once chats were stored (a chat's
    /// partition is in its id). Far more than the hubs, so ownership moves
    /// in small steps.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// The address customers and agents are sent to when what they ask
    /// for is owned by this hub and they reached another (UDP, as
    /// `listen`); unset, `listen`, which must then be a specific address.
    #[serde(default)]
    pub advertise: Option<SocketAddr>,
}

fn default_partitions() -> u32 {
    16
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(3)
}

fn default_replicas() -> usize {
    3
}

/// The shortest and longest lease accepted.
const LEASE_TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);

impl ClusterConfig {
    /// Whether the values are usable, with what is wrong if not.
    pub(super) fn check(&self) -> Result<(), String> {
        let node_ok = !self.node.is_empty()
            && self.node.len() <= 32
            && self
                .node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !node_ok {
            return Err(format!(
                "[cluster] node {:?} must be 1 to 32 letters, digits, '_' or '-'",
                self.node
            ));
        }
        if self.nats.is_empty() {
            return Err("[cluster] nats must name at least one server".into());
        }
        for url in &self.nats {
            let parsed = url::Url::parse(url)
                .map_err(|err| format!("[cluster] nats {url:?} is not a URL: {err}"))?;
            if !matches!(parsed.scheme(), "nats" | "tls") || parsed.host_str().is_none() {
                return Err(format!(
                    "[cluster] nats {url:?} must be nats://host:port or tls://host:port"
                ));
            }
        }
        if !LEASE_TTL.contains(&self.lease_ttl) {
            return Err(format!(
                "[cluster] lease_ttl must be from 1s to 60s, not {:?}",
                self.lease_ttl
            ));
        }
        if !(1..=crate::core::partition::MAX_PARTITIONS).contains(&self.partitions) {
            return Err(format!(
                "[cluster] partitions must be from 1 to {}, not {}",
                crate::core::partition::MAX_PARTITIONS,
                self.partitions
            ));
        }
        if let Some(advertise) = self.advertise
            && advertise.ip().is_unspecified()
        {
            return Err(format!(
                "[cluster] advertise {advertise} must be an address clients can reach"
            ));
        }
        if !matches!(self.replicas, 1 | 3 | 5) {
            return Err(format!(
                "[cluster] replicas must be 1, 3 or 5, not {}",
                self.replicas
            ));
        }
        Ok(())
    }

    /// The stream holding partition `partition`'s commit log.
    pub fn log_stream(&self, partition: u32) -> String {
        format!("CHATHUB_P{partition}")
    }

    /// The subject of partition `partition`'s commit log.
    pub fn log_subject(&self, partition: u32) -> String {
        format!("chathub.log.p{partition}")
    }

    /// The object store bucket of partition `partition`'s shared files.
    pub fn files_bucket(&self, partition: u32) -> String {
        format!("chathub_files_p{partition}")
    }

    /// The address other hubs send this hub's clients to.
    pub fn advertised(&self, listen: SocketAddr) -> SocketAddr {
        self.advertise.unwrap_or(listen)
    }
}
