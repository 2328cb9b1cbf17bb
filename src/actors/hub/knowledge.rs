//! The agent's tools: the contact side panel and knowledge items.

use super::*;

/// The most chats, and the most tickets, one contact card shows.
pub(super) const CONTACT_ROWS: usize = 100;

/// The most chats, and tickets, a contact card looks at (newest first).
const CONTACT_CANDIDATES: usize = 4 * CONTACT_ROWS;

impl Hub {
    /// The side panel: a contact's earlier chats and tickets in the
    /// agent's channels, found by email or name (case does not matter);
    /// the newest 100 of each.
    pub async fn contact(
        &self,
        agent: &AgentId,
        email: Option<String>,
        name: Option<String>,
    ) -> Result<ContactCard, HubError> {
        let who = Customer { name, email };
        let typed = crate::store::contact_keys(&who, None);
        let Some(key) = typed.first().cloned() else {
            return Err(HubError::Invalid(
                "look a contact up by email or name".into(),
            ));
        };
        let store = self.shared.store.clone();
        let channels = self.member_channels(agent);
        // What a customer typed counts only on channels that verify no one;
        // on the others, only what a signed identity vouched for.
        let unverifying: Vec<ChannelId> = channels
            .iter()
            .filter(|channel| {
                self.channel(channel)
                    .is_some_and(|settings| settings.identity == IdentityPolicy::Off)
            })
            .cloned()
            .collect();
        let verified_key = who
            .email
            .as_deref()
            .map(|email| format!("verified:email:{}", email.trim().to_lowercase()));
        blocking(move || {
            let typed_history = store.contact(&key)?;
            let verified_history = match &verified_key {
                Some(key) => store.contact(key)?,
                None => Default::default(),
            };
            // Newest first, each with the channels it may come from.
            let mut found: Vec<(ChatId, &[ChannelId])> = typed_history
                .chats
                .iter()
                .map(|chat| (*chat, &unverifying[..]))
                .chain(
                    verified_history
                        .chats
                        .iter()
                        .map(|chat| (*chat, &channels[..])),
                )
                .collect();
            found.sort_by_key(|(chat, _)| std::cmp::Reverse(*chat));
            found.dedup_by_key(|(chat, _)| *chat);
            let mut found_tickets: Vec<(TicketId, &[ChannelId])> = typed_history
                .tickets
                .iter()
                .map(|ticket| (*ticket, &unverifying[..]))
                .chain(
                    verified_history
                        .tickets
                        .iter()
                        .map(|ticket| (*ticket, &channels[..])),
                )
                .collect();
            found_tickets.sort_by_key(|(ticket, _)| std::cmp::Reverse(*ticket));
            found_tickets.dedup_by_key(|(ticket, _)| *ticket);
            let mut chats = Vec::new();
            // Each candidate's channel is read before its transcript, and
            // at most a few pages' worth of candidates are looked at.
            for (chat, allowed) in found.into_iter().take(CONTACT_CANDIDATES) {
                if chats.len() == CONTACT_ROWS {
                    break;
                }
                if !store
                    .channel_of(chat)?
                    .is_some_and(|channel| allowed.contains(&channel))
                {
                    continue;
                }
                let Some(stored) = store.chat(chat)? else {
                    continue;
                };
                let Ok(restored) = Chat::restore(stored.events) else {
                    continue;
                };
                if !allowed.contains(restored.channel()) {
                    continue;
                }
                let session = store.session(chat)?;
                let rating = store.rating(chat)?;
                chats.push(ContactChat {
                    chat,
                    channel: restored.channel().clone(),
                    customer: restored.customer().clone(),
                    started: restored.events().first().map(|e| e.at).unwrap_or_default(),
                    ended: session.as_ref().map(|session| session.ended),
                    agent: session
                        .and_then(|session| session.agent)
                        .or_else(|| restored.agent().cloned()),
                    rating,
                });
            }
            let mut tickets = Vec::new();
            for (ticket, allowed) in found_tickets.into_iter().take(CONTACT_CANDIDATES) {
                if tickets.len() == CONTACT_ROWS {
                    break;
                }
                if let Some(ticket) = store.ticket(ticket)?
                    && allowed.contains(&ticket.channel)
                {
                    tickets.push(ticket.summary());
                }
            }
            // Oldest first, as the store keeps them.
            chats.reverse();
            tickets.reverse();
            let first_contact = chats
                .iter()
                .map(|chat| chat.started)
                .chain(tickets.iter().map(|ticket| ticket.created))
                .min();
            let last_contact = chats
                .iter()
                .map(|chat| chat.ended.unwrap_or(chat.started))
                .chain(tickets.iter().map(|ticket| ticket.created))
                .max();
            Ok(ContactCard {
                key,
                chats,
                tickets,
                first_contact,
                last_contact,
            })
        })
        .await
    }

