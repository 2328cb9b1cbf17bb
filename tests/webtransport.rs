//! The WebTransport endpoint, driven by a WebTransport client in Rust (the
//! browser test, `tests/browser.rs`, drives it from Chromium): the same
//! frames as a native connection on the session's streams, the same hub
//! behind them, and the same admission.

mod common;

use std::time::Duration;

use bytes::Bytes;
use chathub::core::{ChatEventKind, Customer, Party};
use chathub::protocol::{
    ClientDatagram, ClientFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request,
    RequestBody, Role, Secret, ServerFrame, encode, encode_datagram,
};
use common::{PATIENCE, TestHub, metrics_endpoint, scrape, value};
use wtransport::tls::Sha256Digest;

/// The tests' configuration with WebTransport on and `limits` added to
/// its `[limits]`.
fn config(limits: &str) -> String {
    let config = common::CONFIG.replacen("[limits]\n", &format!("[limits]\n{limits}\n"), 1);
    format!("{config}\n[webtransport]\nenabled = true\nlisten = \"127.0.0.1:0\"\n")
}

fn wire(frame: &ClientFrame) -> Vec<u8> {
    let mut out = Vec::new();
    encode(frame, &mut out).unwrap();
    out
}

/// A WebTransport session to the hub's endpoint at `path`, trusting its
/// certificate by hash as a browser does.
async fn session(hub: &TestHub, path: &str) -> Result<wtransport::Connection, String> {
    session_from(hub, path, None).await
}

/// A session as a page of `origin` opens it (a browser sends its page's
/// origin; a program may send none).
async fn session_from(
    hub: &TestHub,
    path: &str,
    origin: Option<&str>,
) -> Result<wtransport::Connection, String> {
    let hash = hub
        .server
        .webtransport_cert_hash()
        .expect("WebTransport is on");
    session_trusting(hub, path, origin, &hash).await
}

/// A session that trusts the certificate whose SHA-256 is `hash` (hex).
async fn session_trusting(
    hub: &TestHub,
    path: &str,
    origin: Option<&str>,
    hash: &str,
) -> Result<wtransport::Connection, String> {
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).unwrap();
    }
    let hash = Sha256Digest::new(bytes);
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([hash])
        .build();
    let endpoint = wtransport::Endpoint::client(config).map_err(|err| err.to_string())?;
    let addr = hub.server.webtransport_addr().expect("WebTransport is on");
    let mut options = wtransport::endpoint::ConnectOptions::builder(format!(
        "https://127.0.0.1:{}{path}",
        addr.port()
    ));
    if let Some(origin) = origin {
        options = options.add_header("origin", origin);
    }
    tokio::time::timeout(PATIENCE, endpoint.connect(options))
        .await
        .map_err(|_| "no session in time".to_string())?
        .map_err(|err| err.to_string())
}

/// Reads the next frame off a WebTransport stream.
async fn next_frame(recv: &mut wtransport::RecvStream, frames: &mut FrameBuf) -> ServerFrame {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(frame) = frames.next_frame::<ServerFrame>().unwrap() {
                return frame;
            }
            let mut buf = [0u8; 4096];
            let read = recv
                .read(&mut buf)
                .await
                .unwrap()
                .expect("the stream is open");
            frames.push(&buf[..read]);
        }
    })
    .await
    .expect("a frame within the test's patience")
}

