//! A connection's datagrams: typing indicators from the client, paced per
//! connection and passed to the hub, and the hub's sent back as they come.
//! None of them is stored or resent, and none closes the connection: one
//! over the pace, malformed, or not the client's to send is dropped.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;

use crate::actors::sink::Signal;
use crate::core::{Limit, Limits, Timestamp, TokenBucket};
use crate::protocol::{ClientDatagram, ServerDatagram, decode_datagram, encode_datagram};
use crate::server::requests::{Role, Session};

use super::Link;

/// The longest a connection stops reading datagrams at a time.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The most datagrams dropped at once after a pause: more than QUIC's
/// receive buffer (`server/tls.rs`) holds.
const MAX_STALE: u64 = 1024;

/// The datagrams a connection takes in, against its pace.
pub(super) struct Datagrams {
    pace: TokenBucket,
    /// How long reading stops once the pace is spent: until about one
    /// token is back.
    pause: Duration,
    /// Reading stopped, until `resume_at`.
    paused: bool,
    resume_at: Pin<Box<tokio::time::Sleep>>,
    refused: metrics::Counter,
    malformed: metrics::Counter,
}

impl Datagrams {
    /// A full pace of `typing_burst`, refilled at `typing_per_sec`.
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            pace: TokenBucket::new(limits.typing_per_sec, limits.typing_burst, Timestamp::now()),
            pause: Duration::try_from_secs_f64(1.0 / limits.typing_per_sec)
                .map_or(MAX_PAUSE, |pause| pause.min(MAX_PAUSE)),
            paused: false,
            resume_at: Box::pin(tokio::time::sleep(Duration::ZERO)),
            refused: metrics::counter!("chathub_limit_refusals_total", "limit" => Limit::Typing.name()),
            malformed: metrics::counter!("chathub_protocol_errors_total", "kind" => "BadDatagram"),
        }
    }

    /// Whether reading datagrams stopped for now: the pace is spent.
    pub(super) fn paused(&self) -> bool {
        self.paused
    }

    /// Takes one datagram from the client. It is charged to the pace
    /// before it is even decoded; over the pace it is dropped and counted
    /// as a refusal, and reading stops until about a token is back:
    /// meanwhile QUIC keeps the newest few (its small receive buffer) and
    /// drops the rest, so a flood costs the connection task next to
    /// nothing. A customer signals only chats its connection started or
    /// resumed; the chat's actor checks the rest (an agent must hold the
    /// chat).
    pub(super) fn received(&mut self, session: &Session, bytes: &[u8]) {
        if !self.pace.take(Timestamp::now()) {
            self.refused.increment(1);
            self.paused = true;
            let at = tokio::time::Instant::now() + self.pause;
            self.resume_at.as_mut().reset(at);
            return;
        }
        let datagram = match decode_datagram::<ClientDatagram>(bytes) {
            Ok(datagram) => datagram,
            Err(err) => {
                tracing::debug!("bad datagram dropped: {err}");
                self.malformed.increment(1);
                return;
            }
        };
        match datagram {
            ClientDatagram::Typing { chat } => {
                if matches!(session.role, Role::Customer) && !session.started.contains(&chat) {
                    return;
                }
                if let Role::Agent(agent) = &session.role {
                    session.hub.touch(agent);
                }
                session.hub.typing(session.caller(), chat);
            }
        }
    }

    /// Waits out a pause, then drops what arrived meanwhile (QUIC kept the
    /// newest few), counted as refusals, so what is read next is fresh.
    /// Cancel-safe: the pause's end stays where it was.
    pub(super) async fn resume(&mut self, conn: &Link) {
        self.resume_at.as_mut().await;
        self.paused = false;
        let mut dropped = 0;
        while dropped < MAX_STALE
            && let Some(Ok(_)) = conn.read_datagram().now_or_never()
        {
            dropped += 1;
        }
        self.refused.increment(dropped);
    }
}

/// Sends one of the hub's datagrams. One that cannot go (the client takes
/// no datagrams, it does not fit the path, the connection is lost) is
/// dropped.
pub(super) fn send(conn: &Link, signal: Signal) {
    let datagram = match signal {
        Signal::Typing { chat, from } => ServerDatagram::Typing { chat, from },
    };
    match encode_datagram(&datagram) {
        Ok(bytes) => {
            if let Err(err) = conn.send_datagram(Bytes::from(bytes)) {
                tracing::debug!("datagram not sent: {err}");
            }
        }
        Err(err) => tracing::debug!("datagram not encoded: {err}"),
    }
}
