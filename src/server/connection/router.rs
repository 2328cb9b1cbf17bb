//! Events to the streams they belong on: one per chat, one for queue
//! updates, alerts and offers, written from the connection task while they take
//! the bytes at once and by a writer task of their own once they do not;
//! and one per watched channel monitor, written by a task of its own.

use super::*;
use crate::actors::{MonitorUpdate, MonitorWatch};

/// Routes events to the stream they belong on.
///
/// An event is written straight onto its stream from the connection task
/// while the stream takes it at once; the first time it does not (flow
/// control, a client not reading that chat), the stream and the rest are
/// handed to a writer task of their own, so one blocked chat never holds up
/// the connection. Writing in the connection task saves a task hop per
/// event and lets QUIC pack an event with the response that the same
/// commit produced into one datagram.
pub(super) struct Router {
    conn: Link,
    /// The agent this connection belongs to, if it is an agent's.
    agent: Option<AgentId>,
    chats: HashMap<ChatId, Lane>,
    general: Option<Lane>,
    buf: Vec<u8>,
}

/// Where one stream's events go.
pub(super) enum Lane {
    /// Written from the connection task.
    Direct(SendStream),
    /// Queued for the stream's writer task.
    Queued(mpsc::Sender<Outbound>),
}

impl Router {
    pub(super) fn new(conn: Link, agent: Option<AgentId>) -> Self {
        Self {
            conn,
            agent,
            chats: HashMap::new(),
            general: None,
            // Grown by the first events: an idle connection holds none.
            buf: Vec::new(),
        }
    }

    /// Whether `event` is the last this connection hears of its chat for
    /// now: the chat ended, or it left this agent. A later event (a return,
    /// a transfer back) opens a new stream; the SDK puts streams back in
    /// seq order.
    pub(super) fn last_for_now(&self, event: &ChatEventKind) -> bool {
        match event {
            ChatEventKind::Ended { .. } => true,
            ChatEventKind::Requeued { .. } => self.agent.is_some(),
            ChatEventKind::TransferredToAgent { to, .. } => {
                self.agent.as_ref().is_some_and(|me| me != to)
            }
            ChatEventKind::TransferDeclined { by, .. } => self.agent.as_ref() == Some(by),
            _ => false,
        }
    }

    /// Sends `event` on its stream; an error means the stream failed or its
    /// writer is too far behind, and the connection should close.
    pub(super) fn route(&mut self, event: Outbound) -> Result<(), HubError> {
        // Every chat event a customer receives passes here: one for agents
        // only (a note) goes as a placeholder that keeps the seqs
        // consecutive and says nothing of it.
        let event = match &event {
            Outbound::Chat(chat_event) if self.agent.is_none() => chat_event
                .withheld_for_customer()
                .map_or(event, |withheld| {
                    Outbound::Chat(std::sync::Arc::new(withheld))
                }),
            _ => event,
        };
        match &event {
            Outbound::Chat(chat_event) => {
                let chat = chat_event.chat;
                let ended = self.last_for_now(&chat_event.kind);
                let lane = self.chats.remove(&chat);
                let lane = send(&self.conn, lane, event, &mut self.buf)?;
                match (lane, ended) {
                    // The last event for now: finish the stream (a writer
                    // task finishes it once its queue is written).
                    (Some(Lane::Direct(mut stream)), true) => {
                        let _ = stream.finish();
                    }
                    (Some(lane), false) => {
                        self.chats.insert(chat, lane);
                    }
                    (_, _) => {}
                }
            }
            Outbound::Queue(_)
            | Outbound::Alert(_)
            | Outbound::AlertCleared { .. }
            | Outbound::Offered(_)
            | Outbound::OfferWithdrawn { .. }
            | Outbound::QueuePosition(_)
            | Outbound::StatusChanged { .. } => {
                let lane = self.general.take();
                self.general = send(&self.conn, lane, event, &mut self.buf)?;
            }
        }
        Ok(())
    }
}

