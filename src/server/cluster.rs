//! A hub's part in a cluster: every third of a lease time it reads who is
//! alive and who owns which partition, takes the partitions it is the
//! preferred owner of that nobody holds, hands over those another live hub
//! now prefers, and gives up those whose lease or commit log it lost. A
//! hub that lost its membership (NATS out of reach for a lease time) gives
//! up every partition and joins again once it can; it does not exit, so
//! an outage of NATS stops acknowledgements, never the hubs.
//!
//! Each partition owned runs as a hub of its own (`Hub::start` over a
//! store whose commit log is the partition's stream), so taking a
//! partition over is exactly a restart: waiting chats back in their queue
//! in their original order with their original wait times, active chats
//! with their agents. Handing one over retires its hub (its connections
//! close, and their clients come back to wherever it is served next),
//! stops it (everything acknowledged is in the stream) and then releases
//! the lease, so the next owner need not wait it out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::{Hub, HubConfig};
use crate::cluster::{Cluster, Lease, WebAddress};
use crate::config::ClusterConfig;
use crate::core::partition;
use crate::server::partitions::{ClusterRoutes, Target};
use crate::server::{ServerError, private_dir};
use crate::store::{FileBucket, FileBytes, JetStreamTarget, Store, StoreOptions};
use crate::webhook::{WebhookSettings, Webhooks};

/// What starting a partition's hub takes.
pub(crate) struct Setup {
    pub cluster: ClusterConfig,
    /// Every channel and agent; each partition's hub serves its own.
    pub hub: HubConfig,
    pub data_dir: PathBuf,
    pub checkpoint_bytes: u64,
    pub webhooks: Vec<WebhookSettings>,
}

/// A partition this hub owns.
struct Owned {
    hub: Hub,
    webhooks: Webhooks,
    lease: Lease,
}

/// The task keeping this hub's share of the partitions.
pub(crate) struct ClusterRuntime {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ClusterRuntime {
    /// Starts keeping this hub's share, as a member by `membership`,
    /// routing through `routes`.
    pub(crate) fn start(
        cluster: Cluster,
        membership: Lease,
        routes: Arc<ClusterRoutes>,
        setup: Setup,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(cluster, membership, routes, Arc::new(setup), stopped));
        Self { stop, task }
    }

