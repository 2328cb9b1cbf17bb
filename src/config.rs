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

use crate::core::{ChannelId, ChannelSettings, IdentityKey, IdentityPolicy, Limits};

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
}

/// PEM files of a certificate chain and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// The Prometheus `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize)]
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

/// The `[store]` table.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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

/// Whether a channel takes signed customer identities: `"off"` (the
/// default), `"accept"` or `"require"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Customers are whoever they say they are.
    #[default]
    Off,
    /// A customer may prove who they are.
    Accept,
    /// Only customers who prove who they are may start chats.
    Require,
}

/// One `[[channel]]` table. `Debug` leaves the identity secret out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The channel's name, e.g. `support`.
    pub name: String,
    /// How long a chat may wait before Present agents are alerted: `"60s"`
    /// (or, as before, `alert_after_secs = 60`).
    #[serde(
        default = "default_alert_after",
        alias = "alert_after_secs",
        deserialize_with = "duration"
    )]
    pub alert_after: Duration,
    /// Offer the offline form when no member agent is Present.
    #[serde(default = "yes")]
    pub offline_form: bool,
    /// Let customers return to an ended chat.
    #[serde(default)]
    pub end_form: bool,
    /// How long after the end a customer may return: `"15m"` (or, as
    /// before, `return_window_secs = 900`).
    #[serde(
        default = "default_return_window",
        alias = "return_window_secs",
        deserialize_with = "duration"
    )]
    pub return_window: Duration,
    /// Posted to the customer when a chat starts.
    #[serde(default)]
    pub welcome: Option<String>,
    /// The most chats that may wait at once.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Text shown above the offline form.
    #[serde(default)]
    pub offline_message: Option<String>,
    /// The most bytes a file shared in a chat may have.
    #[serde(default = "default_file_limit")]
    pub file_limit_bytes: u64,
    /// How long a waiting chat's customer may be gone before the chat is
    /// abandoned (it leaves the queue and its alerts are cleared).
    #[serde(default = "default_abandon_after", with = "humantime_serde")]
    pub abandon_after: Duration,
    /// Signed customer identities: `"off"`, `"accept"` or `"require"`.
    #[serde(default)]
    pub identity: IdentityMode,
    /// The secret the contact center's web backend signs identities with
    /// (HMAC-SHA256, at least 32 bytes); needed unless `identity = "off"`.
    #[serde(default)]
    pub identity_secret: Option<String>,
}

impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelConfig")
            .field("name", &self.name)
            .field("alert_after", &self.alert_after)
            .field("offline_form", &self.offline_form)
            .field("end_form", &self.end_form)
            .field("return_window", &self.return_window)
            .field("welcome", &self.welcome)
            .field("queue_limit", &self.queue_limit)
            .field("offline_message", &self.offline_message)
            .field("file_limit_bytes", &self.file_limit_bytes)
            .field("abandon_after", &self.abandon_after)
            .field("identity", &self.identity)
            .field(
                "identity_secret",
                &self.identity_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One `[[agent]]` table. `Debug` leaves the token out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFileConfig {
    /// Sign-in name: letters, digits, `.`, `_` and `-`.
    pub id: String,
    /// Display name; the id if absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The SHA-256 digest of the sign-in token, `sha256:<64 hex digits>`,
    /// as `chathub token` prints it: the hub never needs the token itself.
    #[serde(default)]
    pub token_hash: Option<String>,
    /// The sign-in token itself (kept for compatibility; prefer
    /// `token_hash`). With neither, a token is generated on first start
    /// and kept in `<data_dir>/agent-tokens/<id>.token`.
    #[serde(default)]
    pub token: Option<String>,
    /// Channels the agent works; all channels if absent.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// The most chats the agent may hold at once.
    #[serde(default = "default_capacity")]
    pub capacity: u64,
}

impl std::fmt::Debug for AgentFileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFileConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token_hash", &self.token_hash)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("channels", &self.channels)
            .field("capacity", &self.capacity)
            .finish()
    }
}

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

fn default_alert_after() -> Duration {
    Duration::from_secs(60)
}

fn default_return_window() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_queue_limit() -> usize {
    10_000
}

fn default_file_limit() -> u64 {
    10 << 20
}

fn default_abandon_after() -> Duration {
    Duration::from_secs(120)
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

fn default_capacity() -> u64 {
    4
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
    }]
}

impl Default for Config {
    fn default() -> Self {
        Self::from_toml("").expect("the empty configuration is valid")
    }
}

