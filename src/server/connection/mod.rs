//! One task per client connection.
//!
//! The client opens a bidirectional control stream and says hello; the
//! task then reads requests from it and writes responses back, while events
//! from the actors are routed to unidirectional streams: one per chat, so a
//! chat whose stream is blocked holds up no other chat, and one for queue
//! updates. Requests are answered concurrently; responses carry the
//! request's id. A supervisor's live monitor of a channel goes on a stream
//! of its own, the latest picture each time the stream takes one. Typing
//! indicators come and go as datagrams
//! (`datagrams.rs`). A native QUIC connection and a browser's WebTransport
//! session run this same task (`transport.rs` is the seam).

use std::collections::HashMap;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use std::task::Poll;

use futures::{FutureExt as _, StreamExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::actors::stages::{self, STAGES};
use crate::actors::{EventSink, Hub, HubError, Outbound};
use crate::core::{AgentId, ChatEventKind, ChatId};
use crate::core::{Limit, Limits};
use crate::protocol::{
    AgentProfile, ClientFrame, CloseCode, CodecError, ErrorCode, ErrorFrame, EventRef, FrameBuf,
    PROTOCOL_VERSION, Role as WireRole, ServerEventRef, ServerFrame, Welcome, encode,
};
use crate::server::admission::Pass;
use crate::server::partitions::{Partitions, Route, Target};
use crate::server::refused;
use crate::server::requests::{Role, Session, error_frame};
use crate::server::webtransport::SessionOrigins;

/// What a hello may take per resume point (a chat id, a seq and a secret
/// of at most 256 bytes), and beside them (an agent's id and token).
const HELLO_BYTES_PER_RESUME: usize = 300;
const HELLO_BYTES_BESIDE: usize = 4 << 10;

/// Events waiting for a connection's router before it counts as too slow.
const CONNECTION_EVENTS: usize = 8192;
/// Events waiting for one stream's writer before the connection counts as
/// too slow.
const STREAM_EVENTS: usize = 4096;
/// Events routed in one turn of the connection task at most.
const ROUTE_BATCH: usize = 256;
/// Frames are written in batches of about this many bytes.
const WRITE_BATCH: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("connection lost: {0}")]
    Connection(#[from] LinkError),
    #[error("read failed: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("write failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
    #[error("no hello in time")]
    HelloTimeout,
    #[error("refused: {0}")]
    Refused(ErrorFrame),
    #[error("the client fell too far behind on events")]
    TooSlow,
    #[error("the client did not read its answers in time")]
    ControlStuck,
}

/// Serves one incoming connection until it closes.
pub(crate) async fn handle(partitions: Partitions, incoming: quinn::Incoming, pass: Pass) {
    // One deadline for the handshake, the control stream and the hello.
    let deadline = tokio::time::Instant::now() + partitions.limits().hello_timeout;
    let conn = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => {
            tracing::debug!("handshake failed: {err}");
            return;
        }
        Err(_) => {
            refused(Limit::HelloTimeout);
            return;
        }
    };
    run_link(partitions, Link::Quic(conn), pass, deadline).await;
}

/// Serves one incoming WebTransport session until it closes: the
/// handshake, the HTTP/3 CONNECT to [`WEBTRANSPORT_PATH`] from a page
/// `origins` admits (else 404 or 403), then the same task as a native
/// connection, all within the hello's deadline.
pub(crate) async fn handle_web(
    partitions: Partitions,
    incoming: wtransport::endpoint::IncomingSession,
    pass: Pass,
    origins: std::sync::Arc<SessionOrigins>,
) {
    let deadline = tokio::time::Instant::now() + partitions.limits().hello_timeout;
    let session = tokio::time::timeout_at(deadline, async {
        let request = incoming.await?;
        if request.path() != WEBTRANSPORT_PATH {
            tracing::debug!(
                path = request.path(),
                "WebTransport session for an unknown path"
            );
            request.not_found().await;
            return Ok(None);
        }
        if !origins.admits(request.origin()) {
            ::metrics::counter!("chathub_webtransport_origin_refusals_total").increment(1);
            tracing::debug!(
                origin = request.origin().unwrap_or_default(),
                "WebTransport session refused (403): its page's origin is not in \
                 [webtransport] allowed_origins"
            );
            request.forbidden().await;
            return Ok(None);
        }
        request.accept().await.map(Some)
    })
    .await;
    let conn = match session {
        Ok(Ok(Some(conn))) => conn,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            tracing::debug!("WebTransport handshake failed: {err}");
            return;
        }
        Err(_) => {
            refused(Limit::HelloTimeout);
            return;
        }
    };
    run_link(partitions, Link::Web(conn), pass, deadline).await;
}

