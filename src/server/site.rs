//! The widget listener (`[web]`): a small HTTP/1.1 server that answers GET
//! (and HEAD) of a fixed set of paths and nothing else.
//!
//! - `/` — a demo page holding the chat widget, wired to this hub;
//! - `/console` — the agent console (`console.js`), wired to this hub;
//! - `/<name>.js` — the built SDK and widget: the `.js` files of the
//!   assets folder, read once at start (so no request touches the file
//!   system, and no path outside that list is ever served);
//! - `/chathub/cert-hashes.json` — the WebTransport URL and the
//!   certificate hashes (SHA-256, the one in use first; both while the hub
//!   replaces the certificate), for a page's `serverCertificateHashes`.
//!
//! It is hand-written rather than hyper's server: one request per
//! connection, a request head of at most [`MAX_HEAD`] bytes read within
//! [`READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once, and every
//! answer a buffer already in memory. That is a page of code, where
//! hyper's server would add its server features and hyper-util's to the
//! build for the same few paths.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::WebConfig;
use crate::server::ServerError;
use crate::server::webtransport::SharedHashes;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// The most bytes of a request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most script files read from the assets folder.
const MAX_ASSETS: usize = 64;
/// The largest script file read from the assets folder.
const MAX_ASSET_BYTES: u64 = 1 << 20;
/// The path of the certificate hash.
const HASH_PATH: &str = "/chathub/cert-hashes.json";

/// The demo page; `{{HUB}}` becomes the WebTransport URL.
const DEMO_PAGE: &str = include_str!("../../web/demo.html");
/// The agent console's page; `{{HUB}}` becomes the WebTransport URL.
const CONSOLE_PAGE: &str = include_str!("../../web/console.html");
/// The path of the agent console.
pub(crate) const CONSOLE_PATH: &str = "/console";

/// What the listener knows to answer.
struct Site {
    /// The WebTransport session's URL.
    hub_url: String,
    /// The certificate hashes, shared with the WebTransport endpoint.
    hashes: SharedHashes,
    /// The demo page, filled in.
    page: Vec<u8>,
    /// The agent console's page, filled in.
    console: Vec<u8>,
    /// The script files by path (`/name.js`).
    scripts: HashMap<String, Vec<u8>>,
}

/// The running listener.
pub(crate) struct SiteListener {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl SiteListener {
    /// The TCP address it is bound to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections being answered finish by their
    /// timeouts.
    pub(crate) fn shutdown(self) {
        self.accept.abort();
    }
}

/// Starts the listener of `config`, for the WebTransport endpoint at
/// `webtransport` whose certificate hashes are `hashes`.
pub(crate) async fn start(
    config: &WebConfig,
    webtransport: SocketAddr,
    hashes: SharedHashes,
) -> Result<SiteListener, ServerError> {
    let scripts = read_scripts(&config.assets);
    if !scripts.contains_key("/widget.js") {
        tracing::warn!(
            "no widget in {}: build it with `npm ci && npm run build` in web/ (the hub serves \
             what is there at start)",
            config.assets.display()
        );
    }
    let host = match webtransport.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let hub_url = format!("https://{host}:{}/chathub", webtransport.port());
    if !scripts.contains_key("/console.js") {
        tracing::warn!(
            "no agent console in {}: build it with `npm ci && npm run build` in web/",
            config.assets.display()
        );
    }
    let page = DEMO_PAGE.replace("{{HUB}}", &hub_url).into_bytes();
    let console = CONSOLE_PAGE.replace("{{HUB}}", &hub_url).into_bytes();
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Io {
            what: format!("cannot listen on {}/tcp for [web]", config.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        what: "cannot read the [web] listener's address".into(),
        source,
    })?;
    let site = Arc::new(Site {
        hub_url,
        hashes,
        page,
        console,
        scripts,
    });
    let accept = tokio::spawn(accept_loop(listener, site));
    Ok(SiteListener { addr, accept })
}

/// The `.js` files directly in `dir`, by path; what cannot be read is
/// left out (and logged).
fn read_scripts(dir: &Path) -> HashMap<String, Vec<u8>> {
    let mut scripts = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return scripts;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !plain || !name.ends_with(".js") {
            continue;
        }
        match entry.metadata() {
            Ok(meta) if meta.is_file() && meta.len() <= MAX_ASSET_BYTES => {}
            _ => {
                tracing::warn!(
                    "[web] leaves out {name}: not a file, or over {MAX_ASSET_BYTES} bytes"
                );
                continue;
            }
        }
        if scripts.len() == MAX_ASSETS {
            tracing::warn!(
                "[web] serves the first {MAX_ASSETS} scripts of {}",
                dir.display()
            );
            break;
        }
        match std::fs::read(entry.path()) {
            Ok(bytes) => {
                scripts.insert(format!("/{name}"), bytes);
            }
            Err(err) => tracing::warn!("[web] cannot read {name}: {err}"),
        }
    }
    scripts
}

