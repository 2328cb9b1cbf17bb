//! One chat session's lifecycle and transcript:
//! `Queued -> Active { agent } -> Ended`.

use std::collections::BTreeMap;

use crate::core::event::{ChatEvent, ChatEventKind, Customer, FileRef, Identity, Party};
use crate::core::ids::{AgentId, ChannelId, ChatId};
use crate::core::queue::Priority;
use crate::core::skills::SkillSet;
use crate::core::tags::{MAX_TAGS, TagError, normalize_tag};
use crate::core::ticket::TicketId;
use crate::core::time::Timestamp;
use crate::core::transcript::Transcript;

/// The longest chat message, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Where a chat is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatState {
    /// Waiting in its channel's queue since the given time.
    Queued {
        /// When it was enqueued.
        since: Timestamp,
    },
    /// Answered by an agent.
    Active {
        /// The agent handling it.
        agent: AgentId,
        /// When the agent answered.
        since: Timestamp,
    },
    /// Over.
    Ended {
        /// When it ended.
        at: Timestamp,
    },
}

/// Why a chat refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The chat is over.
    #[error("the chat has ended")]
    Ended,
    /// An agent acted on a chat that is not (or no longer) theirs.
    #[error("the chat is not assigned to {0}")]
    NotYourChat(AgentId),
    /// The chat was answered already.
    #[error("the chat was already answered")]
    AlreadyAnswered,
    /// A message without text.
    #[error("the message is empty")]
    EmptyMessage,
    /// The chat is not waiting on a transfer to this agent.
    #[error("the chat was not transferred to {0}")]
    NotTransferredTo(AgentId),
    /// A transfer to the agent who has the chat.
    #[error("the chat is already with {0}")]
    SameAgent(AgentId),
    /// The customer may not return: no end form, or too late.
    #[error("the chat can no longer be returned to")]
    NotReturnable,
    /// The chat has not ended.
    #[error("the chat has not ended")]
    NotEnded,
    /// The chat waits: no agent holds it to take it from.
    #[error("no agent holds the chat")]
    NotActive,
    /// A message longer than [`MAX_MESSAGE_BYTES`].
    #[error("the message is {len} bytes, more than the limit of {max}")]
    MessageTooLong {
        /// The message's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Only the customer and the agent holding the chat read it.
    #[error("only the chat's customer and its agent take part in it")]
    NotAParticipant,
    /// A read mark past the chat's last event.
    #[error("read up to seq {up_to}, but the chat's last event is seq {last}")]
    ReadBeyondEnd {
        /// The seq marked.
        up_to: u64,
        /// The chat's last seq.
        last: u64,
    },
    /// A tag that is not one, or one too many.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// An edit or deletion of a message someone else wrote (or the hub).
    #[error("message {0} is not yours")]
    NotYourMessage(u64),
    /// An edit or deletion after the channel's `edit_window` (or on a
    /// channel whose window is 0).
    #[error("the time to change message {0} has passed")]
    EditWindowPassed(u64),
    /// No message has that seq (it is another kind of event, or none).
    #[error("no message has seq {0}")]
    UnknownMessage(u64),
    /// The message was deleted already.
    #[error("message {0} was deleted")]
    AlreadyDeleted(u64),
}

/// Why a stored transcript could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// No events at all.
    #[error("a chat without events")]
    Empty,
    /// The first event is not the start.
    #[error("{0} does not begin with its start")]
    NotStarted(ChatId),
    /// Seqs are not 1, 2, 3, ... of one chat.
    #[error("{chat}: expected seq {expected}, found {found}")]
    Gap {
        /// The chat.
        chat: ChatId,
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
}

/// The outcome of a post.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted<'a> {
    /// A new message, appended to the transcript.
    New(&'a ChatEvent),
    /// A retry of a message already stored; nothing changed.
    Repeat {
        /// The stored message's seq.
        seq: u64,
        /// When it was stored.
        at: Timestamp,
    },
}

/// How far one party has read a chat, and the `Read` event that says so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadMark {
    /// Every event up to this seq is read (0: nothing yet).
    pub up_to: u64,
    /// The seq of the `Read` event that set the mark (0 while none did).
    pub seq: u64,
    /// When that event was recorded.
    pub at: Timestamp,
}

/// The outcome of a read mark.
#[derive(Debug, PartialEq, Eq)]
pub enum Marked<'a> {
    /// The party's mark moved on: a `Read` event, appended to the
    /// transcript.
    New(&'a ChatEvent),
    /// The mark did not move (see [`Chat::mark_moves`]): nothing changed;
    /// the mark as it stands.
    Unchanged(ReadMark),
}

/// A chat: who it is for, where it is, and everything that happened in it.
#[derive(Debug)]
pub struct Chat {
    id: ChatId,
    channel: ChannelId,
    customer: Customer,
    state: ChatState,
    events: Transcript,
    /// Seq of each stored message by (sender, the sender's message id). A
    /// B-tree grows a node at a time, where a hash map would rehash every
    /// entry at once at each doubling.
    posted: BTreeMap<(Party, u64), u64>,
    /// Seq of each stored note by (writer, the writer's note id): apart
    /// from messages, so a note never answers as a message's retry.
    noted: BTreeMap<(AgentId, u64), u64>,
    /// The agent who transferred the chat to its current agent, while the
    /// current agent may still decline it.
    transferred_from: Option<AgentId>,
    /// Who the customer is, if a signed identity vouched for them.
    verified: Option<Identity>,
    /// Each party's read mark, from its latest `Read` event.
    read: BTreeMap<Party, ReadMark>,
    /// The priority an agent set, if one did (else the channel's).
    priority: Option<Priority>,
    /// Supervisors who barged in and take part beside the holder.
    supervisors: std::collections::BTreeSet<AgentId>,
    /// The skills an agent needs for it (see [`SkillSet`]).
    skills: SkillSet,
    /// The tags agents put on it, from its `Tagged` and `Untagged` events.
    tags: std::collections::BTreeSet<String>,
    /// The seqs of the messages their authors deleted.
    deleted: std::collections::BTreeSet<u64>,
}

impl Chat {
    /// Starts a chat with the customer's first message; it is queued from
    /// `now`. A channel's welcome text follows as a system message.
    pub fn start(
        id: ChatId,
        channel: ChannelId,
        customer: Customer,
        client_id: u64,
        first_message: String,
        welcome: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, ChatError> {
        check_text(&first_message)?;
        let mut chat = Self {
            id,
            channel: channel.clone(),
            customer: customer.clone(),
            state: ChatState::Queued { since: now },
            events: Transcript::new(),
            posted: BTreeMap::new(),
            noted: BTreeMap::new(),
            transferred_from: None,
            verified: None,
            read: BTreeMap::new(),
            priority: None,
            supervisors: Default::default(),
            skills: SkillSet::default(),
            tags: Default::default(),
            deleted: Default::default(),
        };
        chat.push(now, ChatEventKind::Started { channel, customer });
        chat.append_message(Party::Customer, client_id, first_message, now);
        if let Some(welcome) = welcome {
            chat.append_message(Party::System, 0, welcome.to_owned(), now);
        }
        Ok(chat)
    }

    /// Rebuilds a chat from its stored transcript, replaying every event:
    /// its state, its seqs and the retry de-duplication come back as they
    /// were.
    pub fn restore(events: Vec<ChatEvent>) -> Result<Self, RestoreError> {
        let Some(first) = events.first() else {
            return Err(RestoreError::Empty);
        };
        let ChatEventKind::Started { channel, customer } = &first.kind else {
            return Err(RestoreError::NotStarted(first.chat));
        };
        let mut chat = Self {
            id: first.chat,
            channel: channel.clone(),
            customer: customer.clone(),
            state: ChatState::Queued { since: first.at },
            events: Transcript::new(),
            posted: BTreeMap::new(),
            noted: BTreeMap::new(),
            transferred_from: None,
            verified: None,
            read: BTreeMap::new(),
            priority: None,
            supervisors: Default::default(),
            skills: SkillSet::default(),
            tags: Default::default(),
            deleted: Default::default(),
        };
        for event in events {
            if event.chat != chat.id || event.seq != chat.next_seq() {
                return Err(RestoreError::Gap {
                    chat: chat.id,
                    expected: chat.next_seq(),
                    found: event.seq,
                });
            }
            match &event.kind {
                ChatEventKind::Message {
                    from, client_id, ..
                } if *from != Party::System => {
                    chat.posted.insert((from.clone(), *client_id), event.seq);
                }
                ChatEventKind::Note { by, client_id, .. } => {
                    chat.noted.insert((by.clone(), *client_id), event.seq);
                }
                _ => {}
            }
            chat.apply(&event.kind, event.at);
            chat.events.push(event);
        }
        Ok(chat)
    }

    /// The chat's id.
    pub fn id(&self) -> ChatId {
        self.id
    }

    /// The channel it was started on.
    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }

    /// Who the customer said they are.
    pub fn customer(&self) -> &Customer {
        &self.customer
    }

    /// The seq of the message `from` posted with `client_id`, if it is
    /// stored: a retry of it changes nothing.
    pub fn posted_seq(&self, from: &Party, client_id: u64) -> Option<u64> {
        self.posted.get(&(from.clone(), client_id)).copied()
    }

