//! The routing rules end to end over QUIC: skills (with their fallback),
//! in pull and push channels and across a restart.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, CustomerClient, ErrorCode, Event, Started};
use chathub::core::{ChatId, Customer};
use common::{TestHub, start};

/// `pull` and `push` offer `billing` and `french`, need `billing` unless the
/// customer chooses, and fall back to anyone after 1 s; `slow` falls back
/// after a minute. fay speaks French and does billing, bill does billing
/// only, nia has no skill.
const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "pull"
offline_form = false
skills = ["billing", "french"]
default_skills = ["billing"]
skill_fallback_after = "1s"
[[channel]]
name = "push"
offline_form = false
routing = "push"
offer_timeout = "5s"
skills = ["billing", "french"]
default_skills = ["billing"]
skill_fallback_after = "1s"
[[channel]]
name = "slow"
offline_form = false
skills = ["french"]
skill_fallback_after = "60s"
[[agent]]
id = "fay"
token = "test-token-0123456789"
skills = ["french", "billing"]
[[agent]]
id = "bill"
token = "test-token-0123456789"
skills = ["billing"]
[[agent]]
id = "nia"
token = "test-token-0123456789"
"#
);

fn who(n: u32) -> Customer {
    Customer {
        name: Some(format!("Customer {n}")),
        email: None,
    }
}

/// Starts a chat that needs `skills` and must be queued.
async fn start_needing(
    customer: &CustomerClient,
    channel: &str,
    n: u32,
    skills: &[&str],
) -> ChatId {
    let skills = skills.iter().map(|skill| skill.to_string()).collect();
    match customer
        .start_chat_needing(channel, who(n), "bonjour", skills)
        .await
        .expect("the chat starts")
    {
        Started::Queued { chat, .. } => chat,
        Started::Offline(form) => panic!("expected a queue place, got {form:?}"),
    }
}

async fn next_chat(agent: &AgentClient, channel: &str) -> Result<ChatId, Option<ErrorCode>> {
    agent
        .get_next(channel)
        .await
        .map(|assignment| assignment.chat)
        .map_err(|err| err.code())
}

/// The chats offered to an agent within `wait`.
async fn offers_within(agent: &AgentClient, wait: Duration) -> Vec<ChatId> {
    let mut offered = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, agent.next_event()).await {
        if let Event::Offered(offer) = event {
            offered.push(offer.row.chat);
        }
    }
    offered
}

#[tokio::test]
async fn get_next_gives_an_agent_the_chats_they_have_the_skills_for_until_the_fallback() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let (fay, bill, nia) = (
        hub.agent("fay").await,
        hub.agent("bill").await,
        hub.agent("nia").await,
    );
    // Oldest first: a French chat, then one with the default (billing).
    let french = start_needing(&customer, "pull", 1, &["french"]).await;
    let (billing, _) = start(&customer, "pull", who(2), "my invoice").await;

    // bill cannot take the French chat yet: he gets the billing one behind it.
    assert_eq!(next_chat(&bill, "pull").await, Ok(billing));
    // nia has no skill: nothing for her before the fallback.
    assert_eq!(
        next_chat(&nia, "pull").await,
        Err(Some(ErrorCode::QueueEmpty))
    );
    // After the fallback the French chat goes to anyone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(next_chat(&nia, "pull").await, Ok(french));
    assert_eq!(
        next_chat(&fay, "pull").await,
        Err(Some(ErrorCode::QueueEmpty))
    );
}

#[tokio::test]
async fn a_skill_the_channel_does_not_offer_is_refused() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let refused = customer
        .start_chat_needing("pull", who(1), "hola", vec!["spanish".into()])
        .await
        .expect_err("spanish is not offered");
    assert_eq!(refused.code(), Some(ErrorCode::InvalidRequest));
    // The customer's connection still starts chats.
    start_needing(&customer, "pull", 2, &["french", "billing"]).await;
}

#[tokio::test]
async fn push_offers_a_chat_only_to_qualified_agents_until_its_fallback_comes() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let nia = hub.present_agent("nia").await;
    let bill = hub.present_agent("bill").await;
    let chat = start_needing(&customer, "push", 1, &["french"]).await;

    // Nobody Present speaks French: no offer within the fallback.
    let started = tokio::time::Instant::now();
    let early = offers_within(&bill, Duration::from_millis(700)).await;
    assert!(early.is_empty(), "bill was offered {early:?} too early");
    // Then the timer offers it to someone (least busy, by id: bill).
    let later = offers_within(&bill, Duration::from_millis(1500)).await;
    assert_eq!(later, [chat]);
    assert!(started.elapsed() >= Duration::from_millis(900));
    bill.accept(chat).await.expect("the offer stands");
    assert!(
        offers_within(&nia, Duration::from_millis(200))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn push_prefers_the_agent_with_the_skills_over_a_less_busy_one() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    // bill goes first by id and load; fay is the only one with French.
    let bill = hub.present_agent("bill").await;
    let fay = hub.present_agent("fay").await;
    let chat = start_needing(&customer, "push", 1, &["french"]).await;
    let offered = offers_within(&fay, Duration::from_millis(500)).await;
    assert_eq!(offered, [chat]);
    assert!(
        offers_within(&bill, Duration::from_millis(100))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn the_skills_a_chat_needs_survive_a_restart() {
    let hub = TestHub::start(CONFIG).await;
    let customer = hub.customer().await;
    let chat = start_needing(&customer, "slow", 1, &["french"]).await;
    drop(customer);
    let hub = hub.restart(CONFIG).await;
    let nia = hub.agent("nia").await;
    assert_eq!(
        next_chat(&nia, "slow").await,
        Err(Some(ErrorCode::QueueEmpty)),
        "the restored chat still needs French"
    );
    let fay = hub.agent("fay").await;
    assert_eq!(next_chat(&fay, "slow").await, Ok(chat));
}
