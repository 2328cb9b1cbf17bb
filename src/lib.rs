//! chathub: a contact-center chat hub.
//!
//! Customers start chats on a channel; chats wait in the channel's queue;
//! agents take the next chat or pick one; both sides chat until the chat
//! ends. Clients speak a binary protocol over QUIC; see [`client`] for the
//! SDK and [`server`] for running a hub. `ARCHITECTURE.md` maps the layers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "hub")]
pub mod actors;
pub mod client;
#[cfg(feature = "hub")]
pub mod cluster;
#[cfg(feature = "hub")]
pub mod config;
pub mod core;
#[cfg(feature = "hub")]
pub mod process;
pub mod protocol;
#[cfg(feature = "hub")]
pub mod server;
#[cfg(feature = "hub")]
pub mod store;
pub mod udp;
#[cfg(feature = "hub")]
pub mod webhook;

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "hub"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
