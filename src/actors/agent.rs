//! One actor per signed-in agent: keeps the agent's connections, status
//! and alerts, and decides which alerts the agent sees. The agent's chat
//! events do not pass through it: chat actors deliver them into the
//! agent's [`AgentOutlet`] directly, under the same lock the actor attaches
//! connections with, so a connection catching up gets each event once and
//! in order while saving every event a hop through this actor's mailbox.
//!
//! Every channel tells all its watching agents about alerts, whatever their
//! status; this actor shows an alert only while the agent is Present, shows
//! the standing ones when the agent becomes Present, and sends a clear for
//! every alert it showed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::channel::ChannelMsg;
use crate::actors::chat::ChatMsg;
use crate::actors::hub::Hub;
use crate::actors::sink::{ConnId, EventSink, Outbound, Signal};
use crate::core::{
    AgentId, AgentPresence, Alert, ChannelId, ChatEvent, ChatId, Offer, OfferEnd, QueueUpdate,
    Status, Timestamp,
};

/// Messages to an [`AgentActor`].
pub enum AgentMsg {
    /// A connection of this agent signed in; it starts receiving the
    /// agent's events, beginning with a snapshot of each channel's queue.
    Attach {
        /// The connection's event sink.
        sink: EventSink,
        /// Where the connection left off in chats it saw before: the
        /// agent's chats are replayed to it from there (from the start for
        /// chats it does not list).
        resume: Vec<(ChatId, u64)>,
        /// The agent's current status.
        reply: RpcReplyPort<Status>,
    },
    /// A connection closed.
    Detach {
        /// The connection.
        conn: ConnId,
    },
    /// Push an event (not a chat's: those go into the [`AgentOutlet`]) to
    /// one connection, or to all of them.
    Deliver {
        /// `None` for every connection of the agent.
        to: Option<ConnId>,
        /// A connection that already knows of the event (it sent the
        /// message and learns of it from the answer).
        except: Option<ConnId>,
        /// The event.
        event: Outbound,
    },
    /// A channel's queue updates, in order, for every connection.
    DeliverQueue(Arc<[Arc<QueueUpdate>]>),
    /// Present, Absent or Away (set by the agent or a supervisor; an
    /// agent idle too long turns Away on its own, see
    /// [`AgentMsg::IdleCheck`]).
    SetStatus {
        /// The new status.
        status: Status,
        /// The supervisor who set it, if not the agent: the agent's
        /// connections are told.
        by: Option<AgentId>,
        /// Acknowledged once set.
        reply: RpcReplyPort<()>,
    },
    /// A channel raised an alert (or repeats a standing one).
    Alert(Arc<Alert>),
    /// A channel's alert is over.
    AlertCleared {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
    },
    /// A chat was assigned to this agent.
    Assigned(ChatId),
    /// A chat of this agent ended or left them; its slot is already free.
    Released(ChatId),
    /// A chat of this agent failed without ending: free its slot.
    ChatFailed(ChatId),
    /// A push channel offers the agent a chat: shown to every connection,
    /// and to connections that attach while it stands.
    Offered(Arc<Offer>),
    /// An offer to the agent is over.
    OfferOver {
        /// The chat's channel.
        channel: ChannelId,
        /// The chat.
        chat: ChatId,
        /// Why.
        reason: OfferEnd,
    },
    /// The channels the agent works changed (a configuration reload):
    /// watch the ones it works now (from its presence), stop watching the
    /// others.
    ChannelsChanged,
    /// The agent's token changed: its connections, signed in with the old
    /// one, are closed (it may sign in again with the new one at once).
    Revoke,
    /// The agent was removed from the configuration: it watches no channel
    /// any more and its connections are closed (its chats stay as a
    /// disconnected agent's do).
    Removed,
    /// The last connection closed `generation` changes ago; if none came
    /// back since, the agent is no longer Present.
    GraceOver {
        /// The attach/detach generation the timer was set in.
        generation: u64,
    },
    /// Time to see whether the Present agent has been idle for the
    /// shortest `idle_after` of their channels; if so they turn Away,
    /// otherwise the check comes again when they would be.
    IdleCheck {
        /// The idle timer this check belongs to (a newer one replaces it).
        generation: u64,
    },
}

