//! The seed's core chat flow, end to end over QUIC on loopback: a customer
//! starts a chat, it waits in the queue, an agent takes it with get-next,
//! both sides talk, the chat ends and shows in recent sessions.

mod common;

use std::collections::HashSet;

use chathub::client::ErrorCode;
use chathub::core::{ChatEventKind, Customer, Party, QueueChange, Status};
use common::{CONFIG, TestHub, agent_chat_event, customer_chat_event, queue_update, start};

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

#[tokio::test]
async fn a_chat_from_start_to_recent_sessions() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.agent("alice").await;
    assert_eq!(alice.profile().name, "Alice");
    assert_eq!(alice.profile().status, Status::Absent);
    alice.set_status(Status::Present).await.unwrap();

    // The agent first sees the (empty) queue, then the chat arriving.
    let snapshot = queue_update(&alice).await;
    assert_eq!(
        (snapshot.waiting, snapshot.change),
        (0, QueueChange::Snapshot(vec![]))
    );

    let customer = hub.customer().await;
    let (chat, waiting) = start(&customer, "support", ada(), "Hi! My parcel is late 📦").await;
    assert_eq!(waiting, 1);

    let added = queue_update(&alice).await;
    assert_eq!(added.waiting, 1, "the badge counts the waiting chat");
    let QueueChange::Added(row) = &added.change else {
        panic!("expected a row, got {added:?}")
    };
    assert_eq!(row.chat, chat);
    assert_eq!(row.customer, ada());
    assert_eq!(row.first_message, "Hi! My parcel is late 📦");
    let incoming = alice.incoming("support").unwrap();
    assert_eq!(incoming.waiting, 1);
    assert_eq!(incoming.rows.len(), 1);

    // The customer sees the chat start, its own message and the welcome.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(customer_chat_event(&customer).await);
    }
    assert!(matches!(seen[0].kind, ChatEventKind::Started { .. }));
    assert!(
        matches!(&seen[2].kind, ChatEventKind::Message { from: Party::System, text, .. } if text == "Welcome to support!")
    );

    let assignment = alice.get_next("support").await.unwrap();
    assert_eq!(assignment.chat, chat);
    assert_eq!(assignment.customer, ada());
    assert_eq!(assignment.first_message, "Hi! My parcel is late 📦");
    assert_eq!(queue_update(&alice).await.waiting, 0);
    assert_eq!(alice.incoming("support").unwrap().rows.len(), 0);

    // The agent receives the transcript so far, ending with its assignment.
    let mut transcript = Vec::new();
    for _ in 0..4 {
        transcript.push(agent_chat_event(&alice).await);
    }
    assert_eq!(
        transcript.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(
        matches!(&transcript[3].kind, ChatEventKind::Assigned { agent } if agent.as_str() == "alice")
    );
    let told = customer_chat_event(&customer).await;
    assert_eq!(told.seq, 4);
    assert!(matches!(told.kind, ChatEventKind::Assigned { .. }));

    // Both sides talk; emoji pass through unchanged; seqs continue.
    let seq = alice
        .send(chat, "Hello Ada 👋 let me look 🔎")
        .await
        .unwrap();
    assert_eq!(seq, 5);
    let heard = customer_chat_event(&customer).await;
    assert!(
        matches!(&heard.kind, ChatEventKind::Message { text, from: Party::Agent(_), .. } if text == "Hello Ada 👋 let me look 🔎")
    );
    assert_eq!(
        agent_chat_event(&alice).await.seq,
        5,
        "the agent sees its own message too"
    );
    assert_eq!(customer.send(chat, "thanks 🙏🏽").await.unwrap(), 6);
    let reply = agent_chat_event(&alice).await;
    assert!(
        matches!(&reply.kind, ChatEventKind::Message { from: Party::Customer, text, .. } if text == "thanks 🙏🏽")
    );

    let echo = customer_chat_event(&customer).await;
    assert_eq!(
        echo.seq, 6,
        "the customer sees its own message in the transcript too"
    );

    alice.end_chat(chat).await.unwrap();
    let ended = customer_chat_event(&customer).await;
    assert_eq!(ended.seq, 7);
    assert!(
        matches!(&ended.kind, ChatEventKind::Ended { by: Party::Agent(agent) } if agent.as_str() == "alice")
    );

    let recent = alice.recent_sessions(None, 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].session.chat, chat);
    assert_eq!(
        recent[0].session.agent.as_ref().map(|a| a.as_str()),
        Some("alice")
    );
    assert_eq!(recent[0].session.customer, ada());
    let full = alice.transcript(chat).await.unwrap();
    assert_eq!(
        full.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );

    // Nothing more can be said in an ended chat.
    let err = customer.send(chat, "hello?").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ChatEnded));
    hub.stop().await;
}

