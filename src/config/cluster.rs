//! The `[cluster]` table: a hub that keeps its commit log on NATS
//! JetStream instead of its own disk, under a lease, so that it cannot run
//! twice and its log outlives the machine.

use super::*;

/// The `[cluster]` table. Without it the hub runs alone on its own files,
/// as it always has.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This hub's id in the cluster (letters, digits, `_` and `-`, at
    /// most 32): it names the hub's lease and its commit-log stream.
    pub node: String,
    /// The NATS servers to connect to (`nats://host:port`); the client
    /// moves among them when one fails.
    pub nats: Vec<String>,
    /// How long the hub's lease lasts without a renewal (renewed every
    /// third of it): `"3s"`. When it runs out another process may take the
    /// log over, and this one's appends fail from then on.
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// Copies JetStream keeps of the commit log and the lease (1, 3 or 5;
    /// at most the number of NATS servers).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
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
        if !matches!(self.replicas, 1 | 3 | 5) {
            return Err(format!(
                "[cluster] replicas must be 1, 3 or 5, not {}",
                self.replicas
            ));
        }
        Ok(())
    }

    /// The stream holding this hub's commit log.
    pub fn log_stream(&self) -> String {
        format!("CHATHUB_LOG_{}", self.node)
    }

    /// The subject of this hub's commit log.
    pub fn log_subject(&self) -> String {
        format!("chathub.log.{}", self.node)
    }

    /// The key of this hub's lease in the lease bucket.
    pub fn lease_key(&self) -> String {
        format!("log.{}", self.node)
    }
}
