//! Business hours end to end over QUIC: outside them a new chat gets the
//! offline form with the next opening time, and alerts for chats already
//! waiting are held until the channel opens.

mod common;

use std::time::Duration;

use chathub::client::{Event, Started};
use chathub::core::{Customer, Timestamp};
use common::TestHub;
use jiff::civil::Date;
use jiff::tz::TimeZone;

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

fn today() -> Date {
    jiff::Timestamp::now().to_zoned(TimeZone::UTC).date()
}

/// A config whose `support` (offline form on) and `sales` (offline form
/// off) are open all day every day, except on the `holidays`; alerts after
/// 300 ms. Alice works both.
fn config(holidays: &[Date]) -> String {
    let holidays: Vec<String> = holidays.iter().map(|d| format!("\"{d}\"")).collect();
    let hours = format!(
        "time_zone = \"UTC\"\n{}holidays = [{}]\n",
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]
        .map(|day| format!("{day} = [\"00:00-24:00\"]\n"))
        .concat(),
        holidays.join(", ")
    );
    format!(
        r#"
[[channel]]
name = "support"
alert_after = "300ms"
[channel.hours]
{hours}
[[channel]]
name = "sales"
alert_after = "300ms"
offline_form = false
[channel.hours]
{hours}
[[agent]]
id = "alice"
token = "test-token-0123456789"
"#
    )
}

/// Closed from yesterday to tomorrow (UTC): whatever the hub's clock says
/// today is, if midnight passes during the test, it opens at the start of
/// the day after tomorrow.
fn closed_config() -> (String, Timestamp) {
    let today = today();
    let yesterday = today.yesterday().unwrap();
    let tomorrow = today.tomorrow().unwrap();
    let opens = tomorrow
        .tomorrow()
        .unwrap()
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    (
        config(&[yesterday, today, tomorrow]),
        Timestamp(u64::try_from(opens.as_millisecond()).unwrap()),
    )
}

/// Alerts an agent receives within `wait`.
async fn alerts(agent: &chathub::client::AgentClient, wait: Duration) -> usize {
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        if matches!(event, Event::Alert(_)) {
            got += 1;
        }
    }
    got
}

#[tokio::test]
async fn a_closed_channel_offers_the_form_with_its_opening_even_with_agents_present() {
    let (closed, opens) = closed_config();
    let hub = TestHub::start(&closed).await;
    let _alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let Started::Offline(form) = customer
        .start_chat("support", ada(), "anyone?")
        .await
        .unwrap()
    else {
        panic!("outside business hours the customer gets the offline form")
    };
    assert_eq!(form.opens_at, Some(opens), "the form says when it opens");
    assert!(form.message.contains("closed"), "{}", form.message);
    // The form still makes a ticket.
    customer
        .submit_offline_form("support", None, "ada@example.com", "call me")
        .await
        .unwrap();

    // Opened by a reload: the same start now makes a chat.
    hub.server
        .reload(&hub.config(&config(&[])))
        .await
        .expect("the reload is taken");
    let started = customer
        .start_chat("support", ada(), "anyone now?")
        .await
        .unwrap();
    assert!(
        matches!(started, Started::Queued { .. }),
        "open again: {started:?}"
    );
}

#[tokio::test]
async fn alerts_of_a_closed_channel_wait_for_the_opening() {
    let (closed, _) = closed_config();
    let hub = TestHub::start(&closed).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    // Without an offline form a closed channel still queues the chat.
    let started = customer
        .start_chat("sales", ada(), "hello sales")
        .await
        .unwrap();
    let Started::Queued { chat, .. } = started else {
        panic!("sales has no offline form: {started:?}")
    };
    assert_eq!(
        alerts(&alice, Duration::from_millis(1500)).await,
        0,
        "no alert while the channel is closed, though alert_after is 300 ms"
    );

    // The channel opens (a reload here; the opening time in production):
    // the held alert is raised at once.
    hub.server
        .reload(&hub.config(&config(&[])))
        .await
        .expect("the reload is taken");
    let alert = loop {
        let event = tokio::time::timeout(common::PATIENCE, alice.next_event())
            .await
            .expect("the alert once the channel opens")
            .expect("the connection is open");
        if let Event::Alert(alert) = event {
            break alert;
        }
    };
    assert_eq!(alert.row.chat, chat);
}

#[tokio::test]
async fn an_open_channel_behaves_as_one_without_hours() {
    let hub = TestHub::start(&config(&[Date::constant(2099, 1, 1)])).await;
    let customer = hub.customer().await;
    // Open, but nobody Present: the usual form, with no opening time.
    let Started::Offline(form) = customer
        .start_chat("support", ada(), "anyone?")
        .await
        .unwrap()
    else {
        panic!("nobody is Present")
    };
    assert_eq!(form.opens_at, None);
    let alice = hub.present_agent("alice").await;
    let started = customer
        .start_chat("support", ada(), "anyone now?")
        .await
        .unwrap();
    assert!(matches!(started, Started::Queued { .. }), "{started:?}");
    assert_eq!(
        alerts(&alice, Duration::from_millis(1500)).await,
        1,
        "an open channel alerts after alert_after"
    );
}
