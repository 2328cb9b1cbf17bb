//! What an agent may read follows the channel a chat is in now, not the one
//! it started in.

mod common;

use std::time::Duration;

use chathub::core::{ChatEventKind, Customer};
use chathub::protocol::{
    ClientFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Resume, Role, ServerFrame, encode,
};
use common::{CONFIG, TOKEN, TestHub};

#[tokio::test]
async fn a_chat_moved_to_another_channel_is_not_resumed_by_its_first_channels_agents() {
    let hub = TestHub::start(CONFIG).await;
    let alice = hub.present_agent("alice").await;
    let _carol = hub.present_agent("carol").await;
    let customer = hub.customer().await;
    let (chat, _) = common::start(&customer, "support", Customer::default(), "hi").await;
    alice.get_next("support").await.unwrap();
    alice.transfer_to_channel(chat, "sales").await.unwrap();
    customer.send(chat, "for sales only").await.unwrap();

    // Alice (support only) signs in again on a raw connection, resuming the
    // chat from its start.
    let (_endpoint, conn, mut send, mut recv) = hub.raw_connection().await;
    let mut hello = Vec::new();
    encode(
        &ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Agent {
                agent: "alice".into(),
                token: TOKEN.into(),
            },
            resume: vec![Resume {
                chat,
                after: 0,
                secret: None,
            }],
        }),
        &mut hello,
    )
    .unwrap();
    send.write_all(&hello).await.unwrap();
    let mut frames = FrameBuf::new();
    common::read_until(&mut recv, &mut frames, |frame| {
        matches!(frame, ServerFrame::Welcome(_))
    })
    .await;
    // Whatever streams the hub opens in the next moment carry nothing of
    // the chat after it left support.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, conn.accept_uni()).await {
        let mut frames = FrameBuf::new();
        while let Ok(Ok(Some(chunk))) =
            tokio::time::timeout_at(deadline, stream.read_chunk(usize::MAX, true)).await
        {
            frames.push(&chunk.bytes);
            while let Ok(Some(frame)) = frames.next_frame::<ServerFrame>() {
                if let ServerFrame::Event(Event::Chat(event)) = frame {
                    assert!(
                        !matches!(&event.kind, ChatEventKind::Message { text, .. } if text == "for sales only"),
                        "a support agent resumed a sales chat: {event:?}"
                    );
                }
            }
        }
    }
    hub.stop().await;
}
