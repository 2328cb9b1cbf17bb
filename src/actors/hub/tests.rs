//! The hub's supervision and recovery, driven without a network.

use std::time::Duration;

use super::*;
use crate::actors::sink::Outbound;
use crate::core::ChatEventKind;

fn config() -> HubConfig {
    let mut support = ChannelSettings::new(ChannelId::new("support"));
    support.offline_form = false;
    HubConfig {
        channels: vec![support],
        agents: vec![AgentConfig {
            id: AgentId::new("alice"),
            name: "Alice".into(),
            token: TokenDigest::of("secret"),
            channels: vec![ChannelId::new("support")],
            capacity: 4,
            role: Default::default(),
            skills: Default::default(),
        }],
        presence_grace: Duration::from_secs(5),
        // Each test's own: a hub removes files its store has no record of.
        files: crate::store::FileBytes::local({
            static NEXT: AtomicU64 = AtomicU64::new(0);
            std::env::temp_dir().join(format!(
                "chathub-hub-tests-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ))
        }),
        limits: Limits::default(),
        ids_after: 0,
    }
}

fn queued(start: ChatStart) -> (ChatId, u32) {
    match start {
        ChatStart::Queued { chat, waiting } => (chat, waiting),
        ChatStart::Offline(_) => panic!("expected a queued chat"),
    }
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test]
async fn a_panicking_chat_actor_is_restarted_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let support = ChannelId::new("support");
    let alice = AgentId::new("alice");
    let (customer, _customer_events) = EventSink::new(hub.next_conn(), 64);
    let (doomed, _) = queued(
        hub.start_chat(
            customer.clone(),
            support.clone(),
            Customer::default(),
            1,
            "first".into(),
            format!("test-secret-for-chat-{}", 1).into(),
        )
        .await
        .unwrap(),
    );
    let posted = hub
        .post(
            Caller::Customer(customer.conn()),
            customer.conn(),
            doomed,
            2,
            "still there?".into(),
        )
        .await
        .unwrap();
    hub.crash_chat(doomed);
    wait_for(|| hub.actor_failures() == 1).await;

    // The hub lives on: a new chat is queued behind the restarted one...
    let (second, _) = queued(
        hub.start_chat(
            customer.clone(),
            support.clone(),
            Customer::default(),
            3,
            "second".into(),
            format!("test-secret-for-chat-{}", 3).into(),
        )
        .await
        .unwrap(),
    );
    let (agent_sink, _agent_events) = EventSink::new(hub.next_conn(), 64);
    hub.attach_agent(&alice, agent_sink, Vec::new())
        .await
        .unwrap();
    // ...and the crashed chat came back from the store, transcript and all.
    let mut taken = Vec::new();
    for _ in 0..100 {
        match hub.get_next(alice.clone(), support.clone()).await {
            Ok(assignment) => taken.push(assignment.chat),
            Err(HubError::QueueEmpty(_)) if taken.len() == 2 => break,
            Err(HubError::QueueEmpty(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(err) => panic!("{err}"),
        }
    }
    taken.sort_unstable();
    assert_eq!(taken, [doomed, second]);
    let (events, _) = hub.transcript(&alice, doomed, 0).await.unwrap();
    assert!(events.iter().any(|event| event.seq == posted.seq));
    hub.shutdown().await;
}

#[tokio::test]
async fn a_store_that_cannot_write_refuses_to_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let support = ChannelId::new("support");
    let (customer, _events) = EventSink::new(hub.next_conn(), 64);
    let (chat, _) = queued(
        hub.start_chat(
            customer.clone(),
            support.clone(),
            Customer::default(),
            1,
            "hi".into(),
            "test-secret-for-chat-1".into(),
        )
        .await
        .unwrap(),
    );
    // The writer stops: from now on nothing can be made durable.
    hub.store().close();
    let posted = hub
        .post(
            Caller::Customer(customer.conn()),
            customer.conn(),
            chat,
            2,
            "lost?".into(),
        )
        .await;
    assert!(
        matches!(posted, Err(HubError::StorageUnavailable(_))),
        "{posted:?}"
    );
    let started = hub
        .start_chat(
            customer.clone(),
            support,
            Customer::default(),
            3,
            "another".into(),
            "test-secret-for-chat-3".into(),
        )
        .await;
    assert!(
        matches!(started, Err(HubError::StorageUnavailable(_))),
        "{started:?}"
    );
    // What was refused was never stored.
    let stored = hub.store().chat(chat).unwrap().unwrap();
    assert!(stored.events.iter().all(
        |event| !matches!(&event.kind, ChatEventKind::Message { text, .. } if text == "lost?")
    ));
    hub.shutdown().await;
}

#[tokio::test]
async fn a_restarted_channel_actor_gets_its_waiting_chats_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let support = ChannelId::new("support");
    let alice = AgentId::new("alice");
    let (customer, _events) = EventSink::new(hub.next_conn(), 64);
    let mut started = Vec::new();
    for n in 1..=3u64 {
        let start = hub
            .start_chat(
                customer.clone(),
                support.clone(),
                Customer::default(),
                n,
                format!("chat {n}"),
                format!("test-secret-for-chat-{n}").into(),
            )
            .await
            .unwrap();
        started.push(queued(start).0);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    hub.crash_channel(&support);
    wait_for(|| hub.actor_failures() == 1).await;
    let (agent_sink, _agent_events) = EventSink::new(hub.next_conn(), 64);
    hub.attach_agent(&alice, agent_sink, Vec::new())
        .await
        .unwrap();
    let mut taken = Vec::new();
    for _ in 0..200 {
        match hub.get_next(alice.clone(), support.clone()).await {
            Ok(assignment) => taken.push(assignment.chat),
            Err(HubError::QueueEmpty(_)) if taken.len() == 3 => break,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        if taken.len() == 3 {
            break;
        }
    }
    assert_eq!(taken, started, "the same chats, in the same order");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_customer_who_leaves_a_queued_chat_withdraws_it() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let support = ChannelId::new("support");
    let (customer, mut events) = EventSink::new(hub.next_conn(), 64);
    let (chat, waiting) = queued(
        hub.start_chat(
            customer.clone(),
            support.clone(),
            Customer::default(),
            1,
            "hi".into(),
            format!("test-secret-for-chat-{}", 1).into(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(waiting, 1);
    hub.end_chat(Caller::Customer(customer.conn()), chat)
        .await
        .unwrap();
    let alice = AgentId::new("alice");
    assert_eq!(
        hub.get_next(alice.clone(), support.clone()).await,
        Err(HubError::QueueEmpty(support))
    );
    // Started, first message, ended; in order.
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match events.events.recv().await.map(|(event, _)| event) {
            Some(Outbound::Chat(event)) => kinds.push((event.seq, event.kind.clone())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds[0].0, 1);
    assert!(matches!(kinds[2], (3, ChatEventKind::Ended { .. })));
    let recent = hub.recent_sessions(&alice, None, 10).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].session.chat, chat);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_live_chat_whose_events_cannot_be_read_is_left_out_and_the_others_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let (customer, _events) = EventSink::new(hub.next_conn(), 64);
    let mut chats = Vec::new();
    for n in 1..=3 {
        let (chat, _) = queued(
            hub.start_chat(
                customer.clone(),
                ChannelId::new("support"),
                Customer::default(),
                n,
                format!("chat {n}"),
                format!("test-secret-for-chat-{n}").into(),
            )
            .await
            .unwrap(),
        );
        chats.push(chat);
    }
    hub.shutdown().await;
    drop(hub);
    // Damage one event of the middle chat on disk (once the database is
    // released).
    let mut damaged = false;
    for _ in 0..200 {
        if crate::store::damage_event_for_tests(dir.path(), chats[1], 2) {
            damaged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(damaged, "the database is released after shutdown");
    let hub = Hub::start(config(), Store::open(dir.path()).unwrap())
        .await
        .expect("one damaged chat does not keep the hub from starting");
    assert_eq!(hub.live_chats(), 2);
    assert!(hub.live_chat(chats[0]).is_some() && hub.live_chat(chats[2]).is_some());
    assert!(hub.live_chat(chats[1]).is_none());
    hub.shutdown().await;
}

#[tokio::test]
async fn a_failed_push_channel_frees_its_offered_slots_and_offers_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.channels[0].routing = crate::core::Routing::Push;
    // One slot: a slot the failed actor kept would leave none to offer.
    config.agents[0].capacity = 1;
    let hub = Hub::start(config, Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let support = ChannelId::new("support");
    let alice = AgentId::new("alice");
    let (agent_sink, _agent_events) = EventSink::new(hub.next_conn(), 1024);
    hub.attach_agent(&alice, agent_sink, Vec::new())
        .await
        .unwrap();
    hub.set_status(&alice, Status::Present).await.unwrap();
    let (customer, _customer_events) = EventSink::new(hub.next_conn(), 64);
    let (chat, _) = queued(
        hub.start_chat(
            customer,
            support.clone(),
            Customer::default(),
            1,
            "offer me".into(),
            "test-secret-for-chat-1".into(),
        )
        .await
        .unwrap(),
    );
    let slots = hub.presence().agent(&alice).unwrap();
    wait_for(|| hub.shared.offers.contains_key(&chat)).await;
    assert_eq!(slots.capacity.used(), 1, "the offer holds alice's slot");

    hub.crash_channel(&support);
    wait_for(|| hub.actor_failures() == 1).await;
    // The new actor offers the chat again, with the freed slot.
    let mut accepted = None;
    for _ in 0..500 {
        match hub.accept_offer(alice.clone(), chat).await {
            Ok(assignment) => {
                accepted = Some(assignment);
                break;
            }
            Err(HubError::NotOffered(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(err) => panic!("unexpected: {err}"),
        }
    }
    assert_eq!(accepted.expect("offered again").chat, chat);
    assert_eq!(slots.capacity.used(), 1, "one slot: the chat's");
    hub.end_chat(Caller::Agent(alice.clone()), chat)
        .await
        .unwrap();
    wait_for(|| slots.capacity.used() == 0).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn watchers_of_a_channel_share_one_feed_that_publishes_only_changes() {
    let mut config = config();
    config.limits.monitor_interval = Duration::from_millis(20);
    let support = ChannelId::new("support");
    let sam = AgentId::new("sam");
    config.agents.push(AgentConfig {
        id: sam.clone(),
        name: "Sam".into(),
        token: TokenDigest::of("secret"),
        channels: Vec::new(),
        capacity: 4,
        role: crate::core::AgentRole::Supervisor {
            supervises: vec![support.clone()],
        },
        skills: Default::default(),
    });
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(config, Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let picture = |update: MonitorUpdate| match update {
        MonitorUpdate::Picture(picture) => picture,
        other => panic!("expected a picture, got {other:?}"),
    };
    async fn soon(watch: &mut MonitorWatch) -> MonitorUpdate {
        tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("an update in time")
    }

    assert!(matches!(
        hub.watch_monitor(&AgentId::new("alice"), hub.next_conn(), support.clone())
            .await,
        Err(HubError::NotAllowed(_))
    ));
    assert_eq!(hub.monitor_feeds(), 0, "a refused watch starts nothing");
    let (one, two) = (hub.next_conn(), hub.next_conn());
    let mut first = hub
        .watch_monitor(&sam, one, support.clone())
        .await
        .unwrap()
        .expect("a new watch");
    let mut second = hub
        .watch_monitor(&sam, two, support.clone())
        .await
        .unwrap()
        .expect("a new watch");
    assert!(
        hub.watch_monitor(&sam, one, support.clone())
            .await
            .unwrap()
            .is_none(),
        "watching again on one connection changes nothing"
    );
    assert_eq!(hub.monitor_feeds(), 1, "one feed for both watchers");
    // Both get the picture at hand: the very same one.
    let (a, b) = (
        picture(soon(&mut first).await),
        picture(soon(&mut second).await),
    );
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.waiting_count, 0);

    // Only the clock moves for several intervals: no new picture.
    let quiet = tokio::time::timeout(Duration::from_millis(150), first.next()).await;
    assert!(quiet.is_err(), "a picture for nothing: {quiet:?}");

    // A chat starts waiting: one new picture, shared again.
    let (customer, _events) = EventSink::new(hub.next_conn(), 64);
    let (chat, _) = queued(
        hub.start_chat(
            customer,
            support.clone(),
            Customer::default(),
            1,
            "hi".into(),
            "test-secret-for-chat-1".to_owned().into(),
        )
        .await
        .unwrap(),
    );
    let (a, b) = (
        picture(soon(&mut first).await),
        picture(soon(&mut second).await),
    );
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.waiting_count, 1);
    assert_eq!(a.waiting[0].chat, chat);

    // The first connection goes: its watch ends quietly; the feed runs on
    // for the second, and stops once it is gone too.
    hub.monitors_gone(one);
    assert!(matches!(soon(&mut first).await, MonitorUpdate::Ended));
    assert_eq!(hub.monitor_feeds(), 1);
    drop(second);
    wait_for(|| hub.monitor_feeds() == 0).await;
    hub.shutdown().await;
}

#[tokio::test]
async fn a_partitions_hub_hands_out_ids_of_its_partition_and_carries_on_after_a_restart() {
    use crate::core::partition;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.ids_after = partition::id_base(3);
    let start = |hub: Hub, n: u64| async move {
        let (customer, _events) = EventSink::new(hub.next_conn(), 64);
        queued(
            hub.start_chat(
                customer,
                ChannelId::new("support"),
                Customer::default(),
                1,
                "hello".into(),
                format!("test-secret-for-chat-{n}").into(),
            )
            .await
            .unwrap(),
        )
        .0
    };
    let hub = Hub::start(config.clone(), Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let first = start(hub.clone(), 1).await;
    assert_eq!(first.0, partition::id_base(3) + 1);
    assert_eq!(partition::of_id(first.0), 3);
    hub.shutdown().await;
    drop(hub);
    // The database is released once the last task holding it has ended.
    let store = {
        let mut tries = 0;
        loop {
            match Store::open(dir.path()) {
                Ok(store) => break store,
                Err(err) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let _ = err;
                }
                Err(err) => panic!("the store does not open again: {err}"),
            }
        }
    };
    let hub = Hub::start(config, store).await.unwrap();
    let second = start(hub.clone(), 2).await;
    assert_eq!(
        second.0,
        first.0 + 1,
        "after the stored ones, not the base again"
    );
    hub.shutdown().await;
}
