//! A live chat is bounded in length, and a ticket made from a long chat can
//! always be read back.

mod common;

use chathub::core::{ChatEventKind, Party};
use chathub::protocol::ErrorCode;
use common::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_at_its_length_limit_is_refused_and_its_ticket_reads_back() {
    let config = concat!(
        roomy_limits!(),
        "chat_bytes = 2000000\n",
        "[[channel]]\nname = \"support\"\n",
        "[[agent]]\nid = \"alice\"\ntoken = \"test-token-0123456789\"\n",
    );
    let hub = TestHub::start(config).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Default::default(), "hi").await;
    alice.get_next("support").await.unwrap();
    let text = "x".repeat(16_000);
    let mut refused = None;
    for _ in 0..200 {
        if let Err(err) = customer.send(chat, text.clone()).await {
            refused = err.code();
            break;
        }
    }
    assert_eq!(refused, Some(ErrorCode::ChatTooLong));
    // The agent is told, once, in the chat.
    let told = alice
        .transcript(chat)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| {
            matches!(&event.kind, ChatEventKind::Message { from: Party::System, text, .. } if text.contains("length limit"))
        })
        .count();
    assert_eq!(told, 1);
    let ticket = alice
        .create_ticket(chat, "long", "see transcript")
        .await
        .unwrap();
    // Ticket lists and the ticket itself still read, for every agent.
    assert_eq!(alice.tickets(None, 10).await.unwrap()[0].id, ticket);
    let read = alice.ticket(ticket).await.unwrap();
    assert_eq!(read.transcript.first().map(|e| e.seq), Some(1));
    assert!(read.message.contains("last"), "{}", read.message);
    hub.stop().await;
}
