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

/// The prefix of the keys in [`MEMBERS_BUCKET`] where hubs say how
/// browsers reach them (`web.<node>`): rewritten as often as a membership,
/// gone as soon as one.
const WEB_PREFIX: &str = "web.";

/// How browsers reach a hub: its WebTransport URL and the hashes of the
/// certificates it may present (in hex, the one in use first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebAddress {
    /// `https://host:port/chathub`.
    pub url: String,
    /// SHA-256 of each certificate, in hex.
    pub hashes: Vec<String>,
}

impl WebAddress {
    /// As stored: the URL, a space, the hashes separated by commas.
    pub fn to_value(&self) -> String {
        format!("{} {}", self.url, self.hashes.join(","))
    }

    /// Reads what [`to_value`](Self::to_value) wrote.
    pub fn parse(value: &str) -> Option<Self> {
        let (url, hashes) = value.split_once(' ')?;
        let hashes: Vec<String> = hashes
            .split(',')
            .filter(|hash| !hash.is_empty())
            .map(str::to_owned)
            .collect();
        let hex = |hash: &String| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (url.starts_with("https://") && !url.contains(' ') && hashes.iter().all(hex)).then(|| {
            Self {
                url: url.to_owned(),
                hashes,
            }
        })
    }
}

/// The bucket of the partitions' leases, `p<n>`, each holding its owner.
pub const PARTITIONS_BUCKET: &str = "chathub_partitions";

/// How many times a starting hub asks for a bucket before it gives up.
const BUCKET_TRIES: u32 = 30;

/// A hub's place in the cluster: its connection and the buckets.
#[derive(Debug)]
pub struct Cluster {
    client: async_nats::Client,
    node: String,
    advertise: SocketAddr,
    ttl: Duration,
    members: kv::Store,
    partitions: kv::Store,
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
    /// be and joins as `config.node`, sending clients to `advertise`: the
    /// cluster and the membership lease. Waits (a few lease times) for a
    /// previous process of the same node to let go.
    pub async fn join(
        config: &ClusterConfig,
        advertise: SocketAddr,
    ) -> Result<(Self, Lease), LeaseError> {
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
        // A cluster of NATS servers that is still electing its JetStream
        // leader answers nothing for a while: keep asking, for a bounded
        // time.
        let open = |name: &'static str| {
            let (jetstream, config) = (jetstream.clone(), bucket(name));
            async move {
                let mut tries = 0;
                loop {
                    match jetstream.create_or_update_key_value(config.clone()).await {
                        Ok(bucket) => return Ok(bucket),
                        Err(err) if tries < BUCKET_TRIES => {
                            tracing::info!("the {name} bucket is not ready yet: {err}");
                            tries += 1;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(err) => {
                            return Err(nats(&format!("cannot open the {name} bucket"), err));
                        }
                    }
                }
            }
        };
        let members = open(MEMBERS_BUCKET).await?;
        let partitions = open(PARTITIONS_BUCKET).await?;
        let cluster = Self {
            client,
            node: config.node.clone(),
            advertise,
            ttl: config.lease_ttl,
            members,
            partitions,
        };
        let membership = cluster.membership(config.lease_ttl * 4).await?;
        Ok((cluster, membership))
    }

    /// Takes this hub's membership, waiting up to `patience` for one still
    /// held (by an earlier process of the node, or by this one before
    /// NATS went away).
    pub async fn membership(&self, patience: Duration) -> Result<Lease, LeaseError> {
        Lease::take(
            &self.members,
            &self.node,
            &holder_value(&self.node, self.advertise),
            self.ttl,
            patience,
        )
        .await
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
        Ok(holders(&self.members)
            .await?
            .into_iter()
            .filter(|(key, _)| !key.starts_with(WEB_PREFIX))
            .map(|(_, holder)| holder)
            .collect())
    }

    /// Says how browsers reach this hub, for a lease time (call it as
    /// often as a lease is renewed).
    pub async fn publish_web(&self, web: &WebAddress) -> Result<(), LeaseError> {
        self.members
            .put(
                format!("{WEB_PREFIX}{}", self.node),
                web.to_value().into_bytes().into(),
            )
            .await
            .map_err(|err| nats("cannot publish the WebTransport address", err))?;
        Ok(())
    }

    /// How browsers reach the hubs that said so, by node.
    pub async fn web_addresses(&self) -> Result<BTreeMap<String, WebAddress>, LeaseError> {
        let keys: Vec<String> = self
            .members
            .keys()
            .await
            .map_err(|err| nats("cannot list members", err))?
            .try_filter(|key| std::future::ready(key.starts_with(WEB_PREFIX)))
            .try_collect()
            .await
            .map_err(|err| nats("cannot list members", err))?;
        let mut webs = BTreeMap::new();
        for key in keys {
            if let Some(value) = self
                .members
                .get(key.as_str())
                .await
                .map_err(|err| nats("cannot read a WebTransport address", err))?
                && let Ok(value) = std::str::from_utf8(&value)
                && let Some(web) = WebAddress::parse(value)
            {
                webs.insert(key[WEB_PREFIX.len()..].to_owned(), web);
            }
        }
        Ok(webs)
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

    #[test]
    fn a_web_address_reads_back_and_nothing_else_passes_for_one() {
        let web = WebAddress {
            url: "https://10.0.0.2:4434/chathub".into(),
            hashes: vec!["ab".repeat(32), "0F".repeat(32)],
        };
        assert_eq!(WebAddress::parse(&web.to_value()), Some(web));
        let none = WebAddress {
            url: "https://hub.example/chathub".into(),
            hashes: Vec::new(),
        };
        assert_eq!(WebAddress::parse(&none.to_value()), Some(none));
        // A membership's value, a URL that is not https, a short hash.
        assert_eq!(WebAddress::parse("h1 127.0.0.1:4433"), None);
        assert_eq!(WebAddress::parse("http://hub.example/chathub "), None);
        assert_eq!(WebAddress::parse("https://hub.example/chathub abcd"), None);
    }
}
