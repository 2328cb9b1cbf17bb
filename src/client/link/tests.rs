//! The link's ordering and resume rules, without a network.

use super::memory::MAX_FINISHED;
use super::reconnect::jittered;
use super::*;
use crate::core::Party;

fn event(chat: u64, seq: u64) -> ChatEvent {
    ChatEvent::customer_message(chat, seq, format!("m{seq}"))
}

fn with_kind(chat: u64, seq: u64, kind: ChatEventKind) -> ChatEvent {
    ChatEvent {
        kind,
        ..event(chat, seq)
    }
}

fn hand_over(memory: &mut Memory, role: &Role, event: ChatEvent) {
    let before = memory.ready.len();
    let Memory {
        positions,
        held,
        ready,
        ..
    } = memory;
    super::order(positions, held, event, ready);
    memory.note_ready(role, before);
}

fn resumed(memory: &Memory) -> Vec<u64> {
    memory
        .resume_points(MAX_RESUME_POINTS)
        .iter()
        .map(|resume| resume.chat.0)
        .collect()
}

#[test]
fn backoffs_are_spread_over_their_second_half() {
    let backoff = Duration::from_millis(1_000);
    let waits: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
    assert!(
        waits
            .iter()
            .all(|wait| *wait >= backoff / 2 && *wait <= backoff)
    );
    let distinct: std::collections::HashSet<_> = waits.iter().collect();
    assert!(distinct.len() > 50, "{} distinct waits", distinct.len());
}

#[test]
fn chats_over_for_an_agent_are_not_resumed_until_they_come_back() {
    let me = crate::core::AgentId::new("ana");
    let role = Role::Agent {
        agent: me.clone(),
        token: "t".into(),
    };
    let mut memory = Memory::default();
    for chat in 1..=4 {
        hand_over(&mut memory, &role, event(chat, 1));
    }
    let ended = ChatEventKind::Ended {
        by: Party::Customer,
    };
    hand_over(&mut memory, &role, with_kind(1, 2, ended));
    let away = ChatEventKind::TransferredToAgent {
        from: me.clone(),
        to: "bo".into(),
    };
    hand_over(&mut memory, &role, with_kind(2, 2, away));
    let requeued = ChatEventKind::Requeued {
        by: Some(me.clone()),
        channel: "support".into(),
    };
    hand_over(&mut memory, &role, with_kind(3, 2, requeued));
    assert_eq!(resumed(&memory), [4]);
    // Chat 2 comes back: it is resumed again, and what was handed over
    // before is not handed over twice.
    let back = ChatEventKind::TransferredToAgent {
        from: "bo".into(),
        to: me.clone(),
    };
    hand_over(&mut memory, &role, with_kind(2, 3, back));
    assert_eq!(resumed(&memory), [2, 4]);
    let before = memory.ready.len();
    hand_over(&mut memory, &role, event(2, 1));
    assert_eq!(memory.ready.len(), before, "a replayed event is dropped");
}

#[test]
fn the_memory_of_finished_chats_is_bounded_and_a_hello_fits() {
    let role = Role::Customer;
    let mut memory = Memory::default();
    let chats = (MAX_FINISHED + 100) as u64;
    for chat in 1..=chats {
        hand_over(&mut memory, &role, event(chat, 1));
        let ended = ChatEventKind::Ended {
            by: Party::Customer,
        };
        hand_over(&mut memory, &role, with_kind(chat, 2, ended));
        memory.ready.clear();
    }
    assert_eq!(memory.positions.len(), MAX_FINISHED);
    assert!(resumed(&memory).is_empty());
    // Live chats beyond what a hello carries: the newest go.
    for chat in 0..(MAX_RESUME_POINTS as u64 + 10) {
        hand_over(&mut memory, &role, event(1_000_000 + chat, 1));
    }
    let points = resumed(&memory);
    assert_eq!(points.len(), MAX_RESUME_POINTS);
    assert_eq!(points[0], 1_000_010);
}

/// What [`super::order`] made ready for `event`.
fn order(
    positions: &mut HashMap<ChatId, u64>,
    held: &mut HashMap<ChatId, BTreeMap<u64, ChatEvent>>,
    event: ChatEvent,
) -> Vec<ChatEvent> {
    let mut ready = VecDeque::new();
    super::order(positions, held, event, &mut ready);
    ready.into()
}

fn seqs(events: Vec<ChatEvent>) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}

#[test]
fn events_from_several_streams_reach_the_application_in_order_once() {
    let (mut positions, mut held) = (HashMap::new(), HashMap::new());
    assert_eq!(seqs(order(&mut positions, &mut held, event(1, 1))), [1]);
    // 3 and 4 overtook 2 on another stream: held until 2 comes.
    assert!(order(&mut positions, &mut held, event(1, 3)).is_empty());
    assert!(order(&mut positions, &mut held, event(1, 4)).is_empty());
    // Another chat is not held up.
    assert_eq!(seqs(order(&mut positions, &mut held, event(2, 1))), [1]);
    assert_eq!(
        seqs(order(&mut positions, &mut held, event(1, 2))),
        [2, 3, 4]
    );
    // A replay after a reconnect repeats what was handed over: dropped.
    assert!(order(&mut positions, &mut held, event(1, 3)).is_empty());
    assert_eq!(seqs(order(&mut positions, &mut held, event(1, 5))), [5]);
    assert!(held.is_empty());
}

