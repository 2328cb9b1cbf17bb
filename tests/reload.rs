//! Channels and agents changed while the hub runs (a configuration
//! reload), end to end over QUIC: through `Server::reload` and
//! `Server::reload_from` in process, and through `chathub reload` and
//! SIGHUP against the `chathub` binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use chathub::client::{AgentClient, ClientConfig, ClientError, CustomerClient, ErrorCode, Event};
use chathub::config::ConfigError;
use chathub::core::{
    AgentId, ChannelId, ChatEvent, ChatEventKind, ChatId, Customer, Party, QueueChange,
    QueueUpdate, Status,
};
use chathub::server::{ReloadError, Reloaded};
use common::{PATIENCE, TestHub, customer_chat_event, free_udp_port, queue_update, start};

const TOKEN: &str = "test-token-0123456789";

const SUPPORT: &str = "[[channel]]\nname = \"support\"\nwelcome = \"Welcome to support!\"\n";
const SALES: &str = "[[channel]]\nname = \"sales\"\n";
const BILLING: &str = "[[channel]]\nname = \"billing\"\n";

/// A configuration with roomy limits, `channels` (whole `[[channel]]`
/// tables) and agents (id, channels, capacity), all with [`TOKEN`].
fn config(channels: &[&str], agents: &[(&str, &[&str], u64)]) -> String {
    let mut text = String::from(roomy_limits!());
    for channel in channels {
        text.push_str(channel);
    }
    for (id, works, capacity) in agents {
        let works: Vec<String> = works.iter().map(|c| format!("{c:?}")).collect();
        text.push_str(&format!(
            "[[agent]]\nid = {id:?}\ntoken = {TOKEN:?}\nchannels = [{}]\ncapacity = {capacity}\n",
            works.join(", ")
        ));
    }
    text
}

/// The error an agent's requests get once the hub closed its connection,
/// waiting for that within the test's patience.
async fn closed_out(agent: &AgentClient) -> ClientError {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match agent.present_agents("support").await {
            Err(err) => return err,
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the connection closes within the test's patience"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Reloads `text` as this hub's configuration; the reload must be taken.
async fn reload(hub: &TestHub, text: &str) -> Reloaded {
    hub.server
        .reload(&hub.config(text))
        .await
        .expect("the reload is taken")
}

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

fn channel(name: &str) -> ChannelId {
    ChannelId::new(name)
}

fn agent_id(name: &str) -> AgentId {
    AgentId::new(name)
}

fn present_count(hub: &TestHub, name: &str) -> u64 {
    hub.server.hub().presence().present_count(&channel(name))
}

/// The next queue update of `channel` an agent receives, skipping others.
async fn channel_update(agent: &AgentClient, channel: &str) -> QueueUpdate {
    loop {
        let update = queue_update(agent).await;
        if update.channel.as_str() == channel {
            return update;
        }
    }
}

/// The next event of `chat` an agent receives, skipping others.
async fn agent_event_of(agent: &AgentClient, chat: ChatId) -> ChatEvent {
    loop {
        let event = tokio::time::timeout(PATIENCE, agent.next_event())
            .await
            .expect("an event within the test's patience")
            .expect("the connection is open");
        if let Event::Chat(event) = event
            && event.chat == chat
        {
            return event;
        }
    }
}

/// The next event of `chat` a customer receives, skipping others.
async fn customer_event_of(customer: &CustomerClient, chat: ChatId) -> ChatEvent {
    loop {
        let event = customer_chat_event(customer).await;
        if event.chat == chat {
            return event;
        }
    }
}

/// Waits for a message of `chat` with `text`, skipping other events.
async fn customer_hears(customer: &CustomerClient, chat: ChatId, text: &str) {
    loop {
        if let ChatEventKind::Message { text: heard, .. } =
            customer_event_of(customer, chat).await.kind
            && heard == text
        {
            return;
        }
    }
}

/// The system message a new chat starts with (its welcome).
async fn welcome_of(customer: &CustomerClient, chat: ChatId) -> String {
    loop {
        if let ChatEventKind::Message {
            from: Party::System,
            text,
            ..
        } = customer_event_of(customer, chat).await.kind
        {
            return text;
        }
    }
}

/// The events an agent receives within `wait`.
async fn events_within(agent: &AgentClient, wait: Duration) -> Vec<Event> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        got.push(event);
    }
    got
}

