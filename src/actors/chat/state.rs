//! What a chat actor does with its state: persist, publish as the gate
//! lets events out, and carry out the chat's changes.

use super::*;

impl ChatActorState {
    /// The durable events after `after`: what may be shown to anyone.
    pub(super) fn durable_after(&self, after: u64) -> impl Iterator<Item = &ChatEvent> {
        let durable = self.gate.durable();
        self.chat
            .events_after(after)
            .take_while(move |event| event.seq <= durable)
    }

    /// The customer's connection receives the durable events after `after`
    /// and, from then on, every new one.
    pub(super) fn attach_customer(&mut self, sink: EventSink, after: u64) {
        let delivered = self
            .durable_after(after)
            .all(|event| sink.deliver(Outbound::Chat(Arc::new(event.clone()))));
        // A waiting chat's place, as last told.
        let placed = match (self.place, self.chat.state()) {
            (Some(place), ChatState::Queued { .. }) if delivered => {
                sink.deliver(Outbound::QueuePosition(place))
            }
            _ => delivered,
        };
        self.customer = placed.then_some(sink);
        if self.customer.is_some() {
            self.customer_gone_since = None;
        } else {
            // The new connection fell behind at once: gone as before.
            self.customer_gone_since
                .get_or_insert_with(std::time::Instant::now);
        }
    }

    pub(super) fn last_seq(&self) -> u64 {
        self.chat.events().last().map_or(0, |event| event.seq)
    }

    pub(super) fn party(&self, caller: &Caller) -> Result<Party, HubError> {
        match caller {
            Caller::Customer(conn) if Some(*conn) == self.customer_conn => Ok(Party::Customer),
            Caller::Customer(_) => Err(HubError::NotYourChat(self.chat.id())),
            Caller::Agent(agent) => Ok(Party::Agent(agent.clone())),
        }
    }

    /// Passes `caller`'s typing on to the other party: the customer's to
    /// the holding agent's connections, the holding agent's to the
    /// customer's. Nothing is stored, and nobody else learns of it; a
    /// caller who does not take part is ignored.
    pub(super) fn typing(&self, caller: &Caller) {
        if matches!(self.chat.state(), ChatState::Ended { .. }) {
            return;
        }
        let chat = self.chat.id();
        match self.party(caller) {
            Ok(Party::Customer) => {
                if let Some(outlet) = self
                    .published_agent
                    .as_ref()
                    .and_then(|agent| self.hub.agent_outlet(agent))
                {
                    outlet.offer_signal(&Signal::Typing {
                        chat,
                        from: Party::Customer,
                    });
                }
            }
            Ok(Party::Agent(agent)) if self.published_agent.as_ref() == Some(&agent) => {
                if let Some(sink) = &self.customer {
                    sink.offer_signal(Signal::Typing {
                        chat,
                        from: Party::Agent(agent),
                    });
                }
            }
            _ => {}
        }
    }

    /// Hands the events not yet written (and `extra` ops) to the store; the
    /// commit comes back as a message.
    pub(super) fn persist(&mut self, myself: &ActorRef<ChatMsg>, extra: Vec<Op>) {
        let last = self.last_seq();
        let mut ops: Vec<Op> = self
            .chat
            .events_after(self.gate.written())
            .cloned()
            .map(Op::Event)
            .collect();
        ops.extend(extra);
        if ops.is_empty() {
            return;
        }
        self.gate.handle_written(last);
        let myself = myself.clone();
        let submitted = std::time::Instant::now();
        self.hub.store().writer().submit(
            ops,
            Box::new(move |result| {
                let _ = myself.cast(match result {
                    Ok(()) => {
                        stages::since(&STAGES.durable, submitted);
                        ChatMsg::Committed {
                            seq: last,
                            at: std::time::Instant::now(),
                        }
                    }
                    Err(err) => ChatMsg::CommitFailed(err),
                });
            }),
        );
    }

