//! Many agents calling get-next at once on one queue, over QUIC: every chat
//! is assigned exactly once.

mod common;

use std::collections::HashMap;

use chathub::client::ErrorCode;
use chathub::core::{ChatId, Customer};
use common::TestHub;

const AGENTS: usize = 12;
const CHATS: usize = 240;

fn config() -> String {
    let mut config = String::from(roomy_limits!());
    config.push_str("[[channel]]\nname = \"support\"\noffline_form = false\n");
    for n in 0..AGENTS {
        config.push_str(&format!(
            "[[agent]]\nid = \"agent{n}\"\ntoken = \"{}\"\ncapacity = {CHATS}\n",
            common::TOKEN
        ));
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_get_next_never_assigns_a_chat_twice() {
    let hub = TestHub::start(&config()).await;
    let customers: Vec<_> = futures::future::join_all((0..8).map(|_| hub.customer())).await;
    let starts = (0..CHATS).map(|n| {
        let customer = customers[n % customers.len()].clone();
        async move {
            common::start(
                &customer,
                "support",
                Customer::default(),
                &format!("chat {n}"),
            )
            .await
            .0
        }
    });
    let started: Vec<ChatId> = futures::future::join_all(starts).await;

    let agents =
        futures::future::join_all((0..AGENTS).map(|n| hub.agent(format!("agent{n}")))).await;
    // Every agent takes chats as fast as it can until the queue is empty;
    // each also keeps several requests in flight on its one connection.
    let grabbers = agents.iter().flat_map(|agent| {
        (0..3).map(move |_| {
            let agent = agent.clone();
            async move {
                let mut got = Vec::new();
                loop {
                    match agent.get_next("support").await {
                        Ok(assignment) => got.push((assignment.chat, agent.profile().id.clone())),
                        Err(err) if err.code() == Some(ErrorCode::QueueEmpty) => return got,
                        Err(err) => panic!("get-next failed: {err}"),
                    }
                }
            }
        })
    });
    let assignments: Vec<_> = futures::future::join_all(grabbers)
        .await
        .into_iter()
        .flatten()
        .collect();

    let mut owners: HashMap<ChatId, Vec<String>> = HashMap::new();
    for (chat, agent) in &assignments {
        owners.entry(*chat).or_default().push(agent.to_string());
    }
    let doubles: Vec<_> = owners
        .iter()
        .filter(|(_, agents)| agents.len() > 1)
        .collect();
    assert!(doubles.is_empty(), "chats assigned twice: {doubles:?}");
    assert_eq!(assignments.len(), CHATS, "every chat was assigned");
    let mut all: Vec<ChatId> = owners.into_keys().collect();
    all.sort_unstable();
    let mut expected = started;
    expected.sort_unstable();
    assert_eq!(all, expected);
    hub.stop().await;
}
