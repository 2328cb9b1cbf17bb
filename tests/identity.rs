//! Customers who prove who they are with an identity their contact
//! center's web backend signed; contact history joins only those. A
//! backend may sign a priority claim with the identity: the chat starts at
//! it (up to the channel's cap), and an unsigned claim is refused.

mod common;

use chathub::actors::hub::{sign_identity, sign_identity_claiming};
use chathub::core::{ChatEventKind, ChatId, Customer, Identity, Priority, QueueRow};
use chathub::protocol::ErrorCode;
use common::{TOKEN, TestHub};

const SECRET: &str = "the-backend-secret-of-at-least-32-bytes";

fn config() -> String {
    format!(
        "[[channel]]\nname = \"vip\"\nidentity = \"require\"\nidentity_secret = \"{SECRET}\"\n\
         [[channel]]\nname = \"support\"\nidentity = \"accept\"\nidentity_secret = \"{SECRET}\"\n\
         [[channel]]\nname = \"vipfirst\"\nidentity = \"accept\"\nidentity_secret = \"{SECRET}\"\n\
         max_claimed_priority = \"urgent\"\npriority_aging = \"0s\"\n\
         [[agent]]\nid = \"alice\"\ntoken = \"{TOKEN}\"\n"
    )
}

fn ada() -> Identity {
    Identity {
        id: "cust-17".into(),
        email: Some("ada@example.com".into()),
    }
}

fn signed(identity: &Identity) -> String {
    sign_identity(SECRET.as_bytes(), identity)
}

#[tokio::test]
async fn a_channel_that_requires_identities_takes_only_verified_chats() {
    let hub = TestHub::start(&config()).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let refused = customer
        .start_chat("vip", Customer::default(), "let me in")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Unverified));

    // A signature for someone else, or for another email, does not verify.
    let forged = Identity {
        email: Some("eve@example.com".into()),
        ..ada()
    };
    let refused = customer.identify("vip", forged, signed(&ada())).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unverified));
    let refused = customer.identify("vip", ada(), "00".repeat(32)).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unverified));

    customer
        .identify("vip", ada(), signed(&ada()))
        .await
        .unwrap();
    let typed = Customer {
        name: Some("Ada".into()),
        email: Some("typed@example.com".into()),
    };
    let (chat, _) = common::start(&customer, "vip", typed, "hello").await;
    // Agents see the chat verified: in the incoming list and the chat.
    let mut row = None;
    for _ in 0..200 {
        row = alice
            .incoming("vip")
            .and_then(|list| list.rows.into_iter().find(|row| row.chat == chat));
        if row.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let row = row.expect("the chat is in the incoming list");
    assert_eq!(row.verified.as_deref(), Some("cust-17"));
    assert_eq!(
        row.customer.email.as_deref(),
        Some("ada@example.com"),
        "the vouched-for email, not the typed one"
    );
    let assignment = alice.get_next("vip").await.unwrap();
    assert_eq!(assignment.chat, chat);
    let transcript = alice.transcript(chat).await.unwrap();
    assert!(
        transcript
            .iter()
            .any(|event| event.kind == ChatEventKind::Verified(ada())),
        "{transcript:?}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_stranger_who_types_someones_email_never_lands_in_their_history() {
    let hub = TestHub::start(&config()).await;
    let alice = hub.present_agent("alice").await;
    // The real Ada, verified.
    let real = hub.customer().await;
    real.identify("support", ada(), signed(&ada()))
        .await
        .unwrap();
    let (verified_chat, _) = common::start(&real, "support", Customer::default(), "hi").await;
    // A stranger types Ada's address.
    let stranger = hub.customer().await;
    let claims_ada = Customer {
        name: Some("Ada".into()),
        email: Some("ada@example.com".into()),
    };
    let (strangers_chat, _) = common::start(&stranger, "support", claims_ada, "hi").await;
    for _ in 0..2 {
        let assignment = alice.get_next("support").await.unwrap();
        alice.end_chat(assignment.chat).await.unwrap();
    }
    let card = alice.contact(Some("ADA@example.com"), None).await.unwrap();
    let chats: Vec<_> = card.chats.iter().map(|row| row.chat).collect();
    assert!(chats.contains(&verified_chat), "{chats:?}");
    assert!(!chats.contains(&strangers_chat), "{chats:?}");
    hub.stop().await;
}

#[tokio::test]
async fn a_start_sent_right_behind_its_identify_is_verified() {
    use chathub::protocol::{
        ClientFrame, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody, Role,
        ServerFrame, encode,
    };
    let hub = TestHub::start(&config()).await;
    let _alice = hub.present_agent("alice").await;
    let (_endpoint, _conn, mut send, mut recv) = hub.raw_connection().await;
    let mut bytes = Vec::new();
    for frame in [
        ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Customer,
            resume: Vec::new(),
        }),
        ClientFrame::Request(Request {
            id: 1,
            body: RequestBody::Identify {
                channel: "vip".into(),
                identity: ada(),
                signature: signed(&ada()),
            },
        }),
        ClientFrame::Request(Request {
            id: 2,
            body: RequestBody::StartChat {
                channel: "vip".into(),
                customer: Customer::default(),
                client_id: 1,
                text: "hello".into(),
                secret: "a-secret-of-sixteen-bytes".into(),
            },
        }),
    ] {
        encode(&frame, &mut bytes).unwrap();
    }
    // In one write: the start is dispatched right behind the identify.
    send.write_all(&bytes).await.unwrap();
    let mut frames = FrameBuf::new();
    let started = common::read_until(
        &mut recv,
        &mut frames,
        |frame| matches!(frame, ServerFrame::Response(response) if response.id == 2),
    )
    .await;
    let ServerFrame::Response(started) = started else {
        unreachable!()
    };
    assert!(
        matches!(started.result, Ok(Reply::ChatStarted { .. })),
        "{started:?}"
    );
    hub.stop().await;
}