    /// The chat's row in its channel's incoming list, waiting since
    /// `since`.
    pub fn queue_row(&self, since: Timestamp) -> crate::core::QueueRow {
        crate::core::QueueRow {
            chat: self.id,
            channel: self.channel.clone(),
            customer: self.customer.clone(),
            first_message: crate::core::event::preview(self.first_message()),
            since,
            verified: self.verified.as_ref().map(|identity| identity.id.clone()),
            priority: self.priority,
        }
    }

    /// Who the customer is, if a signed identity vouched for them.
    pub fn verified(&self) -> Option<&Identity> {
        self.verified.as_ref()
    }

    /// Records that the customer is who `identity` says (checked by the
    /// caller against the channel's secret). Only a new chat, before anyone
    /// answered it, is verified.
    pub fn verify(&mut self, identity: Identity, now: Timestamp) -> Result<&ChatEvent, ChatError> {
        if !matches!(self.state, ChatState::Queued { .. }) || self.verified.is_some() {
            return Err(ChatError::AlreadyAnswered);
        }
        let kind = ChatEventKind::Verified(identity);
        self.apply(&kind, now);
        Ok(self.push(now, kind))
    }

    /// Records the priority a verified identity claims for the chat (the
    /// caller checked the signature and applied the channel's cap). Only a
    /// new, verified chat, before anyone answered it or set a priority.
    pub fn claim_priority(
        &mut self,
        priority: Priority,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        if !matches!(self.state, ChatState::Queued { .. })
            || self.verified.is_none()
            || self.priority.is_some()
        {
            return Err(ChatError::AlreadyAnswered);
        }
        Ok(self.record(now, ChatEventKind::PriorityClaimed { priority }))
    }

    /// The skills an agent needs for the chat (none: any agent).
    pub fn skills(&self) -> &SkillSet {
        &self.skills
    }

