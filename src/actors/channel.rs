//! One actor per channel: owns the channel's queue, raises alerts for chats
//! that wait too long, tells the agents who watch it about every change,
//! and, on a push channel, offers each waiting chat to one agent at a time.
//!
//! Push routing: a waiting chat is offered to an eligible agent (a Present
//! member with a free slot and no offer standing from this channel, chosen
//! by [`core::routing`](crate::core::routing)); the agent's slot is
//! reserved for the offer and its claim cell marked offered. The offer
//! ends exactly once, by the claim cell: the agent accepts it (the slot
//! becomes the assignment's), declines it or lets it lapse (the chat is
//! offered to the next agent), or a pick, get-next or the customer leaving
//! claims the chat. Every offer this actor makes sits in its `offers` map
//! until it ends, and removing it from there is the one place its slot is
//! released (but for an accepted offer, whose slot the chat keeps).
//!
//! Skills: a chat that needs skills goes (by get-next or an offer) only to
//! an agent who has them all until it has waited the channel's
//! `skill_fallback_after`; then to anyone. A timer set at enqueue
//! dispatches again when a waiting chat's fallback comes. A pick is an
//! agent's own choice and ignores skills.
//!
//! First-response target (`first_response_within`, see
//! [`core::sla`](crate::core::sla)): a chat's first wait sets one more
//! timer, carrying the wait's generation. When it fires and the chat still
//! waits in that wait (held, like alerts, until the channel opens), the
//! claim cell's first-response flag is settled (so the breach counts once
//! per chat), `chathub_sla_breaches_total{channel}` counts it, the
//! unanswered alert is raised unless it stands already, and a standing
//! offer lapses as a timed-out one does, so the chat is offered to an agent
//! who has not passed it up.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};

use crate::actors::HubError;
use crate::actors::agent::AgentMsg;
use crate::actors::chat::ChatMsg;
use crate::actors::hub::{Hub, OfferRecord};
use crate::actors::sink::{ConnId, Outbound};
use crate::core::event::SNAPSHOT_ROWS;
use crate::core::routing::{self, Candidate};
use crate::core::sla::{self, Held};
use crate::core::{
    AgentId, AgentPresence, Alert, AnswerRate, Assignment, ChannelSettings, ChatError, ChatId,
    ClaimCell, Claimer, Match, Offer, OfferEnd, OfferId, OfferLost, Places, Priority, Queue,
    QueueChange, QueueRow, QueueUpdate, Routing, SkillSet, Status, Timestamp,
};

/// A chat waiting in the queue.
pub struct Waiting {
    /// Its incoming-list row.
    pub row: QueueRow,
    /// Shared with the chat actor and pickers; whoever claims it owns the chat.
    pub claim: Arc<ClaimCell>,
    /// The chat's actor.
    pub chat: ActorRef<ChatMsg>,
    /// The wait (claim generation) this entry is for; its alert timer
    /// carries it.
    pub generation: u64,
    /// The skills an agent needs to take it before the skill fallback.
    pub skills: SkillSet,
}

/// Where a chat joins the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// A new chat: at the back of its priority, if the queue has room.
    New,
    /// A chat accepted before (a restart, a transfer, a return): at the
    /// back, even beyond the limit.
    Accepted,
    /// A chat whose agent is gone: at the front of its priority, even
    /// beyond the limit.
    Front,
}