/// See the module docs.
pub struct AgentActor;

/// Startup arguments of an [`AgentActor`].
pub struct AgentArgs {
    /// The hub.
    pub hub: Hub,
    /// Which agent.
    pub id: AgentId,
    /// The agent's shared status and capacity.
    pub presence: Arc<AgentPresence>,
    /// Where the agent's events go to its connections.
    pub outlet: Arc<AgentOutlet>,
    /// How long after the last connection closes the agent stays Present.
    pub grace: Duration,
}

/// An agent's connections, which its chats' actors deliver chat events
/// and typing signals into directly and its actor everything else, and where each connection
/// stands in the chats it is catching up on. One lock orders them all: a
/// connection attached (its chats marked as replaying) before a chat
/// delivers is skipped by that chat until its replay lands, and one
/// attached after gets the chat's events from then on.
#[derive(Debug, Default)]
pub struct AgentOutlet {
    conns: Mutex<Conns>,
}

/// What an [`AgentOutlet`] guards.
#[derive(Debug, Default)]
struct Conns {
    sinks: HashMap<ConnId, EventSink>,
    /// Per connection, per chat being caught up: where it stands.
    cursors: HashMap<ConnId, HashMap<ChatId, Cursor>>,
}

impl AgentOutlet {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands `event` to connection `to`, or to every connection but
    /// `except`, each as its catch-up cursor on the chat allows.
    pub(crate) fn deliver(&self, to: Option<ConnId>, except: Option<ConnId>, event: Outbound) {
        self.lock().deliver(to, except, event);
    }

    /// Connection `conn` caught up on `chat`: `events` (in order) are
    /// sent to it, and from then on it gets the chat's events after
    /// `upto` (or the last of them) as they come.
    pub(crate) fn replayed(
        &self,
        conn: ConnId,
        chat: ChatId,
        events: impl IntoIterator<Item = Arc<ChatEvent>>,
        upto: u64,
    ) {
        let mut conns = self.lock();
        let mut upto = upto;
        for event in events {
            upto = upto.max(event.seq);
            conns.send(conn, Outbound::Chat(event));
        }
        if conns.sinks.contains_key(&conn) {
            conns
                .cursors
                .entry(conn)
                .or_default()
                .insert(chat, Cursor::Upto(upto));
        }
    }

    /// Offers `signal` (someone typing in a chat the agent holds) to every
    /// connection of the agent as a datagram, dropped where there is no
    /// room.
    pub(crate) fn offer_signal(&self, signal: &Signal) {
        for sink in self.lock().sinks.values() {
            sink.offer_signal(signal.clone());
        }
    }
}

impl Conns {
    /// See [`AgentOutlet::deliver`].
    fn deliver(&mut self, to: Option<ConnId>, except: Option<ConnId>, event: Outbound) {
        let mut gone = Vec::new();
        for (&conn, sink) in &self.sinks {
            if to.is_some_and(|to| to != conn) {
                continue;
            }
            // Only a connection catching up on this chat has a cursor.
            if let Outbound::Chat(chat_event) = &event
                && let Some(cursors) = self.cursors.get_mut(&conn)
                && let Some(&cursor) = cursors.get(&chat_event.chat)
            {
                let (send, cursor) = admit(Some(cursor), chat_event.seq);
                match cursor {
                    Some(cursor) => cursors.insert(chat_event.chat, cursor),
                    None => cursors.remove(&chat_event.chat),
                };
                if !send {
                    continue;
                }
            }
            // `except` has it (its cursor moved on all the same).
            if except == Some(conn) {
                continue;
            }
            if !sink.deliver(event.clone()) {
                gone.push(conn);
            }
        }
        for conn in gone {
            self.sinks.remove(&conn);
            self.cursors.remove(&conn);
        }
    }

    /// Hands an event to one connection, forgetting it if it fell behind.
    fn send(&mut self, conn: ConnId, event: Outbound) {
        if let Some(sink) = self.sinks.get(&conn)
            && !sink.deliver(event)
        {
            self.sinks.remove(&conn);
            self.cursors.remove(&conn);
        }
    }
}

