//! The SDK: typed async clients for customers and agents.
//!
//! Both clients are cheap to clone handles on one QUIC connection. Requests
//! are `async fn`s that resolve to the hub's answer or a [`ClientError`]
//! whose [`code`](ClientError::code) tells a refusal apart; events the hub
//! pushes (chat messages, queue changes) come from `next_event`.
//!
//! ```no_run
//! use chathub::client::{AgentClient, ClientConfig, Customer, CustomerClient, Status};
//!
//! # async fn demo() -> Result<(), chathub::client::ClientError> {
//! let config = ClientConfig::builder("127.0.0.1:4433".parse().unwrap())
//!     .trust_pem_file("chathub-data/cert.pem")?
//!     .build()?;
//! let token = std::fs::read_to_string("chathub-data/agent-tokens/agent.token")?;
//! let agent = AgentClient::connect(&config, "agent", token.trim()).await?;
//! agent.set_status(Status::Present).await?;
//!
//! let customer = CustomerClient::connect(&config).await?;
//! let who = Customer { name: Some("Ada".into()), email: Some("ada@example.com".into()) };
//! let started = customer.start_chat("support", who, "Hi! My order is late 📦").await?;
//! let chat = agent.get_next("support").await?;
//! assert_eq!(Some(chat.chat), started.chat());
//! agent.send(chat.chat, "Hello Ada, let me check 👀").await?;
//! while let Some(event) = customer.next_event().await {
//!     println!("{event:?}");
//! #   break;
//! }
//! agent.end_chat(chat.chat).await?;
//! # Ok(()) }
//! ```

mod agent;
mod config;
mod customer;
mod error;
mod incoming;
mod link;

pub use agent::AgentClient;
pub use config::{ClientConfig, ClientConfigBuilder};
pub use customer::{CustomerClient, Started};
pub use error::ClientError;
pub use incoming::IncomingList;

/// The values the clients' methods take and answer, so an application
/// needs nothing but this module.
pub use crate::core::{
    ActiveChat, AgentId, AgentLoad, Alert, Assignment, ChannelId, ChannelMonitor, ChatEvent,
    ChatEventKind, ChatId, ContactCard, ContactChat, Customer, FileId, FileRef, FormField,
    Identity, ItemDraft, ItemId, ItemKind, ItemRef, KnowledgeItem, OfflineForm, Party, Priority,
    QueueChange, QueueRow, QueueUpdate, RatedSession, Rating, Scope, SessionSummary, Status,
    TaggedSession, Ticket, TicketId, TicketSource, TicketSummary, Timestamp, WaitingChat,
    apply_edits,
};
pub use crate::protocol::{AgentProfile, CloseCode, ErrorCode, ErrorFrame, Event};
