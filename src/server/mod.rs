//! The QUIC endpoint: TLS, the accept loop, and one task per connection
//! that turns frames into hub calls and hub events into frames.
//!
//! ```no_run
//! # async fn run() -> Result<(), chathub::server::ServerError> {
//! let config = chathub::config::Config::default();
//! let server = chathub::server::Server::start(&config).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod admission;
mod cluster;
mod connection;
#[cfg(unix)]
pub mod control;
mod files;
pub mod metrics;
mod partitions;
mod reload;
mod requests;
mod site;
pub mod tls;
mod webtransport;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::actors::{AgentConfig, Hub, HubConfig, HubError, TokenDigest};
use crate::config::Config;
use crate::core::AgentId;
use crate::server::admission::{Admission, Verdict};
use crate::store::{FileBytes, Store, StoreError, StoreOptions};
use crate::webhook::Webhooks;

pub use reload::{ReloadError, Reloaded};
pub use tls::TlsError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The certificate or key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file or socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The actors could not start.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration does not hold.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Webhook delivery could not start.
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    /// The cluster's NATS servers or the hub's lease.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::LeaseError),
}

/// A running hub with its QUIC endpoint.
pub struct Server {
    endpoint: quinn::Endpoint,
    hub: Hub,
    cert_path: PathBuf,
    data_dir: PathBuf,
    accept: JoinHandle<()>,
    webhooks: Webhooks,
    /// The WebTransport endpoint, when enabled.
    web: Option<webtransport::WebEndpoint>,
    /// The widget listener, when enabled.
    site: Option<site::SiteListener>,
    /// The configuration served: as started, with the channels and agents
    /// of the last reload.
    running: tokio::sync::Mutex<Config>,
    /// Where what clients ask for is served.
    partitions: partitions::Partitions,
    /// In a cluster, the task keeping this hub's share of the partitions.
    cluster: Option<cluster::ClusterRuntime>,
}

