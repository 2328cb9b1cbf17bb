//! The single writer: group commit.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use redb::Database;

use crate::core::{ChatEvent, ChatEventKind, ItemId, KnowledgeItem, SessionSummary, Ticket};
use crate::store::StoredFile;
use crate::store::{StoreError, engine, tables};

/// One write.
#[derive(Debug, Clone)]
pub enum Op {
    /// Append a chat event. A start marks the chat live; an end, ended.
    Event(ChatEvent),
    /// Keep the digest of a chat's customer resume token.
    Token {
        /// The chat.
        chat: u64,
        /// The digest.
        digest: Vec<u8>,
    },
    /// Keep an ended chat's summary for recent sessions.
    Session(SessionSummary),
    /// Keep a ticket.
    Ticket(Box<Ticket>),
    /// Keep (or replace) a knowledge item.
    Knowledge(Box<KnowledgeItem>),
    /// Forget a knowledge item.
    ForgetKnowledge(ItemId),
    /// Keep a shared file's description (its bytes are already on disk).
    File(StoredFile),
    /// Link a chat to a contact (by a key from [`contact_keys`](crate::store::contact_keys)).
    ContactChat {
        /// The contact key.
        key: String,
        /// The chat.
        chat: u64,
    },
    /// Link a ticket to a contact.
    ContactTicket {
        /// The contact key.
        key: String,
        /// The ticket.
        ticket: u64,
    },
}

/// Runs once the write is durable (`Ok`) or has failed (`Err`). Called on
/// the writer thread: keep it short (send a message, complete a channel).
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    ops: Vec<Op>,
    done: Done,
}

enum Msg {
    Job(Job),
    /// Commit what came before, then stop; the sender learns when done.
    Stop(mpsc::Sender<()>),
}

/// The most operations one transaction gathers.
const MAX_GROUP_OPS: usize = 16_384;

/// A handle on the writer thread. Cheap to clone; the thread stops when the
/// last handle is dropped, after committing what it was given.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Msg>,
}

impl Writer {
    pub(crate) fn start(db: Arc<Database>) -> std::io::Result<Writer> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("chathub-store".into())
            .spawn(move || run(db, rx))?;
        Ok(Writer { jobs })
    }

    /// Queues `ops` for the next group commit; `done` runs after it.
    pub fn submit(&self, ops: Vec<Op>, done: Done) {
        if let Err(mpsc::SendError(Msg::Job(job))) = self.jobs.send(Msg::Job(Job { ops, done })) {
            (job.done)(Err(StoreError::Closed));
        }
    }

    /// Commits everything submitted so far, stops the thread and waits for
    /// it. Later submissions fail with [`StoreError::Closed`].
    pub fn close(&self) {
        let (tx, rx) = mpsc::channel();
        if self.jobs.send(Msg::Stop(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn run(db: Arc<Database>, rx: mpsc::Receiver<Msg>) {
    let mut stop = None;
    while stop.is_none() {
        let first = match rx.recv() {
            Ok(Msg::Job(job)) => job,
            Ok(Msg::Stop(done)) => {
                stop = Some(done);
                break;
            }
            Err(_) => break,
        };
        let mut ops = first.ops.len();
        let mut jobs = vec![first];
        while ops < MAX_GROUP_OPS {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => {
                    ops += job.ops.len();
                    jobs.push(job);
                }
                Ok(Msg::Stop(done)) => {
                    stop = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = commit(&db, &jobs);
        metrics::histogram!("chathub_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chathub_store_commit_ops").record(ops as f64);
        if let Err(err) = &result {
            tracing::error!("store commit failed: {err}");
            metrics::counter!("chathub_store_commit_failures_total").increment(1);
        }
        for job in jobs {
            (job.done)(result.clone());
        }
    }
    // Refuse whatever arrives from now on, then release the database.
    drop(rx);
    drop(db);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

fn commit(db: &Database, jobs: &[Job]) -> Result<(), StoreError> {
    let write = db.begin_write().map_err(engine)?;
    {
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
        for op in jobs.iter().flat_map(|job| &job.ops) {
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
            }
        }
    }
    write.commit().map_err(engine)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use super::*;
    use crate::core::{ChannelId, ChatId, Customer, Party, Timestamp};
    use crate::store::Store;

    fn event(chat: u64, seq: u64, kind: ChatEventKind) -> ChatEvent {
        ChatEvent {
            chat: ChatId(chat),
            seq,
            at: Timestamp(seq * 10),
            kind,
        }
    }

    fn started(chat: u64) -> ChatEvent {
        event(
            chat,
            1,
            ChatEventKind::Started {
                channel: ChannelId::new("support"),
                customer: Customer::default(),
            },
        )
    }

    fn message(chat: u64, seq: u64) -> ChatEvent {
        event(
            chat,
            seq,
            ChatEventKind::Message {
                from: Party::Customer,
                client_id: seq,
                text: format!("message {seq}"),
            },
        )
    }

    fn write(store: &Store, ops: Vec<Op>) -> Result<(), StoreError> {
        let (tx, rx) = std_mpsc::channel();
        store
            .writer()
            .submit(ops, Box::new(move |result| tx.send(result).unwrap()));
        rx.recv().unwrap()
    }

    #[test]
    fn writes_survive_reopening_and_live_chats_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            write(
                &store,
                vec![Op::Event(started(1)), Op::Event(message(1, 2))],
            )
            .unwrap();
            write(&store, vec![Op::Event(started(2))]).unwrap();
            let ended = event(
                2,
                2,
                ChatEventKind::Ended {
                    by: Party::Customer,
                },
            );
            write(&store, vec![Op::Event(ended)]).unwrap();
            write(
                &store,
                vec![Op::Token {
                    chat: 1,
                    digest: vec![7; 32],
                }],
            )
            .unwrap();
            store.close();
            assert_eq!(
                write(&store, vec![Op::Event(started(3))]),
                Err(StoreError::Closed)
            );
        }
        let store = Store::open(dir.path()).unwrap();
        let live = store.live_chats().unwrap();
        assert_eq!(live.len(), 1, "the ended chat is not live");
        assert_eq!(
            live[0].events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(live[0].token_digest.as_deref(), Some(&[7u8; 32][..]));
        assert_eq!(store.last_chat_id().unwrap(), 2);
        let page = store.transcript(ChatId(2), 0).unwrap().unwrap();
        assert_eq!(page.events.len(), 2);
        assert!(!page.more);
        assert_eq!(store.transcript(ChatId(9), 0).unwrap(), None);
    }

    #[test]
    fn many_concurrent_writes_are_grouped_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (tx, rx) = std_mpsc::channel();
        for chat in 1..=200u64 {
            let tx = tx.clone();
            store.writer().submit(
                vec![Op::Event(started(chat)), Op::Event(message(chat, 2))],
                Box::new(move |result| tx.send((chat, result)).unwrap()),
            );
        }
        drop(tx);
        let acks: Vec<_> = rx.iter().collect();
        assert_eq!(acks.len(), 200);
        assert!(acks.iter().all(|(_, result)| result.is_ok()));
        assert_eq!(store.live_chats().unwrap().len(), 200);
    }

    #[test]
    fn a_file_that_is_not_a_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("chathub.redb"),
            b"this is not a database, just text",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("chathub.redb"));
    }
}
