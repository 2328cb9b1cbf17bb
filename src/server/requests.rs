//! Requests of a connection, turned into hub calls.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use crate::actors::hub::VerifiedIdentity;
use crate::actors::{Caller, ChatStart, ConnId, EventSink, Hub, HubError, MonitorWatch, Receipt};
use crate::core::{
    AgentId, ChannelId, ChatError, ChatId, Identity, Limit, Priority, QueueError, ReadMark,
    TagError,
};
use crate::protocol::{ErrorCode, ErrorFrame, Reply, Request, RequestBody, Response, Sender};
use crate::server::connection::here_or_refusal;
use crate::server::partitions::{Partitions, Route};

/// Who is on the other end of a connection, once the hello is accepted.
#[derive(Clone, Debug)]
pub(crate) enum Role {
    Customer,
    Agent(AgentId),
}

/// The most chats a customer connection remembers as its own; live ones
/// are far fewer (`chats_per_connection`), so only long-ended ones are
/// forgotten.
pub(crate) const MAX_OWN_CHATS: usize = 256;

/// The chats a customer connection started or resumed, newest kept.
#[derive(Debug, Default)]
pub(crate) struct OwnChats {
    chats: HashSet<ChatId>,
    order: std::collections::VecDeque<ChatId>,
}

impl OwnChats {
    pub(crate) fn insert(&mut self, chat: ChatId) {
        if self.chats.insert(chat) {
            self.order.push_back(chat);
        }
        while self.order.len() > MAX_OWN_CHATS {
            if let Some(oldest) = self.order.pop_front() {
                self.chats.remove(&oldest);
            }
        }
    }

    pub(crate) fn contains(&self, chat: &ChatId) -> bool {
        self.chats.contains(chat)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chats.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ChatId> {
        self.order.iter()
    }
}

/// A request being answered: the response, the chat it started (a
/// customer's connection remembers its chats), and the monitor watch it
/// began (the connection forwards its pictures).
pub(crate) struct Done {
    pub response: Response,
    pub started: Option<ChatId>,
    pub watching: Option<MonitorWatch>,
}

pub(crate) type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// A connection's signed-in side.
pub(crate) struct Session {
    /// The hub serving this connection: the hub alone, or in a cluster the
    /// partition hub of the agent's channels or the customer's chats (a
    /// customer's connection starts at the lobby and moves to the first
    /// partition it asks for).
    pub hub: Hub,
    /// Where everything is served.
    pub partitions: Partitions,
    /// Set when `hub` changed, until the connection has taken note.
    pub rebound: bool,
    pub conn: ConnId,
    /// The address the connection came from.
    pub ip: std::net::IpAddr,
    pub role: Role,
    pub sink: EventSink,
    /// Whether the client is a browser (over WebTransport).
    pub web: bool,
    /// Chats a customer started or resumed on this connection (the latest
    /// [`MAX_OWN_CHATS`]).
    pub started: OwnChats,
    /// Identities the customer proved, by channel.
    pub identities: HashMap<ChannelId, VerifiedIdentity>,
}

fn answer<T: 'static, F>(id: u64, work: F, reply: fn(T) -> Reply) -> Pending
where
    F: Future<Output = Result<T, HubError>> + Send + 'static,
{
    Box::pin(async move {
        Done {
            response: Response {
                id,
                result: work.await.map(reply).map_err(error_frame),
            },
            started: None,
            watching: None,
        }
    })
}

fn refuse(id: u64, error: ErrorFrame) -> Pending {
    Box::pin(std::future::ready(Done {
        response: Response {
            id,
            result: Err(error),
        },
        started: None,
        watching: None,
    }))
}

impl Session {
    pub(crate) fn caller(&self) -> Caller {
        match &self.role {
            Role::Customer => Caller::Customer(self.conn),
            Role::Agent(agent) => Caller::Agent(agent.clone()),
        }
    }