#[tokio::test]
async fn a_browser_session_chats_with_a_native_agent() {
    let hub = TestHub::start(&config("")).await;
    let agent = hub.present_agent("alice").await;
    let web = session(&hub, "/chathub").await.expect("a session");
    let (mut send, mut recv, mut frames, first) = hello(&web).await;
    assert!(matches!(first, ServerFrame::Welcome(_)));

    send.write_all(&wire(&ClientFrame::Request(Request {
        id: 1,
        body: RequestBody::StartChat {
            channel: "support".into(),
            customer: Customer {
                name: Some("Ada".into()),
                email: None,
            },
            client_id: 1,
            text: "Hello from a browser".into(),
            secret: Secret::new("a-secret-of-the-browser-customer"),
        },
    })))
    .await
    .unwrap();
    let chat = match next_frame(&mut recv, &mut frames).await {
        ServerFrame::Response(response) => match response.result {
            Ok(Reply::ChatStarted { chat, .. }) => chat,
            other => panic!("not started: {other:?}"),
        },
        other => panic!("not a response: {other:?}"),
    };

    // The agent takes it over native QUIC and answers; the answer reaches
    // the browser on the chat's own unidirectional stream.
    let assignment = agent.get_next("support").await.unwrap();
    assert_eq!(assignment.chat, chat);
    assert_eq!(assignment.first_message, "Hello from a browser");
    agent.send(chat, "Hello from a native agent").await.unwrap();
    let mut events = web.accept_uni().await.unwrap();
    let mut event_frames = FrameBuf::with_limit(chathub::protocol::MAX_FRAME_BYTES);
    let message = loop {
        match next_frame(&mut events, &mut event_frames).await {
            ServerFrame::Event(Event::Chat(event)) => match event.kind {
                ChatEventKind::Message {
                    from: from @ Party::Agent(_),
                    text,
                    ..
                } => {
                    break (event.seq, from, text);
                }
                _ => continue,
            },
            other => panic!("not a chat event: {other:?}"),
        }
    };
    assert_eq!(
        (message.1, message.2.as_str()),
        (Party::Agent("alice".into()), "Hello from a native agent")
    );

    // The browser posts; the agent gets it as an event.
    send.write_all(&wire(&ClientFrame::Request(Request {
        id: 2,
        body: RequestBody::Post {
            chat,
            client_id: 2,
            text: "Thanks!".into(),
        },
    })))
    .await
    .unwrap();
    match next_frame(&mut recv, &mut frames).await {
        ServerFrame::Response(response) => {
            assert!(matches!(response.result, Ok(Reply::Posted { seq, .. }) if seq > message.0))
        }
        other => panic!("not a response: {other:?}"),
    }
    let heard = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(Event::Chat(event)) = agent.next_event().await
                && let ChatEventKind::Message {
                    from: Party::Customer,
                    text,
                    ..
                } = event.kind
                && text == "Thanks!"
            {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the agent hears the browser");

    // A typing indicator travels as a WebTransport datagram.
    let typing = encode_datagram(&ClientDatagram::Typing { chat }).unwrap();
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            web.send_datagram(Bytes::from(typing.clone())).unwrap();
            match tokio::time::timeout(Duration::from_millis(300), agent.next_event()).await {
                Ok(Some(Event::Typing {
                    chat: c,
                    from: Party::Customer,
                })) if c == chat => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the agent sees the browser typing");
    hub.stop().await;
}

#[tokio::test]
async fn a_session_for_another_path_is_refused() {
    let hub = TestHub::start(&config("")).await;
    assert!(session(&hub, "/elsewhere").await.is_err());
    assert!(session(&hub, "/chathub").await.is_ok());
    hub.stop().await;
}

#[tokio::test]
async fn sessions_and_native_connections_share_the_per_address_cap() {
    let hub = TestHub::start(&config("connections_per_ip = 2")).await;
    let _native = hub.customer().await;
    let _web = session(&hub, "/chathub")
        .await
        .expect("the second connection");
    let third = session(&hub, "/chathub").await;
    assert!(third.is_err(), "the third from one address is refused");
    hub.stop().await;
}

#[tokio::test]
async fn a_session_that_never_says_hello_is_closed_at_the_deadline() {
    let hub = TestHub::start(&config("hello_timeout = \"1s\"")).await;
    let web = session(&hub, "/chathub").await.expect("a session");
    let closed = tokio::time::timeout(PATIENCE, web.closed()).await;
    assert!(closed.is_ok(), "closed without a hello");
    hub.stop().await;
}

#[tokio::test]
async fn garbage_on_a_session_is_answered_with_closing_and_a_closed_session() {
    let hub = TestHub::start(&config("")).await;
    let web = session(&hub, "/chathub").await.expect("a session");
    let (mut send, mut recv) = web.open_bi().await.unwrap().await.unwrap();
    // A length prefix announcing 5 bytes of an unknown variant.
    send.write_all(&[0, 0, 0, 5, 0xfa, 1, 2, 3, 4])
        .await
        .unwrap();
    let mut frames = FrameBuf::with_limit(chathub::protocol::MAX_FRAME_BYTES);
    match next_frame(&mut recv, &mut frames).await {
        ServerFrame::Closing(error) => {
            assert_eq!(error.code, chathub::protocol::ErrorCode::BadFrame)
        }
        other => panic!("not a Closing frame: {other:?}"),
    }
    let closed = tokio::time::timeout(PATIENCE, web.closed()).await;
    assert!(closed.is_ok(), "the session is closed");
    // The hub goes on serving browsers.
    assert!(session(&hub, "/chathub").await.is_ok());
    hub.stop().await;
}

/// Says hello as a customer on `web` and answers whether the hub welcomed
/// it: the session is served, not only opened.
async fn welcomed(web: &wtransport::Connection) -> bool {
    matches!(hello(web).await.3, ServerFrame::Welcome(_))
}

/// Opens the control stream on `web` and says hello as a new customer:
/// the streams, the frames read so far, and the hub's first frame.
async fn hello(
    web: &wtransport::Connection,
) -> (
    wtransport::SendStream,
    wtransport::RecvStream,
    FrameBuf,
    ServerFrame,
) {
    let (mut send, mut recv) = web.open_bi().await.unwrap().await.unwrap();
    send.write_all(&wire(&ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Customer,
        resume: Vec::new(),
    })))
    .await
    .unwrap();
    let mut frames = FrameBuf::with_limit(chathub::protocol::MAX_FRAME_BYTES);
    let first = next_frame(&mut recv, &mut frames).await;
    (send, recv, frames, first)
}

