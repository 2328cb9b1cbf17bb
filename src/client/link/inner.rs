//! The link's shared state at work: requests and their answers, and chat
//! events taken in.

use super::*;

impl Inner {
    /// Connects and says hello, resuming every chat it knows, following a
    /// hub that sends the client elsewhere (a few hops at most, so two
    /// hubs that disagree for a moment cannot keep it going round). A hub
    /// that cannot be reached makes the next attempt go to the next of the
    /// configuration's hubs.
    pub(super) async fn open(&self) -> Result<Session, ClientError> {
        let mut hops = 0;
        loop {
            let target = *lock(&self.target);
            match self.open_at(target).await {
                Err(ClientError::Refused(error)) if hops < MAX_HOPS => {
                    let Some(elsewhere) = error.elsewhere_addr() else {
                        return Err(ClientError::Refused(error));
                    };
                    *lock(&self.target) = elsewhere;
                    hops += 1;
                }
                Err(err @ ClientError::Refused(_)) => return Err(err),
                Err(err) => {
                    self.next_server(target);
                    return Err(err);
                }
                Ok(session) => return Ok(session),
            }
        }
    }

    /// After `failed` could not be reached: the next hub to try.
    pub(super) fn next_server(&self, failed: SocketAddr) {
        let servers: Vec<SocketAddr> = self.config.servers().collect();
        let next = servers
            .iter()
            .position(|server| *server == failed)
            .map_or(servers[0], |at| servers[(at + 1) % servers.len()]);
        let mut target = lock(&self.target);
        if *target == failed {
            *target = next;
        }
    }

    /// The hub answered a request `Elsewhere`: the request goes again, as
    /// if never sent, on a connection to `addr`, which the link makes at
    /// once (dropping this one).
    pub(super) fn move_to(&self, id: u64, addr: SocketAddr) {
        lock(&self.pending).unsent(id);
        *lock(&self.target) = addr;
        if let Some(conn) = lock(&self.connection).as_ref() {
            conn.close(0u32.into(), b"sent elsewhere");
        }
    }

    async fn open_at(&self, target: SocketAddr) -> Result<Session, ClientError> {
        let conn = self
            .endpoint
            .connect(target, &self.config.server_name)?
            .await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let resume = lock(&self.memory).resume_points(MAX_RESUME_POINTS);
        let mut buf = Vec::new();
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: self.role.clone(),
            resume,
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
        Ok(Session {
            conn,
            recv,
            frames,
            control: Control { send, buf },
            welcome,
        })
    }

    /// Writes a request on the current connection, if there is one.
    pub(super) async fn write(&self, slot: &mut Slot, id: u64, body: RequestBody) {
        let generation = slot.generation;
        let Some(Control { send, buf }) = slot.control.as_mut() else {
            return;
        };
        buf.clear();
        if let Err(err) = encode(&ClientFrame::Request(Request { id, body }), buf) {
            let refused = lock(&self.pending).unsendable(id, err);
            if let Some(outcome) = refused {
                self.deliver(outcome);
            }
            return;
        }
        if send.write_all(buf).await.is_err() {
            // The connection is going; the reconnect sends it again.
            slot.control = None;
            return;
        }
        lock(&self.pending).sent(id, generation);
    }

    /// Takes in the hub's answer to request `id`.
    pub(super) fn answer(&self, id: u64, result: Result<Reply, ErrorFrame>) {
        let answered = lock(&self.pending).answer(id, result);
        if let Some(outcome) = answered {
            self.deliver(outcome);
        }
    }

    /// Carries out a settled request: its own message's event is taken in,
    /// then the answer handed to whoever waits.
    pub(super) fn deliver(&self, outcome: Outcome<Waiter>) {
        let Outcome {
            waiter,
            result,
            own,
        } = outcome;
        if let Some(event) = own {
            self.accept(event);
        }
        let _ = waiter.send(result);
    }

    /// Takes a chat event in: queues it for the application with every
    /// held one it makes consecutive, holds it if an earlier one is still
    /// missing, drops it if it was handed over before (a replay after a
    /// reconnect).
    pub(super) fn accept(&self, event: ChatEvent) {
        {
            let mut memory = lock(&self.memory);
            let before = memory.ready.len();
            let Memory {
                positions,
                held,
                ready,
                ..
            } = &mut *memory;
            if !order(positions, held, event, ready) {
                return;
            }
            memory.note_ready(&self.role, before);
        }
        self.readied.notify_one();
    }

    /// Takes a queue update, an alert or a typing indicator in: the
    /// incoming list and badge take a queue update at once (and the
    /// remembered status a status change), whether or not
    /// the application reads its events, so they are always current; each
    /// then waits for the application. If the application falls
    /// [`MAX_OTHERS`] of these behind, one is dropped for `next_event`:
    /// the oldest typing indicator, else the new one if it is a typing
    /// indicator, else the oldest queue update (the incoming list already
    /// holds what it said).
    pub(super) fn accept_other(&self, event: Event) {
        if let Event::Queue(update) = &event {
            self.incoming.apply(update);
        }
        // A status a supervisor set is the one a reconnect restores.
        if let Event::StatusChanged { status, .. } = &event {
            lock(&self.memory).status = Some(*status);
        }
        match &event {
            // A picture still on its way after an unwatch is not shown.
            Event::Monitor(picture) if !lock(&self.memory).monitors.contains(&picture.channel) => {
                return;
            }
            // The hub ended the watch: not watched again after a reconnect.
            Event::MonitorStopped { channel } => {
                lock(&self.memory).monitors.remove(channel);
            }
            _ => {}
        }
        if !make_room(&mut lock(&self.others), event) {
            return;
        }
        self.readied.notify_one();
    }

    /// Waits while the application is far behind on chat events.
    pub(super) async fn room(&self) {
        loop {
            let taken = self.taken.notified();
            let mut taken = std::pin::pin!(taken);
            taken.as_mut().enable();
            if lock(&self.memory).ready.len() < EVENT_BUFFER {
                return;
            }
            taken.await;
        }
    }
}

/// Queues `event` behind `others`, dropping one of them first if there are
/// [`MAX_OTHERS`] (see [`Inner::accept_other`]). A channel's monitor
/// picture takes the place of one of the same channel still waiting, so
/// an application that reads slowly gets the latest picture, not each.
/// Returns whether `event` was queued.
pub(super) fn make_room(others: &mut VecDeque<Event>, event: Event) -> bool {
    if let Event::Monitor(picture) = &event
        && let Some(waiting) = others.iter_mut().find(
            |waiting| matches!(waiting, Event::Monitor(shown) if shown.channel == picture.channel),
        )
    {
        *waiting = event;
        return true;
    }
    if others.len() >= MAX_OTHERS {
        let typing = others
            .iter()
            .position(|event| matches!(event, Event::Typing { .. }));
        let dropped = match typing {
            Some(typing) => typing,
            None if matches!(event, Event::Typing { .. }) => return false,
            None => others
                .iter()
                .position(|event| matches!(event, Event::Queue(_)))
                .unwrap_or(0),
        };
        others.remove(dropped);
    }
    others.push_back(event);
    true
}
