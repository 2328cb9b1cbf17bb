//! One QUIC connection to the hub, shared by a client's clones: requests
//! out on the control stream, responses matched back by id, events in from
//! the streams the hub opens.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::incoming::IncomingBoard;
use crate::client::{ClientConfig, ClientError};
use crate::protocol::{
    ClientFrame, ErrorFrame, Event, FrameBuf, Hello, PROTOCOL_VERSION, Reply, Request, RequestBody,
    Role, ServerFrame, Welcome, encode,
};

/// Events the application has not taken yet. When full, the hub's streams
/// are no longer read, and QUIC flow control slows the hub down.
const EVENT_BUFFER: usize = 4096;

type Waiters = HashMap<u64, oneshot::Sender<Result<Reply, ErrorFrame>>>;

#[derive(Default)]
struct Pending {
    waiters: Waiters,
    /// Why the connection closed, once it has.
    closed: Option<String>,
}

struct Control {
    send: quinn::SendStream,
    buf: Vec<u8>,
}

pub(crate) struct Link {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    control: tokio::sync::Mutex<Control>,
    pending: Arc<Mutex<Pending>>,
    next_request: AtomicU64,
    next_client_id: AtomicU64,
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    pub welcome: Welcome,
    pub incoming: Arc<IncomingBoard>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.conn.close(0u32.into(), b"client closed");
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn protocol(err: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(err.to_string())
}

impl Link {
    /// Connects, says hello as `role`, and waits for the welcome.
    pub async fn connect(config: &ClientConfig, role: Role) -> Result<Link, ClientError> {
        let bind: SocketAddr = if config.server.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(bind)?;
        endpoint.set_default_client_config(config.quic.clone());
        let conn = endpoint
            .connect(config.server, &config.server_name)?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;

        let mut buf = Vec::new();
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role,
        });
        encode(&hello, &mut buf).map_err(protocol)?;
        send.write_all(&buf)
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;

        let mut frames = FrameBuf::new();
        let welcome = loop {
            match frames.next_frame::<ServerFrame>().map_err(protocol)? {
                Some(ServerFrame::Welcome(welcome)) => break welcome,
                Some(ServerFrame::Closing(error)) => return Err(ClientError::Refused(error)),
                Some(other) => return Err(protocol(format!("expected a welcome, got {other:?}"))),
                None => {}
            }
            match recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => frames.push(&chunk.bytes),
                Ok(None) => {
                    return Err(ClientError::Closed(
                        "the hub closed before the welcome".into(),
                    ));
                }
                Err(quinn::ReadError::ConnectionLost(err)) => return Err(err.into()),
                Err(err) => return Err(ClientError::Closed(err.to_string())),
            }
        };

        let pending = Arc::new(Mutex::new(Pending::default()));
        let incoming = Arc::new(IncomingBoard::default());
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let tasks = vec![
            tokio::spawn(read_responses(recv, frames, pending.clone(), conn.clone())),
            tokio::spawn(accept_event_streams(
                conn.clone(),
                events_tx,
                incoming.clone(),
            )),
        ];
        Ok(Link {
            conn,
            _endpoint: endpoint,
            control: tokio::sync::Mutex::new(Control { send, buf }),
            pending,
            next_request: AtomicU64::new(1),
            next_client_id: AtomicU64::new(RandomState::new().hash_one(0u8) >> 1),
            events: tokio::sync::Mutex::new(events_rx),
            welcome,
            incoming,
            tasks,
        })
    }

    /// A fresh id for a message this client sends; a retry reuses it.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: RequestBody) -> Result<Reply, ClientError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                return Err(ClientError::Closed(reason.clone()));
            }
            pending.waiters.insert(id, tx);
        }
        let written = {
            let mut control = self.control.lock().await;
            let Control { send, buf } = &mut *control;
            buf.clear();
            match encode(&ClientFrame::Request(Request { id, body }), buf) {
                Ok(()) => send
                    .write_all(buf)
                    .await
                    .map_err(|err| ClientError::Closed(err.to_string())),
                Err(err) => Err(ClientError::Protocol(format!(
                    "cannot send the request: {err}"
                ))),
            }
        };
        if let Err(err) = written {
            lock(&self.pending).waiters.remove(&id);
            return Err(err);
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(ClientError::Refused(error)),
            Err(_) => Err(ClientError::Closed(
                lock(&self.pending)
                    .closed
                    .clone()
                    .unwrap_or_else(|| "the connection closed".into()),
            )),
        }
    }

    /// The next pushed event; `None` once the connection has closed and
    /// every event was taken.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close(0u32.into(), b"client closed");
    }
}

/// Matches responses on the control stream to their requests. When the
/// stream ends, every waiting request fails with the reason.
async fn read_responses(
    mut recv: quinn::RecvStream,
    mut frames: FrameBuf,
    pending: Arc<Mutex<Pending>>,
    conn: quinn::Connection,
) {
    let reason = loop {
        match frames.next_frame::<ServerFrame>() {
            Ok(Some(ServerFrame::Response(response))) => {
                if let Some(waiter) = lock(&pending).waiters.remove(&response.id) {
                    let _ = waiter.send(response.result);
                }
                continue;
            }
            Ok(Some(ServerFrame::Closing(error))) => {
                break format!("the hub closed the connection: {error}");
            }
            Ok(Some(other)) => break format!("unexpected frame on the control stream: {other:?}"),
            Ok(None) => {}
            Err(err) => break format!("bad frame from the hub: {err}"),
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) => break "the hub ended the control stream".into(),
            Err(err) => break err.to_string(),
        }
    };
    conn.close(0u32.into(), b"control stream ended");
    let mut pending = lock(&pending);
    pending.closed = Some(reason);
    pending.waiters.clear();
}

/// Reads every stream the hub opens, each on its own task, so one chat's
/// events never wait behind another's.
async fn accept_event_streams(
    conn: quinn::Connection,
    events: mpsc::Sender<Event>,
    incoming: Arc<IncomingBoard>,
) {
    while let Ok(recv) = conn.accept_uni().await {
        tokio::spawn(read_events(recv, events.clone(), incoming.clone()));
    }
}

async fn read_events(
    mut recv: quinn::RecvStream,
    events: mpsc::Sender<Event>,
    incoming: Arc<IncomingBoard>,
) {
    let mut frames = FrameBuf::new();
    loop {
        loop {
            match frames.next_frame::<ServerFrame>() {
                Ok(Some(ServerFrame::Event(event))) => {
                    if let Event::Queue(update) = &event {
                        incoming.apply(update);
                    }
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                Ok(Some(other)) => {
                    tracing::warn!("unexpected frame on an event stream: {other:?}");
                    return;
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!("bad frame on an event stream: {err}");
                    return;
                }
            }
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
    }
}
