//! Files of ended chats are removed once their retention runs out; files
//! of live chats stay.

mod common;

use std::time::Duration;

use chathub::core::Customer;
use chathub::protocol::ErrorCode;
use common::TestHub;

#[tokio::test]
async fn an_ended_chats_files_go_after_the_retention_and_a_live_ones_stay() {
    let config = concat!(
        "[limits]\nfile_retention = \"300ms\"\n",
        "[[channel]]\nname = \"support\"\n",
        "[[agent]]\nid = \"alice\"\ntoken = \"test-token-0123456789\"\n",
    );
    let hub = TestHub::start(config).await;
    let files_dir = hub.server.cert_path().parent().unwrap().join("files");
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    let (ended, _) = common::start(&customer, "support", Customer::default(), "one").await;
    alice.get_next("support").await.unwrap();
    let (gone, _) = customer
        .send_file(ended, "receipt.pdf", "application/pdf", b"%PDF-1.4 receipt")
        .await
        .unwrap();
    let (live, _) = common::start(&customer, "support", Customer::default(), "two").await;
    alice.get_next("support").await.unwrap();
    let (kept, _) = customer
        .send_file(live, "photo.png", "image/png", b"\x89PNG photo")
        .await
        .unwrap();
    alice.end_chat(ended).await.unwrap();

    let on_disk = |id: chathub::core::FileId| files_dir.join(id.0.to_string()).exists();
    let mut removed = false;
    for _ in 0..100 {
        if !on_disk(gone.id) {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed, "the ended chat's file is removed from disk");
    let refused = alice.download(gone.id).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::UnknownItem));
    // The live chat's file stays, however old.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(on_disk(kept.id));
    let (_, bytes) = alice.download(kept.id).await.unwrap();
    assert_eq!(bytes, b"\x89PNG photo");
    hub.stop().await;
}

const PER_CHANNEL: &str = r#"
[[channel]]
name = "brief"
retention = "400ms"
ticket_retention = "300ms"
[[channel]]
name = "photos"
file_retention = "300ms"
[[channel]]
name = "support"
[[agent]]
id = "alice"
token = "test-token-0123456789"
capacity = 10
"#;

/// Waits (at most 5 s) until `gone` says yes.
async fn eventually(mut gone: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if gone().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_channel_erases_what_aged_out_of_its_own_retention_and_no_other() {
    let hub = TestHub::start(PER_CHANNEL).await;
    let files_dir = hub.data_dir().join("files");
    let alice = hub.present_agent("alice").await;
    let customer = hub.customer().await;
    // One ended chat with a file and a ticket on each channel.
    let mut made = Vec::new();
    for channel in ["brief", "photos", "support"] {
        let who = Customer {
            name: Some(format!("Customer of {channel}")),
            email: Some(format!("{channel}@example.com")),
        };
        let (chat, _) = common::start(&customer, channel, who, "hello").await;
        assert_eq!(alice.get_next(channel).await.unwrap().chat, chat);
        let (file, _) = customer
            .send_file(chat, "a.txt", "text/plain", channel.as_bytes())
            .await
            .unwrap();
        let ticket = alice
            .create_ticket(chat, "Follow up", "call back")
            .await
            .unwrap();
        alice.end_chat(chat).await.unwrap();
        made.push((chat, file.id, ticket));
    }
    let [brief, photos, support] = [made[0], made[1], made[2]];
    let on_disk = |id: chathub::core::FileId| files_dir.join(id.0.to_string()).exists();

    // The brief channel's chat goes (with its file) after 400 ms, its
    // ticket after 300 ms.
    let sessions = async || -> Vec<chathub::core::ChatId> {
        alice
            .recent_sessions(None, 100)
            .await
            .unwrap()
            .iter()
            .map(|row| row.session.chat)
            .collect()
    };
    assert!(
        eventually(async || !sessions().await.contains(&brief.0)).await,
        "the brief channel's session is erased"
    );
    assert!(alice.transcript(brief.0).await.is_err());
    assert!(
        eventually(async || alice.ticket(brief.2).await.is_err()).await,
        "the brief channel's ticket is erased"
    );
    assert_eq!(
        alice.ticket(brief.2).await.unwrap_err().code(),
        Some(ErrorCode::UnknownTicket)
    );
    assert!(eventually(async || !on_disk(brief.1)).await);
    assert_eq!(
        alice.download(brief.1).await.unwrap_err().code(),
        Some(ErrorCode::UnknownItem)
    );
    let card = alice
        .contact(Some("brief@example.com"), None)
        .await
        .unwrap();
    assert!(card.chats.is_empty() && card.tickets.is_empty());

    // The photos channel's file goes after 300 ms; its chat and ticket stay.
    assert!(eventually(async || !on_disk(photos.1)).await);
    assert_eq!(
        alice.download(photos.1).await.unwrap_err().code(),
        Some(ErrorCode::UnknownItem)
    );

    // Well past every retention: the others are untouched.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let left = sessions().await;
    assert!(left.contains(&photos.0) && left.contains(&support.0));
    assert_eq!(alice.ticket(photos.2).await.unwrap().id, photos.2);
    assert_eq!(alice.ticket(support.2).await.unwrap().id, support.2);
    assert!(!alice.transcript(photos.0).await.unwrap().is_empty());
    assert!(on_disk(support.1));
    let (_, bytes) = alice.download(support.1).await.unwrap();
    assert_eq!(bytes, b"support");
    hub.stop().await;
}
