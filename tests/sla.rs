//! The first-response target (`first_response_within`) end to end over
//! QUIC: a chat no agent takes in time breaches once (counted in
//! `/metrics`), raises the unanswered alert, and on a push channel goes to
//! another agent; a chat answered in time, a requeued chat and a chat of a
//! closed channel do not breach.
//!
//! Each test works its own channel, so the counters of tests sharing a
//! process (and its one metrics recorder) stay apart.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use chathub::client::{AgentClient, Event};
use chathub::core::{ChatId, Customer, OfferEnd};
use common::{TestHub, scrape, start, value};

/// Every channel has a one-second target and an alert after a minute, so
/// an alert within the tests' waits can only be the breach's.
const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "late"
first_response_within = "1s"
alert_after = "60s"
offline_form = false
[[channel]]
name = "quick"
first_response_within = "1s"
alert_after = "60s"
offline_form = false
[[channel]]
name = "again"
first_response_within = "1s"
alert_after = "60s"
offline_form = false
[[channel]]
name = "offered"
routing = "push"
offer_timeout = "30s"
first_response_within = "1s"
alert_after = "60s"
offline_form = false
[[agent]]
id = "pat"
token = "test-token-0123456789"
channels = ["late", "quick", "again"]
[[agent]]
id = "ann"
token = "test-token-0123456789"
channels = ["offered"]
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["offered"]
"#
);

/// [`CONFIG`] and a channel `closed` from yesterday to tomorrow (UTC), with
/// a one-second target and alert, that cy works.
fn closed_config() -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let holidays = [today.yesterday().unwrap(), today, today.tomorrow().unwrap()]
        .map(|day| format!("\"{day}\""))
        .join(", ");
    let week = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ]
    .map(|day| format!("{day} = [\"00:00-24:00\"]\n"))
    .concat();
    format!(
        r#"{CONFIG}
[[channel]]
name = "closed"
first_response_within = "1s"
alert_after = "1s"
offline_form = false
[channel.hours]
time_zone = "UTC"
{week}holidays = [{holidays}]
[[agent]]
id = "cy"
token = "test-token-0123456789"
channels = ["closed"]
"#
    )
}

/// The process's metrics endpoint, installed by whichever test comes first,
/// from a thread outside every test's runtime so that the exporter runs on
/// a runtime of its own and outlives the test that installed it.
fn endpoint() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        std::thread::spawn(common::metrics_endpoint)
            .join()
            .expect("the exporter starts")
    })
}

/// Waits for the alert of `chat` to reach `agent`.
async fn alerted(agent: &AgentClient, chat: ChatId) {
    let (alerts, _) = alerts_and_offers(agent, Duration::from_millis(1800)).await;
    assert_eq!(alerts, vec![chat], "the breach raises the alert");
}

/// `chathub_sla_breaches_total` of `channel` now (0 if not yet exported).
async fn breaches(channel: &str) -> f64 {
    let text = scrape(endpoint()).await;
    value(
        &text,
        &format!("chathub_sla_breaches_total{{channel=\"{channel}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Waits until `channel` has counted `expected` breaches.
async fn breaches_reach(channel: &str, expected: f64) {
    for _ in 0..100 {
        if breaches(channel).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{channel} never counted {expected} breaches (has {})",
        breaches(channel).await
    );
}

/// The chats an agent was alerted about, and offered, within `wait`.
async fn alerts_and_offers(agent: &AgentClient, wait: Duration) -> (Vec<ChatId>, Vec<ChatId>) {
    let (mut alerts, mut offers) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        match event {
            Event::Alert(alert) => alerts.push(alert.row.chat),
            Event::Offered(offer) => offers.push(offer.row.chat),
            _ => {}
        }
    }
    (alerts, offers)
}

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: None,
    }
}

#[tokio::test]
async fn a_chat_nobody_takes_in_time_breaches_once_and_raises_the_alert() {
    endpoint();
    let hub = TestHub::start(CONFIG).await;
    let pat = hub.present_agent("pat").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "late", ada(), "hello?").await;

    // Well before the minute of alert_after: the breach raises it.
    let (alerts, _) = alerts_and_offers(&pat, Duration::from_millis(1800)).await;
    assert_eq!(alerts, vec![chat], "one alert, the breach's");
    breaches_reach("late", 1.0).await;

    // Timers firing again, a reconnecting agent, more waiting: still one.
    let (alerts, _) = alerts_and_offers(&pat, Duration::from_millis(1200)).await;
    assert!(
        alerts.is_empty(),
        "the alert is not raised twice: {alerts:?}"
    );
    assert_eq!(breaches("late").await, 1.0);

    // Answering late clears the alert; the breach stays counted.
    pat.get_next("late").await.expect("pat takes the chat");
    assert_eq!(breaches("late").await, 1.0);
    hub.stop().await;
}

