//! `chathub`: run the hub.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chathub::config::Config;
use chathub::core::AgentId;
use chathub::server::Server;

const USAGE: &str = "\
chathub — a contact-center chat hub over QUIC

usage:
  chathub serve [--config FILE]   run the hub (embedded defaults without --config)
  chathub --help | --version

Logging follows RUST_LOG (default: info).";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => {
            let mut config_path = None;
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--config" | "-c" => {
                        config_path =
                            Some(PathBuf::from(args.next().context("--config needs a file")?));
                    }
                    other => bail!("unknown argument {other:?}\n\n{USAGE}"),
                }
            }
            serve(config_path)
        }
        Some("--version" | "-V") => {
            println!("chathub {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        if config.metrics.enabled {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(config.metrics.listen)
                .install()
                .with_context(|| format!("cannot serve metrics on {}", config.metrics.listen))?;
            tracing::info!("metrics on http://{}/metrics", config.metrics.listen);
        }
        let server = Server::start(&config).await?;
        tracing::info!(
            "chathub listening on {}/udp (QUIC, ALPN chathub/1); clients trust {}",
            server.local_addr(),
            server.cert_path().display()
        );
        for agent in &config.agents {
            if agent.token.is_none() {
                let path = server.agent_token_path(&AgentId::new(agent.id.as_str()));
                tracing::info!(
                    "agent {:?} signs in with the token in {}",
                    agent.id,
                    path.display()
                );
            }
        }
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        tracing::info!("shutting down");
        server.shutdown().await;
        anyhow::Ok(())
    })
}
