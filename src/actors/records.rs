//! Ended chats (recent sessions and their transcripts) and tickets.

use std::collections::{BTreeMap, HashMap, VecDeque};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::core::{
    ChannelId, ChatEvent, ChatId, SessionSummary, Ticket, TicketId, TicketSummary, transcript_page,
};

/// An ended chat with its whole transcript.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// The row shown in recent sessions.
    pub summary: SessionSummary,
    /// Every event of the chat, in seq order.
    pub events: Vec<ChatEvent>,
}

/// A page of a recorded transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptPage {
    /// The channel the chat belongs to, for access checks.
    pub channel: ChannelId,
    /// Events in seq order.
    pub events: Vec<ChatEvent>,
    /// Whether more events follow.
    pub more: bool,
}

/// Messages to the [`RecordsActor`].
pub enum RecordsMsg {
    /// A chat ended; keep it.
    Ended(Box<SessionRecord>),
    /// Recent sessions of the given channels, newest first, ended before
    /// `before` if given.
    Recent {
        /// Channels whose sessions to list.
        channels: Vec<ChannelId>,
        /// The last row of the previous page.
        before: Option<ChatId>,
        /// The most rows to return.
        limit: usize,
        /// Where the rows go.
        reply: RpcReplyPort<Vec<SessionSummary>>,
    },
    /// Keep a new ticket.
    AddTicket(Box<Ticket>),
    /// Tickets of the given channels, newest first, older than `before`.
    Tickets {
        /// Channels whose tickets to list.
        channels: Vec<ChannelId>,
        /// The last row of the previous page.
        before: Option<TicketId>,
        /// The most rows to return.
        limit: usize,
        /// Where the rows go.
        reply: RpcReplyPort<Vec<TicketSummary>>,
    },
    /// One ticket.
    Ticket {
        /// The ticket.
        id: TicketId,
        /// The ticket, if it exists.
        reply: RpcReplyPort<Option<Box<Ticket>>>,
    },
    /// A page of an ended chat's transcript.
    Transcript {
        /// The chat.
        chat: ChatId,
        /// Events after this seq.
        after: u64,
        /// The page, or `None` if the chat is not recorded.
        reply: RpcReplyPort<Option<TranscriptPage>>,
    },
}

/// Keeps ended chats, newest last, up to a retention limit.
pub struct RecordsActor;

/// The records kept in memory.
pub struct Records {
    limit: usize,
    /// Position of `sessions[0]` in the sequence of all records ever kept.
    base: u64,
    sessions: VecDeque<SessionRecord>,
    by_chat: HashMap<ChatId, u64>,
    tickets: BTreeMap<TicketId, Ticket>,
}

impl Records {
    /// An empty archive holding at most `limit` sessions.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            base: 0,
            sessions: VecDeque::new(),
            by_chat: HashMap::new(),
            tickets: BTreeMap::new(),
        }
    }

    /// Keeps an ended chat, forgetting the oldest beyond the limit.
    pub fn insert(&mut self, record: SessionRecord) {
        if self.sessions.len() == self.limit
            && let Some(old) = self.sessions.pop_front()
        {
            self.by_chat.remove(&old.summary.chat);
            self.base += 1;
        }
        let position = self.base + self.sessions.len() as u64;
        self.by_chat.insert(record.summary.chat, position);
        self.sessions.push_back(record);
    }

    fn get(&self, chat: ChatId) -> Option<&SessionRecord> {
        let position = *self.by_chat.get(&chat)?;
        self.sessions
            .get(usize::try_from(position - self.base).ok()?)
    }

    /// Newest first, of `channels`, strictly before `before`.
    pub fn recent(
        &self,
        channels: &[ChannelId],
        before: Option<ChatId>,
        limit: usize,
    ) -> Vec<SessionSummary> {
        let end = match before {
            None => self.sessions.len(),
            Some(chat) => match self.by_chat.get(&chat) {
                Some(&position) => usize::try_from(position - self.base).unwrap_or(0),
                None => return Vec::new(),
            },
        };
        self.sessions
            .range(..end)
            .rev()
            .filter(|record| channels.contains(&record.summary.channel))
            .take(limit)
            .map(|record| record.summary.clone())
            .collect()
    }

    /// Keeps a ticket, forgetting the oldest beyond the limit.
    pub fn add_ticket(&mut self, ticket: Ticket) {
        self.tickets.insert(ticket.id, ticket);
        while self.tickets.len() > self.limit {
            self.tickets.pop_first();
        }
    }

    /// Newest first, of `channels`, older than `before`.
    pub fn tickets(
        &self,
        channels: &[ChannelId],
        before: Option<TicketId>,
        limit: usize,
    ) -> Vec<TicketSummary> {
        let older = match before {
            Some(before) => self.tickets.range(..before),
            None => self.tickets.range(..),
        };
        older
            .rev()
            .map(|(_, ticket)| ticket)
            .filter(|ticket| channels.contains(&ticket.channel))
            .take(limit)
            .map(Ticket::summary)
            .collect()
    }

    /// A page of `chat`'s transcript after `after`.
    pub fn transcript(&self, chat: ChatId, after: u64) -> Option<TranscriptPage> {
        let record = self.get(chat)?;
        let (events, more) = transcript_page(&record.events, after);
        Some(TranscriptPage {
            channel: record.summary.channel.clone(),
            events,
            more,
        })
    }
}

