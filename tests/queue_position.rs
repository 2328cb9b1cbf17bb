//! A waiting customer is told where they stand: their place in the queue,
//! as it changes, and an estimate of the wait once the channel has
//! answered enough chats to tell.

mod common;

use chathub::client::{CustomerClient, Event};
use chathub::core::{ChatId, Customer, QueuePlace};
use common::{TestHub, start};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
offline_form = false
[[agent]]
id = "alice"
token = "test-token-0123456789"
capacity = 10
"#
);

fn who(n: u32) -> Customer {
    Customer {
        name: Some(format!("Customer {n}")),
        email: None,
    }
}

/// The next place `customer` is told of `chat`, skipping other events.
async fn place(customer: &CustomerClient, chat: ChatId) -> QueuePlace {
    tokio::time::timeout(common::PATIENCE, async {
        loop {
            if let Some(Event::QueuePosition(place)) = customer.next_event().await
                && place.chat == chat
            {
                return place;
            }
        }
    })
    .await
    .expect("a place within the test's patience")
}

#[tokio::test]
async fn customers_hear_their_place_move_up_and_then_an_estimate() {
    let hub = TestHub::start(CONFIG).await;
    let mut waiting = Vec::new();
    for n in 0..4 {
        let customer = hub.customer().await;
        let (chat, _) = start(&customer, "support", who(n), "hello").await;
        waiting.push((customer, chat));
    }
    for (n, (customer, chat)) in waiting.iter().enumerate() {
        let told = place(customer, *chat).await;
        assert_eq!(told.position, n as u32 + 1);
        assert_eq!(told.estimated_wait_secs, None, "nothing answered yet");
    }
    let alice = hub.agent("alice").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, waiting[0].1);
    // The rest move up by one.
    for (n, (customer, chat)) in waiting.iter().enumerate().skip(1) {
        assert_eq!(place(customer, *chat).await.position, n as u32);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, waiting[1].1);
    // Two answers 0.3 s apart: the next in line waits about a step.
    let (customer, chat) = &waiting[2];
    let told = place(customer, *chat).await;
    assert_eq!(told.position, 1);
    assert_eq!(told.estimated_wait_secs, Some(15));
    let (customer, chat) = &waiting[3];
    let told = place(customer, *chat).await;
    assert_eq!(told.position, 2);
    assert_eq!(told.estimated_wait_secs, Some(15));
}
