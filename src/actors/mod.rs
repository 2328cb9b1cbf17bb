//! The actors that own the hub's live state, in one ractor supervision tree.
//!
//! ```text
//! Hub (root supervisor)
//! ├── Channel  one per configured channel: its queue and its watchers
//! ├── Chat     one per live chat: its transcript and participants
//! └── Agent    one per signed-in agent: fan-out to that agent's connections
//! ```
//!
//! Connection tasks talk to the actors through the [`Hub`] handle, which
//! keeps lock-free maps from ids to actor refs so a message to a chat never
//! passes through a shared bottleneck. Actors push events to connections
//! through [`EventSink`]s. Business rules live in [`crate::core`]; the actors
//! hold the core's state and carry out what it decides.

pub mod agent;
pub mod channel;
pub mod chat;
mod error;
pub mod hub;
mod origins;
mod pace;
pub mod sink;
pub mod stages;

pub use chat::Receipt;
pub use error::{HubError, count_refusal};
pub use hub::{
    AgentConfig, Caller, ChatStart, Hub, HubConfig, MonitorUpdate, MonitorWatch, Reconfigured,
    TokenDigest,
};
pub use sink::{ConnId, EventSink, Outbound, Signal};