    /// Whether `agent` may see and use `scope`'s items.
    pub(super) fn may_use(&self, agent: &AgentId, scope: &Scope) -> bool {
        match scope {
            Scope::Channel(channel) => self.is_member(agent, channel),
            Scope::Personal(owner) => owner == agent,
        }
    }

    /// Creates a quick reply, FAQ article or template.
    pub async fn create_item(
        &self,
        agent: &AgentId,
        draft: ItemDraft,
    ) -> Result<KnowledgeItem, HubError> {
        draft
            .check()
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        if !self.may_use(agent, &draft.scope) {
            return Err(HubError::NotAllowed(
                "items of a channel you do not work, or someone else's".into(),
            ));
        }
        let id = ItemId(self.shared.next_item.fetch_add(1, Ordering::Relaxed));
        let item = draft.into_item(id);
        self.write(vec![Op::Knowledge(Box::new(item.clone()))])
            .await?;
        Ok(item)
    }

    /// Replaces an item's text, title, shortcut or scope.
    pub async fn update_item(
        &self,
        agent: &AgentId,
        id: ItemId,
        draft: ItemDraft,
    ) -> Result<KnowledgeItem, HubError> {
        draft
            .check()
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        let current = self.item(agent, id).await?;
        if !self.may_use(agent, &current.scope) || !self.may_use(agent, &draft.scope) {
            return Err(HubError::UnknownItem);
        }
        let item = draft.into_item(id);
        self.write(vec![Op::Knowledge(Box::new(item.clone()))])
            .await?;
        Ok(item)
    }

    /// Deletes an item.
    pub async fn delete_item(&self, agent: &AgentId, id: ItemId) -> Result<(), HubError> {
        self.item(agent, id).await?;
        self.write(vec![Op::ForgetKnowledge(id)]).await
    }

    /// The items `agent` may use: their channels' and their own, of `kind`
    /// if given, by title.
    pub async fn items(
        &self,
        agent: &AgentId,
        kind: Option<ItemKind>,
    ) -> Result<Vec<KnowledgeItem>, HubError> {
        let store = self.shared.store.clone();
        let mut items: Vec<KnowledgeItem> = blocking(move || store.knowledge())
            .await?
            .into_iter()
            .filter(|item| {
                kind.is_none_or(|kind| item.kind == kind) && self.may_use(agent, &item.scope)
            })
            .collect();
        items.sort_by(|a, b| a.title.cmp(&b.title).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    pub(super) async fn item(
        &self,
        agent: &AgentId,
        id: ItemId,
    ) -> Result<KnowledgeItem, HubError> {
        let store = self.shared.store.clone();
        match blocking(move || store.knowledge_item(id)).await? {
            Some(item) if self.may_use(agent, &item.scope) => Ok(item),
            _ => Err(HubError::UnknownItem),
        }
    }

    /// Sends a knowledge item into a chat the agent has, placeholders
    /// filled in. `item` is an id, or a quick reply's shortcut (the agent's
    /// own before the channel's).
    pub async fn insert_item(
        &self,
        agent: &AgentId,
        chat: ChatId,
        client_id: u64,
        item: ItemRef,
    ) -> Result<Receipt, HubError> {
        let item = match item {
            ItemRef::Id(id) => self.item(agent, id).await?,
            ItemRef::Shortcut(shortcut) => {
                let mut matching: Vec<KnowledgeItem> = self
                    .items(agent, None)
                    .await?
                    .into_iter()
                    .filter(|item| item.shortcut.as_deref() == Some(shortcut.as_str()))
                    .collect();
                matching.sort_by_key(|item| !matches!(item.scope, Scope::Personal(_)));
                matching.into_iter().next().ok_or(HubError::UnknownItem)?
            }
        };
        let agent_name = self
            .shared
            .agents
            .get(agent)
            .map_or_else(|| agent.to_string(), |entry| entry.config.name.clone());
        let by = agent.clone();
        self.ask_chat(chat, move |reply| ChatMsg::PostKnowledge {
            by,
            agent_name,
            client_id,
            body: item.body,
            reply,
        })
        .await
    }
}
