//! An admin forgets a contact (a GDPR request): their ended chats,
//! tickets and files are erased, stay erased after a restart, and other
//! contacts keep theirs; anyone else is refused, and so is a contact with
//! a chat that has not ended.

mod common;

use chathub::client::{AgentClient, ClientError, ErrorCode};
use chathub::core::{ChatId, Customer, FileId, Forgotten, TicketId};
use common::{TestHub, start};

const CONFIG: &str = r#"
[[channel]]
name = "support"
[[agent]]
id = "alice"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "root"
token = "test-token-0123456789"
channels = ["support"]
role = "admin"
"#;

fn person(name: &str, email: &str) -> Customer {
    Customer {
        name: Some(name.into()),
        email: Some(email.into()),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Option<ErrorCode> {
    result.expect_err("the request is refused").code()
}

/// What an agent can still find of Bob, and of Ann.
async fn assert_bob_gone_and_ann_kept(
    alice: &AgentClient,
    bob: (&[ChatId], TicketId, FileId),
    ann: (ChatId, FileId),
) {
    let (chats, ticket, file) = bob;
    let sessions: Vec<ChatId> = alice
        .recent_sessions(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|row| row.session.chat)
        .collect();
    assert_eq!(sessions, vec![ann.0], "only Ann's session is left");
    for chat in chats {
        assert!(
            alice.transcript(*chat).await.is_err(),
            "{chat}'s transcript is gone"
        );
    }
    let by_email = alice.contact(Some("bob@example.com"), None).await.unwrap();
    assert!(by_email.chats.is_empty() && by_email.tickets.is_empty());
    // The chats were also linked by the name Bob typed: gone there too.
    let by_name = alice.contact(None, Some("Bob")).await.unwrap();
    assert!(by_name.chats.is_empty() && by_name.tickets.is_empty());
    assert_eq!(
        code(alice.ticket(ticket).await),
        Some(ErrorCode::UnknownTicket)
    );
    assert!(alice.tickets(None, 100).await.unwrap().is_empty());
    assert_eq!(
        code(alice.download(file).await),
        Some(ErrorCode::UnknownItem)
    );

    let ann_card = alice.contact(Some("ann@example.com"), None).await.unwrap();
    assert_eq!(ann_card.chats.len(), 1);
    assert_eq!(ann_card.chats[0].chat, ann.0);
    assert!(!alice.transcript(ann.0).await.unwrap().is_empty());
    let (_, bytes) = alice.download(ann.1).await.unwrap();
    assert_eq!(bytes, b"ann's photo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_forgets_a_contact_for_good_and_others_keep_theirs() {
    let hub = TestHub::start(CONFIG).await;
    let files_dir = hub.data_dir().join("files");
    let alice = hub.present_agent("alice").await;
    let root = hub.agent("root").await;
    let customer = hub.customer().await;
    let bob = person("Bob", "bob@example.com");

    // Bob's first chat: a file and a ticket, then the end.
    let (first, _) = start(&customer, "support", bob.clone(), "my order").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, first);
    let (bob_file, _) = customer
        .send_file(first, "invoice.pdf", "application/pdf", b"%PDF bob")
        .await
        .unwrap();
    let ticket = alice
        .create_ticket(first, "Refund", "Bob wants a refund")
        .await
        .unwrap();
    alice.end_chat(first).await.unwrap();
    // Ann's chat, with a file of her own.
    let other = hub.customer().await;
    let (ann_chat, _) = start(&other, "support", person("Ann", "ann@example.com"), "hi").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, ann_chat);
    let (ann_file, _) = other
        .send_file(ann_chat, "photo.png", "image/png", b"ann's photo")
        .await
        .unwrap();
    alice.end_chat(ann_chat).await.unwrap();
    // Bob's second chat is still waiting.
    let (second, _) = start(&customer, "support", bob.clone(), "again").await;

    let key = "email:bob@example.com";
    assert_eq!(
        code(alice.forget_contact(key).await),
        Some(ErrorCode::NotAllowed),
        "an agent may not forget anyone"
    );
    assert_eq!(
        code(root.forget_contact("bob@example.com").await),
        Some(ErrorCode::InvalidRequest),
        "a key without its kind names no one"
    );
    assert_eq!(
        code(root.forget_contact(key).await),
        Some(ErrorCode::ContactBusy),
        "a contact with a live chat is refused"
    );
    // Refused means untouched.
    assert_eq!(alice.ticket(ticket).await.unwrap().id, ticket);
    assert!(files_dir.join(bob_file.id.0.to_string()).exists());

    assert_eq!(alice.get_next("support").await.unwrap().chat, second);
    alice.end_chat(second).await.unwrap();
    let forgotten = root.forget_contact(key).await.unwrap();
    assert_eq!(
        forgotten,
        Forgotten {
            chats: 2,
            tickets: 1,
            files: 1
        }
    );
    assert!(
        !files_dir.join(bob_file.id.0.to_string()).exists(),
        "the file's bytes are gone from disk"
    );
    assert!(files_dir.join(ann_file.id.0.to_string()).exists());
    let bob_traces = (&[first, second][..], ticket, bob_file.id);
    assert_bob_gone_and_ann_kept(&alice, bob_traces, (ann_chat, ann_file.id)).await;
    // Asking again finds nothing more.
    assert_eq!(
        root.forget_contact(key).await.unwrap(),
        Forgotten::default()
    );

    drop((alice, root, customer, other));
    let hub = hub.restart(CONFIG).await;
    let alice = hub.agent("alice").await;
    assert_bob_gone_and_ann_kept(&alice, bob_traces, (ann_chat, ann_file.id)).await;
    assert!(!files_dir.join(bob_file.id.0.to_string()).exists());
    hub.stop().await;
}