/// The incoming-list row of `chat` in `channel`, once alice sees it.
async fn row_of(alice: &chathub::client::AgentClient, channel: &str, chat: ChatId) -> QueueRow {
    for _ in 0..200 {
        if let Some(row) = alice
            .incoming(channel)
            .and_then(|list| list.rows.into_iter().find(|row| row.chat == chat))
        {
            return row;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("chat {chat} never reached the incoming list of {channel}");
}

#[tokio::test]
async fn a_signed_urgent_claim_is_served_before_earlier_normal_chats() {
    let hub = TestHub::start(&config()).await;
    let alice = hub.present_agent("alice").await;
    let first = hub.customer().await;
    let (normal, _) = common::start(&first, "vipfirst", Customer::default(), "me first").await;
    let vip = hub.customer().await;
    vip.identify_claiming(
        "vipfirst",
        ada(),
        Priority::Urgent,
        sign_identity_claiming(SECRET.as_bytes(), &ada(), Priority::Urgent),
    )
    .await
    .unwrap();
    let (urgent, _) = common::start(&vip, "vipfirst", Customer::default(), "help").await;
    let row = row_of(&alice, "vipfirst", urgent).await;
    assert_eq!(row.priority, Some(Priority::Urgent));
    assert_eq!(row.verified.as_deref(), Some("cust-17"));

    assert_eq!(alice.get_next("vipfirst").await.unwrap().chat, urgent);
    assert_eq!(alice.get_next("vipfirst").await.unwrap().chat, normal);
    let transcript = alice.transcript(urgent).await.unwrap();
    assert!(
        transcript.iter().any(|event| event.kind
            == ChatEventKind::PriorityClaimed {
                priority: Priority::Urgent
            }),
        "{transcript:?}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_claim_the_backend_did_not_sign_is_refused() {
    let hub = TestHub::start(&config()).await;
    let customer = hub.customer().await;
    let key = SECRET.as_bytes();
    // The plain identity's signature does not cover a claim.
    let refused = customer
        .identify_claiming("vipfirst", ada(), Priority::Urgent, signed(&ada()))
        .await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unverified));
    // Nor does a signed claim of high cover urgent.
    let high = sign_identity_claiming(key, &ada(), Priority::High);
    let refused = customer
        .identify_claiming("vipfirst", ada(), Priority::Urgent, high.clone())
        .await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unverified));
    // And a claim's signature is no plain identity's.
    let refused = customer.identify("vipfirst", ada(), high).await;
    assert_eq!(refused.unwrap_err().code(), Some(ErrorCode::Unverified));

    // Refused, the connection has no identity: its chat is plain.
    let alice = hub.present_agent("alice").await;
    let (chat, _) = common::start(&customer, "vipfirst", Customer::default(), "hi").await;
    let row = row_of(&alice, "vipfirst", chat).await;
    assert_eq!((row.priority, row.verified), (None, None));
    hub.stop().await;
}

#[tokio::test]
async fn a_claim_above_the_channels_cap_is_lowered_to_it() {
    let hub = TestHub::start(&config()).await;
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    // `support` keeps the default cap, high.
    customer
        .identify_claiming(
            "support",
            ada(),
            Priority::Urgent,
            sign_identity_claiming(SECRET.as_bytes(), &ada(), Priority::Urgent),
        )
        .await
        .unwrap();
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hi").await;
    let row = row_of(&alice, "support", chat).await;
    assert_eq!(row.priority, Some(Priority::High));
    hub.stop().await;
}