/// The path a browser's WebTransport session asks for:
/// `https://host:port/chathub`.
pub(crate) const WEBTRANSPORT_PATH: &str = "/chathub";

async fn run_link(partitions: Partitions, conn: Link, pass: Pass, deadline: tokio::time::Instant) {
    let remote = conn.remote_address();
    let result = serve(partitions, &conn, pass.ip(), deadline).await;
    drop(pass);
    match result {
        Ok(()) => tracing::debug!(%remote, "connection closed"),
        Err(err) => tracing::debug!(%remote, "connection ended: {err}"),
    }
}

/// Reads frames off a stream.
struct FrameReader {
    recv: RecvStream,
    buf: FrameBuf,
}

impl FrameReader {
    /// The next frame; `None` when the stream ended cleanly. Cancel-safe:
    /// bytes read so far stay in the buffer.
    async fn next(&mut self) -> Result<Option<ClientFrame>, ConnError> {
        loop {
            if let Some(frame) = self.buf.next_frame()? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(usize::MAX, true).await? {
                Some(chunk) => self.buf.push(&chunk.bytes),
                None => {
                    self.buf.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

/// Writes frames on the control stream.
struct Control {
    send: SendStream,
    buf: Vec<u8>,
    /// How long a write may wait for the client to read.
    deadline: Duration,
}

impl Control {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), ConnError> {
        self.buf.clear();
        self.add(frame)?;
        self.flush().await
    }

    /// Encodes `frame` behind those already waiting in the buffer.
    fn add(&mut self, frame: &ServerFrame) -> Result<(), ConnError> {
        if let Err(err) = encode(frame, &mut self.buf) {
            // Only a response too large for one frame can fail; say so.
            tracing::error!("cannot encode a response: {err}");
            let ServerFrame::Response(response) = frame else {
                return Err(err.into());
            };
            let error = ServerFrame::Response(crate::protocol::Response {
                id: response.id,
                result: Err(ErrorFrame::new(
                    ErrorCode::Internal,
                    "the answer is too large for one frame",
                )),
            });
            encode(&error, &mut self.buf)?;
        }
        Ok(())
    }

    /// Writes everything buffered in one go. A client that does not read
    /// its answers within the deadline is not waited on any longer.
    async fn flush(&mut self) -> Result<(), ConnError> {
        match timeout(self.deadline, self.send.write_all(&self.buf)).await {
            Ok(written) => written?,
            Err(_) => {
                refused(Limit::ControlWrite);
                return Err(ConnError::ControlStuck);
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Tells the client why it is being closed, gives the frame a moment to
    /// arrive, and closes the connection.
    ///
    /// Boxed where it runs: a rare path, whose waits would otherwise
    /// widen every connection's task for as long as it lives.
    async fn refuse(&mut self, conn: &Link, code: CloseCode, error: ErrorFrame) -> ConnError {
        Box::pin(self.refuse_now(conn, code, error)).await
    }

    async fn refuse_now(&mut self, conn: &Link, code: CloseCode, error: ErrorFrame) -> ConnError {
        metrics::counter!("chathub_protocol_errors_total", "kind" => format!("{:?}", error.code))
            .increment(1);
        if self
            .send(&ServerFrame::Closing(error.clone()))
            .await
            .is_ok()
            && self.send.finish().is_ok()
        {
            let _ = timeout(Duration::from_secs(1), self.send.stopped()).await;
        }
        conn.close(code, error.message.as_bytes());
        ConnError::Refused(error)
    }
}

/// What a connection has once its hello is answered.
struct Greeted {
    session: Session,
    control: Control,
    reader: FrameReader,
    source: crate::actors::sink::EventSource,
    welcome: Welcome,
}

async fn serve(
    partitions: Partitions,
    conn: &Link,
    ip: std::net::IpAddr,
    deadline: tokio::time::Instant,
) -> Result<(), ConnError> {
    // The hello's work (sign-in, resumes) runs boxed and is freed once
    // done, rather than widening the task for the connection's life.
    let Some(greeted) = Box::pin(greet(partitions, conn, ip, deadline)).await? else {
        return Ok(());
    };
    let Greeted {
        mut session,
        mut control,
        mut reader,
        mut source,
        welcome,
    } = greeted;
    let role = match session.role {
        Role::Customer => "customer",
        Role::Agent(_) => "agent",
    };
    metrics::gauge!("chathub_connections", "role" => role).increment(1.0);
    let result = run(
        &mut session,
        conn,
        &mut control,
        &mut reader,
        &mut source,
        welcome,
    )
    .await;
    metrics::gauge!("chathub_connections", "role" => role).decrement(1.0);
    match result {
        Err(ConnError::TooSlow) => {
            metrics::counter!("chathub_protocol_errors_total", "kind" => "TooSlow").increment(1);
        }
        Err(ConnError::ControlStuck) => {
            conn.close(CloseCode::TooSlow, b"answers not read in time");
        }
        _ => {}
    }
    drop(session);
    result
}

/// Takes the control stream and the hello, signs the agent in or resumes
/// the customer's chats, all within `deadline`; `None` when the client
/// closed the stream before saying hello.
async fn greet(
    partitions: Partitions,
    conn: &Link,
    ip: std::net::IpAddr,
    deadline: tokio::time::Instant,
) -> Result<Option<Greeted>, ConnError> {
    let limits: Limits = partitions.limits().clone();
    let web = matches!(conn, Link::Web(_));
    let hello_late = || {
        refused(Limit::HelloTimeout);
        ConnError::HelloTimeout
    };
    let (send, recv) = tokio::time::timeout_at(deadline, conn.accept_bi())
        .await
        .map_err(|_| hello_late())??;
    let mut control = Control {
        send,
        buf: Vec::new(),
        deadline: limits.control_write_timeout,
    };
    let mut reader = FrameReader {
        recv,
        buf: FrameBuf::with_limit(
            limits.resume_points.saturating_mul(HELLO_BYTES_PER_RESUME) + HELLO_BYTES_BESIDE,
        ),
    };
    let hello = match tokio::time::timeout_at(deadline, reader.next()).await {
        Err(_) => return Err(hello_late()),
        Ok(Err(ConnError::Codec(err))) => {
            let error = ErrorFrame::new(ErrorCode::BadFrame, err.to_string());
            return Err(control.refuse(conn, CloseCode::Protocol, error).await);
        }
        Ok(frame) => frame?,
    };
    let hello = match hello {
        Some(ClientFrame::Hello(hello)) => hello,
        Some(_) => {
            let error = ErrorFrame::new(ErrorCode::BadFrame, "the first frame must be a hello");
            return Err(control.refuse(conn, CloseCode::Protocol, error).await);
        }
        None => return Ok(None),
    };
    if hello.version != PROTOCOL_VERSION {
        let error = ErrorFrame::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this hub speaks protocol version {PROTOCOL_VERSION}, not {}",
                hello.version
            ),
        );
        return Err(control.refuse(conn, CloseCode::Refused, error).await);
    }
    if hello.resume.len() > limits.resume_points {
        refused(Limit::ResumePoints);
        let error = ErrorFrame::new(
            ErrorCode::InvalidRequest,
            format!(
                "a hello may resume at most {} chats, not {}",
                limits.resume_points,
                hello.resume.len()
            ),
        );
        return Err(control.refuse(conn, CloseCode::Refused, error).await);
    }

    // After the hello, requests may use the whole frame limit.
    reader.buf.set_limit(crate::protocol::MAX_FRAME_BYTES);
    let front = partitions.front().clone();
    let conn_id = front.next_conn();
    let (sink, source) = EventSink::new(conn_id, CONNECTION_EVENTS);
    let sink = sink.with_peer(ip);
    let (role, welcome, hub) = match hello.role {
        WireRole::Customer => {
            // A customer resuming is served where their chats live; one
            // starting afresh waits at the front until they ask for a
            // channel.
            let hub = match hello.resume.first() {
                None => front,
                Some(first) => match here_or_refusal(partitions.chat(first.chat), web) {
                    Ok(hub) => hub,
                    Err(error) => {
                        return Err(control.refuse(conn, CloseCode::Refused, error).await);
                    }
                },
            };
            (
                Role::Customer,
                Welcome {
                    version: PROTOCOL_VERSION,
                    agent: None,
                },
                hub,
            )
        }
        WireRole::Agent { agent, token } => {
            let profile = front
                .authenticate(Some(ip), &agent, token.expose())
                .map(|config| AgentProfile {
                    id: config.id.clone(),
                    name: config.name.clone(),
                    channels: config.channels.clone(),
                    status: Default::default(),
                });
            let mut profile = match profile {
                Ok(profile) => profile,
                Err(err) => {
                    return Err(control
                        .refuse(conn, CloseCode::Refused, error_frame(err))
                        .await);
                }
            };
            // Signed in: served where their channels are.
            let hub = match here_or_refusal(partitions.agent(&agent), web) {
                Ok(hub) => hub,
                Err(error) => return Err(control.refuse(conn, CloseCode::Refused, error).await),
            };
            let resume = hello
                .resume
                .iter()
                .map(|resume| (resume.chat, resume.after))
                .collect();
            match hub.attach_agent(&agent, sink.clone(), resume).await {
                Ok(status) => profile.status = status,
                Err(err) => {
                    return Err(control
                        .refuse(conn, CloseCode::Refused, error_frame(err))
                        .await);
                }
            }
            (
                Role::Agent(agent),
                Welcome {
                    version: PROTOCOL_VERSION,
                    agent: Some(profile),
                },
                hub,
            )
        }
    };
    let mut session = Session {
        hub,
        partitions,
        rebound: false,
        conn: conn_id,
        ip,
        role,
        sink,
        web,
        started: Default::default(),
        identities: HashMap::new(),
    };
    if matches!(session.role, Role::Customer) {
        // Take over the chats this customer resumes; one it may not (wrong
        // secret, unknown chat) is skipped, the others go on. All within
        // the hello's deadline.
        let resumes = hello.resume.into_iter();
        let resumed = tokio::time::timeout_at(deadline, async {
            for resume in resumes {
                let Some(secret) = resume.secret else {
                    continue;
                };
                let resumed = session
                    .hub
                    .resume_customer(session.sink.clone(), resume.chat, &secret, resume.after)
                    .await;
                match resumed {
                    Ok(()) => {
                        session.started.insert(resume.chat);
                    }
                    Err(err) => tracing::debug!(chat = %resume.chat, "not resumed: {err}"),
                }
            }
        })
        .await;
        if resumed.is_err() {
            return Err(hello_late());
        }
    }
    Ok(Some(Greeted {
        session,
        control,
        reader,
        source,
        welcome,
    }))
}

async fn run(
    session: &mut Session,
    conn: &Link,
    control: &mut Control,
    reader: &mut FrameReader,
    source: &mut crate::actors::sink::EventSource,
    welcome: Welcome,
) -> Result<(), ConnError> {
    control.send(&ServerFrame::Welcome(welcome)).await?;
    let agent = match &session.role {
        Role::Agent(agent) => Some(agent.clone()),
        Role::Customer => None,
    };
    let mut router = Router::new(conn.clone(), agent);
    let mut pending = FuturesUnordered::new();
    // One task per monitor watch, each writing its pictures on a stream of
    // its own; dropped (so stopped) with the connection.
    let mut monitors = tokio::task::JoinSet::new();
    // Futures that rarely finish live across turns of the loop rather than
    // being made (and registered with the connection or the notifier) anew
    // on every turn.
    let overflow = source.overflow.clone();
    let mut overflowed = std::pin::pin!(overflow.notified());
    let revoked = source.revoked.clone();
    let mut revoked = std::pin::pin!(revoked.notified());
    let mut file_stream = std::pin::pin!(conn.accept_bi());
    let mut datagram_in = std::pin::pin!(conn.read_datagram());
    let mut datagrams = Datagrams::new(session.partitions.limits());
    let in_flight = match session.role {
        Role::Customer => session.partitions.limits().requests_in_flight,
        Role::Agent(_) => session.partitions.limits().agent_requests_in_flight,
    };
    let mut retired = std::pin::pin!(session.hub.retired());
    loop {
        if std::mem::take(&mut session.rebound) {
            retired.set(session.hub.retired());
        }
        tokio::select! {
            // At the cap, requests wait in the client's stream (and then in
            // the client) until one is answered: back-pressure, not growth.
            frame = reader.next(), if pending.len() < in_flight => match frame {
                Ok(Some(ClientFrame::Request(request))) => pending.push(session.dispatch(request)),
                Ok(Some(ClientFrame::Hello(_))) => {
                    let error = ErrorFrame::new(ErrorCode::BadFrame, "hello may only be sent once");
                    return Err(control.refuse(conn, CloseCode::Protocol, error).await);
                }
                Ok(Some(ClientFrame::Upload(_) | ClientFrame::Download { .. })) => {
                    let error = ErrorFrame::new(ErrorCode::BadFrame, "files travel on streams of their own");
                    return Err(control.refuse(conn, CloseCode::Protocol, error).await);
                }
                Ok(None) => {
                    conn.close(CloseCode::Normal, b"bye");
                    return Ok(());
                }
                Err(ConnError::Codec(err)) => {
                    let error = ErrorFrame::new(ErrorCode::BadFrame, err.to_string());
                    return Err(control.refuse(conn, CloseCode::Protocol, error).await);
                }
                Err(err) => return Err(err),
            },
            Some(done) = pending.next(), if !pending.is_empty() => {
                // Answer every request that is done by now in one write. (Polled
                // with this task's waker, so a request finishing later still
                // wakes the loop.)
                let mut done = Some(done);
                while let Some(answer) = match done.take() {
                    Some(answer) => Some(answer),
                    None => match std::future::poll_fn(|cx| Poll::Ready(pending.poll_next_unpin(cx))).await {
                        Poll::Ready(answer) => answer,
                        Poll::Pending => None,
                    },
                } {
                    if let Some(chat) = answer.started {
                        session.started.insert(chat);
                    }
                    if let Some(watch) = answer.watching {
                        // Reaped here; the rest end with this task.
                        while monitors.try_join_next().is_some() {}
                        monitors.spawn(router::forward_monitor(conn.clone(), watch));
                    }
                    control.add(&ServerFrame::Response(answer.response))?;
                }
                control.flush().await?;
            }
            Some(event) = source.events.recv() => {
                // Route what else is waiting in the same turn, so the
                // connection sends it together.
                let mut event = Some(event);
                let mut routed = 0;
                while let Some((next, queued)) = event.take() {
                    if matches!(next, Outbound::Chat(_)) {
                        stages::since(&STAGES.to_connection, queued);
                    }
                    if router.route(next).is_err() {
                        conn.close(CloseCode::TooSlow, b"too far behind on events");
                        return Err(ConnError::TooSlow);
                    }
                    routed += 1;
                    if routed < ROUTE_BATCH {
                        event = source.events.try_recv().ok();
                    }
                }
            }
            stream = &mut file_stream => {
                file_stream.set(conn.accept_bi());
                // A file on a stream of its own, so it never holds up chat
                // messages on the control stream.
                let (send, recv) = stream?;
                let (hub, caller) = (session.hub.clone(), session.caller());
                tokio::spawn(crate::server::files::serve(hub, caller, session.ip, send, recv));
            }
            datagram = &mut datagram_in, if !datagrams.paused() => {
                datagram_in.set(conn.read_datagram());
                datagrams.received(session, &datagram?);
            }
            () = datagrams.resume(conn), if datagrams.paused() => {}
            signal = source.datagrams.next() => datagrams::send(conn, signal),
            () = &mut revoked => {
                let error = ErrorFrame::new(
                    ErrorCode::Unauthorized,
                    "the agent was removed from the hub's configuration",
                );
                return Err(control.refuse(conn, CloseCode::Refused, error).await);
            }
            () = &mut overflowed => {
                conn.close(CloseCode::TooSlow, b"too far behind on events");
                return Err(ConnError::TooSlow);
            }
            // What this connection is served for moves to another hub:
            // the client comes back and is sent where it is served next.
            () = &mut retired => {
                conn.close(CloseCode::Shutdown, b"served elsewhere from now on");
                return Ok(());
            }
        }
    }
}

/// The hub a route leads to, or the refusal a client gets when it leads
/// elsewhere (with the address to go to) or nowhere yet.
/// A browser (`web`) is sent to the other hub's WebTransport endpoint, or
/// told to wait when that hub has none.
pub(crate) fn here_or_refusal(route: Route, web: bool) -> Result<Hub, ErrorFrame> {
    match route {
        Route::Here(hub) => Ok(hub),
        Route::There(target) if !web => Err(ErrorFrame::elsewhere(target.addr)),
        Route::There(Target {
            addr,
            web: Some(site),
        }) => Err(ErrorFrame::elsewhere_web(addr, &site.url, &site.hashes)),
        Route::There(_) => Err(ErrorFrame::new(
            ErrorCode::Unavailable,
            "the hub serving this is not reachable from browsers right now",
        )),
        Route::Nowhere(partition) => Err(ErrorFrame::new(
            ErrorCode::Unavailable,
            format!("partition {partition} is changing hands; try again in a moment"),
        )),
    }
}

mod datagrams;
mod router;
pub(crate) mod transport;

use datagrams::Datagrams;
use router::Router;
pub(crate) use transport::{Link, LinkError, RecvStream, SendStream};