/// Messages to a [`ChannelActor`].
pub enum ChannelMsg {
    /// Queue a new chat. Answers how many chats wait, this one included.
    Enqueue {
        /// The chat.
        waiting: Waiting,
        /// Where it joins the queue.
        admit: Admit,
        /// The queue length, or why it was refused.
        reply: RpcReplyPort<Result<u32, HubError>>,
    },
    /// Give the chat that waited longest to `agent`. The reply is passed on
    /// to the chat's actor, which answers with the assignment.
    TakeNext {
        /// Who takes it.
        agent: AgentId,
        /// The assignment, or `QueueEmpty`.
        reply: RpcReplyPort<Result<Assignment, HubError>>,
    },
    /// Drop a chat that was claimed elsewhere (customer left, or picked),
    /// clearing its alert if one stands.
    Withdraw(ChatId),
    /// Fails the actor, to exercise supervision.
    #[cfg(test)]
    Crash,
    /// A chat's alert timer fired.
    AlertDue {
        /// The chat.
        chat: ChatId,
        /// The wait the timer was set for.
        generation: u64,
    },
    /// Start telling `agent` about changes, and send `conn` a snapshot.
    Watch {
        /// The agent.
        agent: AgentId,
        /// Its actor, which fans updates out to its connections.
        agent_actor: ActorRef<AgentMsg>,
        /// The connection that needs a snapshot first.
        conn: ConnId,
    },
    /// Stop telling `agent` about changes (it no longer works the
    /// channel): its connections get an empty list, and a clear for every
    /// alert that stands.
    Unwatch {
        /// The agent.
        agent: AgentId,
    },
    /// The channel's settings changed (a configuration reload): chats
    /// enqueued from now on follow them.
    Reconfigure(Arc<ChannelSettings>),
    /// Whether no chat waits (a removed channel is gone once drained).
    IsEmpty(RpcReplyPort<bool>),
    /// The queue as a watching agent's first update shows it: the count
    /// of waiting chats and the first rows (for a supervisor's monitor).
    Snapshot(RpcReplyPort<QueueUpdate>),
    /// Time to tell waiting customers whose place changed where they stand.
    Places,
    /// A waiting chat's priority changed (its event is durable): it takes
    /// its new place in the queue.
    SetPriority {
        /// The chat.
        chat: ChatId,
        /// Its priority now.
        priority: Priority,
    },
    /// Hands the actor its hub (push routing reads agents' presence and
    /// tells their actors of offers).
    Init(Hub),
    /// Something that decides who may get an offer changed (a slot freed,
    /// an agent's status or channels): offers to agents who may no longer
    /// have them are withdrawn, and waiting chats offered to those who may.
    Dispatch,
    /// `agent` accepts the chat offered to them. Answers the chat's actor,
    /// to be asked for the assignment with the offer's slot.
    Accept {
        /// Who accepts.
        agent: AgentId,
        /// The chat.
        chat: ChatId,
        /// The chat's actor, or why the offer cannot be accepted.
        reply: RpcReplyPort<Result<ActorRef<ChatMsg>, HubError>>,
    },
    /// `agent` declines the chat offered to them.
    Decline {
        /// Who declines.
        agent: AgentId,
        /// The chat.
        chat: ChatId,
        /// Done, or why there is no offer to decline.
        reply: RpcReplyPort<Result<(), HubError>>,
    },
    /// An offer's time ran out.
    OfferDue {
        /// The chat.
        chat: ChatId,
        /// The offer the timer was set for.
        offer: OfferId,
    },
    /// A chat's first-response target is reached.
    SlaDue {
        /// The chat.
        chat: ChatId,
        /// The wait the timer was set for.
        generation: u64,
    },
    /// Send the queue updates made since the last flush.
    FlushUpdates,
}

/// See the module docs.
pub struct ChannelActor;

/// A channel actor's state.
pub struct ChannelState {
    settings: ChannelSettings,
    queue: Queue<Waiting>,
    version: u64,
    watchers: HashMap<AgentId, ActorRef<AgentMsg>>,
    /// Alerts raised and not yet cleared.
    alerts: HashMap<ChatId, Arc<Alert>>,
    hub: Option<Hub>,
    /// Offers standing, by chat; see the module docs.
    offers: HashMap<ChatId, Standing>,
    /// The chat each agent with a standing offer from this channel has.
    offered: HashMap<AgentId, ChatId>,
    /// Per waiting chat, the agents who declined it or let it lapse in
    /// this wait.
    passed: HashMap<ChatId, Vec<AgentId>>,
    /// The agent offered a chat last (round robin goes on after them).
    last_offered: Option<AgentId>,
    /// What each waiting chat's customer was last told of its place.
    places: Places,
    /// When the channel answered its recent chats, for wait estimates.
    answers: AnswerRate,
    /// The queue changed since places were last told.
    places_dirty: bool,
    /// A `Places` message is on its way.
    places_due: bool,
    /// This actor, to send itself `FlushUpdates`.
    me: ActorRef<ChannelMsg>,
    /// Queue updates not yet sent to the watchers: the changes of every
    /// message in the mailbox ahead of the `FlushUpdates` that sends them
    /// go out as one message per watcher.
    pending: Vec<Arc<QueueUpdate>>,
    /// How many of `pending` went early to an agent that was sent
    /// something else (an offer, its end) before the flush.
    sent_early: HashMap<AgentId, usize>,
}

/// How many waiting chats a dispatch may pass over because no remaining
/// agent qualifies for them (skills), beyond one per agent it could offer
/// to: chats further back wait for those ahead to leave or to reach their
/// skill fallback.
const DISPATCH_SKIP: usize = 64;

/// Places are told at most this often per channel.
const PLACES_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// An offer standing: to whom, which, and the slot it holds.
struct Standing {
    agent: AgentId,
    offer: OfferId,
    claim: Arc<ClaimCell>,
    /// The agent's presence, whose slot the offer holds.
    presence: Arc<AgentPresence>,
    /// The offer's timeout, stopped when the offer ends otherwise (so
    /// declines and re-offers never pile up sleeping timers).
    timer: Option<ractor::concurrency::JoinHandle<Result<(), MessagingErr<ChannelMsg>>>>,
}

