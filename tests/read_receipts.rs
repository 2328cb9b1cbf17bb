//! Read receipts end to end over QUIC: a participant's `mark_read` is a
//! stored `Read` event that the other side gets in the chat's seq order;
//! a mark not beyond the last one makes no event; a mark past the end, or
//! by someone outside the chat, is refused; and the marks survive a hub
//! restart, come back in a resume's replay and stay in the transcript.

mod common;

use chathub::client::{AgentClient, CustomerClient, ErrorCode};
use chathub::core::{AgentId, ChatEvent, ChatEventKind, ChatId, Customer, Party};
use chathub::protocol::{ClientFrame, Event, Hello, PROTOCOL_VERSION, Resume, Role, ServerFrame};
use common::{
    CONFIG, PATIENCE, TOKEN, TestHub, agent_chat_event, customer_chat_event, next_stream,
    read_until, start,
};

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

fn by_alice() -> Party {
    Party::Agent(AgentId::new("alice"))
}

fn read(by: Party, up_to: u64) -> ChatEventKind {
    ChatEventKind::Read { by, up_to }
}

/// The next chat event's seq and kind.
async fn next(event: impl Future<Output = ChatEvent>) -> (u64, ChatEventKind) {
    let event = event.await;
    (event.seq, event.kind)
}

/// Chat events until (and with) seq `seq`, checking they come one seq
/// after another.
async fn events_up_to<F: Future<Output = ChatEvent>>(
    mut next: impl FnMut() -> F,
    seq: u64,
) -> Vec<ChatEvent> {
    let mut seen: Vec<ChatEvent> = Vec::new();
    while seen.last().is_none_or(|event| event.seq < seq) {
        let event = next().await;
        if let Some(last) = seen.last() {
            assert_eq!(event.seq, last.seq + 1, "no gap and no repeat: {event:?}");
        }
        seen.push(event);
    }
    seen
}

/// A chat started by a customer and answered by alice (seqs 1 to 4:
/// start, first message, welcome, assignment), both sides having seen
/// all four events.
async fn answered_chat(hub: &TestHub) -> (CustomerClient, AgentClient, ChatId) {
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "Is my parcel on its way? 📦").await;
    alice.get_next("support").await.unwrap();
    events_up_to(|| customer_chat_event(&customer), 4).await;
    events_up_to(|| agent_chat_event(&alice), 4).await;
    (customer, alice, chat)
}