    /// Publishes the events up to `seq` and answers what waited for them,
    /// as the gate lets them out.
    pub(super) fn committed(&mut self, myself: &ActorRef<ChatMsg>, seq: u64) {
        self.gate.handle_durable(seq);
        while let Some(Publish { seq, except }) = self.gate.poll_publish() {
            let index = usize::try_from(seq - 1).unwrap_or(usize::MAX);
            if let Some(event) = self.chat.events().get(index).cloned() {
                self.publish(myself, Arc::new(event), except);
            }
        }
        while let Some(answer) = self.gate.poll_answer() {
            answer.succeed(&self.metrics);
        }
        if matches!(self.chat.state(), ChatState::Ended { .. })
            && self.gate.settled()
            && self.gate.durable() == self.last_seq()
        {
            myself.stop(None);
        }
    }

    /// `by` follows the chat from now on: a new follower's actor gets the
    /// durable events so far (later ones follow in order through
    /// [`ChatActorState::publish`]); one already following gets nothing
    /// twice. An ended chat has nothing more to follow.
    pub(super) fn follow(&mut self, by: AgentId) -> Result<(), HubError> {
        if matches!(self.chat.state(), ChatState::Ended { .. }) {
            return Err(HubError::Chat(crate::core::ChatError::Ended));
        }
        if self.followers.contains(&by) {
            return Ok(());
        }
        let outlet = self
            .hub
            .agent_outlet(&by)
            .ok_or_else(|| HubError::Unavailable(format!("{by} has no connection")))?;
        self.followers.insert(by);
        for event in self.durable_after(0) {
            outlet.deliver(None, None, Outbound::Chat(Arc::new(event.clone())));
        }
        Ok(())
    }

    /// Sends one durable event to everyone in the chat (but connection
    /// `except`, which sent it and learns of it from its answer) and
    /// carries out what it means for the hub: who holds the chat now, whose
    /// slot is free, whether it goes back to a queue.
    pub(super) fn publish(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        event: Arc<ChatEvent>,
        except: Option<ConnId>,
    ) {
        if let Some(sink) = &self.customer
            && Some(sink.conn()) != except
            && !sink.deliver(Outbound::Chat(event.clone()))
        {
            self.customer_left(myself);
        }
        // The agent holding the chat sees every event, including the one
        // that takes the chat away from them.
        let previous = self.published_agent.clone();
        if let Some(outlet) = previous
            .as_ref()
            .and_then(|agent| self.hub.agent_outlet(agent))
        {
            outlet.deliver(None, except, Outbound::Chat(event.clone()));
        }
        // A supervisor barging in gets the transcript before the event
        // that says so (unless they follow the chat and have it).
        if let ChatEventKind::SupervisorJoined { supervisor } = &event.kind
            && !self.followers.contains(supervisor)
            && self.barged.insert(supervisor.clone())
            && let Some(outlet) = self.hub.agent_outlet(supervisor)
        {
            for earlier in self.chat.events().iter().take_while(|e| e.seq < event.seq) {
                outlet.deliver(None, None, Outbound::Chat(Arc::new(earlier.clone())));
            }
        }
        if let ChatEventKind::SupervisorJoined { supervisor } = &event.kind {
            self.barged.insert(supervisor.clone());
        }
        // Followers and supervisors in the chat see every event too, but
        // the holder, who has it already.
        let mut watchers: Vec<&AgentId> = self.followers.iter().collect();
        watchers.extend(self.barged.iter().filter(|s| !self.followers.contains(*s)));
        for follower in watchers {
            if previous.as_ref() == Some(follower) {
                continue;
            }
            if let Some(outlet) = self.hub.agent_outlet(follower) {
                outlet.deliver(None, except, Outbound::Chat(event.clone()));
            }
        }
        // One who left hears of it, and of the end if that is why.
        if let ChatEventKind::SupervisorLeft { supervisor } = &event.kind
            && !matches!(self.chat.state(), ChatState::Ended { .. })
        {
            self.barged.remove(supervisor);
        }
        self.count(&event);
        let next = match &event.kind {
            ChatEventKind::Assigned { agent }
            | ChatEventKind::TransferredToAgent { to: agent, .. } => Some(agent.clone()),
            ChatEventKind::TransferDeclined { to, .. } => to.clone(),
            ChatEventKind::Reopened { agent } => agent.clone(),
            ChatEventKind::Requeued { .. } | ChatEventKind::Ended { .. } => None,
            _ => previous.clone(),
        };
        if next.is_some() || matches!(event.kind, ChatEventKind::Ended { .. }) {
            self.place = None;
        }
        if next != previous {
            if let Some(old) = &previous {
                // Durable now: the slot is free before anyone is answered.
                self.hub.release_slot(old);
                if let Some(actor) = self.hub.agent_actor_ref(old) {
                    let _ = actor.cast(AgentMsg::Released(self.chat.id()));
                }
            }
            match &next {
                Some(agent) => {
                    self.hub.set_assignment(self.chat.id(), agent.clone());
                    if let Some(presence) = self.hub.presence().agent(agent) {
                        presence.assigned_at(event.at);
                    }
                    // The new holder gets the whole transcript so far
                    // (recorded as theirs first: see `AgentOutlet`).
                    if let Some(outlet) = self.hub.agent_outlet(agent) {
                        for earlier in self.chat.events().iter().take_while(|e| e.seq <= event.seq)
                        {
                            outlet.deliver(None, None, Outbound::Chat(Arc::new(earlier.clone())));
                        }
                    }
                    if let Some(actor) = self.hub.agent_actor_ref(agent) {
                        let _ = actor.cast(AgentMsg::Assigned(self.chat.id()));
                    }
                }
                None => self.hub.clear_assignment(self.chat.id()),
            }
            self.published_agent = next;
        }
        match &event.kind {
            // Put back by the hub for a gone agent: served first.
            ChatEventKind::Requeued { by: None, .. } => {
                self.queue_again(myself, event.at, Admit::Front)
            }
            ChatEventKind::Requeued { .. }
            | ChatEventKind::TransferDeclined { to: None, .. }
            | ChatEventKind::Reopened { agent: None } => {
                self.queue_again(myself, event.at, Admit::Accepted)
            }
            ChatEventKind::Prioritized { priority, .. } => {
                if let Some(channel) = self.hub.channel_actor(self.chat.channel()) {
                    let _ = channel.cast(ChannelMsg::SetPriority {
                        chat: self.chat.id(),
                        priority: *priority,
                    });
                }
            }
            _ => {}
        }
    }