impl Server {
    /// Starts the actors, sets up TLS (generating a self-signed certificate
    /// into the data folder if none is configured), and listens.
    pub async fn start(config: &Config) -> Result<Self, ServerError> {
        let data_dir = config.data_dir.clone();
        private_dir(&data_dir)?;
        let identity = tls::load_or_create(&data_dir, config.tls.as_ref())?;
        private_dir(&data_dir.join("files"))?;
        let server_config = tls::server_config(&identity, &config.limits)?;
        let webhook_settings = config.webhook_settings()?;
        let endpoint = crate::udp::endpoint(
            config.listen,
            crate::udp::SERVER_BUFFER_BYTES,
            Some(server_config),
        )
        .map_err(|source| ServerError::Io {
            what: format!("cannot listen on {}/udp", config.listen),
            source,
        })?;
        let full = hub_config(config, &data_dir)?;
        let (hub, webhooks, partitions, cluster) = match &config.cluster {
            None => {
                let store = open_store(&data_dir, store_options(config)).await?;
                for file in ["chathub.redb", "chathub.wal", "chathub.wal.1"] {
                    private_file(&data_dir.join(file))?;
                }
                let hub = Hub::start(full, store.clone()).await?;
                let webhooks = Webhooks::start(&store, webhook_settings)?;
                let partitions = partitions::Partitions::alone(hub.clone());
                (hub, webhooks, partitions, None)
            }
            Some(settings) => {
                let listening = endpoint.local_addr().map_err(|source| ServerError::Io {
                    what: "the endpoint's address".into(),
                    source,
                })?;
                let advertise = settings.advertised(listening);
                let (joined, membership) =
                    crate::cluster::Cluster::join(settings, advertise).await?;
                tracing::info!(node = %settings.node, %advertise, "joined the cluster");
                // The lobby: where a connection waits until it asks for
                // something a partition serves. It serves no channel and
                // stores nothing of its own; it knows the agents, to check
                // their tokens before sending them where they are served.
                let lobby_dir = data_dir.join("lobby");
                private_dir(&lobby_dir)?;
                let lobby_store = open_store(&lobby_dir, StoreOptions::default()).await?;
                let lobby = Hub::start(
                    HubConfig {
                        channels: Vec::new(),
                        files: FileBytes::local(lobby_dir.join("files")),
                        ..full.clone()
                    },
                    lobby_store.clone(),
                )
                .await?;
                let channel_partitions: std::collections::HashMap<_, _> = full
                    .channels
                    .iter()
                    .map(|channel| {
                        (
                            channel.id.clone(),
                            config.partition_of(settings, &channel.id),
                        )
                    })
                    .collect();
                let agent_partitions: std::collections::HashMap<_, _> = config
                    .agents
                    .iter()
                    .map(|agent| {
                        (
                            AgentId::new(agent.id.as_str()),
                            config.agent_partition(settings, agent),
                        )
                    })
                    .collect();
                let routes = std::sync::Arc::new(partitions::ClusterRoutes::new(
                    settings.partitions,
                    channel_partitions,
                    agent_partitions,
                    lobby.clone(),
                ));
                let runtime = cluster::ClusterRuntime::start(
                    joined,
                    membership,
                    routes.clone(),
                    cluster::Setup {
                        cluster: settings.clone(),
                        hub: full,
                        data_dir: data_dir.clone(),
                        checkpoint_bytes: config.store.checkpoint_bytes,
                        webhooks: webhook_settings,
                    },
                );
                let webhooks = Webhooks::start(&lobby_store, Vec::new())?;
                (
                    lobby,
                    webhooks,
                    partitions::Partitions::cluster(routes),
                    Some(runtime),
                )
            }
        };
        metrics::export_from_start(
            &config
                .channel_settings()
                .into_iter()
                .map(|channel| channel.id)
                .collect::<Vec<_>>(),
        );
        // One admission for both endpoints: a browser's sessions and a
        // native SDK's connections count against the same caps.
        let admission = Admission::new(partitions.limits().clone());
        let web = if config.webtransport.enabled {
            Some(webtransport::start(
                &config.webtransport,
                &data_dir,
                partitions.clone(),
                admission.clone(),
            )?)
        } else {
            None
        };
        // Other hubs of a cluster send browsers here for what this hub
        // serves.
        if let (Some(endpoint), Some(settings)) = (&web, &config.cluster) {
            let port = endpoint
                .local_addr()
                .unwrap_or(config.webtransport.listen)
                .port();
            let url = config.webtransport.advertise.clone().unwrap_or_else(|| {
                let quic = endpoint.local_addr().unwrap_or(config.listen);
                let host = settings.advertised(quic).ip();
                format!(
                    "https://{}{}",
                    SocketAddr::new(host, port),
                    connection::WEBTRANSPORT_PATH
                )
            });
            partitions.serve_web(url, endpoint.hashes.clone());
        }
        // The configuration's check makes `[web]` need `[webtransport]`.
        let site = match (&web, config.web.enabled) {
            (Some(endpoint), true) => {
                let webtransport = endpoint.local_addr().unwrap_or(config.webtransport.listen);
                let site = site::start(&config.web, webtransport, endpoint.hashes.clone()).await?;
                // The hub's own pages open sessions whatever the list says.
                let addr = site.local_addr();
                endpoint.origins.set_own(vec![
                    crate::config::Origin::http_localhost(addr.port()),
                    crate::config::Origin::http(addr.ip(), addr.port()),
                ]);
                Some(site)
            }
            _ => None,
        };
        if let Some(endpoint) = &web
            && !endpoint.origins.admits_some()
        {
            tracing::warn!(
                "[webtransport] admits no page: [web] is off and allowed_origins is empty, so \
                 browsers are refused (list the origins of the pages that hold the widget or \
                 the console)"
            );
        }
        let accept = tokio::spawn(accept_loop(endpoint.clone(), partitions.clone(), admission));
        Ok(Self {
            endpoint,
            hub,
            cert_path: identity.cert_path,
            data_dir,
            accept,
            webhooks,
            web,
            site,
            running: tokio::sync::Mutex::new(config.clone()),
            partitions,
            cluster,
        })
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .expect("a bound endpoint has a local address")
    }

