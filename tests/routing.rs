//! Push routing end to end over QUIC: offers, accepts, declines, lapses,
//! the two policies, who is eligible, and what withdraws an offer; pull
//! channels as before.

mod common;

use std::time::Duration;

use chathub::client::{AgentClient, ErrorCode, Event};
use chathub::core::{AgentId, ChatId, Customer, Offer, OfferEnd, QueueChange, Status};
use common::{TestHub, start};

/// `push` offers by least_busy, `robin` by round_robin, both with a 5 s
/// offer timeout (1 s where a test waits for one to lapse); `pull` is as
/// before. ann, bob and cid work the push
/// channels; dan (one chat at a time) works `push`; pat works `pull`.
const CONFIG: &str = concat!(
    roomy_limits!(),
    r#"
[[channel]]
name = "push"
routing = "push"
offer_timeout = "5s"
offline_form = false
[[channel]]
name = "robin"
routing = "push"
policy = "round_robin"
offer_timeout = "5s"
offline_form = false
[[channel]]
name = "pull"
offline_form = false
[[agent]]
id = "ann"
token = "test-token-0123456789"
channels = ["push", "robin"]
[[agent]]
id = "bob"
token = "test-token-0123456789"
channels = ["push", "robin"]
[[agent]]
id = "cid"
token = "test-token-0123456789"
channels = ["push", "robin"]
[[agent]]
id = "dan"
token = "test-token-0123456789"
channels = ["push"]
capacity = 1
[[agent]]
id = "pat"
token = "test-token-0123456789"
channels = ["pull"]
"#
);

fn ada() -> Customer {
    Customer {
        name: Some("Ada".into()),
        email: None,
    }
}

/// The next offer an agent receives, skipping other events.
async fn next_offer(agent: &AgentClient) -> Offer {
    loop {
        let event = tokio::time::timeout(common::PATIENCE, agent.next_event())
            .await
            .expect("an offer within the test's patience")
            .expect("the connection is open");
        if let Event::Offered(offer) = event {
            return offer;
        }
    }
}

/// The next offer that ended for an agent, skipping other events.
async fn next_withdrawn(agent: &AgentClient) -> (ChatId, OfferEnd) {
    loop {
        let event = tokio::time::timeout(common::PATIENCE, agent.next_event())
            .await
            .expect("an offer's end within the test's patience")
            .expect("the connection is open");
        if let Event::OfferWithdrawn { chat, reason, .. } = event {
            return (chat, reason);
        }
    }
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

fn slots_used(hub: &TestHub, agent: &str) -> u64 {
    hub.server
        .hub()
        .presence()
        .agent(&AgentId::new(agent))
        .expect("a configured agent")
        .capacity
        .used()
}

#[tokio::test]
async fn a_new_chat_is_offered_to_a_present_agent_and_accepting_assigns_it() {
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.present_agent("ann").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "hello?").await;

    let offer = next_offer(&ann).await;
    assert_eq!(offer.row.chat, chat);
    assert_eq!(offer.row.channel.as_str(), "push");
    assert_eq!(offer.row.first_message, "hello?");
    assert!(offer.expires_in_ms <= 5_000 && offer.expires_in_ms > 0);
    assert_eq!(slots_used(&hub, "ann"), 1, "the offer holds a slot");

    let assignment = ann.accept(chat).await.expect("the offer stands");
    assert_eq!(assignment.chat, chat);
    assert_eq!(next_withdrawn(&ann).await, (chat, OfferEnd::Accepted));
    assert_eq!(slots_used(&hub, "ann"), 1, "the offer's slot is the chat's");
    // The chat is ann's: she can talk in it.
    ann.send(chat, "Hi Ada!").await.unwrap();
    // And a second accept finds no offer.
    let err = ann.accept(chat).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotOffered));
}

#[tokio::test]
async fn accepting_an_offer_with_a_slot_to_spare_brings_the_next_waiting_chat() {
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.agent("ann").await; // signed in, Absent
    let customer = hub.customer().await;
    let (first, _) = start(&customer, "push", ada(), "one").await;
    let (second, _) = start(&customer, "push", ada(), "two").await;
    ann.set_status(Status::Present).await.unwrap();
    assert_eq!(next_offer(&ann).await.row.chat, first);
    // Nothing else happens in the channel: the accept alone must bring the
    // chat waiting behind it, as ann has slots to spare.
    ann.accept(first).await.unwrap();
    assert_eq!(next_offer(&ann).await.row.chat, second);
    ann.accept(second).await.unwrap();
    assert_eq!(slots_used(&hub, "ann"), 2);
}

