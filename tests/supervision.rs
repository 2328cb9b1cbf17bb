//! Supervision end to end over QUIC: a supervisor's monitor of their
//! channel, whispers to the agent of a chat (never seen by the customer),
//! setting an agent Absent, roles changed by a reload, and every one of
//! these refused to a plain agent and outside the supervisor's channels.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, ChannelMonitor, ClientError, Event};
use chathub::core::{AgentId, ChatEventKind, ChatId, Customer, Party, Status};
use chathub::protocol::ErrorCode;
use common::{PATIENCE, TestHub, agent_chat_event, customer_chat_event, start};

/// support: alice and bob, overseen by sam (who also works it); sales:
/// carol; root, an admin, works sales.
const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
[[channel]]
name = "sales"
[[agent]]
id = "alice"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["support"]
[[agent]]
id = "carol"
token = "test-token-0123456789"
channels = ["sales"]
[[agent]]
id = "sam"
token = "test-token-0123456789"
channels = ["support"]
role = "supervisor"
supervises = ["support"]
[[agent]]
id = "root"
token = "test-token-0123456789"
channels = ["sales"]
role = "admin"
"#
);

fn named(name: &str) -> Customer {
    Customer {
        name: Some(name.into()),
        email: None,
    }
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> Option<ErrorCode> {
    result.expect_err("the request is refused").code()
}

/// The next status change an agent is told of, skipping other events.
async fn status_change(client: &AgentClient) -> (Status, AgentId) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match client.next_event().await.expect("the connection is open") {
                Event::StatusChanged { status, by } => return (status, by),
                _ => continue,
            }
        }
    })
    .await
    .expect("a status change within the test's patience")
}

