//! `chathub`: run the hub.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chathub::config::Config;
use chathub::core::AgentId;
use chathub::server::Server;
use clap::{Parser, Subcommand, ValueEnum};

/// A contact-center chat hub over QUIC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the hub (embedded defaults without --config). `CHATHUB_*`
    /// environment variables override fields: `CHATHUB_LISTEN`,
    /// `CHATHUB_LIMITS__CHATS_PER_IP`, ... Logging follows RUST_LOG
    /// (default: info).
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Turns the Prometheus endpoint off.
        #[arg(long)]
        no_metrics: bool,
        /// How log lines are written.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Connects a customer and an agent to a running hub and holds a short
    /// chat between them.
    Demo {
        /// The running hub's configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Prints a new agent token, and the `token_hash` line for the agent's
    /// `[[agent]]` table.
    Token,
    /// Reads and checks a configuration file (with the `CHATHUB_*`
    /// overrides of this environment) and says what is wrong, if anything.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Asks the hub running on this configuration's data folder to read
    /// its configuration file again (as SIGHUP does) and prints what
    /// changed, or why the file was refused (the hub then runs on as it
    /// was). Channels and agents change at once; connections and chats
    /// stay.
    Reload {
        /// The configuration file (to find the data folder; the hub reads
        /// the file it was started with).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// For people (colours only on a terminal).
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// mimalloc: the hub allocates and frees many small buffers per message
/// across threads, where it spends less time than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            config,
            no_metrics,
            log_format,
        } => serve(config, no_metrics, log_format),
        Command::Demo { config } => demo(config),
        Command::Token => {
            let token = chathub::server::new_token()?;
            let hash = chathub::actors::TokenDigest::of(&token).to_config();
            println!("token (give it to the agent):       {token}");
            println!("for the agent's [[agent]] table:    token_hash = \"{hash}\"");
            Ok(())
        }
        Command::Reload { config } => reload(config),
        Command::CheckConfig { file } => {
            let config = Config::load_with_env(Some(&file))?;
            println!(
                "{}: valid ({} channels, {} agents)",
                file.display(),
                config.channels.len(),
                config.agents.len()
            );
            Ok(())
        }
    }
}

fn load(config_path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load_with_env(config_path.map(PathBuf::as_path))?)
}

/// Logs to standard output, as text (coloured only on a terminal) or JSON.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
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

fn serve(
    config_path: Option<PathBuf>,
    no_metrics: bool,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    init_logging(log_format);
    chathub::process::disable_huge_pages();
    let config = load(config_path.as_ref())?;
    runtime(config.runtime.workers)?.block_on(async {
        if config.metrics.enabled && !no_metrics {
            chathub::server::metrics::install(config.metrics.listen)?;
            tracing::info!("metrics on http://{}/metrics", config.metrics.listen);
        }
        // Taken over before the start (which may take seconds to recover a
        // large store), so a SIGHUP meanwhile does not end the process; it
        // is acted on once the hub runs. Containers and service managers
        // stop a process with SIGTERM.
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot wait for SIGHUP")?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot wait for SIGTERM")?;
        let server = Server::start(&config).await?;
        tracing::info!(
            "chathub listening on {}/udp (QUIC, ALPN chathub/1); clients trust {}",
            server.local_addr(),
            server.cert_path().display()
        );
        if let Some(web) = server.web_addr() {
            tracing::info!("the chat widget: open http://{web}/ (a demo page) or add http://{web}/widget.js to a page");
            tracing::info!("the agent console: open http://{web}/console and sign in with an agent's id and token");
        }
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
        // Without the socket (a data folder path too long for one, say),
        // SIGHUP still reloads.
        let control = match chathub::server::control::ControlSocket::bind(&config.data_dir) {
            Ok(control) => Some(control),
            Err(err) => {
                tracing::warn!(
                    "no control socket in {} ({err}): `chathub reload` cannot reach this hub; SIGHUP still reloads",
                    config.data_dir.display()
                );
                None
            }
        };
        let config_path = config_path.as_deref();
        loop {
            tokio::select! {
                stop = tokio::signal::ctrl_c() => {
                    stop.context("cannot wait for Ctrl-C")?;
                    tracing::info!("shutting down");
                    drop(control);
                    server.shutdown().await;
                    return anyhow::Ok(());
                }
                _ = terminate.recv() => {
                    tracing::info!("terminated: shutting down");
                    drop(control);
                    server.shutdown().await;
                    return anyhow::Ok(());
                }
                reason = server.failed() => {
                    // Every acknowledged write is in the commit log: a
                    // restart replays it and carries on. Exit so a
                    // supervisor restarts the hub, rather than run on unable
                    // to store anything. (In a cluster only the lobby's own
                    // store counts here: a partition whose store failed is
                    // given up and taken again.)
                    tracing::error!("the store failed, exiting so a restart can recover: {reason}");
                    anyhow::bail!("the store failed: {reason}")
                }
                _ = hangup.recv() => {
                    let _ = reload_logged(&server, config_path).await;
                }
                request = async {
                    match &control {
                        Some(control) => control.next_reload().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let outcome = reload_logged(&server, config_path).await;
                    // Answered on the side: a caller that does not read
                    // holds up nothing here.
                    tokio::spawn(request.answer(outcome));
                }
            }
        }
    })
}

/// Reads the configuration again and logs what came of it.
async fn reload_logged(
    server: &Server,
    config_path: Option<&std::path::Path>,
) -> Result<String, String> {
    match server.reload_from(config_path).await {
        Ok(reloaded) => {
            tracing::info!("configuration reloaded: {reloaded}");
            Ok(reloaded.to_string())
        }
        Err(err) => {
            tracing::error!("configuration refused, running on as before: {err}");
            Err(err.to_string())
        }
    }
}

/// `chathub reload`: asks the running hub to reload and prints its answer.
fn reload(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(config_path.as_ref())
        .context("the hub was not asked to reload; it runs on as before")?;
    let answer =
        runtime(Some(1))?.block_on(chathub::server::control::request_reload(&config.data_dir));
    match answer {
        Ok(changed) => {
            println!("reloaded: {changed}");
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::InvalidData => {
            bail!("the hub refused the configuration and runs on as before: {err}")
        }
        Err(err) => Err(err.into()),
    }
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
            recent
                .first()
                .map(|row| (row.session.chat, row.session.events))
        );
        anyhow::Ok(())
    })
}
