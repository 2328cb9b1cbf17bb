//! Channels and agents changed while the hub runs (a configuration
//! reload), with every connection and live chat left as it is.
//!
//! - A new channel gets its actor and Present count at once; agents who
//!   work it start watching it.
//! - A changed channel's settings apply to what happens from now on
//!   (chats started, enqueued, returned); chats already live keep going.
//! - A removed channel takes no new chat, transfer or return, but drains:
//!   its waiting chats can still be taken by the agents who worked it, and
//!   its active chats go on to their end. Once nothing of it is live, its
//!   actor stops and it leaves every agent's channels.
//! - A new agent may sign in; a changed one keeps its connections, works
//!   its new channels and has its new capacity (chats held beyond a
//!   lowered one stay); a new token closes the connections the old one
//!   signed in (it may have leaked), and the agent signs in again.
//! - A removed agent's connections are closed as unauthorized and it is
//!   Absent at once; its chats stay as a disconnected agent's do, and come
//!   back to it if it is configured again.
//! - A supervisor who no longer oversees a channel (a changed role) has
//!   their live watches of its monitor stopped, each connection told.

use std::collections::HashSet;
use std::fmt;

use super::*;

/// How often a removed channel is checked for live chats left.
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Channels that are new.
    pub channels_added: Vec<ChannelId>,
    /// Channels whose settings changed.
    pub channels_changed: Vec<ChannelId>,
    /// Channels removed: they take no new chat and stop once drained.
    pub channels_removed: Vec<ChannelId>,
    /// Agents who may now sign in.
    pub agents_added: Vec<AgentId>,
    /// Agents whose name, token, channels, capacity or role changed.
    pub agents_changed: Vec<AgentId>,
    /// Agents who may no longer sign in.
    pub agents_removed: Vec<AgentId>,
}

impl Reconfigured {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Reconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no channel or agent changed");
        }
        let mut parts = Vec::new();
        let mut list = |what: &str, names: Vec<String>| {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        };
        let names = |ids: &[ChannelId]| ids.iter().map(ToString::to_string).collect();
        list("channels added", names(&self.channels_added));
        list("channels changed", names(&self.channels_changed));
        list("channels removed", names(&self.channels_removed));
        let names = |ids: &[AgentId]| ids.iter().map(ToString::to_string).collect();
        list("agents added", names(&self.agents_added));
        list("agents changed", names(&self.agents_changed));
        list("agents removed", names(&self.agents_removed));
        f.write_str(&parts.join("; "))
    }
}

/// Whether two agent configurations differ in anything the hub uses.
fn agent_differs(old: &AgentConfig, new: &AgentConfig) -> bool {
    old.name != new.name
        || old.token.as_bytes() != new.token.as_bytes()
        || old.capacity != new.capacity
        || old.role != new.role
        || old.channels.iter().collect::<HashSet<_>>() != new.channels.iter().collect()
}