impl Standing {
    fn stop_timer(&self) {
        if let Some(timer) = &self.timer {
            timer.abort();
        }
    }
}

impl ChannelState {
    /// Builds the next update, to be sent to every watcher with the others
    /// made before the next `FlushUpdates`.
    fn broadcast(&mut self, change: QueueChange) {
        self.places_dirty = true;
        let update = Arc::new(self.update(change));
        if self.pending.is_empty() {
            let _ = self.me.cast(ChannelMsg::FlushUpdates);
        }
        self.pending.push(update);
    }

    /// Sends the pending queue updates to every watcher, one message each
    /// (less what went to it early). Called before anything else goes to
    /// every watcher, so each agent gets this channel's updates, offers and
    /// alerts in the order they were made.
    fn flush_updates(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let updates: Arc<[Arc<QueueUpdate>]> = std::mem::take(&mut self.pending).into();
        let early = std::mem::take(&mut self.sent_early);
        metrics::gauge!("chathub_chats_waiting", "channel" => self.settings.id.to_string())
            .set(self.queue.len() as f64);
        for (agent, actor) in &self.watchers {
            match early.get(agent) {
                None => {
                    let _ = actor.cast(AgentMsg::DeliverQueue(updates.clone()));
                }
                Some(&sent) if sent < updates.len() => {
                    let _ = actor.cast(AgentMsg::DeliverQueue(updates[sent..].into()));
                }
                Some(_) => {}
            }
        }
    }

    /// Sends `agent` the pending queue updates it has not had, ahead of
    /// something meant for it alone; the rest of the watchers get them at
    /// the next flush.
    fn flush_to(&mut self, agent: &AgentId) {
        let Some(actor) = self.watchers.get(agent) else {
            return;
        };
        let sent = self.sent_early.get(agent).copied().unwrap_or(0);
        if sent < self.pending.len() {
            let _ = actor.cast(AgentMsg::DeliverQueue(self.pending[sent..].into()));
            self.sent_early.insert(agent.clone(), self.pending.len());
        }
    }

    /// A chat left the queue: tell the watchers, and clear its alert.
    fn left(&mut self, chat: ChatId) {
        self.broadcast(QueueChange::Removed(chat));
        self.clear_alert(chat);
    }

    fn clear_alert(&mut self, chat: ChatId) {
        if self.alerts.remove(&chat).is_some() {
            self.flush_updates();
            metrics::counter!("chathub_alerts_cleared_total", "channel" => self.settings.id.to_string())
                .increment(1);
            for agent in self.watchers.values() {
                let _ = agent.cast(AgentMsg::AlertCleared {
                    channel: self.settings.id.clone(),
                    chat,
                });
            }
        }
    }

    /// Raises the alert of `chat` if it still waits in wait `generation`.
    fn alert_due(&mut self, chat: ChatId, generation: u64) {
        let Some(waiting) = self.queue.get(chat) else {
            return;
        };
        if waiting.generation != generation || !waiting.claim.raise_alert(generation) {
            return;
        }
        let alert = Arc::new(Alert {
            row: waiting.row.clone(),
            raised: Timestamp::now(),
        });
        metrics::counter!("chathub_alerts_raised_total", "channel" => self.settings.id.to_string())
            .increment(1);
        self.alerts.insert(chat, alert.clone());
        self.flush_updates();
        for agent in self.watchers.values() {
            let _ = agent.cast(AgentMsg::Alert(alert.clone()));
        }
    }

    /// Sets the first-response timer of a chat that starts (or resumes,
    /// after a restart) its first wait, if the channel has a target.
    fn arm_sla(&self, myself: &ActorRef<ChannelMsg>, chat: ChatId) {
        let Some(waiting) = self.queue.get(chat) else {
            return;
        };
        let within = self.settings.first_response_within;
        let settled = waiting.claim.first_response_settled();
        if let (Some(limit), true) = (within, sla::applies(within, waiting.generation, settled)) {
            let due = sla::due_in(limit, waiting.row.since, Timestamp::now());
            let generation = waiting.generation;
            myself.send_after(due, move || ChannelMsg::SlaDue { chat, generation });
        }
    }