    /// Records the skills the chat needs; nothing for none. Only a new
    /// chat, before anyone answered it, and only once.
    pub fn need_skills(
        &mut self,
        skills: SkillSet,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        if !matches!(self.state, ChatState::Queued { .. }) || !self.skills.is_empty() {
            return Err(ChatError::AlreadyAnswered);
        }
        if skills.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            self.record(now, ChatEventKind::SkillsNeeded { skills }),
        ))
    }

    /// Where the chat is in its life.
    pub fn state(&self) -> &ChatState {
        &self.state
    }

    /// The agent handling the chat, while it is active.
    pub fn agent(&self) -> Option<&AgentId> {
        match &self.state {
            ChatState::Active { agent, .. } => Some(agent),
            _ => None,
        }
    }

    /// The whole transcript, oldest first.
    pub fn events(&self) -> &Transcript {
        &self.events
    }

    /// The events after `seq` (all of them for 0).
    pub fn events_after(&self, seq: u64) -> impl DoubleEndedIterator<Item = &ChatEvent> + Clone {
        self.events
            .iter_from(usize::try_from(seq).unwrap_or(usize::MAX))
    }

    /// Whether an agent ever took the chat (its first response came).
    pub fn was_answered(&self) -> bool {
        self.events
            .iter()
            .any(|event| matches!(event.kind, ChatEventKind::Assigned { .. }))
    }

    /// The customer's first message: the text shown in the incoming list.
    pub fn first_message(&self) -> &str {
        self.events
            .iter()
            .find_map(|event| match &event.kind {
                ChatEventKind::Message {
                    from: Party::Customer,
                    text,
                    ..
                } => Some(text.as_str()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// An agent answers the queued chat.
    pub fn assign(&mut self, agent: AgentId, now: Timestamp) -> Result<&ChatEvent, ChatError> {
        match self.state {
            ChatState::Queued { .. } => {}
            ChatState::Active { .. } => return Err(ChatError::AlreadyAnswered),
            ChatState::Ended { .. } => return Err(ChatError::Ended),
        }
        Ok(self.record(now, ChatEventKind::Assigned { agent }))
    }

    /// Posts a message. The customer may write while the chat waits or is
    /// active; an agent only into a chat assigned to them. A retry of a
    /// message already stored (same sender, same `client_id`) is answered
    /// with its seq and stored once.
    pub fn post(
        &mut self,
        from: Party,
        client_id: u64,
        text: String,
        now: Timestamp,
    ) -> Result<Posted<'_>, ChatError> {
        if let Some(&seq) = self.posted.get(&(from.clone(), client_id)) {
            return Ok(self.repeat(seq, now));
        }
        self.check_may_post(&from)?;
        check_text(&text)?;
        Ok(Posted::New(self.append_message(from, client_id, text, now)))
    }

    /// Writes a private note (`by` must hold the chat): stored with the
    /// chat and numbered like every event, seen by agents only. A note
    /// retried with the same `client_id` is answered as stored.
    pub fn note(
        &mut self,
        by: AgentId,
        client_id: u64,
        text: String,
        now: Timestamp,
    ) -> Result<Posted<'_>, ChatError> {
        self.write_note(by, false, client_id, text, now)
    }

    /// Writes a supervisor's private note (a whisper to the holder): like
    /// [`Chat::note`], but `by` need not hold the chat, which may be
    /// waiting or active, not ended. Whether `by` oversees the chat's
    /// channel is the caller's to decide; the note is for agents only all
    /// the same.
    pub fn whisper(
        &mut self,
        by: AgentId,
        client_id: u64,
        text: String,
        now: Timestamp,
    ) -> Result<Posted<'_>, ChatError> {
        self.write_note(by, true, client_id, text, now)
    }

    fn write_note(
        &mut self,
        by: AgentId,
        overseer: bool,
        client_id: u64,
        text: String,
        now: Timestamp,
    ) -> Result<Posted<'_>, ChatError> {
        let key = (by.clone(), client_id);
        if let Some(&seq) = self.noted.get(&key) {
            return Ok(self.repeat(seq, now));
        }
        if overseer {
            if let ChatState::Ended { .. } = self.state {
                return Err(ChatError::Ended);
            }
        } else {
            self.check_may_act(&Party::Agent(by.clone()))?;
        }
        check_text(&text)?;
        self.noted.insert(key, self.next_seq());
        Ok(Posted::New(self.push(
            now,
            ChatEventKind::Note {
                by,
                client_id,
                text,
            },
        )))
    }

    /// The answer to a retried message or note: where it is stored.
    fn repeat(&self, seq: u64, now: Timestamp) -> Posted<'_> {
        // Seq n is the transcript's n-th event.
        let at = usize::try_from(seq - 1)
            .ok()
            .and_then(|index| self.events.get(index))
            .map_or(now, |stored| stored.at);
        Posted::Repeat { seq, at }
    }

    /// `by`'s read mark: how far they have read, and the event that says
    /// so (all zero while they have marked nothing).
    pub fn read_mark(&self, by: &Party) -> ReadMark {
        self.read.get(by).copied().unwrap_or_default()
    }

    /// Whether marking the chat read up to `up_to` moves `by`'s mark on:
    /// beyond it, over some event that is not a read mark. Marks that
    /// cover only read marks would otherwise answer each other for ever
    /// between two clients that mark whatever they are shown.
    pub fn mark_moves(&self, by: &Party, up_to: u64) -> bool {
        let from = self.read_mark(by).up_to;
        up_to > from
            && self
                .events_after(from)
                .take_while(|event| event.seq <= up_to)
                .any(|event| !matches!(event.kind, ChatEventKind::Read { .. }))
    }

    /// Marks the chat read by `by` up to seq `up_to`. Only a participant
    /// may (the customer, or the agent holding the chat), and not past the
    /// last event. A mark that does not move `by`'s own on (see
    /// [`Chat::mark_moves`]) changes nothing and is answered with the mark
    /// as it stands; otherwise a `Read` event is appended.
    pub fn mark_read(
        &mut self,
        by: Party,
        up_to: u64,
        now: Timestamp,
    ) -> Result<Marked<'_>, ChatError> {
        self.check_may_act(&by)?;
        if by == Party::System {
            return Err(ChatError::NotAParticipant);
        }
        let last = self.next_seq() - 1;
        if up_to > last {
            return Err(ChatError::ReadBeyondEnd { up_to, last });
        }
        if !self.mark_moves(&by, up_to) {
            return Ok(Marked::Unchanged(self.read_mark(&by)));
        }
        Ok(Marked::New(
            self.record(now, ChatEventKind::Read { by, up_to }),
        ))
    }

    /// The agent who has the chat hands it to another agent.
    pub fn transfer_to_agent(
        &mut self,
        by: &AgentId,
        to: AgentId,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&Party::Agent(by.clone()))?;
        if &to == by {
            return Err(ChatError::SameAgent(to));
        }
        Ok(self.record(
            now,
            ChatEventKind::TransferredToAgent {
                from: by.clone(),
                to,
            },
        ))
    }

    /// Supervisor `by` moves an active chat from its holder to `to`: a
    /// `Reassigned { by, from, to }` for agents only (who moved it, kept
    /// in the chat's log), then the same `TransferredToAgent` event as the
    /// holder's own transfer (so slots, transcripts, the customer and
    /// every other reader treat it alike), from whoever holds it now.
    /// Returns the transfer, the last of the two. Whether `by` oversees
    /// the chat's channel, and whether `to` may take it, is the hub's to
    /// decide.
    pub fn reassign(
        &mut self,
        by: AgentId,
        to: AgentId,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        let from = match &self.state {
            ChatState::Active { agent, .. } => agent.clone(),
            ChatState::Queued { .. } => return Err(ChatError::NotActive),
            ChatState::Ended { .. } => return Err(ChatError::Ended),
        };
        if to == from {
            return Err(ChatError::SameAgent(to));
        }
        self.record(
            now,
            ChatEventKind::Reassigned {
                by,
                from: from.clone(),
                to: to.clone(),
            },
        );
        Ok(self.record(now, ChatEventKind::TransferredToAgent { from, to }))
    }

    /// The agent a chat was just transferred to declines it; it returns to
    /// `back_to` (the agent who transferred it, if they can take it) or to
    /// the queue.
    pub fn decline(
        &mut self,
        by: &AgentId,
        back_to: Option<AgentId>,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&Party::Agent(by.clone()))?;
        if self.transferred_from.is_none() {
            return Err(ChatError::NotTransferredTo(by.clone()));
        }
        Ok(self.record(
            now,
            ChatEventKind::TransferDeclined {
                by: by.clone(),
                to: back_to,
            },
        ))
    }

    /// The agent a declined chat would go back to.
    pub fn transferred_from(&self) -> Option<&AgentId> {
        self.transferred_from.as_ref()
    }

    /// The priority an agent set for the chat, if one did; the channel's
    /// applies otherwise.
    pub fn priority(&self) -> Option<Priority> {
        self.priority
    }

    /// An agent sets the priority the chat waits at; only while it waits
    /// (the priority stays with the chat if it is queued again). `None`
    /// if it already waits at that priority (nothing to record).
    pub fn set_priority(
        &mut self,
        by: AgentId,
        priority: Priority,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        match self.state {
            ChatState::Queued { .. } => {}
            ChatState::Ended { .. } => return Err(ChatError::Ended),
            ChatState::Active { .. } => return Err(ChatError::AlreadyAnswered),
        }
        if self.priority == Some(priority) {
            return Ok(None);
        }
        Ok(Some(
            self.record(now, ChatEventKind::Prioritized { by, priority }),
        ))
    }

    /// The chat goes to `channel`'s queue (its own, or another): by its
    /// agent, keeping its history.
    pub fn requeue(
        &mut self,
        by: Option<&AgentId>,
        channel: ChannelId,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        if let Some(by) = by {
            self.check_may_act(&Party::Agent(by.clone()))?;
        } else if matches!(self.state, ChatState::Ended { .. }) {
            return Err(ChatError::Ended);
        }
        Ok(self.record(
            now,
            ChatEventKind::Requeued {
                by: by.cloned(),
                channel,
            },
        ))
    }

    /// Notes that the agent holding the chat is gone (no connection past
    /// the presence grace). Only while `agent` holds it.
    pub fn agent_gone(&mut self, agent: &AgentId, now: Timestamp) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&Party::Agent(agent.clone()))?;
        Ok(self.record(
            now,
            ChatEventKind::AgentGone {
                agent: agent.clone(),
            },
        ))
    }

    /// Notes in the transcript that a ticket was made from the chat.
    pub fn ticket_created(
        &mut self,
        by: &AgentId,
        ticket: TicketId,
        subject: String,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&Party::Agent(by.clone()))?;
        Ok(self.record(now, ChatEventKind::TicketCreated { ticket, subject }))
    }

    /// A participant shares a file.
    pub fn share_file(
        &mut self,
        from: Party,
        file: FileRef,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&from)?;
        Ok(self.record(now, ChatEventKind::FileShared { from, file }))
    }

    /// The customer returns to the ended chat through the end form, within
    /// `window` of its end: it goes to `agent`, or to the queue.
    pub fn reopen(
        &mut self,
        agent: Option<AgentId>,
        window: std::time::Duration,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        match self.state {
            ChatState::Ended { at } if now.since(at) <= window => {}
            ChatState::Ended { .. } => return Err(ChatError::NotReturnable),
            _ => return Err(ChatError::NotEnded),
        }
        Ok(self.record(now, ChatEventKind::Reopened { agent }))
    }

    /// Ends the chat: by its agent, by the customer leaving, or by the hub.
    pub fn end(&mut self, by: Party, now: Timestamp) -> Result<&ChatEvent, ChatError> {
        self.check_may_act(&by)?;
        // Every supervisor still in the chat leaves with its end.
        for supervisor in std::mem::take(&mut self.supervisors) {
            self.push(now, ChatEventKind::SupervisorLeft { supervisor });
        }
        Ok(self.record(now, ChatEventKind::Ended { by }))
    }

    /// Supervisor `by` barges in: from now on they take part beside the
    /// agent holding the chat (they may post messages), until they leave
    /// or it ends. `None` if they are in it already. Whether `by`
    /// oversees the chat's channel is the caller's to decide; the holder
    /// cannot barge into their own chat.
    pub fn barge_in(
        &mut self,
        by: AgentId,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        match &self.state {
            ChatState::Ended { .. } => return Err(ChatError::Ended),
            ChatState::Active { agent, .. } if *agent == by => {
                return Err(ChatError::SameAgent(by));
            }
            _ => {}
        }
        if self.supervisors.contains(&by) {
            return Ok(None);
        }
        Ok(Some(self.record(
            now,
            ChatEventKind::SupervisorJoined { supervisor: by },
        )))
    }

    /// A supervisor who barged in leaves the chat; `None` if they were not
    /// in it.
    pub fn leave_barge_in(
        &mut self,
        by: AgentId,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        if let ChatState::Ended { .. } = self.state {
            return Err(ChatError::Ended);
        }
        if !self.supervisors.contains(&by) {
            return Ok(None);
        }
        Ok(Some(self.record(
            now,
            ChatEventKind::SupervisorLeft { supervisor: by },
        )))
    }

    /// The supervisors who barged in and take part now.
    pub fn supervisors(&self) -> impl Iterator<Item = &AgentId> {
        self.supervisors.iter()
    }

    /// The tags on the chat, in order.
    pub fn tags(&self) -> impl Iterator<Item = &String> {
        self.tags.iter()
    }

    /// `by` puts `tag` on the chat (lowercased, see [`normalize_tag`]):
    /// the agent holding it, or (`overseer`, the caller checked they
    /// oversee its channel) anyone, while it has not ended. `None` if the
    /// chat carries the tag already; at most [`MAX_TAGS`] tags.
    pub fn tag(
        &mut self,
        by: AgentId,
        overseer: bool,
        tag: &str,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        self.check_may_tag(&by, overseer)?;
        let tag = normalize_tag(tag)?;
        if self.tags.contains(&tag) {
            return Ok(None);
        }
        if self.tags.len() >= MAX_TAGS {
            return Err(TagError::TooMany.into());
        }
        Ok(Some(self.record(now, ChatEventKind::Tagged { by, tag })))
    }

    /// `by` takes `tag` off the chat, as [`Chat::tag`] puts it on; `None`
    /// if the chat does not carry it.
    pub fn untag(
        &mut self,
        by: AgentId,
        overseer: bool,
        tag: &str,
        now: Timestamp,
    ) -> Result<Option<&ChatEvent>, ChatError> {
        self.check_may_tag(&by, overseer)?;
        let tag = normalize_tag(tag)?;
        if !self.tags.contains(&tag) {
            return Ok(None);
        }
        Ok(Some(self.record(now, ChatEventKind::Untagged { by, tag })))
    }

    fn check_may_tag(&self, by: &AgentId, overseer: bool) -> Result<(), ChatError> {
        match &self.state {
            ChatState::Ended { .. } => Err(ChatError::Ended),
            _ if overseer => Ok(()),
            _ => self.check_may_act(&Party::Agent(by.clone())),
        }
    }

    /// The author of message `seq` gives it new text: an `Edited` event.
    /// Only one's own plain message (not a note, not the hub's), not
    /// deleted, while the author may still post in the chat, and within
    /// `window` of when it was posted (a zero window: never).
    pub fn edit(
        &mut self,
        by: Party,
        seq: u64,
        text: String,
        window: std::time::Duration,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_editable(&by, seq, window, now)?;
        check_text(&text)?;
        Ok(self.record(now, ChatEventKind::Edited { seq, text }))
    }

    /// The author of message `seq` deletes it: a `Deleted` event, under
    /// [`Chat::edit`]'s rules. The message's event stays in the log.
    pub fn delete(
        &mut self,
        by: Party,
        seq: u64,
        window: std::time::Duration,
        now: Timestamp,
    ) -> Result<&ChatEvent, ChatError> {
        self.check_editable(&by, seq, window, now)?;
        Ok(self.record(now, ChatEventKind::Deleted { seq }))
    }

    fn check_editable(
        &self,
        by: &Party,
        seq: u64,
        window: std::time::Duration,
        now: Timestamp,
    ) -> Result<(), ChatError> {
        self.check_may_post(by)?;
        let message = seq
            .checked_sub(1)
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| self.events.get(index));
        let Some(ChatEvent {
            at,
            kind: ChatEventKind::Message { from, .. },
            ..
        }) = message
        else {
            return Err(ChatError::UnknownMessage(seq));
        };
        if from != by || *by == Party::System {
            return Err(ChatError::NotYourMessage(seq));
        }
        if self.deleted.contains(&seq) {
            return Err(ChatError::AlreadyDeleted(seq));
        }
        if window.is_zero() || now.since(*at) > window {
            return Err(ChatError::EditWindowPassed(seq));
        }
        Ok(())
    }

    /// Appends an event and moves the state as it says.
    fn record(&mut self, now: Timestamp, kind: ChatEventKind) -> &ChatEvent {
        self.apply(&kind, now);
        self.push(now, kind)
    }

    /// How an event moves the chat's state; used live and when replaying.
    fn apply(&mut self, kind: &ChatEventKind, at: Timestamp) {
        let active = |agent: &AgentId| ChatState::Active {
            agent: agent.clone(),
            since: at,
        };
        match kind {
            ChatEventKind::Started { .. } | ChatEventKind::Message { .. } => {}
            ChatEventKind::TicketCreated { .. } | ChatEventKind::FileShared { .. } => {}
            ChatEventKind::Note { .. } | ChatEventKind::Withheld => {}
            ChatEventKind::AgentGone { .. } => {}
            ChatEventKind::Edited { .. } | ChatEventKind::Reassigned { .. } => {}
            ChatEventKind::Deleted { seq } => {
                self.deleted.insert(*seq);
            }
            ChatEventKind::Tagged { tag, .. } => {
                self.tags.insert(tag.clone());
            }
            ChatEventKind::Untagged { tag, .. } => {
                self.tags.remove(tag);
            }
            ChatEventKind::SupervisorJoined { supervisor } => {
                self.supervisors.insert(supervisor.clone());
            }
            ChatEventKind::SupervisorLeft { supervisor } => {
                self.supervisors.remove(supervisor);
            }
            ChatEventKind::Prioritized { priority, .. }
            | ChatEventKind::PriorityClaimed { priority } => self.priority = Some(*priority),
            ChatEventKind::Verified(identity) => self.verified = Some(identity.clone()),
            ChatEventKind::SkillsNeeded { skills } => self.skills = skills.clone(),
            ChatEventKind::Read { by, up_to } => {
                // Applied just before its event is pushed: the next seq is
                // its own.
                let mark = ReadMark {
                    up_to: *up_to,
                    seq: self.next_seq(),
                    at,
                };
                self.read.insert(by.clone(), mark);
            }
            ChatEventKind::Assigned { agent } => {
                self.state = active(agent);
                self.transferred_from = None;
            }
            ChatEventKind::TransferredToAgent { from, to } => {
                self.state = active(to);
                self.transferred_from = Some(from.clone());
            }
            ChatEventKind::TransferDeclined { to, .. } => {
                self.state = match to {
                    Some(agent) => active(agent),
                    None => ChatState::Queued { since: at },
                };
                self.transferred_from = None;
            }
            ChatEventKind::Requeued { channel, .. } => {
                self.channel = channel.clone();
                self.state = ChatState::Queued { since: at };
                self.transferred_from = None;
            }
            ChatEventKind::Reopened { agent } => {
                self.state = match agent {
                    Some(agent) => active(agent),
                    None => ChatState::Queued { since: at },
                };
                self.transferred_from = None;
            }
            ChatEventKind::Ended { .. } => {
                self.state = ChatState::Ended { at };
                self.transferred_from = None;
                self.supervisors.clear();
            }
        }
    }

    /// Who may post a message: the customer, the system, the agent holding
    /// the chat, and the supervisors who barged in.
    fn check_may_post(&self, who: &Party) -> Result<(), ChatError> {
        match (&self.state, who) {
            (ChatState::Ended { .. }, _) => Err(ChatError::Ended),
            (_, Party::Agent(who)) if self.supervisors.contains(who) => Ok(()),
            _ => self.check_may_act(who),
        }
    }

    fn check_may_act(&self, who: &Party) -> Result<(), ChatError> {
        match (&self.state, who) {
            (ChatState::Ended { .. }, _) => Err(ChatError::Ended),
            (_, Party::Customer | Party::System) => Ok(()),
            (ChatState::Active { agent, .. }, Party::Agent(who)) if agent == who => Ok(()),
            (_, Party::Agent(who)) => Err(ChatError::NotYourChat(who.clone())),
        }
    }

    fn append_message(
        &mut self,
        from: Party,
        client_id: u64,
        text: String,
        now: Timestamp,
    ) -> &ChatEvent {
        let seq = self.next_seq();
        if from != Party::System {
            self.posted.insert((from.clone(), client_id), seq);
        }
        self.push(
            now,
            ChatEventKind::Message {
                from,
                client_id,
                text,
            },
        )
    }

    fn next_seq(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    fn push(&mut self, at: Timestamp, kind: ChatEventKind) -> &ChatEvent {
        let event = ChatEvent {
            chat: self.id,
            seq: self.next_seq(),
            at,
            kind,
        };
        self.events.push(event)
    }
}

