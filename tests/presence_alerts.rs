//! Presence, unanswered-chat alerts, the offline form and picking a chat,
//! end to end over QUIC.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, ErrorCode, Event, Started};
use chathub::core::{AgentId, ChatId, Customer, Status, TicketSource};
use common::{TestHub, start};

/// support alerts after 600 ms; sales has no offline form; agents drop to
/// Absent 1 s after their last connection closes.
const CONFIG: &str = r#"
presence_grace = "1s"
[[channel]]
name = "support"
alert_after = "600ms"
[[channel]]
name = "sales"
offline_form = false
[[agent]]
id = "alice"
token = "test-token-0123456789"
channels = ["support"]
capacity = 2
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "carol"
token = "test-token-0123456789"
channels = ["sales"]
"#;

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

/// The alerts (raised and cleared) an agent receives within `wait`.
async fn alert_events(agent: &AgentClient, wait: Duration) -> Vec<Event> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        if matches!(event, Event::Alert(_) | Event::AlertCleared { .. }) {
            got.push(event);
        }
    }
    got
}

/// Waits for the next alert event of an agent.
async fn next_alert_event(agent: &AgentClient) -> Event {
    loop {
        let event = tokio::time::timeout(common::PATIENCE, agent.next_event())
            .await
            .expect("an alert within the test's patience")
            .expect("the connection is open");
        if matches!(event, Event::Alert(_) | Event::AlertCleared { .. }) {
            return event;
        }
    }
}

fn alerted_chat(event: &Event) -> Option<ChatId> {
    match event {
        Event::Alert(alert) => Some(alert.row.chat),
        _ => None,
    }
}

fn cleared_chat(event: &Event) -> Option<ChatId> {
    match event {
        Event::AlertCleared { chat, .. } => Some(*chat),
        _ => None,
    }
}

#[tokio::test]
async fn nobody_present_means_the_offline_form_and_its_ticket() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let alice = hub.agent("alice").await; // signed in, but Absent
    let Started::Offline(form) = customer
        .start_chat("support", ada(), "anyone?")
        .await
        .unwrap()
    else {
        panic!("with nobody Present the customer gets the offline form")
    };
    let keys: Vec<&str> = form.fields.iter().map(|field| field.key.as_str()).collect();
    assert_eq!(keys, ["name", "email", "message"]);
    assert_eq!(form.channel.as_str(), "support");

    // A bad form is refused with a typed error; a good one becomes a ticket.
    let err = customer
        .submit_offline_form("support", None, "not-an-address", "call me")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
    let ticket = customer
        .submit_offline_form(
            "support",
            Some("Ada".into()),
            "ada@example.com",
            "Please call me 📞",
        )
        .await
        .unwrap();
    let rows = alice.tickets(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, ticket);
    assert_eq!(rows[0].source, TicketSource::OfflineForm);
    let full = alice.ticket(ticket).await.unwrap();
    assert_eq!(full.message, "Please call me 📞");
    // The ticket is in Ada's contact history.
    let card = alice.contact(Some("ada@example.com"), None).await.unwrap();
    assert_eq!(
        card.tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ticket]
    );
    assert_eq!(full.customer.email.as_deref(), Some("ada@example.com"));
    // Carol works sales: the support ticket is not hers to read.
    let carol = hub.agent("carol").await;
    assert!(carol.tickets(None, 10).await.unwrap().is_empty());
    assert_eq!(
        carol.ticket(ticket).await.unwrap_err().code(),
        Some(ErrorCode::UnknownTicket)
    );

    // A channel without an offline form queues the chat anyway (an Absent
    // agent may still answer it) and refuses the form.
    let (chat, _) = start(&customer, "sales", ada(), "hello sales").await;
    assert_eq!(carol.get_next("sales").await.unwrap().chat, chat);
    let err = customer
        .submit_offline_form("sales", None, "ada@example.com", "hi")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));

    // Once an agent is Present, chats queue.
    alice.set_status(Status::Present).await.unwrap();
    start(&customer, "support", ada(), "now?").await;
    hub.stop().await;
}

#[tokio::test]
async fn present_agents_are_listed_and_drop_out_after_the_grace_period() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.agent("bob").await;
    let carol = hub.present_agent("carol").await;
    assert_eq!(
        bob.present_agents("support").await.unwrap(),
        [AgentId::new("alice")]
    );
    assert_eq!(
        bob.present_agents("sales").await.unwrap(),
        [AgentId::new("carol")]
    );
    bob.set_status(Status::Present).await.unwrap();
    assert_eq!(
        carol.present_agents("support").await.unwrap(),
        [AgentId::new("alice"), AgentId::new("bob")]
    );
    bob.set_status(Status::Absent).await.unwrap();
    assert_eq!(
        carol.present_agents("support").await.unwrap(),
        [AgentId::new("alice")]
    );
    assert_eq!(
        carol.present_agents("nowhere").await.unwrap_err().code(),
        Some(ErrorCode::UnknownChannel)
    );

    // Alice's connection drops; a reconnect within the grace period keeps
    // her Present...
    alice.close();
    drop(alice);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alice = hub.agent("alice").await;
    assert_eq!(
        alice.profile().status,
        Status::Present,
        "a quick reconnect does not flap"
    );
    // ...but once her last connection has been gone for the grace period,
    // she is Absent and customers get the offline form.
    alice.close();
    drop(alice);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if carol.present_agents("support").await.unwrap().is_empty() {
            gone = true;
            break;
        }
    }
    assert!(gone, "alice is no longer Present after the grace period");
    let customer = hub.customer().await;
    let started = customer
        .start_chat("support", ada(), "hello?")
        .await
        .unwrap();
    assert!(matches!(started, Started::Offline(_)));
    hub.stop().await;
}

