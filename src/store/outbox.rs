//! The webhook outbox: one row per configured webhook for every lifecycle
//! event of a chat (see [`LifecycleKind`]) and every rating, written by the
//! apply thread in the same transaction as the event or rating itself, so
//! that whatever the log made durable (and so was acknowledged) is in the
//! outbox once applied, after a crash too: replaying a group writes the
//! same rows under the same keys again. A row is removed by
//! [`Op::Delivered`] once its receiver accepted it.
//!
//! Rows are keyed `(webhook, chat, seq, sub)`: `sub` is 0 for a chat event
//! and the rating's time (ms) for a rating, whose `seq` is the chat's last
//! event (its end) when it was rated. A webhook's rows of one chat are so in
//! the order the chat lived them.

use std::sync::{Arc, OnceLock};

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};

use crate::core::{ChannelId, ChatEvent, ChatEventKind, ChatId, LifecycleKind, Rating};

use super::{Op, Store, StoreError, engine, tables};

/// Where an outbox row sits: its chat, the seq of the event it reports
/// (for a rating, of the chat's end), and 0 for an event or the rating's
/// time in ms for a rating.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode,
)]
pub struct OutboxKey {
    /// The chat.
    pub chat: u64,
    /// The event's seq; for a rating, the seq of the end it follows.
    pub seq: u64,
    /// 0 for an event; the rating's time (ms) for a rating.
    pub sub: u64,
}

/// What an outbox row reports.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum OutboxItem {
    /// A lifecycle event of a chat.
    Event(ChatEvent),
    /// The customer's rating of the chat.
    Rating(Rating),
}

impl OutboxItem {
    /// The lifecycle kind it reports.
    pub fn kind(&self) -> LifecycleKind {
        match self {
            // Only lifecycle events are put in the outbox (`touches`), so
            // the fallback is never taken.
            Self::Event(event) => LifecycleKind::of(&event.kind).unwrap_or(LifecycleKind::Started),
            Self::Rating(_) => LifecycleKind::Rated,
        }
    }
}

/// One pending delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// Where it sits.
    pub key: OutboxKey,
    /// What it reports.
    pub item: OutboxItem,
}

/// What a delivery needs from the chat beside its row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxContext {
    /// The channel the chat was in at the row's event (the last start or
    /// requeue at or before it); `None` if its events are gone.
    pub channel: Option<ChannelId>,
    /// For an end, the newest events up to it whose text fits
    /// [`WEBHOOK_TRANSCRIPT_BYTES`], oldest first; empty otherwise.
    pub transcript: Vec<ChatEvent>,
    /// How many earlier events the transcript leaves out.
    pub omitted: u64,
    /// For an end, the tags the chat carried at it, in order.
    pub tags: Vec<String>,
}

/// The most bytes of transcript (text, plus 64 bytes an event) an `ended`
/// delivery carries: the newest events that fit.
pub const WEBHOOK_TRANSCRIPT_BYTES: u64 = 256 << 10;

/// What an event costs beyond its text, for [`WEBHOOK_TRANSCRIPT_BYTES`].
const EVENT_OVERHEAD_BYTES: u64 = 64;

/// The webhooks rows are written for, and whom to tell when rows were
/// written. Fixed when the store opens.
#[derive(Default)]
pub struct OutboxHook {
    pub(super) targets: Vec<String>,
    bell: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl OutboxHook {
    /// Rows for each of `targets` (webhook names).
    pub(crate) fn new(targets: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            targets,
            bell: OnceLock::new(),
        })
    }

    /// Tells whoever asked (see [`Store::on_outbox_rows`]) that rows came.
    pub(super) fn ring(&self) {
        if let Some(bell) = self.bell.get() {
            bell();
        }
    }
}

impl std::fmt::Debug for OutboxHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxHook")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

/// The [`tables::META`] key counting `webhook`'s rows.
fn rows_key(webhook: &str) -> String {
    format!("{}{webhook}", tables::OUTBOX_ROWS)
}

/// The outbox writes of one apply transaction.
pub(super) struct OutboxWrites<'t> {
    outbox: Table<'t, (&'static str, u64, u64, u64), &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    /// Rows written, so the apply thread rings the bell.
    pub(super) added: usize,
}