#[tokio::test]
async fn each_side_gets_the_others_read_mark_in_order_and_repeats_make_no_event() {
    let hub = TestHub::start(CONFIG).await;
    let (customer, alice, chat) = answered_chat(&hub).await;
    // Another connection of alice's, which gets her own marks from the hub.
    let alice_too = hub.agent("alice").await;
    events_up_to(|| agent_chat_event(&alice_too), 4).await;

    let asked = customer.send(chat, "Order 1234").await.unwrap();
    assert_eq!(asked, 5);
    assert_eq!(next(agent_chat_event(&alice)).await.0, 5);
    assert_eq!(alice.mark_read(chat, asked).await.unwrap(), asked);
    // The customer gets it right after its message; alice's own connection
    // makes it from the answer, her other one is sent it.
    assert_eq!(next(customer_chat_event(&customer)).await.0, 5);
    assert_eq!(
        next(customer_chat_event(&customer)).await,
        (6, read(by_alice(), 5))
    );
    assert_eq!(
        next(agent_chat_event(&alice)).await,
        (6, read(by_alice(), 5))
    );
    let seen = events_up_to(|| agent_chat_event(&alice_too), 6).await;
    assert_eq!(seen.last().unwrap().kind, read(by_alice(), 5));

    // The same mark again, a lower one, or one over nothing but read
    // marks: the mark as it stands, and no event, so the next message
    // follows at once.
    assert_eq!(alice.mark_read(chat, asked).await.unwrap(), asked);
    assert_eq!(alice.mark_read(chat, 2).await.unwrap(), asked);
    assert_eq!(alice.mark_read(chat, 6).await.unwrap(), asked);
    assert_eq!(alice.send(chat, "It ships today 🚚").await.unwrap(), 7);
    assert_eq!(next(customer_chat_event(&customer)).await.0, 7);
    assert_eq!(next(agent_chat_event(&alice)).await.0, 7);

    // The customer marks: alice gets it.
    assert_eq!(customer.mark_read(chat, 7).await.unwrap(), 7);
    assert_eq!(
        next(agent_chat_event(&alice)).await,
        (8, read(Party::Customer, 7))
    );
    assert_eq!(
        next(customer_chat_event(&customer)).await,
        (8, read(Party::Customer, 7))
    );

    // Past the last event: refused, whoever marks.
    for refused in [
        customer.mark_read(chat, 9).await,
        alice.mark_read(chat, 100).await,
    ] {
        assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::ReadBeyondEnd));
    }
    // Someone outside the chat: another customer, an agent not holding it.
    let stranger = hub.customer().await;
    let bob = hub.present_agent("bob").await;
    for refused in [
        stranger.mark_read(chat, 1).await,
        bob.mark_read(chat, 1).await,
    ] {
        assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::NotYourChat));
    }
    // None of the refusals made an event.
    assert_eq!(customer.send(chat, "Thanks!").await.unwrap(), 9);
    assert_eq!(next(agent_chat_event(&alice)).await.0, 9);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_marks_survive_a_restart_come_back_in_a_resume_and_stay_in_the_transcript() {
    let hub = TestHub::start(CONFIG).await;
    let (customer, alice, chat) = answered_chat(&hub).await;
    customer.send(chat, "Order 1234").await.unwrap();
    assert_eq!(alice.mark_read(chat, 5).await.unwrap(), 5);
    assert_eq!(customer.mark_read(chat, 6).await.unwrap(), 6);
    events_up_to(|| customer_chat_event(&customer), 7).await;
    events_up_to(|| agent_chat_event(&alice), 7).await;

    // The hub restarts on the same address; both clients reconnect and
    // resume after seq 7.
    let hub = hub.restart(CONFIG).await;
    // The marks came back with the chat: repeats change nothing.
    let again = tokio::time::timeout(PATIENCE, async {
        (
            customer.mark_read(chat, 3).await.unwrap(),
            alice.mark_read(chat, 5).await.unwrap(),
        )
    })
    .await
    .expect("the clients reconnect");
    assert_eq!(again, (6, 5));
    assert!(customer.reconnects() >= 1 && alice.reconnects() >= 1);
    assert_eq!(alice.send(chat, "Back again").await.unwrap(), 8);
    assert_eq!(next(customer_chat_event(&customer)).await.0, 8);
    assert_eq!(next(agent_chat_event(&alice)).await.0, 8);

    // A connection that resumes from an earlier seq gets the marks in the
    // replay.
    let (_endpoint, conn, mut send, _recv) = hub.raw_connection().await;
    let mut hello = Vec::new();
    chathub::protocol::encode(
        &ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Agent {
                agent: "alice".into(),
                token: TOKEN.into(),
            },
            resume: vec![Resume {
                chat,
                after: 5,
                secret: None,
            }],
        }),
        &mut hello,
    )
    .unwrap();
    send.write_all(&hello).await.unwrap();
    let mut replayed = Vec::new();
    while replayed.is_empty() {
        let (mut stream, mut frames, first) = next_stream(&conn).await;
        let mut frame = first;
        while let ServerFrame::Event(Event::Chat(event)) = frame {
            let last = event.seq;
            replayed.push((event.seq, event.kind));
            if last == 8 {
                break;
            }
            frame = read_until(&mut stream, &mut frames, |_| true).await;
        }
    }
    assert_eq!(
        replayed.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [6, 7, 8]
    );
    assert_eq!(replayed[0].1, read(by_alice(), 5));
    assert_eq!(replayed[1].1, read(Party::Customer, 6));

    // Ended, the chat's transcript holds them.
    alice.end_chat(chat).await.unwrap();
    let sessions = alice.recent_sessions(None, 10).await.unwrap();
    assert_eq!(sessions[0].session.chat, chat);
    assert_eq!(sessions[0].session.events, 9);
    let transcript = alice.transcript(chat).await.unwrap();
    let marks: Vec<(u64, &ChatEventKind)> = transcript
        .iter()
        .filter(|event| matches!(event.kind, ChatEventKind::Read { .. }))
        .map(|event| (event.seq, &event.kind))
        .collect();
    assert_eq!(
        marks,
        [(6, &read(by_alice(), 5)), (7, &read(Party::Customer, 6))]
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_customers_new_marks_count_against_the_chats_pace_and_repeats_do_not() {
    let config = CONFIG.replace(
        "messages_per_sec = 100000.0\nmessage_burst = 100000\n",
        "messages_per_sec = 0.001\nmessage_burst = 3\n",
    );
    assert_ne!(config, CONFIG);
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    // Seqs 1 to 3; the customer may read while the chat waits.
    let (chat, _) = start(&customer, "support", ada(), "Anyone there?").await;
    for up_to in 1..=3 {
        assert_eq!(customer.mark_read(chat, up_to).await.unwrap(), up_to);
    }
    // Seqs 4 to 6 are the marks, and cost nothing more to mark over.
    assert_eq!(customer.mark_read(chat, 6).await.unwrap(), 3);
    alice.get_next("support").await.unwrap();
    let refused = customer.mark_read(chat, 7).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited));
    // A mark that changes nothing costs nothing.
    assert_eq!(customer.mark_read(chat, 2).await.unwrap(), 3);
    let seen = events_up_to(|| customer_chat_event(&customer), 7).await;
    assert_eq!(seen[5].kind, read(Party::Customer, 3));
    assert!(matches!(seen[6].kind, ChatEventKind::Assigned { .. }));
    hub.stop().await;
}
