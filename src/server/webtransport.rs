//! The WebTransport endpoint browsers connect to: HTTP/3 on a UDP port of
//! its own (`[webtransport] listen`), with a certificate browsers accept by
//! its hash.
//!
//! A browser trusts a self-signed certificate through
//! `serverCertificateHashes` only if it is an ECDSA P-256 certificate valid
//! for at most 14 days. The hub generates such a pair into the data folder
//! (`webtransport-cert.pem`, `webtransport-key.pem`), keeps it across
//! restarts while it has [`ROTATE_BEFORE`] or more to live, replaces it
//! before that (at start, and while running, checked every
//! [`CHECK_EVERY`]), and writes the SHA-256 of its DER bytes, in hex, to
//! `webtransport-cert.sha256` for whatever serves pages to pass on.
//!
//! A replacement does not cut the sessions that are open: each keeps the
//! certificate it was made with, and only new sessions get the new one.
//! While the endpoint switches, the hashes served to pages list both
//! certificates, so a page that reads them at that moment connects with
//! either.
//!
//! Sessions are admitted by the same [`Admission`] as native connections
//! (one count of connections per address across both), then by their
//! page's origin ([`SessionOrigins`], `[webtransport] allowed_origins`),
//! and then served by the same connection task (`connection::handle_web`).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{AllowedOrigins, Origin, WebTransportConfig};
use crate::core::Limits;
use crate::server::admission::{Admission, Verdict};
use crate::server::partitions::Partitions;
use crate::server::tls::{self, Identity, TlsError};
use crate::server::{ServerError, connection, refused};

/// How long a generated certificate is valid: under the 14 days browsers
/// accept for a certificate given by its hash, with an hour of clock skew
/// before its start.
const VALIDITY: Duration = Duration::from_secs(13 * 24 * 3600);
/// A certificate with less than this left is replaced.
const ROTATE_BEFORE: Duration = Duration::from_secs(3 * 24 * 3600);
/// How often a running hub checks whether its certificate is due.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Unidirectional streams a browser may open at once: HTTP/3's control
/// and QPACK streams, and room for a few more (a browser may add a
/// reserved "grease" stream); the hub accepts none of its own.
const CLIENT_UNI_STREAMS: u32 = 8;
/// ALPN of HTTP/3, which WebTransport runs over.
const ALPN_H3: &[u8] = b"h3";

/// The names the certificate is valid for.
const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

type WtEndpoint = wtransport::Endpoint<wtransport::endpoint::endpoint_side::Server>;

/// The certificate's files in the data folder.
struct Files {
    cert: PathBuf,
    key: PathBuf,
    hash: PathBuf,
}

impl Files {
    fn in_dir(data_dir: &Path) -> Self {
        Self {
            cert: data_dir.join("webtransport-cert.pem"),
            key: data_dir.join("webtransport-key.pem"),
            hash: data_dir.join("webtransport-cert.sha256"),
        }
    }
}

/// The certificate in use: its pair, hash, and end of validity.
pub(crate) struct WebCert {
    identity: Identity,
    /// SHA-256 of the certificate's DER bytes.
    hash: [u8; 32],
    /// Seconds since the Unix epoch after which it is no longer valid.
    not_after: i64,
}

impl WebCert {
    /// The hash in lowercase hex.
    pub(crate) fn hash_hex(&self) -> String {
        crate::core::hex::encode(&self.hash)
    }