/// Queue changes and offers travel in one order per agent: the agent
/// offered a chat has already been told it waits, and every watcher gets
/// each change once, versions in a row.
#[tokio::test]
async fn an_offered_agent_lists_the_chat_first_and_every_watcher_gets_each_change_once() {
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.present_agent("ann").await;
    let bob = hub.agent("bob").await; // watching, Absent: offered nothing
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "hello?").await;

    let mut listed = false;
    loop {
        let event = tokio::time::timeout(common::PATIENCE, ann.next_event())
            .await
            .expect("an offer within the test's patience")
            .expect("the connection is open");
        match event {
            Event::Queue(update) if update.channel.as_str() == "push" => {
                listed |= matches!(&update.change, QueueChange::Added(row) if row.chat == chat);
            }
            Event::Offered(offer) => {
                assert_eq!(offer.row.chat, chat);
                assert!(listed, "the offer came before the chat's queue row");
                break;
            }
            _ => {}
        }
    }
    ann.accept(chat).await.expect("the offer stands");

    // bob: a snapshot, then the chat added and removed, each once.
    let mut versions = Vec::new();
    let mut changes = Vec::new();
    while !changes
        .iter()
        .any(|c| matches!(c, QueueChange::Removed(c) if *c == chat))
    {
        let event = tokio::time::timeout(common::PATIENCE, bob.next_event())
            .await
            .expect("bob's queue updates within the test's patience")
            .expect("the connection is open");
        if let Event::Queue(update) = event {
            if update.channel.as_str() == "push" {
                versions.push(update.version);
                changes.push(update.change);
            }
        }
    }
    assert!(
        versions.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "versions in a row, each once: {versions:?}"
    );
    let added = changes
        .iter()
        .filter(|c| matches!(c, QueueChange::Added(row) if row.chat == chat))
        .count();
    assert_eq!(added, 1, "{changes:?}");
}

#[tokio::test]
async fn a_declined_offer_goes_to_the_next_agent() {
    let hub = TestHub::start(CONFIG).await;
    let ann = hub.present_agent("ann").await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "anyone").await;

    // Equal load and no assignment yet: the tie goes by id, to ann.
    assert_eq!(next_offer(&ann).await.row.chat, chat);
    ann.decline(chat).await.unwrap();
    assert_eq!(next_withdrawn(&ann).await, (chat, OfferEnd::Declined));
    assert_eq!(
        slots_used(&hub, "ann"),
        0,
        "a declined offer frees its slot"
    );
    assert_eq!(next_offer(&bob).await.row.chat, chat);
    let err = ann.decline(chat).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::NotOffered),
        "ann has no offer now"
    );
    bob.accept(chat).await.unwrap();
    assert!(
        offers_within(&ann, Duration::from_millis(300))
            .await
            .is_empty(),
        "ann is not offered the chat again"
    );
}