/// Polls `done` until it holds, failing the test after [`PATIENCE`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within the test's patience"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signing in as `agent` with the test token fails; why.
async fn refused_sign_in(client: &ClientConfig, agent: &str) -> ClientError {
    match AgentClient::connect(client, agent, TOKEN).await {
        Ok(_) => panic!("{agent} signed in"),
        Err(err) => err,
    }
}

fn rows(update: Option<chathub::client::IncomingList>) -> Vec<ChatId> {
    update
        .map(|list| list.rows.iter().map(|row| row.chat).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_added_agent_signs_in_and_an_added_channel_takes_chats() {
    let before = config(&[SUPPORT], &[("alice", &["support"], 4)]);
    let after = config(
        &[SUPPORT, BILLING],
        &[("alice", &["support"], 4), ("dave", &["billing"], 4)],
    );
    let hub = TestHub::start(&before).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let refused = refused_sign_in(&hub.client, "dave").await;
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");
    let unknown = customer
        .start_chat("billing", ada(), "my invoice?")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::UnknownChannel), "{unknown}");

    let reloaded = reload(&hub, &after).await;
    assert_eq!(reloaded.changed.channels_added, [channel("billing")]);
    assert_eq!(reloaded.changed.agents_added, [agent_id("dave")]);
    assert!(reloaded.changed.channels_changed.is_empty(), "{reloaded}");
    assert!(reloaded.changed.channels_removed.is_empty(), "{reloaded}");
    assert!(reloaded.changed.agents_changed.is_empty(), "{reloaded}");
    assert!(reloaded.changed.agents_removed.is_empty(), "{reloaded}");
    assert!(reloaded.needs_restart.is_empty(), "{reloaded}");
    assert_eq!(
        reloaded.to_string(),
        "channels added: billing; agents added: dave"
    );

    // Dave signs in, becomes Present in billing and sees its (empty) queue.
    let dave = hub.present_agent("dave").await;
    assert_eq!(dave.profile().id, agent_id("dave"));
    assert_eq!(present_count(&hub, "billing"), 1);
    let snapshot = channel_update(&dave, "billing").await;
    assert_eq!(snapshot.change, QueueChange::Snapshot(Vec::new()));

    // Billing takes a chat (queued, not the offline form: Dave is Present),
    // Dave sees it arrive and answers it.
    let (chat, waiting) = start(&customer, "billing", ada(), "my invoice?").await;
    assert_eq!(waiting, 1);
    let added = channel_update(&dave, "billing").await;
    assert!(
        matches!(&added.change, QueueChange::Added(row) if row.chat == chat),
        "{added:?}"
    );
    assert_eq!(dave.get_next("billing").await.unwrap().chat, chat);
    dave.send(chat, "Let me look").await.unwrap();
    customer_hears(&customer, chat, "Let me look").await;
    // Alice works support only: billing is not hers.
    let not_hers = alice.get_next("billing").await.unwrap_err();
    assert_eq!(not_hers.code(), Some(ErrorCode::NotAllowed), "{not_hers}");

    // The same configuration again changes nothing, and Dave's connection
    // and chat go on.
    let again = reload(&hub, &after).await;
    assert!(again.changed.is_empty(), "{again}");
    assert!(again.needs_restart.is_empty(), "{again}");
    assert_eq!(again.to_string(), "no channel or agent changed");
    dave.send(chat, "Found it").await.unwrap();
    customer_hears(&customer, chat, "Found it").await;
    assert_eq!(present_count(&hub, "billing"), 1);
    hub.stop().await;
}

