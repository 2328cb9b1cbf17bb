//! A chat changing hands: transfers, declines, tickets from chats, and
//! the customer's return through the end form.

use super::*;

impl Hub {
    /// The agent who has `chat` hands it to `to`, who must be a Present
    /// member of the chat's channel with a free slot. `to` gets it with the
    /// whole transcript; the customer is told.
    pub async fn transfer_to_agent(
        &self,
        by: AgentId,
        chat: ChatId,
        to: AgentId,
    ) -> Result<(), HubError> {
        let channel = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone())
            .ok_or(HubError::UnknownChat(chat))?;
        let presence = self
            .shared
            .presence
            .agent(&to)
            .ok_or(HubError::AgentUnavailable(to.clone()))?;
        if !self.is_member(&to, &channel) || presence.status() != Status::Present {
            return Err(HubError::AgentUnavailable(to));
        }
        if !presence.capacity.try_reserve() {
            return Err(HubError::AgentUnavailable(to));
        }
        let done = self
            .ask_chat(chat, {
                let to = to.clone();
                move |reply| ChatMsg::TransferToAgent { by, to, reply }
            })
            .await;
        if done.is_err() {
            self.release_slot(&to);
        }
        done
    }

    /// The agent a chat was transferred to declines it: it returns to the
    /// agent who transferred it (if they have room) or to the queue.
    pub fn decline_transfer(
        &self,
        by: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::Decline { by, reply })
    }

    /// The agent who has `chat` sends it to `channel`'s queue (another
    /// channel, or back to its own); it keeps its history.
    pub fn transfer_to_channel(
        &self,
        by: AgentId,
        chat: ChatId,
        channel: ChannelId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        // The chat is asked only if the channel takes transfers: a refused
        // transfer leaves the chat where it is.
        let asked = self.open_channel(&channel).is_ok().then(|| {
            self.ask_chat(chat, {
                let channel = channel.clone();
                move |reply| ChatMsg::Requeue { by, channel, reply }
            })
        });
        async move {
            match asked {
                Some(asked) => asked.await,
                None => Err(HubError::UnknownChannel(channel)),
            }
        }
    }

    /// Makes a ticket from a chat the agent has, with its transcript.
    pub async fn create_ticket(
        &self,
        by: AgentId,
        chat: ChatId,
        subject: String,
        note: String,
    ) -> Result<TicketId, HubError> {
        if subject.trim().is_empty() || subject.len() > crate::core::knowledge::MAX_TITLE_BYTES {
            return Err(HubError::Invalid(
                "a ticket's subject needs 1 to 200 bytes".into(),
            ));
        }
        if note.len() > crate::core::chat::MAX_MESSAGE_BYTES {
            return Err(HubError::Invalid("the note is too long".into()));
        }
        let ticket = TicketId(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        self.ask_chat(chat, move |reply| ChatMsg::CreateTicket {
            by,
            ticket,
            subject,
            note,
            reply,
        })
        .await
    }

    /// The customer comes back to an ended chat through the end form: it
    /// is live again with the same transcript, with its last agent if that
    /// agent is Present and has room, otherwise in its channel's queue.
    pub async fn return_to_chat(
        &self,
        sink: EventSink,
        chat: ChatId,
        secret: Secret,
    ) -> Result<(), HubError> {
        // Two returns to one chat (two requests, two connections) take
        // turns: the second finds the chat live and takes it over, so one
        // chat never has two actors.
        let turn = self.turn(chat);
        let _taken = turn.lock.lock().await;
        self.reopen(sink, chat, secret).await
    }

    /// A place in `chat`'s turns: returns to the chat and ratings of it
    /// take turns, so a rating never lands on a chat being reopened.
    pub(super) fn turn(&self, chat: ChatId) -> Turn<'_> {
        Turn {
            hub: self,
            chat,
            lock: self
                .shared
                .reopening
                .entry(chat)
                .or_default()
                .value()
                .clone(),
        }
    }

    /// Reopens an ended chat for its customer; see [`Hub::return_to_chat`].
    /// (Called with the chat's turn taken.)
    async fn reopen(&self, sink: EventSink, chat: ChatId, secret: Secret) -> Result<(), HubError> {
        // Still (or again) live: nothing to reopen, just take it over. Just
        // ended, its actor not yet stopped: wait for it to stop (it does
        // once the end is durable), then reopen.
        if let Some(live) = self.resume_live(&sink, chat, &secret, 0).await? {
            if live {
                return Ok(());
            }
            let mut waited = 0;
            while self.chat_actor(chat).is_some() {
                waited += 1;
                if waited > 200 {
                    return Err(gone("the chat's end is still being stored; try again"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let stored = self.stored_chat_of(chat, digest(secret.expose())).await?;
        let token = stored.token_digest.clone();
        let mut restored = Chat::restore(stored.events).map_err(|err| gone(err.to_string()))?;
        let durable = restored.events().len() as u64;
        let settings = self.open_channel(restored.channel())?;
        if !settings.end_form {
            return Err(HubError::Chat(ChatError::NotReturnable));
        }
        let origin = self.reserve_origin(&sink)?;
        let window = settings.return_window;
        let last_agent = restored
            .events()
            .iter()
            .rev()
            .find_map(|event| match &event.kind {
                crate::core::ChatEventKind::Assigned { agent }
                | crate::core::ChatEventKind::TransferredToAgent { to: agent, .. } => {
                    Some(agent.clone())
                }
                crate::core::ChatEventKind::TransferDeclined {
                    to: Some(agent), ..
                } => Some(agent.clone()),
                crate::core::ChatEventKind::Reopened { agent: Some(agent) } => Some(agent.clone()),
                _ => None,
            });
        let agent = last_agent.filter(|agent| {
            self.shared.presence.agent(agent).is_some_and(|presence| {
                presence.status() == Status::Present && presence.capacity.try_reserve()
            })
        });
        if let Err(err) = restored.reopen(agent.clone(), window, Timestamp::now()) {
            if let Some(agent) = &agent {
                self.release_slot(agent);
            }
            return Err(err.into());
        }
        let claim = Arc::new(ClaimCell::new());
        if agent.is_some() {
            let _ = claim.claim(Claimer::Agent);
        }
        let (started_tx, started_rx) = oneshot::channel();
        let args = ChatArgs {
            hub: self.clone(),
            chat: restored,
            claim,
            customer_conn: Some(sink.conn()),
            token_digest: token,
            started: Some(started_tx),
            durable,
            start_ops: Vec::new(),
            origin: Some(origin),
        };
        let (actor, _) = Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
            .await
            .map_err(|err| gone(format!("cannot restart the chat: {err}")))?;
        match answer(started_rx).await.and_then(|durable| durable) {
            Ok(()) => {
                let _ = actor.cast(ChatMsg::AttachCustomer { sink, after: 0 });
                Ok(())
            }
            Err(err) => {
                if let Some(agent) = &agent {
                    self.release_slot(agent);
                }
                Err(err)
            }
        }
    }
}

/// One return's (or rating's) place in a chat's turns. Dropped (done, or
/// abandoned with its connection), it removes the chat's entry once no
/// other holds it.
pub(super) struct Turn<'a> {
    hub: &'a Hub,
    chat: ChatId,
    pub(super) lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // The map's shard lock is held while the count is read, so no
        // other return can take the entry in between.
        self.hub
            .shared
            .reopening
            .remove_if(&self.chat, |_, lock| Arc::strong_count(lock) == 2);
    }
}