/// Sets the field `path` (`LIMITS__CHATS_PER_IP`) names in `table` to
/// `value`, read as TOML if it is TOML and as a string otherwise.
fn set_field(
    table: &mut toml::Table,
    key: &str,
    path: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid(format!("environment variable {key}: {why}"));
    let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    let Some((field, tables)) = parts.split_last() else {
        return Err(invalid("names no field"));
    };
    if parts.iter().any(String::is_empty) {
        return Err(invalid("names no field"));
    }
    let mut here = table;
    for name in tables {
        let next = here
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match next {
            toml::Value::Table(inner) => inner,
            _ => return Err(invalid(&format!("{name} is not a table"))),
        };
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut parsed| parsed.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    here.insert(field.clone(), parsed);
    Ok(())
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
    /// without the prefix are ignored. `[[channel]]` and `[[agent]]` tables
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
            None => String::new(),
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
            for channel in agent.channels.iter().flatten() {
                if !channels.contains(channel.as_str()) {
                    return invalid(format!(
                        "agent {:?} names unknown channel {channel:?}",
                        agent.id
                    ));
                }
            }
        }
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
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_file_is_the_documented_default() {
        let config = Config::default();
        assert_eq!(config.listen, "127.0.0.1:4433".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("chathub-data"));
        assert!(config.metrics.enabled);
        assert_eq!(config.channels.len(), 1);
        assert_eq!(config.channels[0].name, "support");
        assert_eq!(config.agents[0].id, "agent");
        assert_eq!(
            config.agent_channels(&config.agents[0]),
            [ChannelId::new("support")]
        );
    }

    #[test]
    fn channels_and_agents_are_read_from_toml() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:0"
            [[channel]]
            name = "sales"
            alert_after_secs = 30
            welcome = "Hej!"
            [[channel]]
            name = "support"
            alert_after = "250ms"
            return_window = "2m"
            [[agent]]
            id = "alice"
            token = "a-long-enough-token"
            channels = ["sales"]
            "#,
        )
        .unwrap();
        let settings = config.channel_settings();
        assert_eq!(settings[0].alert_after, Duration::from_secs(30));
        assert_eq!(settings[1].alert_after, Duration::from_millis(250));
        assert_eq!(settings[1].return_window, Duration::from_secs(120));
        assert_eq!(settings[0].welcome.as_deref(), Some("Hej!"));
        assert_eq!(
            config.agent_channels(&config.agents[0]),
            [ChannelId::new("sales")]
        );
    }

    #[test]
    fn environment_variables_override_fields() {
        let vars = [
            ("CHATHUB_LISTEN", "127.0.0.1:5555"),
            ("CHATHUB_DATA_DIR", "/var/lib/chathub"),
            ("CHATHUB_METRICS__ENABLED", "false"),
            ("CHATHUB_LIMITS__CHATS_PER_IP", "7"),
            ("CHATHUB_LIMITS__HELLO_TIMEOUT", "3s"),
            ("HOME", "/root"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()));
        let config = Config::from_toml_with("[metrics]\nenabled = true\n", vars).unwrap();
        assert_eq!(config.listen, "127.0.0.1:5555".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/chathub"));
        assert!(!config.metrics.enabled);
        assert_eq!(config.limits.chats_per_ip, 7);
        assert_eq!(config.limits.hello_timeout, Duration::from_secs(3));
        // An override is checked like the file.
        let bad = [("CHATHUB_LIMITS__CHATS_PER_IP".to_owned(), "0".to_owned())];
        let err = Config::from_toml_with("", bad).unwrap_err().to_string();
        assert!(err.contains("chats_per_ip"), "{err}");
        let unknown = [("CHATHUB_COLOUR".to_owned(), "blue".to_owned())];
        let err = Config::from_toml_with("", unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn contradictions_are_refused_with_a_reason() {
        for (text, reason) in [
            (
                "[[channel]]\nname = \"a\"\n[[channel]]\nname = \"a\"",
                "declared twice",
            ),
            (
                "[[agent]]\nid = \"x\"\nchannels = [\"nope\"]",
                "unknown channel",
            ),
            ("[[agent]]\nid = \"../etc\"", "agent id"),
            ("[[agent]]\nid = \"x\"\ntoken = \"short\"", "at least 16"),
            ("colour = \"blue\"", "unknown field"),
            (
                "[store]\ncheckpoint_bytes = 100",
                "checkpoint_bytes must be at least",
            ),
            ("[runtime]\nworkers = 0", "workers must be at least 1"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?} gave {err:?}");
        }
    }
}
