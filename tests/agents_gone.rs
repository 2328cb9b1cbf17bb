//! Agents who go quiet, end to end over QUIC: a Present agent idle for
//! their channel's `idle_after` turns Away (offered nothing, keeping their
//! chats, shown Away to supervisors) until they set Present again; an
//! agent whose connections stay gone past the presence grace has their
//! chats put back at the front of the queue or kept, as the channel's
//! `on_agent_gone` says, and the customer is told either way.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, CustomerClient, Event};
use chathub::core::{AgentId, ChannelId, ChatEventKind, ChatId, Customer, Status};
use chathub::protocol::ErrorCode;
use common::{PATIENCE, TestHub, customer_chat_event, start};

/// `push` offers chats and turns agents Away after 400 ms without a
/// request; `back` requeues a gone agent's chats; `keep` keeps them.
/// Agents are gone 400 ms after their last connection closes.
const CONFIG: &str = concat!(
    "presence_grace = \"400ms\"\n",
    roomy_limits!(),
    r#"
[[channel]]
name = "push"
routing = "push"
offer_timeout = "5s"
offline_form = false
idle_after = "400ms"
[[channel]]
name = "back"
offline_form = false
on_agent_gone = "requeue"
[[channel]]
name = "keep"
offline_form = false
[[agent]]
id = "ann"
token = "test-token-0123456789"
channels = ["push"]
[[agent]]
id = "sam"
token = "test-token-0123456789"
channels = ["push"]
role = "supervisor"
supervises = ["push"]
[[agent]]
id = "rae"
token = "test-token-0123456789"
channels = ["back"]
[[agent]]
id = "ray"
token = "test-token-0123456789"
channels = ["back"]
[[agent]]
id = "kim"
token = "test-token-0123456789"
channels = ["keep"]
[[agent]]
id = "kit"
token = "test-token-0123456789"
channels = ["keep"]
"#
);

fn named(name: &str) -> Customer {
    Customer {
        name: Some(name.into()),
        email: None,
    }
}

fn status(hub: &TestHub, agent: &str) -> Status {
    hub.server
        .hub()
        .presence()
        .agent(&AgentId::new(agent))
        .expect("a configured agent")
        .status()
}

fn slots_used(hub: &TestHub, agent: &str) -> u64 {
    hub.server
        .hub()
        .presence()
        .agent(&AgentId::new(agent))
        .expect("a configured agent")
        .capacity
        .used()
}

/// The events an agent receives within `wait`.
async fn events_within(agent: &AgentClient, wait: Duration) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        events.push(event);
    }
    events
}

/// The next event an agent receives that `want` picks, skipping others.
async fn wait_for<T>(agent: &AgentClient, mut want: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = agent.next_event().await.expect("the connection is open");
            if let Some(found) = want(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event within the test's patience")
}

/// The customer's chat events within `wait`, by kind.
async fn customer_kinds_within(customer: &CustomerClient, wait: Duration) -> Vec<ChatEventKind> {
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, customer.next_event()).await {
        if let Event::Chat(event) = event {
            kinds.push(event.kind);
        }
    }
    kinds
}

/// The customer's next chat event that says something of the agent (not
/// the start, a message or a read mark).
async fn next_notice(customer: &CustomerClient) -> ChatEventKind {
    loop {
        let event = customer_chat_event(customer).await;
        if !matches!(
            event.kind,
            ChatEventKind::Started { .. }
                | ChatEventKind::Message { .. }
                | ChatEventKind::Read { .. }
        ) {
            return event.kind;
        }
    }
}

#[tokio::test]
async fn an_idle_agent_turns_away_keeps_their_chat_gets_no_offer_and_comes_back_by_choice() {
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.present_agent("ann").await;
    let sam = hub.agent("sam").await;

    // Requests keep her Present: twice idle_after of them.
    let busy_until = tokio::time::Instant::now() + Duration::from_millis(800);
    while tokio::time::Instant::now() < busy_until {
        ann.present_agents("push").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&hub, "ann"), Status::Present, "active agents stay");

    // A chat is offered to her, and she takes it.
    let customer = hub.customer().await;
    let (held, _) = start(&customer, "push", named("Ada"), "hello").await;
    let offered = wait_for(&ann, |event| match event {
        Event::Offered(offer) => Some(offer.row.chat),
        _ => None,
    })
    .await;
    assert_eq!(offered, held);
    ann.accept(held).await.unwrap();
    let quiet_from = tokio::time::Instant::now();

    // Quiet from then on: Away, and told so, with herself as the setter.
    let (away, by) = wait_for(&ann, |event| match event {
        Event::StatusChanged { status, by } => Some((status, by)),
        _ => None,
    })
    .await;
    assert_eq!((away, by), (Status::Away, AgentId::new("ann")));
    assert!(
        quiet_from.elapsed() >= Duration::from_millis(350),
        "Away only after idle_after ({:?})",
        quiet_from.elapsed()
    );
    assert_eq!(status(&hub, "ann"), Status::Away);
    assert_eq!(
        hub.server
            .hub()
            .presence()
            .present_count(&ChannelId::new("push")),
        0
    );

    // The supervisor sees her Away, still holding her chat.
    let monitor = sam.monitor("push").await.unwrap();
    let row = monitor
        .agents
        .iter()
        .find(|agent| agent.agent.as_str() == "ann")
        .expect("ann in the monitor");
    assert_eq!((row.status, row.used), (Status::Away, 1));
    assert_eq!(
        monitor
            .active
            .iter()
            .map(|chat| (chat.chat, chat.agent.as_str()))
            .collect::<Vec<_>>(),
        [(held, "ann")]
    );

    // A new chat is not offered to her while she is Away.
    let other = hub.customer().await;
    let (waiting, _) = start(&other, "push", named("Bea"), "anyone?").await;
    let offers: Vec<ChatId> = events_within(&ann, Duration::from_millis(700))
        .await
        .into_iter()
        .filter_map(|event| match event {
            Event::Offered(offer) => Some(offer.row.chat),
            _ => None,
        })
        .collect();
    assert!(offers.is_empty(), "offered {offers:?} while Away");

    // Her chat is still hers: she answers in it, which does not bring her
    // back by itself.
    ann.send(held, "still here").await.unwrap();
    loop {
        if let ChatEventKind::Message { text, .. } = customer_chat_event(&customer).await.kind
            && text == "still here"
        {
            break;
        }
    }
    assert_eq!(
        status(&hub, "ann"),
        Status::Away,
        "only her own choice returns her"
    );

    // Present again: the waiting chat is offered to her.
    ann.set_status(Status::Present).await.unwrap();
    let offered = wait_for(&ann, |event| match event {
        Event::Offered(offer) => Some(offer.row.chat),
        _ => None,
    })
    .await;
    assert_eq!(offered, waiting);
    ann.accept(waiting).await.unwrap();
    assert_eq!(slots_used(&hub, "ann"), 2);
    hub.stop().await;
}