#[tokio::test]
async fn a_lapsed_offer_goes_to_the_next_agent_and_is_counted_as_timed_out() {
    // Its own channel name, so the process-wide metrics are this test's.
    let config = CONFIG
        .replace("name = \"push\"", "name = \"lapse\"")
        .replacen("offer_timeout = \"5s\"", "offer_timeout = \"1s\"", 1)
        .replace("[\"push\", \"robin\"]", "[\"lapse\", \"robin\"]")
        .replace("[\"push\"]", "[\"lapse\"]");
    let metrics = common::metrics_endpoint();
    let hub = TestHub::start(&config).await;
    let ann = hub.present_agent("ann").await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "lapse", ada(), "still there?").await;

    assert_eq!(next_offer(&ann).await.row.chat, chat);
    let offered = tokio::time::Instant::now();
    assert_eq!(next_offer(&bob).await.row.chat, chat);
    assert!(
        offered.elapsed() >= Duration::from_millis(900),
        "bob gets it once ann's second is up"
    );
    assert_eq!(next_withdrawn(&ann).await, (chat, OfferEnd::Expired));
    let err = ann.accept(chat).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotOffered), "too late");
    bob.accept(chat).await.unwrap();

    let text = common::scrape(metrics).await;
    let count = |outcome: &str| {
        common::value(
            &text,
            &format!("chathub_offers_total{{channel=\"lapse\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(count("made"), Some(2.0));
    assert_eq!(count("timed_out"), Some(1.0));
    assert_eq!(count("accepted"), Some(1.0));
    assert_eq!(
        common::value(&text, "chathub_assignment_seconds_count{channel=\"lapse\"}"),
        Some(1.0),
        "the assignment is timed"
    );
}

#[tokio::test]
async fn least_busy_offers_to_the_agent_holding_fewer_chats() {
    let hub = TestHub::start(CONFIG).await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    let (first, _) = start(&customer, "push", ada(), "one").await;
    assert_eq!(next_offer(&bob).await.row.chat, first);
    bob.accept(first).await.unwrap();

    // ann sorts first by id, but bob holds a chat and ann none.
    let ann = hub.present_agent("ann").await;
    let (second, _) = start(&customer, "push", ada(), "two").await;
    assert_eq!(next_offer(&ann).await.row.chat, second);
    ann.accept(second).await.unwrap();
    assert!(
        !offers_within(&bob, Duration::from_millis(300))
            .await
            .contains(&second),
        "bob was never offered the second chat"
    );
}

#[tokio::test]
async fn round_robin_offers_to_the_next_agent_whatever_they_hold() {
    let hub = TestHub::start(CONFIG).await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    for text in ["one", "two"] {
        let (chat, _) = start(&customer, "robin", ada(), text).await;
        assert_eq!(next_offer(&bob).await.row.chat, chat);
        bob.accept(chat).await.unwrap();
    }
    let ann = hub.present_agent("ann").await;
    let cid = hub.present_agent("cid").await;

    // After bob comes cid, then ann, then bob again, though bob holds two
    // chats and the others one each by then (least_busy would skip him).
    for (agent, text) in [(&cid, "three"), (&ann, "four"), (&bob, "five")] {
        let (chat, _) = start(&customer, "robin", ada(), text).await;
        let offer = next_offer(agent).await;
        assert_eq!(offer.row.chat, chat, "{text}");
        agent.accept(chat).await.unwrap();
    }
}

#[tokio::test]
async fn nobody_absent_or_at_capacity_is_offered_and_becoming_present_or_freeing_a_slot_brings_one()
{
    let hub = TestHub::start(CONFIG).await;
    let dan = hub.present_agent("dan").await;
    let ann = hub.agent("ann").await; // signed in, Absent
    let customer = hub.customer().await;
    let (first, _) = start(&customer, "push", ada(), "one").await;
    assert_eq!(next_offer(&dan).await.row.chat, first);
    dan.accept(first).await.unwrap();

    // dan is full, ann Absent: the second chat waits, offered to no one.
    let (second, _) = start(&customer, "push", ada(), "two").await;
    let (to_dan, to_ann) = tokio::join!(
        offers_within(&dan, Duration::from_millis(1_500)),
        offers_within(&ann, Duration::from_millis(1_500))
    );
    assert!(to_dan.is_empty(), "dan is at capacity: {to_dan:?}");
    assert!(to_ann.is_empty(), "ann is Absent: {to_ann:?}");

    // ann becomes Present: she is offered the waiting chat.
    ann.set_status(Status::Present).await.unwrap();
    assert_eq!(next_offer(&ann).await.row.chat, second);

    // A third chat waits behind it (ann has an offer from this channel,
    // dan is full) until dan's chat ends and frees his slot.
    let (third, _) = start(&customer, "push", ada(), "three").await;
    assert!(
        offers_within(&dan, Duration::from_millis(300))
            .await
            .is_empty()
    );
    dan.end_chat(first).await.unwrap();
    assert_eq!(next_offer(&dan).await.row.chat, third);

    // ann going Absent withdraws her standing offer at once.
    ann.set_status(Status::Absent).await.unwrap();
    assert_eq!(next_withdrawn(&ann).await, (second, OfferEnd::Withdrawn));
    assert_eq!(slots_used(&hub, "ann"), 0);
}

#[tokio::test]
async fn picking_an_offered_chat_withdraws_the_offer_and_frees_its_slot() {
    let hub = TestHub::start(CONFIG).await;
    let dan = hub.present_agent("dan").await;
    let bob = hub.agent("bob").await; // Absent, but may pick
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "pick me").await;
    assert_eq!(next_offer(&dan).await.row.chat, chat);

    bob.pick(chat).await.expect("a pick wins over an offer");
    assert_eq!(next_withdrawn(&dan).await, (chat, OfferEnd::Taken));
    let err = dan.accept(chat).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotOffered));
    assert_eq!(slots_used(&hub, "dan"), 0, "dan's slot is free again");
    assert_eq!(slots_used(&hub, "bob"), 1);
    // dan (capacity 1) can be offered the next chat.
    let (next, _) = start(&customer, "push", ada(), "and me").await;
    assert_eq!(next_offer(&dan).await.row.chat, next);
    // So can get-next take an offered chat.
    bob.get_next("push").await.expect("get-next takes it");
    assert_eq!(next_withdrawn(&dan).await, (next, OfferEnd::Taken));
    assert_eq!(slots_used(&hub, "dan"), 0);
}