#[tokio::test]
async fn a_signed_in_agent_follows_its_changed_channels() {
    let agents = |alice: &'static [&'static str]| {
        config(
            &[SUPPORT, SALES],
            &[
                ("alice", alice, 4),
                ("bob", &["support"], 4),
                ("carol", &["sales"], 4),
            ],
        )
    };
    let hub = TestHub::start(&agents(&["support"])).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let carol = hub.present_agent("carol").await;
    assert_eq!(present_count(&hub, "support"), 2);
    assert_eq!(present_count(&hub, "sales"), 1);
    let customer = hub.customer().await;
    let (sales_first, _) = start(&customer, "sales", ada(), "sales one").await;
    let (support_first, _) = start(&customer, "support", ada(), "support one").await;
    eventually("alice's support list shows the support chat", || {
        rows(alice.incoming("support")) == [support_first]
    })
    .await;
    let not_yet = alice.get_next("sales").await.unwrap_err();
    assert_eq!(not_yet.code(), Some(ErrorCode::NotAllowed), "{not_yet}");

    // Alice also works sales now, on the connection she has.
    let reloaded = reload(&hub, &agents(&["support", "sales"])).await;
    assert_eq!(reloaded.changed.agents_changed, [agent_id("alice")]);
    assert!(reloaded.changed.agents_added.is_empty(), "{reloaded}");
    assert_eq!(
        present_count(&hub, "sales"),
        2,
        "Present, she counts at once"
    );
    assert_eq!(present_count(&hub, "support"), 2);
    let snapshot = channel_update(&alice, "sales").await;
    let QueueChange::Snapshot(rows_now) = &snapshot.change else {
        panic!("a snapshot of sales first, got {snapshot:?}")
    };
    assert_eq!(
        rows_now.iter().map(|row| row.chat).collect::<Vec<_>>(),
        [sales_first]
    );
    let (sales_second, _) = start(&customer, "sales", ada(), "sales two").await;
    let added = channel_update(&alice, "sales").await;
    assert!(
        matches!(&added.change, QueueChange::Added(row) if row.chat == sales_second),
        "{added:?}"
    );
    assert_eq!(rows(alice.incoming("sales")), [sales_first, sales_second]);
    assert_eq!(
        carol.present_agents("sales").await.unwrap(),
        [agent_id("alice"), agent_id("carol")]
    );
    assert_eq!(alice.get_next("sales").await.unwrap().chat, sales_first);

    // Then support is taken from her.
    let reloaded = reload(&hub, &agents(&["sales"])).await;
    assert_eq!(reloaded.changed.agents_changed, [agent_id("alice")]);
    assert_eq!(present_count(&hub, "support"), 1, "Bob alone");
    assert_eq!(present_count(&hub, "sales"), 2);
    loop {
        let update = channel_update(&alice, "support").await;
        if let QueueChange::Snapshot(rows) = &update.change {
            assert!(rows.is_empty(), "her support list is emptied: {update:?}");
            break;
        }
    }
    let list = alice.incoming("support").expect("a support list");
    assert_eq!((list.waiting, list.rows.len()), (0, 0));
    let not_any_more = alice.get_next("support").await.unwrap_err();
    assert_eq!(
        not_any_more.code(),
        Some(ErrorCode::NotAllowed),
        "{not_any_more}"
    );
    assert_eq!(
        bob.present_agents("support").await.unwrap(),
        [agent_id("bob")]
    );

    // A new support chat reaches Bob, not her.
    let (support_second, _) = start(&customer, "support", ada(), "support two").await;
    loop {
        let update = channel_update(&bob, "support").await;
        if matches!(&update.change, QueueChange::Added(row) if row.chat == support_second) {
            break;
        }
    }
    let stray: Vec<Event> = events_within(&alice, Duration::from_millis(300))
        .await
        .into_iter()
        .filter(
            |event| matches!(event, Event::Queue(update) if update.channel.as_str() == "support"),
        )
        .collect();
    assert!(stray.is_empty(), "no support update for her: {stray:?}");
    assert!(rows(alice.incoming("support")).is_empty());
    // Her sales chat and updates go on; Bob takes support's chats.
    alice.send(sales_first, "Hello from sales").await.unwrap();
    customer_hears(&customer, sales_first, "Hello from sales").await;
    assert_eq!(bob.get_next("support").await.unwrap().chat, support_first);
    hub.stop().await;
}