/// An agent actor's state.
pub struct AgentState {
    hub: Hub,
    id: AgentId,
    presence: Arc<AgentPresence>,
    grace: Duration,
    /// Bumped by every attach and detach, so a stale grace timer is ignored.
    generation: u64,
    /// Bumped whenever the idle timer is set again, so only the newest
    /// check counts: one idle timer per agent, whatever the requests.
    idle_generation: u64,
    outlet: Arc<AgentOutlet>,
    chats: HashSet<ChatId>,
    /// Alerts standing in the agent's channels.
    standing: HashMap<ChatId, Arc<Alert>>,
    /// The standing alerts this agent has been shown.
    shown: HashSet<ChatId>,
    /// The channels this actor watches (with every connection).
    watching: HashSet<ChannelId>,
    /// Offers standing for the agent, with when they expire.
    offers: HashMap<ChatId, (Arc<Offer>, std::time::Instant)>,
}

/// Where a connection stands in a chat it is catching up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    /// Its replay has not arrived: live events are in the replay.
    Replaying,
    /// It has every event up to this seq.
    Upto(u64),
}

/// Whether a connection at `cursor` should get a chat event with `seq`,
/// and where it stands afterwards.
fn admit(cursor: Option<Cursor>, seq: u64) -> (bool, Option<Cursor>) {
    match cursor {
        None => (true, None),
        Some(Cursor::Replaying) => (false, Some(Cursor::Replaying)),
        Some(Cursor::Upto(upto)) if seq <= upto => (false, Some(Cursor::Upto(upto))),
        Some(Cursor::Upto(_)) => (true, Some(Cursor::Upto(seq))),
    }
}

impl AgentState {
    /// Sets the agent's status and the Present gauges of its channels; its
    /// push channels hear of a change.
    fn set_status(&self, status: Status) -> bool {
        let changed = self.presence.set(status);
        if changed {
            self.status_moved();
        }
        changed
    }

    /// After a change of status: push channels hear of it (offers to an
    /// agent no longer Present are withdrawn) and the gauges follow.
    fn status_moved(&self) {
        self.hub.poke_channels(&self.id);
        for channel in self.presence.channels() {
            metrics::gauge!("chathub_agents_present", "channel" => channel.to_string())
                .set(self.hub.presence().present_count(&channel) as f64);
        }
    }

    /// Sets the idle timer again (replacing any): a Present agent in a
    /// channel with `idle_after` is checked when their last request is
    /// that old.
    fn arm_idle(&mut self, myself: &ActorRef<AgentMsg>) {
        self.idle_generation += 1;
        if self.presence.status() != Status::Present {
            return;
        }
        let Some(idle_after) = self.hub.idle_after(&self.id) else {
            return;
        };
        let idle = Timestamp::now().since(self.presence.last_active());
        let generation = self.idle_generation;
        myself.send_after(idle_after.saturating_sub(idle), move || {
            AgentMsg::IdleCheck { generation }
        });
    }

    /// The idle timer fired: a Present agent idle for `idle_after` turns
    /// Away (and is told, as by a supervisor, with themselves as the
    /// setter); one who made a request meanwhile is checked again later.
    fn idle_check(&mut self, myself: &ActorRef<AgentMsg>, generation: u64) {
        if generation != self.idle_generation || self.presence.status() != Status::Present {
            return;
        }
        let Some(idle_after) = self.hub.idle_after(&self.id) else {
            return;
        };
        if Timestamp::now().since(self.presence.last_active()) < idle_after {
            self.arm_idle(myself);
            return;
        }
        // One compare-and-swap from Present: a status set meanwhile stays.
        if self.presence.idle() {
            tracing::info!(agent = %self.id, "idle: Away");
            metrics::counter!("chathub_agents_idle_total").increment(1);
            self.status_moved();
            self.deliver(
                None,
                None,
                Outbound::StatusChanged {
                    status: Status::Away,
                    by: self.id.clone(),
                },
            );
        }
    }
    /// Hands `event` to connection `to`, or to every connection but
    /// `except`.
    fn deliver(&self, to: Option<ConnId>, except: Option<ConnId>, event: Outbound) {
        self.outlet.deliver(to, except, event);
    }