    /// Whether it has less than [`ROTATE_BEFORE`] to live at `now`
    /// (seconds since the Unix epoch).
    fn due(&self, now: i64) -> bool {
        self.not_after.saturating_sub(now) < ROTATE_BEFORE.as_secs() as i64
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Loads the certificate in `data_dir`, or generates one there if there
/// is none, it cannot be read, or it is due; writes its hash file.
pub(crate) fn load_or_rotate(data_dir: &Path) -> Result<WebCert, TlsError> {
    let files = Files::in_dir(data_dir);
    let cert = match load(&files) {
        Ok(cert) if !cert.due(now_unix()) => cert,
        Ok(_) => {
            tracing::info!("the WebTransport certificate is due for replacement");
            generate(&files)?
        }
        Err(err) => {
            if files.cert.exists() {
                tracing::warn!("the WebTransport certificate is replaced: {err}");
            }
            generate(&files)?
        }
    };
    write_hash(&files, &cert)?;
    Ok(cert)
}

/// Generates a new certificate into `data_dir` whatever the one there,
/// and writes its hash file.
fn renew(data_dir: &Path) -> Result<WebCert, TlsError> {
    let files = Files::in_dir(data_dir);
    let cert = generate(&files)?;
    write_hash(&files, &cert)?;
    Ok(cert)
}

fn write_hash(files: &Files, cert: &WebCert) -> Result<(), TlsError> {
    fs::write(&files.hash, format!("{}\n", cert.hash_hex())).map_err(|source| TlsError::File {
        path: files.hash.clone(),
        source,
    })
}

fn load(files: &Files) -> Result<WebCert, TlsError> {
    let pem_err = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::File {
            path: path.to_owned(),
            source,
        })
    };
    let cert = CertificateDer::from_pem_slice(&read(&files.cert)?)
        .map_err(|err| pem_err(&files.cert, err.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|err| pem_err(&files.key, err.to_string()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
        .map_err(|err| pem_err(&files.cert, err.to_string()))?;
    let not_after = parsed.validity().not_after.timestamp();
    Ok(WebCert {
        hash: digest(&cert),
        not_after,
        identity: Identity {
            certs: vec![cert],
            key,
            cert_path: files.cert.clone(),
        },
    })
}

fn digest(cert: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut hash = [0; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

fn generate(files: &Files) -> Result<WebCert, TlsError> {
    generate_for(files, VALIDITY)
}

/// Generates a pair valid from an hour ago until `validity` from now.
fn generate_for(files: &Files, validity: Duration) -> Result<WebCert, TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(
        NAMES
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
    let cert = params.self_signed(&key)?;
    tls::write_private(&files.key, key.serialize_pem().as_bytes())?;
    fs::write(&files.cert, cert.pem()).map_err(|source| TlsError::File {
        path: files.cert.clone(),
        source,
    })?;
    tracing::info!(cert = %files.cert.display(), "generated a WebTransport certificate");
    load(files)
}

/// The certificate hashes pages are given, in hex, the one in use first;
/// shared with the server handle and the `[web]` listener.
pub(crate) type SharedHashes = Arc<RwLock<Vec<String>>>;

/// Which pages may open sessions: the configured `allowed_origins` and
/// the hub's own `[web]` pages. Read at each session's request; a reload
/// replaces the configured part.
#[derive(Debug, Default)]
pub(crate) struct SessionOrigins {
    inner: RwLock<OriginsNow>,
}

#[derive(Debug, Default)]
struct OriginsNow {
    /// `allowed_origins`.
    listed: AllowedOrigins,
    /// The hub's own pages.
    own: Vec<Origin>,
    /// Both: what is admitted.
    admitted: AllowedOrigins,
}

impl OriginsNow {
    fn update(&mut self) {
        let mut admitted = self.listed.clone();
        for origin in &self.own {
            admitted.add(origin.clone());
        }
        self.admitted = admitted;
    }
}

impl SessionOrigins {
    fn new(listed: AllowedOrigins) -> Self {
        let origins = Self::default();
        origins.set_listed(listed);
        origins
    }

    /// Admits `listed` (and the hub's own pages) from now on.
    pub(crate) fn set_listed(&self, listed: AllowedOrigins) {
        let mut now = self
            .inner
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        now.listed = listed;
        now.update();
    }

    /// The hub's own pages, once their listener is bound.
    pub(crate) fn set_own(&self, own: Vec<Origin>) {
        let mut now = self
            .inner
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        now.own = own;
        now.update();
    }

    /// Whether a session whose request carries `Origin: origin` may open
    /// (see [`AllowedOrigins::admits`]).
    pub(crate) fn admits(&self, origin: Option<&str>) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .admitted
            .admits(origin)
    }

    /// Whether pages of any origin may open sessions.
    pub(crate) fn admits_some(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .admitted
            .admits_some()
    }
}

/// A running WebTransport endpoint.
pub(crate) struct WebEndpoint {
    pub(crate) endpoint: Arc<WtEndpoint>,
    pub(crate) hashes: SharedHashes,
    pub(crate) origins: Arc<SessionOrigins>,
    rotation: Arc<Rotation>,
    accept: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    rotate: tokio::task::JoinHandle<()>,
}

fn server_config(
    socket: std::net::UdpSocket,
    cert: &WebCert,
    limits: &Limits,
) -> Result<wtransport::ServerConfig, TlsError> {
    let quic = tls::quic_config(&cert.identity, limits, ALPN_H3, CLIENT_UNI_STREAMS)?;
    Ok(wtransport::ServerConfig::builder()
        .with_bind_socket(socket)
        .build_with_quic_config(quic))
}

/// Starts the endpoint of `config` for `partitions`, admitting by
/// `admission`.
pub(crate) fn start(
    config: &WebTransportConfig,
    data_dir: &Path,
    partitions: Partitions,
    admission: Arc<Admission>,
) -> Result<WebEndpoint, ServerError> {
    let origins = Arc::new(SessionOrigins::new(config.origins()?));
    let cert = load_or_rotate(data_dir)?;
    let socket =
        crate::udp::bind(config.listen, crate::udp::SERVER_BUFFER_BYTES).map_err(|source| {
            ServerError::Io {
                what: format!("cannot listen on {}/udp for WebTransport", config.listen),
                source,
            }
        })?;
    let server = server_config(socket, &cert, partitions.limits())?;
    let endpoint = WtEndpoint::server(server)
        .map(Arc::new)
        .map_err(|source| ServerError::Io {
            what: format!("cannot start WebTransport on {}", config.listen),
            source,
        })?;
    let hashes = Arc::new(RwLock::new(vec![cert.hash_hex()]));
    tracing::info!(
        listen = %config.listen,
        cert_sha256 = %cert.hash_hex(),
        "WebTransport for browsers on https://{}{}",
        config.listen,
        connection::WEBTRANSPORT_PATH
    );
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let limits = partitions.limits().clone();
    let accept = tokio::spawn(accept_loop(
        endpoint.clone(),
        partitions,
        admission,
        origins.clone(),
        stopped,
    ));
    let rotation = Arc::new(Rotation {
        endpoint: endpoint.clone(),
        data_dir: data_dir.to_owned(),
        limits,
        cert: tokio::sync::Mutex::new(cert),
        hashes: hashes.clone(),
    });
    let rotate = tokio::spawn(rotate_loop(rotation.clone()));
    Ok(WebEndpoint {
        endpoint,
        hashes,
        origins,
        rotation,
        accept,
        stop,
        rotate,
    })
}

impl WebEndpoint {
    /// The UDP address it is bound to.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// The hash of the certificate in use, in hex.
    pub(crate) fn hash(&self) -> String {
        self.hashes
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the certificate now, as before its expiry; answers the new
    /// one's hash.
    pub(crate) async fn replace_certificate(&self) -> Result<String, ServerError> {
        self.rotation
            .replace(true)
            .await
            .map(|hash| hash.unwrap_or_default())
    }

    /// Closes every session and waits briefly for them to end.
    pub(crate) async fn shutdown(self) {
        self.rotate.abort();
        // The accept loop closes the endpoint itself once it no longer
        // waits on it (`wtransport` panics in an accept on a closed
        // endpoint).
        let _ = self.stop.send(());
        let mut accept = self.accept;
        if tokio::time::timeout(Duration::from_secs(5), &mut accept)
            .await
            .is_err()
        {
            accept.abort();
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// What replacing the certificate needs.
struct Rotation {
    endpoint: Arc<WtEndpoint>,
    data_dir: PathBuf,
    limits: Limits,
    /// The certificate in use; held while it is being replaced.
    cert: tokio::sync::Mutex<WebCert>,
    hashes: SharedHashes,
}

impl Rotation {
    /// Replaces the certificate if it is due, or whatever its age with
    /// `now`; answers the new hash if it was replaced. Sessions already
    /// open keep theirs, new ones get the new one.
    async fn replace(&self, now: bool) -> Result<Option<String>, ServerError> {
        let mut cert = self.cert.lock().await;
        if !now && !cert.due(now_unix()) {
            return Ok(None);
        }
        let next = if now {
            renew(&self.data_dir)?
        } else {
            load_or_rotate(&self.data_dir)?
        };
        let quic = tls::quic_config(&next.identity, &self.limits, ALPN_H3, CLIENT_UNI_STREAMS)?;
        // The bind address is ignored when the socket is kept.
        let config = wtransport::ServerConfig::builder()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .build_with_quic_config(quic);
        let (old, new) = (cert.hash_hex(), next.hash_hex());
        // Both while the endpoint switches: a page reading the hashes now
        // may meet either certificate.
        self.publish(vec![new.clone(), old.clone()]);
        if let Err(source) = self.endpoint.reload_config(config, false) {
            self.publish(vec![old]);
            return Err(ServerError::Io {
                what: "cannot use the new WebTransport certificate".into(),
                source,
            });
        }
        self.publish(vec![new.clone()]);
        tracing::info!(cert_sha256 = %new, "the WebTransport certificate was replaced");
        *cert = next;
        Ok(Some(new))
    }

    fn publish(&self, hashes: Vec<String>) {
        *self
            .hashes
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = hashes;
    }
}

/// Replaces the certificate when it is due.
async fn rotate_loop(rotation: Arc<Rotation>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(err) = rotation.replace(false).await {
            tracing::error!("cannot replace the WebTransport certificate: {err}");
        }
    }
}

async fn accept_loop(
    endpoint: Arc<WtEndpoint>,
    partitions: Partitions,
    admission: Arc<Admission>,
    origins: Arc<SessionOrigins>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            incoming = endpoint.accept() => {
                let ip = crate::core::limits::address_key(incoming.remote_address().ip());
                let validated = incoming.remote_address_validated();
                match admission.admit(ip, validated, std::time::Instant::now()) {
                    Verdict::Accept(pass) => {
                        sessions.spawn(connection::handle_web(
                            partitions.clone(),
                            incoming,
                            pass,
                            origins.clone(),
                        ));
                    }
                    Verdict::Retry => {
                        ::metrics::counter!("chathub_retries_total").increment(1);
                        incoming.retry();
                    }
                    Verdict::Refuse(limit) => {
                        refused(limit);
                        incoming.refuse();
                    }
                }
            }
            // Reap finished sessions so the set does not grow.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    endpoint.close(
        crate::protocol::CloseCode::Shutdown.code().into(),
        b"the hub is shutting down",
    );
    // The sessions hold the hub; they end with the endpoint.
    while sessions.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_one_browsers_take_by_hash_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_rotate(dir.path()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&first.identity.certs[0]).unwrap();
        let validity = parsed.validity();
        let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
        assert!(days < 14, "valid {days} days");
        assert_eq!(
            parsed
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok()),
            Some(x509_parser::oid_registry::OID_EC_P256),
            "an ECDSA P-256 key"
        );
        let again = load_or_rotate(dir.path()).unwrap();
        assert_eq!(first.hash, again.hash, "a certificate not due is kept");
        let written = fs::read_to_string(dir.path().join("webtransport-cert.sha256")).unwrap();
        assert_eq!(written.trim(), first.hash_hex());
        assert!(!first.due(now_unix()));
        assert!(first.due(first.not_after - 3600), "due before it expires");
    }

    #[test]
    fn a_certificate_near_its_end_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::in_dir(dir.path());
        let old = generate_for(&files, Duration::from_secs(2 * 24 * 3600)).unwrap();
        let new = load_or_rotate(dir.path()).unwrap();
        assert_ne!(old.hash, new.hash, "replaced with 2 days left");
        assert!(new.not_after > old.not_after);
        let written = fs::read_to_string(&files.hash).unwrap();
        assert_eq!(written.trim(), new.hash_hex());
    }
}