impl Actor for RecordsActor {
    type Msg = RecordsMsg;
    type State = Records;
    type Arguments = usize;

    async fn pre_start(
        &self,
        _: ActorRef<RecordsMsg>,
        limit: usize,
    ) -> Result<Records, ActorProcessingErr> {
        Ok(Records::new(limit))
    }

    async fn handle(
        &self,
        _: ActorRef<RecordsMsg>,
        message: RecordsMsg,
        records: &mut Records,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RecordsMsg::Ended(record) => records.insert(*record),
            RecordsMsg::Recent {
                channels,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(records.recent(&channels, before, limit));
            }
            RecordsMsg::AddTicket(ticket) => records.add_ticket(*ticket),
            RecordsMsg::Tickets {
                channels,
                before,
                limit,
                reply,
            } => {
                let _ = reply.send(records.tickets(&channels, before, limit));
            }
            RecordsMsg::Ticket { id, reply } => {
                let _ = reply.send(records.tickets.get(&id).cloned().map(Box::new));
            }
            RecordsMsg::Transcript { chat, after, reply } => {
                let _ = reply.send(records.transcript(chat, after));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Customer, Party, Timestamp};

    fn record(chat: u64, channel: &str) -> SessionRecord {
        SessionRecord {
            summary: SessionSummary {
                chat: ChatId(chat),
                channel: ChannelId::new(channel),
                customer: Customer::default(),
                agent: None,
                started: Timestamp(chat),
                ended: Timestamp(chat + 1),
                ended_by: Party::Customer,
                events: 0,
            },
            events: Vec::new(),
        }
    }

    fn chats(rows: &[SessionSummary]) -> Vec<u64> {
        rows.iter().map(|row| row.chat.0).collect()
    }

    #[test]
    fn recent_is_newest_first_paged_and_filtered_by_channel() {
        let mut records = Records::new(100);
        for n in 1..=6 {
            records.insert(record(n, if n % 3 == 0 { "sales" } else { "support" }));
        }
        let support = [ChannelId::new("support")];
        let first = records.recent(&support, None, 2);
        assert_eq!(chats(&first), [5, 4]);
        let second = records.recent(&support, Some(ChatId(4)), 10);
        assert_eq!(chats(&second), [2, 1]);
        let both = [ChannelId::new("support"), ChannelId::new("sales")];
        assert_eq!(chats(&records.recent(&both, None, 10)), [6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn tickets_are_listed_newest_first_per_channel() {
        use crate::core::{TicketSource, Timestamp};
        let mut records = Records::new(100);
        for n in 1..=5 {
            records.add_ticket(Ticket {
                id: TicketId(n),
                channel: ChannelId::new(if n == 2 { "sales" } else { "support" }),
                source: TicketSource::OfflineForm,
                customer: Customer::default(),
                subject: format!("ticket {n}"),
                message: "call me".into(),
                transcript: Vec::new(),
                created: Timestamp(n),
            });
        }
        let support = [ChannelId::new("support")];
        let ids = |rows: Vec<TicketSummary>| rows.iter().map(|row| row.id.0).collect::<Vec<_>>();
        assert_eq!(ids(records.tickets(&support, None, 2)), [5, 4]);
        assert_eq!(
            ids(records.tickets(&support, Some(TicketId(4)), 10)),
            [3, 1]
        );
    }

    #[test]
    fn the_oldest_sessions_are_forgotten_beyond_the_limit() {
        let mut records = Records::new(3);
        for n in 1..=5 {
            records.insert(record(n, "support"));
        }
        let support = [ChannelId::new("support")];
        assert_eq!(chats(&records.recent(&support, None, 10)), [5, 4, 3]);
        assert!(records.transcript(ChatId(2), 0).is_none());
        assert!(records.transcript(ChatId(3), 0).is_some());
        assert_eq!(chats(&records.recent(&support, Some(ChatId(4)), 10)), [3]);
    }
}