    /// Hands every partition over and leaves the cluster.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    cluster: Cluster,
    membership: Lease,
    routes: Arc<ClusterRoutes>,
    setup: Arc<Setup>,
    mut stop: watch::Receiver<bool>,
) {
    let me = cluster.node().to_owned();
    let tick = setup.cluster.lease_ttl / 3;
    let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
    let mut membership = Some(membership);
    loop {
        if membership.as_ref().is_none_or(Lease::is_lost) {
            if membership.take().is_some() {
                // Others may be taking this hub's partitions over now.
                tracing::warn!(
                    "lost this hub's membership of the cluster: giving its partitions up"
                );
                for (partition, gone) in std::mem::take(&mut owned) {
                    retire(&routes, partition, gone, false).await;
                }
            }
            match cluster.membership(std::time::Duration::ZERO).await {
                Ok(lease) => {
                    tracing::info!("joined the cluster again");
                    membership = Some(lease);
                }
                Err(err) => {
                    tracing::debug!("cannot join the cluster yet: {err}");
                    tokio::select! {
                        () = tokio::time::sleep(tick) => continue,
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        let failed: Vec<u32> = owned
            .iter()
            .filter(|(_, owned)| owned.lease.is_lost() || owned.hub.storage_failure().is_some())
            .map(|(partition, _)| *partition)
            .collect();
        for partition in failed {
            if let Some(gone) = owned.remove(&partition) {
                let why = gone
                    .hub
                    .storage_failure()
                    .unwrap_or_else(|| "its lease was lost".into());
                tracing::warn!(partition, "giving partition {partition} up: {why}");
                retire(&routes, partition, gone, false).await;
            }
        }
        if let Some(web) = routes.own_web()
            && let Err(err) = cluster.publish_web(&web).await
        {
            tracing::debug!("cannot say how browsers reach this hub: {err}");
        }
        match tokio::try_join!(cluster.members(), cluster.owners(), cluster.web_addresses()) {
            Ok((members, owners, webs)) => {
                let webs: BTreeMap<String, Arc<WebAddress>> = webs
                    .into_iter()
                    .map(|(node, web)| (node, Arc::new(web)))
                    .collect();
                routes.set_remote(
                    owners
                        .iter()
                        .filter(|(_, (node, _))| *node != me)
                        .map(|(partition, (node, addr))| {
                            let web = webs.get(node).cloned();
                            (*partition, Target { addr: *addr, web })
                        })
                        .collect(),
                );
                let owners: BTreeMap<u32, String> = owners
                    .into_iter()
                    .map(|(partition, (node, _))| (partition, node))
                    .collect();
                // This hub holds its membership: a read that missed it
                // (served by a lagging replica) must not make it hand
                // everything over.
                let mut names: Vec<&str> = members.keys().map(String::as_str).collect();
                if !names.contains(&me.as_str()) {
                    names.push(&me);
                }
                let plan = partition::plan(&me, setup.cluster.partitions, &names, &owners);
                for partition in plan.release {
                    if let Some(leaving) = owned.remove(&partition) {
                        tracing::info!(partition, "handing partition {partition} over");
                        retire(&routes, partition, leaving, true).await;
                    }
                }
                for partition in plan.take {
                    if owned.contains_key(&partition) || *stop.borrow() {
                        continue;
                    }
                    match take(&cluster, &routes, &setup, partition).await {
                        Ok(Some(taken)) => {
                            routes.serve(partition, taken.hub.clone());
                            owned.insert(partition, taken);
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::error!(partition, "cannot take partition {partition}: {err}");
                        }
                    }
                }
                metrics::gauge!("chathub_partitions_owned").set(owned.len() as f64);
            }
            Err(err) => tracing::warn!("cannot read the cluster's state: {err}"),
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.changed() => break,
        }
    }
    for (partition, leaving) in std::mem::take(&mut owned) {
        retire(&routes, partition, leaving, true).await;
    }
    if let Some(membership) = membership {
        membership.release().await;
    }
}

/// Takes partition `partition` if its lease is free: opens its store over
/// its stream (fencing out any previous owner) and starts its hub.
async fn take(
    cluster: &Cluster,
    routes: &ClusterRoutes,
    setup: &Setup,
    partition: u32,
) -> Result<Option<Owned>, ServerError> {
    let Some(lease) = cluster.try_take(partition).await? else {
        return Ok(None);
    };
    match start(cluster, routes, setup, partition, &lease).await {
        Ok((hub, webhooks, timeline)) => {
            // The failover's timeline after the lease: the takeover record
            // appended and the stream applied (the store open), then the
            // chats back in their actors (the hub's start).
            tracing::info!(
                partition,
                epoch = lease.epoch(),
                opened_ms = timeline.opened.as_millis() as u64,
                recovered_ms = timeline.recovered.as_millis() as u64,
                "took partition {partition} over"
            );
            metrics::counter!("chathub_partition_takeovers_total").increment(1);
            Ok(Some(Owned {
                hub,
                webhooks,
                lease,
            }))
        }
        Err(err) => {
            // Someone else may do better; nothing was acknowledged here.
            lease.release().await;
            Err(err)
        }
    }
}

/// How long taking a partition took, once its lease was held.
struct Timeline {
    /// The store open: the takeover appended, the stream read back and
    /// applied.
    opened: std::time::Duration,
    /// The hub started over it: the chats back in their actors.
    recovered: std::time::Duration,
}

async fn start(
    cluster: &Cluster,
    routes: &ClusterRoutes,
    setup: &Setup,
    partition: u32,
    lease: &Lease,
) -> Result<(Hub, Webhooks, Timeline), ServerError> {
    let started = std::time::Instant::now();
    let dir = setup
        .data_dir
        .join("partitions")
        .join(format!("p{partition}"));
    private_dir(&dir)?;
    private_dir(&dir.join("files"))?;
    let options = StoreOptions {
        checkpoint_bytes: setup.checkpoint_bytes,
        webhooks: setup
            .webhooks
            .iter()
            .map(|hook| hook.name.clone())
            .collect(),
        jetstream: Some(JetStreamTarget {
            runtime: tokio::runtime::Handle::current(),
            client: cluster.client().clone(),
            stream: setup.cluster.log_stream(partition),
            subject: setup.cluster.log_subject(partition),
            replicas: setup.cluster.replicas,
            node: cluster.node().to_owned(),
            epoch: lease.epoch(),
        }),
    };
    let store = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || Store::open_with(&dir, options))
            .await
            .map_err(|err| {
                crate::store::StoreError::Engine(format!("opening the store: {err}"))
            })??
    };
    let mut config = setup.hub.clone();
    config
        .channels
        .retain(|channel| routes.channel_partition(&channel.id) == partition);
    config
        .agents
        .retain(|agent| routes.agent_partition(&agent.id) == Some(partition));
    config.files = FileBytes::replicated(
        dir.join("files"),
        &FileBucket {
            client: cluster.client().clone(),
            bucket: setup.cluster.files_bucket(partition),
            replicas: setup.cluster.replicas,
        },
    )
    .await?;
    config.ids_after = partition::id_base(partition);
    let opened = started.elapsed();
    let hub = Hub::start(config, store.clone()).await?;
    let webhooks = Webhooks::start(&store, setup.webhooks.clone())?;
    let timeline = Timeline {
        opened,
        recovered: started.elapsed() - opened,
    };
    Ok((hub, webhooks, timeline))
}

/// Stops serving `partition` here: its connections are told to close, its
/// hub stops (everything acknowledged is in its stream), and, when
/// `graceful`, its lease is released for the next owner.
async fn retire(routes: &ClusterRoutes, partition: u32, owned: Owned, graceful: bool) {
    routes.unserve(partition);
    owned.hub.retire();
    owned.webhooks.shutdown().await;
    owned.hub.shutdown().await;
    if graceful && !owned.lease.is_lost() {
        owned.lease.release().await;
    }
    metrics::counter!("chathub_partition_handovers_total").increment(1);
}
