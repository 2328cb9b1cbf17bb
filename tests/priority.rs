//! Priorities end to end over QUIC: get-next serves higher priorities
//! first and first come within one, waiting ages a chat, an agent's change
//! is durable and shown in the incoming list, and the customer is not told.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, ErrorCode, Event, Priority, QueueChange};
use chathub::core::{ChatEventKind, ChatId, Customer};
use common::{TestHub, start};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
offline_form = false
priority_aging = "0s"
[[channel]]
name = "vip"
offline_form = false
priority = "high"
priority_aging = "0s"
[[channel]]
name = "aging"
offline_form = false
priority_aging = "1s"
[[agent]]
id = "alice"
token = "test-token-0123456789"
capacity = 20
[[agent]]
id = "carol"
token = "test-token-0123456789"
channels = ["vip"]
"#
);

fn who(n: u32) -> Customer {
    Customer {
        name: Some(format!("Customer {n}")),
        email: None,
    }
}

async fn next_chat(agent: &AgentClient, channel: &str) -> ChatId {
    agent.get_next(channel).await.unwrap().chat
}

#[tokio::test]
async fn higher_priorities_are_answered_first_and_first_come_within_one() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let alice = hub.agent("alice").await;
    let mut chats = Vec::new();
    for n in 0..4 {
        chats.push(start(&customer, "support", who(n), "hello").await.0);
    }
    alice
        .set_priority(chats[2], Priority::Urgent)
        .await
        .unwrap();
    alice.set_priority(chats[3], Priority::High).await.unwrap();
    alice.set_priority(chats[0], Priority::Low).await.unwrap();
    // The incoming list shows the change.
    let changed = loop {
        let Some(Event::Queue(update)) = alice.next_event().await else {
            continue;
        };
        if let QueueChange::Changed(row) = update.change
            && row.chat == chats[0]
        {
            break row;
        }
    };
    assert_eq!(changed.priority, Some(Priority::Low));
    let listed = alice.incoming("support").unwrap();
    let urgent = listed.rows.iter().find(|row| row.chat == chats[2]).unwrap();
    assert_eq!(urgent.priority, Some(Priority::Urgent));

    let mut served = Vec::new();
    for _ in 0..4 {
        served.push(next_chat(&alice, "support").await);
    }
    assert_eq!(served, [chats[2], chats[3], chats[1], chats[0]]);

    // The customer was not told: its chat events hold no priority.
    let mut seen = Vec::new();
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), customer.next_event()).await
    {
        if let Event::Chat(event) = event {
            seen.push(event.kind);
        }
    }
    assert!(
        !seen.iter().any(|kind| matches!(
            kind,
            ChatEventKind::Prioritized { .. } | ChatEventKind::Withheld
        )),
        "{seen:?}"
    );
}

#[tokio::test]
async fn the_channel_sets_the_usual_priority_and_only_its_agents_change_it() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let alice = hub.agent("alice").await;
    let carol = hub.agent("carol").await;
    let (first, _) = start(&customer, "vip", who(1), "one").await;
    let (lowered, _) = start(&customer, "vip", who(2), "two").await;
    let (third, _) = start(&customer, "vip", who(3), "three").await;
    // vip chats wait at high: lowering one to normal puts it last.
    carol.set_priority(lowered, Priority::Normal).await.unwrap();
    let (support, _) = start(&customer, "support", who(4), "four").await;
    let (later, _) = start(&customer, "support", who(5), "five").await;
    assert_eq!(
        carol
            .set_priority(later, Priority::Urgent)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotAllowed),
        "carol works vip only"
    );
    // Refused means not applied: support still serves first come first.
    assert_eq!(next_chat(&alice, "support").await, support);
    assert_eq!(next_chat(&carol, "vip").await, first);
    // An answered chat no longer waits: its priority is settled.
    assert!(carol.set_priority(first, Priority::Low).await.is_err());
    assert_eq!(next_chat(&alice, "vip").await, third);
    assert_eq!(next_chat(&alice, "vip").await, lowered);
}

#[tokio::test]
async fn a_long_wait_outranks_a_newer_higher_priority() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let alice = hub.agent("alice").await;
    let (low, _) = start(&customer, "aging", who(1), "been here a while").await;
    alice.set_priority(low, Priority::Low).await.unwrap();
    // One level is worth one second of waiting.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (normal, _) = start(&customer, "aging", who(2), "just came").await;
    let (urgent, _) = start(&customer, "aging", who(3), "urgent").await;
    alice.set_priority(urgent, Priority::Urgent).await.unwrap();
    // Urgent counts three seconds: it still goes first; then the low chat
    // that waited 1.3 s longer than the normal one.
    assert_eq!(next_chat(&alice, "aging").await, urgent);
    assert_eq!(next_chat(&alice, "aging").await, low);
    assert_eq!(next_chat(&alice, "aging").await, normal);
}

#[tokio::test]
async fn a_priority_survives_a_restart() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let alice = hub.agent("alice").await;
    let (first, _) = start(&customer, "support", who(1), "one").await;
    let (raised, _) = start(&customer, "support", who(2), "two").await;
    alice.set_priority(raised, Priority::High).await.unwrap();
    drop(alice);
    let hub = hub.restart(CONFIG).await;
    let alice = hub.agent("alice").await;
    assert_eq!(next_chat(&alice, "support").await, raised);
    assert_eq!(next_chat(&alice, "support").await, first);
}
