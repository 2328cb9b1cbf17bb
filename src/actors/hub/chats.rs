//! A chat's way from start to an agent: start (or find again) and
//! resume, queueing, get-next, pick, and who holds what.

use super::*;

impl Hub {
    /// Starts a chat for the customer on connection `sink` and queues it,
    /// or, when no member agent of the channel is Present and the channel
    /// has an offline form, answers with the form.
    pub async fn start_chat(
        &self,
        sink: EventSink,
        channel: ChannelId,
        customer: Customer,
        client_id: u64,
        text: String,
        secret: Secret,
    ) -> Result<ChatStart, HubError> {
        self.start_chat_as(sink, channel, customer, None, client_id, text, secret)
            .await
    }

    /// [`Hub::start_chat_needing`] with the channel's default skills.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_chat_as(
        &self,
        sink: EventSink,
        channel: ChannelId,
        customer: Customer,
        identity: Option<VerifiedIdentity>,
        client_id: u64,
        text: String,
        secret: Secret,
    ) -> Result<ChatStart, HubError> {
        self.start_chat_needing(
            sink,
            channel,
            customer,
            identity,
            client_id,
            text,
            secret,
            &[],
        )
        .await
    }

    /// [`Hub::start_chat`] for a customer whose `identity` was verified
    /// ([`Hub::verify_identity`]) on this channel, if any, for a chat that
    /// needs `skills` (chosen among the channel's; none: its defaults). A
    /// channel that requires identities refuses a start without one.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_chat_needing(
        &self,
        sink: EventSink,
        channel: ChannelId,
        mut customer: Customer,
        verified: Option<VerifiedIdentity>,
        client_id: u64,
        text: String,
        secret: Secret,
        skills: &[String],
    ) -> Result<ChatStart, HubError> {
        let settings = self.open_channel(&channel)?;
        // A claim is lowered to what the channel lets an identity claim.
        let (identity, claimed) = match verified {
            Some(verified) => (
                Some(verified.identity),
                verified
                    .priority
                    .map(|priority| priority.min(settings.max_claimed_priority)),
            ),
            None => (None, None),
        };
        let skills = SkillSet::needed(skills, &settings.skills, &settings.default_skills)
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        if settings.identity == IdentityPolicy::Require && identity.is_none() {
            return Err(HubError::Unverified(format!(
                "channel {channel} takes chats only from customers with a verified identity"
            )));
        }
        if let Some(identity) = &identity
            && identity.email.is_some()
        {
            // The address the backend vouches for, not a typed one.
            customer.email = identity.email.clone();
        }
        crate::core::chat::check_text(&text)?;
        crate::core::ticket::check_customer(customer.name.as_deref(), customer.email.as_deref())
            .map_err(|err| HubError::limited(Limit::Field, err.to_string()))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.expose().len()) {
            return Err(HubError::Invalid(format!(
                "a chat's secret needs {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let token = digest(secret.expose());
        // A start retried after a lost answer finds the chat it made.
        let live = self.shared.live_tokens.get(&token).map(|chat| *chat);
        let known = match live {
            Some(chat) => Some(chat),
            // A connection (or address) at its cap gets its answer before
            // the hub reads the store for it.
            None if let Some(limit) =
                self.shared
                    .origins
                    .at_cap(sink.conn(), sink.peer(), &self.shared.limits) =>
            {
                return Err(self.too_many_chats(limit));
            }
            None if sink
                .peer()
                .is_some_and(|ip| !self.shared.start_pace.allow(ip, Timestamp::now())) =>
            {
                return Err(HubError::limited(
                    Limit::ChatStarts,
                    "too many chats started from this address; try again in a minute",
                ));
            }
            None => {
                let (store, token) = (self.shared.store.clone(), token.clone());
                blocking(move || store.chat_by_token(&token)).await?
            }
        };
        if let Some(chat) = known {
            self.resume_customer(sink, chat, &secret, 0).await?;
            return Ok(ChatStart::Queued { chat, waiting: 0 });
        }
        let now = Timestamp::now();
        if let Some(hours) = &settings.hours
            && settings.offline_form
            && !hours.is_open(now)
        {
            metrics::counter!("chathub_chats_offline_total", "channel" => channel.to_string())
                .increment(1);
            return Ok(ChatStart::Offline(OfflineForm::closed_until(
                channel,
                settings.offline_message.as_deref(),
                hours.next_opening(now),
            )));
        }
        if settings.offline_form && self.shared.presence.present_count(&channel) == 0 {
            metrics::counter!("chathub_chats_offline_total", "channel" => channel.to_string())
                .increment(1);
            return Ok(ChatStart::Offline(OfflineForm::for_channel(
                channel,
                settings.offline_message.as_deref(),
            )));
        }
        let origin = self.reserve_origin(&sink)?;
        let id = ChatId(self.shared.next_chat.fetch_add(1, Ordering::Relaxed));
        match self.shared.live_tokens.entry(token.clone()) {
            dashmap::Entry::Occupied(existing) => {
                // The same start raced in twice: the first one wins.
                let chat = *existing.get();
                drop(existing);
                self.resume_customer(sink, chat, &secret, 0).await?;
                return Ok(ChatStart::Queued { chat, waiting: 0 });
            }
            dashmap::Entry::Vacant(vacant) => {
                vacant.insert(id);
            }
        }
        let mut chat = Chat::start(
            id,
            channel.clone(),
            customer.clone(),
            client_id,
            text,
            settings.welcome.as_deref(),
            now,
        )?;
        if let Some(identity) = identity.clone() {
            chat.verify(identity, now)?;
            if let Some(priority) = claimed {
                chat.claim_priority(priority, now)?;
            }
        }
        chat.need_skills(skills.clone(), now)?;
        let row = chat.queue_row(now);
        let claim = Arc::new(ClaimCell::new());
        let (started_tx, started_rx) = oneshot::channel();
        let mut start_ops = vec![Op::Token {
            chat: id.0,
            digest: token.clone(),
        }];
        start_ops.extend(
            crate::store::contact_keys(chat.customer(), chat.verified())
                .into_iter()
                .map(|key| Op::ContactChat { key, chat: id.0 }),
        );
        let args = ChatArgs {
            hub: self.clone(),
            chat,
            claim: claim.clone(),
            customer_conn: Some(sink.conn()),
            token_digest: Some(token.clone()),
            started: Some(started_tx),
            durable: 0,
            start_ops,
            origin: Some(origin),
        };
        let (chat_actor, _) =
            Actor::spawn_linked(None, ChatActor, args, self.shared.root.get_cell())
                .await
                .map_err(|err| gone(format!("cannot start the chat: {err}")))?;
        let channel_name = channel;
        // The start is made durable while the chat joins the queue; the
        // customer hears of it once both are done.
        let (durable, queued) = tokio::join!(
            answer(started_rx),
            self.enqueue(chat_actor.clone(), claim, 0, row, skills, Admit::New)
        );
        match (durable.and_then(|durable| durable), queued) {
            (Ok(()), Ok(waiting)) => {
                let _ = chat_actor.cast(ChatMsg::AttachCustomer { sink, after: 0 });
                metrics::counter!("chathub_chats_started_total", "channel" => channel_name.to_string()).increment(1);
                Ok(ChatStart::Queued { chat: id, waiting })
            }
            (Err(err), _) => Err(err),
            (Ok(()), Err(err)) => {
                let _ = chat_actor.cast(ChatMsg::Discard);
                Err(err)
            }
        }
    }

    /// A customer's new connection takes over a chat it started earlier (by
    /// its secret) and receives its events after `after`.
    pub async fn resume_customer(
        &self,
        sink: EventSink,
        chat: ChatId,
        secret: &Secret,
        after: u64,
    ) -> Result<(), HubError> {
        match self.resume_live(&sink, chat, secret, after).await? {
            Some(_) => Ok(()),
            None => {
                let stored = self.stored_chat_of(chat, digest(secret.expose())).await?;
                for event in stored.events.into_iter().filter(|event| event.seq > after) {
                    if !sink.deliver(crate::actors::sink::Outbound::Chat(Arc::new(event))) {
                        return Err(gone("the connection fell behind"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Resumes `chat` from its live actor, if it has one: `Some(live)`,
    /// `live` false if the chat ended and its actor is about to stop;
    /// `None` if it has no actor.
    pub(super) async fn resume_live(
        &self,
        sink: &EventSink,
        chat: ChatId,
        secret: &Secret,
        after: u64,
    ) -> Result<Option<bool>, HubError> {
        if self.chat_actor(chat).is_none() {
            return Ok(None);
        }
        let token = digest(secret.expose());
        let resumed = self
            .ask_chat(chat, {
                let sink = sink.clone();
                move |reply| ChatMsg::Resume {
                    sink,
                    token,
                    after,
                    reply,
                }
            })
            .await;
        match resumed {
            Ok(live) => Ok(Some(live)),
            // Stopped while we asked: the stored copy has it all.
            Err(HubError::Chat(ChatError::Ended) | HubError::UnknownChat(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The stored chat `chat` if `token` is the digest of its secret. The
    /// secret is checked against the token index before the chat is read,
    /// so a wrong secret costs one index lookup; a chat that is not the
    /// caller's and one that does not exist get the same answer.
    pub(crate) async fn stored_chat_of(
        &self,
        chat: ChatId,
        token: Vec<u8>,
    ) -> Result<crate::store::StoredChat, HubError> {
        // An id never handed out is answered without a store read.
        if chat.0 >= self.shared.next_chat.load(Ordering::Relaxed) {
            return Err(HubError::NotYourChat(chat));
        }
        let store = self.shared.store.clone();
        blocking(move || {
            if store.chat_by_token(&token)? != Some(chat) {
                return Ok(None);
            }
            store.chat(chat)
        })
        .await?
        .ok_or(HubError::NotYourChat(chat))
    }

    /// Counts a new live chat against the customer connection of `sink`
    /// and its address.
    pub(crate) fn reserve_origin(&self, sink: &EventSink) -> Result<OriginSlot, HubError> {
        self.shared
            .origins
            .reserve(sink.conn(), sink.peer(), &self.shared.limits)
            .map_err(|limit| self.too_many_chats(limit))
    }

    fn too_many_chats(&self, limit: Limit) -> HubError {
        let detail = match limit {
            Limit::ChatsPerIp => format!(
                "customers of this address already have {} live chats",
                self.shared.limits.chats_per_ip
            ),
            _ => format!(
                "this connection already has {} live chats",
                self.shared.limits.chats_per_connection
            ),
        };
        HubError::limited(limit, detail)
    }

    /// The chats an agent holds now.
    pub(crate) fn assigned_to(&self, agent: &AgentId) -> Vec<ChatId> {
        self.shared
            .assignments
            .iter()
            .filter(|entry| entry.value().0 == *agent)
            .map(|entry| *entry.key())
            .collect()
    }

    /// A chat with this secret digest is live (or no longer, with `None`).
    pub(crate) fn set_live_token(&self, token: &[u8], chat: Option<ChatId>) {
        match chat {
            Some(chat) => {
                self.shared.live_tokens.insert(token.to_vec(), chat);
            }
            None => {
                self.shared.live_tokens.remove(token);
            }
        }
    }

    // The gauge moves by each change rather than being set to this hub's
    // count: in a cluster one process runs a hub per partition it owns,
    // and the gauge is their sum.
    pub(crate) fn set_assignment(&self, chat: ChatId, agent: AgentId) {
        let earlier = self
            .shared
            .assignments
            .insert(chat, (agent, Timestamp::now()));
        if earlier.is_none() {
            metrics::gauge!("chathub_chats_active").increment(1.0);
        }
    }

    pub(crate) fn clear_assignment(&self, chat: ChatId) {
        if self.shared.assignments.remove(&chat).is_some() {
            metrics::gauge!("chathub_chats_active").decrement(1.0);
        }
    }

    /// The live chat actor of `chat`, if any.
    pub(crate) fn live_chat(&self, chat: ChatId) -> Option<ActorRef<ChatMsg>> {
        self.chat_actor(chat)
    }

    /// The channel a chat is in now (or ended in); `None` for an id never
    /// used.
    pub(crate) async fn chat_channel(&self, chat: ChatId) -> Result<Option<ChannelId>, HubError> {
        if let Some(entry) = self.shared.chats.get(&chat) {
            return Ok(Some(entry.channel.clone()));
        }
        let store = self.shared.store.clone();
        blocking(move || store.channel_of(chat)).await
    }

    /// Stored events of a chat of one of the agent's channels (the channel
    /// it is in now, or ended in) after `after`.
    pub(crate) async fn stored_events_for(
        &self,
        agent: &AgentId,
        chat: ChatId,
        after: u64,
    ) -> Result<Vec<ChatEvent>, HubError> {
        match self.chat_channel(chat).await? {
            None => return Err(HubError::UnknownChat(chat)),
            Some(channel) if !self.is_member(agent, &channel) => {
                return Err(HubError::NotYourChat(chat));
            }
            Some(_) => {}
        }
        let store = self.shared.store.clone();
        let stored = blocking(move || store.chat(chat))
            .await?
            .ok_or(HubError::UnknownChat(chat))?;
        Ok(stored
            .events
            .into_iter()
            .filter(|event| event.seq > after)
            .collect())
    }

    /// Takes a slot of `agent` if one is free.
    pub(crate) fn try_reserve_slot(&self, agent: &AgentId) -> bool {
        self.shared
            .presence
            .agent(agent)
            .is_some_and(|presence| presence.capacity.try_reserve())
    }

    /// Puts a chat (back) into its channel's queue as wait `generation`;
    /// answers how many wait; `admit` says where it joins.
    pub(crate) async fn enqueue(
        &self,
        chat: ActorRef<ChatMsg>,
        claim: Arc<ClaimCell>,
        generation: u64,
        row: QueueRow,
        skills: SkillSet,
        admit: Admit,
    ) -> Result<u32, HubError> {
        let channel = self
            .channel_actor(&row.channel)
            .ok_or_else(|| HubError::UnknownChannel(row.channel.clone()))?;
        let (tx, rx) = oneshot::channel();
        channel
            .cast(ChannelMsg::Enqueue {
                waiting: Waiting {
                    generation,
                    row,
                    skills,
                    claim,
                    chat,
                },
                admit,
                reply: tx.into(),
            })
            .map_err(|_| gone("the channel's actor stopped"))?;
        answer(rx).await?
    }

    /// Gives `agent` the chat that has waited longest in `channel`.
    pub fn get_next(
        &self,
        agent: AgentId,
        channel: ChannelId,
    ) -> impl Future<Output = Result<Assignment, HubError>> + Send + 'static {
        let hub = self.clone();
        Self::detached(async move {
            let channel_actor = hub
                .channel_actor(&channel)
                .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
            if !hub.is_member(&agent, &channel) {
                return Err(HubError::NotAMember(channel));
            }
            hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let (tx, rx) = oneshot::channel();
            let taken = match channel_actor.cast(ChannelMsg::TakeNext {
                agent: agent.clone(),
                reply: tx.into(),
            }) {
                Ok(()) => answer(rx).await.and_then(|taken| taken),
                Err(_) => Err(gone("the channel's actor stopped")),
            };
            if taken.is_err() {
                hub.release_slot(&agent);
            }
            taken
        })
    }

    /// Gives `agent` one particular waiting chat, racing with get-next and
    /// other pickers: exactly one wins; the others get `ChatAlreadyTaken`.
    pub fn pick(
        &self,
        agent: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<Assignment, HubError>> + Send + 'static {
        let hub = self.clone();
        Self::detached(async move {
            let (channel, claim, chat_actor) = match hub.shared.chats.get(&chat) {
                Some(entry) => (
                    entry.channel.clone(),
                    entry.claim.clone(),
                    entry.actor.clone(),
                ),
                None => return Err(hub.missing_chat(chat).await),
            };
            if !hub.is_member(&agent, &channel) {
                return Err(HubError::NotAMember(channel));
            }
            hub.agent_actor(&agent).await?;
            hub.reserve_slot(&agent)?;
            let picked = match claim.claim(Claimer::Agent) {
                Ok(_) => {
                    if let Some(channel) = hub.channel_actor(&channel) {
                        let _ = channel.cast(ChannelMsg::Withdraw(chat));
                    }
                    assign(&chat_actor, &agent, chat).await
                }
                Err(Claimed(Claimer::Agent)) => Err(HubError::ChatAlreadyTaken(chat)),
                Err(Claimed(Claimer::Abandon)) => Err(HubError::Chat(ChatError::Ended)),
            };
            if picked.is_err() {
                hub.release_slot(&agent);
            }
            picked
        })
    }

    /// `agent` accepts the chat a push channel offered them: the offer's
    /// slot becomes the assignment's. `NotOffered` if no offer of the chat
    /// to them stands; `ChatAlreadyTaken` or `ChatEnded` if a pick,
    /// get-next or the customer leaving came first.
    pub fn accept_offer(
        &self,
        agent: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<Assignment, HubError>> + Send + 'static {
        let hub = self.clone();
        Self::detached(async move {
            let channel = hub.offering_channel(chat)?;
            let (tx, rx) = oneshot::channel();
            channel
                .cast(ChannelMsg::Accept {
                    agent: agent.clone(),
                    chat,
                    reply: tx.into(),
                })
                .map_err(|_| gone("the channel's actor stopped"))?;
            let chat_actor = answer(rx).await??;
            let assigned = assign(&chat_actor, &agent, chat).await;
            if assigned.is_err() {
                hub.release_slot(&agent);
            }
            assigned
        })
    }

    /// `agent` declines the chat a push channel offered them; the channel
    /// offers it to another agent.
    pub fn decline_offer(
        &self,
        agent: AgentId,
        chat: ChatId,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        let hub = self.clone();
        async move {
            let channel = hub.offering_channel(chat)?;
            let (tx, rx) = oneshot::channel();
            channel
                .cast(ChannelMsg::Decline {
                    agent,
                    chat,
                    reply: tx.into(),
                })
                .map_err(|_| gone("the channel's actor stopped"))?;
            answer(rx).await?
        }
    }

    /// The actor of the channel a live chat waits in, which holds its
    /// offers; `NotOffered` for a chat not live.
    fn offering_channel(&self, chat: ChatId) -> Result<ActorRef<ChannelMsg>, HubError> {
        self.shared
            .chats
            .get(&chat)
            .and_then(|entry| self.channel_actor(&entry.channel))
            .ok_or(HubError::NotOffered(chat))
    }

    /// The Present member agents of `channel`. Any agent may ask of any
    /// channel: it is how an agent sees whether a channel they would
    /// transfer a chat to has anyone Present.
    pub fn present_agents(&self, channel: &ChannelId) -> Result<Vec<AgentId>, HubError> {
        if self.channel(channel).is_none() {
            return Err(HubError::UnknownChannel(channel.clone()));
        }
        Ok(self.shared.presence.present_agents(channel))
    }
}

/// Asks a chat's actor, whose claim `agent` won, to assign the chat to
/// them: the assignment once durable.
async fn assign(
    chat_actor: &ActorRef<ChatMsg>,
    agent: &AgentId,
    chat: ChatId,
) -> Result<Assignment, HubError> {
    let (tx, rx) = oneshot::channel();
    let assign = ChatMsg::Assign {
        agent: agent.clone(),
        reply: tx.into(),
    };
    match chat_actor.cast(assign) {
        Ok(()) => answer(rx).await.and_then(|assigned| assigned),
        Err(_) => Err(HubError::UnknownChat(chat)),
    }
}
