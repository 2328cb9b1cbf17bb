//! Bringing chats back: recovery at start, a failed chat actor rebuilt
//! from the store, a restarted channel's waiting chats queued again.

use super::*;

impl Hub {
    /// Brings every stored chat that has not ended back to life.
    pub(super) async fn recover(&self) -> Result<(), HubError> {
        let store = self.shared.store.clone();
        let live = blocking(move || store.live_chats()).await?;
        let mut queued = Vec::new();
        let (mut active, mut skipped) = (0, 0);
        // One damaged chat does not keep the hub, and every other chat,
        // down: it stays in the store as it is, and is counted.
        for (chat, err) in &live.unreadable {
            tracing::error!(%chat, "a live chat's stored events cannot be read; it is left out: {err}");
            metrics::counter!("chathub_chats_unrecoverable_total").increment(1);
            skipped += 1;
        }
        for stored in live.chats {
            let token = stored.token_digest;
            let chat = match Chat::restore(stored.events) {
                Ok(chat) => chat,
                Err(err) => {
                    tracing::error!("a stored chat cannot be restored: {err}");
                    metrics::counter!("chathub_chats_unrecoverable_total").increment(1);
                    skipped += 1;
                    continue;
                }
            };
            if self.channel(chat.channel()).is_none() {
                tracing::warn!(chat = %chat.id(), channel = %chat.channel(), "stored chat of a channel no longer configured");
                skipped += 1;
                continue;
            }
            match chat.state() {
                ChatState::Queued { since } => queued.push((*since, chat, token)),
                ChatState::Active { agent, .. } => {
                    if let Some(presence) = self.shared.presence.agent(agent) {
                        presence.capacity.force_reserve();
                    }
                    self.spawn_restored(chat, token).await?;
                    active += 1;
                }
                ChatState::Ended { .. } => {}
            }
        }
        queued.sort_by_key(|(since, chat, _)| (*since, chat.id()));
        let waiting = queued.len();
        for (_, chat, token) in queued {
            let skills = chat.skills().clone();
            let (chat_actor, claim, row) = self.spawn_restored(chat, token).await?;
            let generation = claim.generation();
            self.enqueue(chat_actor, claim, generation, row, skills, Admit::Accepted)
                .await?;
        }
        tracing::info!(waiting, active, skipped, "recovered chats from the store");
        Ok(())
    }

    /// Starts the actor of a chat restored from the store.
    pub(super) async fn spawn_restored(
        &self,
        chat: Chat,
        token_digest: Option<Vec<u8>>,
    ) -> Result<(ActorRef<ChatMsg>, Arc<ClaimCell>, QueueRow), HubError> {
        let claim = Arc::new(ClaimCell::new());
        if chat.was_answered() {
            // Its first response came before the restart: a wait now is
            // not measured against the channel's first-response target.
            claim.settle_first_response();
        }
        let row = chat.queue_row(match chat.state() {
            ChatState::Queued { since } => *since,
            _ => Timestamp::default(),
        });
        if !matches!(chat.state(), ChatState::Queued { .. }) {
            // Not waiting: nobody may claim it from a queue.
            let _ = claim.claim(Claimer::Agent);
        }
        let chat_last_seq = chat.events().len() as u64;
        let args = ChatArgs {
            hub: self.clone(),
            chat,
            claim: claim.clone(),
            customer_conn: None,
            token_digest,
            started: None,
            durable: chat_last_seq,
            start_ops: Vec::new(),
            origin: None,
        };
        let (actor, _) = Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
            .await
            .map_err(|err| gone(format!("cannot start a restored chat: {err}")))?;
        Ok((actor, claim, row))
    }

    /// Queues again, in enqueue order, every live chat of `channel` that
    /// waits unclaimed: after its channel actor was restarted.
    pub(super) async fn requeue_waiting(&self, channel: &ChannelId) -> usize {
        let waiting: Vec<(ActorRef<ChatMsg>, Arc<ClaimCell>)> = self
            .shared
            .chats
            .iter()
            .filter(|entry| &entry.channel == channel && entry.claim.holder().is_none())
            .map(|entry| (entry.actor.clone(), entry.claim.clone()))
            .collect();
        let mut rows = Vec::new();
        for (actor, claim) in waiting {
            let (tx, rx) = oneshot::channel();
            if actor.cast(ChatMsg::WaitingRow { reply: tx.into() }).is_ok()
                && let Ok(Some((row, skills))) = answer(rx).await
            {
                rows.push((row, skills, actor, claim));
            }
        }
        rows.sort_by_key(|(row, _, _, _)| (row.since, row.chat));
        let count = rows.len();
        for (row, skills, actor, claim) in rows {
            let generation = claim.generation();
            if let Err(err) = self
                .enqueue(actor, claim, generation, row, skills, Admit::Accepted)
                .await
            {
                tracing::error!("a waiting chat could not rejoin its queue: {err}");
            }
        }
        count
    }

    /// Rebuilds a chat whose actor failed from what the store holds.
    pub(super) async fn restore_chat(&self, chat: ChatId) -> Result<(), HubError> {
        let store = self.shared.store.clone();
        let Some(stored) = blocking(move || store.chat(chat)).await? else {
            return Ok(());
        };
        let token = stored.token_digest;
        let restored = Chat::restore(stored.events).map_err(|err| gone(err.to_string()))?;
        if matches!(restored.state(), ChatState::Ended { .. }) {
            return Ok(());
        }
        let queued = matches!(restored.state(), ChatState::Queued { .. });
        let skills = restored.skills().clone();
        let (actor, claim, row) = self.spawn_restored(restored, token).await?;
        if queued {
            let generation = claim.generation();
            self.enqueue(actor, claim, generation, row, skills, Admit::Accepted)
                .await?;
        }
        tracing::warn!(%chat, "chat restarted from the store");
        Ok(())
    }
}
