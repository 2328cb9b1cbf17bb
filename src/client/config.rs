//! How a client finds and trusts the hub.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::client::ClientError;
use crate::protocol::ALPN;

/// Where the hub is and which certificate to trust. Cheap to clone; build
/// one with [`ClientConfig::builder`].
#[derive(Clone)]
pub struct ClientConfig {
    pub(crate) server: SocketAddr,
    /// Other hubs of the same cluster, tried in turn when one cannot be
    /// reached.
    pub(crate) others: Vec<SocketAddr>,
    pub(crate) server_name: String,
    pub(crate) quic: quinn::ClientConfig,
    pub(crate) endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Starts a configuration for the hub at `server` (UDP address).
    pub fn builder(server: SocketAddr) -> ClientConfigBuilder {
        ClientConfigBuilder {
            server,
            others: Vec::new(),
            server_name: "localhost".into(),
            roots: RootCertStore::empty(),
            idle_timeout: Duration::from_secs(10),
        }
    }

    /// The hub's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Every hub the client may connect to: the first, then those added
    /// with [`ClientConfigBuilder::also`].
    pub fn servers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        std::iter::once(self.server).chain(self.others.iter().copied())
    }

    /// The server name the certificate is checked against.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The same configuration, with every client made from it sharing one
    /// QUIC endpoint (one UDP socket) instead of opening its own: for
    /// programs that open many connections, such as load generators.
    pub fn sharing_endpoint(mut self) -> Result<Self, ClientError> {
        let bind: SocketAddr = if self.server.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = crate::udp::endpoint(bind, crate::udp::CLIENT_BUFFER_BYTES, None)?;
        endpoint.set_default_client_config(self.quic.clone());
        self.endpoint = Some(endpoint);
        Ok(self)
    }

    /// The QUIC settings (TLS, ALPN, transport), for tools that speak the
    /// protocol on their own connections.
    pub fn quic(&self) -> &quinn::ClientConfig {
        &self.quic
    }
}

/// Builds a [`ClientConfig`].
#[derive(Debug)]
pub struct ClientConfigBuilder {
    server: SocketAddr,
    others: Vec<SocketAddr>,
    server_name: String,
    roots: RootCertStore,
    idle_timeout: Duration,
}

impl ClientConfigBuilder {
    /// Another hub of the same cluster (all serving the same certificate
    /// name): when the hub the client is connected to cannot be reached,
    /// the client tries the next. Any hub of a cluster sends a client on
    /// to the one serving its chats (`Elsewhere`), which the client
    /// follows at once.
    pub fn also(mut self, server: SocketAddr) -> Self {
        if server != self.server && !self.others.contains(&server) {
            self.others.push(server);
        }
        self
    }

    /// The name the hub's certificate must be valid for; `localhost` by
    /// default, which the hub's generated certificate is.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// How long a silent connection counts as alive (default 10 s). The
    /// client sends keep-alives at a third of it, and reconnects once it has
    /// heard nothing for this long.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.clamp(Duration::from_millis(300), Duration::from_secs(600));
        self
    }

    /// Trusts the certificates in a PEM file, such as the hub's generated
    /// `chathub-data/cert.pem`.
    pub fn trust_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)
            .map_err(|err| ClientError::Config(format!("cannot read {}: {err}", path.display())))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| ClientError::Config(format!("{}: {err}", path.display())))?;
        if certs.is_empty() {
            return Err(ClientError::Config(format!(
                "{}: no certificate",
                path.display()
            )));
        }
        certs.into_iter().try_fold(self, Self::trust_der)
    }

    /// Trusts one DER certificate.
    pub fn trust_der(mut self, cert: CertificateDer<'static>) -> Result<Self, ClientError> {
        self.roots
            .add(cert)
            .map_err(|err| ClientError::Config(format!("unusable certificate: {err}")))?;
        Ok(self)
    }

    /// The configuration: TLS 1.3 with ring, ALPN `chathub/1`, keep-alives.
    pub fn build(self) -> Result<ClientConfig, ClientError> {
        if self.roots.is_empty() {
            return Err(ClientError::Config(
                "no trusted certificate; use trust_pem_file".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|err| ClientError::Config(err.to_string()))?
            .with_root_certificates(self.roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|err| ClientError::Config(err.to_string()))?;
        let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_uni_streams(4096u32.into())
            // Typing indicators: a few small datagrams wait at most.
            .datagram_receive_buffer_size(Some(16 * 1024))
            .datagram_send_buffer_size(16 * 1024)
            .keep_alive_interval(Some(self.idle_timeout / 3))
            .max_idle_timeout(Some(
                self.idle_timeout
                    .try_into()
                    .map_err(|err| ClientError::Config(format!("idle timeout: {err}")))?,
            ));
        quic.transport_config(Arc::new(transport));
        Ok(ClientConfig {
            server: self.server,
            others: self.others,
            server_name: self.server_name,
            quic,
            endpoint: None,
        })
    }
}
