//! What the store answers: live chats for recovery, one chat, transcripts,
//! sessions, tickets, knowledge, files and contacts. Every read sees every
//! write acknowledged before it.

use super::*;

/// What a bounded scan found due, and where the next scan goes on from
/// (`None`: the scan reached the end).
pub type Due<T, K> = (Vec<T>, Option<K>);

impl Store {
    /// Every chat that has not ended, in chat id order.
    pub fn live_chats(&self) -> Result<LiveChats, StoreError> {
        let read = self.read()?;
        let live = read.open_table(tables::LIVE).map_err(engine)?;
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        let tokens = read.open_table(tables::TOKENS).map_err(engine)?;
        let mut found = LiveChats::default();
        for entry in live.iter().map_err(engine)? {
            let (chat, _) = entry.map_err(engine)?;
            let chat = chat.value();
            let mut stored = Vec::new();
            let mut unreadable = None;
            for row in events.range((chat, 0)..(chat, u64::MAX)).map_err(engine)? {
                let (_, value) = row.map_err(engine)?;
                match tables::decode::<ChatEvent>(value.value()) {
                    Ok(event) => stored.push(event),
                    Err(err) => {
                        unreadable = Some(err);
                        break;
                    }
                }
            }
            if let Some(err) = unreadable {
                found.unreadable.push((ChatId(chat), err));
                continue;
            }
            let token_digest = tokens
                .get(chat)
                .map_err(engine)?
                .map(|v| v.value().to_vec());
            found.chats.push(StoredChat {
                events: stored,
                token_digest,
            });
        }
        Ok(found)
    }

    /// One chat's stored transcript, ended or not.
    pub fn chat(&self, chat: ChatId) -> Result<Option<StoredChat>, StoreError> {
        let read = self.read()?;
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        let tokens = read.open_table(tables::TOKENS).map_err(engine)?;
        let mut stored = Vec::new();
        for row in events
            .range((chat.0, 0)..(chat.0, u64::MAX))
            .map_err(engine)?
        {
            let (_, value) = row.map_err(engine)?;
            stored.push(tables::decode::<ChatEvent>(value.value())?);
        }
        if stored.is_empty() {
            return Ok(None);
        }
        let token_digest = tokens
            .get(chat.0)
            .map_err(engine)?
            .map(|v| v.value().to_vec());
        Ok(Some(StoredChat {
            events: stored,
            token_digest,
        }))
    }

    /// The chat whose customer resume token has this digest.
    pub fn chat_by_token(&self, digest: &[u8]) -> Result<Option<ChatId>, StoreError> {
        let read = self.read()?;
        let token_chats = read.open_table(tables::TOKEN_CHATS).map_err(engine)?;
        Ok(token_chats
            .get(digest)
            .map_err(engine)?
            .map(|chat| ChatId(chat.value())))
    }

    /// The highest chat id ever stored (0 if none).
    pub fn last_chat_id(&self) -> Result<u64, StoreError> {
        let read = self.read()?;
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        Ok(events
            .last()
            .map_err(engine)?
            .map_or(0, |(key, _)| key.value().0))
    }

    /// The highest ticket id ever stored (0 if none).
    pub fn last_ticket_id(&self) -> Result<u64, StoreError> {
        let read = self.read()?;
        let tickets = read.open_table(tables::TICKETS).map_err(engine)?;
        Ok(tickets
            .last()
            .map_err(engine)?
            .map_or(0, |(key, _)| key.value()))
    }

