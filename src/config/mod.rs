//! The hub's configuration file (TOML) and its embedded defaults.
//!
//! Every field has a default, so an empty file (or no file) is a usable
//! hub: listening on `127.0.0.1:4433`, data in `./chathub-data`, metrics on
//! `127.0.0.1:9464`, one channel `support`, and one agent `agent` whose
//! token is generated into the data folder on first start.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::channel::MAX_EDIT_WINDOW;
use crate::core::routing::{MAX_OFFER_TIMEOUT, MIN_OFFER_TIMEOUT, Policy, Routing};
use crate::core::sla::{MAX_FIRST_RESPONSE, MIN_FIRST_RESPONSE};
use crate::core::{
    AgentRole, ChannelId, ChannelSettings, IdentityKey, IdentityPolicy, Limits, OnAgentGone,
    SkillSet,
};

/// The shortest `idle_after` a channel may set.
pub const MIN_IDLE_AFTER: Duration = Duration::from_millis(100);

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML for this configuration.
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// The values contradict each other or are out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC endpoint listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the hub keeps its certificate, tokens and (later) its store.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// A certificate and key to use instead of the generated self-signed pair.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The WebTransport endpoint browsers connect to (off unless
    /// enabled).
    #[serde(default)]
    pub webtransport: WebTransportConfig,
    /// The widget listener: the browser SDK and chat widget, a demo page,
    /// and the WebTransport certificate's hash (off unless enabled).
    #[serde(default)]
    pub web: WebConfig,
    /// The store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The async runtime.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// How long an agent whose last connection closed stays Present, so a
    /// reconnect does not flap: `"5s"` (or, as before, `presence_grace_secs
    /// = 5`).
    #[serde(
        default = "default_presence_grace",
        alias = "presence_grace_secs",
        deserialize_with = "duration"
    )]
    pub presence_grace: Duration,
    /// What any one client may make the hub do.
    #[serde(default)]
    pub limits: Limits,
    /// Channels, as `[[channel]]` tables.
    #[serde(default = "default_channels", rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    /// Agents, as `[[agent]]` tables.
    #[serde(default = "default_agents", rename = "agent")]
    pub agents: Vec<AgentFileConfig>,
    /// Where chat lifecycle events are posted, as `[[webhook]]` tables.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// The commit log on NATS JetStream under a lease; without it, on the
    /// hub's own disk.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// PEM files of a certificate chain and its private key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// The Prometheus `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether to serve it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// TCP address of the HTTP listener.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_metrics_listen(),
        }
    }
}

/// The `[webtransport]` table: a second UDP endpoint where browsers reach
/// the hub over WebTransport (HTTP/3), served by the same connection task
/// and held to the same `[limits]` as the native one.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebTransportConfig {
    /// Whether to serve it.
    #[serde(default)]
    pub enabled: bool,
    /// UDP address it listens on; a port of its own beside `listen`.
    #[serde(default = "default_webtransport_listen")]
    pub listen: SocketAddr,
    /// The pages that may open sessions, by the `Origin` a browser sends:
    /// `"https://shop.example"` (scheme, host and port, no path), or `"*"`
    /// for any page. The hub's own `[web]` pages are always admitted
    /// (`http://localhost:<port>` and `http://<listen address>:<port>`), so
    /// the default, an empty list, admits those pages and no other site. A
    /// session without an `Origin` (a program, not a browser) is admitted.
    /// A reload applies a new list to the sessions that open from then on.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// In a cluster, the URL other hubs send browsers to for what this hub
    /// serves (`https://hub1.example:4434/chathub`); by default the
    /// `[cluster]` advertised address with this endpoint's port.
    #[serde(default)]
    pub advertise: Option<String>,
}

impl Default for WebTransportConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_webtransport_listen(),
            allowed_origins: Vec::new(),
            advertise: None,
        }
    }
}