#[tokio::test]
async fn the_monitor_shows_waiting_and_active_chats_and_the_agents() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let _bob = hub.present_agent("bob").await;
    let sam = hub.agent("sam").await;
    let (first, second) = (hub.customer().await, hub.customer().await);
    let (answered, _) = start(&first, "support", named("Ada"), "hello").await;
    let (waiting, _) = start(&second, "support", named("Grace"), "anyone?").await;
    alice.pick(answered).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let monitor = sam.monitor("support").await.unwrap();
    assert_eq!(monitor.channel, "support".into());
    assert_eq!(monitor.waiting_count, 1);
    assert_eq!(monitor.waiting.len(), 1);
    let row = &monitor.waiting[0];
    assert_eq!(row.chat, waiting);
    assert_eq!(row.customer.as_deref(), Some("Grace"));
    assert!(row.since <= monitor.at);
    assert_eq!(row.wait_ms, monitor.at.0 - row.since.0);
    assert!(row.wait_ms >= 20, "waited {} ms", row.wait_ms);

    assert_eq!(monitor.active_count, 1);
    assert_eq!(monitor.active.len(), 1);
    let held = &monitor.active[0];
    assert_eq!((held.chat, held.agent.as_str()), (answered, "alice"));
    assert!(held.handle_ms >= 20, "held {} ms", held.handle_ms);

    let agents: Vec<(&str, Status, u64, u64)> = monitor
        .agents
        .iter()
        .map(|agent| (agent.agent.as_str(), agent.status, agent.used, agent.max))
        .collect();
    assert_eq!(
        agents,
        [
            ("alice", Status::Present, 1, 4),
            ("bob", Status::Present, 0, 4),
            ("sam", Status::Absent, 0, 4),
        ]
    );

    // Once answered, the second chat moves from waiting to active.
    sam.set_status(Status::Present).await.unwrap();
    sam.pick(waiting).await.unwrap();
    let monitor = sam.monitor("support").await.unwrap();
    assert_eq!(monitor.waiting_count, 0);
    assert!(monitor.waiting.is_empty());
    let active: Vec<(ChatId, &str)> = monitor
        .active
        .iter()
        .map(|row| (row.chat, row.agent.as_str()))
        .collect();
    assert_eq!(active, [(answered, "alice"), (waiting, "sam")]);

    // An admin sees every channel; a supervisor only their own.
    let root = hub.agent("root").await;
    let support = root.monitor("support").await.unwrap();
    assert_eq!(support.active_count, 2);
    let sales = root.monitor("sales").await.unwrap();
    assert_eq!(sales.waiting_count + sales.active_count, 0);
    assert_eq!(
        code(sam.monitor("sales").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(sam.monitor("nowhere").await),
        Some(ErrorCode::NotAllowed)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_plain_agent_and_a_supervisor_elsewhere_are_refused() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let carol = hub.present_agent("carol").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "hello").await;
    bob.pick(chat).await.unwrap();

    assert_eq!(
        code(alice.monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(alice.set_agent_status("bob", Status::Absent).await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(alice.whisper(chat, "psst").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(code(alice.follow(chat).await), Some(ErrorCode::NotAllowed));
    assert_eq!(
        code(alice.unfollow(chat).await),
        Some(ErrorCode::NotAllowed)
    );
    // A plain agent asking about a chat that does not exist learns
    // nothing more than about one that does.
    assert_eq!(
        code(alice.whisper(ChatId(9_999), "psst").await),
        Some(ErrorCode::NotAllowed)
    );
    // sam oversees support, not carol's sales, nor sales' chats.
    assert_eq!(
        code(sam.set_agent_status("carol", Status::Absent).await),
        Some(ErrorCode::NotAllowed)
    );
    let (sales_chat, _) = start(&customer, "sales", named("Ada"), "buy").await;
    carol.pick(sales_chat).await.unwrap();
    assert_eq!(
        code(sam.whisper(sales_chat, "psst").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(sam.follow(sales_chat).await),
        Some(ErrorCode::NotAllowed)
    );
    // Nothing changed: bob is still Present, carol too.
    let present = sam.present_agents("support").await.unwrap();
    assert!(present.contains(&AgentId::new("bob")), "{present:?}");
    assert_eq!(
        carol.present_agents("sales").await.unwrap(),
        [AgentId::new("carol")]
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_whisper_reaches_the_agent_and_never_the_customer() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "refund please").await;
    alice.pick(chat).await.unwrap();
    // The customer's events so far (their message, the assignment).
    loop {
        let event = customer_chat_event(&customer).await;
        if matches!(event.kind, ChatEventKind::Assigned { .. }) {
            break;
        }
    }
    loop {
        let event = agent_chat_event(&alice).await;
        if matches!(event.kind, ChatEventKind::Assigned { .. }) {
            break;
        }
    }

    let seq = sam.whisper(chat, "Offer the refund").await.unwrap();
    let note = agent_chat_event(&alice).await;
    assert_eq!(note.seq, seq);
    match &note.kind {
        ChatEventKind::Note { by, text, .. } => {
            assert_eq!(by.as_str(), "sam");
            assert_eq!(text, "Offer the refund");
        }
        other => panic!("expected the whisper, got {other:?}"),
    }

    // The customer's next event is the agent's message after it: the
    // whisper never reached them.
    alice.send(chat, "Your refund is on its way").await.unwrap();
    let next = customer_chat_event(&customer).await;
    assert_eq!(next.seq, seq + 1);
    match next.kind {
        ChatEventKind::Message { from, text, .. } => {
            assert_eq!(from, Party::Agent(AgentId::new("alice")));
            assert_eq!(text, "Your refund is on its way");
        }
        other => panic!("expected the agent's message, got {other:?}"),
    }

    // Whispering does not let the supervisor talk in the chat.
    assert_eq!(
        code(sam.send(chat, "Hello from the supervisor").await),
        Some(ErrorCode::NotYourChat)
    );
    // A whisper into an ended chat is refused as ended.
    alice.end_chat(chat).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        code(sam.whisper(chat, "too late").await),
        Some(ErrorCode::ChatEnded)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_supervisor_sets_an_agent_absent_and_the_agent_is_told() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let _bob = hub.present_agent("bob").await;
    let sam = hub.agent("sam").await;
    assert_eq!(
        sam.present_agents("support").await.unwrap(),
        [AgentId::new("alice"), AgentId::new("bob")]
    );

    sam.set_agent_status("alice", Status::Absent).await.unwrap();
    assert_eq!(
        status_change(&alice).await,
        (Status::Absent, AgentId::new("sam"))
    );
    assert_eq!(
        sam.present_agents("support").await.unwrap(),
        [AgentId::new("bob")]
    );
    let monitor = sam.monitor("support").await.unwrap();
    let alice_row = monitor
        .agents
        .iter()
        .find(|agent| agent.agent.as_str() == "alice")
        .unwrap();
    assert_eq!(alice_row.status, Status::Absent);

    // An admin may set anyone; a second Absent changes nothing and is
    // answered all the same.
    let root = hub.agent("root").await;
    root.set_agent_status("alice", Status::Absent)
        .await
        .unwrap();
    root.set_agent_status("alice", Status::Present)
        .await
        .unwrap();
    assert_eq!(
        status_change(&alice).await,
        (Status::Present, AgentId::new("root"))
    );
    assert_eq!(
        code(root.set_agent_status("nobody", Status::Absent).await),
        Some(ErrorCode::NotAllowed)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_reload_gives_and_takes_the_supervisor_role() {
    let plain = CONFIG.replace("role = \"supervisor\"\nsupervises = [\"support\"]\n", "");
    assert_ne!(plain, CONFIG);
    let hub = TestHub::start(&plain).await;
    let sam = hub.agent("sam").await;
    assert_eq!(
        code(sam.monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );

    hub.server
        .reload(&hub.config(CONFIG))
        .await
        .expect("the reload is taken");
    sam.monitor("support").await.unwrap();

    hub.server
        .reload(&hub.config(&plain))
        .await
        .expect("the reload is taken");
    assert_eq!(
        code(sam.monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );
    hub.stop().await;
}

/// The text of a message or note event, if it is one.
fn text_of(kind: &ChatEventKind) -> Option<&str> {
    match kind {
        ChatEventKind::Message { text, .. } | ChatEventKind::Note { text, .. } => Some(text),
        _ => None,
    }
}

/// Chat events `client` receives until one with `text`, which it returns.
async fn until_text(client: &AgentClient, text: &str) -> chathub::core::ChatEvent {
    loop {
        let event = agent_chat_event(client).await;
        if text_of(&event.kind) == Some(text) {
            return event;
        }
    }
}

#[tokio::test]
async fn a_follower_gets_the_transcript_then_live_events_and_notes_read_only() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "my order is late").await;
    alice.pick(chat).await.unwrap();
    alice.send(chat, "Let me look").await.unwrap();

    sam.follow(chat).await.unwrap();
    // The transcript so far, in order, from the customer's first message.
    let mut seen = Vec::new();
    loop {
        let event = agent_chat_event(&sam).await;
        assert_eq!(event.chat, chat);
        seen.push(event.seq);
        if text_of(&event.kind) == Some("Let me look") {
            break;
        }
    }
    assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>());
    // Following again sends nothing twice.
    sam.follow(chat).await.unwrap();

    // Live: the customer's message and the agent's private note.
    customer.send(chat, "it was due Monday").await.unwrap();
    let live = agent_chat_event(&sam).await;
    assert_eq!(live.seq, *seen.last().unwrap() + 1, "{live:?}");
    assert_eq!(text_of(&live.kind), Some("it was due Monday"));
    alice.add_note(chat, "carrier lost it").await.unwrap();
    let note = agent_chat_event(&sam).await;
    assert!(matches!(note.kind, ChatEventKind::Note { .. }), "{note:?}");

    // Read-only: no messages in the chat.
    assert_eq!(
        code(sam.send(chat, "I am the supervisor").await),
        Some(ErrorCode::NotYourChat)
    );

    // Unfollowed, nothing more arrives; the agent still gets it all.
    sam.unfollow(chat).await.unwrap();
    customer.send(chat, "hello?").await.unwrap();
    until_text(&alice, "hello?").await;
    alice.send(chat, "found it").await.unwrap();
    sam.whisper(chat, "marker").await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), agent_chat_event(&sam)).await;
    assert!(quiet.is_err(), "an unfollowed chat sent {quiet:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_supervisor_follows_a_bounded_number_of_live_chats() {
    let config = CONFIG.replace("[limits]\n", "[limits]\nfollowed_chats = 1\n");
    assert_ne!(config, CONFIG);
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (first, _) = start(&customer, "support", named("Ada"), "one").await;
    let (second, _) = start(&customer, "support", named("Ada"), "two").await;
    alice.pick(first).await.unwrap();

    sam.follow(first).await.unwrap();
    sam.follow(first).await.unwrap();
    assert_eq!(
        code(sam.follow(second).await),
        Some(ErrorCode::TooManyChats)
    );
    sam.unfollow(first).await.unwrap();
    sam.follow(second).await.unwrap();
    // A followed chat that ends no longer counts.
    customer.leave(second).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match sam.follow(first).await {
            Ok(()) => break,
            Err(err) if err.code() == Some(ErrorCode::TooManyChats) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the ended chat still counts"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
    // An ended chat cannot be followed.
    assert_eq!(code(sam.follow(second).await), Some(ErrorCode::ChatEnded));
    hub.stop().await;
}

#[tokio::test]
async fn a_reassign_moves_the_chat_and_both_agents_slots() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let _carol = hub.present_agent("carol").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "help").await;
    alice.pick(chat).await.unwrap();
    alice.send(chat, "Hi, Alice here").await.unwrap();

    // Not a plain agent, not to someone outside the channel or Absent.
    assert_eq!(
        code(bob.reassign(chat, "bob").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(sam.reassign(chat, "carol").await),
        Some(ErrorCode::AgentUnavailable)
    );
    assert_eq!(
        code(sam.reassign(chat, "sam").await),
        Some(ErrorCode::AgentUnavailable),
        "sam is Absent"
    );
    assert_eq!(
        code(sam.reassign(chat, "alice").await),
        Some(ErrorCode::InvalidRequest)
    );

    sam.reassign(chat, "bob").await.unwrap();
    let moved = |event: &chathub::core::ChatEvent| {
        matches!(&event.kind, ChatEventKind::TransferredToAgent { from, to }
            if from.as_str() == "alice" && to.as_str() == "bob")
    };
    // The old holder sees the event that takes the chat away.
    loop {
        if moved(&agent_chat_event(&alice).await) {
            break;
        }
    }
    // The new holder gets the transcript, up to the move.
    until_text(&bob, "Hi, Alice here").await;
    loop {
        if moved(&agent_chat_event(&bob).await) {
            break;
        }
    }
    loop {
        if moved(&customer_chat_event(&customer).await) {
            break;
        }
    }

    let loads = sam.monitor("support").await.unwrap();
    let used = |id: &str| {
        loads
            .agents
            .iter()
            .find(|agent| agent.agent.as_str() == id)
            .map(|agent| agent.used)
    };
    assert_eq!((used("alice"), used("bob")), (Some(0), Some(1)));
    assert_eq!(loads.active.len(), 1);
    assert_eq!(loads.active[0].agent.as_str(), "bob");

    assert_eq!(
        code(alice.send(chat, "me again").await),
        Some(ErrorCode::NotYourChat)
    );
    bob.send(chat, "Bob here, I have it").await.unwrap();
    let next = customer_chat_event(&customer).await;
    assert_eq!(text_of(&next.kind), Some("Bob here, I have it"));
    hub.stop().await;
}

#[tokio::test]
async fn a_supervisor_barges_in_and_the_customer_sees_them_join_talk_and_leave() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let sam = hub.agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "I want a manager").await;
    alice.pick(chat).await.unwrap();
    assert_eq!(
        code(alice.barge_in(chat).await),
        Some(ErrorCode::NotAllowed)
    );

    sam.barge_in(chat).await.unwrap();
    sam.barge_in(chat).await.unwrap();
    let joined = |event: &chathub::core::ChatEvent| {
        matches!(&event.kind, ChatEventKind::SupervisorJoined { supervisor }
            if supervisor.as_str() == "sam")
    };
    loop {
        if joined(&customer_chat_event(&customer).await) {
            break;
        }
    }
    // The supervisor got the transcript, then the event of their joining.
    until_text(&sam, "I want a manager").await;
    loop {
        if joined(&agent_chat_event(&sam).await) {
            break;
        }
    }
    // Joined once: the second barge-in made no event.
    sam.send(chat, "Sam here, the supervisor").await.unwrap();
    let said = customer_chat_event(&customer).await;
    assert_eq!(
        said.kind,
        ChatEventKind::Message {
            from: Party::Agent(AgentId::new("sam")),
            client_id: match &said.kind {
                ChatEventKind::Message { client_id, .. } => *client_id,
                _ => 0,
            },
            text: "Sam here, the supervisor".into(),
        }
    );
    until_text(&alice, "Sam here, the supervisor").await;
    // The supervisor hears the customer.
    customer.send(chat, "Thank you").await.unwrap();
    until_text(&sam, "Thank you").await;

    sam.leave_chat(chat).await.unwrap();
    // The customer's own message comes first (the SDK makes its event).
    loop {
        let left = customer_chat_event(&customer).await;
        if text_of(&left.kind) == Some("Thank you") {
            continue;
        }
        assert!(
            matches!(&left.kind, ChatEventKind::SupervisorLeft { supervisor } if supervisor.as_str() == "sam"),
            "{left:?}"
        );
        break;
    }
    assert_eq!(
        code(sam.send(chat, "one more thing").await),
        Some(ErrorCode::NotYourChat)
    );

    // In again, then the chat ends: they leave with it.
    sam.barge_in(chat).await.unwrap();
    loop {
        if joined(&customer_chat_event(&customer).await) {
            break;
        }
    }
    alice.end_chat(chat).await.unwrap();
    let tail = [
        customer_chat_event(&customer).await.kind,
        customer_chat_event(&customer).await.kind,
    ];
    assert!(
        matches!(
            &tail,
            [
                ChatEventKind::SupervisorLeft { .. },
                ChatEventKind::Ended { .. }
            ]
        ),
        "{tail:?}"
    );
    loop {
        if matches!(
            agent_chat_event(&sam).await.kind,
            ChatEventKind::Ended { .. }
        ) {
            break;
        }
    }
    hub.stop().await;
}

/// Whether `event` is sam's reassign of a chat from alice to bob.
fn sams_reassign(event: &chathub::core::ChatEvent) -> bool {
    matches!(&event.kind, ChatEventKind::Reassigned { by, from, to }
        if by.as_str() == "sam" && from.as_str() == "alice" && to.as_str() == "bob")
}

/// Whether `event` is the move of a chat from alice to bob.
fn moved_to_bob(event: &chathub::core::ChatEvent) -> bool {
    matches!(&event.kind, ChatEventKind::TransferredToAgent { from, to }
        if from.as_str() == "alice" && to.as_str() == "bob")
}

#[tokio::test]
async fn a_reassign_records_its_supervisor_for_agents_only_across_a_restart() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let sam = hub.agent("sam").await;
    let root = hub.agent("root").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "help").await;
    alice.pick(chat).await.unwrap();
    alice.send(chat, "Hi, Alice here").await.unwrap();
    loop {
        if text_of(&customer_chat_event(&customer).await.kind) == Some("Hi, Alice here") {
            break;
        }
    }
    until_text(&alice, "Hi, Alice here").await;
    root.follow(chat).await.unwrap();
    until_text(&root, "Hi, Alice here").await;

    sam.reassign(chat, "bob").await.unwrap();

    // The old holder and the follower see who moved it, then the move.
    for watcher in [&alice, &root] {
        let audit = agent_chat_event(watcher).await;
        assert!(sams_reassign(&audit), "{audit:?}");
        let moved = agent_chat_event(watcher).await;
        assert!(moved_to_bob(&moved), "{moved:?}");
        assert_eq!(moved.seq, audit.seq + 1);
    }
    // The new holder gets the transcript up to the move, the record in it.
    let mut got = Vec::new();
    loop {
        let event = agent_chat_event(&bob).await;
        let last = moved_to_bob(&event);
        got.push(event);
        if last {
            break;
        }
    }
    let audit_seq = got.iter().find(|event| sams_reassign(event)).map(|e| e.seq);
    assert_eq!(audit_seq, Some(got.last().unwrap().seq - 1), "{got:?}");
    // The customer sees the move as before: nothing in between but the
    // gap the withheld record leaves (the SDK hides its placeholder).
    let moved = customer_chat_event(&customer).await;
    assert!(moved_to_bob(&moved), "{moved:?}");
    assert_eq!(Some(moved.seq - 1), audit_seq);
    // The transcript names the supervisor.
    let transcript = sam.transcript(chat).await.unwrap();
    assert_eq!(
        transcript
            .iter()
            .filter(|event| sams_reassign(event))
            .map(|event| event.seq)
            .collect::<Vec<_>>(),
        [audit_seq.unwrap()]
    );

    // Durable: after a restart the chat's log still names sam, bob still
    // holds the chat, and the customer (resumed) gets nothing of it.
    let hub = hub.restart(CONFIG).await;
    let transcript = sam.transcript(chat).await.unwrap();
    assert!(
        transcript
            .iter()
            .any(|event| sams_reassign(event) && Some(event.seq) == audit_seq),
        "{transcript:?}"
    );
    bob.send(chat, "Bob here, after the restart").await.unwrap();
    let next = customer_chat_event(&customer).await;
    assert_eq!(text_of(&next.kind), Some("Bob here, after the restart"));
    assert_eq!(next.seq, moved.seq + 1);
    hub.stop().await;
}

/// [`CONFIG`] with monitors taken again every 50 ms, at most `per_conn`
/// watched per connection, support queueing chats with nobody Present,
/// and sue, a second supervisor of support.
fn live_config(per_conn: usize) -> String {
    let limits =
        format!("[limits]\nmonitor_interval = \"50ms\"\nmonitors_per_connection = {per_conn}\n");
    let config = CONFIG.replacen("[limits]\n", &limits, 1).replacen(
        "name = \"support\"\n",
        "name = \"support\"\noffline_form = false\n",
        1,
    );
    assert_ne!(config, CONFIG);
    format!(
        "{config}[[agent]]\nid = \"sue\"\ntoken = \"test-token-0123456789\"\nrole = \"supervisor\"\nsupervises = [\"support\"]\n"
    )
}

/// The next monitor picture `client` is pushed for which `want` holds,
/// skipping other events and pictures.
async fn picture_where(
    client: &AgentClient,
    mut want: impl FnMut(&ChannelMonitor) -> bool,
) -> ChannelMonitor {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match client.next_event().await.expect("the connection is open") {
                Event::Monitor(picture) if want(&picture) => return *picture,
                _ => continue,
            }
        }
    })
    .await
    .expect("the picture within the test's patience")
}