#[tokio::test]
async fn a_removed_agent_is_closed_out_and_gets_its_chat_back_when_configured_again() {
    let with_alice = config(
        &[SUPPORT],
        &[("alice", &["support"], 4), ("bob", &["support"], 4)],
    );
    let without_alice = config(&[SUPPORT], &[("bob", &["support"], 4)]);
    let hub = TestHub::start(&with_alice).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.agent("bob").await; // Absent
    let (kept_customer, leaving_customer) = (hub.customer().await, hub.customer().await);
    let (kept, _) = start(&kept_customer, "support", ada(), "help").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, kept);
    let (leaving, _) = start(&leaving_customer, "support", ada(), "help too").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, leaving);
    alice.send(kept, "Hi Ada").await.unwrap();
    customer_hears(&kept_customer, kept, "Hi Ada").await;
    assert_eq!(present_count(&hub, "support"), 1);

    let reloaded = reload(&hub, &without_alice).await;
    assert_eq!(reloaded.changed.agents_removed, [agent_id("alice")]);
    assert!(reloaded.changed.agents_changed.is_empty(), "{reloaded}");
    assert_eq!(present_count(&hub, "support"), 0, "Absent at once");
    let presence = hub
        .server
        .hub()
        .presence()
        .agent(&agent_id("alice"))
        .unwrap();
    assert_eq!(presence.status(), Status::Absent);

    // Her connection is closed as unauthorized: requests fail from then on.
    let closed = closed_out(&alice).await;
    assert!(matches!(closed, ClientError::Closed(_)), "{closed:?}");
    assert!(closed.to_string().contains("Unauthorized"), "{closed}");
    let refused = refused_sign_in(&hub.client, "alice").await;
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");

    // Her chats stay hers: nobody else may take them, the customer can
    // still post, and a customer who leaves ends the chat (her slot freed).
    let taken = bob.pick(kept).await.unwrap_err();
    assert_eq!(taken.code(), Some(ErrorCode::ChatAlreadyTaken), "{taken}");
    let posted = kept_customer.send(kept, "Still there?").await.unwrap();
    leaving_customer.leave(leaving).await.unwrap();
    loop {
        let event = customer_event_of(&leaving_customer, leaving).await;
        if matches!(event.kind, ChatEventKind::Ended { .. }) {
            break;
        }
    }
    eventually("the left chat's slot is free", || {
        presence.capacity.used() == 1
    })
    .await;

    // Configured again, she signs in and gets the chat back through the
    // replay, with what was said while she was away.
    let reloaded = reload(&hub, &with_alice).await;
    assert_eq!(reloaded.changed.agents_added, [agent_id("alice")]);
    let alice = hub.agent("alice").await;
    let mut replay = Vec::new();
    while replay
        .last()
        .is_none_or(|event: &ChatEvent| event.seq < posted)
    {
        replay.push(agent_event_of(&alice, kept).await);
    }
    assert_eq!(
        replay.iter().map(|event| event.seq).collect::<Vec<_>>(),
        (1..=posted).collect::<Vec<_>>(),
        "the whole transcript, once, in order"
    );
    assert!(
        matches!(&replay.last().unwrap().kind, ChatEventKind::Message { from: Party::Customer, text, .. } if text == "Still there?"),
        "{replay:?}"
    );
    let recent = alice.recent_sessions(None, 10).await.unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|row| row.session.chat)
            .collect::<Vec<_>>(),
        [leaving]
    );
    alice.send(kept, "Back again").await.unwrap();
    customer_hears(&kept_customer, kept, "Back again").await;
    kept_customer.leave(kept).await.unwrap();
    loop {
        let event = agent_event_of(&alice, kept).await;
        if matches!(
            event.kind,
            ChatEventKind::Ended {
                by: Party::Customer
            }
        ) {
            break;
        }
    }
    eventually("both slots are free", || presence.capacity.used() == 0).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_removed_channel_drains_its_chats_then_goes() {
    let before = config(
        &[SUPPORT, SALES],
        &[("alice", &["support"], 4), ("carol", &["sales"], 4)],
    );
    let after = config(
        &[SUPPORT],
        &[("alice", &["support"], 4), ("carol", &["support"], 4)],
    );
    let hub = TestHub::start(&before).await;
    let alice = hub.present_agent("alice").await;
    let carol = hub.present_agent("carol").await;
    let (first_customer, second_customer, late_customer) = (
        hub.customer().await,
        hub.customer().await,
        hub.customer().await,
    );
    let (active, _) = start(&first_customer, "sales", ada(), "first").await;
    assert_eq!(carol.get_next("sales").await.unwrap().chat, active);
    let (waiting, _) = start(&second_customer, "sales", ada(), "second").await;
    let (support_chat, _) = start(&late_customer, "support", ada(), "support").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, support_chat);

    let reloaded = reload(&hub, &after).await;
    assert_eq!(reloaded.changed.channels_removed, [channel("sales")]);
    assert_eq!(reloaded.changed.agents_changed, [agent_id("carol")]);
    assert!(reloaded.changed.channels_changed.is_empty(), "{reloaded}");

    // Sales takes no new chat, offline form or transfer.
    let refused = late_customer
        .start_chat("sales", ada(), "anyone?")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::UnknownChannel), "{refused}");
    let form = late_customer
        .submit_offline_form("sales", None, "ada@example.com", "call me")
        .await
        .unwrap_err();
    assert_eq!(form.code(), Some(ErrorCode::UnknownChannel), "{form}");
    let transfer = alice
        .transfer_to_channel(support_chat, "sales")
        .await
        .unwrap_err();
    assert_eq!(
        transfer.code(),
        Some(ErrorCode::UnknownChannel),
        "{transfer}"
    );
    // A refused transfer left the chat with Alice.
    alice.send(support_chat, "Still mine").await.unwrap();
    customer_hears(&late_customer, support_chat, "Still mine").await;
    assert!(hub.server.hub().channel(&channel("sales")).is_some());
    // Alice never worked sales: its waiting chat is not hers to take.
    let not_hers = alice.get_next("sales").await.unwrap_err();
    assert_eq!(not_hers.code(), Some(ErrorCode::NotAllowed), "{not_hers}");

    // Carol, who worked it, takes the waiting chat, and both chats go on.
    assert_eq!(carol.get_next("sales").await.unwrap().chat, waiting);
    carol.send(active, "To the first").await.unwrap();
    customer_hears(&first_customer, active, "To the first").await;
    carol.send(waiting, "To the second").await.unwrap();
    customer_hears(&second_customer, waiting, "To the second").await;
    first_customer.send(active, "Thanks").await.unwrap();
    loop {
        if let ChatEventKind::Message { text, .. } = agent_event_of(&carol, active).await.kind
            && text == "Thanks"
        {
            break;
        }
    }
    // While chats are live the channel stays (drain checks run each second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        hub.server.hub().channel(&channel("sales")).is_some(),
        "a channel with live chats stays"
    );
    assert!(
        hub.server
            .hub()
            .member_channels(&agent_id("carol"))
            .contains(&channel("sales"))
    );

    // Both chats end; then the channel goes, and leaves Carol's channels.
    carol.end_chat(active).await.unwrap();
    second_customer.leave(waiting).await.unwrap();
    while !matches!(
        customer_event_of(&first_customer, active).await.kind,
        ChatEventKind::Ended { .. }
    ) {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while hub.server.hub().channel(&channel("sales")).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drained channel goes within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hub.server.hub().member_channels(&agent_id("carol")),
        [channel("support")]
    );
    assert_eq!(present_count(&hub, "sales"), 0);
    let gone = carol.present_agents("sales").await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::UnknownChannel), "{gone}");
    let gone = carol.get_next("sales").await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::UnknownChannel), "{gone}");
    // Carol works support now.
    let (next, _) = start(&second_customer, "support", ada(), "hello support").await;
    assert_eq!(carol.get_next("support").await.unwrap().chat, next);
    hub.stop().await;
}

