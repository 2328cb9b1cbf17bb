//! The tables and how values are encoded in them.

use bincode::config::standard;
use bincode::{Decode, Encode};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::store::StoreError;

/// Every chat event: (chat, seq) -> encoded `ChatEvent`.
pub(super) const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
/// Chats that have not ended: chat -> ().
pub(super) const LIVE: TableDefinition<u64, ()> = TableDefinition::new("live");
/// Digest of each chat's customer resume token: chat -> digest.
pub(super) const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("tokens");
/// The chat each resume token digest belongs to: digest -> chat. Makes a
/// retried start find the chat it already made.
pub(super) const TOKEN_CHATS: TableDefinition<&[u8], u64> = TableDefinition::new("token_chats");
/// Ended chats: (ended at ms, chat) -> encoded `SessionSummary`.
pub(super) const SESSIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("sessions");
/// When each ended chat ended: chat -> ended at ms (to page by chat id).
pub(super) const SESSION_ENDED: TableDefinition<u64, u64> = TableDefinition::new("session_ended");
/// The tags each ended chat carried at its end: chat -> encoded
/// `Vec<String>` (no row for none).
pub(super) const SESSION_TAGS: TableDefinition<u64, &[u8]> = TableDefinition::new("session_tags");
/// Tickets: id -> encoded `Ticket`.
pub(super) const TICKETS: TableDefinition<u64, &[u8]> = TableDefinition::new("tickets");
/// Quick replies, FAQ articles, templates: id -> encoded `KnowledgeItem`.
pub(super) const KNOWLEDGE: TableDefinition<u64, &[u8]> = TableDefinition::new("knowledge");
/// Shared files: id -> encoded `StoredFile` (the bytes are in `files/`).
pub(super) const FILES: TableDefinition<u64, &[u8]> = TableDefinition::new("files");
/// A contact's chats: (contact key, chat) -> ().
pub(super) const CONTACT_CHATS: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("contact_chats");
/// A contact's tickets: (contact key, ticket) -> ().
pub(super) const CONTACT_TICKETS: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("contact_tickets");

/// Ticket list rows: ticket id -> [`TicketSummary`](crate::core::TicketSummary),
/// so listing tickets never decodes their transcripts.
pub(super) const TICKET_SUMMARIES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("ticket_summaries");

/// Customers' ratings of ended chats: chat -> encoded
/// [`Rating`](crate::core::Rating).
pub(super) const RATINGS: TableDefinition<u64, &[u8]> = TableDefinition::new("ratings");

/// Webhook deliveries not yet answered 2xx: (webhook, chat, seq, rating
/// time in ms or 0 for a chat event) -> encoded
/// [`OutboxItem`](crate::store::OutboxItem). Written in the same apply
/// transaction as the event or rating it reports, removed by
/// [`Op::Delivered`](crate::store::Op::Delivered).
pub(super) const OUTBOX: TableDefinition<(&str, u64, u64, u64), &[u8]> =
    TableDefinition::new("outbox");

/// Bookkeeping: `LOG_GROUP` -> the last commit-log group applied here.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The [`META`] key of the last applied commit-log group.
pub(super) const LOG_GROUP: &str = "log_group";
/// The prefix of the [`META`] keys that count each webhook's outbox rows
/// (`outbox_rows:<webhook>`).
pub(super) const OUTBOX_ROWS: &str = "outbox_rows:";
/// The [`META`] key of the layout the tables and values follow.
pub(super) const SCHEMA: &str = "schema";
/// The layout this build reads and writes. A database without the key was
/// written before it was kept, in this same layout.
pub(super) const SCHEMA_VERSION: u64 = 1;

/// Checks the database's layout is this build's, and records it.
pub(super) fn check_schema(db: &Database) -> Result<(), StoreError> {
    let failed = |err: redb::Error| StoreError::Engine(err.to_string());
    let write = db.begin_write().map_err(|err| failed(err.into()))?;
    {
        let mut meta = write.open_table(META).map_err(|err| failed(err.into()))?;
        let found = meta
            .get(SCHEMA)
            .map_err(|err| failed(err.into()))?
            .map(|version| version.value());
        match found {
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Schema {
                    found: other,
                    known: SCHEMA_VERSION,
                });
            }
            None => {
                meta.insert(SCHEMA, SCHEMA_VERSION)
                    .map_err(|err| failed(err.into()))?;
            }
        }
    }
    write.commit().map_err(|err| failed(err.into()))
}

/// The most bytes one stored value may decode from.
pub(crate) const MAX_VALUE_BYTES: usize = 64 << 20;

/// Creates every table, so readers never meet a missing one.
pub(super) fn create_all(db: &Database) -> Result<(), redb::Error> {
    let write = db.begin_write()?;
    write.open_table(EVENTS)?;
    write.open_table(LIVE)?;
    write.open_table(TOKENS)?;
    write.open_table(TOKEN_CHATS)?;
    write.open_table(SESSIONS)?;
    write.open_table(SESSION_ENDED)?;
    write.open_table(TICKETS)?;
    write.open_table(KNOWLEDGE)?;
    write.open_table(FILES)?;
    write.open_table(CONTACT_CHATS)?;
    write.open_table(CONTACT_TICKETS)?;
    write.open_table(META)?;
    write.open_table(TICKET_SUMMARIES)?;
    write.open_table(RATINGS)?;
    write.open_table(OUTBOX)?;
    write.open_table(SESSION_TAGS)?;
    write.commit()?;
    Ok(())
}

/// Writes the list row of every ticket that has none (tickets stored
/// before rows were kept); answers how many it wrote.
pub(super) fn backfill_ticket_summaries(db: &Database) -> Result<usize, StoreError> {
    let failed = |err: redb::Error| StoreError::Engine(err.to_string());
    let write = db.begin_write().map_err(|err| failed(err.into()))?;
    let mut written = 0;
    {
        let tickets = write
            .open_table(TICKETS)
            .map_err(|err| failed(err.into()))?;
        let mut summaries = write
            .open_table(TICKET_SUMMARIES)
            .map_err(|err| failed(err.into()))?;
        let (all, rows) = (
            tickets.len().map_err(|err| failed(err.into()))?,
            summaries.len().map_err(|err| failed(err.into()))?,
        );
        if all != rows {
            for row in tickets.iter().map_err(|err| failed(err.into()))? {
                let (id, value) = row.map_err(|err| failed(err.into()))?;
                let id = id.value();
                if summaries
                    .get(id)
                    .map_err(|err| failed(err.into()))?
                    .is_none()
                {
                    let summary = decode::<crate::core::Ticket>(value.value())?.summary();
                    summaries
                        .insert(id, encode(&summary)?.as_slice())
                        .map_err(|err| failed(err.into()))?;
                    written += 1;
                }
            }
        }
    }
    write.commit().map_err(|err| failed(err.into()))?;
    Ok(written)
}

/// Encodes a value to store; one larger than [`MAX_VALUE_BYTES`] is
/// refused, as it could never be read back.
pub(super) fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, StoreError> {
    let bytes = bincode::encode_to_vec(value, standard())
        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Corrupt(format!(
            "a value of {} bytes, more than the {MAX_VALUE_BYTES} a stored value may have",
            bytes.len()
        )));
    }
    Ok(bytes)
}

pub(super) fn decode<T: Decode<()>>(bytes: &[u8]) -> Result<T, StoreError> {
    bincode::decode_from_slice(bytes, standard().with_limit::<MAX_VALUE_BYTES>())
        .map(|(value, _)| value)
        .map_err(|err| StoreError::Corrupt(err.to_string()))
}
