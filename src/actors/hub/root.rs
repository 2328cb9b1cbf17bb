//! The root supervisor: starts agent actors and decides what happens when
//! a child fails.

use super::*;

/// Messages to the root actor.
pub enum HubMsg {
    /// Hands the root its hub, once built.
    Init(Hub),
    /// The actor of a signed-in agent, started on first sign-in.
    AgentActor {
        /// The agent.
        agent: AgentId,
        /// Its actor.
        reply: RpcReplyPort<Result<ActorRef<AgentMsg>, HubError>>,
    },
}

/// The root supervisor. It starts agent actors (so two connections of one
/// agent share one actor) and decides what happens when a child fails.
pub struct HubActor;

/// The root's state.
pub struct HubRoot {
    hub: Option<Hub>,
}

impl HubRoot {
    async fn spawn_agent(
        &self,
        myself: &ActorRef<HubMsg>,
        agent: AgentId,
    ) -> Result<ActorRef<AgentMsg>, HubError> {
        let hub = self
            .hub
            .as_ref()
            .ok_or_else(|| gone("the hub is starting"))?;
        if let Some(handle) = hub.shared.agent_actors.get(&agent) {
            return Ok(handle.actor.clone());
        }
        let presence = hub
            .shared
            .presence
            .agent(&agent)
            .ok_or(HubError::Unauthorized)?;
        let outlet = Arc::new(AgentOutlet::default());
        let args = AgentArgs {
            hub: hub.clone(),
            id: agent.clone(),
            presence,
            outlet: outlet.clone(),
            grace: hub.shared.presence_grace,
        };
        let (actor, _) = Actor::spawn_linked(None, AgentActor, args, myself.get_cell())
            .await
            .map_err(|err| gone(format!("cannot start the agent's actor: {err}")))?;
        hub.shared.agent_actors.insert(
            agent,
            AgentHandle {
                actor: actor.clone(),
                outlet,
            },
        );
        Ok(actor)
    }

    /// A channel's actor failed: start a new one with the same settings.
    async fn restart_channel(&self, myself: &ActorRef<HubMsg>, failed: &ActorCell) {
        let Some(hub) = &self.hub else { return };
        let channel = hub
            .shared
            .channels
            .iter()
            .find(|entry| entry.value().get_id() == failed.get_id())
            .map(|entry| entry.key().clone());
        let Some(channel) = channel else { return };
        let Some(settings) = hub.channel(&channel).map(|settings| (*settings).clone()) else {
            return;
        };
        hub.end_orphaned_offers(&channel);
        match Actor::spawn_linked(None, ChannelActor, settings, myself.get_cell()).await {
            Ok((actor, _)) => {
                let _ = actor.cast(ChannelMsg::Init(hub.clone()));
                hub.shared.channels.insert(channel.clone(), actor);
                // The chats that waited in the failed actor's queue wait on
                // in the new one, in their order.
                let hub = hub.clone();
                tokio::spawn(async move {
                    let requeued = hub.requeue_waiting(&channel).await;
                    tracing::warn!(%channel, requeued, "channel actor restarted");
                });
            }
            Err(err) => tracing::error!(%channel, "cannot restart the channel actor: {err}"),
        }
    }
}

impl Actor for HubActor {
    type Msg = HubMsg;
    type State = HubRoot;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<HubMsg>, (): ()) -> Result<HubRoot, ActorProcessingErr> {
        Ok(HubRoot { hub: None })
    }

    async fn handle(
        &self,
        myself: ActorRef<HubMsg>,
        message: HubMsg,
        state: &mut HubRoot,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HubMsg::Init(hub) => state.hub = Some(hub),
            HubMsg::AgentActor { agent, reply } => {
                let _ = reply.send(state.spawn_agent(&myself, agent).await);
            }
        }
        Ok(())
    }

    /// A child that fails is logged and counted; it never takes the hub
    /// down. A failed channel is started again; a failed chat or agent actor
    /// is forgotten (a later sign-in starts a new agent actor).
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<HubMsg>,
        event: SupervisionEvent,
        state: &mut HubRoot,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(actor = %cell.get_id(), "actor failed: {err}");
                metrics::counter!("chathub_actor_restarts_total").increment(1);
                if let Some(hub) = &state.hub {
                    hub.shared.failures.fetch_add(1, Ordering::Relaxed);
                    for chat in hub.forget_actor(cell.get_id()) {
                        // Restart from durable state, off the root's loop.
                        let hub = hub.clone();
                        tokio::spawn(async move {
                            if let Err(err) = hub.restore_chat(chat).await {
                                tracing::error!(%chat, "cannot restart the chat: {err}");
                            }
                        });
                    }
                }
                state.restart_channel(&myself, &cell).await;
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(hub) = &state.hub {
                    hub.shared
                        .agent_actors
                        .retain(|_, handle| handle.actor.get_id() != cell.get_id());
                }
            }
            _ => {}
        }
        Ok(())
    }
}