    /// The UDP address browsers reach over WebTransport, when enabled
    /// (`[webtransport]`); the session's URL is
    /// `https://<host>:<port>/chathub`.
    pub fn webtransport_addr(&self) -> Option<SocketAddr> {
        self.web
            .as_ref()
            .and_then(webtransport::WebEndpoint::local_addr)
    }

    /// The TCP address of the widget listener, when enabled (`[web]`):
    /// the demo page is `http://<addr>/`, the widget `http://<addr>/widget.js`,
    /// the agent console `http://<addr>/console`.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.site.as_ref().map(site::SiteListener::local_addr)
    }

    /// The SHA-256 of the WebTransport certificate in use, in hex, for a
    /// page's `serverCertificateHashes`; it changes when the certificate
    /// is replaced (also written to `<data_dir>/webtransport-cert.sha256`).
    pub fn webtransport_cert_hash(&self) -> Option<String> {
        self.web.as_ref().map(webtransport::WebEndpoint::hash)
    }

    /// Replaces the generated WebTransport certificate now, as the hub
    /// does on its own before the certificate expires (after a suspected
    /// leak of its key, say), and answers the new one's hash (`None` with
    /// WebTransport off). Open sessions keep the certificate they were
    /// made with; pages read the new hash from `[web]` when they connect
    /// again.
    pub async fn replace_webtransport_certificate(&self) -> Result<Option<String>, ServerError> {
        match &self.web {
            Some(web) => web.replace_certificate().await.map(Some),
            None => Ok(None),
        }
    }

    /// The PEM certificate clients should trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Where a generated agent token is kept.
    pub fn agent_token_path(&self, agent: &AgentId) -> PathBuf {
        token_path(&self.data_dir, agent.as_str())
    }

    /// Resolves, with the reason, once the store stopped writing after a
    /// failure; see [`Hub::storage_failed`].
    pub async fn failed(&self) -> String {
        // In a cluster a partition whose store failed is given up and
        // taken again (here or by another hub); only the lobby's own store
        // failing stops this process.
        self.hub.storage_failed().await
    }

    /// The hub behind the endpoint (in a cluster, the lobby, where a
    /// connection waits until it asks for something a partition serves).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Closes every connection, stops webhook delivery and the actors,
    /// and waits briefly for the endpoint to go idle.
    pub async fn shutdown(self) {
        // In a cluster, the partitions go to the other hubs first (their
        // stores closed, their leases released) while this hub still
        // answers: its clients are sent on to the new owners.
        if let Some(cluster) = self.cluster {
            cluster.shutdown().await;
        }
        if let Some(site) = self.site {
            site.shutdown();
        }
        if let Some(web) = self.web {
            web.shutdown().await;
        }
        self.endpoint.close(
            crate::protocol::CloseCode::Shutdown.code().into(),
            b"the hub is shutting down",
        );
        // The accept loop ends with the endpoint and waits for its
        // connections, which hold the hub, to finish.
        let mut accept = self.accept;
        if tokio::time::timeout(Duration::from_secs(5), &mut accept)
            .await
            .is_err()
        {
            accept.abort();
        }
        // Before the hub closes the store they remove delivered rows from.
        self.webhooks.shutdown().await;
        self.hub.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// The store options of a hub alone.
fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        checkpoint_bytes: config.store.checkpoint_bytes,
        webhooks: config
            .webhooks
            .iter()
            .map(|hook| hook.name.clone())
            .collect(),
        jetstream: None,
    }
}

/// Opens a store off the runtime's threads (it reads the database, and a
/// commit log on JetStream waits for the servers).
async fn open_store(dir: &Path, options: StoreOptions) -> Result<Store, ServerError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || Store::open_with(&dir, options))
        .await
        .map_err(|err| StoreError::Engine(format!("opening the store: {err}")))?
        .map_err(ServerError::from)
}

