//! The configuration read again while the hub runs: channels and agents
//! change at once (see [`Hub::reconfigure`]), and so does
//! `[webtransport] allowed_origins` (for the sessions that open from then
//! on); a change to anything else is reported as waiting for a restart,
//! and the running value stays.

use std::fmt;
use std::path::Path;

use super::*;
use crate::actors::Reconfigured;
use crate::config::ConfigError;

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file cannot be read, or is not a valid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The hub could not take it (a token file, a channel actor).
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The channels and agents changed.
    pub changed: Reconfigured,
    /// Other changed fields, applied at once (`webtransport.allowed_origins`).
    pub applied: Vec<&'static str>,
    /// Changed fields that take effect at the next start only.
    pub needs_restart: Vec<&'static str>,
}

impl fmt::Display for Reloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.changed)?;
        if !self.applied.is_empty() {
            write!(f, "; applied: {}", self.applied.join(", "))?;
        }
        if !self.needs_restart.is_empty() {
            write!(
                f,
                "; changed but kept until a restart: {}",
                self.needs_restart.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The fields that differ between the running configuration and `new`
/// and cannot change while the hub runs.
fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut differs = |name, differ: bool| {
        if differ {
            changed.push(name);
        }
    };
    differs("listen", running.listen != new.listen);
    differs("data_dir", running.data_dir != new.data_dir);
    differs("tls", running.tls != new.tls);
    differs("metrics", running.metrics != new.metrics);
    differs(
        "webtransport",
        running.webtransport.enabled != new.webtransport.enabled
            || running.webtransport.listen != new.webtransport.listen,
    );
    differs("web", running.web != new.web);
    differs("store", running.store != new.store);
    differs("runtime", running.runtime != new.runtime);
    differs(
        "presence_grace",
        running.presence_grace != new.presence_grace,
    );
    differs("limits", running.limits != new.limits);
    differs("webhook", running.webhooks != new.webhooks);
    changed
}

impl Server {
    /// Serves `config`'s channels and agents from now on, leaving every
    /// connection and live chat as it is. Fields that only a restart can
    /// change are listed in the answer and keep their running values.
    pub async fn reload(&self, config: &Config) -> Result<Reloaded, ServerError> {
        if self.partitions.clustered() {
            return Err(ServerError::Config(ConfigError::Invalid(
                "a hub of a cluster does not reload its channels and agents: restart the hubs \
                 one at a time (each hands its partitions over as it stops)"
                    .into(),
            )));
        }
        let hub_config = hub_config(config, &self.data_dir)?;
        let origins = config.webtransport.origins()?;
        let mut running = self.running.lock().await;
        let needs_restart = restart_only_changes(&running, config);
        let changed = self
            .hub
            .reconfigure(hub_config.channels, hub_config.agents)
            .await?;
        metrics::export_from_start(&changed.channels_added);
        running.channels = config.channels.clone();
        running.agents = config.agents.clone();
        let mut applied = Vec::new();
        if running.webtransport.allowed_origins != config.webtransport.allowed_origins {
            if let Some(web) = &self.web {
                web.origins.set_listed(origins);
            }
            running.webtransport.allowed_origins = config.webtransport.allowed_origins.clone();
            applied.push("webtransport.allowed_origins");
        }
        Ok(Reloaded {
            changed,
            applied,
            needs_restart,
        })
    }

    /// Reads the configuration in `path` again (the embedded defaults
    /// without one, with this process's `CHATHUB_*` overrides) and
    /// reloads it; an invalid file is refused with the reason.
    pub async fn reload_from(&self, path: Option<&Path>) -> Result<Reloaded, ReloadError> {
        let config = Config::load_with_env(path)?;
        Ok(self.reload(&config).await?)
    }
}
