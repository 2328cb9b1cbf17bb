//! Erasing what is no longer to be kept: a sweep now and then erases the
//! ended chats, files and tickets whose channel's retention ran out, and
//! an admin erases a contact on request (GDPR). Either way the erasure is
//! ops in the commit log ([`Op::EraseChat`], [`Op::EraseTicket`],
//! [`Op::EraseContact`], [`Op::ForgetFile`]) applied by the writer like
//! any write, so a restart replays it rather than bringing anything back;
//! a file's bytes go once its record's erasure is durable (and a start
//! removes any file no record names, should a crash come in between).

use super::*;
use crate::core::retention::{check_contact_key, is_due};
use crate::core::{AgentRole, ChatTraces, Forgotten, Retention};

/// Rows of sessions, and of tickets, a sweep looks at per pass.
const SCAN_ROWS: usize = 4_096;

/// Chats, tickets or files one erasure write carries at most, so a large
/// backlog is erased in many small commits between everyone else's.
const ERASE_BATCH: usize = 64;

/// The most ops one erasure of a contact commits at once: a contact
/// within it is erased all or nothing; a larger one in several commits,
/// their contact links last, so asking again finishes the work.
const FORGET_OPS: usize = 2_048;

/// Where the sweep goes on from in the sessions and tickets.
#[derive(Default)]
struct Cursor {
    sessions: Option<(u64, u64)>,
    tickets: Option<TicketId>,
}

/// Sweeps, now and then, what aged out of its channel's retention (and
/// files out of `[limits] file_retention`). Stops with the hub.
pub(super) fn spawn_retention(shared: std::sync::Weak<Shared>) {
    tokio::spawn(async move {
        let mut cursor = Cursor::default();
        loop {
            let Some(hub) = shared.upgrade().map(|shared| Hub { shared }) else {
                return;
            };
            if let Err(err) = hub.sweep_retention(&mut cursor).await {
                tracing::warn!("the retention sweep failed: {err}");
            }
            let shortest = hub.shortest_retention();
            drop(hub);
            // Often enough that something outlives its retention by a tenth
            // of it at most, and never more often than ten times a second.
            let pause =
                (shortest / 10).clamp(Duration::from_millis(100), Duration::from_secs(3600));
            tokio::time::sleep(pause).await;
        }
    });
}

impl Hub {
    /// A channel's retention, or keep-for-ever for a channel no longer
    /// known.
    fn retention(&self, channel: &ChannelId) -> Retention {
        self.channel(channel)
            .map(|settings| settings.retention)
            .unwrap_or_default()
    }

    /// The shortest retention of any kind on any channel, the hub's file
    /// retention included.
    fn shortest_retention(&self) -> Duration {
        let mut shortest = self.shared.limits.file_retention;
        for settings in self.shared.settings.iter() {
            let kept = settings.retention;
            for keep in [kept.chats, kept.files, kept.tickets].into_iter().flatten() {
                shortest = shortest.min(keep);
            }
        }
        shortest
    }

    /// One pass: files, then up to [`SCAN_ROWS`] sessions and tickets
    /// from where the last pass stopped.
    async fn sweep_retention(&self, cursor: &mut Cursor) -> Result<(), HubError> {
        self.sweep_expired_files().await?;
        let now = Timestamp::now();
        let any_limited = self.shared.settings.iter().any(|settings| {
            settings.retention.chats.is_some() || settings.retention.tickets.is_some()
        });
        if !any_limited {
            return Ok(());
        }
        let retention: std::collections::HashMap<ChannelId, Retention> = self
            .shared
            .settings
            .iter()
            .map(|entry| (entry.key().clone(), entry.retention))
            .collect();
        let store = self.shared.store.clone();
        let (after, policy) = (cursor.sessions, retention.clone());
        let (due, next) = blocking(move || {
            store.sessions_due(
                |session| {
                    policy
                        .get(&session.channel)
                        .and_then(|kept| kept.chats)
                        .is_some_and(|keep| is_due(session.ended, keep, now))
                },
                after,
                SCAN_ROWS,
            )
        })
        .await?;
        cursor.sessions = next;
        for batch in due.chunks(ERASE_BATCH) {
            let (chats, files) = self.erase_chats(batch).await?;
            metrics::counter!("chathub_retention_erased_total", "kind" => "chat")
                .increment(chats as u64);
            metrics::counter!("chathub_retention_erased_total", "kind" => "file")
                .increment(files as u64);
        }
        let store = self.shared.store.clone();
        let after = cursor.tickets;
        let (due, next) = blocking(move || {
            store.tickets_due(
                |ticket| {
                    retention
                        .get(&ticket.channel)
                        .and_then(|kept| kept.tickets)
                        .is_some_and(|keep| is_due(ticket.created, keep, now))
                },
                after,
                SCAN_ROWS,
            )
        })
        .await?;
        cursor.tickets = next;
        for batch in due.chunks(ERASE_BATCH) {
            self.write(
                batch
                    .iter()
                    .map(|ticket| Op::EraseTicket(ticket.0))
                    .collect(),
            )
            .await?;
            metrics::counter!("chathub_retention_erased_total", "kind" => "ticket")
                .increment(batch.len() as u64);
        }
        Ok(())
    }