impl<'t> OutboxWrites<'t> {
    pub(super) fn open(write: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            outbox: write.open_table(tables::OUTBOX).map_err(engine)?,
            meta: write.open_table(tables::META).map_err(engine)?,
            added: 0,
        })
    }

    /// Writes `item` under `key` for every target.
    fn put(
        &mut self,
        hook: &OutboxHook,
        key: OutboxKey,
        item: &OutboxItem,
    ) -> Result<(), StoreError> {
        let value = tables::encode(item)?;
        for target in &hook.targets {
            let earlier = self
                .outbox
                .insert(
                    (target.as_str(), key.chat, key.seq, key.sub),
                    value.as_slice(),
                )
                .map_err(engine)?
                .is_some();
            if !earlier {
                self.count(target, 1)?;
            }
            self.added += 1;
        }
        Ok(())
    }

    /// Moves `webhook`'s row count by `by`.
    fn count(&mut self, webhook: &str, by: i64) -> Result<(), StoreError> {
        let key = rows_key(webhook);
        let now = self
            .meta
            .get(key.as_str())
            .map_err(engine)?
            .map_or(0, |rows| rows.value());
        let next = now.saturating_add_signed(by);
        self.meta.insert(key.as_str(), next).map_err(engine)?;
        Ok(())
    }

    /// Removes every row of `chat`, for every target.
    pub(super) fn erase_chat(&mut self, hook: &OutboxHook, chat: u64) -> Result<(), StoreError> {
        for target in &hook.targets {
            let mut removed = 0i64;
            self.outbox
                .retain_in(
                    (target.as_str(), chat, 0, 0)..=(target.as_str(), chat, u64::MAX, u64::MAX),
                    |_, _| {
                        removed += 1;
                        false
                    },
                )
                .map_err(engine)?;
            if removed > 0 {
                self.count(target, -removed)?;
            }
        }
        Ok(())
    }

    /// The rows `op` makes or removes.
    pub(super) fn apply(
        &mut self,
        hook: &OutboxHook,
        op: &Op,
        last_seq: impl FnOnce(u64) -> Result<Option<u64>, StoreError>,
    ) -> Result<(), StoreError> {
        match op {
            Op::Event(event) if LifecycleKind::of(&event.kind).is_some() => {
                let key = OutboxKey {
                    chat: event.chat.0,
                    seq: event.seq,
                    sub: 0,
                };
                self.put(hook, key, &OutboxItem::Event(event.clone()))
            }
            Op::Rate { chat, rating } => {
                let Some(seq) = last_seq(*chat)? else {
                    return Ok(());
                };
                let key = OutboxKey {
                    chat: *chat,
                    seq,
                    sub: rating.at.as_millis().max(1),
                };
                self.put(hook, key, &OutboxItem::Rating(rating.clone()))
            }
            Op::Delivered { webhook, key } => {
                let removed = self
                    .outbox
                    .remove((webhook.as_str(), key.chat, key.seq, key.sub))
                    .map_err(engine)?
                    .is_some();
                if removed {
                    self.count(webhook, -1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Whether `op` touches the outbox when `hook` has targets.
pub(super) fn touches(hook: &OutboxHook, op: &Op) -> bool {
    match op {
        Op::Event(event) => !hook.targets.is_empty() && LifecycleKind::of(&event.kind).is_some(),
        Op::Rate { .. } => !hook.targets.is_empty(),
        Op::Delivered { .. } => true,
        _ => false,
    }
}

/// Removes the rows (and counts) of webhooks that are not among
/// `targets`: a webhook taken out of the configuration delivers nothing
/// more. Answers how many rows went.
pub(super) fn prune(db: &redb::Database, targets: &[String]) -> Result<u64, StoreError> {
    let write = db.begin_write().map_err(engine)?;
    let mut removed = 0;
    {
        let mut outbox = write.open_table(tables::OUTBOX).map_err(engine)?;
        let mut meta = write.open_table(tables::META).map_err(engine)?;
        let mut stale = Vec::new();
        for row in meta.iter().map_err(engine)? {
            let (key, _) = row.map_err(engine)?;
            if let Some(name) = key.value().strip_prefix(tables::OUTBOX_ROWS)
                && !targets.iter().any(|target| target == name)
            {
                stale.push(name.to_owned());
            }
        }
        for name in stale {
            outbox
                .retain_in(
                    (name.as_str(), 0, 0, 0)..=(name.as_str(), u64::MAX, u64::MAX, u64::MAX),
                    |_, _| {
                        removed += 1;
                        false
                    },
                )
                .map_err(engine)?;
            meta.remove(rows_key(&name).as_str()).map_err(engine)?;
        }
    }
    write.commit().map_err(engine)?;
    Ok(removed)
}

impl Store {
    /// A read transaction over what the apply thread has written so far,
    /// without waiting for (or hurrying) what is durable but not yet
    /// applied: outbox rows appear once applied, and the bell rings then.
    fn read_applied(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.progress.now()?;
        self.db.begin_read().map_err(engine)
    }

    /// The last commit-log group made durable: every write whose
    /// completion has run is at or below it.
    pub fn durable_mark(&self) -> Result<u64, StoreError> {
        Ok(self.progress.now()?.0)
    }

    /// The last commit-log group applied to the database: a read begun
    /// after this answered sees every group up to it.
    pub fn applied_mark(&self) -> Result<u64, StoreError> {
        Ok(self.progress.now()?.1)
    }

    /// Calls `bell` (on the apply thread: keep it short) whenever rows were
    /// added to the outbox. Only the first call counts.
    pub fn on_outbox_rows(&self, bell: impl Fn() + Send + Sync + 'static) {
        let _ = self.outbox.bell.set(Box::new(bell));
    }

    /// Up to `limit` of `webhook`'s rows, in key order, from chat
    /// `from_chat` on, as applied so far (see [`Store::applied_mark`]): a
    /// row removed by a durable [`Op::Delivered`] may still be among them
    /// until that group is applied.
    pub fn outbox_page(
        &self,
        webhook: &str,
        from_chat: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let read = self.read_applied()?;
        let outbox = read.open_table(tables::OUTBOX).map_err(engine)?;
        let mut rows = Vec::new();
        for row in outbox
            .range((webhook, from_chat, 0, 0)..=(webhook, u64::MAX, u64::MAX, u64::MAX))
            .map_err(engine)?
        {
            if rows.len() >= limit {
                break;
            }
            let (key, value) = row.map_err(engine)?;
            let (_, chat, seq, sub) = key.value();
            rows.push(OutboxRow {
                key: OutboxKey { chat, seq, sub },
                item: tables::decode(value.value())?,
            });
        }
        Ok(rows)
    }

    /// How many rows wait for `webhook` (as applied so far).
    pub fn outbox_len(&self, webhook: &str) -> Result<u64, StoreError> {
        let read = self.read_applied()?;
        let meta = read.open_table(tables::META).map_err(engine)?;
        Ok(meta
            .get(rows_key(webhook).as_str())
            .map_err(engine)?
            .map_or(0, |rows| rows.value()))
    }

    /// The channel `chat` was in at event `seq` and, with `transcript`, its
    /// newest events up to `seq` within [`WEBHOOK_TRANSCRIPT_BYTES`]. Reads
    /// what is applied: a row's events are, since the row was written
    /// with them.
    pub fn outbox_context(
        &self,
        chat: ChatId,
        seq: u64,
        transcript: bool,
    ) -> Result<OutboxContext, StoreError> {
        let read = self.read_applied()?;
        let events = read.open_table(tables::EVENTS).map_err(engine)?;
        let mut context = OutboxContext::default();
        let mut budget = if transcript {
            WEBHOOK_TRANSCRIPT_BYTES
        } else {
            0
        };
        let mut full = !transcript;
        let mut newest_first = Vec::new();
        // Walking back, a tag's newest `Tagged` or `Untagged` decides.
        let mut tags = std::collections::BTreeMap::new();
        for row in events
            .range((chat.0, 0)..=(chat.0, seq))
            .map_err(engine)?
            .rev()
        {
            let (_, value) = row.map_err(engine)?;
            let event: ChatEvent = tables::decode(value.value())?;
            if context.channel.is_none() {
                match &event.kind {
                    ChatEventKind::Started { channel, .. }
                    | ChatEventKind::Requeued { channel, .. } => {
                        context.channel = Some(channel.clone());
                    }
                    _ => {}
                }
            }
            match &event.kind {
                ChatEventKind::Tagged { tag, .. } => {
                    tags.entry(tag.clone()).or_insert(true);
                }
                ChatEventKind::Untagged { tag, .. } => {
                    tags.entry(tag.clone()).or_insert(false);
                }
                _ => {}
            }
            if event.kind.is_for_agents_only() {
                // Private notes stay with the chat, as with tickets.
                continue;
            }
            if !full {
                let cost = event.text_bytes() + EVENT_OVERHEAD_BYTES;
                if cost <= budget {
                    budget -= cost;
                    newest_first.push(event);
                    continue;
                }
                full = true;
                // Seqs run from 1 without gaps: this one and all before it
                // are left out (notes among them counted too).
                context.omitted = event.seq;
            }
            // An end's tags need every event before it.
            if context.channel.is_some() && !transcript {
                break;
            }
        }
        newest_first.reverse();
        context.transcript = newest_first;
        context.tags = tags
            .into_iter()
            .filter_map(|(tag, on)| on.then_some(tag))
            .collect();
        Ok(context)
    }
}