    /// Closes every connection of the agent as unauthorized.
    fn revoke_all(&mut self) {
        let mut conns = self.outlet.lock();
        for (_, sink) in conns.sinks.drain() {
            sink.revoke();
        }
        conns.cursors.clear();
    }

    /// Asks `channel` to tell this agent about changes, starting with a
    /// snapshot for `conn`.
    fn watch(&self, channel: &ChannelId, conn: ConnId, myself: &ActorRef<AgentMsg>) {
        if let Some(actor) = self.hub.channel_actor(channel) {
            let _ = actor.cast(ChannelMsg::Watch {
                agent: self.id.clone(),
                agent_actor: myself.clone(),
                conn,
            });
        }
    }

    /// Watches the channels the agent works now and stops watching the
    /// others.
    fn follow_channels(&mut self, myself: &ActorRef<AgentMsg>) {
        let works: HashSet<ChannelId> = self.presence.channels().into_iter().collect();
        for channel in self.watching.difference(&works) {
            if let Some(actor) = self.hub.channel_actor(channel) {
                let _ = actor.cast(ChannelMsg::Unwatch {
                    agent: self.id.clone(),
                });
            }
        }
        let conns: Vec<ConnId> = self.outlet.lock().sinks.keys().copied().collect();
        for channel in works.difference(&self.watching) {
            for &conn in &conns {
                self.watch(channel, conn, myself);
            }
        }
        self.watching = works;
    }

    /// Shows the standing alerts not yet shown, if the agent is Present.
    fn show_standing(&mut self) {
        if self.presence.status() != Status::Present {
            return;
        }
        let unseen: Vec<Arc<Alert>> = self
            .standing
            .iter()
            .filter(|(chat, _)| !self.shown.contains(chat))
            .map(|(_, alert)| alert.clone())
            .collect();
        for alert in unseen {
            self.shown.insert(alert.row.chat);
            self.deliver(None, None, Outbound::Alert(alert));
        }
    }
}

