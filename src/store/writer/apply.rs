//! The apply thread: writes durable groups into the database.

use super::*;
use crate::core::ChatTraces;
use crate::store::outbox::{self, OutboxWrites};
use redb::ReadableTable;
/// The apply thread: writes durable groups into the database, as many as
/// are waiting in one transaction, and syncs it when asked.
pub(super) fn apply_loop(
    db: Arc<Database>,
    progress: Arc<Progress>,
    outbox: Arc<OutboxHook>,
    rx: mpsc::Receiver<Apply>,
) {
    let mut next = rx.recv().ok();
    let mut synced = Instant::now();
    while let Some(first) = next.take() {
        let mut groups = Vec::new();
        let mut checkpoint = None;
        let mut ops = 0;
        match first {
            Apply::Group(group, group_ops) => {
                ops += group_ops.len();
                groups.push((group, group_ops));
                // Sleep between looks at the queue rather than wait on
                // it, so that each group does not wake the thread.
                let until = Instant::now() + APPLY_GATHER;
                while ops < MAX_APPLY_OPS {
                    match rx.try_recv() {
                        Ok(Apply::Group(group, group_ops)) => {
                            ops += group_ops.len();
                            groups.push((group, group_ops));
                        }
                        Ok(Apply::Checkpoint(reply)) => {
                            checkpoint = Some((reply, Instant::now()));
                            break;
                        }
                        Ok(Apply::Flush) | Err(mpsc::TryRecvError::Disconnected) => break,
                        Err(mpsc::TryRecvError::Empty) => {
                            let now = Instant::now();
                            if now >= until {
                                break;
                            }
                            std::thread::park_timeout(until - now);
                        }
                    }
                }
            }
            Apply::Checkpoint(reply) => checkpoint = Some((reply, Instant::now())),
            Apply::Flush => {}
        }
        if let (Some((last, _)), None) = (groups.last(), progress.broken()) {
            let all = groups.iter().flat_map(|(_, ops)| ops);
            // A long run of unsynced commits makes each one slower (the
            // database tracks every page they left unsynced), so sync now
            // and then even between checkpoints.
            let durability = if synced.elapsed() >= SYNC_EVERY {
                synced = Instant::now();
                Durability::Immediate
            } else {
                Durability::None
            };
            match apply(&db, *last, all, durability, &outbox) {
                Ok(rows) => {
                    progress.set_applied(*last);
                    if rows > 0 {
                        outbox.ring();
                    }
                }
                Err(err) => {
                    metrics::counter!("chathub_store_commit_failures_total").increment(1);
                    progress.set_broken(err);
                }
            }
        }
        if let Some((reply, asked)) = checkpoint {
            let result = match progress.broken() {
                Some(err) => Err(err),
                // An empty durable commit makes every earlier one durable.
                None => db
                    .begin_write()
                    .map_err(engine)
                    .and_then(|write| write.commit().map_err(engine)),
            };
            if result.is_ok() {
                metrics::histogram!("chathub_store_checkpoint_seconds")
                    .record(asked.elapsed().as_secs_f64());
            }
            let _ = reply.send(result);
        }
        next = rx.recv().ok();
    }
}

