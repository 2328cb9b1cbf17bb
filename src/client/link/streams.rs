//! The streams the hub opens, read on tasks of their own, and the task
//! that hands events to the application.

use super::*;

/// Hands the ready chat events to the application, in the order they
/// became ready, and the other events (queue updates, alerts) beside them.
pub(super) async fn forward(inner: Arc<Inner>) {
    let mut batch = VecDeque::new();
    let mut others = VecDeque::new();
    loop {
        std::mem::swap(&mut batch, &mut lock(&inner.memory).ready);
        std::mem::swap(&mut others, &mut lock(&inner.others));
        if batch.is_empty() && others.is_empty() {
            inner.readied.notified().await;
            continue;
        }
        inner.taken.notify_waiters();
        let events = others.drain(..).chain(batch.drain(..).map(Event::Chat));
        for event in events {
            if inner.events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Reads every stream the hub opens, each on its own task, so one chat's
/// events never wait behind another's.
pub(super) async fn accept_event_streams(conn: quinn::Connection, inner: Arc<Inner>) {
    let mut readers = tokio::task::JoinSet::new();
    while let Ok(recv) = conn.accept_uni().await {
        readers.spawn(read_events(recv, inner.clone()));
        while readers.try_join_next().is_some() {}
    }
}

pub(super) async fn read_events(mut recv: quinn::RecvStream, inner: Arc<Inner>) {
    let mut frames = FrameBuf::new();
    loop {
        loop {
            match frames.next_frame::<ServerFrame>() {
                Ok(Some(ServerFrame::Event(Event::Chat(event)))) => inner.accept(event),
                Ok(Some(ServerFrame::Event(event))) => inner.accept_other(event),
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
        // Chat events wait in order for the application; while too many
        // do, stop reading, and QUIC flow control holds the hub back.
        inner.room().await;
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
    }
}
