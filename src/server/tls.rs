//! The server's certificate: configured files, or a self-signed pair
//! generated into the data folder on first start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::protocol::ALPN;

/// Why the server's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The self-signed certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate, key or settings.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain, its key, and the PEM file clients should trust.
pub struct Identity {
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// Where the leaf certificate is, as PEM.
    pub cert_path: PathBuf,
}

/// The names the generated certificate is valid for.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::File {
        path: path.to_owned(),
        source,
    }
}

/// Loads the configured pair, or the generated pair from `data_dir`,
/// generating it first if it does not exist.
pub fn load_or_create(
    data_dir: &Path,
    configured: Option<&TlsFiles>,
) -> Result<Identity, TlsError> {
    let (cert_path, key_path) = match configured {
        Some(files) => (files.cert.clone(), files.key.clone()),
        None => {
            let cert = data_dir.join("cert.pem");
            let key = data_dir.join("key.pem");
            if !cert.exists() || !key.exists() {
                generate(data_dir, &cert, &key)?;
            }
            (cert, key)
        }
    };
    let cert_pem = fs::read(&cert_path).map_err(file_err(&cert_path))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            path: cert_path.clone(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert_path,
            reason: "no certificate in the file".into(),
        });
    }
    let key_pem = fs::read(&key_path).map_err(file_err(&key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::Pem {
        path: key_path.clone(),
        reason: err.to_string(),
    })?;
    Ok(Identity {
        certs,
        key,
        cert_path,
    })
}

fn generate(data_dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(data_dir).map_err(file_err(data_dir))?;
    let names: Vec<String> = SELF_SIGNED_NAMES
        .iter()
        .map(|name| name.to_string())
        .collect();
    let pair = rcgen::generate_simple_self_signed(names)?;
    write_private(key_path, pair.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert_path, pair.cert.pem()).map_err(file_err(cert_path))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate");
    Ok(())
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_err(path))?;
    // `mode` applies only to a file it creates; one already there is made
    // private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(file_err(path))?;
    }
    file.write_all(bytes).map_err(file_err(path))
}

/// Bytes of datagrams a connection holds at most, received and not read
/// yet, or waiting to be sent.
const DATAGRAM_BUFFER_BYTES: usize = 16 * 1024;

/// The QUIC server configuration: TLS 1.3 with ring, ALPN `chathub/1`.
///
/// Clients may open bidirectional streams (the control stream and one per
/// file) but no unidirectional ones: the hub only opens those. What a
/// client may send ahead of the hub reading it is bounded per stream and
/// per connection by `limits`, and so are the datagrams it may send
/// (typing indicators): a small buffer, then the oldest are dropped.
pub fn server_config(
    identity: &Identity,
    limits: &crate::core::Limits,
) -> Result<quinn::ServerConfig, TlsError> {
    quic_config(identity, limits, ALPN, 0)
}

/// A QUIC server configuration for `alpn`, bounded by `limits`; clients
/// may open `client_uni_streams` unidirectional streams at once (HTTP/3
/// needs three of its own, chathub/1 none).
pub(crate) fn quic_config(
    identity: &Identity,
    limits: &crate::core::Limits,
    alpn: &[u8],
    client_uni_streams: u32,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|err| TlsError::Rustls(rustls::Error::General(err.to_string())))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(16u32.into())
        .max_concurrent_uni_streams(client_uni_streams.into())
        .stream_receive_window(limits.stream_window.into())
        .receive_window(limits.connection_window.into())
        // Typing indicators: a few small datagrams wait at most, either
        // way; beyond that the oldest are dropped.
        .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES))
        .datagram_send_buffer_size(DATAGRAM_BUFFER_BYTES)
        .max_idle_timeout(Some(
            Duration::from_secs(30)
                .try_into()
                .expect("30 s is a valid idle timeout"),
        ));
    config.transport_config(Arc::new(transport));
    // A client whose address changes (another network, a NAT's new
    // mapping) keeps its connection: QUIC validates the new path and goes
    // on, with nothing to resume (`tests/migration.rs`).
    config.migration(true);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_pair_is_reused_and_usable() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), None).unwrap();
        let second = load_or_create(dir.path(), None).unwrap();
        assert_eq!(
            first.certs, second.certs,
            "the second start reuses the pair"
        );
        assert_eq!(first.cert_path, dir.path().join("cert.pem"));
        server_config(&first, &crate::core::Limits::default()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
    }

    #[test]
    fn a_garbage_certificate_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        fs::write(&files.cert, "not a certificate").unwrap();
        fs::write(&files.key, "not a key").unwrap();
        let err = load_or_create(dir.path(), Some(&files))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("c.pem"), "{err}");
    }
}
