//! Typing indicators over real QUIC: datagrams both ways between a chat's
//! customer and its holding agent, to nobody else, never stored, paced per
//! connection; a flood of them delays no chat message and closes nothing.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use chathub::client::{AgentClient, ChatEventKind, ChatId, Customer, CustomerClient, Event, Party};
use common::{CONFIG, PATIENCE, TestHub, metrics_endpoint, scrape, start, value};

/// How often a test sends an indicator again while waiting for one: a
/// datagram may be lost. Slower than the default pace of 5 a second.
const RESEND: Duration = Duration::from_millis(250);

/// How long a test waits for an indicator it expects not to come.
const QUIET: Duration = Duration::from_millis(500);

fn who(name: &str) -> Customer {
    Customer {
        name: Some(name.into()),
        email: None,
    }
}

/// The typing indicators among the events that arrive within `wait`
/// (other events are skipped).
async fn typing_within<F, Fut>(next: F, wait: Duration) -> Vec<(ChatId, Party)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Event>>,
{
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(until, next()).await {
        if let Event::Typing { chat, from } = event {
            seen.push((chat, from));
        }
    }
    seen
}

/// Calls `signal` every [`RESEND`] until an event `next` gives is a typing
/// indicator of `chat` from `from`.
async fn signal_until<S, F, Fut>(signal: S, next: F, chat: ChatId, from: Party)
where
    S: Fn(),
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Event>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "no typing indicator of {chat} from {from:?} within the test's patience"
        );
        signal();
        let arrived = Instant::now() + RESEND;
        while let Ok(Some(event)) = tokio::time::timeout_at(arrived.into(), next()).await {
            if let Event::Typing { chat: c, from: f } = event {
                assert_eq!((c, &f), (chat, &from), "an indicator for someone else");
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_party_and_nobody_else() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let bob = hub.present_agent("bob").await;
    let customer = hub.customer().await;
    let stranger = hub.customer().await;
    let (chat, _) = start(&customer, "support", who("Ada"), "hello").await;
    let (own, _) = start(&stranger, "support", who("Eve"), "me too").await;

    // Waiting: the customer's indicator has nobody to go to; an agent who
    // does not hold the chat, and a customer whose chat it is not, are
    // ignored. None of them is an error.
    for _ in 0..3 {
        customer.typing(chat).unwrap();
        bob.typing(chat).unwrap();
        stranger.typing(chat).unwrap();
    }
    // Datagrams are not ordered with requests: let those above reach the
    // hub while the chat still waits, before an agent takes it.
    tokio::time::sleep(QUIET).await;
    let assignment = alice.get_next("support").await.unwrap();
    assert_eq!(assignment.chat, chat);
    // Held by alice now: bob and the stranger are still nobody in it.
    for _ in 0..3 {
        bob.typing(chat).unwrap();
        stranger.typing(chat).unwrap();
        stranger.typing(ChatId(9_999)).unwrap();
    }
    assert_eq!(typing_within(|| alice.next_event(), QUIET).await, []);
    assert_eq!(typing_within(|| bob.next_event(), QUIET).await, []);
    assert_eq!(typing_within(|| customer.next_event(), QUIET).await, []);

    // The customer's indicator reaches the holding agent, the agent's the
    // customer.
    signal_until(
        || customer.typing(chat).unwrap(),
        || alice.next_event(),
        chat,
        Party::Customer,
    )
    .await;
    signal_until(
        || alice.typing(chat).unwrap(),
        || customer.next_event(),
        chat,
        Party::Agent("alice".into()),
    )
    .await;
    // Bob, who waits in the same channel, and the stranger, whose own chat
    // still waits, saw none of it.
    assert_eq!(typing_within(|| bob.next_event(), QUIET).await, []);
    assert_eq!(typing_within(|| stranger.next_event(), QUIET).await, []);
    // The stranger's own waiting chat: its indicators reach nobody either.
    stranger.typing(own).unwrap();
    assert_eq!(typing_within(|| alice.next_event(), QUIET).await, []);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_never_stored() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (chat, _) = start(&customer, "support", who("Ada"), "hello").await;
    alice.get_next("support").await.unwrap();
    let before = customer.send(chat, "before").await.unwrap();
    let stored = alice.transcript(chat).await.unwrap();

    signal_until(
        || customer.typing(chat).unwrap(),
        || alice.next_event(),
        chat,
        Party::Customer,
    )
    .await;
    signal_until(
        || alice.typing(chat).unwrap(),
        || customer.next_event(),
        chat,
        Party::Agent("alice".into()),
    )
    .await;

    assert_eq!(
        alice.transcript(chat).await.unwrap(),
        stored,
        "the transcript is as it was"
    );
    let after = customer.send(chat, "after").await.unwrap();
    assert_eq!(after, before + 1, "the next message follows without a gap");
    hub.stop().await;
}

/// What one side of a chat saw: the other party's messages, in order, and
/// how many typing indicators arrived.
#[derive(Default)]
struct Seen {
    texts: Vec<String>,
    seqs: Vec<u64>,
    typing: usize,
}

/// Reads events until `want` messages of `from` whose text starts with
/// `prefix` arrived in each of `chats`.
async fn read_messages<F, Fut>(
    next: F,
    chats: &[ChatId],
    (from, prefix): (&Party, &str),
    want: usize,
) -> Vec<Seen>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<Event>>,
{
    let mut seen: Vec<Seen> = chats.iter().map(|_| Seen::default()).collect();
    while seen.iter().any(|seen| seen.texts.len() < want) {
        let event = tokio::time::timeout(PATIENCE, next())
            .await
            .expect("every message within the test's patience")
            .expect("the connection is open");
        match event {
            Event::Chat(event) => {
                let Some(at) = chats.iter().position(|chat| *chat == event.chat) else {
                    continue;
                };
                if let ChatEventKind::Message { from: by, text, .. } = event.kind
                    && by == *from
                    && text.starts_with(prefix)
                {
                    seen[at].texts.push(text);
                    seen[at].seqs.push(event.seq);
                }
            }
            Event::Typing { chat, .. } => {
                if let Some(at) = chats.iter().position(|c| *c == chat) {
                    seen[at].typing += 1;
                }
            }
            _ => {}
        }
    }
    seen
}

async fn talk_customer(customer: &CustomerClient, chat: ChatId, messages: usize) {
    for n in 0..messages {
        customer.send(chat, format!("c{n}")).await.unwrap();
    }
}

async fn talk_agent(agent: &AgentClient, chat: ChatId, messages: usize) {
    for n in 0..messages {
        agent.send(chat, format!("a{n}")).await.unwrap();
    }
}

fn in_order(seen: &Seen, prefix: &str, messages: usize) {
    let want: Vec<String> = (0..messages).map(|n| format!("{prefix}{n}")).collect();
    assert_eq!(seen.texts, want, "every message, once, in order");
    assert!(seen.seqs.windows(2).all(|pair| pair[0] < pair[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typing_flood_delays_no_message_and_closes_nothing() {
    const FLOOD: usize = 20_000;
    const MESSAGES: usize = 200;
    let metrics = metrics_endpoint();
    let hub = TestHub::start(CONFIG).await;
    let limits = chathub::core::Limits::default();
    let alice = hub.present_agent("alice").await;
    let flooder = hub.customer().await;
    let other = hub.customer().await;
    let (flooded, _) = start(&flooder, "support", who("Ada"), "hello").await;
    let (quiet, _) = start(&other, "support", who("Bo"), "hi").await;
    assert_eq!(alice.get_next("support").await.unwrap().chat, flooded);
    assert_eq!(alice.get_next("support").await.unwrap().chat, quiet);

    // The flood: as fast as the SDK sends, for as long as the chats talk
    // (and at least FLOOD indicators).
    let began = Instant::now();
    let talking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = {
        let (flooder, talking) = (flooder.clone(), talking.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < FLOOD || talking.load(std::sync::atomic::Ordering::Relaxed) {
                flooder.typing(flooded).expect("the connection stays");
                sent += 1;
                if sent % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            sent
        })
    };
    let customer = Party::Customer;
    let agent = Party::Agent("alice".into());
    let (both, one_flooded, one_quiet) = ([flooded, quiet], [flooded], [quiet]);
    let (_, _, _, _, at_alice, at_flooder, at_other) = tokio::join!(
        talk_customer(&flooder, flooded, MESSAGES),
        talk_customer(&other, quiet, MESSAGES),
        talk_agent(&alice, flooded, MESSAGES),
        talk_agent(&alice, quiet, MESSAGES),
        read_messages(|| alice.next_event(), &both, (&customer, "c"), MESSAGES),
        read_messages(
            || flooder.next_event(),
            &one_flooded,
            (&agent, "a"),
            MESSAGES
        ),
        read_messages(|| other.next_event(), &one_quiet, (&agent, "a"), MESSAGES),
    );
    talking.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.await.expect("every indicator was handed to QUIC");
    assert!(sent >= FLOOD);
    in_order(&at_alice[0], "c", MESSAGES);
    in_order(&at_alice[1], "c", MESSAGES);
    in_order(&at_flooder[0], "a", MESSAGES);
    in_order(&at_other[0], "a", MESSAGES);

    // Whatever else arrives of the flood, the pace let through no more
    // than its burst and rate (and a little slack).
    let late = typing_within(|| alice.next_event(), QUIET).await;
    let typed = at_alice[0].typing + late.len();
    let allowed = f64::from(limits.typing_burst)
        + limits.typing_per_sec * began.elapsed().as_secs_f64()
        + 2.0;
    assert!(
        (typed as f64) <= allowed,
        "{typed} indicators passed a pace of {allowed:.0}"
    );
    assert_eq!(at_alice[1].typing, 0, "nothing for the quiet chat");
    assert_eq!(at_other[0].typing, 0);

    // The flooding connection is the same connection and still works.
    assert_eq!(flooder.reconnects(), 0);
    let seq = flooder.send(flooded, "still here").await.unwrap();
    assert!(seq > MESSAGES as u64);
    // The hub counted what it dropped.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let scraped = scrape(metrics).await;
        let refused = value(&scraped, "chathub_limit_refusals_total{limit=\"typing\"}")
            .expect("the typing refusals are exported");
        if refused >= 100.0 || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused >= 100.0,
        "only {refused} of {FLOOD} indicators were refused"
    );
    hub.stop().await;
}
