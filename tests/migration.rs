//! A client whose network changes mid-chat (Wi-Fi to mobile; here, a new
//! UDP socket on another port) keeps its QUIC connection: connection
//! migration, with no reconnect, no message lost or repeated, and the chat
//! going on in both directions at once.

mod common;

use std::net::UdpSocket;

use chathub::core::{ChatEventKind, Customer, Party};
use common::{CONFIG, PATIENCE, TestHub, agent_chat_event, customer_chat_event, start};

/// A fresh socket on loopback, as a new network would give.
fn new_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("a loopback socket")
}

/// The text of a message event, or a description of what came instead.
fn text_of(kind: &ChatEventKind) -> String {
    match kind {
        ChatEventKind::Message { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_customer_and_an_agent_move_to_new_sockets_mid_chat_without_reconnecting() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", Customer::default(), "hello").await;
    let assignment = alice.get_next("support").await.unwrap();
    assert_eq!(assignment.chat, chat);
    assert_eq!(text_of(&next_message(&alice).await.kind), "hello");
    alice.send(chat, "hi, how can I help?").await.unwrap();
    let mut customer_seq = 0;
    loop {
        let event = customer_chat_event(&customer).await;
        assert!(event.seq > customer_seq, "in order, once");
        customer_seq = event.seq;
        if text_of(&event.kind) == "hi, how can I help?" {
            break;
        }
    }

    // The customer's network changes: its next message leaves from the new
    // socket, and the agent's answer finds it there.
    customer.move_to_socket(new_socket()).unwrap();
    customer.send(chat, "sent after moving").await.unwrap();
    let event = tokio::time::timeout(PATIENCE, next_message(&alice))
        .await
        .expect("the agent gets the message sent after the move");
    assert_eq!(text_of(&event.kind), "sent after moving");
    assert_eq!(event.kind_party(), Some(Party::Customer));
    alice
        .send(chat, "answered to the new address")
        .await
        .unwrap();
    for expected in ["sent after moving", "answered to the new address"] {
        let event = customer_chat_event(&customer).await;
        assert_eq!(event.seq, customer_seq + 1, "no gap, no repeat");
        assert_eq!(text_of(&event.kind), expected);
        customer_seq = event.seq;
    }

    // Moving while only receiving: the endpoint announces the new address
    // at once, so an event pushed right after the move arrives without the
    // customer saying anything first.
    customer.move_to_socket(new_socket()).unwrap();
    alice
        .send(chat, "pushed after the second move")
        .await
        .unwrap();
    let event = customer_chat_event(&customer).await;
    assert_eq!(event.seq, customer_seq + 1);
    assert_eq!(text_of(&event.kind), "pushed after the second move");

    // The agent moves too; the chat goes on.
    alice.move_to_socket(new_socket()).unwrap();
    customer.send(chat, "still there?").await.unwrap();
    let event = next_message(&alice).await;
    assert_eq!(text_of(&event.kind), "still there?");
    assert_eq!(event.seq, customer_seq + 2, "the agent misses nothing");
    alice.end_chat(chat).await.unwrap();
    let own = customer_chat_event(&customer).await;
    assert_eq!(
        (own.seq, text_of(&own.kind)),
        (customer_seq + 2, "still there?".into())
    );
    let event = customer_chat_event(&customer).await;
    assert_eq!(event.seq, customer_seq + 3);
    assert!(
        matches!(event.kind, ChatEventKind::Ended { .. }),
        "{event:?}"
    );

    // Nothing of this was a reconnect: one QUIC connection each throughout
    // (a reconnect would also have replayed the chat, and the seqs above
    // would have shown a repeat).
    assert_eq!(customer.reconnects(), 0);
    assert_eq!(alice.reconnects(), 0);
}

/// The next message event the agent receives from someone else (its own
/// come from the answers), skipping the chat's other events.
async fn next_message(agent: &chathub::client::AgentClient) -> chathub::core::ChatEvent {
    loop {
        let event = agent_chat_event(agent).await;
        if matches!(
            event.kind,
            ChatEventKind::Message {
                from: Party::Customer,
                ..
            }
        ) {
            return event;
        }
    }
}

/// Who sent a message event.
trait KindParty {
    fn kind_party(&self) -> Option<Party>;
}

impl KindParty for chathub::core::ChatEvent {
    fn kind_party(&self) -> Option<Party> {
        match &self.kind {
            ChatEventKind::Message { from, .. } => Some(from.clone()),
            _ => None,
        }
    }
}