async fn origin_refusals(metrics: std::net::SocketAddr) -> f64 {
    value(
        &scrape(metrics).await,
        "chathub_webtransport_origin_refusals_total",
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_page_of_an_allowed_origin_connects_and_a_foreign_one_is_refused() {
    let metrics = metrics_endpoint();
    let config = format!(
        "{}allowed_origins = [\"https://shop.example\", \"https://help.example:8443\"]\n",
        config("")
    );
    let hub = TestHub::start(&config).await;

    let shop = session_from(&hub, "/chathub", Some("https://shop.example"))
        .await
        .expect("an allowed origin connects");
    assert!(welcomed(&shop).await, "and is served");
    assert!(
        session_from(&hub, "/chathub", Some("https://help.example:8443"))
            .await
            .is_ok()
    );

    for foreign in [
        "https://evil.example",
        "http://shop.example",
        "https://help.example",
        "https://shop.example.evil.example",
        "null",
    ] {
        let refused = session_from(&hub, "/chathub", Some(foreign)).await;
        assert_eq!(
            refused.err().as_deref(),
            Some("server rejected WebTransport session request"),
            "{foreign} is refused at the handshake"
        );
    }
    assert_eq!(origin_refusals(metrics).await, 5.0, "each refusal counted");

    // No Origin: a program, not a page; admitted, as documented.
    let program = session_from(&hub, "/chathub", None)
        .await
        .expect("a session without an Origin");
    assert!(welcomed(&program).await);
    assert_eq!(origin_refusals(metrics).await, 5.0);
    hub.stop().await;
}

#[tokio::test]
async fn by_default_only_the_hubs_own_pages_connect() {
    let with_web = format!(
        "{}[web]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
        config("")
    );
    let hub = TestHub::start(&with_web).await;
    // The port the system chose: the own pages' origins follow it.
    let port = hub.server.web_addr().expect("[web] is on").port();
    for own in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    ] {
        assert!(
            session_from(&hub, "/chathub", Some(&own)).await.is_ok(),
            "{own} is the hub's own page"
        );
    }
    for other in [
        format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1)),
        "https://shop.example".to_owned(),
    ] {
        assert!(
            session_from(&hub, "/chathub", Some(&other)).await.is_err(),
            "{other} is not listed"
        );
    }
    hub.stop().await;

    // Without [web] and with no list, no page at all; a program still.
    let hub = TestHub::start(&config("")).await;
    assert!(
        session_from(&hub, "/chathub", Some("http://localhost:4480"))
            .await
            .is_err()
    );
    assert!(session_from(&hub, "/chathub", None).await.is_ok());
    hub.stop().await;
}