impl WebTransportConfig {
    /// The origins of `allowed_origins`, read (the hub's own pages come on
    /// top); an entry that is not an origin is refused with the reason.
    pub fn origins(&self) -> Result<AllowedOrigins, ConfigError> {
        AllowedOrigins::parse(&self.allowed_origins)
            .map_err(|why| ConfigError::Invalid(format!("[webtransport] allowed_origins: {why}")))
    }
}

fn default_webtransport_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4434))
}

/// The `[web]` table: a plain HTTP/1.1 listener serving the chat widget
/// and the browser SDK (the `.js` files of `assets`, read at start), a
/// demo page at `/`, and `/chathub/cert-hashes.json`, the WebTransport
/// certificate's hash for pages to pass to the SDK. It answers GET and
/// HEAD of those paths only. Plain HTTP, so it must listen on a loopback
/// address: `http://localhost` is a secure context to a browser, and a
/// public site serves it through its TLS proxy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Whether to serve it (needs `[webtransport]`).
    #[serde(default)]
    pub enabled: bool,
    /// TCP address it listens on; loopback only.
    #[serde(default = "default_web_listen")]
    pub listen: SocketAddr,
    /// The folder of the built SDK and widget (`npm run build` in `web/`).
    #[serde(default = "default_web_assets")]
    pub assets: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: default_web_listen(),
            assets: default_web_assets(),
        }
    }
}

fn default_web_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4480))
}

fn default_web_assets() -> PathBuf {
    PathBuf::from("web/dist")
}

/// The configuration `serve` runs without a file: every default, with
/// WebTransport and the widget listener on, so a first start gives a page
/// to open. A file's missing tables stay off.
pub const EMBEDDED_DEFAULT: &str = "[webtransport]\nenabled = true\n\n[web]\nenabled = true\n";

/// The `[store]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Commit-log bytes after which the database is synced while the log
    /// goes on in its other file: more means fewer checkpoints and a longer
    /// replay after a crash (each of the two files holds about this much).
    #[serde(default = "default_checkpoint_bytes")]
    pub checkpoint_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            checkpoint_bytes: default_checkpoint_bytes(),
        }
    }
}

fn default_checkpoint_bytes() -> u64 {
    crate::store::StoreOptions::default().checkpoint_bytes
}

/// The `[runtime]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads running connections and actors; unset, one per core. (The
    /// store's two threads come on top.) Fewer leave cores to other
    /// programs on the machine, such as a load generator.
    #[serde(default)]
    pub workers: Option<usize>,
}

/// The smallest `checkpoint_bytes` accepted.
const MIN_CHECKPOINT_BYTES: u64 = 64 << 10;

fn yes() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4433))
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("chathub-data")
}

fn default_presence_grace() -> Duration {
    Duration::from_secs(5)
}

/// A duration written as humantime text (`"60s"`, `"250ms"`, `"15m"`) or,
/// as the `*_secs` fields always were, a whole number of seconds.
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Written::Text(text) => humantime_serde::re::humantime::parse_duration(&text)
            .map_err(|err| serde::de::Error::custom(format!("{text:?} is not a duration: {err}"))),
    }
}

fn default_channels() -> Vec<ChannelConfig> {
    vec![ChannelConfig {
        name: "support".into(),
        alert_after: default_alert_after(),
        offline_form: true,
        end_form: false,
        return_window: default_return_window(),
        welcome: None,
        queue_limit: default_queue_limit(),
        offline_message: None,
        file_limit_bytes: default_file_limit(),
        abandon_after: default_abandon_after(),
        identity: IdentityMode::Off,
        identity_secret: None,
        satisfaction: false,
        hours: None,
        priority: Default::default(),
        priority_aging: tables::default_priority_aging(),
        routing: RoutingMode::Pull,
        policy: PolicyMode::LeastBusy,
        offer_timeout: default_offer_timeout(),
        skills: Vec::new(),
        default_skills: Vec::new(),
        skill_fallback_after: tables::default_skill_fallback(),
        idle_after: None,
        on_agent_gone: AgentGoneMode::Keep,
        first_response_within: None,
        max_claimed_priority: tables::default_max_claimed_priority(),
        edit_window: tables::default_edit_window(),
        retention: None,
        file_retention: None,
        ticket_retention: None,
        partition: None,
    }]
}