#[tokio::test]
async fn the_customer_leaving_withdraws_the_offer() {
    let hub = TestHub::start(CONFIG).await;
    let dan = hub.present_agent("dan").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "bye").await;
    assert_eq!(next_offer(&dan).await.row.chat, chat);
    customer.leave(chat).await.unwrap();
    assert_eq!(next_withdrawn(&dan).await, (chat, OfferEnd::Left));
    assert_eq!(slots_used(&hub, "dan"), 0);
    assert!(dan.accept(chat).await.is_err());
}

#[tokio::test]
async fn only_the_offered_agent_may_accept_or_decline() {
    let hub = TestHub::start(CONFIG).await;
    let dan = hub.present_agent("dan").await;
    let bob = hub.agent("bob").await;
    let pat = hub.agent("pat").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "mine?").await;
    assert_eq!(next_offer(&dan).await.row.chat, chat);
    for other in [&bob, &pat] {
        let err = other.accept(chat).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotOffered));
        let err = other.decline(chat).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotOffered));
    }
    assert_eq!(slots_used(&hub, "bob"), 0);
    dan.accept(chat)
        .await
        .expect("the offer still stands for dan");
}

#[tokio::test]
async fn a_reconnecting_agent_learns_of_its_standing_offer() {
    let hub = TestHub::start(CONFIG).await;
    let dan = hub.present_agent("dan").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "push", ada(), "still offered").await;
    assert_eq!(next_offer(&dan).await.row.chat, chat);
    let again = hub.agent("dan").await;
    let offer = next_offer(&again).await;
    assert_eq!(offer.row.chat, chat);
    assert!(offer.expires_in_ms <= 5_000);
    again.accept(chat).await.unwrap();
}

#[tokio::test]
async fn pull_channels_offer_nothing_and_serve_get_next_as_before() {
    let hub = TestHub::start(CONFIG).await;
    let pat = hub.present_agent("pat").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "pull", ada(), "pull me").await;
    assert!(
        offers_within(&pat, Duration::from_millis(500))
            .await
            .is_empty()
    );
    assert_eq!(slots_used(&hub, "pat"), 0);
    assert_eq!(pat.get_next("pull").await.unwrap().chat, chat);
}

// ---- stress: push and pull channels side by side, agents coming and going ----

const STRESS_AGENTS: usize = 50;
const STRESS_CAPACITY: usize = 3;
const STRESS_CHATS: usize = 2_000;
const STRESS_CUSTOMERS: usize = 4;

/// Channels of agent `n`: each works one to three of the two push channels
/// and the pull channel.
fn stress_channels(n: usize) -> Vec<&'static str> {
    let mut channels = Vec::new();
    if n % 3 != 2 {
        channels.push("push");
    }
    if n % 3 != 0 {
        channels.push("robin");
    }
    if n % 2 == 0 {
        channels.push("pull");
    }
    channels
}