impl Hub {
    /// Serves `channels` and `agents` from now on, in place of the ones it
    /// served (see the module docs for what each change does). Checked
    /// before anything changes: `Invalid` (and nothing changed) if names
    /// repeat or an agent works a channel that is not among `channels`.
    /// A new channel whose actor cannot start fails the reload with
    /// `Unavailable` after the channels before it were applied; a reload
    /// of the same file again applies the rest.
    pub async fn reconfigure(
        &self,
        channels: Vec<ChannelSettings>,
        agents: Vec<AgentConfig>,
    ) -> Result<Reconfigured, HubError> {
        let _one_at_a_time = self.shared.reloading.lock().await;
        check(&channels, &agents)?;
        let mut report = Reconfigured::default();
        let shared = &self.shared;
        // Whether a drain watch runs already: it stops only once no removed
        // channel is left, under the reload lock.
        let watched = !shared.draining.is_empty();

        // Channels first, so agents can work the new ones.
        let configured: HashSet<ChannelId> = channels.iter().map(|c| c.id.clone()).collect();
        for settings in channels {
            let id = settings.id.clone();
            let reopened = shared.draining.remove(&id).is_some();
            match self.channel(&id) {
                Some(old) if *old == settings && !reopened => {}
                Some(_) => {
                    let settings = Arc::new(settings);
                    shared.settings.insert(id.clone(), settings.clone());
                    if let Some(actor) = self.channel_actor(&id) {
                        let _ = actor.cast(ChannelMsg::Reconfigure(settings));
                    }
                    report.channels_changed.push(id);
                }
                None => {
                    let (actor, _) = Actor::spawn_linked(
                        None,
                        ChannelActor,
                        settings.clone(),
                        shared.root.get_cell(),
                    )
                    .await
                    .map_err(|err| gone(format!("cannot start channel {id}: {err}")))?;
                    let _ = actor.cast(ChannelMsg::Init(self.clone()));
                    shared.presence.add_channel(id.clone());
                    shared.settings.insert(id.clone(), Arc::new(settings));
                    shared.channels.insert(id.clone(), actor);
                    report.channels_added.push(id);
                }
            }
        }
        let removed: Vec<ChannelId> = shared
            .settings
            .iter()
            .map(|entry| entry.key().clone())
            .filter(|id| !configured.contains(id) && !shared.draining.contains(id))
            .collect();
        for id in removed {
            shared.draining.insert(id.clone());
            report.channels_removed.push(id);
        }

        // Then agents: each works its configured channels, and the removed
        // channels it worked until they drain.
        let configured_agents: HashSet<AgentId> = agents.iter().map(|a| a.id.clone()).collect();
        for mut agent in agents {
            let id = agent.id.clone();
            let old = shared.agents.get(&id).map(|entry| entry.clone());
            if let Some(presence) = shared.presence.agent(&id) {
                for channel in presence.channels() {
                    if shared.draining.contains(&channel) && !agent.channels.contains(&channel) {
                        agent.channels.push(channel);
                    }
                }
            }
            match &old {
                Some(old) if !agent_differs(&old.config, &agent) => continue,
                Some(_) => report.agents_changed.push(id.clone()),
                None => report.agents_added.push(id.clone()),
            }
            self.apply_agent(&agent);
            // A new token closes what the old one opened (it may have
            // leaked); the agent signs in again with the new one.
            if old.is_some_and(|old| old.token_digest.as_bytes() != agent.token.as_bytes())
                && let Some(actor) = self.agent_actor_ref(&id)
            {
                let _ = actor.cast(AgentMsg::Revoke);
            }
            shared.agents.insert(
                id,
                Arc::new(AgentEntry {
                    token_digest: agent.token.clone(),
                    config: agent,
                }),
            );
        }
        let removed: Vec<AgentId> = shared
            .agents
            .iter()
            .map(|entry| entry.key().clone())
            .filter(|id| !configured_agents.contains(id))
            .collect();
        for id in removed {
            shared.agents.remove(&id);
            if let Some(presence) = shared.presence.agent(&id) {
                presence.set_channels(Vec::new());
                presence.set(Status::Absent);
            }
            if let Some(actor) = self.agent_actor_ref(&id) {
                let _ = actor.cast(AgentMsg::Removed);
            }
            report.agents_removed.push(id);
        }
        self.count_present();
        // Roles may have changed: watches of monitors no longer overseen
        // stop.
        self.check_monitor_watches();
        // Agents came, went or changed channels: push channels withdraw
        // offers from those who may no longer have them, and offer anew.
        for channel in shared.channels.iter() {
            self.poke_channel(channel.key());
        }
        if !watched && !shared.draining.is_empty() {
            spawn_drain_watch(Arc::downgrade(&self.shared));
        }
        Ok(report)
    }