#[tokio::test]
async fn a_reload_changes_the_allowed_origins_at_once() {
    let before = format!(
        "{}allowed_origins = [\"https://old.example\"]\n",
        config("")
    );
    let hub = TestHub::start(&before).await;
    let open = session_from(&hub, "/chathub", Some("https://old.example"))
        .await
        .expect("listed");
    assert!(
        session_from(&hub, "/chathub", Some("https://new.example"))
            .await
            .is_err()
    );

    let after = format!(
        "{}allowed_origins = [\"https://new.example\"]\n",
        config("")
    );
    let reloaded = hub.server.reload(&hub.config(&after)).await.unwrap();
    assert_eq!(reloaded.applied, ["webtransport.allowed_origins"]);
    assert!(reloaded.needs_restart.is_empty(), "{reloaded}");
    assert!(
        session_from(&hub, "/chathub", Some("https://new.example"))
            .await
            .is_ok(),
        "a newly listed origin connects without a restart"
    );
    assert!(
        session_from(&hub, "/chathub", Some("https://old.example"))
            .await
            .is_err(),
        "an origin taken off the list is refused from now on"
    );
    assert!(welcomed(&open).await, "a session already open stays");

    // The same list again changes nothing; an origin that is not one is
    // refused with the reason, and the running list stays.
    let again = hub.server.reload(&hub.config(&after)).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
    let mut bad = hub.config(&after);
    bad.webtransport.allowed_origins = vec!["new.example".into()];
    let refused = hub.server.reload(&bad).await;
    assert!(
        refused
            .err()
            .is_some_and(|err| err.to_string().contains("allowed_origins")),
    );
    assert!(
        session_from(&hub, "/chathub", Some("https://new.example"))
            .await
            .is_ok()
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_keeps_open_sessions_and_new_ones_need_its_hash() {
    let hub = TestHub::start(&config("")).await;
    let old = hub.server.webtransport_cert_hash().unwrap();
    let web = session(&hub, "/chathub").await.expect("a session");
    let (mut send, mut recv, mut frames, first) = hello(&web).await;
    assert!(matches!(first, ServerFrame::Welcome(_)));

    let new = hub
        .server
        .replace_webtransport_certificate()
        .await
        .unwrap()
        .expect("WebTransport is on");
    assert_ne!(new, old);
    assert_eq!(hub.server.webtransport_cert_hash(), Some(new.clone()));
    let written = std::fs::read_to_string(hub.data_dir().join("webtransport-cert.sha256")).unwrap();
    assert_eq!(written.trim(), new, "the hash file follows");

    // The session made with the old certificate goes on.
    send.write_all(&wire(&ClientFrame::Request(Request {
        id: 1,
        body: RequestBody::StartChat {
            channel: "support".into(),
            customer: Customer {
                name: None,
                email: None,
            },
            client_id: 1,
            text: "Still connected".into(),
            secret: Secret::new("a-secret-of-the-browser-customer"),
        },
    })))
    .await
    .unwrap();
    match next_frame(&mut recv, &mut frames).await {
        ServerFrame::Response(response) => assert!(response.result.is_ok(), "{response:?}"),
        other => panic!("not a response: {other:?}"),
    }

    // A new session needs the new hash.
    assert!(
        session_trusting(&hub, "/chathub", None, &old)
            .await
            .is_err(),
        "the old certificate is no longer offered"
    );
    let again = session_trusting(&hub, "/chathub", None, &new)
        .await
        .expect("the new hash connects");
    assert!(welcomed(&again).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loadtest_holds_idle_sessions_and_reports_the_hubs_memory_for_them() {
    let hub = TestHub::start(&config("")).await;
    let addr = hub.server.webtransport_addr().expect("WebTransport is on");
    let hash = hub
        .server
        .webtransport_cert_hash()
        .expect("WebTransport is on");
    let args = [
        "--addr".to_owned(),
        hub.server.local_addr().to_string(),
        "--cert".into(),
        hub.server.cert_path().display().to_string(),
        "--token".into(),
        common::TOKEN.into(),
        "--echo-frames".into(),
        "0".into(),
        "--idle".into(),
        "12".into(),
        "--idle-webtransport".into(),
        "--webtransport-addr".into(),
        addr.to_string(),
        "--webtransport-hash".into(),
        hash,
        "--hub-pid".into(),
        std::process::id().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
            .args(args)
            .output()
            .expect("the loadtest runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each session said hello and was welcomed (the loadtest fails
    // otherwise), and all were still open when the memory was read.
    assert!(stdout.contains("12 WebTransport sessions open"), "{stdout}");
    let per_session = stdout
        .lines()
        .find_map(|line| line.strip_suffix(" KiB per WebTransport session"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|kib| kib.parse::<f64>().ok());
    assert!(per_session.is_some(), "a figure per session: {stdout}");
    hub.stop().await;
}