#[tokio::test]
async fn changed_settings_apply_to_what_happens_next() {
    let before = config(&[SUPPORT], &[("alice", &["support"], 2)]);
    let after = config(
        &["[[channel]]\nname = \"support\"\nwelcome = \"Hello again!\"\nqueue_limit = 1\n"],
        &[("alice", &["support"], 1)],
    );
    let hub = TestHub::start(&before).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (first, _) = start(&customer, "support", ada(), "one").await;
    assert_eq!(welcome_of(&customer, first).await, "Welcome to support!");
    let (second, _) = start(&customer, "support", ada(), "two").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, first);
    assert_eq!(alice.get_next("support").await.unwrap().chat, second);

    let reloaded = reload(&hub, &after).await;
    assert_eq!(reloaded.changed.channels_changed, [channel("support")]);
    assert_eq!(reloaded.changed.agents_changed, [agent_id("alice")]);

    // The next chat gets the new welcome; the queue takes one chat now.
    let other = hub.customer().await;
    let (third, waiting) = start(&other, "support", ada(), "three").await;
    assert_eq!(waiting, 1);
    assert_eq!(welcome_of(&other, third).await, "Hello again!");
    let full = other
        .start_chat("support", ada(), "four")
        .await
        .unwrap_err();
    assert_eq!(full.code(), Some(ErrorCode::QueueFull), "{full}");

    // Alice keeps both chats beyond her lowered capacity, but takes no
    // new one until she is below it.
    alice.send(first, "Still with you").await.unwrap();
    alice.send(second, "You too").await.unwrap();
    let at_capacity = alice.get_next("support").await.unwrap_err();
    assert_eq!(
        at_capacity.code(),
        Some(ErrorCode::AtCapacity),
        "{at_capacity}"
    );
    alice.end_chat(first).await.unwrap();
    let at_capacity = alice.get_next("support").await.unwrap_err();
    assert_eq!(
        at_capacity.code(),
        Some(ErrorCode::AtCapacity),
        "one chat held, one allowed: {at_capacity}"
    );
    alice.end_chat(second).await.unwrap();
    assert_eq!(alice.get_next("support").await.unwrap().chat, third);
    let at_capacity = alice.get_next("support").await.unwrap_err();
    assert_eq!(
        at_capacity.code(),
        Some(ErrorCode::AtCapacity),
        "{at_capacity}"
    );
    hub.stop().await;
}