#[tokio::test]
async fn a_gone_agents_chat_goes_back_to_the_front_of_the_queue_and_the_customer_is_told() {
    let hub = TestHub::start(CONFIG).await;
    let rae = hub.present_agent("rae").await;
    let ray = hub.present_agent("ray").await;

    // Bea waits first; Ada's chat, started later, is rae's; Cy waits last.
    let bea = hub.customer().await;
    let (first_waiting, _) = start(&bea, "back", named("Bea"), "first").await;
    let ada = hub.customer().await;
    let (held, _) = start(&ada, "back", named("Ada"), "second").await;
    rae.pick(held).await.unwrap();
    let cy = hub.customer().await;
    let (last_waiting, _) = start(&cy, "back", named("Cy"), "third").await;
    assert_eq!(slots_used(&hub, "rae"), 1);

    rae.close();
    drop(rae);

    // Past the grace: Ada is told her agent is gone, and that she waits
    // again, in one go.
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::Assigned {
            agent: AgentId::new("rae")
        }
    );
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::AgentGone {
            agent: AgentId::new("rae")
        }
    );
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::Requeued {
            by: None,
            channel: ChannelId::new("back")
        }
    );
    assert_eq!(status(&hub, "rae"), Status::Absent);
    assert_eq!(slots_used(&hub, "rae"), 0, "her slot is free");

    // Ada's chat is served before Bea's, which has waited longer, and Cy's.
    let order = [
        ray.get_next("back").await.unwrap().chat,
        ray.get_next("back").await.unwrap().chat,
        ray.get_next("back").await.unwrap().chat,
    ];
    assert_eq!(order, [held, first_waiting, last_waiting]);
    // Ray has Ada's whole chat, and she is told he took it.
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::Assigned {
            agent: AgentId::new("ray")
        }
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_gone_agent_keeps_their_chat_where_the_channel_says_so_and_the_customer_is_told() {
    let hub = TestHub::start(CONFIG).await;
    let kim = hub.present_agent("kim").await;
    let kit = hub.present_agent("kit").await;
    let ada = hub.customer().await;
    let (held, _) = start(&ada, "keep", named("Ada"), "hello").await;
    kim.pick(held).await.unwrap();
    kim.close();
    drop(kim);

    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::Assigned {
            agent: AgentId::new("kim")
        }
    );
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::AgentGone {
            agent: AgentId::new("kim")
        }
    );
    assert_eq!(status(&hub, "kim"), Status::Absent);
    assert_eq!(slots_used(&hub, "kim"), 1, "the chat keeps her slot");
    assert_eq!(
        kit.get_next("keep").await.unwrap_err().code(),
        Some(ErrorCode::QueueEmpty),
        "nothing went back to the queue"
    );

    // Back, she finds it and answers in it.
    let kim = hub.agent("kim").await;
    kim.send(held, "sorry, I am back").await.unwrap();
    loop {
        if let ChatEventKind::Message { text, .. } = customer_chat_event(&ada).await.kind
            && text == "sorry, I am back"
        {
            break;
        }
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_reconnect_within_the_grace_changes_nothing() {
    let hub = TestHub::start(CONFIG).await;
    let rae = hub.present_agent("rae").await;
    let ray = hub.present_agent("ray").await;
    let ada = hub.customer().await;
    let (held, _) = start(&ada, "back", named("Ada"), "hello").await;
    rae.pick(held).await.unwrap();
    assert_eq!(
        next_notice(&ada).await,
        ChatEventKind::Assigned {
            agent: AgentId::new("rae")
        }
    );

    rae.close();
    drop(rae);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rae = hub.agent("rae").await;
    assert_eq!(rae.profile().status, Status::Present);

    // Well past the grace from the first close: nothing happened.
    let kinds = customer_kinds_within(&ada, Duration::from_millis(900)).await;
    assert!(
        !kinds.iter().any(|kind| matches!(
            kind,
            ChatEventKind::AgentGone { .. } | ChatEventKind::Requeued { .. }
        )),
        "{kinds:?}"
    );
    assert_eq!(status(&hub, "rae"), Status::Present);
    assert_eq!(slots_used(&hub, "rae"), 1);
    assert_eq!(
        ray.get_next("back").await.unwrap_err().code(),
        Some(ErrorCode::QueueEmpty)
    );
    rae.send(held, "still yours truly").await.unwrap();
    hub.stop().await;
}