    /// In a cluster, brings a customer's request where it is served: a
    /// connection with nothing of its own yet moves to the partition hub
    /// of the channel or chat asked for, here or (with `Elsewhere`) on
    /// another hub; one that has chats stays with their partition.
    fn route_customer(&mut self, body: &RequestBody) -> Result<(), ErrorFrame> {
        if !self.partitions.clustered() {
            return Ok(());
        }
        let route = match body {
            RequestBody::Identify { channel, .. }
            | RequestBody::IdentifyClaiming { channel, .. }
            | RequestBody::StartChat { channel, .. }
            | RequestBody::StartChatNeeding { channel, .. }
            | RequestBody::SubmitOfflineForm { channel, .. } => self.partitions.channel(channel),
            RequestBody::ReturnToChat { chat, .. } => self.partitions.chat(*chat),
            _ => return Ok(()),
        };
        let free = self.started.is_empty() && self.identities.is_empty();
        match route {
            Route::Here(hub) if hub.same(&self.hub) => Ok(()),
            Route::Here(hub) if free => {
                self.hub = hub;
                self.rebound = true;
                Ok(())
            }
            route @ Route::Nowhere(_) => here_or_refusal(route, self.web).map(drop),
            route @ Route::There(_) if free => here_or_refusal(route, self.web).map(drop),
            Route::Here(_) | Route::There(_) => Err(ErrorFrame::new(
                ErrorCode::InvalidRequest,
                "this connection serves chats of another partition of the cluster: open \
                 another connection for this channel",
            )),
        }
    }

    /// Checks an identity the customer gives for `channel` and, if it
    /// verifies, keeps it for the chats this connection starts there from
    /// now on (before any later request is dispatched).
    fn identify(
        &mut self,
        id: u64,
        channel: ChannelId,
        identity: Identity,
        claim: Option<Priority>,
        signature: &str,
    ) -> Pending {
        let result = match self
            .hub
            .verify_identity(&channel, identity, claim, signature)
        {
            Ok(identity) => {
                self.identities.insert(channel, identity);
                Ok(Reply::Done)
            }
            Err(err) => Err(error_frame(err)),
        };
        Box::pin(std::future::ready(Done {
            response: Response { id, result },
            started: None,
            watching: None,
        }))
    }

