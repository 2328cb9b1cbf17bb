//! Customer satisfaction: a customer rates an ended chat of a channel that
//! asks for it; agents see the rating in recent sessions and the contact
//! card, it survives a restart, and `/metrics` counts it per channel.
//! Every refusal is a typed error that stores nothing.

mod common;

use std::time::Duration;

use chathub::client::{ErrorCode, Rating};
use chathub::core::{ChatId, Customer};
use common::{TestHub, metrics_endpoint, scrape, start, value};

const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "support"
satisfaction = true
[[channel]]
name = "sales"
[[channel]]
name = "brief"
satisfaction = true
return_window = "300ms"
[[channel]]
name = "survey"
satisfaction = true
[[agent]]
id = "alice"
token = "test-token-0123456789"
channels = ["support", "sales", "brief"]
[[agent]]
id = "sam"
token = "test-token-0123456789"
channels = ["survey"]
"#
);

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    }
}

async fn rating_of(agent: &chathub::client::AgentClient, chat: ChatId) -> Option<Rating> {
    agent
        .recent_sessions(None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.session.chat == chat)
        .expect("the chat is a recent session")
        .rating
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rating_shows_in_recent_sessions_and_the_contact_card_and_survives_a_restart() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", ada(), "hello").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, chat);

    let code = |result: Result<(), chathub::client::ClientError>| result.unwrap_err().code();
    assert_eq!(
        code(customer.rate(chat, 5, None).await),
        Some(ErrorCode::InvalidRequest),
        "a live chat is not rated"
    );
    customer.leave(chat).await.unwrap();

    for rating in [0, 6] {
        assert_eq!(
            code(customer.rate(chat, rating, None).await),
            Some(ErrorCode::InvalidRequest),
            "rating {rating}"
        );
    }
    assert_eq!(
        code(customer.rate(chat, 3, Some("x".repeat(2_001))).await),
        Some(ErrorCode::InvalidRequest),
        "an over-long comment"
    );
    let stranger = hub.customer().await;
    assert_eq!(
        code(stranger.rate(chat, 1, None).await),
        Some(ErrorCode::NotYourChat)
    );
    assert_eq!(rating_of(&alice, chat).await, None, "nothing stored");

    customer
        .rate(chat, 4, Some("  quick\u{7} and kind 🙂 ".into()))
        .await
        .unwrap();
    let first = rating_of(&alice, chat).await.expect("rated");
    assert_eq!(
        (first.rating, first.comment.as_deref()),
        (4, Some("quick and kind 🙂"))
    );
    // Rating again replaces the rating.
    customer.rate(chat, 5, None).await.unwrap();
    let second = rating_of(&alice, chat).await.expect("rated");
    assert_eq!((second.rating, second.comment.as_deref()), (5, None));

    let card = alice.contact(Some("ada@example.com"), None).await.unwrap();
    let row = card
        .chats
        .iter()
        .find(|row| row.chat == chat)
        .expect("the chat is in the contact's history");
    assert_eq!(row.rating.as_ref().map(|r| r.rating), Some(5));

    drop((alice, customer, stranger));
    let hub = hub.restart(CONFIG).await;
    let alice = hub.agent("alice").await;
    assert_eq!(rating_of(&alice, chat).await, Some(second));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_that_do_not_ask_and_closed_windows_refuse_ratings() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;

    let (sales, _) = start(&customer, "sales", ada(), "a price?").await;
    customer.leave(sales).await.unwrap();
    let err = customer.rate(sales, 5, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotAllowed), "{err}");
    assert!(err.to_string().contains("does not ask"), "{err}");
    assert_eq!(rating_of(&alice, sales).await, None);

    let (brief, _) = start(&customer, "brief", ada(), "quick one").await;
    customer.leave(brief).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = customer.rate(brief, 5, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotAllowed), "{err}");
    assert_eq!(rating_of(&alice, brief).await, None);

    // Ratings from one address are paced (`offline_forms_per_minute`, 5 by
    // default; two were used above), refused or not.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(customer.rate(sales, 5, None).await.unwrap_err().code());
    }
    assert_eq!(
        codes,
        [
            ErrorCode::NotAllowed,
            ErrorCode::NotAllowed,
            ErrorCode::NotAllowed,
            ErrorCode::RateLimited
        ]
        .map(Some)
    );
    hub.stop().await;
}

// The only test here that rates on `survey`, so the counts are its own
// although the recorder is global to the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_are_exported_per_channel() {
    let addr = metrics_endpoint();
    let hub = TestHub::start(CONFIG).await;
    let first = scrape(addr).await;
    assert_eq!(
        value(&first, "chathub_csat_rating_count{channel=\"survey\"}"),
        Some(0.0),
        "exported from the start:\n{first}"
    );

    let sam = hub.present_agent("sam").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "survey", ada(), "hi").await;
    sam.get_next("survey").await.unwrap();
    sam.end_chat(chat).await.unwrap();
    customer.rate(chat, 4, None).await.unwrap();
    customer.rate(chat, 2, None).await.unwrap();

    let mut last = String::new();
    for _ in 0..100 {
        last = scrape(addr).await;
        if value(&last, "chathub_csat_rating_count{channel=\"survey\"}") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (series, want) in [
        ("chathub_csat_rating_count{channel=\"survey\"}", 1.0),
        ("chathub_csat_rating_sum{channel=\"survey\"}", 4.0),
        (
            "chathub_csat_rating_bucket{channel=\"survey\",le=\"3\"}",
            0.0,
        ),
        (
            "chathub_csat_rating_bucket{channel=\"survey\",le=\"4\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&last, series), Some(want), "{series}:\n{last}");
    }
    hub.stop().await;
}
