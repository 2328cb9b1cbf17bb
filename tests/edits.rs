//! Editing and deleting one's own message end to end over QUIC: both
//! sides see the `Edited` and `Deleted` events at their seqs, only the
//! author may change a message and only within the channel's
//! `edit_window`, the original stays in the chat's log (a supervisor
//! following the chat and the transcript both have it), and a ticket
//! shows each message as it stands.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, CustomerClient, ErrorCode};
use chathub::core::{ChatEvent, ChatEventKind, Customer, Party, Status};
use common::{TestHub, agent_chat_event, customer_chat_event};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
welcome = "Welcome!"
[[channel]]
name = "quick"
edit_window = "300ms"
[[channel]]
name = "fixed"
edit_window = "0s"
[[agent]]
id = "alice"
token = "test-token-0123456789"
[[agent]]
id = "sam"
token = "test-token-0123456789"
role = "supervisor"
supervises = ["support"]
"#
);

async fn present(hub: &TestHub, id: &str) -> AgentClient {
    let agent = hub.agent(id).await;
    agent.set_status(Status::Present).await.unwrap();
    agent
}

/// Chat events `next` yields until (and with) the first `last` takes.
async fn until<F, Fut>(mut next: F, last: impl Fn(&ChatEvent) -> bool) -> Vec<ChatEvent>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ChatEvent>,
{
    let mut seen = Vec::new();
    loop {
        let event = next().await;
        let done = last(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn kind_at(events: &[ChatEvent], seq: u64) -> Option<&ChatEventKind> {
    events
        .iter()
        .find(|event| event.seq == seq)
        .map(|event| &event.kind)
}

fn message(text: &str) -> impl Fn(&ChatEvent) -> bool + '_ {
    move |event| matches!(&event.kind, ChatEventKind::Message { text: got, .. } if got == text)
}

#[tokio::test]
async fn authors_edit_and_delete_their_messages_and_the_log_keeps_the_original() {
    let hub = TestHub::start(CONFIG).await;
    let alice = present(&hub, "alice").await;
    let sam = hub.agent("sam").await;
    let customer: CustomerClient = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hello").await;
    alice.get_next("support").await.unwrap();
    sam.follow(chat).await.unwrap();

    let typo = customer.send(chat, "my odrer is late").await.unwrap();
    let fixed = customer
        .edit_message(chat, typo, "my order is late")
        .await
        .unwrap();
    assert!(fixed > typo);
    let reply = alice.send(chat, "Which order?").await.unwrap();
    let deleted = alice.delete_message(chat, reply).await.unwrap();
    alice.send(chat, "Let me look").await.unwrap();

    // The agent sees the edit at its seq, pointing at the message.
    let seen = until(|| agent_chat_event(&alice), message("Let me look")).await;
    assert_eq!(
        kind_at(&seen, fixed),
        Some(&ChatEventKind::Edited {
            seq: typo,
            text: "my order is late".into()
        })
    );
    // The customer sees both changes too, its own edit (made by the SDK
    // from the answer) and the agent's deletion, in seq order.
    let shown = until(|| customer_chat_event(&customer), message("Let me look")).await;
    assert_eq!(
        kind_at(&shown, fixed),
        Some(&ChatEventKind::Edited {
            seq: typo,
            text: "my order is late".into()
        })
    );
    assert_eq!(
        kind_at(&shown, deleted),
        Some(&ChatEventKind::Deleted { seq: reply })
    );
    for pair in shown.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }

    // Refusals, each typed: another's message, the hub's welcome, an
    // event that is no message, a message deleted already, a seq beyond
    // the chat.
    let err = alice
        .edit_message(chat, typo, "not mine")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourMessage), "{err}");
    let err = customer.delete_message(chat, reply).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourMessage), "{err}");
    let welcome = 3;
    assert!(matches!(
        kind_at(&seen, welcome),
        Some(ChatEventKind::Message {
            from: Party::System,
            ..
        })
    ));
    let err = customer.delete_message(chat, welcome).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotYourMessage), "{err}");
    let err = customer.edit_message(chat, 1, "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMessage), "{err}");
    let err = customer.edit_message(chat, 9_999, "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMessage), "{err}");
    let err = alice.delete_message(chat, reply).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyDeleted), "{err}");
    let err = alice.edit_message(chat, reply, "back").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AlreadyDeleted), "{err}");
    let err = customer
        .edit_message(chat, typo, "x".repeat(17 * 1024))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MessageTooLong), "{err}");
    let err = customer.edit_message(chat, typo, "  ").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EmptyMessage), "{err}");

    // The supervisor following the chat sees the original and the
    // changes; so does the transcript, which is the log.
    let followed = until(|| agent_chat_event(&sam), message("Let me look")).await;
    for log in [followed, alice.transcript(chat).await.unwrap()] {
        assert!(matches!(
            kind_at(&log, typo),
            Some(ChatEventKind::Message { text, .. }) if text == "my odrer is late"
        ));
        assert!(matches!(
            kind_at(&log, reply),
            Some(ChatEventKind::Message { text, .. }) if text == "Which order?"
        ));
        assert_eq!(
            kind_at(&log, deleted),
            Some(&ChatEventKind::Deleted { seq: reply })
        );
    }

    // A ticket shows each message as it stands.
    let ticket = alice.create_ticket(chat, "Late order", "").await.unwrap();
    let ticket = alice.ticket(ticket).await.unwrap();
    assert!(matches!(
        kind_at(&ticket.transcript, typo),
        Some(ChatEventKind::Message { text, .. }) if text == "my order is late"
    ));
    assert_eq!(
        kind_at(&ticket.transcript, reply),
        Some(&ChatEventKind::Deleted { seq: reply })
    );
    assert!(!format!("{ticket:?}").contains("odrer"), "{ticket:?}");
    assert!(
        !format!("{ticket:?}").contains("Which order?"),
        "{ticket:?}"
    );

    // Once the chat ended, nothing changes any more.
    alice.end_chat(chat).await.unwrap();
    let err = customer
        .edit_message(chat, typo, "later")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ChatEnded), "{err}");
}

#[tokio::test]
async fn changes_are_refused_after_the_edit_window_and_when_it_is_zero() {
    let hub = TestHub::start(CONFIG).await;
    let alice = present(&hub, "alice").await;
    let customer = hub.customer().await;
    let (quick, _) = common::start(&customer, "quick", Customer::default(), "hi").await;
    let (fixed, _) = common::start(&customer, "fixed", Customer::default(), "hi").await;
    alice.get_next("quick").await.unwrap();
    alice.get_next("fixed").await.unwrap();

    let early = customer.send(quick, "soon").await.unwrap();
    let edit = customer.edit_message(quick, early, "soon!").await.unwrap();
    assert!(edit > early, "within the window");
    let late = customer.send(quick, "later").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = customer.edit_message(quick, late, "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EditWindowPassed), "{err}");
    let err = customer.delete_message(quick, late).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EditWindowPassed), "{err}");

    let sent = customer.send(fixed, "final").await.unwrap();
    let err = customer.delete_message(fixed, sent).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EditWindowPassed), "{err}");
    let mine = alice.send(fixed, "mine").await.unwrap();
    let err = alice.edit_message(fixed, mine, "x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::EditWindowPassed), "{err}");
}