    /// A chat's first-response timer fired: if the chat still waits
    /// unanswered in wait `generation`, it breaches (once per chat).
    fn sla_due(&mut self, myself: &ActorRef<ChannelMsg>, chat: ChatId, generation: u64) {
        let still_waiting = self.queue.get(chat).is_some_and(|waiting| {
            waiting.generation == generation
                && waiting.claim.holder().is_none()
                && !waiting.claim.first_response_settled()
        });
        if !still_waiting {
            return;
        }
        // The target may have been lengthened (or dropped) by a reload
        // since the timer was set.
        let Some(within) = self.settings.first_response_within else {
            return;
        };
        let now = Timestamp::now();
        let since = self
            .queue
            .get(chat)
            .map_or(now, |waiting| waiting.row.since);
        let early = sla::due_in(within, since, now);
        if !early.is_zero() {
            myself.send_after(early, move || ChannelMsg::SlaDue { chat, generation });
            return;
        }
        match sla::held(self.settings.hours.as_deref(), now) {
            Held::Now => {}
            Held::Until(wait) => {
                myself.send_after(wait, move || ChannelMsg::SlaDue { chat, generation });
                return;
            }
            Held::Closed => return,
        }
        let Some(waiting) = self.queue.get(chat) else {
            return;
        };
        if !waiting.claim.settle_first_response() {
            return;
        }
        metrics::counter!("chathub_sla_breaches_total", "channel" => self.settings.id.to_string())
            .increment(1);
        // The unanswered alert, unless it stands already.
        self.alert_due(chat, generation);
        // The agent it is offered to has not answered in time: the offer
        // lapses as a timed-out one does, and the chat goes to someone else.
        if self.lapse(None, chat, None, OfferEnd::Expired) {
            self.dispatch(myself);
        }
    }

    /// Sets a new alert timer for every waiting chat not yet alerted, after
    /// a change of `alert_after` or of the business hours: a timer already
    /// set may be due much later (held for an opening that moved). A timer
    /// that fires twice raises the alert once.
    fn rearm_alerts(&self, myself: &ActorRef<ChannelMsg>) {
        let now = Timestamp::now();
        for (chat, since, waiting) in self.queue.iter() {
            if waiting.claim.is_alerted() {
                continue;
            }
            let due = self.settings.alert_after.saturating_sub(now.since(since));
            let generation = waiting.generation;
            myself.send_after(due, move || ChannelMsg::AlertDue { chat, generation });
        }
    }

    /// Sets a new first-response timer for every waiting chat it applies
    /// to, after a change of the target or of the business hours. A timer
    /// that fires twice breaches once.
    fn rearm_sla(&self, myself: &ActorRef<ChannelMsg>) {
        let chats: Vec<ChatId> = self.queue.iter().map(|(chat, _, _)| chat).collect();
        for chat in chats {
            self.arm_sla(myself, chat);
        }
    }

    fn update(&mut self, change: QueueChange) -> QueueUpdate {
        self.version += 1;
        QueueUpdate {
            channel: self.settings.id.clone(),
            version: self.version,
            waiting: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            change,
        }
    }

    /// Ends the standing offer of `chat`, whose claim cell no longer has
    /// it: the entry goes, its slot is freed and the agent told. The one
    /// place an offered slot is released.
    fn end_offer(&mut self, chat: ChatId, reason: OfferEnd) {
        let Some(standing) = self.offers.remove(&chat) else {
            return;
        };
        standing.stop_timer();
        if let Some(hub) = &self.hub {
            hub.forget_offer(chat, self.settings.id.clone(), standing.offer);
        }
        if self.offered.get(&standing.agent) == Some(&chat) {
            self.offered.remove(&standing.agent);
        }
        standing.presence.capacity.release();
        self.count_offer(reason.name());
        if matches!(reason, OfferEnd::Declined | OfferEnd::Expired) {
            self.passed
                .entry(chat)
                .or_default()
                .push(standing.agent.clone());
        }
        self.flush_to(&standing.agent);
        if let Some(hub) = &self.hub {
            if let Some(actor) = hub.agent_actor_ref(&standing.agent) {
                let _ = actor.cast(AgentMsg::OfferOver {
                    channel: self.settings.id.clone(),
                    chat,
                    reason,
                });
            }
            // The freed slot may make the agent eligible in their other
            // channels; this one dispatches on its own.
            hub.poke_channels_except(&standing.agent, &self.settings.id);
        }
    }

    /// Ends the offer entry of `chat`, if there is one, lapsing the offer
    /// in its claim cell if it still stands there. The agent is told
    /// `Taken` or `Left` if a claim ended it, else `reason`.
    fn withdraw_offer(&mut self, chat: ChatId, reason: OfferEnd) {
        if let Some(standing) = self.offers.get(&chat) {
            standing.claim.lapse(standing.offer);
            let reason = match standing.claim.holder() {
                Some(Claimer::Agent) => OfferEnd::Taken,
                Some(Claimer::Abandon) => OfferEnd::Left,
                None => reason,
            };
            self.end_offer(chat, reason);
        }
    }