/// The monitor picture (or stop) `client` is pushed within `quiet`, if
/// any, as text.
async fn pushed_within(client: &AgentClient, quiet: Duration) -> Option<String> {
    tokio::time::timeout(quiet, async {
        loop {
            match client.next_event().await {
                Some(Event::Monitor(picture)) => return format!("{picture:?}"),
                Some(Event::MonitorStopped { channel }) => return format!("stopped {channel}"),
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await
    .ok()
}

fn status_of(picture: &ChannelMonitor, agent: &str) -> Option<Status> {
    picture
        .agents
        .iter()
        .find(|row| row.agent.as_str() == agent)
        .map(|row| row.status)
}

#[tokio::test]
async fn a_watched_monitor_pushes_each_change_to_every_watcher() {
    let config = live_config(4);
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let sam = hub.agent("sam").await;
    let sue = hub.agent("sue").await;
    sam.watch_monitor("support").await.unwrap();
    sue.watch_monitor("support").await.unwrap();
    // Watching again changes nothing.
    sam.watch_monitor("support").await.unwrap();
    assert_eq!(hub.server.hub().monitor_feeds(), 1, "one feed for both");
    let watchers = [&sam, &sue];

    // The picture at hand, at once.
    for watcher in watchers {
        let now = picture_where(watcher, |_| true).await;
        assert_eq!(now.channel, "support".into());
        assert_eq!((now.waiting_count, now.active_count), (0, 0));
        assert_eq!(status_of(&now, "alice"), Some(Status::Present));
    }

    // Each change arrives pushed, the same for both supervisors.
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "hello").await;
    let mut seen = Vec::new();
    for watcher in watchers {
        let waiting = picture_where(watcher, |p| p.waiting_count == 1).await;
        assert_eq!(waiting.waiting[0].chat, chat);
        assert_eq!(waiting.waiting[0].customer.as_deref(), Some("Ada"));
        assert!(waiting.waiting[0].since <= waiting.at);
        seen.push(waiting);
    }
    assert!(seen[0].same_but_clock(&seen[1]), "{seen:?}");

    alice.pick(chat).await.unwrap();
    let mut seen = Vec::new();
    for watcher in watchers {
        let assigned =
            picture_where(watcher, |p| p.active_count == 1 && p.waiting_count == 0).await;
        assert_eq!(assigned.active[0].chat, chat);
        assert_eq!(assigned.active[0].agent.as_str(), "alice");
        let load = assigned
            .agents
            .iter()
            .find(|row| row.agent.as_str() == "alice");
        assert_eq!(load.map(|row| row.used), Some(1));
        seen.push(assigned);
    }
    assert!(seen[0].same_but_clock(&seen[1]), "{seen:?}");

    sam.reassign(chat, "bob").await.unwrap();
    for watcher in watchers {
        let moved = picture_where(watcher, |p| {
            p.active
                .first()
                .is_some_and(|row| row.agent.as_str() == "bob")
        })
        .await;
        assert_eq!(moved.active[0].chat, chat);
    }

    alice.set_status(Status::Absent).await.unwrap();
    for watcher in watchers {
        picture_where(watcher, |p| status_of(p, "alice") == Some(Status::Absent)).await;
    }

    bob.end_chat(chat).await.unwrap();
    for watcher in watchers {
        let ended = picture_where(watcher, |p| p.active_count == 0).await;
        assert!(ended.active.is_empty());
        assert_eq!(status_of(&ended, "alice"), Some(Status::Absent));
    }

    // Nothing changes any more: only the clock runs, and no picture
    // comes (the interval is 50 ms).
    assert_eq!(pushed_within(&sam, Duration::from_millis(400)).await, None);
    hub.stop().await;
}

#[tokio::test]
async fn watching_a_monitor_is_for_overseers_bounded_and_ends_with_unwatch_or_the_connection() {
    let config = live_config(1);
    let hub = TestHub::start(&config).await;
    let alice = hub.present_agent("alice").await;
    let sam = hub.agent("sam").await;
    let root = hub.agent("root").await;

    assert_eq!(
        code(alice.watch_monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(alice.unwatch_monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(sam.watch_monitor("sales").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(sam.watch_monitor("nowhere").await),
        Some(ErrorCode::NotAllowed)
    );
    assert_eq!(
        code(root.watch_monitor("nowhere").await),
        Some(ErrorCode::UnknownChannel)
    );
    assert_eq!(
        pushed_within(&alice, Duration::from_millis(100)).await,
        None
    );
    assert_eq!(hub.server.hub().monitor_feeds(), 0);

    // One monitor per connection here: a second channel is refused until
    // the first is unwatched; the same one again changes nothing.
    root.watch_monitor("support").await.unwrap();
    root.watch_monitor("support").await.unwrap();
    assert_eq!(
        code(root.watch_monitor("sales").await),
        Some(ErrorCode::TooManyChats)
    );
    picture_where(&root, |p| p.channel == "support".into()).await;
    root.unwatch_monitor("support").await.unwrap();
    // Unwatched, the hub stops the channel's feed, and nothing comes.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub.server.hub().monitor_feeds() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the feed runs on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let customer = hub.customer().await;
    start(&customer, "support", named("Ada"), "hello").await;
    assert_eq!(pushed_within(&root, Duration::from_millis(300)).await, None);
    root.watch_monitor("sales").await.unwrap();
    picture_where(&root, |p| p.channel == "sales".into()).await;

    // A connection's watches end with it.
    sam.watch_monitor("support").await.unwrap();
    picture_where(&sam, |p| p.waiting_count == 1).await;
    assert_eq!(hub.server.hub().monitor_feeds(), 2);
    sam.close();
    root.close();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub.server.hub().monitor_feeds() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "a feed runs on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_reload_that_takes_a_supervisors_channel_stops_their_watch() {
    let config = live_config(4);
    let hub = TestHub::start(&config).await;
    let sam = hub.agent("sam").await;
    let sue = hub.agent("sue").await;
    sam.watch_monitor("support").await.unwrap();
    sue.watch_monitor("support").await.unwrap();
    picture_where(&sam, |_| true).await;
    picture_where(&sue, |_| true).await;

    // sam is a plain agent from now on; sue still supervises support.
    let plain = config.replacen("role = \"supervisor\"\nsupervises = [\"support\"]\n", "", 1);
    assert_ne!(plain, config);
    hub.server
        .reload(&hub.config(&plain))
        .await
        .expect("the reload is taken");
    let stopped = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::MonitorStopped { channel } = sam.next_event().await.unwrap() {
                return channel;
            }
        }
    })
    .await
    .expect("told within the test's patience");
    assert_eq!(stopped, "support".into());
    // sue watches on and sees the next change; sam sees nothing more.
    let customer = hub.customer().await;
    start(&customer, "support", named("Ada"), "hello").await;
    picture_where(&sue, |p| p.waiting_count == 1).await;
    assert_eq!(pushed_within(&sam, Duration::from_millis(300)).await, None);
    assert_eq!(
        code(sam.watch_monitor("support").await),
        Some(ErrorCode::NotAllowed)
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_watch_resumes_after_the_hub_restarts() {
    let config = live_config(4);
    let hub = TestHub::start(&config).await;
    let sam = hub.agent("sam").await;
    sam.watch_monitor("support").await.unwrap();
    picture_where(&sam, |p| p.waiting_count == 0).await;

    let hub = hub.restart(&config).await;
    // The client watches again on its new connection, unasked.
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", named("Ada"), "hello").await;
    let picture = picture_where(&sam, |p| p.waiting_count == 1).await;
    assert_eq!(picture.waiting[0].chat, chat);
    assert_eq!(sam.reconnects(), 1);
    hub.stop().await;
}
