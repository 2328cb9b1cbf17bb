//! Hubs sharing a contact center over NATS: the connection, the
//! membership of the hubs alive, and the leases under which each partition
//! is owned by one hub at a time
//! (see [`crate::core::partition`] for what a partition is).
//!
//! A lease says who *should* append to a partition's commit log; the log's
//! fence (every append expects the stream's last sequence, and an owner
//! opening the log first appends a takeover record) makes sure nobody else
//! *can*. So a hub that lost a lease without knowing it (paused, cut off)
//! still cannot acknowledge anything once another has taken over.

mod lease;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;

pub use lease::{Lease, LeaseError};

use crate::config::ClusterConfig;

/// The bucket of the hubs alive: a lease per hub, named after its node,
/// holding the address its clients are sent to.
pub const MEMBERS_BUCKET: &str = "chathub_members";

/// The bucket of the partitions' leases, `p<n>`, each holding its owner.
pub const PARTITIONS_BUCKET: &str = "chathub_partitions";

/// A hub's place in the cluster: its connection, its membership (held
/// while the value lives) and the buckets.
#[derive(Debug)]
pub struct Cluster {
    client: async_nats::Client,
    node: String,
    advertise: SocketAddr,
    ttl: Duration,
    members: kv::Store,
    partitions: kv::Store,
    membership: Lease,
}

fn nats(what: &str, err: impl std::fmt::Display) -> LeaseError {
    LeaseError::Nats(format!("{what}: {err}"))
}

/// What a lease's value says: the holder's node and address.
fn holder_value(node: &str, addr: SocketAddr) -> String {
    format!("{node} {addr}")
}

fn parse_holder(value: &[u8]) -> Option<(String, SocketAddr)> {
    let text = std::str::from_utf8(value).ok()?;
    let (node, addr) = text.split_once(' ')?;
    Some((node.to_owned(), addr.parse().ok()?))
}

/// The leases of `bucket` that stand, by key, with their holders.
async fn holders(bucket: &kv::Store) -> Result<BTreeMap<String, (String, SocketAddr)>, LeaseError> {
    let keys: Vec<String> = bucket
        .keys()
        .await
        .map_err(|err| nats("cannot list leases", err))?
        .try_collect()
        .await
        .map_err(|err| nats("cannot list leases", err))?;
    let mut held = BTreeMap::new();
    for key in keys {
        // A lease gone between the listing and the read is simply not
        // held.
        if let Some(value) = bucket
            .get(key.as_str())
            .await
            .map_err(|err| nats("cannot read a lease", err))?
            && let Some(holder) = parse_holder(&value)
        {
            held.insert(key, holder);
        }
    }
    Ok(held)
}

impl Cluster {
    /// Connects to the cluster's NATS servers, makes the buckets if need
    /// be and joins as `config.node`, sending clients to `advertise`.
    /// Waits (a few lease times) for a previous process of the same node
    /// to let go.
    pub async fn join(config: &ClusterConfig, advertise: SocketAddr) -> Result<Self, LeaseError> {
        let client = connect(config).await?;
        let jetstream = jetstream::new(client.clone());
        let bucket = |name: &str| kv::Config {
            bucket: name.into(),
            history: 1,
            num_replicas: config.replicas,
            storage: jetstream::stream::StorageType::File,
            // A lease nobody renews is gone after its time, by the
            // servers' clock: a dead holder's lease frees itself.
            max_age: config.lease_ttl,
            ..Default::default()
        };
        let members = jetstream
            .create_or_update_key_value(bucket(MEMBERS_BUCKET))
            .await
            .map_err(|err| nats("cannot open the members bucket", err))?;
        let partitions = jetstream
            .create_or_update_key_value(bucket(PARTITIONS_BUCKET))
            .await
            .map_err(|err| nats("cannot open the partitions bucket", err))?;
        let membership = Lease::take(
            &members,
            &config.node,
            &holder_value(&config.node, advertise),
            config.lease_ttl,
            config.lease_ttl * 4,
        )
        .await?;
        Ok(Self {
            client,
            node: config.node.clone(),
            advertise,
            ttl: config.lease_ttl,
            members,
            partitions,
            membership,
        })
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// This hub's node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The hubs alive, with the addresses their clients are sent to.
    pub async fn members(&self) -> Result<BTreeMap<String, SocketAddr>, LeaseError> {
        Ok(holders(&self.members).await?.into_values().collect())
    }

    /// The partitions owned now, with their owners' nodes and addresses.
    pub async fn owners(&self) -> Result<BTreeMap<u32, (String, SocketAddr)>, LeaseError> {
        Ok(holders(&self.partitions)
            .await?
            .into_iter()
            .filter_map(|(key, holder)| Some((key.strip_prefix('p')?.parse().ok()?, holder)))
            .collect())
    }

    /// Takes partition `partition`'s lease if nobody holds it.
    pub async fn try_take(&self, partition: u32) -> Result<Option<Lease>, LeaseError> {
        match Lease::take(
            &self.partitions,
            &format!("p{partition}"),
            &holder_value(&self.node, self.advertise),
            self.ttl,
            Duration::ZERO,
        )
        .await
        {
            Ok(lease) => Ok(Some(lease)),
            Err(LeaseError::Held { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Resolves once this hub's membership is lost (it was not renewed in
    /// time, or another process of the node took it).
    pub async fn lost(&self) -> String {
        self.membership.lost().await
    }

    /// Leaves the cluster: the membership is given up at once.
    pub async fn leave(self) {
        self.membership.release().await;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_its_node_and_address() {
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let value = holder_value("h1", addr);
        assert_eq!(
            parse_holder(value.as_bytes()),
            Some(("h1".to_owned(), addr))
        );
        assert_eq!(parse_holder(b"h1"), None);
        assert_eq!(parse_holder(b"h1 not-an-address"), None);
    }
}
