//! Hubs as processes of their own (`chathub serve`), for tests that kill,
//! pause or stop them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A `chathub serve` process, logging into a file beside its
/// configuration; killed when dropped.
pub(crate) struct HubProcess {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl HubProcess {
    /// A hub named `name` in `dir`, configured with `toml`.
    pub(crate) fn spawn_with(dir: &Path, name: &str, toml: &str) -> Self {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        // The hub logs to its standard output; errors go to the other.
        let child = Command::new(env!("CARGO_BIN_EXE_chathub"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("the hub binary starts");
        Self { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|err| format!("(no log at {}: {err})", self.log.display()))
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