fn default_agents() -> Vec<AgentFileConfig> {
    vec![AgentFileConfig {
        id: "agent".into(),
        name: Some("Agent".into()),
        token_hash: None,
        token: None,
        channels: None,
        capacity: default_capacity(),
        role: RoleName::Agent,
        supervises: None,
        skills: Vec::new(),
    }]
}

impl Default for Config {
    fn default() -> Self {
        Self::from_toml("").expect("the empty configuration is valid")
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
}

/// The prefix of the environment variables that override fields.
pub const ENV_PREFIX: &str = "CHATHUB_";

/// Variables with the prefix that are not configuration: the test suite's
/// own switches, set for a whole `cargo test` run and so seen by every hub
/// a test starts.
pub const NOT_CONFIGURATION: [&str; 5] = [
    "CHATHUB_BROWSER_TESTS",
    "CHATHUB_BLESS",
    "CHATHUB_CLUSTER_TESTS",
    "CHATHUB_CLUSTER_KILLS",
    "CHATHUB_NATS_SERVER",
];

impl Config {
    /// Parses and checks a configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with(text, std::iter::empty())
    }

    /// Parses a configuration, applies the overrides among `vars` (as from
    /// the environment: `CHATHUB_LISTEN=…` sets `listen`,
    /// `CHATHUB_LIMITS__CHATS_PER_IP=…` sets `[limits] chats_per_ip`; a
    /// double underscore steps into a table; values are TOML, or a string
    /// if they do not parse as TOML), and checks the result. Variables
    /// without the prefix, and those of [`NOT_CONFIGURATION`], are ignored. `[[channel]]` and `[[agent]]` tables
    /// are not reachable this way.
    pub fn from_toml_with(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)?;
        for (key, value) in vars {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if NOT_CONFIGURATION.contains(&key.as_str()) {
                continue;
            }
            set_field(&mut table, &key, path, &value)?;
        }
        let config: Self = toml::Value::Table(table).try_into()?;
        config.check()?;
        Ok(config)
    }

    /// Reads and checks the configuration in `path` (the embedded defaults
    /// without one), with the overrides of this process's `CHATHUB_*`
    /// environment variables.
    pub fn load_with_env(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => EMBEDDED_DEFAULT.to_owned(),
        };
        Self::from_toml_with(&text, std::env::vars())
    }

    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.store.checkpoint_bytes < MIN_CHECKPOINT_BYTES {
            return invalid(format!(
                "[store] checkpoint_bytes must be at least {MIN_CHECKPOINT_BYTES}, not {}",
                self.store.checkpoint_bytes
            ));
        }
        self.limits.check().map_err(ConfigError::Invalid)?;
        if let Some(cluster) = &self.cluster {
            cluster.check().map_err(ConfigError::Invalid)?;
            self.check_partitions(cluster)
                .map_err(ConfigError::Invalid)?;
        }
        self.webtransport.origins()?;
        let fit = |url: &String| {
            url.len() > "https://".len()
                && url.len() <= 2048
                && url.starts_with("https://")
                && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if self
            .webtransport
            .advertise
            .as_ref()
            .is_some_and(|url| !fit(url))
        {
            return Err(ConfigError::Invalid(
                "[webtransport] advertise is an https:// URL without spaces".into(),
            ));
        }
        if self.web.enabled && !self.webtransport.enabled {
            return invalid(
                "[web] serves browsers over WebTransport: enable [webtransport] too".into(),
            );
        }
        if self.web.enabled && !self.web.listen.ip().is_loopback() {
            return invalid(format!(
                "[web] listen {} is not a loopback address: the widget listener speaks plain HTTP; \
                 listen on 127.0.0.1 and serve it through a TLS proxy",
                self.web.listen
            ));
        }
        if self.runtime.workers == Some(0) {
            return invalid("[runtime] workers must be at least 1".into());
        }
        if self.channels.is_empty() {
            return invalid("at least one [[channel]] is needed".into());
        }
        let mut channels = HashSet::new();
        for channel in &self.channels {
            if !valid_name(&channel.name) {
                return invalid(format!(
                    "channel name {:?} must be 1-64 letters, digits, '.', '_' or '-'",
                    channel.name
                ));
            }
            if !channels.insert(channel.name.as_str()) {
                return invalid(format!("channel {:?} is declared twice", channel.name));
            }
            let secret = channel.identity_secret.as_deref().map_or(0, str::len);
            if channel.identity != IdentityMode::Off && secret < 32 {
                return invalid(format!(
                    "channel {:?}: identity = {:?} needs an identity_secret of at least 32 bytes",
                    channel.name, channel.identity
                ));
            }
            for (key, kept) in [
                ("retention", channel.retention),
                ("file_retention", channel.file_retention),
                ("ticket_retention", channel.ticket_retention),
            ] {
                if kept.is_some_and(|kept| kept.is_zero()) {
                    return invalid(format!(
                        "channel {:?}: {key} must be longer than zero (leave it out to keep for ever)",
                        channel.name
                    ));
                }
            }
            if !(MIN_OFFER_TIMEOUT..=MAX_OFFER_TIMEOUT).contains(&channel.offer_timeout) {
                return invalid(format!(
                    "channel {:?}: offer_timeout must be between {} and {}, not {}",
                    channel.name,
                    humantime_serde::re::humantime::format_duration(MIN_OFFER_TIMEOUT),
                    humantime_serde::re::humantime::format_duration(MAX_OFFER_TIMEOUT),
                    humantime_serde::re::humantime::format_duration(channel.offer_timeout),
                ));
            }
            if channel.idle_after.is_some_and(|idle| idle < MIN_IDLE_AFTER) {
                return invalid(format!(
                    "channel {:?}: idle_after must be at least {} (leave it out to never turn agents Away)",
                    channel.name,
                    humantime_serde::re::humantime::format_duration(MIN_IDLE_AFTER),
                ));
            }
            if let Some(within) = channel.first_response_within
                && !(MIN_FIRST_RESPONSE..=MAX_FIRST_RESPONSE).contains(&within)
            {
                return invalid(format!(
                    "channel {:?}: first_response_within must be between {} and {}, not {}",
                    channel.name,
                    humantime_serde::re::humantime::format_duration(MIN_FIRST_RESPONSE),
                    humantime_serde::re::humantime::format_duration(MAX_FIRST_RESPONSE),
                    humantime_serde::re::humantime::format_duration(within),
                ));
            }
            if channel.edit_window > MAX_EDIT_WINDOW {
                return invalid(format!(
                    "channel {:?}: edit_window must be at most {}, not {}",
                    channel.name,
                    humantime_serde::re::humantime::format_duration(MAX_EDIT_WINDOW),
                    humantime_serde::re::humantime::format_duration(channel.edit_window),
                ));
            }
            for (key, list) in [
                ("skills", &channel.skills),
                ("default_skills", &channel.default_skills),
            ] {
                if let Err(err) = SkillSet::new(list) {
                    return invalid(format!("channel {:?}: {key}: {err}", channel.name));
                }
            }
            if channel.queue_limit == 0 {
                return invalid(format!(
                    "channel {:?}: queue_limit must be at least 1",
                    channel.name
                ));
            }
        }
        let mut agents = HashSet::new();
        for agent in &self.agents {
            if !valid_name(&agent.id) {
                return invalid(format!(
                    "agent id {:?} must be 1-64 letters, digits, '.', '_' or '-'",
                    agent.id
                ));
            }
            if !agents.insert(agent.id.as_str()) {
                return invalid(format!("agent {:?} is declared twice", agent.id));
            }
            if agent.capacity == 0 {
                return invalid(format!("agent {:?}: capacity must be at least 1", agent.id));
            }
            if agent.token.is_some() && agent.token_hash.is_some() {
                return invalid(format!(
                    "agent {:?}: give token_hash or token, not both",
                    agent.id
                ));
            }
            if agent
                .token_hash
                .as_deref()
                .is_some_and(|hash| crate::actors::TokenDigest::parse(hash).is_none())
            {
                return invalid(format!(
                    "agent {:?}: token_hash must be sha256:<64 hex digits>, as `chathub token` prints",
                    agent.id
                ));
            }
            if agent.token.as_deref().is_some_and(|t| t.len() < 16) {
                return invalid(format!(
                    "agent {:?}: a token needs at least 16 characters",
                    agent.id
                ));
            }
            if let Err(err) = SkillSet::new(&agent.skills) {
                return invalid(format!("agent {:?}: skills: {err}", agent.id));
            }
            for channel in agent.channels.iter().flatten() {
                if !channels.contains(channel.as_str()) {
                    return invalid(format!(
                        "agent {:?} names unknown channel {channel:?}",
                        agent.id
                    ));
                }
            }
            match (agent.role, &agent.supervises) {
                (RoleName::Supervisor, None) => {
                    return invalid(format!(
                        "agent {:?}: a supervisor needs supervises = [\"channel\", ...]",
                        agent.id
                    ));
                }
                (RoleName::Supervisor, Some(list)) if list.is_empty() => {
                    return invalid(format!(
                        "agent {:?}: supervises must name at least one channel",
                        agent.id
                    ));
                }
                (RoleName::Agent | RoleName::Admin, Some(_)) => {
                    return invalid(format!(
                        "agent {:?}: only a role = \"supervisor\" lists supervises (an admin oversees every channel)",
                        agent.id
                    ));
                }
                _ => {}
            }
            for channel in agent.supervises.iter().flatten() {
                if !channels.contains(channel.as_str()) {
                    return invalid(format!(
                        "agent {:?} supervises unknown channel {channel:?}",
                        agent.id
                    ));
                }
            }
        }
        self.webhook_settings()?;
        Ok(())
    }

    /// The channels as the hub's settings.
    pub fn channel_settings(&self) -> Vec<ChannelSettings> {
        self.channels
            .iter()
            .map(|channel| ChannelSettings {
                id: ChannelId::new(channel.name.as_str()),
                alert_after: channel.alert_after,
                offline_form: channel.offline_form,
                end_form: channel.end_form,
                return_window: channel.return_window,
                welcome: channel.welcome.clone(),
                queue_limit: channel.queue_limit,
                offline_message: channel.offline_message.clone(),
                file_limit: channel.file_limit_bytes,
                abandon_after: channel.abandon_after,
                identity: match channel.identity {
                    IdentityMode::Off => IdentityPolicy::Off,
                    IdentityMode::Accept => IdentityPolicy::Accept,
                    IdentityMode::Require => IdentityPolicy::Require,
                },
                identity_key: channel
                    .identity_secret
                    .as_ref()
                    .map(|secret| IdentityKey(secret.as_bytes().to_vec())),
                satisfaction: channel.satisfaction,
                hours: channel.hours.as_ref().map(|hours| hours.0.clone()),
                priority: channel.priority,
                priority_aging: channel.priority_aging,
                routing: match channel.routing {
                    RoutingMode::Pull => Routing::Pull,
                    RoutingMode::Push => Routing::Push,
                },
                policy: match channel.policy {
                    PolicyMode::LeastBusy => Policy::LeastBusy,
                    PolicyMode::RoundRobin => Policy::RoundRobin,
                },
                offer_timeout: channel.offer_timeout,
                // Checked by `validate`.
                skills: SkillSet::new(&channel.skills).unwrap_or_default(),
                default_skills: SkillSet::new(&channel.default_skills).unwrap_or_default(),
                skill_fallback_after: channel.skill_fallback_after,
                idle_after: channel.idle_after,
                on_agent_gone: match channel.on_agent_gone {
                    AgentGoneMode::Keep => OnAgentGone::Keep,
                    AgentGoneMode::Requeue => OnAgentGone::Requeue,
                },
                first_response_within: channel.first_response_within,
                max_claimed_priority: channel.max_claimed_priority,
                edit_window: channel.edit_window,
                retention: crate::core::Retention {
                    chats: channel.retention,
                    files: channel.file_retention,
                    tickets: channel.ticket_retention,
                },
            })
            .collect()
    }

    /// An agent's role, with the channels a supervisor oversees.
    pub fn agent_role(&self, agent: &AgentFileConfig) -> AgentRole {
        match agent.role {
            RoleName::Agent => AgentRole::Agent,
            RoleName::Admin => AgentRole::Admin,
            RoleName::Supervisor => AgentRole::Supervisor {
                supervises: agent
                    .supervises
                    .iter()
                    .flatten()
                    .map(|name| ChannelId::new(name.as_str()))
                    .collect(),
            },
        }
    }

    /// The partition of `channel` in a cluster of `cluster`'s partitions:
    /// its `partition` if set, else one chosen from its name.
    pub fn partition_of(&self, cluster: &ClusterConfig, channel: &ChannelId) -> u32 {
        self.channels
            .iter()
            .find(|c| c.name == channel.as_str())
            .and_then(|c| c.partition)
            .unwrap_or_else(|| crate::core::partition::of_channel(channel, cluster.partitions))
    }

    /// The partition an agent works in: that of their channels (which
    /// the configuration's check holds to one), else, for an agent of no channel,
    /// one chosen from their id.
    pub fn agent_partition(&self, cluster: &ClusterConfig, agent: &AgentFileConfig) -> u32 {
        self.agent_channels(agent)
            .first()
            .map(|channel| self.partition_of(cluster, channel))
            .unwrap_or_else(|| {
                crate::core::partition::of_channel(
                    &ChannelId::new(agent.id.as_str()),
                    cluster.partitions,
                )
            })
    }

    /// Partitions set in range, and every agent's channels in one.
    fn check_partitions(&self, cluster: &ClusterConfig) -> Result<(), String> {
        if cluster.advertise.is_none() && self.listen.ip().is_unspecified() {
            return Err(format!(
                "[cluster] advertise is needed: listen {} is no address to send clients to",
                self.listen
            ));
        }
        for channel in &self.channels {
            if let Some(partition) = channel.partition
                && partition >= cluster.partitions
            {
                return Err(format!(
                    "[[channel]] {} partition {partition} is not below [cluster] partitions {}",
                    channel.name, cluster.partitions
                ));
            }
        }
        for agent in &self.agents {
            let mut partitions: Vec<(u32, ChannelId)> = self
                .agent_channels(agent)
                .into_iter()
                .map(|channel| (self.partition_of(cluster, &channel), channel))
                .collect();
            partitions.sort();
            partitions.dedup_by_key(|(partition, _)| *partition);
            if let [(first, one), (second, other), ..] = partitions.as_slice() {
                return Err(format!(
                    "agent {} works channels in partitions {first} ({one}) and {second} ({other}): \
                     in a cluster an agent's channels share a partition; give them the same \
                     [[channel]] partition",
                    agent.id
                ));
            }
        }
        Ok(())
    }

    /// The channels an agent works: those it lists, or all of them.
    pub fn agent_channels(&self, agent: &AgentFileConfig) -> Vec<ChannelId> {
        match &agent.channels {
            Some(names) => names
                .iter()
                .map(|name| ChannelId::new(name.as_str()))
                .collect(),
            None => self
                .channels
                .iter()
                .map(|channel| ChannelId::new(channel.name.as_str()))
                .collect(),
        }
    }
}

mod cluster;
mod env;
pub mod origins;
mod tables;
#[cfg(test)]
mod tests;
mod webhooks;

pub use cluster::ClusterConfig;
use env::set_field;
pub use origins::{AllowedOrigins, Origin};
pub use tables::{
    AgentFileConfig, AgentGoneMode, ChannelConfig, Hours, IdentityMode, PolicyMode, RoleName,
    RoutingMode,
};
use tables::{
    default_abandon_after, default_alert_after, default_capacity, default_file_limit,
    default_offer_timeout, default_queue_limit, default_return_window,
};
pub use webhooks::WebhookConfig;
