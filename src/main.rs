//! `chathub`: run the hub.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chathub::config::Config;
use chathub::core::AgentId;
use chathub::server::Server;

const USAGE: &str = "\
chathub — a contact-center chat hub over QUIC

usage:
  chathub serve [--config FILE] [--no-metrics]
                                  run the hub (embedded defaults without --config;
                                  --no-metrics turns the Prometheus endpoint off)
  chathub demo  [--config FILE]   connect a customer and an agent to a running hub
                                  and hold a short chat between them
  chathub token                   print a new agent token, and the token_hash line
                                  to put in the agent's [[agent]] table
  chathub --help | --version

Logging follows RUST_LOG (default: info).";

/// mimalloc: the hub allocates and frees many small buffers per message
/// across threads, where it spends less time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => {
            let options = options(args)?;
            serve(options.config, options.no_metrics)
        }
        Some("demo") => demo(options(args)?.config),
        Some("token") => {
            let token = chathub::server::new_token()?;
            let hash = chathub::actors::TokenDigest::of(&token).to_config();
            println!("token (give it to the agent):       {token}");
            println!("for the agent's [[agent]] table:    token_hash = \"{hash}\"");
            Ok(())
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

/// A command's options.
struct Options {
    config: Option<PathBuf>,
    no_metrics: bool,
}

/// Reads `[--config FILE] [--no-metrics]`.
fn options(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let mut options = Options {
        config: None,
        no_metrics: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                options.config = Some(PathBuf::from(args.next().context("--config needs a file")?))
            }
            "--no-metrics" => options.no_metrics = true,
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    Ok(options)
}

fn load(config_path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(config_path: Option<PathBuf>, no_metrics: bool) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    chathub::process::disable_huge_pages();
    let config = load(config_path.as_ref())?;
    runtime(config.runtime.workers)?.block_on(async {
        if config.metrics.enabled && !no_metrics {
            chathub::server::metrics::install(config.metrics.listen)?;
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
        tokio::select! {
            stop = tokio::signal::ctrl_c() => {
                stop.context("cannot wait for Ctrl-C")?;
                tracing::info!("shutting down");
                server.shutdown().await;
                anyhow::Ok(())
            }
            reason = server.failed() => {
                // Every acknowledged write is in the commit log: a restart
                // replays it and carries on. Exit so a supervisor restarts
                // the hub, rather than run on unable to store anything.
                tracing::error!("the store failed, exiting so a restart can recover: {reason}");
                anyhow::bail!("the store failed: {reason}")
            }
        }
    })
}

/// The SDK example of the README, run against the hub the configuration
/// describes: a customer starts a chat, the first agent answers it, they
/// exchange a message each, and the agent ends the chat.
fn demo(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    use chathub::client::{AgentClient, ClientConfig, CustomerClient, Event, Started};
    use chathub::core::{ChatEventKind, Customer, Status};

    let config = load(config_path.as_ref())?;
    let agent = config
        .agents
        .first()
        .context("the configuration has no agent")?;
    let token = match (&agent.token, &agent.token_hash) {
        (Some(token), _) => token.clone(),
        (None, Some(_)) => bail!(
            "agent {:?} is configured with token_hash only: the demo needs the token itself (configure an agent with a generated token, or with `token`)",
            agent.id
        ),
        (None, None) => {
            let path = config
                .data_dir
                .join("agent-tokens")
                .join(format!("{}.token", agent.id));
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} (is the hub running?)", path.display()))?
                .trim()
                .to_owned()
        }
    };
    let cert = match &config.tls {
        Some(tls) => tls.cert.clone(),
        None => config.data_dir.join("cert.pem"),
    };
    let channel = config
        .agent_channels(agent)
        .first()
        .cloned()
        .context("the agent has no channel")?;
    runtime(None)?.block_on(async {
        let client = ClientConfig::builder(config.listen)
            .trust_pem_file(&cert)?
            .build()?;
        let agent = AgentClient::connect(&client, agent.id.as_str(), &token).await?;
        agent.set_status(Status::Present).await?;

        let customer = CustomerClient::connect(&client).await?;
        let ada = Customer {
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
        };
        let started = customer
            .start_chat(channel.clone(), ada, "Hi! Where is my parcel? 📦")
            .await?;
        let chat = match started {
            Started::Queued { chat, waiting } => {
                println!("customer: started {chat} ({waiting} waiting)");
                chat
            }
            Started::Offline(form) => bail!(
                "the channel answered with its offline form: {}",
                form.message
            ),
        };

        let answered = agent.get_next(channel).await?;
        println!(
            "agent {}: answered {} — {:?}",
            agent.profile().id,
            answered.chat,
            answered.first_message
        );
        agent
            .send(answered.chat, "Hello Ada! It ships today 🚚")
            .await?;

        while let Some(event) = customer.next_event().await {
            if let Event::Chat(event) = event {
                if let ChatEventKind::Message { from, text, .. } = &event.kind {
                    println!("customer sees #{} from {from:?}: {text}", event.seq);
                    if text.contains("ships today") {
                        break;
                    }
                }
            }
        }
        customer.send(chat, "Thank you 🙏").await?;
        agent.end_chat(answered.chat).await?;
        let recent = agent.recent_sessions(None, 1).await?;
        println!(
            "recent sessions: {:?}",
            recent.first().map(|row| (row.chat, row.events))
        );
        anyhow::Ok(())
    })
}
