//! What the store keeps for agents to read: tickets, recent sessions,
//! transcripts, and offline forms becoming tickets.

use super::*;

impl Hub {
    /// Turns a submitted offline form into a ticket, answered once durable.
    /// Accepted only while the form is what the channel shows (no member
    /// agent Present), and at most `offline_forms_per_minute` from one
    /// address (`from`, when known).
    pub async fn submit_offline_form(
        &self,
        from: Option<std::net::IpAddr>,
        channel: ChannelId,
        name: Option<String>,
        email: String,
        message: String,
    ) -> Result<TicketId, HubError> {
        let settings = self.open_channel(&channel)?;
        if !settings.offline_form {
            return Err(HubError::Invalid(format!(
                "channel {channel} has no offline form"
            )));
        }
        let closed = settings
            .hours
            .as_ref()
            .is_some_and(|hours| !hours.is_open(Timestamp::now()));
        if !closed && self.shared.presence.present_count(&channel) > 0 {
            return Err(HubError::NotAllowed(format!(
                "an agent of {channel} is Present: start a chat instead"
            )));
        }
        check_offline_form(name.as_deref(), &email, &message)
            .map_err(|err| HubError::limited(Limit::Field, err.to_string()))?;
        if let Some(ip) = from
            && !self.shared.form_pace.allow(ip, Timestamp::now())
        {
            return Err(HubError::limited(
                Limit::OfflineForms,
                "too many offline forms from this address; try again later",
            ));
        }
        let id = TicketId(self.shared.next_ticket.fetch_add(1, Ordering::Relaxed));
        let subject = format!("Offline message from {}", name.as_deref().unwrap_or(&email));
        let ticket = Ticket {
            id,
            channel,
            source: TicketSource::OfflineForm,
            customer: Customer {
                name,
                email: Some(email),
            },
            subject,
            message,
            transcript: Vec::new(),
            created: Timestamp::now(),
        };
        let mut ops: Vec<Op> = crate::store::contact_keys(&ticket.customer, None)
            .into_iter()
            .map(|key| Op::ContactTicket { key, ticket: id.0 })
            .collect();
        ops.push(Op::Ticket(Box::new(ticket)));
        self.write(ops).await?;
        Ok(id)
    }

    /// Tickets of the agent's channels, newest first.
    pub async fn tickets(
        &self,
        agent: &AgentId,
        before: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, HubError> {
        check_page(limit)?;
        let (store, channels) = (self.shared.store.clone(), self.member_channels(agent));
        blocking(move || store.tickets(&channels, before, limit)).await
    }

    /// One ticket of the agent's channels.
    pub async fn ticket(&self, agent: &AgentId, id: TicketId) -> Result<Box<Ticket>, HubError> {
        let store = self.shared.store.clone();
        match blocking(move || store.ticket(id)).await? {
            Some(ticket) if self.is_member(agent, &ticket.channel) => Ok(Box::new(ticket)),
            _ => Err(HubError::UnknownTicket(id)),
        }
    }

    /// Ended chats of the agent's channels with their ratings, newest
    /// first.
    pub async fn recent_sessions(
        &self,
        agent: &AgentId,
        before: Option<ChatId>,
        limit: usize,
    ) -> Result<Vec<RatedSession>, HubError> {
        check_page(limit)?;
        let (store, channels) = (self.shared.store.clone(), self.member_channels(agent));
        blocking(move || store.recent_sessions(&channels, before, limit)).await
    }

    pub(super) async fn recorded_transcript(
        &self,
        chat: ChatId,
        after: u64,
    ) -> Result<Option<TranscriptPage>, HubError> {
        let store = self.shared.store.clone();
        blocking(move || store.transcript(chat, after)).await
    }

    /// A page of the transcript of a live or recent chat of the agent's
    /// channels.
    pub async fn transcript(
        &self,
        agent: &AgentId,
        chat: ChatId,
        after: u64,
    ) -> Result<(Vec<ChatEvent>, bool), HubError> {
        let mut page = None;
        if let Some(actor) = self.chat_actor(chat) {
            let (tx, rx) = oneshot::channel();
            if actor
                .cast(ChatMsg::Transcript {
                    after,
                    reply: tx.into(),
                })
                .is_ok()
            {
                page = Some(answer(rx).await?);
            }
        }
        if page.is_none() {
            page = self.recorded_transcript(chat, after).await?;
        }
        match page {
            Some(page) if self.is_member(agent, &page.channel) => Ok((page.events, page.more)),
            Some(_) => Err(HubError::NotYourChat(chat)),
            None => Err(HubError::UnknownChat(chat)),
        }
    }
}