    /// Ended chats of `channels` with their ratings, newest first, ended
    /// before the session of `before`.
    pub fn recent_sessions(
        &self,
        channels: &[ChannelId],
        before: Option<ChatId>,
        limit: usize,
    ) -> Result<Vec<RatedSession>, StoreError> {
        let read = self.read()?;
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        let ended_at = read.open_table(tables::SESSION_ENDED).map_err(engine)?;
        let ratings = read.open_table(tables::RATINGS).map_err(engine)?;
        let end = match before {
            None => (u64::MAX, u64::MAX),
            Some(chat) => match ended_at.get(chat.0).map_err(engine)? {
                Some(ended) => (ended.value(), chat.0),
                None => return Ok(Vec::new()),
            },
        };
        let mut rows = Vec::new();
        for row in sessions.range(..end).map_err(engine)?.rev() {
            let (_, value) = row.map_err(engine)?;
            let summary = tables::decode::<SessionSummary>(value.value())?;
            if channels.contains(&summary.channel) {
                let rating = ratings
                    .get(summary.chat.0)
                    .map_err(engine)?
                    .map(|value| tables::decode::<Rating>(value.value()))
                    .transpose()?;
                rows.push(RatedSession {
                    session: summary,
                    rating,
                });
                if rows.len() == limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// As [`Store::recent_sessions`], each row with the tags its chat
    /// carried at its end, and only the sessions carrying `tag` (already
    /// lowercased) if given.
    pub fn recent_sessions_tagged(
        &self,
        channels: &[ChannelId],
        before: Option<ChatId>,
        limit: usize,
        tag: Option<&str>,
    ) -> Result<Vec<TaggedSession>, StoreError> {
        let read = self.read()?;
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        let ended_at = read.open_table(tables::SESSION_ENDED).map_err(engine)?;
        let ratings = read.open_table(tables::RATINGS).map_err(engine)?;
        let session_tags = read.open_table(tables::SESSION_TAGS).map_err(engine)?;
        let end = match before {
            None => (u64::MAX, u64::MAX),
            Some(chat) => match ended_at.get(chat.0).map_err(engine)? {
                Some(ended) => (ended.value(), chat.0),
                None => return Ok(Vec::new()),
            },
        };
        let mut rows = Vec::new();
        for row in sessions.range(..end).map_err(engine)?.rev() {
            let (key, value) = row.map_err(engine)?;
            let chat = key.value().1;
            let tags: Vec<String> = session_tags
                .get(chat)
                .map_err(engine)?
                .map(|value| tables::decode(value.value()))
                .transpose()?
                .unwrap_or_default();
            if tag.is_some_and(|tag| !tags.iter().any(|have| have == tag)) {
                continue;
            }
            let summary = tables::decode::<SessionSummary>(value.value())?;
            if !channels.contains(&summary.channel) {
                continue;
            }
            let rating = ratings
                .get(chat)
                .map_err(engine)?
                .map(|value| tables::decode::<Rating>(value.value()))
                .transpose()?;
            rows.push(TaggedSession {
                session: RatedSession {
                    session: summary,
                    rating,
                },
                tags,
            });
            if rows.len() == limit {
                break;
            }
        }
        Ok(rows)
    }

    /// The channel a stored chat belongs to now: the one it ended in, or
    /// the one it started in; `None` if it was never stored.
    pub fn channel_of(&self, chat: ChatId) -> Result<Option<ChannelId>, StoreError> {
        channel_of(&self.read()?, chat)
    }

    /// A page of a chat's stored transcript after `after`; `None` if the
    /// chat was never stored. Its channel is [`Store::channel_of`]'s.
    pub fn transcript(
        &self,
        chat: ChatId,
        after: u64,
    ) -> Result<Option<TranscriptPage>, StoreError> {
        let read = self.read()?;
        let Some(channel) = channel_of(&read, chat)? else {
            return Ok(None);
        };
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for row in events
            .range((chat.0, after.saturating_add(1))..(chat.0, u64::MAX))
            .map_err(engine)?
        {
            let (_, value) = row.map_err(engine)?;
            let size = value.value().len();
            if !page.is_empty() && bytes + size > TRANSCRIPT_PAGE_BYTES {
                more = true;
                break;
            }
            bytes += size;
            page.push(tables::decode::<ChatEvent>(value.value())?);
        }
        let events = page;
        Ok(Some(TranscriptPage {
            channel,
            events,
            more,
        }))
    }

    /// Tickets of `channels`, newest first, older than `before`.
    pub fn tickets(
        &self,
        channels: &[ChannelId],
        before: Option<TicketId>,
        limit: usize,
    ) -> Result<Vec<TicketSummary>, StoreError> {
        let read = self.read()?;
        let summaries = read.open_table(tables::TICKET_SUMMARIES).map_err(engine)?;
        let end = before.map_or(u64::MAX, |id| id.0);
        let mut rows = Vec::new();
        for row in summaries.range(..end).map_err(engine)?.rev() {
            let (_, value) = row.map_err(engine)?;
            let summary = tables::decode::<TicketSummary>(value.value())?;
            if channels.contains(&summary.channel) {
                rows.push(summary);
                if rows.len() == limit {
                    break;
                }
            }
        }
        Ok(rows)
    }

    /// Every knowledge item.
    pub fn knowledge(&self) -> Result<Vec<KnowledgeItem>, StoreError> {
        let read = self.read()?;
        let table = read.open_table(tables::KNOWLEDGE).map_err(engine)?;
        let mut items = Vec::new();
        for row in table.iter().map_err(engine)? {
            let (_, value) = row.map_err(engine)?;
            items.push(tables::decode::<KnowledgeItem>(value.value())?);
        }
        Ok(items)
    }

    /// One knowledge item.
    pub fn knowledge_item(&self, id: ItemId) -> Result<Option<KnowledgeItem>, StoreError> {
        let read = self.read()?;
        let table = read.open_table(tables::KNOWLEDGE).map_err(engine)?;
        table
            .get(id.0)
            .map_err(engine)?
            .map(|value| tables::decode::<KnowledgeItem>(value.value()))
            .transpose()
    }

    /// One shared file's description.
    pub fn file(&self, id: FileId) -> Result<Option<StoredFile>, StoreError> {
        let read = self.read()?;
        let table = read.open_table(tables::FILES).map_err(engine)?;
        table
            .get(id.0)
            .map_err(engine)?
            .map(|value| tables::decode::<StoredFile>(value.value()))
            .transpose()
    }

    /// Up to `limit` files shared in ended chats (that did not come back)
    /// for which `due` says yes, given the chat's channel and end, from
    /// `after` on in file id order: what a retention sweep removes.
    pub fn files_due(
        &self,
        due: impl Fn(&ChannelId, Timestamp) -> bool,
        after: Option<FileId>,
        limit: usize,
    ) -> Result<Vec<StoredFile>, StoreError> {
        let read = self.read()?;
        let files = read.open_table(tables::FILES).map_err(engine)?;
        let ended = read.open_table(tables::SESSION_ENDED).map_err(engine)?;
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        let from = after.map_or(0, |id| id.0.saturating_add(1));
        let mut expired = Vec::new();
        for row in files.range(from..).map_err(engine)? {
            let (_, value) = row.map_err(engine)?;
            let stored = tables::decode::<StoredFile>(value.value())?;
            let Some(at) = ended
                .get(stored.chat.0)
                .map_err(engine)?
                .map(|at| at.value())
            else {
                continue;
            };
            let Some(summary) = sessions.get((at, stored.chat.0)).map_err(engine)? else {
                continue;
            };
            let channel = tables::decode::<SessionSummary>(summary.value())?.channel;
            if due(&channel, Timestamp(at)) {
                expired.push(stored);
                if expired.len() == limit {
                    break;
                }
            }
        }
        Ok(expired)
    }

    /// Looks at up to `scan` ended sessions, oldest end first, after the
    /// row `after`, and answers the chats among them `due` says yes to,
    /// with the row to go on after (`None`: the table's end was reached).
    pub fn sessions_due(
        &self,
        due: impl Fn(&SessionSummary) -> bool,
        after: Option<(u64, u64)>,
        scan: usize,
    ) -> Result<Due<ChatId, (u64, u64)>, StoreError> {
        use std::ops::Bound;
        let read = self.read()?;
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut found = Vec::new();
        let mut last = None;
        for (seen, row) in sessions
            .range::<(u64, u64)>((start, Bound::Unbounded))
            .map_err(engine)?
            .enumerate()
        {
            if seen == scan {
                return Ok((found, last));
            }
            let (key, value) = row.map_err(engine)?;
            last = Some(key.value());
            let summary = tables::decode::<SessionSummary>(value.value())?;
            if due(&summary) {
                found.push(summary.chat);
            }
        }
        Ok((found, None))
    }

    /// Looks at up to `scan` tickets in id order after `after`, and
    /// answers those `due` says yes to, with the id to go on after
    /// (`None`: the table's end was reached).
    pub fn tickets_due(
        &self,
        due: impl Fn(&TicketSummary) -> bool,
        after: Option<TicketId>,
        scan: usize,
    ) -> Result<Due<TicketId, TicketId>, StoreError> {
        let read = self.read()?;
        let summaries = read.open_table(tables::TICKET_SUMMARIES).map_err(engine)?;
        let from = after.map_or(0, |id| id.0.saturating_add(1));
        let mut found = Vec::new();
        let mut last = None;
        for (seen, row) in summaries.range(from..).map_err(engine)?.enumerate() {
            if seen == scan {
                return Ok((found, last));
            }
            let (_, value) = row.map_err(engine)?;
            let summary = tables::decode::<TicketSummary>(value.value())?;
            last = Some(summary.id);
            if due(&summary) {
                found.push(summary.id);
            }
        }
        Ok((found, None))
    }

    /// What erasing a stored chat also reaches (its customer, files and
    /// tickets), and whether it is live; `None` if it was never stored.
    pub fn chat_traces(
        &self,
        chat: ChatId,
    ) -> Result<Option<(crate::core::ChatTraces, bool)>, StoreError> {
        let read = self.read()?;
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        let live = read.open_table(tables::LIVE).map_err(engine)?;
        let mut traces = crate::core::ChatTraces::default();
        let mut any = false;
        for row in events
            .range((chat.0, 0)..=(chat.0, u64::MAX))
            .map_err(engine)?
        {
            let (_, value) = row.map_err(engine)?;
            any = true;
            if let Ok(event) = tables::decode::<ChatEvent>(value.value()) {
                traces.note(&event);
            }
        }
        let is_live = live.get(chat.0).map_err(engine)?.is_some();
        Ok((any || is_live).then_some((traces, is_live)))
    }

    /// The ids of every shared file on record.
    pub fn file_ids(&self) -> Result<std::collections::HashSet<u64>, StoreError> {
        let read = self.read()?;
        let table = read.open_table(tables::FILES).map_err(engine)?;
        let mut ids = std::collections::HashSet::new();
        for row in table.iter().map_err(engine)? {
            let (id, _) = row.map_err(engine)?;
            ids.insert(id.value());
        }
        Ok(ids)
    }

    /// The chats and tickets linked to a contact key.
    pub fn contact(&self, key: &str) -> Result<ContactHistory, StoreError> {
        let read = self.read()?;
        let chats = read.open_table(tables::CONTACT_CHATS).map_err(engine)?;
        let tickets = read.open_table(tables::CONTACT_TICKETS).map_err(engine)?;
        let mut history = ContactHistory::default();
        for row in chats.range((key, 0)..=(key, u64::MAX)).map_err(engine)? {
            let (entry, _) = row.map_err(engine)?;
            history.chats.push(ChatId(entry.value().1));
        }
        for row in tickets.range((key, 0)..=(key, u64::MAX)).map_err(engine)? {
            let (entry, _) = row.map_err(engine)?;
            history.tickets.push(TicketId(entry.value().1));
        }
        Ok(history)
    }

    /// When an ended chat ended, and its session row; `None` while live.
    pub fn session(&self, chat: ChatId) -> Result<Option<SessionSummary>, StoreError> {
        let read = self.read()?;
        let ended = read.open_table(tables::SESSION_ENDED).map_err(engine)?;
        let sessions = read.open_table(tables::SESSIONS).map_err(engine)?;
        let Some(at) = ended.get(chat.0).map_err(engine)? else {
            return Ok(None);
        };
        sessions
            .get((at.value(), chat.0))
            .map_err(engine)?
            .map(|value| tables::decode::<SessionSummary>(value.value()))
            .transpose()
    }

    /// The customer's rating of a chat, if they gave one.
    pub fn rating(&self, chat: ChatId) -> Result<Option<Rating>, StoreError> {
        let read = self.read()?;
        let ratings = read.open_table(tables::RATINGS).map_err(engine)?;
        ratings
            .get(chat.0)
            .map_err(engine)?
            .map(|value| tables::decode::<Rating>(value.value()))
            .transpose()
    }

    /// The highest id in a table keyed by u64 (0 if empty).
    pub fn last_id(&self, table: Counter) -> Result<u64, StoreError> {
        let read = self.read()?;
        let definition = match table {
            Counter::Knowledge => tables::KNOWLEDGE,
            Counter::Files => tables::FILES,
            Counter::Tickets => tables::TICKETS,
        };
        let table = read.open_table(definition).map_err(engine)?;
        Ok(table
            .last()
            .map_err(engine)?
            .map_or(0, |(key, _)| key.value()))
    }

    /// One ticket.
    pub fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        let read = self.read()?;
        let tickets = read.open_table(tables::TICKETS).map_err(engine)?;
        tickets
            .get(id.0)
            .map_err(engine)?
            .map(|value| tables::decode::<Ticket>(value.value()))
            .transpose()
    }
}