    /// Erases the files of ended chats whose retention ran out (their
    /// channel's `file_retention`, else `[limits] file_retention`): first
    /// their records (durably), then their bytes; answers how many.
    pub async fn sweep_expired_files(&self) -> Result<usize, HubError> {
        let now = Timestamp::now();
        let global = self.shared.limits.file_retention;
        let mut removed = 0;
        let mut after = None;
        loop {
            let store = self.shared.store.clone();
            let hub = self.clone();
            let expired = blocking(move || {
                store.files_due(
                    |channel, ended| is_due(ended, hub.retention(channel).files_or(global), now),
                    after,
                    ERASE_BATCH,
                )
            })
            .await?;
            let Some(last) = expired.last() else {
                return Ok(removed);
            };
            after = Some(last.file.id);
            let full = expired.len() == ERASE_BATCH;
            self.write(
                expired
                    .iter()
                    .map(|stored| Op::ForgetFile(stored.file.id))
                    .collect(),
            )
            .await?;
            let batch = self
                .remove_file_bytes(expired.iter().map(|stored| stored.file.id))
                .await;
            removed += batch;
            metrics::counter!("chathub_files_expired_total").increment(batch as u64);
            metrics::counter!("chathub_retention_erased_total", "kind" => "file")
                .increment(batch as u64);
            if !full {
                return Ok(removed);
            }
        }
    }

    /// Removes the bytes of files whose records are durably gone; answers
    /// how many were on disk.
    async fn remove_file_bytes(&self, files: impl Iterator<Item = FileId>) -> usize {
        let mut removed = 0;
        for id in files {
            match self.shared.files.remove(id).await {
                Ok(Some(size)) => {
                    self.shared.files_used.fetch_sub(size, Ordering::Relaxed);
                    removed += 1;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(file = id.0, "cannot remove an erased file: {err}")
                }
            }
        }
        removed
    }

    /// Erases ended chats in one commit, then the bytes of their files;
    /// answers how many chats and files went. Chats that are live (or
    /// were never stored) are left alone.
    async fn erase_chats(&self, chats: &[ChatId]) -> Result<(usize, usize), HubError> {
        let store = self.shared.store.clone();
        let wanted = chats.to_vec();
        let traces = blocking(move || {
            let mut found = Vec::new();
            for chat in wanted {
                if let Some((traces, false)) = store.chat_traces(chat)? {
                    found.push((chat, traces));
                }
            }
            Ok(found)
        })
        .await?;
        let traces: Vec<_> = traces
            .into_iter()
            .filter(|(chat, _)| !self.shared.chats.contains_key(chat))
            .collect();
        if traces.is_empty() {
            return Ok((0, 0));
        }
        self.write(
            traces
                .iter()
                .map(|(chat, _)| Op::EraseChat(chat.0))
                .collect(),
        )
        .await?;
        let files = self
            .remove_file_bytes(traces.iter().flat_map(|(_, traces)| traces.files.clone()))
            .await;
        Ok((traces.len(), files))
    }

    /// Erases everything kept of the contact `key` (as the contact card
    /// names it: `email:…`, `name:…`, `verified:id:…`,
    /// `verified:email:…`): their ended chats (transcripts, session rows,
    /// ratings, undelivered webhook rows), the tickets made from those
    /// chats or linked to the key, the files shared in the chats (records
    /// and bytes) and the key's links. Only an admin may; a contact with a
    /// chat not yet ended is refused [`HubError::ContactBusy`].
    pub async fn forget_contact(&self, by: &AgentId, key: String) -> Result<Forgotten, HubError> {
        if self.role(by) != AgentRole::Admin {
            return Err(HubError::NotAllowed(format!(
                "{by} is not an admin; only admins may forget a contact"
            )));
        }
        check_contact_key(&key).map_err(|why| HubError::Invalid(why.into()))?;
        let store = self.shared.store.clone();
        let lookup = key.clone();
        let (history, traces) = blocking(move || {
            let history = store.contact(&lookup)?;
            let mut traces: Vec<(ChatId, ChatTraces, bool)> = Vec::new();
            for chat in &history.chats {
                if let Some((found, live)) = store.chat_traces(*chat)? {
                    traces.push((*chat, found, live));
                }
            }
            Ok((history, traces))
        })
        .await?;
        if let Some(chat) = traces
            .iter()
            .find(|(chat, _, live)| *live || self.shared.chats.contains_key(chat))
            .map(|(chat, _, _)| *chat)
        {
            return Err(HubError::ContactBusy(chat));
        }
        let mut tickets: Vec<TicketId> = history
            .tickets
            .iter()
            .copied()
            .chain(
                traces
                    .iter()
                    .flat_map(|(_, found, _)| found.tickets.iter().copied()),
            )
            .collect();
        tickets.sort();
        tickets.dedup();
        let files: Vec<FileId> = traces
            .iter()
            .flat_map(|(_, found, _)| found.files.iter().copied())
            .collect();
        let store = self.shared.store.clone();
        let wanted = tickets.clone();
        let tickets_kept = blocking(move || {
            let mut kept = 0u32;
            for ticket in wanted {
                if store.ticket(ticket)?.is_some() {
                    kept += 1;
                }
            }
            Ok(kept)
        })
        .await?;
        let mut ops: Vec<Op> = traces
            .iter()
            .map(|(chat, _, _)| Op::EraseChat(chat.0))
            .chain(tickets.iter().map(|ticket| Op::EraseTicket(ticket.0)))
            .collect();
        ops.push(Op::EraseContact(key.clone()));
        // The contact's links go in the last commit, so a crash between
        // commits leaves what remains findable by asking again.
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            self.write(ops.by_ref().take(FORGET_OPS).collect()).await?;
        }
        let removed = self.remove_file_bytes(files.iter().copied()).await;
        metrics::counter!("chathub_contacts_forgotten_total").increment(1);
        let forgotten = Forgotten {
            chats: u32::try_from(traces.len()).unwrap_or(u32::MAX),
            tickets: tickets_kept,
            files: u32::try_from(removed).unwrap_or(u32::MAX),
        };
        tracing::info!(
            by = %by,
            chats = forgotten.chats,
            tickets = forgotten.tickets,
            files = forgotten.files,
            "forgot a contact"
        );
        Ok(forgotten)
    }
}