fn stress_config() -> String {
    let mut config = String::from(roomy_limits!());
    for (name, extra) in [
        ("push", "routing = \"push\"\noffer_timeout = \"1s\"\n"),
        (
            "robin",
            "routing = \"push\"\npolicy = \"round_robin\"\noffer_timeout = \"1s\"\n",
        ),
        ("pull", ""),
    ] {
        config.push_str(&format!(
            "[[channel]]\nname = \"{name}\"\noffline_form = false\n{extra}"
        ));
    }
    for n in 0..STRESS_AGENTS {
        let channels: Vec<String> = stress_channels(n)
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect();
        config.push_str(&format!(
            "[[agent]]\nid = \"a{n:02}\"\ntoken = \"{}\"\ncapacity = {STRESS_CAPACITY}\nchannels = [{}]\n",
            common::TOKEN,
            channels.join(", ")
        ));
    }
    config
}

/// xorshift64: a small deterministic random source per agent.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

type Assigned = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ChatId, String>>>;

/// Notes that `chat` was assigned to `agent`; a second assignment fails
/// the test.
fn record(assigned: &Assigned, chat: ChatId, agent: &str) {
    let mut assigned = assigned.lock().unwrap();
    if let Some(first) = assigned.insert(chat, agent.to_owned()) {
        panic!("{chat} assigned to {first} and again to {agent}");
    }
}