/// Sends `event` on `lane` (opening the stream if there is none yet) and
/// returns the lane to keep; `None` once the connection is gone.
pub(super) fn send(
    conn: &Link,
    lane: Option<Lane>,
    event: Outbound,
    buf: &mut Vec<u8>,
) -> Result<Option<Lane>, HubError> {
    let full = |_| HubError::Unavailable("event stream full".into());
    let lane = match lane {
        Some(lane) => lane,
        None => match conn.open_uni_now() {
            Some(Ok(stream)) => Lane::Direct(stream),
            // Closing: nothing more is sent anyway.
            Some(Err(_)) => return Ok(None),
            // No stream credit yet: the writer task waits for it.
            None => Lane::Queued(spawn_writer(conn.clone(), None, Vec::new())),
        },
    };
    match lane {
        Lane::Queued(tx) => {
            tx.try_send(event).map_err(full)?;
            Ok(Some(Lane::Queued(tx)))
        }
        Lane::Direct(mut stream) => {
            buf.clear();
            encode_event(&event, buf);
            match stream.write(buf).now_or_never() {
                Some(Ok(written)) if written == buf.len() => Ok(Some(Lane::Direct(stream))),
                // The stream took part or none of it: from now on its own
                // task writes the rest and what follows, in order.
                Some(Ok(written)) => {
                    let rest = buf[written..].to_vec();
                    Ok(Some(Lane::Queued(spawn_writer(
                        conn.clone(),
                        Some(stream),
                        rest,
                    ))))
                }
                None => Ok(Some(Lane::Queued(spawn_writer(
                    conn.clone(),
                    Some(stream),
                    buf.clone(),
                )))),
                // The client stopped the stream, or the connection is
                // closing: its later events cannot follow this one on a new
                // stream without a gap, so the connection closes and the
                // client resumes from its last seq.
                Some(Err(err)) => Err(HubError::Unavailable(format!("event stream failed: {err}"))),
            }
        }
    }
}

/// Starts a writer task for one stream: it opens the stream if `stream` is
/// `None`, writes `pending`, then the events that come.
pub(super) fn spawn_writer(
    conn: Link,
    stream: Option<SendStream>,
    pending: Vec<u8>,
) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(STREAM_EVENTS);
    tokio::spawn(write_stream(conn, stream, pending, rx));
    tx
}

pub(super) fn encode_event(event: &Outbound, buf: &mut Vec<u8>) {
    let frame = ServerEventRef::Event(match event {
        Outbound::Chat(event) => EventRef::Chat(event),
        Outbound::Queue(update) => EventRef::Queue(update),
        Outbound::Alert(alert) => EventRef::Alert(alert),
        Outbound::AlertCleared { channel, chat } => EventRef::AlertCleared { channel, chat },
        Outbound::Offered(offer) => EventRef::Offered(offer),
        Outbound::OfferWithdrawn {
            channel,
            chat,
            reason,
        } => EventRef::OfferWithdrawn {
            channel,
            chat,
            reason,
        },
        Outbound::QueuePosition(place) => EventRef::QueuePosition(place),
        Outbound::StatusChanged { status, by } => EventRef::StatusChanged { status, by },
    });
    if let Err(err) = encode(&frame, buf) {
        tracing::error!("cannot encode an event: {err}");
    }
}

/// Writes `pending` and then the events of `rx` on `stream` (opened here if
/// `None`), in order, in batches; finishes the stream when `rx` closes.
pub(super) async fn write_stream(
    conn: Link,
    stream: Option<SendStream>,
    pending: Vec<u8>,
    mut rx: mpsc::Receiver<Outbound>,
) {
    let mut stream = match stream {
        Some(stream) => stream,
        None => match conn.open_uni().await {
            Ok(stream) => stream,
            Err(_) => return,
        },
    };
    if stream.write_all(&pending).await.is_err() {
        return;
    }
    let mut buf = Vec::with_capacity(4096);
    while let Some(event) = rx.recv().await {
        buf.clear();
        encode_event(&event, &mut buf);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(event) => encode_event(&event, &mut buf),
                Err(_) => break,
            }
        }
        if stream.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = stream.finish();
}

/// Writes a monitor watch's pictures on a stream of its own, opened with
/// the first: each time the stream has taken one, the newest picture is
/// written next, so a client that reads slowly skips pictures and the hub
/// holds one per watch at most. A watch the hub stopped ends with
/// `MonitorStopped`; every end finishes the stream.
pub(super) async fn forward_monitor(conn: Link, mut watch: MonitorWatch) {
    let mut stream: Option<SendStream> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let update = watch.next().await;
        buf.clear();
        let event = match &update {
            MonitorUpdate::Picture(picture) => EventRef::Monitor(picture),
            MonitorUpdate::Stopped => EventRef::MonitorStopped {
                channel: watch.channel(),
            },
            MonitorUpdate::Ended => break,
        };
        if let Err(err) = encode(&ServerEventRef::Event(event), &mut buf) {
            tracing::error!(channel = %watch.channel(), "cannot encode a monitor: {err}");
            continue;
        }
        let send = match &mut stream {
            Some(send) => send,
            None => match conn.open_uni().await {
                Ok(send) => stream.insert(send),
                Err(_) => return,
            },
        };
        if send.write_all(&buf).await.is_err() {
            return;
        }
    }
    if let Some(mut send) = stream {
        let _ = send.finish();
    }
}
