//! The yardstick: raw QUIC on this machine. One client pipelines 100-byte
//! frames to an in-process quinn server that echoes them back; frames per
//! second is what the transport alone can do, to compare the hub's relay
//! with.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

const FRAME: usize = 100;
const ALPN: &[u8] = b"echo";

/// Echoes `frames` 100-byte frames; answers frames per second.
pub(crate) async fn frames_per_second(frames: u64) -> anyhow::Result<f64> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = pair.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(pair.signing_key.serialize_der())
        .map_err(|err| anyhow::anyhow!("{err}"))?;

    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    server_tls.alpn_protocols = vec![ALPN.to_vec()];
    let server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)?,
    ));
    let server = chathub::udp::endpoint(
        "127.0.0.1:0".parse()?,
        chathub::udp::SERVER_BUFFER_BYTES,
        Some(server_config),
    )?;
    let addr = server.local_addr()?;
    let echo = tokio::spawn(async move {
        let conn = server.accept().await.context("a connection")?.await?;
        let (mut send, mut recv) = conn.accept_bi().await?;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
            send.write_all(&chunk.bytes).await?;
        }
        send.finish()?;
        conn.closed().await;
        anyhow::Ok(())
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = chathub::udp::endpoint(
        "127.0.0.1:0".parse()?,
        chathub::udp::CLIENT_BUFFER_BYTES,
        None,
    )?;
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)?,
    )));
    let conn = client.connect(addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;

    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let frame = [7u8; FRAME];
        for _ in 0..frames {
            send.write_all(&frame).await?;
        }
        send.finish()?;
        anyhow::Ok(())
    });
    let expected = frames * FRAME as u64;
    let mut received = 0u64;
    while received < expected {
        match recv.read_chunk(usize::MAX, true).await? {
            Some(chunk) => received += chunk.bytes.len() as u64,
            None => break,
        }
    }
    let elapsed = started.elapsed();
    writer.await??;
    conn.close(0u32.into(), b"done");
    let _ = echo.await;
    anyhow::ensure!(
        received == expected,
        "echoed {received} of {expected} bytes"
    );
    Ok(frames as f64 / elapsed.as_secs_f64())
}