/// One agent: accepts (or now and then declines) what it is offered, takes
/// chats of its pull channel, ends chats, and goes Absent and Present,
/// until every chat has been assigned; then ends what it holds. Answers
/// how many chats it took by accepting offers and by get-next.
async fn stress_agent(agent: AgentClient, n: usize, assigned: Assigned) -> (usize, usize) {
    let name = agent.profile().id.to_string();
    let pulls = stress_channels(n).contains(&"pull");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((n as u64 + 1) * 0x1000_0001));
    let mut held: Vec<ChatId> = Vec::new();
    let mut present = true;
    let (mut accepted, mut pulled) = (0, 0);
    let expected = [
        ErrorCode::NotOffered,
        ErrorCode::ChatAlreadyTaken,
        ErrorCode::ChatEnded,
    ];
    while assigned.lock().unwrap().len() < STRESS_CHATS {
        assert!(held.len() <= STRESS_CAPACITY, "{name} holds {held:?}");
        if held.len() == STRESS_CAPACITY || (!held.is_empty() && rng.next() % 4 == 0) {
            let chat = held.swap_remove(rng.next() as usize % held.len());
            agent.end_chat(chat).await.unwrap();
        }
        if rng.next() % 40 == 0 {
            present = !present;
            let status = if present {
                Status::Present
            } else {
                Status::Absent
            };
            agent.set_status(status).await.unwrap();
        }
        // Read everything that came (queue updates come by the thousand),
        // waiting a little if nothing did; answer the offers among it.
        let mut offers = Vec::new();
        let mut wait = Duration::from_millis(20);
        while let Ok(Some(event)) = tokio::time::timeout(wait, agent.next_event()).await {
            if let Event::Offered(offer) = event {
                offers.push(offer.row.chat);
            }
            wait = Duration::ZERO;
        }
        for chat in offers {
            if rng.next() % 10 == 0 {
                if let Err(err) = agent.decline(chat).await {
                    assert_eq!(err.code(), Some(ErrorCode::NotOffered), "{name}: {err}");
                }
                continue;
            }
            match agent.accept(chat).await {
                Ok(assignment) => {
                    record(&assigned, assignment.chat, &name);
                    held.push(assignment.chat);
                    accepted += 1;
                    // An offer holds a slot, so accepting never overfills.
                    assert!(held.len() <= STRESS_CAPACITY, "{name} holds {held:?}");
                }
                Err(err) => {
                    assert!(
                        err.code().is_some_and(|code| expected.contains(&code)),
                        "{name} accepting {chat}: {err}"
                    );
                }
            }
        }
        // Pull now and then, from the pull channel or (rarely) a push one.
        let channel = if pulls && rng.next() % 2 == 0 {
            Some("pull")
        } else if rng.next() % 25 == 0 {
            stress_channels(n)
                .into_iter()
                .find(|channel| *channel != "pull")
        } else {
            None
        };
        if let Some(channel) = channel
            && held.len() < STRESS_CAPACITY
        {
            match agent.get_next(channel).await {
                Ok(assignment) => {
                    record(&assigned, assignment.chat, &name);
                    held.push(assignment.chat);
                    pulled += 1;
                }
                Err(err) => assert!(
                    matches!(
                        err.code(),
                        Some(ErrorCode::QueueEmpty | ErrorCode::AtCapacity)
                    ),
                    "{name} get-next: {err}"
                ),
            }
        }
    }
    for chat in held {
        agent.end_chat(chat).await.unwrap();
    }
    (accepted, pulled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_every_chat_is_assigned_once_and_no_agent_exceeds_capacity() {
    let hub = TestHub::start(&stress_config()).await;
    let assigned: Assigned = Default::default();
    let mut agents = Vec::new();
    for n in 0..STRESS_AGENTS {
        let agent = hub.present_agent(format!("a{n:02}")).await;
        agents.push(tokio::spawn(stress_agent(agent, n, assigned.clone())));
    }
    let mut customers = Vec::new();
    for c in 0..STRESS_CUSTOMERS {
        let customer = hub.customer().await;
        customers.push(tokio::spawn(async move {
            let mut started = Vec::new();
            for i in 0..STRESS_CHATS / STRESS_CUSTOMERS {
                let channel = ["push", "robin", "pull"][(c + i) % 3];
                let (chat, _) = start(&customer, channel, ada(), "stress").await;
                started.push(chat);
            }
            (customer, started)
        }));
    }
    let mut started = Vec::new();
    let mut keep = Vec::new();
    for customer in customers {
        let (client, chats) = customer.await.unwrap();
        started.extend(chats);
        keep.push(client);
    }
    let (accepted, pulled) = tokio::time::timeout(Duration::from_secs(120), async {
        let (mut accepted, mut pulled) = (0, 0);
        for agent in agents {
            let (a, p) = agent.await.unwrap();
            accepted += a;
            pulled += p;
        }
        (accepted, pulled)
    })
    .await
    .expect("every chat is assigned within two minutes");
    let taken = accepted + pulled;
    // Two thirds of the chats start on push channels, a third on pull;
    // get-next takes some of the push channels' chats too.
    assert!(
        accepted >= STRESS_CHATS / 4 && pulled >= STRESS_CHATS / 4,
        "both ways were used: {accepted} accepted, {pulled} by get-next"
    );

    let assigned = assigned.lock().unwrap().clone();
    assert_eq!(taken, STRESS_CHATS, "each chat taken once");
    assert_eq!(assigned.len(), STRESS_CHATS);
    for chat in &started {
        assert!(assigned.contains_key(chat), "{chat} was never assigned");
    }
    // Every chat ended: every slot, offered or held, is free again.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let used: Vec<(usize, u64)> = (0..STRESS_AGENTS)
            .map(|n| (n, slots_used(&hub, &format!("a{n:02}"))))
            .filter(|(_, used)| *used > 0)
            .collect();
        if used.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots still taken after every chat ended: {used:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reload_switches_routing_and_withdraws_the_offers_of_a_removed_member() {
    let hub = TestHub::start(CONFIG).await;
    let pat = hub.present_agent("pat").await;
    let customer = hub.customer().await;
    let (waiting, _) = start(&customer, "pull", ada(), "pull, then push").await;
    assert!(
        offers_within(&pat, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // pull becomes a push channel: its waiting chat is offered at once.
    let pushed = CONFIG.replacen(
        "name = \"pull\"\n",
        "name = \"pull\"\nrouting = \"push\"\n",
        1,
    );
    hub.server.reload(&hub.config(&pushed)).await.unwrap();
    assert_eq!(next_offer(&pat).await.row.chat, waiting);

    // pat stops working it: the offer is withdrawn and its slot freed.
    let moved = pushed.replace(
        "id = \"pat\"\ntoken = \"test-token-0123456789\"\nchannels = [\"pull\"]",
        "id = \"pat\"\ntoken = \"test-token-0123456789\"\nchannels = [\"push\"]",
    );
    assert_ne!(moved, pushed);
    hub.server.reload(&hub.config(&moved)).await.unwrap();
    assert_eq!(next_withdrawn(&pat).await, (waiting, OfferEnd::Withdrawn));
    assert_eq!(slots_used(&hub, "pat"), 0);
    let err = pat.accept(waiting).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotOffered));
}