    /// Makes an agent's presence and actor follow its configuration.
    fn apply_agent(&self, agent: &AgentConfig) {
        let presence = &self.shared.presence;
        match presence.agent(&agent.id) {
            // Kept for removed agents too, so chats they still hold keep
            // their slots if they come back.
            Some(current) => {
                current.set_channels(presence.membership(&agent.channels));
                current.capacity.set_max(agent.capacity);
                current.set_skills(agent.skills.clone());
            }
            None => {
                presence
                    .add_agent(agent.id.clone(), &agent.channels, agent.capacity)
                    .set_skills(agent.skills.clone());
            }
        }
        if let Some(actor) = self.agent_actor_ref(&agent.id) {
            let _ = actor.cast(AgentMsg::ChannelsChanged);
        }
    }

    /// Sets every channel's Present gauge from its count.
    fn count_present(&self) {
        for entry in self.shared.settings.iter() {
            let channel = entry.key();
            metrics::gauge!("chathub_agents_present", "channel" => channel.to_string())
                .set(self.shared.presence.present_count(channel) as f64);
        }
    }

    /// Stops each removed channel that has no live chat left: its actor
    /// stops, and it leaves the agents who still worked it. True once no
    /// removed channel is left.
    async fn finish_drained(&self) -> bool {
        let _one_at_a_time = self.shared.reloading.lock().await;
        let shared = &self.shared;
        let draining: Vec<ChannelId> = shared.draining.iter().map(|id| id.clone()).collect();
        for id in draining {
            let live = shared.chats.iter().any(|entry| entry.channel == id);
            let Some(actor) = self.channel_actor(&id) else {
                continue;
            };
            let empty = ractor::call!(actor, ChannelMsg::IsEmpty).unwrap_or(false);
            if live || !empty {
                continue;
            }
            // Settings first: the root does not restart a channel it
            // cannot find.
            shared.settings.remove(&id);
            shared.draining.remove(&id);
            shared.channels.remove(&id);
            actor.stop(Some("removed from the configuration".into()));
            let workers: Vec<Arc<AgentEntry>> = shared
                .agents
                .iter()
                .filter(|entry| entry.config.channels.contains(&id))
                .map(|entry| entry.clone())
                .collect();
            for entry in workers {
                let mut config = entry.config.clone();
                config.channels.retain(|channel| *channel != id);
                self.apply_agent(&config);
                let token_digest = entry.token_digest.clone();
                shared.agents.insert(
                    config.id.clone(),
                    Arc::new(AgentEntry {
                        config,
                        token_digest,
                    }),
                );
            }
            shared.presence.remove_channel(&id);
            tracing::info!(channel = %id, "removed channel drained and stopped");
        }
        self.count_present();
        shared.draining.is_empty()
    }
}

/// Checks a configuration's channels and agents against each other.
fn check(channels: &[ChannelSettings], agents: &[AgentConfig]) -> Result<(), HubError> {
    let mut names = HashSet::new();
    for channel in channels {
        if !names.insert(&channel.id) {
            return Err(HubError::Invalid(format!(
                "channel {} is declared twice",
                channel.id
            )));
        }
    }
    let mut ids = HashSet::new();
    for agent in agents {
        if !ids.insert(&agent.id) {
            return Err(HubError::Invalid(format!(
                "agent {} is declared twice",
                agent.id
            )));
        }
        if let Some(unknown) = agent.channels.iter().find(|c| !names.contains(c)) {
            return Err(HubError::Invalid(format!(
                "agent {} works unknown channel {unknown}",
                agent.id
            )));
        }
        if let crate::core::AgentRole::Supervisor { supervises } = &agent.role
            && let Some(unknown) = supervises.iter().find(|c| !names.contains(c))
        {
            return Err(HubError::Invalid(format!(
                "agent {} supervises unknown channel {unknown}",
                agent.id
            )));
        }
    }
    Ok(())
}

/// Checks the removed channels every [`DRAIN_CHECK`] until none is left
/// (or the hub is gone).
fn spawn_drain_watch(shared: std::sync::Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(DRAIN_CHECK).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if (Hub { shared }).finish_drained().await {
                return;
            }
        }
    });
}