    /// Starts answering a request. Requests addressed to a chat reach its
    /// actor before this returns, so one connection's requests to a chat
    /// take effect in the order they were sent.
    pub(super) fn dispatch(&mut self, Request { id, body }: Request) -> Pending {
        if matches!(self.role, Role::Customer)
            && let Err(error) = self.route_customer(&body)
        {
            return refuse(id, error);
        }
        if matches!(self.role, Role::Customer) {
            match body {
                RequestBody::Identify {
                    channel,
                    identity,
                    signature,
                } => return self.identify(id, channel, identity, None, &signature),
                RequestBody::IdentifyClaiming {
                    channel,
                    identity,
                    priority,
                    signature,
                } => return self.identify(id, channel, identity, Some(priority), &signature),
                _ => {}
            }
        }
        let hub = &self.hub;
        // Any request is activity: it keeps a Present agent from turning
        // Away (an Away agent stays Away until they set their status).
        if let Role::Agent(agent) = &self.role {
            hub.touch(agent);
        }
        let allowed = matches!(
            (&self.role, body.sender()),
            (_, Sender::Either)
                | (Role::Customer, Sender::Customer)
                | (Role::Agent(_), Sender::Agent)
        );
        if !allowed {
            let error = ErrorFrame::new(
                ErrorCode::NotAllowed,
                format!(
                    "{} may not make a {} request",
                    role_name(&self.role),
                    body.name()
                ),
            );
            return refuse(id, error);
        }
        // A customer acts only on chats this connection started or resumed;
        // any other id (someone else's chat, or none at all) gets the same
        // answer, without the hub looking it up.
        if let (
            Role::Customer,
            RequestBody::Post { chat, .. }
            | RequestBody::Leave { chat }
            | RequestBody::MarkRead { chat, .. }
            | RequestBody::Rate { chat, .. },
        ) = (&self.role, &body)
            && !self.started.contains(chat)
        {
            return refuse(id, error_frame(HubError::NotYourChat(*chat)));
        }
        // A start without skills is one that needs the channel's defaults.
        let body = match body {
            RequestBody::StartChat {
                channel,
                customer,
                client_id,
                text,
                secret,
            } => RequestBody::StartChatNeeding {
                channel,
                customer,
                client_id,
                text,
                secret,
                skills: Vec::new(),
            },
            body => body,
        };
        match (&self.role, body) {
            (
                Role::Customer,
                RequestBody::StartChatNeeding {
                    channel,
                    customer,
                    client_id,
                    text,
                    secret,
                    skills,
                },
            ) => {
                let hub = hub.clone();
                let sink = self.sink.clone();
                let identity = self.identities.get(&channel).cloned();
                Box::pin(async move {
                    let started = hub
                        .start_chat_needing(
                            sink, channel, customer, identity, client_id, text, secret, &skills,
                        )
                        .await;
                    Done {
                        watching: None,
                        started: match &started {
                            Ok(ChatStart::Queued { chat, .. }) => Some(*chat),
                            _ => None,
                        },
                        response: Response {
                            id,
                            result: started
                                .map(|start| match start {
                                    ChatStart::Queued { chat, waiting } => {
                                        Reply::ChatStarted { chat, waiting }
                                    }
                                    ChatStart::Offline(form) => Reply::Offline(form),
                                })
                                .map_err(error_frame),
                        },
                    }
                })
            }
            (
                _,
                RequestBody::Post {
                    chat,
                    client_id,
                    text,
                },
            ) => answer(
                id,
                hub.post(self.caller(), self.conn, chat, client_id, text),
                |Receipt { seq, at }| Reply::Posted { seq, at },
            ),
            (
                Role::Agent(agent),
                RequestBody::AddNote {
                    chat,
                    client_id,
                    text,
                },
            ) => answer(
                id,
                hub.note(agent.clone(), self.conn, chat, client_id, text),
                |Receipt { seq, at }| Reply::Posted { seq, at },
            ),
            (Role::Agent(agent), RequestBody::SetPriority { chat, priority }) => {
                answer(id, hub.set_priority(agent.clone(), chat, priority), |()| {
                    Reply::Done
                })
            }
            (_, RequestBody::MarkRead { chat, up_to }) => answer(
                id,
                hub.mark_read(self.caller(), self.conn, chat, up_to),
                |ReadMark { up_to, seq, at }| Reply::Read { up_to, seq, at },
            ),
            (Role::Customer, RequestBody::Leave { chat })
            | (Role::Agent(_), RequestBody::EndChat { chat }) => {
                answer(id, hub.end_chat(self.caller(), chat), |()| Reply::Done)
            }
            (Role::Agent(agent), RequestBody::SetStatus { status }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.set_status(&agent, status).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::GetNext { channel }) => {
                answer(id, hub.get_next(agent.clone(), channel), Reply::Assigned)
            }
            (Role::Agent(agent), RequestBody::Pick { chat }) => {
                answer(id, hub.pick(agent.clone(), chat), Reply::Assigned)
            }
            (Role::Agent(agent), RequestBody::AcceptOffer { chat }) => {
                answer(id, hub.accept_offer(agent.clone(), chat), Reply::Assigned)
            }
            (Role::Agent(agent), RequestBody::DeclineOffer { chat }) => {
                answer(id, hub.decline_offer(agent.clone(), chat), |()| Reply::Done)
            }
            (Role::Agent(_), RequestBody::PresentAgents { channel }) => answer(
                id,
                std::future::ready(hub.present_agents(&channel)),
                Reply::PresentAgents,
            ),
            (
                Role::Customer,
                RequestBody::SubmitOfflineForm {
                    channel,
                    name,
                    email,
                    message,
                },
            ) => {
                let (hub, ip) = (hub.clone(), self.ip);
                answer(
                    id,
                    async move {
                        hub.submit_offline_form(Some(ip), channel, name, email, message)
                            .await
                    },
                    Reply::TicketCreated,
                )
            }
            (
                Role::Customer,
                RequestBody::Rate {
                    chat,
                    rating,
                    comment,
                },
            ) => {
                let (hub, ip) = (hub.clone(), self.ip);
                answer(
                    id,
                    async move { hub.rate(Some(ip), chat, rating, comment).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::Tickets { before, limit }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.tickets(&agent, before, usize::from(limit)).await },
                    Reply::Tickets,
                )
            }
            (Role::Agent(agent), RequestBody::Ticket { id: ticket }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.ticket(&agent, ticket).await },
                    Reply::Ticket,
                )
            }
            (Role::Agent(agent), RequestBody::TransferToAgent { chat, to }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.transfer_to_agent(agent, chat, to).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::TransferToChannel { chat, channel }) => answer(
                id,
                hub.transfer_to_channel(agent.clone(), chat, channel),
                |()| Reply::Done,
            ),
            (Role::Agent(agent), RequestBody::DeclineTransfer { chat }) => {
                answer(id, hub.decline_transfer(agent.clone(), chat), |()| {
                    Reply::Done
                })
            }
            (
                Role::Agent(agent),
                RequestBody::CreateTicket {
                    chat,
                    subject,
                    note,
                },
            ) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.create_ticket(agent, chat, subject, note).await },
                    Reply::TicketCreated,
                )
            }
            (Role::Customer, RequestBody::ReturnToChat { chat, secret }) => {
                let (hub, sink) = (hub.clone(), self.sink.clone());
                Box::pin(async move {
                    let returned = hub.return_to_chat(sink, chat, secret).await;
                    Done {
                        watching: None,
                        started: returned.is_ok().then_some(chat),
                        response: Response {
                            id,
                            result: returned.map(|()| Reply::Done).map_err(error_frame),
                        },
                    }
                })
            }
            (Role::Agent(agent), RequestBody::Contact { email, name }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.contact(&agent, email, name).await },
                    Reply::Contact,
                )
            }
            (Role::Agent(agent), RequestBody::CreateItem(draft)) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.create_item(&agent, draft).await },
                    Reply::Item,
                )
            }
            (Role::Agent(agent), RequestBody::UpdateItem { id: item, draft }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.update_item(&agent, item, draft).await },
                    Reply::Item,
                )
            }
            (Role::Agent(agent), RequestBody::DeleteItem { id: item }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.delete_item(&agent, item).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::Items { kind }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.items(&agent, kind).await },
                    Reply::Items,
                )
            }
            (
                Role::Agent(agent),
                RequestBody::InsertItem {
                    chat,
                    client_id,
                    item,
                },
            ) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.insert_item(&agent, chat, client_id, item).await },
                    |Receipt { seq, at }| Reply::Posted { seq, at },
                )
            }
            (Role::Agent(agent), RequestBody::RecentSessions { before, limit }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move {
                        hub.recent_sessions(&agent, before, usize::from(limit))
                            .await
                    },
                    Reply::Sessions,
                )
            }
            (Role::Agent(agent), RequestBody::AddTag { chat, tag }) => {
                answer(id, hub.tag(agent.clone(), chat, tag, true), |()| {
                    Reply::Done
                })
            }
            (Role::Agent(agent), RequestBody::RemoveTag { chat, tag }) => {
                answer(id, hub.tag(agent.clone(), chat, tag, false), |()| {
                    Reply::Done
                })
            }
            (_, RequestBody::EditMessage { chat, seq, text }) => answer(
                id,
                hub.change_message(self.caller(), self.conn, chat, seq, Some(text)),
                |Receipt { seq, at }| Reply::Posted { seq, at },
            ),
            (_, RequestBody::DeleteMessage { chat, seq }) => answer(
                id,
                hub.change_message(self.caller(), self.conn, chat, seq, None),
                |Receipt { seq, at }| Reply::Posted { seq, at },
            ),
            (Role::Agent(agent), RequestBody::RecentSessionsTagged { before, limit, tag }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move {
                        hub.recent_sessions_tagged(&agent, before, usize::from(limit), tag)
                            .await
                    },
                    Reply::TaggedSessions,
                )
            }
            (Role::Agent(agent), RequestBody::Transcript { chat, after }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.transcript(&agent, chat, after).await },
                    |(events, more)| Reply::Transcript { events, more },
                )
            }
            (Role::Agent(agent), RequestBody::Monitor { channel }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.monitor(&agent, channel).await },
                    |monitor| Reply::Monitor(Box::new(monitor)),
                )
            }
            (Role::Agent(agent), RequestBody::WatchMonitor { channel }) => {
                let (hub, agent, conn) = (hub.clone(), agent.clone(), self.conn);
                Box::pin(async move {
                    let watched = hub.watch_monitor(&agent, conn, channel).await;
                    let (result, watching) = match watched {
                        Ok(watch) => (Ok(Reply::Done), watch),
                        Err(err) => (Err(error_frame(err)), None),
                    };
                    Done {
                        response: Response { id, result },
                        started: None,
                        watching,
                    }
                })
            }
            (Role::Agent(agent), RequestBody::UnwatchMonitor { channel }) => answer(
                id,
                std::future::ready(hub.unwatch_monitor(agent, self.conn, &channel)),
                |()| Reply::Done,
            ),
            (Role::Agent(by), RequestBody::SetAgentStatus { agent, status }) => {
                let (hub, by) = (hub.clone(), by.clone());
                answer(
                    id,
                    async move { hub.set_agent_status(&by, &agent, status).await },
                    |()| Reply::Done,
                )
            }
            (
                Role::Agent(agent),
                RequestBody::Whisper {
                    chat,
                    client_id,
                    text,
                },
            ) => answer(
                id,
                hub.whisper(agent.clone(), self.conn, chat, client_id, text),
                |Receipt { seq, at }| Reply::Posted { seq, at },
            ),
            (Role::Agent(agent), RequestBody::Follow { chat }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(id, async move { hub.follow(&agent, chat).await }, |()| {
                    Reply::Done
                })
            }
            (Role::Agent(agent), RequestBody::Unfollow { chat }) => {
                answer(id, std::future::ready(hub.unfollow(agent, chat)), |()| {
                    Reply::Done
                })
            }
            (Role::Agent(agent), RequestBody::Reassign { chat, to }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.reassign(&agent, chat, to).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::BargeIn { chat }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(id, async move { hub.barge_in(&agent, chat).await }, |()| {
                    Reply::Done
                })
            }
            (Role::Agent(agent), RequestBody::LeaveChat { chat }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.leave_barge_in(&agent, chat).await },
                    |()| Reply::Done,
                )
            }
            (Role::Agent(agent), RequestBody::ForgetContact { contact }) => {
                let (hub, agent) = (hub.clone(), agent.clone());
                answer(
                    id,
                    async move { hub.forget_contact(&agent, contact).await },
                    Reply::Forgotten,
                )
            }
            (role, body) => refuse(
                id,
                ErrorFrame::new(
                    ErrorCode::NotAllowed,
                    format!("{} may not make a {} request", role_name(role), body.name()),
                ),
            ),
        }
    }
}

