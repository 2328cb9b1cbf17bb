//! Everything an agent does with a chat besides talking, end to end over
//! QUIC: transfer to an agent or a channel, decline, ticket from a chat,
//! the end form, the contact side panel, quick replies / FAQ / templates,
//! and files.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, CustomerClient, ErrorCode, Event};
use chathub::core::{
    ChatEvent, ChatEventKind, ChatId, Customer, ItemDraft, ItemKind, ItemRef, Party, Scope, Status,
    TicketSource,
};
use common::{TestHub, start};

const CONFIG: &str = r#"
[[channel]]
name = "support"
offline_form = false
end_form = true
return_window_secs = 60
file_limit_bytes = 300000
[[channel]]
name = "sales"
offline_form = false
[[agent]]
id = "alice"
name = "Alice"
token = "test-token-0123456789"
channels = ["support"]
capacity = 2
[[agent]]
id = "bob"
name = "Bob"
token = "test-token-0123456789"
channels = ["support"]
capacity = 1
[[agent]]
id = "carol"
name = "Carol"
token = "test-token-0123456789"
channels = ["sales"]
"#;

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("Ada@Example.com".into()),
    }
}

/// The next chat event matching `want`, skipping others.
async fn wait_event(
    next: impl AsyncFnMut() -> Option<Event>,
    want: impl Fn(&ChatEvent) -> bool,
) -> ChatEvent {
    let mut next = next;
    let found = tokio::time::timeout(common::PATIENCE, async {
        loop {
            if let Some(Event::Chat(event)) = next().await
                && want(&event)
            {
                return event;
            }
        }
    });
    found.await.expect("the event within the test's patience")
}

async fn agent_event(agent: &AgentClient, want: impl Fn(&ChatEvent) -> bool) -> ChatEvent {
    wait_event(async || agent.next_event().await, want).await
}

async fn customer_event(customer: &CustomerClient, want: impl Fn(&ChatEvent) -> bool) -> ChatEvent {
    wait_event(async || customer.next_event().await, want).await
}

/// A customer's chat answered by `agent`.
async fn answered(hub: &TestHub, agent: &AgentClient) -> (CustomerClient, ChatId) {
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "I need help 🙂").await;
    assert_eq!(agent.pick(chat).await.unwrap().chat, chat);
    (customer, chat)
}