async fn accept_loop(listener: TcpListener, site: Arc<Site>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::debug!("[web] accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve(stream, &site).await;
        });
    }
}

/// Answers one request and closes the connection.
async fn serve(mut stream: TcpStream, site: &Site) {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        Ok(None) => {
            let answer = Answer::text(400, "Bad Request", "a request head of at most 8 KiB\n");
            let _ = write(&mut stream, answer, false).await;
            return;
        }
        Err(_) => return,
    };
    let (answer, head_only) = answer(site, &head);
    let _ = write(&mut stream, answer, head_only).await;
}

/// The request head, up to its blank line; `None` if it is over
/// [`MAX_HEAD`] or the connection ends first.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return None;
        }
    }
}

/// An answer: status, content type and body.
struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }

    fn ok(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            status: 200,
            reason: "OK",
            content_type,
            body,
        }
    }
}

/// The answer to a request head, and whether only its head is sent (HEAD).
fn answer(site: &Site, head: &[u8]) -> (Answer, bool) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return (
            Answer::text(400, "Bad Request", "bad request line\n"),
            false,
        );
    };
    if !version.starts_with(b"HTTP/1.") || parts.next().is_some() {
        return (
            Answer::text(400, "Bad Request", "bad request line\n"),
            false,
        );
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => {
            return (
                Answer::text(405, "Method Not Allowed", "GET and HEAD only\n"),
                false,
            );
        }
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let path = std::str::from_utf8(path).unwrap_or_default();
    let answer = match path {
        "/" | "/index.html" => Answer::ok("text/html; charset=utf-8", site.page.clone()),
        CONSOLE_PATH | "/console/" => Answer::ok("text/html; charset=utf-8", site.console.clone()),
        HASH_PATH => {
            let hashes = site
                .hashes
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .iter()
                .map(|hash| format!("\"{hash}\""))
                .collect::<Vec<_>>()
                .join(",");
            // Hex and a URL the hub made: nothing to escape.
            let json = format!("{{\"url\":\"{}\",\"hashes\":[{hashes}]}}\n", site.hub_url);
            Answer::ok("application/json", json.into_bytes())
        }
        _ => match site.scripts.get(path) {
            Some(script) => Answer::ok("text/javascript; charset=utf-8", script.clone()),
            None => Answer::text(404, "Not Found", "not found\n"),
        },
    };
    (answer, head_only)
}

async fn write(stream: &mut TcpStream, answer: Answer, head_only: bool) -> std::io::Result<()> {
    // Any page may load the widget and read the hash (both are public);
    // nothing is cached, so a rebuilt widget or a new hash is seen at once.
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.reason,
        answer.content_type,
        answer.body.len()
    );
    let send = async {
        stream.write_all(head.as_bytes()).await?;
        if !head_only {
            stream.write_all(&answer.body).await?;
        }
        stream.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, send)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::*;

    fn site() -> Site {
        Site {
            hub_url: "https://localhost:4434/chathub".into(),
            hashes: Arc::new(RwLock::new(vec!["ab".repeat(32), "cd".repeat(32)])),
            page: b"<p>page</p>".to_vec(),
            console: b"<p>console</p>".to_vec(),
            scripts: HashMap::from([("/widget.js".to_owned(), b"// w".to_vec())]),
        }
    }

    #[test]
    fn known_paths_only_by_get_or_head() {
        let site = site();
        let status = |head: &str| answer(&site, head.as_bytes()).0.status;
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x"), 200);
        assert_eq!(status("GET /widget.js?v=1 HTTP/1.1"), 200);
        assert_eq!(status("GET /console HTTP/1.1"), 200);
        assert_eq!(status("GET /console/x HTTP/1.1"), 404);
        let (console, _) = answer(&site, b"GET /console HTTP/1.1");
        assert_eq!(console.body, b"<p>console</p>");
        assert_eq!(status("HEAD /widget.js HTTP/1.1"), 200);
        assert_eq!(status("GET /../Cargo.toml HTTP/1.1"), 404);
        assert_eq!(status("GET /client.js HTTP/1.1"), 404);
        assert_eq!(status("POST / HTTP/1.1"), 405);
        assert_eq!(status("GET / SPDY/3"), 400);
        assert_eq!(status("GET"), 400);
        let (hash, _) = answer(&site, b"GET /chathub/cert-hashes.json HTTP/1.1");
        let json: serde_json::Value = serde_json::from_slice(&hash.body).unwrap();
        assert_eq!(json["hashes"][0], "ab".repeat(32));
        assert_eq!(json["hashes"][1], "cd".repeat(32), "every hash served");
        assert_eq!(json["url"], "https://localhost:4434/chathub");
    }
}