#[tokio::test]
async fn a_chat_answered_in_time_does_not_breach_nor_after_a_requeue() {
    endpoint();
    let hub = TestHub::start(CONFIG).await;
    let pat = hub.present_agent("pat").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "quick", ada(), "hello?").await;
    let taken = pat.get_next("quick").await.expect("pat takes it at once");
    assert_eq!(taken.chat, chat);

    // Back in the queue after its first response: not measured again.
    pat.transfer_to_channel(chat, "quick")
        .await
        .expect("pat puts it back");
    let (alerts, _) = alerts_and_offers(&pat, Duration::from_millis(1800)).await;
    assert!(alerts.is_empty(), "no breach, no alert: {alerts:?}");
    assert_eq!(breaches("quick").await, 0.0);
    hub.stop().await;
}

#[tokio::test]
async fn a_breached_chat_queued_again_is_not_counted_twice() {
    endpoint();
    let hub = TestHub::start(CONFIG).await;
    let pat = hub.present_agent("pat").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "again", ada(), "hello?").await;
    alerted(&pat, chat).await;
    breaches_reach("again", 1.0).await;

    pat.get_next("again").await.expect("pat takes it late");
    pat.transfer_to_channel(chat, "again")
        .await
        .expect("pat puts it back");
    // Longer than the target again, and the chat still waits.
    let (alerts, _) = alerts_and_offers(&pat, Duration::from_millis(1800)).await;
    assert!(
        !alerts.contains(&chat),
        "no breach alert for the second wait"
    );
    assert_eq!(breaches("again").await, 1.0);
    hub.stop().await;
}

#[tokio::test]
async fn a_closed_channel_holds_its_breaches() {
    endpoint();
    let hub = TestHub::start(&closed_config()).await;
    let pat = hub.present_agent("cy").await;
    let customer = hub.customer().await;
    // Closed until the day after tomorrow (no day has hours): the chat waits, unmeasured.
    let (_chat, _) = start(&customer, "closed", ada(), "hello?").await;
    let (alerts, _) = alerts_and_offers(&pat, Duration::from_millis(1800)).await;
    assert!(alerts.is_empty(), "alerts wait for the opening too");
    assert_eq!(breaches("closed").await, 0.0);
    hub.stop().await;
}

#[tokio::test]
async fn a_push_chat_breaching_under_offer_goes_to_another_agent() {
    endpoint();
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.present_agent("ann").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "offered", ada(), "hello?").await;
    // Only ann is Present: she has the offer (for 30 s).
    let (_, offers) = alerts_and_offers(&ann, Duration::from_millis(300)).await;
    assert_eq!(offers, vec![chat]);
    let bob = hub.present_agent("bob").await;

    // The target passes with ann's offer standing: it is withdrawn from
    // her and made to bob, and both are alerted.
    let (alerts, offers) = alerts_and_offers(&bob, Duration::from_millis(1800)).await;
    assert_eq!(offers, vec![chat], "bob gets the chat");
    assert_eq!(alerts, vec![chat]);
    let mut ended = None;
    let mut alerted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, ann.next_event()).await {
        match event {
            Event::OfferWithdrawn {
                chat: withdrawn,
                reason,
                ..
            } => ended = Some((withdrawn, reason)),
            Event::Offered(offer) => panic!("ann is offered {:?} again", offer.row.chat),
            Event::Alert(alert) => alerted |= alert.row.chat == chat,
            _ => {}
        }
    }
    assert_eq!(ended, Some((chat, OfferEnd::Expired)));
    assert!(alerted, "ann is alerted too");
    breaches_reach("offered", 1.0).await;

    // Bob's offer is a plain one: he accepts and has the chat.
    let taken = bob.accept(chat).await.expect("bob accepts");
    assert_eq!(taken.chat, chat);
    // Ann's slot came back when her offer ended.
    let ann_slots = hub
        .server
        .hub()
        .presence()
        .agent(&chathub::core::AgentId::new("ann"))
        .expect("ann")
        .capacity
        .used();
    assert_eq!(ann_slots, 0);
    assert_eq!(breaches("offered").await, 1.0);
    hub.stop().await;
}