/// Applies group `group`'s ops to the database in one transaction, which
/// also records the group as applied, with the webhook outbox rows they
/// make for `outbox`'s targets; answers how many rows were written.
pub(crate) fn apply<'a>(
    db: &Database,
    group: u64,
    ops: impl Iterator<Item = &'a Op>,
    durability: Durability,
    outbox: &OutboxHook,
) -> Result<usize, StoreError> {
    let mut write = db.begin_write().map_err(engine)?;
    write.set_durability(durability).map_err(engine)?;
    let rows;
    {
        write
            .open_table(tables::META)
            .map_err(engine)?
            .insert(tables::LOG_GROUP, group)
            .map_err(engine)?;
        // Open a table only when an op needs it: most groups touch the
        // events alone, and every opened table costs the commit.
        macro_rules! open {
            ($slot:ident, $table:expr) => {{
                if $slot.is_none() {
                    $slot = Some(write.open_table($table).map_err(engine)?);
                }
                $slot.as_mut().expect("opened just above")
            }};
        }
        let (mut events, mut live, mut tokens, mut token_chats) = (None, None, None, None);
        let (mut sessions, mut ended, mut tickets, mut knowledge) = (None, None, None, None);
        let (mut files, mut contact_chats, mut contact_tickets) = (None, None, None);
        let (mut ticket_summaries, mut ratings, mut session_tags) = (None, None, None);
        let mut outbox_writes: Option<OutboxWrites<'_>> = None;
        for op in ops {
            match op {
                Op::Event(event) => {
                    let chat = event.chat.0;
                    open!(events, tables::EVENTS)
                        .insert((chat, event.seq), tables::encode(event)?.as_slice())
                        .map_err(engine)?;
                    match event.kind {
                        ChatEventKind::Started { .. } => {
                            open!(live, tables::LIVE).insert(chat, ()).map_err(engine)?;
                        }
                        ChatEventKind::Ended { .. } => {
                            open!(live, tables::LIVE).remove(chat).map_err(engine)?;
                        }
                        // Back from the end form: live again, and no longer
                        // a recent session until it ends anew.
                        ChatEventKind::Reopened { .. } => {
                            open!(live, tables::LIVE).insert(chat, ()).map_err(engine)?;
                            if let Some(at) = open!(ended, tables::SESSION_ENDED)
                                .remove(chat)
                                .map_err(engine)?
                            {
                                let at = at.value();
                                open!(sessions, tables::SESSIONS)
                                    .remove((at, chat))
                                    .map_err(engine)?;
                            }
                        }
                        _ => {}
                    }
                }
                Op::Token { chat, digest } => {
                    open!(tokens, tables::TOKENS)
                        .insert(*chat, digest.as_slice())
                        .map_err(engine)?;
                    open!(token_chats, tables::TOKEN_CHATS)
                        .insert(digest.as_slice(), *chat)
                        .map_err(engine)?;
                }
                Op::Session(summary) => {
                    let at = summary.ended.as_millis();
                    open!(sessions, tables::SESSIONS)
                        .insert((at, summary.chat.0), tables::encode(summary)?.as_slice())
                        .map_err(engine)?;
                    open!(ended, tables::SESSION_ENDED)
                        .insert(summary.chat.0, at)
                        .map_err(engine)?;
                }
                Op::Ticket(ticket) => {
                    open!(tickets, tables::TICKETS)
                        .insert(ticket.id.0, tables::encode(ticket.as_ref())?.as_slice())
                        .map_err(engine)?;
                    open!(ticket_summaries, tables::TICKET_SUMMARIES)
                        .insert(ticket.id.0, tables::encode(&ticket.summary())?.as_slice())
                        .map_err(engine)?;
                }
                Op::Knowledge(item) => {
                    open!(knowledge, tables::KNOWLEDGE)
                        .insert(item.id.0, tables::encode(item.as_ref())?.as_slice())
                        .map_err(engine)?;
                }
                Op::ForgetKnowledge(id) => {
                    open!(knowledge, tables::KNOWLEDGE)
                        .remove(id.0)
                        .map_err(engine)?;
                }
                Op::File(file) => {
                    open!(files, tables::FILES)
                        .insert(file.file.id.0, tables::encode(file)?.as_slice())
                        .map_err(engine)?;
                }
                Op::ForgetFile(id) => {
                    open!(files, tables::FILES).remove(id.0).map_err(engine)?;
                }
                Op::ContactChat { key, chat } => {
                    open!(contact_chats, tables::CONTACT_CHATS)
                        .insert((key.as_str(), *chat), ())
                        .map_err(engine)?;
                }
                Op::ContactTicket { key, ticket } => {
                    open!(contact_tickets, tables::CONTACT_TICKETS)
                        .insert((key.as_str(), *ticket), ())
                        .map_err(engine)?;
                }
                Op::Rate { chat, rating } => {
                    open!(ratings, tables::RATINGS)
                        .insert(*chat, tables::encode(rating)?.as_slice())
                        .map_err(engine)?;
                }
                Op::Delivered { .. } => {}
                Op::SessionTags { chat, tags } => {
                    let table = open!(session_tags, tables::SESSION_TAGS);
                    if tags.is_empty() {
                        table.remove(*chat).map_err(engine)?;
                    } else {
                        table
                            .insert(*chat, tables::encode(tags)?.as_slice())
                            .map_err(engine)?;
                    }
                }
                Op::EraseChat(chat) => {
                    let chat = *chat;
                    if open!(live, tables::LIVE)
                        .get(chat)
                        .map_err(engine)?
                        .is_some()
                    {
                        continue;
                    }
                    let mut traces = ChatTraces::default();
                    let range = (chat, 0)..=(chat, u64::MAX);
                    let event_table = open!(events, tables::EVENTS);
                    for row in event_table.range(range.clone()).map_err(engine)? {
                        let (_, value) = row.map_err(engine)?;
                        // An event that does not decode is erased all the same.
                        if let Ok(event) = tables::decode::<ChatEvent>(value.value()) {
                            traces.note(&event);
                        }
                    }
                    event_table.retain_in(range, |_, _| false).map_err(engine)?;
                    let digest = open!(tokens, tables::TOKENS)
                        .remove(chat)
                        .map_err(engine)?
                        .map(|digest| digest.value().to_vec());
                    if let Some(digest) = digest {
                        open!(token_chats, tables::TOKEN_CHATS)
                            .remove(digest.as_slice())
                            .map_err(engine)?;
                    }
                    let at = open!(ended, tables::SESSION_ENDED)
                        .remove(chat)
                        .map_err(engine)?
                        .map(|at| at.value());
                    if let Some(at) = at {
                        open!(sessions, tables::SESSIONS)
                            .remove((at, chat))
                            .map_err(engine)?;
                    }
                    open!(ratings, tables::RATINGS)
                        .remove(chat)
                        .map_err(engine)?;
                    for file in &traces.files {
                        open!(files, tables::FILES).remove(file.0).map_err(engine)?;
                    }
                    for key in
                        crate::store::contact_keys(&traces.customer, traces.verified.as_ref())
                    {
                        open!(contact_chats, tables::CONTACT_CHATS)
                            .remove((key.as_str(), chat))
                            .map_err(engine)?;
                    }
                    if !outbox.targets.is_empty() {
                        if outbox_writes.is_none() {
                            outbox_writes = Some(OutboxWrites::open(&write)?);
                        }
                        outbox_writes
                            .as_mut()
                            .expect("opened just above")
                            .erase_chat(outbox, chat)?;
                    }
                }
                Op::EraseTicket(id) => {
                    let value = open!(tickets, tables::TICKETS)
                        .remove(*id)
                        .map_err(engine)?
                        .map(|value| value.value().to_vec());
                    open!(ticket_summaries, tables::TICKET_SUMMARIES)
                        .remove(*id)
                        .map_err(engine)?;
                    // A ticket that does not decode is erased all the same;
                    // only its links stay (they name nothing that exists).
                    if let Some(Ok(ticket)) = value.map(|bytes| tables::decode::<Ticket>(&bytes)) {
                        let verified = ChatTraces::of(&ticket.transcript).verified;
                        for key in crate::store::contact_keys(&ticket.customer, verified.as_ref()) {
                            open!(contact_tickets, tables::CONTACT_TICKETS)
                                .remove((key.as_str(), *id))
                                .map_err(engine)?;
                        }
                    }
                }
                Op::EraseContact(key) => {
                    let key = key.as_str();
                    open!(contact_chats, tables::CONTACT_CHATS)
                        .retain_in((key, 0)..=(key, u64::MAX), |_, _| false)
                        .map_err(engine)?;
                    open!(contact_tickets, tables::CONTACT_TICKETS)
                        .retain_in((key, 0)..=(key, u64::MAX), |_, _| false)
                        .map_err(engine)?;
                }
            }
            if outbox::touches(outbox, op) {
                if outbox_writes.is_none() {
                    outbox_writes = Some(OutboxWrites::open(&write)?);
                }
                let event_table = open!(events, tables::EVENTS);
                // A rating follows the chat's last event, its end.
                let last_seq = |chat: u64| -> Result<Option<u64>, StoreError> {
                    let last = event_table
                        .range((chat, 0)..=(chat, u64::MAX))
                        .map_err(engine)?
                        .next_back()
                        .transpose()
                        .map_err(engine)?;
                    Ok(last.map(|(key, _)| key.value().1))
                };
                outbox_writes
                    .as_mut()
                    .expect("opened just above")
                    .apply(outbox, op, last_seq)?;
            }
        }
        rows = outbox_writes.map_or(0, |writes| writes.added);
    }
    write.commit().map_err(engine)?;
    Ok(rows)
}
