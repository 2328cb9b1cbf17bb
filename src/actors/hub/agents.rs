//! Agents' connections: signing one in and out, and their status.

use super::*;

impl Hub {
    /// Signs a connection of an (authenticated) agent in: from now on it
    /// receives the agent's events. Returns the agent's status.
    pub async fn attach_agent(
        &self,
        agent: &AgentId,
        sink: EventSink,
        resume: Vec<(ChatId, u64)>,
    ) -> Result<Status, HubError> {
        let actor = self.agent_actor(agent).await?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(AgentMsg::Attach {
                sink,
                resume,
                reply: tx.into(),
            })
            .map_err(|_| gone("the agent's actor stopped"))?;
        answer(rx).await
    }

    /// Whether `agent` is in the configuration (may sign in).
    pub(crate) fn is_configured(&self, agent: &AgentId) -> bool {
        self.shared.agents.contains_key(agent)
    }

    /// A connection of an agent closed.
    pub fn detach_agent(&self, agent: &AgentId, conn: ConnId) {
        if let Some(handle) = self.shared.agent_actors.get(agent) {
            let _ = handle.actor.cast(AgentMsg::Detach { conn });
        }
    }

    pub(super) async fn agent_actor(
        &self,
        agent: &AgentId,
    ) -> Result<ActorRef<AgentMsg>, HubError> {
        if let Some(handle) = self.shared.agent_actors.get(agent) {
            return Ok(handle.actor.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .root
            .cast(HubMsg::AgentActor {
                agent: agent.clone(),
                reply: tx.into(),
            })
            .map_err(|_| gone("the hub root stopped"))?;
        answer(rx).await?
    }

    /// Notes a request (or typing) from `agent` now: what keeps a Present
    /// agent from turning Away.
    pub(crate) fn touch(&self, agent: &AgentId) {
        if let Some(presence) = self.shared.presence.agent(agent) {
            presence.touch(Timestamp::now());
        }
    }

    /// How long `agent` may make no request before turning Away: the
    /// shortest `idle_after` among the channels they work (`None`: none of
    /// them sets one).
    pub(crate) fn idle_after(&self, agent: &AgentId) -> Option<Duration> {
        self.member_channels(agent)
            .iter()
            .filter_map(|channel| self.channel(channel)?.idle_after)
            .min()
    }

    /// `agent`'s connections stayed gone past the presence grace: each
    /// chat they hold is told, and goes back to the front of its queue
    /// where the channel's `on_agent_gone` says `"requeue"`.
    pub(crate) fn agent_gone(&self, agent: &AgentId) {
        for chat in self.assigned_to(agent) {
            let Some((actor, channel)) = self
                .shared
                .chats
                .get(&chat)
                .map(|entry| (entry.actor.clone(), entry.channel.clone()))
            else {
                continue;
            };
            let requeue = self
                .channel(&channel)
                .is_some_and(|settings| settings.on_agent_gone == OnAgentGone::Requeue);
            let _ = actor.cast(ChatMsg::AgentGone {
                agent: agent.clone(),
                requeue,
            });
        }
    }

    /// Sets an agent Present or Absent.
    pub async fn set_status(&self, agent: &AgentId, status: Status) -> Result<(), HubError> {
        self.set_status_by(agent, status, None).await
    }

    /// Sets an agent's status on behalf of `by` (a supervisor), whose
    /// change the agent's connections are told of; `None` for the agent's
    /// own.
    pub(super) async fn set_status_by(
        &self,
        agent: &AgentId,
        status: Status,
        by: Option<AgentId>,
    ) -> Result<(), HubError> {
        let actor = self.agent_actor(agent).await?;
        let (tx, rx) = oneshot::channel();
        actor
            .cast(AgentMsg::SetStatus {
                status,
                by,
                reply: tx.into(),
            })
            .map_err(|_| gone("the agent's actor stopped"))?;
        answer(rx).await
    }
}
