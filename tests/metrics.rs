//! The Prometheus endpoint, scraped while chats run: the values move as the
//! chats do. One test in its own binary, because the recorder is global to
//! the process.

mod common;

use std::time::Duration;

use chathub::client::Started;
use chathub::core::Customer;
use common::{CONFIG, TestHub, metrics_endpoint, scrape, start, value};

/// Waits until `series` has `expected`, scraping again meanwhile.
async fn eventually(
    addr: std::net::SocketAddr,
    series: &str,
    expected: impl Fn(f64) -> bool,
) -> f64 {
    let mut last = String::new();
    for _ in 0..100 {
        last = scrape(addr).await;
        if let Some(found) = value(&last, series)
            && expected(found)
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never reached the expected value; last scrape:\n{last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_follow_the_chats() {
    let addr = metrics_endpoint();
    let hub = TestHub::start(CONFIG).await;

    // Every counter and gauge is there from the start, per channel where
    // labelled, before anything happened.
    let first = scrape(addr).await;
    for series in [
        "chathub_chats_waiting{channel=\"sales\"}",
        "chathub_agents_present{channel=\"sales\"}",
        "chathub_chats_started_total{channel=\"sales\"}",
        "chathub_chats_transferred_total{channel=\"sales\",to=\"agent\"}",
        "chathub_alerts_raised_total{channel=\"support\"}",
        "chathub_messages_total{direction=\"system\"}",
        "chathub_connections{role=\"agent\"}",
        "chathub_chats_active",
        "chathub_actor_restarts_total",
        "chathub_store_commit_failures_total",
    ] {
        assert_eq!(value(&first, series), Some(0.0), "{series}");
    }
    for limit in chathub::core::Limit::ALL {
        let series = format!("chathub_limit_refusals_total{{limit=\"{}\"}}", limit.name());
        assert_eq!(value(&first, &series), Some(0.0), "{series}");
    }

    // Nobody Present: the offline form is counted.
    let customer = hub.customer().await;
    let started = customer
        .start_chat("support", Customer::default(), "anyone?")
        .await
        .unwrap();
    assert!(matches!(started, Started::Offline(_)));
    eventually(
        addr,
        "chathub_chats_offline_total{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;

    let alice = hub.present_agent("alice").await;
    eventually(addr, "chathub_agents_present{channel=\"support\"}", |v| {
        v == 1.0
    })
    .await;
    eventually(addr, "chathub_connections{role=\"agent\"}", |v| v == 1.0).await;
    eventually(addr, "chathub_connections{role=\"customer\"}", |v| v == 1.0).await;

    let (chat, _) = start(&customer, "support", Customer::default(), "hello").await;
    eventually(
        addr,
        "chathub_chats_started_total{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;
    eventually(addr, "chathub_chats_waiting{channel=\"support\"}", |v| {
        v == 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.get_next("support").await.unwrap();
    eventually(addr, "chathub_chats_waiting{channel=\"support\"}", |v| {
        v == 0.0
    })
    .await;
    eventually(
        addr,
        "chathub_chats_answered_total{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;
    eventually(addr, "chathub_chats_active", |v| v == 1.0).await;
    let waited = eventually(
        addr,
        "chathub_chat_wait_seconds_sum{channel=\"support\"}",
        |v| v > 0.0,
    )
    .await;
    assert!(waited < 10.0);
    eventually(
        addr,
        "chathub_chat_wait_seconds_count{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;

    for n in 0..3 {
        customer.send(chat, format!("question {n}")).await.unwrap();
    }
    alice.send(chat, "answer").await.unwrap();
    // The first message came with the start; three more followed.
    eventually(
        addr,
        "chathub_messages_total{direction=\"customer_to_agent\"}",
        |v| v == 4.0,
    )
    .await;
    eventually(
        addr,
        "chathub_messages_total{direction=\"agent_to_customer\"}",
        |v| v == 1.0,
    )
    .await;
    eventually(addr, "chathub_message_delivery_seconds_count", |v| v >= 4.0).await;
    // Each message went through every stage inside the hub: four posts
    // reached their chat and were made durable and published (the
    // questions straight into alice's connection queue); they and the
    // answer were written to a connection.
    for (stage, at_least) in [
        ("to_chat", 4.0),
        ("durable", 4.0),
        ("to_publish", 4.0),
        ("to_connection", 4.0),
    ] {
        let series = format!("chathub_stage_seconds_count{{stage=\"{stage}\"}}");
        eventually(addr, &series, |v| v >= at_least).await;
    }
    eventually(addr, "chathub_store_commit_seconds_count", |v| v > 0.0).await;

    alice.end_chat(chat).await.unwrap();
    eventually(
        addr,
        "chathub_chats_ended_total{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;
    eventually(addr, "chathub_chats_active", |v| v == 0.0).await;

    // A customer who leaves a queued chat abandons it.
    let (left, _) = start(&customer, "support", Customer::default(), "never mind").await;
    customer.leave(left).await.unwrap();
    eventually(
        addr,
        "chathub_chats_abandoned_total{channel=\"support\"}",
        |v| v == 1.0,
    )
    .await;

    // Refusals are counted by code.
    alice.get_next("sales").await.unwrap_err();
    eventually(
        addr,
        "chathub_request_errors_total{code=\"NotAllowed\"}",
        |v| v >= 1.0,
    )
    .await;
    // ...and those at a limit by the limit too.
    let bad_email = Customer {
        name: None,
        email: Some("not an address".into()),
    };
    customer
        .start_chat("support", bad_email, "hi")
        .await
        .unwrap_err();
    eventually(addr, "chathub_limit_refusals_total{limit=\"field\"}", |v| {
        v == 1.0
    })
    .await;
    hub.stop().await;
}
