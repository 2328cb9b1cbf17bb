//! The thin loop around the state: serve a connection until it is lost,
//! then connect again with a jittered backoff.

use super::*;

/// Serves a connection until it is lost, then reconnects, for as long as
/// the link is open.
pub(super) async fn supervise(inner: Arc<Inner>, mut session: Session) {
    let mut backoff = Duration::from_millis(50);
    loop {
        inner.connections.fetch_add(1, Ordering::Relaxed);
        *lock(&inner.connection) = Some(session.conn.clone());
        let streams = tokio::spawn(accept_event_streams(session.conn.clone(), inner.clone()));
        let datagrams = tokio::spawn(read_datagrams(session.conn.clone(), inner.clone()));
        {
            let mut slot = inner.control.lock().await;
            slot.generation += 1;
            slot.control = Some(session.control);
            // After a reconnect the agent's status comes back first: a
            // restarted hub forgot it.
            let status = lock(&inner.memory).status.filter(|_| slot.generation > 1);
            if let Some(status) = status {
                let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
                inner
                    .write(&mut slot, id, RequestBody::SetStatus { status })
                    .await;
            }
            // So do the customer's proven identities, before any start.
            let identities: Vec<RequestBody> = if slot.generation > 1 {
                lock(&inner.memory).identities.values().cloned().collect()
            } else {
                Vec::new()
            };
            for identify in identities {
                let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
                inner.write(&mut slot, id, identify).await;
            }
            // And the agent's monitor watches, which ended with the
            // connection (a watch no longer allowed is refused, unseen).
            let monitors: Vec<ChannelId> = if slot.generation > 1 {
                lock(&inner.memory).monitors.iter().cloned().collect()
            } else {
                Vec::new()
            };
            for channel in monitors {
                let id = inner.next_request.fetch_add(1, Ordering::Relaxed);
                inner
                    .write(&mut slot, id, RequestBody::WatchMonitor { channel })
                    .await;
            }
            // Everything unanswered goes out again on the new connection, if
            // doing it twice is harmless; a request that may have taken effect
            // and would take effect again is answered with an error instead.
            let generation = slot.generation;
            let Reconnected { again, lost } = lock(&inner.pending).reconnected(generation);
            for outcome in lost {
                inner.deliver(outcome);
            }
            for (id, body) in again {
                inner.write(&mut slot, id, body).await;
            }
        }
        let outcome = read_responses(&inner, session.recv, session.frames).await;
        inner.control.lock().await.control = None;
        streams.abort();
        datagrams.abort();
        let lost = lock(&inner.connection).take();
        if inner.closing.load(Ordering::SeqCst) {
            return;
        }
        // A hub that went silent (or reset) may be gone for good: with
        // other hubs of its cluster known, come back through the next one
        // at once (it sends the client on to whoever serves its chats),
        // rather than wait out a handshake with a dead address first. A
        // hub that closed the connection itself is alive and tried again.
        if let Some(conn) = lost
            && matches!(
                conn.close_reason(),
                Some(quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset)
            )
        {
            inner.next_server(conn.remote_address());
        }
        if let Err(refusal) = outcome {
            lock(&inner.pending).close(refusal);
            return;
        }
        // Reconnect with backoff.
        session = loop {
            if inner.closing.load(Ordering::SeqCst) {
                return;
            }
            match inner.open().await {
                Ok(session) => {
                    backoff = Duration::from_millis(50);
                    break session;
                }
                // Refused for now (a limit, a hub that cannot store):
                // try again after the backoff like any failed connect.
                Err(ClientError::Refused(error)) if !refusal_is_final(error.code) => {
                    tracing::debug!("reconnecting in {backoff:?}: {error}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(ClientError::Refused(error)) => {
                    lock(&inner.pending).close(format!("the hub refused to resume: {error}"));
                    return;
                }
                Err(err) => {
                    tracing::debug!("reconnecting in {backoff:?}: {err}");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
    }
}

/// A wait of between half and all of `backoff`, drawn anew each time, so
/// the clients of a hub that restarted do not all come back at the same
/// instants.
pub(super) fn jittered(backoff: Duration) -> Duration {
    let draw = RandomState::new().hash_one(std::time::Instant::now());
    let fraction = 0.5 + (draw % 1_000) as f64 / 2_000.0;
    backoff.mul_f64(fraction)
}

/// Whether a connection the hub closed or refused with `code` would be
/// refused again the same way (bad frames, wrong credentials, another
/// protocol version, a hello out of bounds), so the link gives up; any
/// other refusal (a limit, a hub that cannot store now) is tried again
/// after a backoff.
pub(super) fn refusal_is_final(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadFrame
            | ErrorCode::Unauthorized
            | ErrorCode::UnsupportedVersion
            | ErrorCode::InvalidRequest
            | ErrorCode::NotAllowed
    )
}

/// Matches responses on the control stream to their requests until the
/// stream ends. `Err` when the hub closed the connection for good (it
/// refused something about the connection itself).
pub(super) async fn read_responses(
    inner: &Inner,
    mut recv: quinn::RecvStream,
    mut frames: FrameBuf,
) -> Result<(), String> {
    loop {
        match frames.next_frame::<ServerFrame>() {
            Ok(Some(ServerFrame::Response(response))) => {
                if let Err(error) = &response.result
                    && let Some(addr) = error.elsewhere_addr()
                {
                    // Nothing was done: the request goes again to the hub
                    // that serves it, on a new connection made at once.
                    inner.move_to(response.id, addr);
                    return Ok(());
                }
                inner.answer(response.id, response.result);
                continue;
            }
            Ok(Some(ServerFrame::Closing(error))) => {
                return if refusal_is_final(error.code) {
                    Err(format!("the hub closed the connection: {error}"))
                } else {
                    Ok(())
                };
            }
            Ok(Some(other)) => {
                return Err(format!("unexpected frame on the control stream: {other:?}"));
            }
            Ok(None) => {}
            Err(err) => return Err(format!("bad frame from the hub: {err}")),
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}