#[test]
fn a_placeholder_fills_its_seq_and_never_reaches_the_application() {
    let (mut positions, mut held) = (HashMap::new(), HashMap::new());
    assert_eq!(seqs(order(&mut positions, &mut held, event(1, 1))), [1]);
    // 3 overtook the placeholder at 2: held until it comes, then handed
    // over without it.
    assert!(order(&mut positions, &mut held, event(1, 3)).is_empty());
    let withheld = with_kind(1, 2, ChatEventKind::Withheld);
    assert_eq!(
        seqs(order(&mut positions, &mut held, withheld.clone())),
        [3]
    );
    // In line, it moves the position and hands over nothing.
    assert!(
        order(
            &mut positions,
            &mut held,
            with_kind(1, 4, ChatEventKind::Withheld)
        )
        .is_empty()
    );
    assert_eq!(positions[&ChatId(1)], 4, "a resume starts after it");
    assert_eq!(seqs(order(&mut positions, &mut held, event(1, 5))), [5]);
    assert!(held.is_empty());
}

#[test]
fn past_the_hold_limit_every_held_event_goes_in_seq_order() {
    let (mut positions, mut held) = (HashMap::new(), HashMap::new());
    assert_eq!(seqs(order(&mut positions, &mut held, event(1, 1))), [1]);
    // Seq 2 never comes; 3 and on fill the hold to its limit...
    let limit = MAX_HELD as u64;
    for seq in 3..3 + limit {
        assert!(order(&mut positions, &mut held, event(1, seq)).is_empty());
    }
    // ...and one more lets all of them go, the newest last.
    let ready = order(&mut positions, &mut held, event(1, 3 + limit));
    let expected: Vec<u64> = (3..=3 + limit).collect();
    assert_eq!(seqs(ready), expected);
    assert!(held.is_empty());
    // Nothing at or below what went is handed over again.
    assert!(order(&mut positions, &mut held, event(1, 2)).is_empty());
}

#[test]
fn typing_indicators_give_way_when_the_application_falls_behind() {
    use crate::core::{ChannelId, QueueChange, QueueUpdate};
    let typing = |chat| Event::Typing {
        chat: ChatId(chat),
        from: Party::Customer,
    };
    let update = |version| {
        Event::Queue(QueueUpdate {
            channel: ChannelId::new("support"),
            version,
            waiting: 0,
            change: QueueChange::Removed(ChatId(1)),
        })
    };
    let mut others = VecDeque::new();
    // Typing indicators alone never grow the queue past its bound.
    for n in 0..(MAX_OTHERS as u64 * 2) {
        assert!(inner::make_room(&mut others, typing(n)));
    }
    assert_eq!(others.len(), MAX_OTHERS);
    // A queue update takes the place of the oldest typing indicator.
    assert!(inner::make_room(&mut others, update(1)));
    assert_eq!(others.len(), MAX_OTHERS);
    assert!(!others.contains(&typing(MAX_OTHERS as u64)));
    assert_eq!(others.back(), Some(&update(1)));
    // Once no typing indicator is left, a new one is dropped rather than
    // anything else.
    others.clear();
    for version in 0..MAX_OTHERS as u64 {
        assert!(inner::make_room(&mut others, update(version)));
    }
    assert!(!inner::make_room(&mut others, typing(7)));
    assert_eq!(others.len(), MAX_OTHERS);
    assert!(
        !others
            .iter()
            .any(|event| matches!(event, Event::Typing { .. }))
    );
}

#[test]
fn a_waiting_monitor_picture_is_replaced_by_its_channels_next() {
    use crate::core::{ChannelId, ChannelMonitor, Timestamp};
    let picture = |channel: &str, at| {
        Event::Monitor(Box::new(ChannelMonitor {
            channel: ChannelId::new(channel),
            at: Timestamp(at),
            waiting_count: 0,
            waiting: Vec::new(),
            active_count: 0,
            active: Vec::new(),
            agents: Vec::new(),
        }))
    };
    let typing = Event::Typing {
        chat: ChatId(1),
        from: Party::Customer,
    };
    let mut others = VecDeque::new();
    assert!(inner::make_room(&mut others, picture("support", 1)));
    assert!(inner::make_room(&mut others, typing.clone()));
    assert!(inner::make_room(&mut others, picture("sales", 2)));
    // However many pictures of a channel come, one waits: the latest, in
    // the first one's place.
    for at in 3..1_000 {
        assert!(inner::make_room(&mut others, picture("support", at)));
    }
    assert_eq!(
        others,
        [picture("support", 999), typing, picture("sales", 2)]
    );
}