#[tokio::test]
async fn transfer_to_an_agent_decline_and_transfer_to_a_channel() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.agent("bob").await; // Absent for now
    let carol = hub.present_agent("carol").await;
    let (customer, chat) = answered(&hub, &alice).await;
    alice.send(chat, "let me ask a colleague").await.unwrap();

    // Only a Present member of the chat's channel with room can take it.
    let err = alice.transfer_to_agent(chat, "bob").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::AgentUnavailable),
        "bob is Absent"
    );
    let err = alice.transfer_to_agent(chat, "carol").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::AgentUnavailable),
        "carol works sales"
    );
    bob.set_status(Status::Present).await.unwrap();
    let err = bob.transfer_to_agent(chat, "alice").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NotYourChat),
        "only the chat's agent transfers it"
    );

    alice.transfer_to_agent(chat, "bob").await.unwrap();
    // Bob gets the whole transcript, ending with the transfer; the customer
    // is told.
    let mut seen = Vec::new();
    loop {
        let event = agent_event(&bob, |e| e.chat == chat).await;
        let done = matches!(event.kind, ChatEventKind::TransferredToAgent { .. });
        seen.push(event);
        if done {
            break;
        }
    }
    assert_eq!(seen.first().map(|e| e.seq), Some(1), "from the start");
    assert!(seen.iter().any(|e| matches!(&e.kind, ChatEventKind::Message { text, .. } if text == "let me ask a colleague")));
    customer_event(&customer, |e| {
        matches!(e.kind, ChatEventKind::TransferredToAgent { .. })
    })
    .await;
    assert_eq!(
        alice.send(chat, "still me?").await.unwrap_err().code(),
        Some(ErrorCode::NotYourChat)
    );
    bob.send(chat, "Hi, Bob here").await.unwrap();

    // Bob declines: it returns to Alice, who has room.
    bob.decline_transfer(chat).await.unwrap();
    alice.send(chat, "back with me").await.unwrap();
    assert_eq!(
        bob.decline_transfer(chat).await.unwrap_err().code(),
        Some(ErrorCode::NotYourChat)
    );

    // To another channel's queue: Carol (sales) takes it with its history.
    alice.transfer_to_channel(chat, "sales").await.unwrap();
    assert_eq!(
        alice.send(chat, "gone?").await.unwrap_err().code(),
        Some(ErrorCode::NotYourChat)
    );
    let taken = carol.get_next("sales").await.unwrap();
    assert_eq!(taken.chat, chat);
    assert_eq!(taken.first_message, "I need help 🙂");
    let transcript = carol.transcript(chat).await.unwrap();
    assert!(transcript.iter().any(|e| matches!(&e.kind, ChatEventKind::Requeued { channel, .. } if channel.as_str() == "sales")));
    assert!(
        transcript.iter().any(
            |e| matches!(&e.kind, ChatEventKind::Message { text, .. } if text == "back with me")
        )
    );
    carol.send(chat, "Sales here 👋").await.unwrap();
    // Alice's slot came back: she can hold two chats again.
    answered(&hub, &alice).await;
    answered(&hub, &alice).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_declined_transfer_goes_to_the_queue_when_its_sender_is_full() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await; // capacity 2
    let bob = hub.present_agent("bob").await; // capacity 1
    let (_c1, first) = answered(&hub, &alice).await;
    alice.transfer_to_agent(first, "bob").await.unwrap();
    // Bob is now full: a second transfer to him is refused.
    let (_c2, second) = answered(&hub, &alice).await;
    assert_eq!(
        alice
            .transfer_to_agent(second, "bob")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::AgentUnavailable)
    );
    let (_c3, _third) = answered(&hub, &alice).await; // alice is full again
    bob.decline_transfer(first).await.unwrap();
    // Alice had no room: the chat waits in the queue instead.
    let mut queued = false;
    for _ in 0..100 {
        if bob
            .incoming("support")
            .is_some_and(|list| list.rows.iter().any(|row| row.chat == first))
        {
            queued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(queued, "the declined chat went back to the queue");
    assert_eq!(bob.get_next("support").await.unwrap().chat, first);
    hub.stop().await;
}

#[tokio::test]
async fn tickets_from_chats_the_end_form_and_the_contact_panel() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let (customer, chat) = answered(&hub, &alice).await;
    alice
        .send(chat, "I will open a ticket for this")
        .await
        .unwrap();
    let ticket = alice
        .create_ticket(chat, "Broken parcel", "Send a replacement")
        .await
        .unwrap();
    let told = customer_event(&customer, |e| {
        matches!(e.kind, ChatEventKind::TicketCreated { .. })
    })
    .await;
    assert!(
        matches!(&told.kind, ChatEventKind::TicketCreated { ticket: t, subject } if *t == ticket && subject == "Broken parcel")
    );
    let full = alice.ticket(ticket).await.unwrap();
    assert_eq!(full.source, TicketSource::Chat(chat));
    assert_eq!(full.message, "Send a replacement");
    assert!(full.transcript.iter().any(|e| matches!(&e.kind, ChatEventKind::Message { text, .. } if text == "I will open a ticket for this")));
    let bob = hub.present_agent("bob").await;
    assert_eq!(
        bob.create_ticket(chat, "not mine", "")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotYourChat)
    );

    // The chat ends; the customer comes back through the end form and gets
    // the same agent, the same transcript, seqs continuing.
    alice.end_chat(chat).await.unwrap();
    let ended = customer_event(&customer, |e| matches!(e.kind, ChatEventKind::Ended { .. })).await;
    assert_eq!(
        alice.recent_sessions(None, 10).await.unwrap()[0]
            .session
            .chat,
        chat
    );
    customer.return_to_chat(chat).await.unwrap();
    let reopened = customer_event(&customer, |e| {
        matches!(e.kind, ChatEventKind::Reopened { .. })
    })
    .await;
    assert_eq!(reopened.seq, ended.seq + 1);
    assert!(
        matches!(&reopened.kind, ChatEventKind::Reopened { agent: Some(agent) } if agent.as_str() == "alice")
    );
    assert!(
        alice.recent_sessions(None, 10).await.unwrap().is_empty(),
        "live again"
    );
    assert_eq!(
        customer.send(chat, "one more thing").await.unwrap(),
        reopened.seq + 1
    );
    alice.send(chat, "sure").await.unwrap();

    // Alice is Absent the second time: the returning chat waits in the queue.
    alice.end_chat(chat).await.unwrap();
    alice.set_status(Status::Absent).await.unwrap();
    customer.return_to_chat(chat).await.unwrap();
    assert_eq!(bob.get_next("support").await.unwrap().chat, chat);
    bob.end_chat(chat).await.unwrap();

    // The contact panel finds Ada by email in any case, with both.
    let card = bob.contact(Some("ada@example.COM"), None).await.unwrap();
    assert_eq!(
        card.chats.iter().map(|c| c.chat).collect::<Vec<_>>(),
        [chat]
    );
    assert_eq!(
        card.tickets.iter().map(|t| t.id).collect::<Vec<_>>(),
        [ticket]
    );
    assert!(card.first_contact.is_some() && card.last_contact >= card.first_contact);
    assert_eq!(
        card.chats[0].agent.as_ref().map(|a| a.as_str()),
        Some("bob")
    );
    let by_name = bob.contact(None, Some("ada")).await.unwrap();
    assert_eq!(by_name.chats.len(), 1);
    assert!(
        bob.contact(Some("nobody@example.com"), None)
            .await
            .unwrap()
            .chats
            .is_empty()
    );

    // A channel without the end form refuses the return.
    let carol = hub.present_agent("carol").await;
    let (sales_chat, _) = start(&customer, "sales", ada(), "sales question").await;
    carol.get_next("sales").await.unwrap();
    carol.end_chat(sales_chat).await.unwrap();
    assert_eq!(
        customer
            .return_to_chat(sales_chat)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotReturnable)
    );
    hub.stop().await;
}

