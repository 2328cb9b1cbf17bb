//! The `[[webhook]]` tables: where the hub posts chat lifecycle events.

use std::collections::BTreeSet;

use super::*;
use crate::core::LifecycleKind;
use crate::webhook::WebhookSettings;

/// One `[[webhook]]` table. `Debug` leaves the secret out.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The webhook's name (letters, digits, `.`, `_` and `-`), in metrics
    /// and logs; its undelivered events are kept under it, so a renamed
    /// webhook starts afresh.
    pub name: String,
    /// Where events are posted: an `http://` or `https://` URL.
    pub url: String,
    /// The key events are signed with (HMAC-SHA256), at least 16 bytes.
    /// Give this or `secret_file`.
    #[serde(default)]
    pub secret: Option<String>,
    /// A file holding the key (surrounding whitespace is ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The kinds of event to post (`started`, `answered`, `transferred`,
    /// `ticket_created`, `ended`, `reopened`, `rated`); all without it.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// The channels whose chats are posted; all without it.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// How long one post may take, answer included: `"10s"`.
    #[serde(default = "default_webhook_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// The wait before a chat's first retry, doubled per failure: `"1s"`.
    #[serde(default = "default_retry_initial", deserialize_with = "duration")]
    pub retry_initial: Duration,
    /// The longest wait between retries: `"5m"`.
    #[serde(default = "default_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
    /// The most posts in flight at once (each for a different chat).
    #[serde(default = "default_webhook_concurrency")]
    pub concurrency: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("channels", &self.channels)
            .field("timeout", &self.timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}

fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

fn default_webhook_concurrency() -> usize {
    8
}

/// The shortest secret accepted.
const MIN_SECRET_BYTES: usize = 16;

/// The most posts one webhook may have in flight.
const MAX_CONCURRENCY: usize = 256;

impl WebhookConfig {
    /// The checked settings the hub delivers with; reads `secret_file`.
    pub fn settings(&self, channels: &HashSet<&str>) -> Result<WebhookSettings, ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid(format!("webhook {:?}: {msg}", self.name));
        if !valid_name(&self.name) {
            return Err(ConfigError::Invalid(format!(
                "webhook name {:?} must be 1-64 letters, digits, '.', '_' or '-'",
                self.name
            )));
        }
        let url: hyper::Uri = self
            .url
            .parse()
            .map_err(|err| invalid(format!("url {:?} is not a URL: {err}", self.url)))?;
        match url.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(invalid(format!(
                    "url {:?} must start with http:// or https://",
                    self.url
                )));
            }
        }
        if url.host().is_none_or(str::is_empty) {
            return Err(invalid(format!("url {:?} has no host", self.url)));
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| {
                    invalid(format!("cannot read secret_file {}: {err}", path.display()))
                })?
                .trim()
                .to_owned(),
            (Some(_), Some(_)) => {
                return Err(invalid("give secret or secret_file, not both".into()));
            }
            (None, None) => return Err(invalid("a secret (or secret_file) is needed".into())),
        };
        if secret.len() < MIN_SECRET_BYTES {
            return Err(invalid(format!(
                "the secret needs at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        if self.events.as_ref().is_some_and(Vec::is_empty)
            || self.channels.as_ref().is_some_and(Vec::is_empty)
        {
            return Err(invalid(
                "events and channels name at least one each (leave one out for all)".into(),
            ));
        }
        let events = match &self.events {
            None => None,
            Some(names) => {
                let mut kinds = BTreeSet::new();
                for name in names {
                    let kind = LifecycleKind::parse(name).ok_or_else(|| {
                        invalid(format!(
                            "unknown event {name:?}; known: {}",
                            LifecycleKind::ALL.map(LifecycleKind::name).join(", ")
                        ))
                    })?;
                    kinds.insert(kind);
                }
                Some(kinds)
            }
        };
        let channels = match &self.channels {
            None => None,
            Some(names) => {
                let mut known = BTreeSet::new();
                for name in names {
                    if !channels.contains(name.as_str()) {
                        return Err(invalid(format!("names unknown channel {name:?}")));
                    }
                    known.insert(ChannelId::new(name.as_str()));
                }
                Some(known)
            }
        };
        if self.timeout.is_zero() || self.retry_initial.is_zero() {
            return Err(invalid(
                "timeout and retry_initial must be more than zero".into(),
            ));
        }
        if self.retry_max < self.retry_initial {
            return Err(invalid("retry_max must be at least retry_initial".into()));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(invalid(format!(
                "concurrency must be from 1 to {MAX_CONCURRENCY}, not {}",
                self.concurrency
            )));
        }
        Ok(WebhookSettings {
            name: self.name.clone(),
            url,
            secret: secret.into_bytes(),
            events,
            channels,
            timeout: self.timeout,
            retry_initial: self.retry_initial,
            retry_max: self.retry_max,
            concurrency: self.concurrency,
        })
    }
}

impl Config {
    /// Every `[[webhook]]` table, checked, as the hub delivers with them.
    pub fn webhook_settings(&self) -> Result<Vec<WebhookSettings>, ConfigError> {
        let channels: HashSet<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
        let mut names = HashSet::new();
        let mut settings = Vec::new();
        for hook in &self.webhooks {
            if !names.insert(hook.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "webhook {:?} is declared twice",
                    hook.name
                )));
            }
            settings.push(hook.settings(&channels)?);
        }
        Ok(settings)
    }
}
