//! Which hub serves what a client asks for: the one hub of a hub alone,
//! or, in a cluster, the partition hub that owns the channel, chat or
//! agent in question: here, or on another hub the client is sent to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use crate::actors::Hub;
use crate::cluster::WebAddress;
use crate::core::{AgentId, ChannelId, ChatId, Limits, partition};
use crate::server::webtransport::SharedHashes;

/// Another hub of the cluster, as clients reach it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    /// Its QUIC address, for native clients.
    pub addr: SocketAddr,
    /// Its WebTransport endpoint, for browsers, if it has one.
    pub web: Option<Arc<WebAddress>>,
}

/// Where something is served.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    /// By this hub.
    Here(Hub),
    /// By another hub.
    There(Target),
    /// By nobody right now: the partition is changing hands.
    Nowhere(u32),
}

/// The routes of a hub, cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Partitions(Arc<Kind>);

#[derive(Debug)]
enum Kind {
    Alone(Hub),
    Cluster(Arc<ClusterRoutes>),
}

/// What a hub in a cluster knows of where partitions are served.
#[derive(Debug)]
pub(crate) struct ClusterRoutes {
    partitions: u32,
    /// The configured channels' partitions.
    channels: HashMap<ChannelId, u32>,
    /// The configured agents' partitions.
    agents: HashMap<AgentId, u32>,
    /// Where a connection waits until it asks for something: it serves no
    /// channel and no agent.
    lobby: Hub,
    /// The partitions this hub owns, each with its hub.
    local: DashMap<u32, Hub>,
    /// The owners of the others, as last read.
    remote: RwLock<HashMap<u32, Target>>,
    /// This hub's WebTransport endpoint, once it runs: the URL other hubs
    /// send browsers to, and its certificates' hashes as they are now.
    own_web: RwLock<Option<(String, SharedHashes)>>,
}

impl ClusterRoutes {
    pub(crate) fn new(
        partitions: u32,
        channels: HashMap<ChannelId, u32>,
        agents: HashMap<AgentId, u32>,
        lobby: Hub,
    ) -> Self {
        Self {
            partitions,
            channels,
            agents,
            lobby,
            local: DashMap::new(),
            remote: RwLock::default(),
            own_web: RwLock::default(),
        }
    }

    fn route(&self, partition: u32) -> Route {
        if let Some(hub) = self.local.get(&partition) {
            return Route::Here(hub.clone());
        }
        let remote = self
            .remote
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match remote.get(&partition) {
            Some(target) => Route::There(target.clone()),
            None => Route::Nowhere(partition),
        }
    }

    /// The partition of `channel`: configured, or chosen from its name.
    pub(crate) fn channel_partition(&self, channel: &ChannelId) -> u32 {
        self.channels
            .get(channel)
            .copied()
            .unwrap_or_else(|| partition::of_channel(channel, self.partitions))
    }

    /// The partition of a configured agent.
    pub(crate) fn agent_partition(&self, agent: &AgentId) -> Option<u32> {
        self.agents.get(agent).copied()
    }

    /// Serves `partition` here with `hub` from now on.
    pub(crate) fn serve(&self, partition: u32, hub: Hub) {
        self.local.insert(partition, hub);
    }

    /// Stops serving `partition` here; its hub, if it was served.
    pub(crate) fn unserve(&self, partition: u32) -> Option<Hub> {
        self.local.remove(&partition).map(|(_, hub)| hub)
    }

    /// How browsers reach this hub now, if it serves them.
    pub(crate) fn own_web(&self) -> Option<WebAddress> {
        let own = self
            .own_web
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (url, hashes) = own.as_ref()?;
        let hashes = hashes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Some(WebAddress {
            url: url.clone(),
            hashes,
        })
    }

    /// Where the partitions owned by other hubs are, as just read.
    pub(crate) fn set_remote(&self, owners: HashMap<u32, Target>) {
        *self
            .remote
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = owners;
    }
}

impl Partitions {
    /// The routes of a hub alone: everything is served here.
    pub(crate) fn alone(hub: Hub) -> Self {
        Self(Arc::new(Kind::Alone(hub)))
    }

    /// The routes of a hub in a cluster.
    pub(crate) fn cluster(routes: Arc<ClusterRoutes>) -> Self {
        Self(Arc::new(Kind::Cluster(routes)))
    }

    /// In a cluster, tells the other hubs (from the next renewal on) to
    /// send browsers to `url`, presenting one of `hashes`.
    pub(crate) fn serve_web(&self, url: String, hashes: SharedHashes) {
        if let Kind::Cluster(routes) = &*self.0 {
            *routes
                .own_web
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((url, hashes));
        }
    }

    /// Whether this hub is one of a cluster.
    pub(crate) fn clustered(&self) -> bool {
        matches!(*self.0, Kind::Cluster(_))
    }

    /// The hub a connection starts on: the hub alone, or a cluster's lobby.
    pub(crate) fn front(&self) -> &Hub {
        match &*self.0 {
            Kind::Alone(hub) => hub,
            Kind::Cluster(routes) => &routes.lobby,
        }
    }

    /// What any one client may make the hub do.
    pub(crate) fn limits(&self) -> &Limits {
        self.front().limits()
    }

    /// Where `channel`'s chats are started.
    pub(crate) fn channel(&self, channel: &ChannelId) -> Route {
        match &*self.0 {
            Kind::Alone(hub) => Route::Here(hub.clone()),
            Kind::Cluster(routes) => routes.route(routes.channel_partition(channel)),
        }
    }

    /// Where `chat` lives.
    pub(crate) fn chat(&self, chat: ChatId) -> Route {
        match &*self.0 {
            Kind::Alone(hub) => Route::Here(hub.clone()),
            Kind::Cluster(routes) => routes.route(partition::of_id(chat.0)),
        }
    }

    /// Where `agent` signs in: the partition of their channels. An agent
    /// the configuration does not name signs in at the lobby, which
    /// refuses them as any hub would.
    pub(crate) fn agent(&self, agent: &AgentId) -> Route {
        match &*self.0 {
            Kind::Alone(hub) => Route::Here(hub.clone()),
            Kind::Cluster(routes) => match routes.agents.get(agent) {
                Some(partition) => routes.route(*partition),
                None => Route::Here(routes.lobby.clone()),
            },
        }
    }
}