#[tokio::test]
async fn quick_replies_faq_and_templates_with_placeholders() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let carol = hub.present_agent("carol").await;
    let shared = alice
        .create_item(ItemDraft {
            kind: ItemKind::QuickReply,
            scope: Scope::Channel("support".into()),
            shortcut: Some("/refund".into()),
            title: "Refunds".into(),
            body: "Hi {customer.name}, {agent.name} here: refunds take 3 days 💸".into(),
        })
        .await
        .unwrap();
    let personal = alice
        .create_item(ItemDraft {
            kind: ItemKind::Template,
            scope: Scope::Personal("alice".into()),
            shortcut: None,
            title: "My sign-off".into(),
            body: "Have a nice day! /{agent.name}".into(),
        })
        .await
        .unwrap();
    alice
        .create_item(ItemDraft {
            kind: ItemKind::Faq,
            scope: Scope::Channel("support".into()),
            shortcut: None,
            title: "Opening hours".into(),
            body: "We are open 9-17.".into(),
        })
        .await
        .unwrap();
    // Who sees what.
    assert_eq!(alice.items(None).await.unwrap().len(), 3);
    assert_eq!(
        bob.items(None).await.unwrap().len(),
        2,
        "not alice's personal item"
    );
    assert_eq!(bob.items(Some(ItemKind::Faq)).await.unwrap().len(), 1);
    assert!(carol.items(None).await.unwrap().is_empty());
    let refused = carol
        .create_item(ItemDraft {
            kind: ItemKind::QuickReply,
            scope: Scope::Channel("support".into()),
            shortcut: None,
            title: "x".into(),
            body: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotAllowed));
    let bad = alice
        .create_item(ItemDraft {
            kind: ItemKind::QuickReply,
            scope: Scope::Channel("support".into()),
            shortcut: Some("refund".into()),
            title: "x".into(),
            body: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::InvalidRequest));
    assert_eq!(
        bob.delete_item(personal.id).await.unwrap_err().code(),
        Some(ErrorCode::UnknownItem)
    );

    // Sent by shortcut, placeholders filled, emoji intact.
    let (customer, chat) = answered(&hub, &alice).await;
    alice
        .insert(chat, ItemRef::Shortcut("/refund".into()))
        .await
        .unwrap();
    let sent = customer_event(&customer, |e| {
        matches!(
            &e.kind,
            ChatEventKind::Message {
                from: Party::Agent(_),
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(&sent.kind, ChatEventKind::Message { text, .. } if text == "Hi Ada, Alice here: refunds take 3 days 💸")
    );
    alice.insert(chat, ItemRef::Id(personal.id)).await.unwrap();
    assert_eq!(
        bob.insert(chat, ItemRef::Id(shared.id))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotYourChat)
    );

    // Edit and delete.
    let edited = alice
        .update_item(
            shared.id,
            ItemDraft {
                body: "Refunds take 2 days now.".into(),
                ..ItemDraft {
                    kind: shared.kind,
                    scope: shared.scope.clone(),
                    shortcut: shared.shortcut.clone(),
                    title: shared.title.clone(),
                    body: String::new(),
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.id, shared.id);
    alice
        .insert(chat, ItemRef::Shortcut("/refund".into()))
        .await
        .unwrap();
    customer_event(&customer, |e| matches!(&e.kind, ChatEventKind::Message { text, .. } if text == "Refunds take 2 days now.")).await;
    alice.delete_item(shared.id).await.unwrap();
    assert_eq!(
        alice
            .insert(chat, ItemRef::Shortcut("/refund".into()))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::UnknownItem)
    );
    hub.stop().await;
}

#[tokio::test]
async fn files_travel_on_their_own_streams_and_only_to_participants() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let carol = hub.present_agent("carol").await;
    let (customer, chat) = answered(&hub, &alice).await;
    let photo: Vec<u8> = (0..250_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let (file, seq) = customer
        .send_file(chat, "parcel 📦.jpg", "image/jpeg", &photo)
        .await
        .unwrap();
    assert_eq!(file.size, photo.len() as u64);
    // The agent hears of it as a chat event, and downloads the same bytes.
    let shared = agent_event(&alice, |e| {
        matches!(e.kind, ChatEventKind::FileShared { .. })
    })
    .await;
    assert_eq!(shared.seq, seq);
    let ChatEventKind::FileShared { file: told, from } = &shared.kind else {
        unreachable!()
    };
    assert_eq!((told, from), (&file, &Party::Customer));
    let (got, bytes) = alice.download(file.id).await.unwrap();
    assert_eq!(got, file);
    assert!(bytes == photo, "the bytes arrive unchanged");
    // Messages keep flowing while a file is on its way.
    let (_, big_seq) = tokio::join!(
        alice.send_file(chat, "manual.pdf", "application/pdf", &photo),
        alice.send(chat, "sending the manual")
    );
    assert!(big_seq.is_ok());
    let (_, mine) = customer.download(file.id).await.unwrap();
    assert_eq!(mine.len(), photo.len());

    // Over the channel's limit, or not a participant: typed refusals.
    let too_big = vec![0u8; 300_001];
    assert_eq!(
        customer
            .send_file(chat, "big.bin", "application/octet-stream", &too_big)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::FileTooLarge)
    );
    assert_eq!(
        carol.download(file.id).await.unwrap_err().code(),
        Some(ErrorCode::UnknownItem)
    );
    let stranger = hub.customer().await;
    assert_eq!(
        stranger.download(file.id).await.unwrap_err().code(),
        Some(ErrorCode::UnknownItem)
    );
    assert_eq!(
        stranger
            .send_file(chat, "x.txt", "text/plain", b"hi")
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::NotYourChat)
    );
    hub.stop().await;
}
