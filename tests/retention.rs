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