/// About how many bytes of events one transcript page carries.
pub const TRANSCRIPT_PAGE_BYTES: usize = 256 * 1024;

/// The first of `rest` (the events after a point), as many as fit in about
/// [`TRANSCRIPT_PAGE_BYTES`] (always at least one), and whether more follow.
pub fn transcript_page<'a>(rest: impl Iterator<Item = &'a ChatEvent>) -> (Vec<ChatEvent>, bool) {
    let mut rest = rest.peekable();
    let mut page = Vec::new();
    let mut bytes = 0;
    while let Some(event) = rest.peek() {
        let size = 64
            + match &event.kind {
                ChatEventKind::Message { text, .. }
                | ChatEventKind::Note { text, .. }
                | ChatEventKind::Edited { text, .. } => text.len(),
                _ => 0,
            };
        if !page.is_empty() && bytes + size > TRANSCRIPT_PAGE_BYTES {
            break;
        }
        bytes += size;
        page.extend(rest.next().cloned());
    }
    let more = rest.peek().is_some();
    (page, more)
}

/// Checks a message's text: not blank, not above [`MAX_MESSAGE_BYTES`].
pub fn check_text(text: &str) -> Result<(), ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ChatError::MessageTooLong {
            len: text.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Chat {
        Chat::start(
            ChatId(7),
            ChannelId::new("support"),
            Customer {
                name: Some("Ada".into()),
                email: None,
            },
            1,
            "hello 👋".into(),
            Some("Welcome!"),
            Timestamp(100),
        )
        .unwrap()
    }

    fn kinds(chat: &Chat) -> Vec<(u64, &ChatEventKind)> {
        chat.events().iter().map(|e| (e.seq, &e.kind)).collect()
    }

    const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

    #[test]
    fn tags_go_on_and_off_bounded_and_come_back_with_a_restore() {
        let mut chat = started();
        let (alice, bob, sam) = (
            AgentId::new("alice"),
            AgentId::new("bob"),
            AgentId::new("sam"),
        );
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        assert!(
            chat.tag(alice.clone(), false, "VIP", Timestamp(201))
                .unwrap()
                .is_some()
        );
        assert!(
            chat.tag(alice.clone(), false, "vip", Timestamp(202))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            chat.tag(bob.clone(), false, "x", Timestamp(203))
                .unwrap_err(),
            ChatError::NotYourChat(bob)
        );
        assert!(
            chat.tag(sam.clone(), true, "late", Timestamp(204))
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            chat.tag(alice.clone(), false, "a;b", Timestamp(205)),
            Err(ChatError::Tag(TagError::Invalid(_)))
        ));
        assert!(
            chat.untag(alice.clone(), false, "absent", Timestamp(206))
                .unwrap()
                .is_none()
        );
        assert!(
            chat.untag(alice.clone(), false, "LATE", Timestamp(207))
                .unwrap()
                .is_some()
        );
        for n in 1..MAX_TAGS {
            chat.tag(alice.clone(), false, &format!("t{n}"), Timestamp(208))
                .unwrap();
        }
        assert_eq!(
            chat.tag(alice.clone(), false, "more", Timestamp(209))
                .unwrap_err(),
            ChatError::Tag(TagError::TooMany)
        );
        let tags: Vec<String> = chat.tags().cloned().collect();
        assert_eq!(tags.len(), MAX_TAGS);
        assert!(tags.contains(&"vip".to_owned()) && !tags.contains(&"late".to_owned()));
        let restored = Chat::restore(chat.events().iter().cloned().collect()).unwrap();
        assert_eq!(restored.tags().cloned().collect::<Vec<_>>(), tags);
        chat.end(Party::Agent(alice.clone()), Timestamp(300))
            .unwrap();
        assert_eq!(
            chat.tag(sam, true, "after", Timestamp(301)).unwrap_err(),
            ChatError::Ended
        );
    }

    #[test]
    fn only_the_author_changes_a_message_within_the_window_until_it_is_deleted() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        let Posted::New(mine) = chat
            .post(
                Party::Agent(alice.clone()),
                5,
                "helo".into(),
                Timestamp(1_000),
            )
            .unwrap()
        else {
            panic!("a new message")
        };
        let mine = mine.seq;
        let edited = chat
            .edit(
                Party::Agent(alice.clone()),
                mine,
                "hello".into(),
                WINDOW,
                Timestamp(2_000),
            )
            .unwrap();
        assert_eq!(
            edited.kind,
            ChatEventKind::Edited {
                seq: mine,
                text: "hello".into()
            }
        );
        // The customer's first message (seq 2) is not the agent's; the
        // welcome (seq 3) is nobody's; seq 1 is no message.
        let err = |chat: &mut Chat, by: Party, seq: u64, now: u64| {
            chat.edit(by, seq, "x".into(), WINDOW, Timestamp(now))
                .unwrap_err()
        };
        assert_eq!(
            err(&mut chat, Party::Agent(alice.clone()), 2, 2_000),
            ChatError::NotYourMessage(2)
        );
        assert_eq!(
            err(&mut chat, Party::Customer, 3, 2_000),
            ChatError::NotYourMessage(3)
        );
        assert_eq!(
            err(&mut chat, Party::Customer, 1, 2_000),
            ChatError::UnknownMessage(1)
        );
        assert_eq!(
            err(&mut chat, Party::Customer, 0, 2_000),
            ChatError::UnknownMessage(0)
        );
        assert_eq!(
            err(&mut chat, Party::Customer, 99, 2_000),
            ChatError::UnknownMessage(99)
        );
        // The window runs from the message's own time, not the edit's.
        assert_eq!(
            err(&mut chat, Party::Agent(alice.clone()), mine, 61_001),
            ChatError::EditWindowPassed(mine)
        );
        assert_eq!(
            chat.edit(
                Party::Customer,
                2,
                "hi".into(),
                std::time::Duration::ZERO,
                Timestamp(100)
            )
            .unwrap_err(),
            ChatError::EditWindowPassed(2)
        );
        assert!(
            chat.delete(Party::Agent(alice.clone()), mine, WINDOW, Timestamp(3_000))
                .is_ok()
        );
        assert_eq!(
            chat.delete(Party::Agent(alice.clone()), mine, WINDOW, Timestamp(3_001))
                .unwrap_err(),
            ChatError::AlreadyDeleted(mine)
        );
        // The deletion survives a restore; the message's own event is as
        // it was posted.
        let mut restored = Chat::restore(chat.events().iter().cloned().collect()).unwrap();
        assert_eq!(
            err(&mut restored, Party::Agent(alice.clone()), mine, 3_002),
            ChatError::AlreadyDeleted(mine)
        );
        assert!(matches!(
            &restored.events().get(mine as usize - 1).unwrap().kind,
            ChatEventKind::Message { text, .. } if text == "helo"
        ));
        // Someone who no longer takes part changes nothing.
        chat.transfer_to_agent(&alice, AgentId::new("bob"), Timestamp(3_100))
            .unwrap();
        let Posted::New(earlier) = chat
            .post(Party::Customer, 9, "still there?".into(), Timestamp(3_200))
            .unwrap()
        else {
            panic!("a new message")
        };
        let earlier = earlier.seq;
        assert!(
            chat.edit(
                Party::Customer,
                earlier,
                "?".into(),
                WINDOW,
                Timestamp(3_300)
            )
            .is_ok()
        );
        assert_eq!(
            chat.edit(Party::Agent(alice), 2, "x".into(), WINDOW, Timestamp(3_300))
                .unwrap_err(),
            ChatError::NotYourChat(AgentId::new("alice"))
        );
    }

    #[test]
    fn a_claimed_priority_needs_a_verified_new_chat_and_survives_a_restore() {
        let mut chat = started();
        assert_eq!(
            chat.claim_priority(Priority::Urgent, Timestamp(110))
                .unwrap_err(),
            ChatError::AlreadyAnswered,
            "no claim without a verified identity"
        );
        let ada = Identity {
            id: "cust-17".into(),
            email: None,
        };
        chat.verify(ada, Timestamp(110)).unwrap();
        chat.claim_priority(Priority::High, Timestamp(120)).unwrap();
        assert_eq!(chat.priority(), Some(Priority::High));
        assert!(
            chat.claim_priority(Priority::Urgent, Timestamp(130))
                .is_err()
        );
        assert!(!chat.was_answered());
        chat.assign(AgentId::new("alice"), Timestamp(200)).unwrap();
        assert!(chat.was_answered());
        let restored = Chat::restore(chat.events().iter().cloned().collect()).unwrap();
        assert_eq!(restored.priority(), Some(Priority::High));
        assert!(restored.was_answered());
    }

    #[test]
    fn a_chat_goes_queued_active_ended_with_consecutive_seqs() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        assert_eq!(
            chat.state(),
            &ChatState::Queued {
                since: Timestamp(100)
            }
        );
        assert_eq!(chat.first_message(), "hello 👋");
        assert_eq!(chat.assign(alice.clone(), Timestamp(200)).unwrap().seq, 4);
        assert_eq!(chat.agent(), Some(&alice));
        let Posted::New(reply) = chat
            .post(Party::Agent(alice.clone()), 1, "hi!".into(), Timestamp(300))
            .unwrap()
        else {
            panic!("expected a new message")
        };
        assert_eq!(reply.seq, 5);
        assert_eq!(
            chat.end(Party::Agent(alice), Timestamp(400)).unwrap().seq,
            6
        );
        assert_eq!(chat.state(), &ChatState::Ended { at: Timestamp(400) });
        let seqs: Vec<u64> = kinds(&chat).iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert_eq!(chat.events_after(4).count(), 2);
        assert_eq!(chat.events_after(99).count(), 0);
    }

    #[test]
    fn only_the_assigned_agent_may_post_or_end() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        let bob = AgentId::new("bob");
        assert_eq!(
            chat.post(
                Party::Agent(alice.clone()),
                1,
                "too early".into(),
                Timestamp(1)
            ),
            Err(ChatError::NotYourChat(alice.clone()))
        );
        chat.assign(alice.clone(), Timestamp(2)).unwrap();
        assert_eq!(
            chat.assign(bob.clone(), Timestamp(2)),
            Err(ChatError::AlreadyAnswered)
        );
        assert_eq!(
            chat.post(
                Party::Agent(bob.clone()),
                1,
                "not mine".into(),
                Timestamp(3)
            ),
            Err(ChatError::NotYourChat(bob.clone()))
        );
        assert_eq!(
            chat.end(Party::Agent(bob.clone()), Timestamp(3)),
            Err(ChatError::NotYourChat(bob))
        );
        chat.end(Party::Customer, Timestamp(4)).unwrap();
        assert_eq!(
            chat.post(Party::Customer, 9, "after the end".into(), Timestamp(5)),
            Err(ChatError::Ended)
        );
        assert_eq!(
            chat.end(Party::Agent(alice), Timestamp(6)),
            Err(ChatError::Ended)
        );
    }

    #[test]
    fn a_restored_chat_is_the_chat_it_was() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        chat.post(Party::Customer, 9, "one".into(), Timestamp(300))
            .unwrap();
        let restored = Chat::restore(chat.events().to_vec()).unwrap();
        assert_eq!(restored.state(), chat.state());
        assert_eq!(restored.events(), chat.events());
        assert_eq!(restored.customer(), chat.customer());
        let mut restored = restored;
        // The retry de-duplication survived...
        assert_eq!(
            restored.post(Party::Customer, 9, "one".into(), Timestamp(400)),
            Ok(Posted::Repeat {
                seq: 5,
                at: Timestamp(300)
            })
        );
        // ...and seqs continue.
        let Posted::New(next) = restored
            .post(Party::Agent(alice), 1, "two".into(), Timestamp(400))
            .unwrap()
        else {
            panic!("expected a new message")
        };
        assert_eq!(next.seq, 6);

        let mut gappy = chat.events().to_vec();
        gappy.remove(2);
        assert!(matches!(
            Chat::restore(gappy),
            Err(RestoreError::Gap {
                expected: 3,
                found: 4,
                ..
            })
        ));
        assert_eq!(Chat::restore(Vec::new()).err(), Some(RestoreError::Empty));
        assert!(matches!(
            Chat::restore(chat.events().iter_from(1).cloned().collect()),
            Err(RestoreError::NotStarted(_))
        ));
    }

    #[test]
    fn an_agent_gone_is_noted_only_while_they_hold_the_chat_and_moves_nothing() {
        let mut chat = started();
        let (alice, bob) = (AgentId::new("alice"), AgentId::new("bob"));
        assert_eq!(
            chat.agent_gone(&alice, Timestamp(1)).err(),
            Some(ChatError::NotYourChat(alice.clone())),
            "nobody holds a queued chat"
        );
        chat.assign(alice.clone(), Timestamp(1)).unwrap();
        assert_eq!(
            chat.agent_gone(&bob, Timestamp(2)).err(),
            Some(ChatError::NotYourChat(bob.clone()))
        );
        let gone = chat.agent_gone(&alice, Timestamp(2)).unwrap().clone();
        assert_eq!(
            gone.kind,
            ChatEventKind::AgentGone {
                agent: alice.clone()
            }
        );
        assert_eq!(chat.agent(), Some(&alice), "kept until requeued");
        // Requeued by nobody: the hub's own requeue after the agent left.
        chat.requeue(None, ChannelId::new("support"), Timestamp(3))
            .unwrap();
        assert_eq!(
            chat.state(),
            &ChatState::Queued {
                since: Timestamp(3)
            }
        );
        let restored = Chat::restore(chat.events().to_vec()).unwrap();
        assert_eq!(restored.state(), chat.state());
        chat.end(Party::Customer, Timestamp(4)).unwrap();
        assert_eq!(
            chat.agent_gone(&alice, Timestamp(5)).err(),
            Some(ChatError::Ended)
        );
    }

    #[test]
    fn transfers_declines_requeues_and_returns_move_the_chat() {
        let mut chat = started();
        let (alice, bob) = (AgentId::new("alice"), AgentId::new("bob"));
        chat.assign(alice.clone(), Timestamp(1)).unwrap();
        assert_eq!(
            chat.transfer_to_agent(&alice, alice.clone(), Timestamp(2)),
            Err(ChatError::SameAgent(alice.clone()))
        );
        assert_eq!(
            chat.decline(&alice, None, Timestamp(2)),
            Err(ChatError::NotTransferredTo(alice.clone()))
        );
        chat.transfer_to_agent(&alice, bob.clone(), Timestamp(2))
            .unwrap();
        assert_eq!(chat.agent(), Some(&bob));
        assert_eq!(chat.transferred_from(), Some(&alice));
        // Alice no longer holds it; Bob may decline it back to her.
        assert_eq!(
            chat.post(Party::Agent(alice.clone()), 1, "hi".into(), Timestamp(3)),
            Err(ChatError::NotYourChat(alice.clone()))
        );
        chat.decline(&bob, Some(alice.clone()), Timestamp(3))
            .unwrap();
        assert_eq!(chat.agent(), Some(&alice));
        assert_eq!(chat.transferred_from(), None);

        // To another channel's queue, keeping the history.
        let before = chat.events().len();
        chat.requeue(Some(&alice), ChannelId::new("sales"), Timestamp(4))
            .unwrap();
        assert_eq!(
            chat.state(),
            &ChatState::Queued {
                since: Timestamp(4)
            }
        );
        assert_eq!(chat.channel(), &ChannelId::new("sales"));
        assert_eq!(chat.events().len(), before + 1);
        chat.assign(bob.clone(), Timestamp(5)).unwrap();
        chat.end(Party::Agent(bob.clone()), Timestamp(6)).unwrap();

        // Back through the end form within the window, then not after it.
        let window = std::time::Duration::from_millis(100);
        assert_eq!(
            chat.reopen(None, window, Timestamp(500)).map(|_| ()),
            Err(ChatError::NotReturnable)
        );
        chat.reopen(Some(bob.clone()), window, Timestamp(50))
            .unwrap();
        assert_eq!(chat.agent(), Some(&bob));
        assert_eq!(
            chat.reopen(None, window, Timestamp(51)).map(|_| ()),
            Err(ChatError::NotEnded)
        );

        // Replaying the transcript gives the same chat.
        let restored = Chat::restore(chat.events().to_vec()).unwrap();
        assert_eq!(restored.state(), chat.state());
        assert_eq!(restored.channel(), chat.channel());
    }

    #[test]
    fn a_retried_message_is_stored_once() {
        let mut chat = started();
        let before = chat.events().len();
        let Posted::New(first) = chat
            .post(Party::Customer, 2, "again?".into(), Timestamp(1))
            .unwrap()
        else {
            panic!("expected a new message")
        };
        let (seq, at) = (first.seq, first.at);
        // The retry is answered with the stored message's seq and time.
        assert_eq!(
            chat.post(Party::Customer, 2, "again?".into(), Timestamp(2)),
            Ok(Posted::Repeat { seq, at })
        );
        assert_eq!(chat.events().len(), before + 1);
        // The same id from another sender is a different message.
        chat.assign(AgentId::new("a"), Timestamp(3)).unwrap();
        assert!(matches!(
            chat.post(
                Party::Agent(AgentId::new("a")),
                2,
                "mine".into(),
                Timestamp(4)
            ),
            Ok(Posted::New(_))
        ));
    }

    #[test]
    fn transcript_pages_cover_every_event_once() {
        let mut chat = started();
        for n in 0..100 {
            chat.post(
                Party::Customer,
                100 + n,
                "y".repeat(MAX_MESSAGE_BYTES),
                Timestamp(1),
            )
            .unwrap();
        }
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let (page, more) = transcript_page(chat.events_after(after));
            assert!(!page.is_empty());
            after = page.last().unwrap().seq;
            seen.extend(page.iter().map(|e| e.seq));
            if !more {
                break;
            }
        }
        let all: Vec<u64> = (1..=chat.events().len() as u64).collect();
        assert_eq!(seen, all);
        assert_eq!(
            transcript_page(chat.events_after(after)),
            (Vec::new(), false)
        );
    }

    fn read(by: Party, up_to: u64) -> ChatEventKind {
        ChatEventKind::Read { by, up_to }
    }

    #[test]
    fn read_marks_only_move_forward_and_a_repeat_makes_no_event() {
        let mut chat = started();
        let alice = Party::Agent(AgentId::new("alice"));
        chat.assign(AgentId::new("alice"), Timestamp(200)).unwrap();
        assert_eq!(chat.read_mark(&alice), ReadMark::default());
        let Marked::New(event) = chat.mark_read(alice.clone(), 3, Timestamp(300)).unwrap() else {
            panic!("expected a new mark")
        };
        assert_eq!((event.seq, &event.kind), (5, &read(alice.clone(), 3)));
        let mark = ReadMark {
            up_to: 3,
            seq: 5,
            at: Timestamp(300),
        };
        assert_eq!(chat.read_mark(&alice), mark);
        // The same mark again, or a lower one: the mark as it stands.
        for up_to in [3, 1, 0] {
            assert_eq!(
                chat.mark_read(alice.clone(), up_to, Timestamp(301)),
                Ok(Marked::Unchanged(mark))
            );
        }
        assert_eq!(chat.events().len(), 5);
        // Each party has a mark of its own; the customer's starts at none.
        assert_eq!(
            chat.mark_read(Party::Customer, 0, Timestamp(302)),
            Ok(Marked::Unchanged(ReadMark::default()))
        );
        let Marked::New(event) = chat.mark_read(Party::Customer, 2, Timestamp(303)).unwrap() else {
            panic!("expected a new mark")
        };
        assert_eq!(event.seq, 6);
        // A higher mark moves on, over read events too, up to the last
        // event.
        let Marked::New(event) = chat.mark_read(alice.clone(), 6, Timestamp(304)).unwrap() else {
            panic!("expected a new mark")
        };
        assert_eq!((event.seq, &event.kind), (7, &read(alice.clone(), 6)));
        assert_eq!(chat.read_mark(&alice).up_to, 6);
        assert_eq!(chat.read_mark(&Party::Customer).up_to, 2);
    }

    #[test]
    fn a_mark_over_nothing_but_read_marks_makes_no_event() {
        let mut chat = started();
        let alice = Party::Agent(AgentId::new("alice"));
        chat.assign(AgentId::new("alice"), Timestamp(1)).unwrap();
        chat.mark_read(Party::Customer, 4, Timestamp(2)).unwrap();
        chat.mark_read(alice.clone(), 5, Timestamp(3)).unwrap();
        // Seqs 5 and 6 are the two marks: the customer has nothing new.
        let customer = chat.read_mark(&Party::Customer);
        assert!(!chat.mark_moves(&Party::Customer, 6));
        assert_eq!(
            chat.mark_read(Party::Customer, 6, Timestamp(4)),
            Ok(Marked::Unchanged(customer))
        );
        let marked = chat.read_mark(&alice);
        assert_eq!(
            chat.mark_read(alice.clone(), 6, Timestamp(4)),
            Ok(Marked::Unchanged(marked))
        );
        assert_eq!(chat.events().len(), 6);
        // A message after them is something to read, and the mark covers
        // the marks before it too.
        chat.post(alice, 1, "hi".into(), Timestamp(5)).unwrap();
        assert!(chat.mark_moves(&Party::Customer, 7));
        let Marked::New(event) = chat.mark_read(Party::Customer, 7, Timestamp(6)).unwrap() else {
            panic!("expected a new mark")
        };
        assert_eq!((event.seq, &event.kind), (8, &read(Party::Customer, 7)));
    }

    #[test]
    fn a_read_mark_past_the_last_event_is_refused() {
        let mut chat = started();
        assert_eq!(
            chat.mark_read(Party::Customer, 4, Timestamp(1)),
            Err(ChatError::ReadBeyondEnd { up_to: 4, last: 3 })
        );
        assert_eq!(chat.events().len(), 3);
        assert!(matches!(
            chat.mark_read(Party::Customer, 3, Timestamp(1)),
            Ok(Marked::New(_))
        ));
    }

    #[test]
    fn only_the_customer_and_the_holding_agent_mark_read_and_not_after_the_end() {
        let mut chat = started();
        let (alice, bob) = (AgentId::new("alice"), AgentId::new("bob"));
        // Waiting: the customer reads, no agent does.
        assert!(matches!(
            chat.mark_read(Party::Customer, 1, Timestamp(1)),
            Ok(Marked::New(_))
        ));
        assert_eq!(
            chat.mark_read(Party::Agent(alice.clone()), 1, Timestamp(1)),
            Err(ChatError::NotYourChat(alice.clone()))
        );
        assert_eq!(
            chat.mark_read(Party::System, 1, Timestamp(1)),
            Err(ChatError::NotAParticipant)
        );
        chat.assign(alice.clone(), Timestamp(2)).unwrap();
        assert_eq!(
            chat.mark_read(Party::Agent(bob.clone()), 1, Timestamp(3)),
            Err(ChatError::NotYourChat(bob.clone()))
        );
        chat.transfer_to_agent(&alice, bob.clone(), Timestamp(4))
            .unwrap();
        assert_eq!(
            chat.mark_read(Party::Agent(alice.clone()), 1, Timestamp(5)),
            Err(ChatError::NotYourChat(alice))
        );
        assert!(matches!(
            chat.mark_read(Party::Agent(bob.clone()), 5, Timestamp(5)),
            Ok(Marked::New(_))
        ));
        chat.end(Party::Customer, Timestamp(6)).unwrap();
        let before = chat.events().len();
        for by in [Party::Customer, Party::Agent(bob), Party::System] {
            assert_eq!(chat.mark_read(by, 7, Timestamp(7)), Err(ChatError::Ended));
        }
        assert_eq!(chat.events().len(), before);
    }

    #[test]
    fn a_restored_chat_keeps_every_partys_read_mark() {
        let mut chat = started();
        let alice = Party::Agent(AgentId::new("alice"));
        chat.assign(AgentId::new("alice"), Timestamp(2)).unwrap();
        chat.mark_read(Party::Customer, 4, Timestamp(3)).unwrap();
        chat.mark_read(alice.clone(), 2, Timestamp(4)).unwrap();
        chat.mark_read(alice.clone(), 5, Timestamp(5)).unwrap();
        let mut restored = Chat::restore(chat.events().to_vec()).unwrap();
        assert_eq!(
            restored.read_mark(&Party::Customer),
            ReadMark {
                up_to: 4,
                seq: 5,
                at: Timestamp(3)
            }
        );
        assert_eq!(
            restored.read_mark(&alice),
            ReadMark {
                up_to: 5,
                seq: 7,
                at: Timestamp(5)
            }
        );
        // A repeat, or a mark over the marks alone, still makes no event;
        // a mark over something new continues the seqs.
        for up_to in [5, 7] {
            assert_eq!(
                restored.mark_read(alice.clone(), up_to, Timestamp(6)),
                Ok(Marked::Unchanged(chat.read_mark(&alice)))
            );
        }
        restored
            .post(Party::Customer, 8, "more".into(), Timestamp(7))
            .unwrap();
        let Marked::New(event) = restored.mark_read(alice, 8, Timestamp(8)).unwrap() else {
            panic!("expected a new mark")
        };
        assert_eq!(event.seq, 9);
    }

    #[test]
    fn empty_and_oversized_messages_are_refused() {
        let mut chat = started();
        assert_eq!(
            chat.post(Party::Customer, 5, " \n".into(), Timestamp(1)),
            Err(ChatError::EmptyMessage)
        );
        let long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert!(matches!(
            chat.post(Party::Customer, 6, long, Timestamp(1)),
            Err(ChatError::MessageTooLong { .. })
        ));
        let start = Chat::start(
            ChatId(1),
            ChannelId::new("c"),
            Customer::default(),
            0,
            String::new(),
            None,
            Timestamp(0),
        );
        assert_eq!(start.err(), Some(ChatError::EmptyMessage));
    }

    #[test]
    fn only_the_holder_writes_notes_and_a_retry_is_stored_once() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        let bob = AgentId::new("bob");
        assert_eq!(
            chat.note(alice.clone(), 1, "waiting".into(), Timestamp(150)),
            Err(ChatError::NotYourChat(alice.clone())),
            "nobody holds a queued chat"
        );
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        assert_eq!(
            chat.note(bob.clone(), 1, "not mine".into(), Timestamp(210)),
            Err(ChatError::NotYourChat(bob))
        );
        let Posted::New(note) = chat
            .note(alice.clone(), 7, "VIP, be gentle".into(), Timestamp(300))
            .unwrap()
        else {
            panic!("expected a new note")
        };
        assert_eq!(note.seq, 5);
        assert!(note.kind.is_for_agents_only());
        assert_eq!(
            chat.note(alice.clone(), 7, "VIP, be gentle".into(), Timestamp(900)),
            Ok(Posted::Repeat {
                seq: 5,
                at: Timestamp(300)
            })
        );
        assert_eq!(
            chat.note(alice.clone(), 8, " ".into(), Timestamp(310)),
            Err(ChatError::EmptyMessage)
        );
        // A message with the note's id is a message of its own.
        assert!(matches!(
            chat.post(
                Party::Agent(alice.clone()),
                7,
                "hello".into(),
                Timestamp(400)
            ),
            Ok(Posted::New(_))
        ));
        // A restored chat still knows the note's client id.
        let mut restored = Chat::restore(chat.events().iter().cloned().collect()).unwrap();
        assert!(matches!(
            restored.note(alice, 7, "VIP, be gentle".into(), Timestamp(950)),
            Ok(Posted::Repeat { seq: 5, .. })
        ));
    }

    #[test]
    fn a_supervisor_whispers_in_a_live_chat_without_holding_it() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        let sam = AgentId::new("sam");
        // Waiting: nobody holds it, and a whisper is still a note.
        let Posted::New(waiting) = chat
            .whisper(sam.clone(), 1, "take this one".into(), Timestamp(150))
            .unwrap()
        else {
            panic!("expected a new note")
        };
        assert!(waiting.kind.is_for_agents_only());
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        // Whispering does not make the supervisor a participant: a
        // message or a holder's note from them is still refused.
        assert_eq!(
            chat.post(Party::Agent(sam.clone()), 2, "hi".into(), Timestamp(210))
                .err(),
            Some(ChatError::NotYourChat(sam.clone()))
        );
        assert_eq!(
            chat.note(sam.clone(), 2, "x".into(), Timestamp(210)).err(),
            Some(ChatError::NotYourChat(sam.clone()))
        );
        let Posted::New(whisper) = chat
            .whisper(sam.clone(), 3, "offer the refund".into(), Timestamp(220))
            .unwrap()
        else {
            panic!("expected a new note")
        };
        let seq = whisper.seq;
        assert!(whisper.kind.is_for_agents_only());
        assert!(whisper.withheld_for_customer().is_some());
        assert_eq!(
            chat.whisper(sam.clone(), 3, "offer the refund".into(), Timestamp(900)),
            Ok(Posted::Repeat {
                seq,
                at: Timestamp(220)
            })
        );
        assert_eq!(
            chat.whisper(sam.clone(), 4, "  ".into(), Timestamp(230)),
            Err(ChatError::EmptyMessage)
        );
        chat.end(Party::Agent(alice), Timestamp(300)).unwrap();
        assert_eq!(
            chat.whisper(sam, 5, "too late".into(), Timestamp(310)),
            Err(ChatError::Ended)
        );
    }

    #[test]
    fn a_reassign_moves_an_active_chat_from_whoever_holds_it() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        let bob = AgentId::new("bob");
        let sam = AgentId::new("sam");
        assert_eq!(
            chat.reassign(sam.clone(), bob.clone(), Timestamp(150))
                .err(),
            Some(ChatError::NotActive),
            "nobody holds a waiting chat"
        );
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        let before = chat.next_seq();
        assert_eq!(
            chat.reassign(sam.clone(), alice.clone(), Timestamp(210))
                .err(),
            Some(ChatError::SameAgent(alice.clone()))
        );
        assert_eq!(
            chat.next_seq(),
            before,
            "a refused reassign records nothing"
        );
        let moved = chat
            .reassign(sam.clone(), bob.clone(), Timestamp(220))
            .unwrap()
            .clone();
        assert_eq!(
            moved.kind,
            ChatEventKind::TransferredToAgent {
                from: alice.clone(),
                to: bob.clone()
            }
        );
        // Who moved it comes just before, for agents only.
        let audit = chat.events().iter().rev().nth(1).unwrap().clone();
        assert_eq!(audit.seq, moved.seq - 1);
        assert_eq!(
            audit.kind,
            ChatEventKind::Reassigned {
                by: sam.clone(),
                from: alice.clone(),
                to: bob.clone()
            }
        );
        assert!(audit.kind.is_for_agents_only());
        assert_eq!(
            audit.withheld_for_customer().map(|shown| shown.kind),
            Some(ChatEventKind::Withheld)
        );
        assert!(
            !moved.kind.is_for_agents_only(),
            "the customer sees the move"
        );
        // The participants are the customer and the new holder only.
        assert_eq!(
            chat.post(
                Party::Agent(alice.clone()),
                1,
                "still here?".into(),
                Timestamp(230)
            )
            .err(),
            Some(ChatError::NotYourChat(alice.clone()))
        );
        assert!(
            chat.post(
                Party::Agent(bob.clone()),
                1,
                "I have it".into(),
                Timestamp(240)
            )
            .is_ok()
        );
        assert!(
            chat.post(Party::Customer, 2, "thanks".into(), Timestamp(250))
                .is_ok()
        );
        // Restored from its events, the chat is the same: the record kept,
        // bob holding it, alice the one a decline would go back to.
        let restored = Chat::restore(chat.events().to_vec()).unwrap();
        assert_eq!(restored.agent(), Some(&bob));
        assert_eq!(restored.transferred_from(), Some(&alice));
        assert!(restored.events().iter().any(|event| event == &audit));
        chat.end(Party::Agent(bob.clone()), Timestamp(300)).unwrap();
        assert_eq!(
            chat.reassign(sam, alice, Timestamp(310)).err(),
            Some(ChatError::Ended)
        );
    }

    #[test]
    fn participants_are_the_holder_and_the_supervisors_who_barged_in() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        let sam = AgentId::new("sam");
        let post = |chat: &mut Chat, who: &AgentId, id: u64| {
            chat.post(Party::Agent(who.clone()), id, "text".into(), Timestamp(300))
                .map(|_| ())
        };
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        assert_eq!(
            post(&mut chat, &sam, 1),
            Err(ChatError::NotYourChat(sam.clone()))
        );
        assert_eq!(
            chat.barge_in(alice.clone(), Timestamp(205)).err(),
            Some(ChatError::SameAgent(alice.clone())),
            "the holder is in the chat already"
        );
        let joined = chat.barge_in(sam.clone(), Timestamp(210)).unwrap().cloned();
        let joined = joined.expect("a new event");
        assert!(!joined.kind.is_for_agents_only(), "the customer sees it");
        assert_eq!(chat.barge_in(sam.clone(), Timestamp(211)), Ok(None));
        assert_eq!(post(&mut chat, &sam, 2), Ok(()));
        assert_eq!(post(&mut chat, &alice, 3), Ok(()));
        // Barging in makes a participant, not the holder: ending or
        // transferring the chat stays the holder's.
        assert_eq!(
            chat.end(Party::Agent(sam.clone()), Timestamp(220)).err(),
            Some(ChatError::NotYourChat(sam.clone()))
        );
        // A restored chat knows who is in it.
        let mut restored = Chat::restore(chat.events().iter().cloned().collect()).unwrap();
        assert_eq!(restored.supervisors().collect::<Vec<_>>(), [&sam]);
        assert!(
            restored
                .leave_barge_in(sam.clone(), Timestamp(230))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            restored.leave_barge_in(sam.clone(), Timestamp(231)),
            Ok(None)
        );
        assert_eq!(
            post(&mut restored, &sam, 4),
            Err(ChatError::NotYourChat(sam.clone()))
        );
        // The end takes every supervisor still in the chat out first.
        let seq = chat.events().len() as u64;
        chat.end(Party::Agent(alice), Timestamp(400)).unwrap();
        let tail: Vec<_> = chat.events_after(seq).map(|e| e.kind.clone()).collect();
        assert!(matches!(
            tail.as_slice(),
            [ChatEventKind::SupervisorLeft { supervisor }, ChatEventKind::Ended { .. }]
                if *supervisor == sam
        ));
        assert_eq!(chat.supervisors().count(), 0);
        assert_eq!(
            chat.barge_in(sam, Timestamp(410)).err(),
            Some(ChatError::Ended)
        );
    }

    #[test]
    fn a_ticket_never_carries_a_note() {
        let mut chat = started();
        let alice = AgentId::new("alice");
        chat.assign(alice.clone(), Timestamp(200)).unwrap();
        chat.note(alice.clone(), 1, "secret".into(), Timestamp(210))
            .unwrap();
        chat.post(Party::Agent(alice), 2, "hello".into(), Timestamp(220))
            .unwrap();
        let (kept, left_out) = crate::core::ticket::ticket_transcript(chat.events());
        assert_eq!(left_out, 0);
        assert_eq!(kept.len(), chat.events().len() - 1);
        assert!(kept.iter().all(|event| !event.kind.is_for_agents_only()));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Assign(u8),
        Post(u8, bool),
        Note(u8),
        Transfer(u8, u8),
        Requeue(u8),
        Read(u8),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (0..3u8).prop_map(Step::Assign),
            (0..3u8, any::<bool>()).prop_map(|(a, c)| Step::Post(a, c)),
            (0..3u8).prop_map(Step::Note),
            (0..3u8, 0..3u8).prop_map(|(a, b)| Step::Transfer(a, b)),
            (0..3u8).prop_map(Step::Requeue),
            (0..3u8).prop_map(Step::Read),
        ]
    }

    proptest::proptest! {
        /// Whatever authors post, edit and delete, in any order: the log
        /// keeps every message as posted, and the shown transcript
        /// ([`crate::core::apply_edits`]) has each message's latest text,
        /// or `Deleted` for a deleted one, never an older text.
        #[test]
        fn edits_keep_the_log_and_show_the_latest(
            steps in proptest::collection::vec((0u8..3, 0u64..12, proptest::bool::ANY), 0..60)
        ) {
            let mut chat = started();
            let alice = AgentId::new("alice");
            chat.assign(alice.clone(), Timestamp(100)).unwrap();
            let mut posted: BTreeMap<u64, String> = BTreeMap::new();
            let mut latest: BTreeMap<u64, Option<String>> = BTreeMap::new();
            for (n, (op, pick, agent)) in steps.into_iter().enumerate() {
                let by = if agent { Party::Agent(alice.clone()) } else { Party::Customer };
                let now = Timestamp(1_000 + n as u64);
                let text = format!("text {n}");
                match op {
                    0 => {
                        if let Ok(Posted::New(event)) = chat.post(by, n as u64, text.clone(), now) {
                            posted.insert(event.seq, text.clone());
                            latest.insert(event.seq, Some(text));
                        }
                    }
                    1 => {
                        let seq = 4 + pick;
                        if chat.edit(by, seq, text.clone(), WINDOW, now).is_ok() {
                            proptest::prop_assert_eq!(latest.get(&seq).cloned().flatten().is_some(), true);
                            latest.insert(seq, Some(text));
                        }
                    }
                    _ => {
                        let seq = 4 + pick;
                        if chat.delete(by, seq, WINDOW, now).is_ok() {
                            proptest::prop_assert!(latest.get(&seq).cloned().flatten().is_some());
                            latest.insert(seq, None);
                        }
                    }
                }
            }
            for (seq, text) in &posted {
                let logged = &chat.events().get(*seq as usize - 1).unwrap().kind;
                let is_original = matches!(logged, ChatEventKind::Message { text: t, .. } if t == text);
                proptest::prop_assert!(is_original);
            }
            let shown = crate::core::apply_edits(chat.events().iter());
            for (seq, now) in &latest {
                let at = shown.iter().find(|event| event.seq == *seq).map(|event| &event.kind);
                match now {
                    Some(text) => {
                        let latest_text = matches!(at, Some(ChatEventKind::Message { text: t, .. }) if t == text);
                        proptest::prop_assert!(latest_text, "{:?} at {}", at, seq);
                    }
                    None => proptest::prop_assert_eq!(at, Some(&ChatEventKind::Deleted { seq: *seq })),
                }
            }
        }
    }

    proptest::proptest! {
        /// Whatever happens in a chat, what the customer may be sent (each
        /// event, or the placeholder in its place) holds no note, and its
        /// seqs stay 1, 2, 3, ... so the customer's SDK never waits for a
        /// gap; agents see every note, in order.
        #[test]
        fn the_customer_never_sees_a_note(steps in proptest::collection::vec(step(), 0..60)) {
            let agent = |n: u8| AgentId::new(format!("agent{n}"));
            let mut chat = started();
            let mut client = 10;
            let mut notes = Vec::new();
            for (n, step) in steps.into_iter().enumerate() {
                let at = Timestamp(1_000 + n as u64);
                client += 1;
                match step {
                    Step::Assign(a) => { let _ = chat.assign(agent(a), at); }
                    Step::Post(a, customer) => {
                        let from = if customer { Party::Customer } else { Party::Agent(agent(a)) };
                        let _ = chat.post(from, client, format!("message {n}"), at);
                    }
                    Step::Note(a) => {
                        let text = format!("note-{n}-private");
                        if chat.note(agent(a), client, text.clone(), at).is_ok() {
                            notes.push(text);
                        }
                    }
                    Step::Transfer(a, b) => { let _ = chat.transfer_to_agent(&agent(a), agent(b), at); }
                    Step::Requeue(a) => {
                        let _ = chat.requeue(Some(&agent(a)), ChannelId::new("support"), at);
                    }
                    Step::Read(a) => {
                        let last = chat.events().len() as u64;
                        let _ = chat.mark_read(Party::Agent(agent(a)), last, at);
                    }
                }
            }
            let customer_sees: Vec<ChatEvent> = chat
                .events()
                .iter()
                .map(|event| event.withheld_for_customer().unwrap_or_else(|| event.clone()))
                .collect();
            let shown = format!("{customer_sees:?}");
            for note in &notes {
                proptest::prop_assert!(!shown.contains(note.as_str()), "{note} reached the customer");
            }
            for (n, event) in customer_sees.iter().enumerate() {
                proptest::prop_assert_eq!(event.seq, n as u64 + 1);
                proptest::prop_assert!(!event.kind.is_for_agents_only());
            }
            let agents_see: Vec<&str> = chat
                .events()
                .iter()
                .filter_map(|event| match &event.kind {
                    ChatEventKind::Note { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            proptest::prop_assert_eq!(agents_see, notes.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