    /// Records what a durable event means for the metrics.
    pub(super) fn count(&mut self, event: &ChatEvent) {
        // Labels are built only for the rarer events; messages use the
        // handles looked up when the actor started.
        match &event.kind {
            ChatEventKind::Started { .. }
            | ChatEventKind::Requeued { .. }
            | ChatEventKind::TransferDeclined { to: None, .. }
            | ChatEventKind::Reopened { agent: None } => self.queued_since = Some(event.at),
            ChatEventKind::Assigned { .. } => {
                let channel = self.chat.channel().to_string();
                metrics::counter!("chathub_chats_answered_total", "channel" => channel.clone())
                    .increment(1);
                if let Some(since) = self.queued_since.take() {
                    let waited = event.at.since(since).as_secs_f64();
                    metrics::histogram!("chathub_assignment_seconds", "channel" => channel.clone())
                        .record(waited);
                    metrics::histogram!("chathub_chat_wait_seconds", "channel" => channel)
                        .record(waited);
                }
            }
            ChatEventKind::Message { from, .. } => match from {
                Party::Customer => self.metrics.customer_to_agent.increment(1),
                Party::Agent(_) => self.metrics.agent_to_customer.increment(1),
                Party::System => self.metrics.system.increment(1),
            },
            ChatEventKind::TransferredToAgent { .. } => {
                metrics::counter!("chathub_chats_transferred_total", "channel" => self.chat.channel().to_string(), "to" => "agent").increment(1);
            }
            ChatEventKind::AgentGone { .. } => {
                metrics::counter!("chathub_chats_agent_gone_total", "channel" => self.chat.channel().to_string()).increment(1);
            }
            ChatEventKind::Ended { .. } => {
                metrics::counter!("chathub_chats_ended_total", "channel" => self.chat.channel().to_string()).increment(1);
            }
            _ => {}
        }
        if let ChatEventKind::Requeued {
            by: Some(_),
            channel: to,
        } = &event.kind
        {
            metrics::counter!("chathub_chats_transferred_total", "channel" => to.to_string(), "to" => "channel")
                .increment(1);
        }
    }

