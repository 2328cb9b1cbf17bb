//! Agents' credentials and the data folder: tokens configured as digests,
//! failed sign-ins paced, secrets kept out of `Debug`, and a private data
//! folder.

mod common;

use chathub::actors::TokenDigest;
use chathub::client::{AgentClient, ClientError};
use chathub::protocol::{ErrorCode, Hello, PROTOCOL_VERSION, Role};
use common::TestHub;

const TOKEN: &str = "a-token-kept-only-as-its-digest";

fn config() -> String {
    format!(
        "[limits]\nsign_in_failures_per_minute = 3\n[[channel]]\nname = \"support\"\n[[agent]]\nid = \"ana\"\ntoken_hash = \"{}\"\n",
        TokenDigest::of(TOKEN).to_config()
    )
}

fn refusal(result: Result<AgentClient, ClientError>) -> Option<ErrorCode> {
    match result {
        Ok(_) => None,
        Err(err) => err.code(),
    }
}

#[tokio::test]
async fn a_configured_digest_signs_in_and_failures_are_paced() {
    let hub = TestHub::start(&config()).await;
    let ana = AgentClient::connect(&hub.client, "ana", TOKEN).await;
    assert!(ana.is_ok(), "the token whose digest is configured signs in");

    // An unknown agent and a wrong token are refused alike.
    for (agent, token) in [("ana", "not-the-token-at-all"), ("nobody", TOKEN)] {
        assert_eq!(
            refusal(AgentClient::connect(&hub.client, agent, token).await),
            Some(ErrorCode::Unauthorized),
            "{agent}"
        );
    }
    // A third failure from this address uses up the pace...
    assert_eq!(
        refusal(AgentClient::connect(&hub.client, "ana", &"x".repeat(10_000)).await),
        Some(ErrorCode::Unauthorized),
        "an over-long token is wrong without being hashed"
    );
    // ...after which even the right token is refused for a while.
    assert_eq!(
        refusal(AgentClient::connect(&hub.client, "ana", TOKEN).await),
        Some(ErrorCode::RateLimited)
    );
    hub.stop().await;
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Agent {
            agent: "ana".into(),
            token: TOKEN.into(),
        },
        resume: Vec::new(),
    };
    let shown = format!("{hello:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let config = chathub::config::Config::from_toml(
        "[[agent]]\nid = \"ana\"\ntoken = \"a-token-in-clear-0123\"\n",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("a-token-in-clear-0123"), "{shown}");
    assert!(
        !format!("{:?}", TokenDigest::of(TOKEN)).contains(&TokenDigest::of(TOKEN).to_config()[7..])
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    // Whatever the folder was before, the hub makes it its own.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hub = TestHub::start_in(common::CONFIG, data).await;
    let dir = hub.server.cert_path().parent().unwrap().to_owned();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("files")), 0o700);
    for file in ["chathub.redb", "chathub.wal", "key.pem"] {
        assert_eq!(mode(&dir.join(file)) & 0o077, 0, "{file}");
    }
    hub.stop().await;
}