    /// Withdraws offers from agents who may no longer have them: not
    /// Present, or not members of the channel any more.
    fn check_offers(&mut self) {
        let stale: Vec<ChatId> = self
            .offers
            .iter()
            .filter(|(_, standing)| {
                standing.presence.status() != Status::Present
                    || !standing.presence.works(&self.settings.id)
            })
            .map(|(&chat, _)| chat)
            .collect();
        for chat in stale {
            self.withdraw_offer(chat, OfferEnd::Withdrawn);
        }
    }

    /// Offers waiting chats to eligible agents, from the head of the queue,
    /// skipping chats under offer, until no agent is eligible.
    fn dispatch(&mut self, myself: &ActorRef<ChannelMsg>) {
        if self.settings.routing != Routing::Push || self.queue.len() <= self.offers.len() {
            return;
        }
        let Some(hub) = self.hub.clone() else {
            return;
        };
        let mut candidates: Vec<(Candidate, Arc<AgentPresence>)> = hub
            .presence()
            .present_members(&self.settings.id)
            .into_iter()
            .filter(|(agent, presence)| {
                !self.offered.contains_key(agent)
                    && presence.capacity.used() < presence.capacity.max()
            })
            .map(|(agent, presence)| {
                let candidate = Candidate {
                    agent,
                    held: presence.capacity.used(),
                    last_assigned: presence.last_assigned(),
                };
                (candidate, presence)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        // Visits at most the standing offers plus one chat per candidate,
        // and `DISPATCH_SKIP` chats nobody left qualifies for.
        let heads: Vec<ChatId> = self
            .queue
            .iter()
            .map(|(chat, _, _)| chat)
            .filter(|chat| !self.offers.contains_key(chat))
            .take(candidates.len() + DISPATCH_SKIP)
            .collect();
        for chat in heads {
            if candidates.is_empty() {
                break;
            }
            self.offer_chat(myself, &hub, chat, &mut candidates);
        }
    }

    /// Offers `chat` to one of `candidates` it may go to (by skills), who
    /// is then no longer one.
    fn offer_chat(
        &mut self,
        myself: &ActorRef<ChannelMsg>,
        hub: &Hub,
        chat: ChatId,
        candidates: &mut Vec<(Candidate, Arc<AgentPresence>)>,
    ) {
        let Some(waiting) = self.queue.get(chat) else {
            return;
        };
        let (claim, generation, row) = (
            waiting.claim.clone(),
            waiting.generation,
            waiting.row.clone(),
        );
        let needed = waiting.skills.clone();
        let anyone = needed.is_empty()
            || Timestamp::now().since(row.since) >= self.settings.skill_fallback_after;
        loop {
            let allowed: Vec<usize> = (0..candidates.len())
                .filter(|&at| anyone || candidates[at].1.skills().covers(&needed))
                .collect();
            let plain: Vec<Candidate> =
                allowed.iter().map(|&at| candidates[at].0.clone()).collect();
            let passed = self.passed.get(&chat).map(Vec::as_slice).unwrap_or(&[]);
            let Some(choice) = routing::choose(
                self.settings.policy,
                &plain,
                self.last_offered.as_ref(),
                passed,
            ) else {
                return;
            };
            let (candidate, presence) = candidates.remove(allowed[choice.index]);
            if choice.new_round {
                self.passed.remove(&chat);
            }
            // Its slots may have gone to a pick or get-next since.
            if !presence.capacity.try_reserve() {
                if candidates.is_empty() {
                    return;
                }
                continue;
            }
            let Ok(offer) = claim.offer(generation) else {
                // Claimed meanwhile; its Withdraw follows. The slot was
                // never offered, so it goes straight back.
                presence.capacity.release();
                candidates.push((candidate, presence));
                candidates.sort_by(|a, b| a.0.agent.cmp(&b.0.agent));
                return;
            };
            let agent = candidate.agent;
            metrics::histogram!(
                "chathub_offer_load",
                "channel" => self.settings.id.to_string(),
                "policy" => self.settings.policy.name()
            )
            .record(candidate.held as f64);
            self.count_offer("made");
            self.offers.insert(
                chat,
                Standing {
                    agent: agent.clone(),
                    offer,
                    claim,
                    presence,
                    timer: None,
                },
            );
            hub.note_offer(
                chat,
                OfferRecord {
                    channel: self.settings.id.clone(),
                    agent: agent.clone(),
                    offer,
                },
            );
            self.offered.insert(agent.clone(), chat);
            self.last_offered = Some(agent.clone());
            let timeout = self.settings.offer_timeout;
            self.flush_to(&agent);
            if let Some(actor) = hub.agent_actor_ref(&agent) {
                let _ = actor.cast(AgentMsg::Offered(Arc::new(Offer {
                    row,
                    expires_in_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })));
            }
            let timer = myself.send_after(timeout, move || ChannelMsg::OfferDue { chat, offer });
            if let Some(standing) = self.offers.get_mut(&chat) {
                standing.timer = Some(timer);
            }
            return;
        }
    }

    /// `agent` accepts the chat offered to them: the chat leaves the queue
    /// and its actor is answered, to be asked for the assignment.
    fn accept(&mut self, agent: &AgentId, chat: ChatId) -> Result<ActorRef<ChatMsg>, HubError> {
        let standing = match self.offers.get(&chat) {
            Some(standing) if standing.agent == *agent => standing,
            _ => return Err(HubError::NotOffered(chat)),
        };
        match standing.claim.accept(standing.offer) {
            Ok(_) => {
                // The slot stays taken: it is the assignment's now.
                if let Some(standing) = self.offers.remove(&chat) {
                    standing.stop_timer();
                    if let Some(hub) = &self.hub {
                        hub.forget_offer(chat, self.settings.id.clone(), standing.offer);
                    }
                }
                self.offered.remove(agent);
                self.passed.remove(&chat);
                self.count_offer(OfferEnd::Accepted.name());
                self.answers.record(Timestamp::now());
                self.flush_to(agent);
                if let Some(actor) = self.hub.as_ref().and_then(|hub| hub.agent_actor_ref(agent)) {
                    let _ = actor.cast(AgentMsg::OfferOver {
                        channel: self.settings.id.clone(),
                        chat,
                        reason: OfferEnd::Accepted,
                    });
                }
                let waiting = self.queue.remove(chat);
                self.left(chat);
                waiting
                    .map(|(_, _, waiting)| waiting.chat)
                    .ok_or(HubError::UnknownChat(chat))
            }
            // A claim won: the offer ends here (the claimer's Withdraw then
            // finds nothing left to free).
            Err(lost) => {
                self.withdraw_offer(chat, OfferEnd::Withdrawn);
                Err(match lost {
                    OfferLost::Claimed(Claimer::Agent) => HubError::ChatAlreadyTaken(chat),
                    OfferLost::Claimed(Claimer::Abandon) => HubError::Chat(ChatError::Ended),
                    OfferLost::Lapsed => HubError::NotOffered(chat),
                })
            }
        }
    }

    /// `agent` declines the chat offered to them, or its time ran out
    /// (`reason`): if the offer still stood, it lapses and the chat is
    /// offered on (true). If a claim ended it meanwhile, the entry ends
    /// here (a `Withdraw` that follows finds nothing left to free).
    fn lapse(
        &mut self,
        agent: Option<&AgentId>,
        chat: ChatId,
        offer: Option<OfferId>,
        reason: OfferEnd,
    ) -> bool {
        let Some(standing) = self.offers.get(&chat) else {
            return false;
        };
        if agent.is_some_and(|agent| *agent != standing.agent)
            || offer.is_some_and(|offer| offer != standing.offer)
        {
            return false;
        }
        if !standing.claim.lapse(standing.offer) {
            self.withdraw_offer(chat, OfferEnd::Withdrawn);
            return false;
        }
        self.end_offer(chat, reason);
        true
    }

    fn count_offer(&self, outcome: &'static str) {
        metrics::counter!(
            "chathub_offers_total",
            "channel" => self.settings.id.to_string(),
            "outcome" => outcome
        )
        .increment(1);
    }

    fn snapshot(&self) -> QueueUpdate {
        let rows = self
            .queue
            .iter()
            .take(SNAPSHOT_ROWS)
            .map(|(_, _, waiting)| waiting.row.clone())
            .collect();
        QueueUpdate {
            channel: self.settings.id.clone(),
            version: self.version,
            waiting: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            change: QueueChange::Snapshot(rows),
        }
    }

    /// Walks the queue once and tells each waiting chat whose place (or
    /// estimate) changed; see `core::place`.
    fn tell_places(&mut self) {
        let now = Timestamp::now();
        let changed = self.places.update(
            self.queue.iter().map(|(chat, _, _)| chat),
            &self.answers,
            now,
        );
        for place in changed {
            if let Some(waiting) = self.queue.get(place.chat) {
                let _ = waiting.chat.cast(ChatMsg::Place(place));
            }
        }
    }

    fn take_next(&mut self, agent: AgentId, mut reply: RpcReplyPort<Result<Assignment, HubError>>) {
        let skills = self
            .hub
            .as_ref()
            .and_then(|hub| hub.presence().agent(&agent))
            .map(|presence| presence.skills())
            .unwrap_or_default();
        loop {
            let by = Match {
                skills: &skills,
                now: Timestamp::now(),
                fallback: self.settings.skill_fallback_after,
            };
            let Some((chat, _, waiting)) = self.queue.pop_next_for(&by) else {
                break;
            };
            self.left(chat);
            self.passed.remove(&chat);
            let Ok(won) = waiting.claim.claim(Claimer::Agent) else {
                // Withdrawn by the customer (or picked) just now; its own
                // Withdraw will find it gone (and end its offer).
                continue;
            };
            if won.offer.is_some() {
                self.end_offer(chat, OfferEnd::Taken);
            }
            let assign = ChatMsg::Assign {
                agent: agent.clone(),
                reply,
            };
            match waiting.chat.cast(assign) {
                Ok(()) => {
                    self.answers.record(Timestamp::now());
                    return;
                }
                // The chat's actor is gone; take the reply back and go on.
                Err(MessagingErr::SendErr(ChatMsg::Assign { reply: back, .. })) => reply = back,
                Err(_) => return,
            }
        }
        let _ = reply.send(Err(HubError::QueueEmpty(self.settings.id.clone())));
    }
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = ChannelSettings;

    async fn pre_start(
        &self,
        me: ActorRef<ChannelMsg>,
        settings: ChannelSettings,
    ) -> Result<ChannelState, ActorProcessingErr> {
        let mut queue = Queue::new(settings.queue_limit);
        queue.set_aging(settings.priority_aging);
        Ok(ChannelState {
            queue,
            settings,
            version: 0,
            watchers: HashMap::new(),
            alerts: HashMap::new(),
            hub: None,
            offers: HashMap::new(),
            offered: HashMap::new(),
            passed: HashMap::new(),
            last_offered: None,
            places: Places::default(),
            answers: AnswerRate::default(),
            places_dirty: false,
            places_due: false,
            me,
            pending: Vec::new(),
            sent_early: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ChannelMsg>,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        state.flush_updates();
        // Offers die with the actor: their chats wait on for the next one.
        let chats: Vec<ChatId> = state.offers.keys().copied().collect();
        for chat in chats {
            state.withdraw_offer(chat, OfferEnd::Withdrawn);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChannelMsg>,
        message: ChannelMsg,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChannelMsg::Enqueue {
                waiting,
                admit,
                reply,
            } => {
                let row = waiting.row.clone();
                let generation = waiting.generation;
                let priority = row.priority.unwrap_or(state.settings.priority);
                let skills = waiting.skills.clone();
                let pushed = match admit {
                    Admit::Front => state
                        .queue
                        .push_front_needing(row.chat, row.since, priority, skills.clone(), waiting)
                        .map(|_| ()),
                    Admit::New | Admit::Accepted => state.queue.push_needing(
                        row.chat,
                        row.since,
                        priority,
                        skills.clone(),
                        waiting,
                        admit == Admit::Accepted,
                    ),
                };
                match pushed {
                    Ok(()) => {
                        let chat = row.chat;
                        // A new wait: nobody has passed it up yet.
                        state.passed.remove(&chat);
                        state.withdraw_offer(chat, OfferEnd::Withdrawn);
                        // A chat restored from the store has waited already.
                        let due = state
                            .settings
                            .alert_after
                            .saturating_sub(Timestamp::now().since(row.since));
                        if !skills.is_empty() && state.settings.routing == Routing::Push {
                            // Once it may go to anyone, offer it again.
                            let fallback = state
                                .settings
                                .skill_fallback_after
                                .saturating_sub(Timestamp::now().since(row.since));
                            myself.send_after(fallback, || ChannelMsg::Dispatch);
                        }
                        state.broadcast(QueueChange::Added(row));
                        myself.send_after(due, move || ChannelMsg::AlertDue { chat, generation });
                        state.arm_sla(&myself, chat);
                        let _ =
                            reply.send(Ok(u32::try_from(state.queue.len()).unwrap_or(u32::MAX)));
                        state.dispatch(&myself);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err.into()));
                    }
                }
            }
            ChannelMsg::TakeNext { agent, reply } => {
                state.take_next(agent, reply);
                state.dispatch(&myself);
            }
            ChannelMsg::Withdraw(chat) => {
                if let Some((_, _, waiting)) = state.queue.remove(chat) {
                    if waiting.claim.holder() == Some(Claimer::Agent) {
                        // Picked: an answer like get-next's.
                        state.answers.record(Timestamp::now());
                    }
                    state.broadcast(QueueChange::Removed(chat));
                }
                state.clear_alert(chat);
                state.passed.remove(&chat);
                state.withdraw_offer(chat, OfferEnd::Withdrawn);
                state.dispatch(&myself);
            }
            ChannelMsg::Init(hub) => {
                state.hub = Some(hub);
                state.dispatch(&myself);
            }
            ChannelMsg::Dispatch => {
                state.check_offers();
                state.dispatch(&myself);
            }
            ChannelMsg::Accept { agent, chat, reply } => {
                let _ = reply.send(state.accept(&agent, chat));
                // The agent has no offer standing now: a free slot of theirs
                // (or a withdrawn offer's) takes the next waiting chat.
                state.dispatch(&myself);
            }
            ChannelMsg::Decline { agent, chat, reply } => {
                let declined = state.lapse(Some(&agent), chat, None, OfferEnd::Declined);
                let _ = reply.send(if declined {
                    Ok(())
                } else {
                    Err(HubError::NotOffered(chat))
                });
                state.dispatch(&myself);
            }
            ChannelMsg::OfferDue { chat, offer } => {
                if state.lapse(None, chat, Some(offer), OfferEnd::Expired) {
                    state.dispatch(&myself);
                }
            }
            ChannelMsg::AlertDue { chat, generation } => {
                // Only a chat still waiting unalerted in that wait has an
                // alert to hold (a timer is never set for one that left).
                let still_waiting = state.queue.get(chat).is_some_and(|waiting| {
                    waiting.generation == generation && !waiting.claim.is_alerted()
                });
                if !still_waiting {
                    return Ok(());
                }
                // Outside business hours an alert waits for the opening.
                match sla::held(state.settings.hours.as_deref(), Timestamp::now()) {
                    Held::Until(wait) => {
                        myself.send_after(wait, move || ChannelMsg::AlertDue { chat, generation });
                    }
                    // Closed for more than a year: a reload re-arms it.
                    Held::Closed => {}
                    Held::Now => state.alert_due(chat, generation),
                }
            }
            ChannelMsg::SlaDue { chat, generation } => state.sla_due(&myself, chat, generation),
            #[cfg(test)]
            ChannelMsg::Crash => panic!("channel actor crash requested by a test"),
            ChannelMsg::FlushUpdates => state.flush_updates(),
            ChannelMsg::Watch {
                agent,
                agent_actor,
                conn,
            } => {
                // The watchers so far get what is pending; the snapshot
                // holds it all for the new one.
                state.flush_updates();
                let snapshot = Arc::new(state.snapshot());
                let _ = agent_actor.cast(AgentMsg::Deliver {
                    to: Some(conn),
                    except: None,
                    event: Outbound::Queue(snapshot),
                });
                for alert in state.alerts.values() {
                    let _ = agent_actor.cast(AgentMsg::Alert(alert.clone()));
                }
                state.watchers.insert(agent, agent_actor);
            }
            ChannelMsg::Snapshot(reply) => {
                let _ = reply.send(state.snapshot());
            }
            ChannelMsg::Unwatch { agent } => {
                state.flush_updates();
                state.check_offers();
                if let Some(agent_actor) = state.watchers.remove(&agent) {
                    let empty = QueueUpdate {
                        channel: state.settings.id.clone(),
                        version: state.version,
                        waiting: 0,
                        change: QueueChange::Snapshot(Vec::new()),
                    };
                    let _ = agent_actor.cast(AgentMsg::Deliver {
                        to: None,
                        except: None,
                        event: Outbound::Queue(Arc::new(empty)),
                    });
                    for &chat in state.alerts.keys() {
                        let _ = agent_actor.cast(AgentMsg::AlertCleared {
                            channel: state.settings.id.clone(),
                            chat,
                        });
                    }
                }
                state.dispatch(&myself);
            }
            ChannelMsg::Reconfigure(settings) => {
                state.queue.set_limit(settings.queue_limit);
                state.queue.set_aging(settings.priority_aging);
                let hours_changed = settings.hours != state.settings.hours;
                let rearm = hours_changed || settings.alert_after != state.settings.alert_after;
                let rearm_sla = hours_changed
                    || settings.first_response_within != state.settings.first_response_within;
                state.settings = (*settings).clone();
                if rearm {
                    state.rearm_alerts(&myself);
                }
                if rearm_sla {
                    state.rearm_sla(&myself);
                }
                if state.settings.routing == Routing::Pull {
                    let chats: Vec<ChatId> = state.offers.keys().copied().collect();
                    for chat in chats {
                        state.withdraw_offer(chat, OfferEnd::Withdrawn);
                    }
                }
                state.dispatch(&myself);
            }
            ChannelMsg::IsEmpty(reply) => {
                let _ = reply.send(state.queue.is_empty());
            }
            ChannelMsg::Places => {
                state.places_due = false;
                state.places_dirty = false;
                state.tell_places();
            }
            ChannelMsg::SetPriority { chat, priority } => {
                state.queue.set_priority(chat, priority);
                if let Some(waiting) = state.queue.get_mut(chat) {
                    waiting.row.priority = Some(priority);
                    let row = waiting.row.clone();
                    state.broadcast(QueueChange::Changed(row));
                }
            }
        }
        if state.places_dirty && !state.places_due {
            state.places_due = true;
            myself.send_after(PLACES_EVERY, || ChannelMsg::Places);
        }
        Ok(())
    }
}