/// Creates `dir` if needed and makes it its owner's alone (0700): the data
/// folder holds every transcript, ticket and file.
fn private_dir(dir: &Path) -> Result<(), ServerError> {
    let failed = |source| ServerError::Io {
        what: format!("cannot create the private folder {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    }
    Ok(())
}

/// Makes an existing file its owner's alone (0600).
fn private_file(path: &Path) -> Result<(), ServerError> {
    #[cfg(unix)]
    if path.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ServerError::Io {
                what: format!("cannot make {} private", path.display()),
                source,
            },
        )?;
    }
    Ok(())
}

fn token_path(data_dir: &Path, agent: &str) -> PathBuf {
    data_dir.join("agent-tokens").join(format!("{agent}.token"))
}

/// The hub's view of the configuration, with generated tokens filled in.
fn hub_config(config: &Config, data_dir: &Path) -> Result<HubConfig, ServerError> {
    let mut agents = Vec::new();
    for agent in &config.agents {
        let token = match (&agent.token_hash, &agent.token) {
            (Some(hash), _) => TokenDigest::parse(hash).ok_or_else(|| ServerError::Io {
                what: format!("agent {:?}: an unreadable token_hash", agent.id),
                source: std::io::Error::other("token_hash must be sha256:<64 hex digits>"),
            })?,
            (None, Some(token)) => {
                tracing::warn!(
                    "agent {:?}'s token is in the configuration in clear; put its token_hash there instead (`chathub token` prints both)",
                    agent.id
                );
                TokenDigest::of(token)
            }
            (None, None) => {
                TokenDigest::of(&load_or_create_token(&token_path(data_dir, &agent.id))?)
            }
        };
        agents.push(AgentConfig {
            id: AgentId::new(agent.id.as_str()),
            name: agent.name.clone().unwrap_or_else(|| agent.id.clone()),
            token,
            channels: config.agent_channels(agent),
            capacity: agent.capacity,
            role: config.agent_role(agent),
            // Checked when the configuration was read.
            skills: crate::core::SkillSet::new(&agent.skills).unwrap_or_default(),
        });
    }
    Ok(HubConfig {
        channels: config.channel_settings(),
        agents,
        presence_grace: config.presence_grace,
        files: FileBytes::local(data_dir.join("files")),
        limits: config.limits.clone(),
        ids_after: 0,
    })
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    partitions: partitions::Partitions,
    admission: std::sync::Arc<Admission>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let ip = crate::core::limits::address_key(incoming.remote_address().ip());
                    let validated = incoming.remote_address_validated();
                    match admission.admit(ip, validated, std::time::Instant::now()) {
                        Verdict::Accept(pass) => {
                            connections.spawn(connection::handle(
                                partitions.clone(),
                                incoming,
                                pass,
                            ));
                        }
                        Verdict::Retry => {
                            ::metrics::counter!("chathub_retries_total").increment(1);
                            if let Err(err) = incoming.retry() {
                                // Only an attempt that already answered a
                                // Retry cannot be asked again; it is counted
                                // as validated and never gets here.
                                err.into_incoming().ignore();
                            }
                        }
                        Verdict::Refuse(limit) => {
                            refused(limit);
                            incoming.refuse();
                        }
                    }
                }
                None => break,
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}
pub(crate) use crate::actors::count_refusal as refused;

/// A new random agent token: 24 bytes from the system's random source, in
/// hex.
pub fn new_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(|_| {
        ServerError::Io {
            what: "cannot generate an agent token".into(),
            source: std::io::Error::other("the system random source failed"),
        }
    })?;
    Ok(crate::core::hex::encode(&bytes))
}

/// Reads the token kept in `path`, or creates a random one there, for agents
/// whose token is not in the configuration.
fn load_or_create_token(path: &Path) -> Result<String, ServerError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let token = text.trim().to_owned();
        if token.len() >= 16 {
            return Ok(token);
        }
    }
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let token = new_token()?;
    tls::write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(dir.path(), "agent");
        let token = load_or_create_token(&path).unwrap();
        assert_eq!(token.len(), 48);
        assert_eq!(load_or_create_token(&path).unwrap(), token);
    }
}