/// `text` as a configuration file of this hub (its address, data folder
/// and metrics as the running configuration has them).
fn file_text(hub: &TestHub, text: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[metrics]\nenabled = false\n{text}",
        hub.data_dir().display()
    )
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_and_nothing_changes() {
    let base = config(
        &[SUPPORT, SALES],
        &[("alice", &["support"], 4), ("carol", &["sales"], 4)],
    );
    let hub = TestHub::start(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chathub.toml");

    // Alice and sales gone, and an agent of a channel nobody declared.
    let unknown_channel = config(
        &[SUPPORT],
        &[("carol", &["support"], 4), ("dave", &["nowhere"], 4)],
    );
    std::fs::write(&path, file_text(&hub, &unknown_channel)).unwrap();
    let err = hub.server.reload_from(Some(&path)).await.unwrap_err();
    assert!(
        matches!(err, ReloadError::Config(ConfigError::Invalid(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("nowhere"), "{err}");

    std::fs::write(&path, file_text(&hub, "[[channel]\nname = \"support\"\n")).unwrap();
    let err = hub.server.reload_from(Some(&path)).await.unwrap_err();
    assert!(
        matches!(err, ReloadError::Config(ConfigError::Parse(_))),
        "{err:?}"
    );
    let missing = dir.path().join("missing.toml");
    let err = hub.server.reload_from(Some(&missing)).await.unwrap_err();
    assert!(
        matches!(err, ReloadError::Config(ConfigError::Read { .. })),
        "{err:?}"
    );

    // Nothing changed: Alice signs in, sales takes chats, Dave is unknown.
    let alice = hub.present_agent("alice").await;
    let carol = hub.present_agent("carol").await;
    let refused = refused_sign_in(&hub.client, "dave").await;
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");
    let customer = hub.customer().await;
    let (sales_chat, _) = start(&customer, "sales", ada(), "sales?").await;
    assert_eq!(carol.get_next("sales").await.unwrap().chat, sales_chat);
    let (support_chat, _) = start(&customer, "support", ada(), "support?").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, support_chat);

    // The same file made valid is taken.
    let valid = config(
        &[SUPPORT, SALES],
        &[
            ("alice", &["support"], 4),
            ("carol", &["sales"], 4),
            ("dave", &["sales"], 4),
        ],
    );
    std::fs::write(&path, file_text(&hub, &valid)).unwrap();
    let reloaded = hub.server.reload_from(Some(&path)).await.unwrap();
    assert_eq!(reloaded.changed.agents_added, [agent_id("dave")]);
    assert!(reloaded.needs_restart.is_empty(), "{reloaded}");
    hub.agent("dave").await;
    hub.stop().await;
}

#[tokio::test]
async fn restart_only_fields_are_reported_and_keep_their_running_values() {
    let text = |grace: &str, per_ip: u32, dave: bool| {
        let mut text = format!(
            "presence_grace = \"{grace}\"\n[limits]\nchats_per_ip = {per_ip}\n{SUPPORT}[[agent]]\nid = \"alice\"\ntoken = \"{TOKEN}\"\n"
        );
        if dave {
            text.push_str(&format!("[[agent]]\nid = \"dave\"\ntoken = \"{TOKEN}\"\n"));
        }
        text
    };
    let hub = TestHub::start(&text("60s", 1, false)).await;
    let changed = text("2s", 5, true);

    let reloaded = reload(&hub, &changed).await;
    assert_eq!(reloaded.needs_restart, ["presence_grace", "limits"]);
    assert_eq!(reloaded.changed.agents_added, [agent_id("dave")]);
    assert_eq!(
        reloaded.to_string(),
        "agents added: dave; changed but kept until a restart: presence_grace, limits"
    );
    hub.agent("dave").await;

    // The running limit stays: one live chat per address.
    assert_eq!(hub.server.hub().limits().chats_per_ip, 1);
    let _alice = hub.present_agent("alice").await;
    let (first, second) = (hub.customer().await, hub.customer().await);
    start(&first, "support", ada(), "one").await;
    let refused = second
        .start_chat("support", ada(), "two")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::TooManyChats), "{refused}");

    // Still waiting for a restart, the same file reports it again and
    // nothing else.
    let again = reload(&hub, &changed).await;
    assert!(again.changed.is_empty(), "{again}");
    assert_eq!(again.needs_restart, ["presence_grace", "limits"]);
    hub.stop().await;
}

/// The `chathub` binary serving a configuration file, killed when dropped.
struct HubProcess {
    child: Child,
    log: PathBuf,
}

impl HubProcess {
    fn spawn(config: &Path, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_chathub"))
            .args(["serve", "--no-metrics", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().expect("the log file twice"))
            .stderr(log_file)
            .spawn()
            .expect("the hub binary starts");
        Self {
            child,
            log: log.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `chathub <args>` to its end (killed after 30 s).
async fn chathub(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chathub"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the chathub binary starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("the child's status").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("chathub {args:?} did not finish in 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("the child's output")
    })
    .await
    .unwrap()
}

fn reload_args(config: &Path) -> Vec<String> {
    vec![
        "reload".into(),
        "--config".into(),
        config.display().to_string(),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chathub_reload_and_sighup_reload_a_running_hub() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let data = dir.path().join("data");
    let head = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[metrics]\nenabled = false\n[[channel]]\nname = \"support\"\n",
        data.display()
    );
    let agent = |id: &str| format!("[[agent]]\nid = \"{id}\"\ntoken = \"{TOKEN}\"\n");
    let file = dir.path().join("chathub.toml");
    std::fs::write(&file, format!("{head}{}", agent("alice"))).unwrap();
    let hub = HubProcess::spawn(&file, &dir.path().join("hub.log"));

    // Wait for the hub: its certificate, a first connection, the control
    // socket.
    let cert = data.join("cert.pem");
    let mut client = None;
    for _ in 0..300 {
        if cert.exists()
            && data.join("control.sock").exists()
            && let Ok(built) = ClientConfig::builder(([127, 0, 0, 1], port).into())
                .trust_pem_file(&cert)
                .and_then(|builder| builder.build())
            && CustomerClient::connect(&built).await.is_ok()
        {
            client = Some(built);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = client.unwrap_or_else(|| panic!("the hub did not come up: {}", hub.log()));
    AgentClient::connect(&client, "alice", TOKEN).await.unwrap();
    let refused = refused_sign_in(&client, "dave").await;
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");

    // `chathub reload` after an agent was added.
    let with_dave = format!("{head}{}{}", agent("alice"), agent("dave"));
    std::fs::write(&file, &with_dave).unwrap();
    let out = chathub(reload_args(&file)).await;
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), hub.log());
    assert_eq!(text(&out.stdout).trim(), "reloaded: agents added: dave");
    let dave = AgentClient::connect(&client, "dave", TOKEN).await.unwrap();

    // An invalid file: `chathub reload` says why and does not ask.
    let invalid = format!(
        "{head}{}[[agent]]\nid = \"erin\"\ntoken = \"{TOKEN}\"\nchannels = [\"nowhere\"]\n",
        agent("alice")
    );
    std::fs::write(&file, &invalid).unwrap();
    let out = chathub(reload_args(&file)).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(stderr.contains("not asked to reload"), "{stderr}");
    // Asked through another (valid) file naming the same data folder, the
    // hub reads its own file and refuses it with the reason.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, format!("{head}{}", agent("alice"))).unwrap();
    let out = chathub(reload_args(&other)).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("refused the configuration"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
    // Nothing changed: Dave (whom the invalid file left out) still works.
    dave.present_agents("support").await.unwrap();
    AgentClient::connect(&client, "dave", TOKEN).await.unwrap();

    // SIGHUP with a valid file applies it.
    std::fs::write(&file, format!("{with_dave}{}", agent("erin"))).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &hub.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !hub
        .log()
        .contains("configuration reloaded: agents added: erin")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub reloads on SIGHUP: {}",
            hub.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    AgentClient::connect(&client, "erin", TOKEN).await.unwrap();
    dave.present_agents("support").await.unwrap();
    drop(hub);
}

/// A reload that gives an agent a new token closes the connections the old
/// one signed in (it may have leaked) and keeps everything else: the agent
/// signs in again with the new token, and the old one is refused.
#[tokio::test]
async fn a_new_token_closes_the_old_tokens_connections() {
    let text = config(
        &[SUPPORT],
        &[("alice", &["support"], 4), ("bob", &["support"], 4)],
    );
    let hub = TestHub::start(&text).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;

    let rotated = text.replacen(
        &format!("id = \"alice\"\ntoken = {TOKEN:?}"),
        "id = \"alice\"\ntoken = \"a-brand-new-token-0123\"",
        1,
    );
    assert_ne!(rotated, text);
    let reloaded = reload(&hub, &rotated).await;
    assert_eq!(reloaded.changed.agents_changed, [agent_id("alice")]);

    let closed = closed_out(&alice).await;
    assert!(matches!(closed, ClientError::Closed(_)), "{closed:?}");
    // Bob, whose token did not change, is untouched.
    assert!(bob.present_agents("support").await.is_ok());
    assert_eq!(bob.reconnects(), 0);
    // The old token no longer signs in; the new one does.
    let refused = refused_sign_in(&hub.client, "alice").await;
    assert_eq!(refused.code(), Some(ErrorCode::Unauthorized), "{refused}");
    let again = AgentClient::connect(&hub.client, "alice", "a-brand-new-token-0123")
        .await
        .expect("the new token signs in");
    assert!(again.present_agents("support").await.is_ok());
}