#[tokio::test]
async fn alerts_reach_present_members_only_and_are_cleared_for_all_who_got_them() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.agent("bob").await; // Absent
    let carol = hub.present_agent("carol").await; // Present, other channel
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "help!").await;

    // After alert_after (600 ms) the Present member is alerted.
    let raised = next_alert_event(&alice).await;
    assert_eq!(alerted_chat(&raised), Some(chat));
    let Event::Alert(alert) = &raised else {
        unreachable!()
    };
    assert_eq!(alert.row.first_message, "help!");
    assert!(alert.raised.since(alert.row.since) >= Duration::from_millis(550));
    // Neither the Absent member nor the other channel's agent is.
    assert!(
        alert_events(&bob, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert!(
        alert_events(&carol, Duration::from_millis(10))
            .await
            .is_empty()
    );

    // Bob becomes Present while the alert stands: he gets it now.
    bob.set_status(Status::Present).await.unwrap();
    assert_eq!(alerted_chat(&next_alert_event(&bob).await), Some(chat));

    // Alice picks the chat: the alert is cleared for everyone who got it.
    let assignment = alice.pick(chat).await.unwrap();
    assert_eq!(assignment.chat, chat);
    assert_eq!(cleared_chat(&next_alert_event(&alice).await), Some(chat));
    assert_eq!(cleared_chat(&next_alert_event(&bob).await), Some(chat));
    assert!(
        alert_events(&carol, Duration::from_millis(200))
            .await
            .is_empty()
    );

    // A chat answered before alert_after is never alerted.
    let (quick, _) = start(&customer, "support", ada(), "quick one").await;
    assert_eq!(bob.get_next("support").await.unwrap().chat, quick);
    assert!(
        alert_events(&alice, Duration::from_millis(1500))
            .await
            .is_empty()
    );

    // A customer who leaves an alerted chat clears its alert too.
    let (left, _) = start(&customer, "support", ada(), "never mind").await;
    assert_eq!(alerted_chat(&next_alert_event(&alice).await), Some(left));
    customer.leave(left).await.unwrap();
    assert_eq!(cleared_chat(&next_alert_event(&alice).await), Some(left));
    hub.stop().await;
}

#[tokio::test]
async fn pick_races_have_one_winner_and_capacity_is_enforced() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await; // capacity 2
    let bob = hub.present_agent("bob").await; // capacity 4 (default)
    let customer = hub.customer().await;
    let mut chats = Vec::new();
    for n in 0..4 {
        chats.push(
            start(&customer, "support", ada(), &format!("chat {n}"))
                .await
                .0,
        );
    }

    // Both double-click the same row: exactly one gets it.
    let (a, b) = tokio::join!(alice.pick(chats[2]), bob.pick(chats[2]));
    let alice_won = a.is_ok();
    assert_ne!(a.is_ok(), b.is_ok(), "exactly one pick wins");
    let loser = if alice_won {
        b.unwrap_err()
    } else {
        a.unwrap_err()
    };
    assert_eq!(loser.code(), Some(ErrorCode::ChatAlreadyTaken));

    // A picked chat is gone from the queue: get-next skips it.
    let other = if alice_won { &bob } else { &alice };
    assert_eq!(other.get_next("support").await.unwrap().chat, chats[0]);
    // Either way alice now holds one chat.
    let first = if alice_won { chats[2] } else { chats[0] };

    // Capacity: alice may hold 2.
    let second = alice.get_next("support").await.unwrap().chat;
    assert_eq!(second, chats[1]);
    assert_eq!(
        alice.get_next("support").await.unwrap_err().code(),
        Some(ErrorCode::AtCapacity)
    );
    assert_eq!(
        alice.pick(chats[3]).await.unwrap_err().code(),
        Some(ErrorCode::AtCapacity)
    );

    // Ending a chat frees a slot at once; the refused pick took nothing,
    // so the chat still waits for her.
    alice.end_chat(first).await.unwrap();
    assert_eq!(alice.pick(chats[3]).await.unwrap().chat, chats[3]);

    // Picking an unknown or ended chat is a typed error.
    let held = first;
    // Picking an unknown or ended chat is a typed error.
    assert_eq!(
        bob.pick(ChatId(9_999)).await.unwrap_err().code(),
        Some(ErrorCode::UnknownChat)
    );
    assert_eq!(
        bob.pick(held).await.unwrap_err().code(),
        Some(ErrorCode::ChatEnded)
    );
    hub.stop().await;
}