/// The connection is over, however its task ended (closed, refused, or a
/// panic): the hub stops sending to it, and an agent's presence grace or a
/// customer's absence starts.
impl Drop for Session {
    fn drop(&mut self) {
        match &self.role {
            Role::Customer => self
                .hub
                .customer_gone(self.conn, self.started.iter().copied()),
            Role::Agent(agent) => {
                self.hub.monitors_gone(self.conn);
                self.hub.detach_agent(agent, self.conn);
            }
        }
    }
}

fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Customer => "a customer",
        Role::Agent(_) => "an agent",
    }
}

/// The wire form of a hub error.
pub(crate) fn error_frame(err: HubError) -> ErrorFrame {
    let code = match &err {
        HubError::UnknownChannel(_) => ErrorCode::UnknownChannel,
        HubError::UnknownChat(_) => ErrorCode::UnknownChat,
        HubError::Chat(ChatError::Ended) => ErrorCode::ChatEnded,
        HubError::Chat(ChatError::NotYourChat(_) | ChatError::NotAParticipant)
        | HubError::NotYourChat(_) => ErrorCode::NotYourChat,
        HubError::Chat(ChatError::AlreadyAnswered) | HubError::ChatAlreadyTaken(_) => {
            ErrorCode::ChatAlreadyTaken
        }
        HubError::Chat(ChatError::EmptyMessage) => ErrorCode::EmptyMessage,
        HubError::Chat(ChatError::MessageTooLong { .. }) => ErrorCode::MessageTooLong,
        HubError::Chat(ChatError::NotTransferredTo(_)) => ErrorCode::NotAllowed,
        HubError::Chat(ChatError::SameAgent(_) | ChatError::NotEnded | ChatError::NotActive) => {
            ErrorCode::InvalidRequest
        }
        HubError::Chat(ChatError::NotReturnable) => ErrorCode::NotReturnable,
        HubError::Chat(ChatError::ReadBeyondEnd { .. }) => ErrorCode::ReadBeyondEnd,
        HubError::Chat(ChatError::Tag(TagError::Invalid(_))) => ErrorCode::InvalidTag,
        HubError::Chat(ChatError::Tag(TagError::TooMany)) => ErrorCode::TooManyTags,
        HubError::Chat(ChatError::NotYourMessage(_)) => ErrorCode::NotYourMessage,
        HubError::Chat(ChatError::EditWindowPassed(_)) => ErrorCode::EditWindowPassed,
        HubError::Chat(ChatError::UnknownMessage(_)) => ErrorCode::UnknownMessage,
        HubError::Chat(ChatError::AlreadyDeleted(_)) => ErrorCode::AlreadyDeleted,
        HubError::Queue(QueueError::Full { .. }) => ErrorCode::QueueFull,
        HubError::Queue(QueueError::AlreadyQueued(_)) => ErrorCode::Internal,
        HubError::QueueEmpty(_) => ErrorCode::QueueEmpty,
        HubError::NotAMember(_) => ErrorCode::NotAllowed,
        HubError::NotOffered(_) => ErrorCode::NotOffered,
        HubError::AtCapacity(_) => ErrorCode::AtCapacity,
        HubError::AgentUnavailable(_) => ErrorCode::AgentUnavailable,
        HubError::UnknownItem => ErrorCode::UnknownItem,
        HubError::NotAllowed(_) => ErrorCode::NotAllowed,
        HubError::FileTooLarge { .. } => ErrorCode::FileTooLarge,
        HubError::UnknownTicket(_) => ErrorCode::UnknownTicket,
        HubError::Unauthorized => ErrorCode::Unauthorized,
        HubError::Invalid(_) => ErrorCode::InvalidRequest,
        HubError::Unavailable(_) => ErrorCode::Unavailable,
        HubError::ContactBusy(_) => ErrorCode::ContactBusy,
        HubError::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
        HubError::Unverified(_) => ErrorCode::Unverified,
        HubError::Limited { limit, .. } => match limit {
            Limit::MessageRate
            | Limit::OfflineForms
            | Limit::ChatStarts
            | Limit::SignIn
            | Limit::FilesInFlight => ErrorCode::RateLimited,
            Limit::FilesQuota | Limit::UploadBytes => ErrorCode::FileTooLarge,
            Limit::ChatsPerConnection
            | Limit::ChatsPerIp
            | Limit::FollowedChats
            | Limit::MonitorsPerConnection => ErrorCode::TooManyChats,
            Limit::ChatLength => ErrorCode::ChatTooLong,
            _ => ErrorCode::InvalidRequest,
        },
    };
    metrics::counter!("chathub_request_errors_total", "code" => format!("{code:?}")).increment(1);
    ErrorFrame::new(code, err.to_string())
}