impl Actor for AgentActor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = AgentArgs;

    async fn pre_start(
        &self,
        _: ActorRef<AgentMsg>,
        args: AgentArgs,
    ) -> Result<AgentState, ActorProcessingErr> {
        Ok(AgentState {
            hub: args.hub,
            id: args.id,
            presence: args.presence,
            grace: args.grace,
            generation: 0,
            idle_generation: 0,
            outlet: args.outlet,
            chats: HashSet::new(),
            standing: HashMap::new(),
            shown: HashSet::new(),
            watching: HashSet::new(),
            offers: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AgentMsg>,
        message: AgentMsg,
        state: &mut AgentState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AgentMsg::Attach {
                sink,
                resume,
                reply,
            } => {
                // Removed from the configuration after this connection
                // signed in: it is closed as the agent's others were.
                if !state.hub.is_configured(&state.id) {
                    sink.revoke();
                    let _ = reply.send(state.presence.status());
                    return Ok(());
                }
                // The connections attached before follow a change of
                // channels this actor has not handled yet.
                state.follow_channels(&myself);
                state.generation += 1;
                let conn = sink.conn();
                let mut resume: HashMap<ChatId, u64> = resume.into_iter().collect();
                {
                    // Catch the connection up on the agent's chats: live
                    // ones through their actors, ended ones from the store.
                    // The chats are read under the outlet's lock, which a
                    // chat's actor takes to deliver after it records a new
                    // holder: a chat not read here delivers to this
                    // connection from its start with the agent.
                    let mut conns = state.outlet.lock();
                    conns.sinks.insert(conn, sink);
                    let cursors = conns.cursors.entry(conn).or_default();
                    for chat in state.hub.assigned_to(&state.id) {
                        let after = resume.remove(&chat).unwrap_or(0);
                        if let Some(actor) = state.hub.live_chat(chat) {
                            cursors.insert(chat, Cursor::Replaying);
                            let _ = actor.cast(ChatMsg::Replay {
                                outlet: state.outlet.clone(),
                                conn,
                                after,
                            });
                        }
                    }
                }
                for (chat, after) in resume {
                    let (hub, agent, outlet) =
                        (state.hub.clone(), state.id.clone(), state.outlet.clone());
                    tokio::spawn(async move {
                        if let Ok(events) = hub.stored_events_for(&agent, chat, after).await {
                            outlet.replayed(conn, chat, events.into_iter().map(Arc::new), after);
                        }
                    });
                }
                for channel in &state.watching {
                    state.watch(channel, conn, &myself);
                }
                // A new connection of a Present agent sees the alerts the
                // agent's other connections were shown.
                let shown: Vec<Arc<Alert>> = state
                    .shown
                    .iter()
                    .filter_map(|chat| state.standing.get(chat).cloned())
                    .collect();
                for alert in shown {
                    state.deliver(Some(conn), None, Outbound::Alert(alert));
                }
                // And the offers standing, with the time they have left.
                let now = std::time::Instant::now();
                let offers: Vec<Outbound> = state
                    .offers
                    .values()
                    .map(|(offer, expires)| {
                        let left = expires.saturating_duration_since(now);
                        Outbound::Offered(Arc::new(Offer {
                            row: offer.row.clone(),
                            expires_in_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                        }))
                    })
                    .collect();
                for offer in offers {
                    state.deliver(Some(conn), None, offer);
                }
                let _ = reply.send(state.presence.status());
            }
            AgentMsg::Detach { conn } => {
                let none_left = {
                    let mut conns = state.outlet.lock();
                    conns.sinks.remove(&conn);
                    conns.cursors.remove(&conn);
                    conns.sinks.is_empty()
                };
                state.generation += 1;
                if none_left {
                    let generation = state.generation;
                    myself.send_after(state.grace, move || AgentMsg::GraceOver { generation });
                }
            }
            AgentMsg::GraceOver { generation } => {
                if generation == state.generation && state.outlet.lock().sinks.is_empty() {
                    if state.set_status(Status::Absent) {
                        tracing::info!(agent = %state.id, "no connection left: Absent");
                    }
                    // Their chats are told, and kept or requeued as each
                    // channel says.
                    state.hub.agent_gone(&state.id);
                }
            }
            AgentMsg::IdleCheck { generation } => state.idle_check(&myself, generation),
            AgentMsg::Deliver { to, except, event } => state.deliver(to, except, event),
            AgentMsg::DeliverQueue(updates) => {
                for update in updates.iter() {
                    state.deliver(None, None, Outbound::Queue(update.clone()));
                }
            }
            AgentMsg::ChannelsChanged => {
                state.follow_channels(&myself);
                // The channels' `idle_after` may have changed too.
                state.arm_idle(&myself);
            }
            AgentMsg::Removed => {
                state.follow_channels(&myself);
                state.set_status(Status::Absent);
                state.revoke_all();
            }
            AgentMsg::Revoke => state.revoke_all(),
            AgentMsg::SetStatus { status, by, reply } => {
                if status == Status::Present {
                    // Back at the desk: idle from now, whoever set it.
                    state.presence.touch(Timestamp::now());
                }
                let changed = state.set_status(status);
                if changed && let Some(by) = by {
                    state.deliver(None, None, Outbound::StatusChanged { status, by });
                }
                state.arm_idle(&myself);
                state.show_standing();
                let _ = reply.send(());
            }
            AgentMsg::Alert(alert) => {
                state.standing.insert(alert.row.chat, alert);
                state.show_standing();
            }
            AgentMsg::AlertCleared { channel, chat } => {
                state.standing.remove(&chat);
                if state.shown.remove(&chat) {
                    state.deliver(None, None, Outbound::AlertCleared { channel, chat });
                }
            }
            AgentMsg::Assigned(chat) => {
                state.chats.insert(chat);
            }
            AgentMsg::Released(chat) => {
                state.chats.remove(&chat);
            }
            AgentMsg::ChatFailed(chat) => {
                if state.chats.remove(&chat) {
                    state.presence.capacity.release();
                    state.hub.poke_channels(&state.id);
                }
            }
            AgentMsg::Offered(offer) => {
                let expires =
                    std::time::Instant::now() + Duration::from_millis(offer.expires_in_ms);
                state
                    .offers
                    .insert(offer.row.chat, (offer.clone(), expires));
                state.deliver(None, None, Outbound::Offered(offer));
            }
            AgentMsg::OfferOver {
                channel,
                chat,
                reason,
            } => {
                if state.offers.remove(&chat).is_some() {
                    state.deliver(
                        None,
                        None,
                        Outbound::OfferWithdrawn {
                            channel,
                            chat,
                            reason,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;
    use crate::actors::sink::EventSource;

    fn event(chat: u64, seq: u64) -> Arc<ChatEvent> {
        Arc::new(ChatEvent::customer_message(chat, seq, format!("m{seq}")))
    }

    /// Attaches connection `conn` as the agent's actor does, with the
    /// chats in `replaying` waiting for their replay.
    fn attach(outlet: &AgentOutlet, conn: u64, capacity: usize, replaying: &[u64]) -> EventSource {
        let (sink, source) = EventSink::new(ConnId(conn), capacity);
        let mut conns = outlet.lock();
        conns.sinks.insert(ConnId(conn), sink);
        let cursors = conns.cursors.entry(ConnId(conn)).or_default();
        for &chat in replaying {
            cursors.insert(ChatId(chat), Cursor::Replaying);
        }
        source
    }

    /// The (chat, seq) of every chat event the connection was handed.
    fn received(source: &mut EventSource) -> Vec<(u64, u64)> {
        let mut seen = Vec::new();
        while let Ok((event, _)) = source.events.try_recv() {
            if let Outbound::Chat(event) = event {
                seen.push((event.chat.0, event.seq));
            }
        }
        seen
    }

    #[test]
    fn a_connection_catching_up_gets_each_event_once_and_in_order() {
        let outlet = AgentOutlet::default();
        let mut old = attach(&outlet, 1, 64, &[]);
        outlet.deliver(None, None, Outbound::Chat(event(7, 1)));
        let mut new = attach(&outlet, 2, 64, &[7]);
        // Live events before the replay lands are in the replay.
        outlet.deliver(None, None, Outbound::Chat(event(7, 2)));
        outlet.replayed(ConnId(2), ChatId(7), [event(7, 1), event(7, 2)], 0);
        outlet.deliver(None, None, Outbound::Chat(event(7, 3)));
        // A chat the connection is not catching up on reaches it at once.
        outlet.deliver(None, None, Outbound::Chat(event(8, 1)));
        let all = [(7, 1), (7, 2), (7, 3), (8, 1)];
        assert_eq!(received(&mut old), all);
        assert_eq!(received(&mut new), all);
    }

    #[test]
    fn the_sender_is_skipped_and_a_replay_for_a_closed_connection_leaves_no_cursor() {
        let outlet = AgentOutlet::default();
        let mut sender = attach(&outlet, 1, 64, &[]);
        let mut other = attach(&outlet, 2, 64, &[]);
        outlet.deliver(None, Some(ConnId(1)), Outbound::Chat(event(7, 1)));
        assert_eq!(received(&mut sender), []);
        assert_eq!(received(&mut other), [(7, 1)]);
        outlet.replayed(ConnId(9), ChatId(7), [event(7, 1)], 0);
        assert!(!outlet.lock().cursors.contains_key(&ConnId(9)));
    }

    #[test]
    fn a_connection_too_far_behind_is_forgotten_and_told() {
        let outlet = AgentOutlet::default();
        let mut slow = attach(&outlet, 1, 1, &[]);
        outlet.deliver(None, None, Outbound::Chat(event(7, 1)));
        outlet.deliver(None, None, Outbound::Chat(event(7, 2)));
        assert!(
            outlet.lock().sinks.is_empty(),
            "the refused sink is dropped"
        );
        assert!(
            slow.overflow.notified().now_or_never().is_some(),
            "its connection task is told to close"
        );
        outlet.deliver(None, None, Outbound::Chat(event(7, 3)));
        assert_eq!(received(&mut slow), [(7, 1)]);
    }
}
