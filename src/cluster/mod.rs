//! A hub among others over NATS: the connection, and the lease under which
//! a hub keeps its commit log on JetStream
//! ([`JetStreamTarget`](crate::store::JetStreamTarget)).
//!
//! The lease says who should append; the commit log's fence (every append
//! expects the stream's last sequence, and an owner opening the log first
//! appends a takeover record) makes sure nobody else can. So a hub that
//! lost its lease without knowing it (paused, cut off) still cannot
//! acknowledge anything once another has taken over.

mod lease;

pub use lease::{Lease, LeaseError};

use crate::config::ClusterConfig;

/// The bucket holding the leases.
pub const LEASE_BUCKET: &str = "chathub_leases";

/// Connects to the cluster's NATS servers (following them as they come
/// and go).
pub async fn connect(config: &ClusterConfig) -> Result<async_nats::Client, LeaseError> {
    let servers = config
        .nats
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| LeaseError::Nats(format!("a server address: {err}")))?;
    async_nats::ConnectOptions::new()
        .name(format!("chathub {}", config.node))
        .connection_timeout(config.lease_ttl)
        .connect(servers)
        .await
        .map_err(|err| LeaseError::Nats(format!("cannot connect to {:?}: {err}", config.nats)))
}