    /// Puts the chat (back) into its channel's queue as a new wait, where
    /// `admit` says.
    pub(super) fn queue_again(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        since: Timestamp,
        admit: Admit,
    ) {
        let generation = self
            .claim
            .requeue()
            .unwrap_or_else(|_| self.claim.generation());
        let channel = self.chat.channel().clone();
        self.hub.register_chat(
            self.chat.id(),
            ChatEntry {
                actor: myself.clone(),
                channel: channel.clone(),
                claim: self.claim.clone(),
            },
        );
        let row = self.chat.queue_row(since);
        let skills = self.chat.skills().clone();
        if self.customer.is_none() {
            // Waiting again with nobody to wait for: the customer has the
            // channel's `abandon_after` to come back, as at any wait.
            self.arm_abandonment(myself);
        }
        let (hub, chat, claim) = (self.hub.clone(), myself.clone(), self.claim.clone());
        tokio::spawn(async move {
            if let Err(err) = hub
                .enqueue(chat, claim, generation, row, skills, admit)
                .await
            {
                tracing::error!("a chat could not go back to its queue: {err}");
            }
        });
    }

    /// Posts a message for `party`, answered once durable. Connection
    /// `sender`, if any, learns of a new message from the answer alone.
    pub(super) fn post(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        party: Party,
        post: Post,
        sender: Option<ConnId>,
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    ) {
        let Post {
            client_id,
            text,
            note,
            whisper,
        } = post;
        let now = Timestamp::now();
        let posted = match (note, party) {
            (false, party) => self.chat.post(party, client_id, text, now),
            (true, Party::Agent(agent)) if whisper => {
                self.chat.whisper(agent, client_id, text, now)
            }
            (true, Party::Agent(agent)) => self.chat.note(agent, client_id, text, now),
            (true, _) => {
                let _ = reply.send(Err(HubError::NotAllowed(
                    "only an agent writes notes".into(),
                )));
                return;
            }
        };
        let posted = match posted {
            Ok(Posted::New(event)) => {
                let receipt = Receipt::from(event);
                if let Some(conn) = sender {
                    self.gate.withhold(receipt.seq, conn);
                }
                Ok(receipt)
            }
            Ok(Posted::Repeat { seq, at }) => Ok(Receipt { seq, at }),
            Err(err) => Err(HubError::from(err)),
        };
        match posted {
            Ok(receipt) => {
                self.persist(myself, Vec::new());
                // A repeat is acknowledged once what it repeats is durable.
                let posted = Answer::Posted(reply, receipt, std::time::Instant::now());
                if let Some(Answer::Posted(reply, receipt, _)) = self.gate.wait(receipt.seq, posted)
                {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Marks the chat read by `caller` up to `up_to`, answered with the
    /// caller's mark once it is durable. A new mark's event is withheld
    /// from connection `conn`, which learns of it from the answer. A
    /// customer's new marks count against the chat's pace and length as
    /// their messages do; a mark that changes nothing costs nothing.
    pub(super) fn mark_read(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        caller: &Caller,
        conn: ConnId,
        up_to: u64,
        reply: RpcReplyPort<Result<ReadMark, HubError>>,
    ) {
        let marked = self.party(caller).and_then(|party| {
            if party == Party::Customer
                && up_to <= self.last_seq()
                && self.chat.mark_moves(&party, up_to)
            {
                self.admit_customer_post(myself, "")?;
            }
            match self.chat.mark_read(party, up_to, Timestamp::now())? {
                Marked::New(event) => {
                    let mark = ReadMark {
                        up_to,
                        seq: event.seq,
                        at: event.at,
                    };
                    self.gate.withhold(mark.seq, conn);
                    self.persist(myself, Vec::new());
                    Ok(mark)
                }
                Marked::Unchanged(mark) => Ok(mark),
            }
        });
        match marked {
            // No mark yet, so no event to wait for.
            Ok(mark) if mark.seq == 0 => {
                let _ = reply.send(Ok(mark));
            }
            // Answered once the event that set the mark is durable, for a
            // mark that changed nothing as for a repeated message.
            Ok(mark) => {
                if let Some(answer) = self.gate.wait(mark.seq, Answer::Read(reply, mark)) {
                    answer.succeed(&self.metrics);
                }
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Edits (`text`) or deletes (`None`) message `seq` for `caller`, its
    /// author, within the channel's `edit_window`: answered with the new
    /// event's seq and time once durable; connection `conn` learns of it
    /// from the answer alone. A customer's changes count against the
    /// chat's pace and length as their messages do.
    pub(super) fn change_message(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        caller: &Caller,
        conn: ConnId,
        seq: u64,
        text: Option<String>,
        reply: RpcReplyPort<Result<Receipt, HubError>>,
    ) {
        let window = self
            .hub
            .channel(self.chat.channel())
            .map_or(std::time::Duration::ZERO, |settings| settings.edit_window);
        let changed = self.party(caller).and_then(|party| {
            if party == Party::Customer {
                self.admit_customer_post(myself, text.as_deref().unwrap_or(""))?;
            }
            let now = Timestamp::now();
            let (event, change) = match text {
                Some(text) => (self.chat.edit(party, seq, text, window, now)?, "edited"),
                None => (self.chat.delete(party, seq, window, now)?, "deleted"),
            };
            metrics::counter!("chathub_message_changes_total", "change" => change).increment(1);
            Ok(Receipt::from(event))
        });
        match changed {
            Ok(receipt) => {
                self.gate.withhold(receipt.seq, conn);
                self.persist(myself, Vec::new());
                let posted = Answer::Posted(reply, receipt, std::time::Instant::now());
                if let Some(answer) = self.gate.wait(receipt.seq, posted) {
                    answer.succeed(&self.metrics);
                }
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    /// Persists a change that succeeded and answers once durable, or
    /// answers the refusal at once.
    pub(super) fn settle(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        done: Result<(), HubError>,
        reply: RpcReplyPort<Result<(), HubError>>,
        extra: Vec<Op>,
    ) {
        match done {
            Ok(()) => {
                self.persist(myself, extra);
                self.wait(Answer::Ended(reply));
            }
            Err(err) => {
                let _ = reply.send(Err(err));
            }
        }
    }

    pub(super) fn wait(&mut self, answer: Answer) {
        if let Some(answer) = self.gate.wait(self.last_seq(), answer) {
            answer.succeed(&self.metrics);
        }
    }

    pub(super) fn assign(&mut self, agent: AgentId) -> Result<Assignment, HubError> {
        let waiting_since = match self.chat.state() {
            ChatState::Queued { since } => *since,
            _ => Timestamp::default(),
        };
        self.chat.assign(agent, Timestamp::now())?;
        Ok(Assignment {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            first_message: self.chat.first_message().to_owned(),
            waiting_since,
        })
    }

    /// Ends the chat for `by`, storing its session row with the end.
    pub(super) fn end(&mut self, myself: &ActorRef<ChatMsg>, by: Party) -> Result<(), HubError> {
        self.chat.end(by.clone(), Timestamp::now())?;
        let events = self.chat.events();
        let summary = SessionSummary {
            chat: self.chat.id(),
            channel: self.chat.channel().clone(),
            customer: self.chat.customer().clone(),
            agent: events.iter().rev().find_map(|event| match &event.kind {
                ChatEventKind::Assigned { agent } => Some(agent.clone()),
                _ => None,
            }),
            started: events.first().map(|e| e.at).unwrap_or_default(),
            ended: events.last().map(|e| e.at).unwrap_or_default(),
            ended_by: by,
            events: events.len() as u64,
        };
        let tags = self.chat.tags().cloned().collect();
        self.persist(
            myself,
            vec![
                Op::Session(summary),
                Op::SessionTags {
                    chat: self.chat.id().0,
                    tags,
                },
            ],
        );
        Ok(())
    }

    /// The customer leaves. A queued chat is withdrawn from the queue first;
    /// if an agent's claim won the race, the chat ends right after the
    /// assignment arrives.
    pub(super) fn leave(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        by: Party,
    ) -> Result<bool, HubError> {
        if matches!(self.chat.state(), ChatState::Queued { .. }) {
            match self.claim.claim(Claimer::Abandon) {
                Ok(_) => {
                    metrics::counter!("chathub_chats_abandoned_total", "channel" => self.chat.channel().to_string())
                        .increment(1);
                    if let Some(channel) = self.hub.channel_actor(self.chat.channel()) {
                        let _ = channel.cast(ChannelMsg::Withdraw(self.chat.id()));
                    }
                }
                Err(Claimed(Claimer::Agent)) => {
                    self.leaving = true;
                    return Ok(false);
                }
                Err(Claimed(Claimer::Abandon)) => return Err(crate::core::ChatError::Ended.into()),
            }
        }
        self.end(myself, by)?;
        Ok(true)
    }
}