#[tokio::test]
async fn two_customers_and_two_agents_at_once() {
    let hub = TestHub::start(CONFIG).await;
    let (alice, bob) = (
        hub.present_agent("alice").await,
        hub.present_agent("bob").await,
    );
    let (c1, c2) = (hub.customer().await, hub.customer().await);
    let ((s1, _), (s2, _)) = tokio::join!(
        start(&c1, "support", ada(), "first customer"),
        start(&c2, "support", Customer::default(), "second customer"),
    );
    let (a, b) = tokio::join!(alice.get_next("support"), bob.get_next("support"));
    let (a, b) = (a.unwrap(), b.unwrap());
    let taken: HashSet<_> = [a.chat, b.chat].into();
    assert_eq!(
        taken,
        [s1, s2].into(),
        "each chat went to exactly one agent"
    );

    // Each agent talks with its own customer only.
    let (alice_chat, bob_chat) = (a.chat, b.chat);
    alice.send(alice_chat, "from alice").await.unwrap();
    bob.send(bob_chat, "from bob").await.unwrap();
    for (customer, chat) in [(&c1, s1), (&c2, s2)] {
        let expected = if chat == alice_chat {
            "from alice"
        } else {
            "from bob"
        };
        loop {
            let event = customer_chat_event(customer).await;
            assert_eq!(event.chat, chat, "a customer only hears its own chat");
            if let ChatEventKind::Message {
                from: Party::Agent(_),
                text,
                ..
            } = &event.kind
            {
                assert_eq!(text, expected);
                break;
            }
        }
    }
    // Alice may not write into Bob's chat.
    let err = alice.send(bob_chat, "hijack").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat));
    // Nor may a customer write into another customer's chat.
    let other = if s1 == alice_chat {
        bob_chat
    } else {
        alice_chat
    };
    let err = c1.send(other, "peek").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat));
    hub.stop().await;
}

#[tokio::test]
async fn messages_of_a_chat_arrive_in_order_with_consecutive_seqs() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "hello").await;
    alice.get_next("support").await.unwrap();
    for _ in 0..4 {
        agent_chat_event(&alice).await;
    }
    // Pipelined sends from clones of one client, not awaited one by one.
    let sends: Vec<_> = (0..200)
        .map(|n| {
            let customer = customer.clone();
            async move { customer.send(chat, format!("message {n}")).await.unwrap() }
        })
        .collect();
    let mut seqs = futures::future::join_all(sends).await;
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (5..205).collect::<Vec<u64>>(),
        "every message stored once"
    );
    let mut last = 4;
    for _ in 0..200 {
        let event = agent_chat_event(&alice).await;
        assert_eq!(event.seq, last + 1, "no gap, no duplicate, in order");
        last = event.seq;
    }
    hub.stop().await;
}

#[tokio::test]
async fn refusals_are_typed_errors() {
    let hub = TestHub::start(CONFIG).await;
    let wrong =
        chathub::client::AgentClient::connect(&hub.client, "alice", "not-the-token-at-all").await;
    assert_eq!(
        wrong.err().and_then(|e| e.code()),
        Some(ErrorCode::Unauthorized)
    );
    let nobody = chathub::client::AgentClient::connect(&hub.client, "mallory", common::TOKEN).await;
    assert_eq!(
        nobody.err().and_then(|e| e.code()),
        Some(ErrorCode::Unauthorized)
    );

    let customer = hub.customer().await;
    let err = customer
        .start_chat("nowhere", ada(), "hi")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownChannel));
    let err = customer
        .start_chat("support", ada(), "   ")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EmptyMessage));
    let err = customer
        .start_chat("support", ada(), "x".repeat(20_000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MessageTooLong));

    let alice = hub.present_agent("alice").await;
    let err = alice.get_next("support").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueueEmpty));
    let err = alice.get_next("sales").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NotAllowed),
        "alice does not work sales"
    );
    let err = alice
        .send(chathub::core::ChatId(999), "hi")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownChat));

    // A queued chat is not yet anyone's.
    let (chat, _) = start(&customer, "support", ada(), "hi").await;
    let err = alice.send(chat, "too early").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat));
    let err = alice.end_chat(chat).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat));
    let err = alice.recent_sessions(None, 0).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
    // Carol (sales) may not read a support transcript.
    let carol = hub.agent("carol").await;
    let err = carol.transcript(chat).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourChat));
    hub.stop().await;
}

#[tokio::test]
async fn a_customer_leaving_a_queued_chat_takes_it_off_the_queue() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    queue_update(&alice).await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "never mind").await;
    assert_eq!(queue_update(&alice).await.waiting, 1);
    customer.leave(chat).await.unwrap();
    let removed = queue_update(&alice).await;
    assert_eq!(
        (removed.waiting, removed.change),
        (0, QueueChange::Removed(chat))
    );
    let err = alice.get_next("support").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::QueueEmpty));
    let recent = alice.recent_sessions(None, 10).await.unwrap();
    assert_eq!(recent[0].session.ended_by, Party::Customer);
    assert_eq!(recent[0].session.agent, None);
    hub.stop().await;
}
