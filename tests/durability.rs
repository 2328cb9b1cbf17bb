//! What the store keeps across a restart of the hub over the same data
//! folder: queued chats in their order with their wait time, active chats
//! with their agent, recent sessions, tickets.

mod common;

use chathub::client::ErrorCode;
use chathub::core::{ChatEventKind, Customer, Party, QueueChange};
use common::{CONFIG, TestHub, queue_update, start};

fn who(name: &str) -> Customer {
    Customer {
        name: Some(name.into()),
        email: Some(format!("{name}@example.com")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_brings_back_queues_active_chats_sessions_and_tickets() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    // Nobody is Present yet, so the offline form is what the channel shows.
    let ticket = customer
        .submit_offline_form("support", Some("Fay".into()), "fay@example.com", "call me")
        .await
        .unwrap();
    let alice = hub.present_agent("alice").await;
    let (active, _) = start(&customer, "support", who("ada"), "first").await;
    let mut queued = Vec::new();
    for name in ["bea", "cid", "dan"] {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        queued.push(
            start(
                &customer,
                "support",
                who(name),
                &format!("hello from {name}"),
            )
            .await
            .0,
        );
    }
    assert_eq!(alice.get_next("support").await.unwrap().chat, active);
    let seq = alice.send(active, "kept across restarts 💾").await.unwrap();
    let (gone, _) = start(&customer, "support", who("eve"), "bye").await;
    customer.leave(gone).await.unwrap();
    // Wait for alice's incoming list to show the three waiting chats.
    let mut before = None;
    for _ in 0..500 {
        let list = alice.incoming("support").unwrap_or_default();
        if list.rows.len() == 3 {
            before = Some(list);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = before.expect("the incoming list shows the waiting chats");
    assert_eq!(
        before.rows.iter().map(|row| row.chat).collect::<Vec<_>>(),
        queued
    );
    drop((alice, customer));

    let data = hub.stop_keeping_data().await;
    let hub = TestHub::start_in(CONFIG, data).await;
    let alice = hub.present_agent("alice").await;

    // The queue is back in its order, with the original wait times.
    let snapshot = loop {
        let update = queue_update(&alice).await;
        if matches!(update.change, QueueChange::Snapshot(_)) {
            break update;
        }
    };
    let QueueChange::Snapshot(rows) = snapshot.change else {
        unreachable!()
    };
    assert_eq!(rows, before.rows, "same chats, same order, same since");
    assert_eq!(snapshot.waiting, 3);

    // The active chat is still alice's, with its transcript.
    let transcript = alice.transcript(active).await.unwrap();
    assert!(transcript.iter().any(|event| event.seq == seq
        && matches!(&event.kind, ChatEventKind::Message { text, .. } if text == "kept across restarts 💾")));
    assert_eq!(alice.send(active, "still here").await.unwrap(), seq + 1);
    let bob = hub.present_agent("bob").await;
    assert_eq!(
        bob.send(active, "not mine").await.unwrap_err().code(),
        Some(ErrorCode::NotYourChat)
    );

    // Get-next continues with the chat that waited longest.
    let next = bob.get_next("support").await.unwrap();
    assert_eq!(next.chat, queued[0]);
    assert_eq!(next.waiting_since, before.rows[0].since);

    // Recent sessions and tickets survived; new chats get new ids.
    let recent = alice.recent_sessions(None, 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (recent[0].session.chat, &recent[0].session.ended_by),
        (gone, &Party::Customer)
    );
    assert_eq!(alice.tickets(None, 10).await.unwrap()[0].id, ticket);
    let customer = hub.customer().await;
    let (fresh, _) = start(&customer, "support", who("gus"), "new here").await;
    assert!(fresh > gone, "chat ids are never reused");
    hub.stop().await;
}
