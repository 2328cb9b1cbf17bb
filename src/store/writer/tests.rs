//! The writer, through its handle and over its files.

use std::sync::mpsc as std_mpsc;

use super::*;
use crate::core::{ChannelId, ChatId, Customer, Party, Timestamp};
use crate::store::Store;
use crate::store::log::FileLog;

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
fn a_database_of_another_layout_is_refused_by_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.close();
    drop(store);
    {
        let db = Database::create(dir.path().join("chathub.redb")).unwrap();
        let write = db.begin_write().unwrap();
        write
            .open_table(tables::META)
            .unwrap()
            .insert(tables::SCHEMA, 99)
            .unwrap();
        write.commit().unwrap();
    }
    match Store::open(dir.path()) {
        Err(StoreError::Schema { found: 99, known }) => {
            assert_eq!(known, tables::SCHEMA_VERSION);
        }
        Err(other) => panic!("expected a schema error, got {other:?}"),
        Ok(_) => panic!("expected a schema error, got an open store"),
    }
}

#[test]
fn an_op_too_large_to_store_fails_alone_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let huge = event(
        1,
        2,
        ChatEventKind::Message {
            from: Party::Customer,
            client_id: 2,
            text: "x".repeat(tables::MAX_VALUE_BYTES + 1),
        },
    );
    // Submitted together, so they may share a group.
    let (tx, rx) = std_mpsc::channel();
    for (n, ops) in [
        vec![Op::Event(started(1)), Op::Event(huge)],
        vec![Op::Event(started(2))],
        vec![Op::Event(started(3))],
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        store
            .writer()
            .submit(ops, Box::new(move |result| tx.send((n, result)).unwrap()));
    }
    let mut results: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
    results.sort_by_key(|(n, _)| *n);
    assert!(
        matches!(results[0].1, Err(StoreError::Corrupt(_))),
        "{results:?}"
    );
    assert!(results[1].1.is_ok() && results[2].1.is_ok(), "{results:?}");
    // Not broken: later writes and reads work, and the refused op is
    // nowhere.
    write(&store, vec![Op::Event(message(2, 2))]).unwrap();
    let live = store.live_chats().unwrap().chats;
    let chats: Vec<u64> = live.iter().map(|chat| chat.events[0].chat.0).collect();
    assert_eq!(chats, [2, 3]);
    store.close();
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
    let live = store.live_chats().unwrap().chats;
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
    assert_eq!(store.live_chats().unwrap().chats.len(), 200);
}

#[test]
fn a_read_after_an_acknowledgement_sees_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for chat in 1..=50u64 {
        write(&store, vec![Op::Event(started(chat))]).unwrap();
        // Acknowledged, so applied before any read that starts now,
        // although the apply thread gathers for a while.
        let stored = store.chat(ChatId(chat)).unwrap();
        assert!(
            stored.is_some(),
            "chat {chat} acknowledged but not read back"
        );
    }
}

/// The group the database last applied.
fn applied(dir: &std::path::Path) -> u64 {
    let db = Database::open(dir.join("chathub.redb")).unwrap();
    let read = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = read.open_table(tables::META).unwrap();
    meta.get(tables::LOG_GROUP).unwrap().unwrap().value()
}

#[test]
fn groups_only_in_the_log_are_applied_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write(&store, vec![Op::Event(started(1))]).unwrap();
        write(&store, vec![Op::Event(message(1, 2))]).unwrap();
        store.close();
    }
    assert_eq!(applied(dir.path()), 2);
    // As after a crash: two groups made durable by the log alone.
    {
        let wal = dir.path().join("chathub.wal");
        let (mut log, replay) = FileLog::open(&wal, 2).unwrap();
        assert!(replay.groups.is_empty(), "a clean close leaves nothing");
        let third = [Op::Event(message(1, 3)), Op::Event(started(2))];
        log.append(3, third.len(), &mut third.iter()).unwrap();
        log.append(4, 1, &mut [Op::Event(message(2, 2))].iter())
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let live = store.live_chats().unwrap().chats;
    let seqs: Vec<Vec<u64>> = live
        .iter()
        .map(|chat| chat.events.iter().map(|e| e.seq).collect())
        .collect();
    assert_eq!(seqs, [vec![1, 2, 3], vec![1, 2]]);
    // New groups continue after the replayed ones.
    write(&store, vec![Op::Event(message(2, 3))]).unwrap();
    store.close();
    drop(store);
    assert_eq!(applied(dir.path()), 5);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.live_chats().unwrap().chats[1].events.len(), 3);
}

#[test]
fn the_log_alternates_its_files_at_each_checkpoint_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let options = crate::store::StoreOptions {
        checkpoint_bytes: 2048,
        ..Default::default()
    };
    {
        let store = Store::open_with(dir.path(), options.clone()).unwrap();
        for chat in 1..=40u64 {
            write(&store, vec![Op::Event(started(chat))]).unwrap();
            for seq in 2..=20 {
                let mut long = message(chat, seq);
                if let ChatEventKind::Message { text, .. } = &mut long.kind {
                    *text = "x".repeat(4000);
                }
                write(&store, vec![Op::Event(long)]).unwrap();
            }
        }
        // 3 MB of records, a checkpoint every 2 KiB: the log went from
        // one file to the other each time, starting it over, so neither
        // grew past its first 1 MiB step.
        for name in ["chathub.wal", "chathub.wal.1"] {
            let wal = std::fs::metadata(dir.path().join(name)).unwrap();
            assert_eq!(wal.len(), 1 << 20, "{name}");
        }
        store.close();
    }
    let store = Store::open_with(dir.path(), options).unwrap();
    let live = store.live_chats().unwrap().chats;
    assert_eq!(live.len(), 40);
    for chat in &live {
        let seqs: Vec<u64> = chat.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    }
}

#[test]
fn a_log_file_is_written_over_only_once_its_checkpoint_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chathub.wal");
    let (log, _) = FileLog::open(&path, 0).unwrap();
    let progress = Arc::new(Progress::new(0));
    // This test is the apply thread: it answers checkpoints when it
    // chooses.
    let (tx, applier) = mpsc::sync_channel(APPLY_BACKLOG);
    *progress.apply.lock().unwrap() = Some(ApplyQueue {
        tx,
        thread: std::thread::current(),
    });
    let mut state = State {
        log: Box::new(log),
        // Every group fills its file.
        checkpoint_bytes: 1,
        checkpointing: None,
        group: 0,
        progress,
        applier: None,
    };
    let log_thread = std::thread::spawn(move || {
        for seq in 1..=3 {
            let job = Job {
                ops: vec![Op::Event(message(1, seq))],
                done: Box::new(|_| {}),
            };
            let group = state.commit(&[job], 1).unwrap();
            state.apply(group, Vec::new());
            state.checkpoint_if_due();
        }
    });
    let next = || applier.recv_timeout(Duration::from_secs(10)).unwrap();
    let answer = |work: Apply| match work {
        // The last one's asker may be gone.
        Apply::Checkpoint(reply) => drop(reply.send(Ok(()))),
        _ => panic!("expected a checkpoint"),
    };
    let groups = |durable| {
        let (_, replay) = FileLog::open(&path, durable).unwrap();
        replay
            .groups
            .iter()
            .map(|(group, _)| *group)
            .collect::<Vec<_>>()
    };
    // Group 1 filled the first file; the log went on in the second
    // without waiting for the checkpoint...
    assert!(matches!(next(), Apply::Group(1, _)));
    let first_checkpoint = next();
    assert!(matches!(next(), Apply::Group(2, _)));
    // ...but, the second full too, it waits: the first file still holds
    // group 1, not yet durable in the database.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!log_thread.is_finished());
    assert_eq!(groups(0), [1, 2]);
    // Checkpoint done: group 3 goes over group 1.
    answer(first_checkpoint);
    let second_checkpoint = next();
    assert!(matches!(next(), Apply::Group(3, _)));
    assert_eq!(groups(1), [2, 3]);
    answer(second_checkpoint);
    log_thread.join().unwrap();
    answer(next());
}

#[test]
fn a_log_that_skips_groups_stops_the_open_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write(&store, vec![Op::Event(started(1))]).unwrap();
        store.close();
    }
    {
        let (mut log, _) = FileLog::open(&dir.path().join("chathub.wal"), 1).unwrap();
        log.append(3, 1, &mut [Op::Event(message(1, 2))].iter())
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("chathub.wal"), "{err}");
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

fn ended(chat: u64, seq: u64) -> ChatEvent {
    event(
        chat,
        seq,
        ChatEventKind::Ended {
            by: Party::Customer,
        },
    )
}

fn outbox_keys(store: &Store, webhook: &str) -> Vec<(u64, u64, u64)> {
    store
        .outbox_page(webhook, 0, 1_000)
        .unwrap()
        .into_iter()
        .map(|row| (row.key.chat, row.key.seq, row.key.sub))
        .collect()
}

#[test]
fn lifecycle_events_and_ratings_get_an_outbox_row_per_webhook_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let options = crate::store::StoreOptions {
        webhooks: vec!["crm".into(), "bi".into()],
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), options).unwrap();
    let rating = Rating {
        rating: 4,
        comment: None,
        at: Timestamp(99),
    };
    write(
        &store,
        vec![
            Op::Event(started(1)),
            Op::Event(message(1, 2)),
            Op::Event(ended(1, 3)),
        ],
    )
    .unwrap();
    write(&store, vec![Op::Rate { chat: 1, rating }]).unwrap();
    store.read().unwrap();
    // No row for the message; the rating follows the end.
    let want = vec![(1, 1, 0), (1, 3, 0), (1, 3, 99)];
    assert_eq!(outbox_keys(&store, "crm"), want);
    assert_eq!(outbox_keys(&store, "bi"), want);
    assert_eq!(store.outbox_len("crm").unwrap(), 3);
    let rows = store.outbox_page("crm", 0, 10).unwrap();
    assert_eq!(rows[2].item.kind(), crate::core::LifecycleKind::Rated);
    let context = store.outbox_context(ChatId(1), 3, true).unwrap();
    assert_eq!(context.channel, Some(ChannelId::new("support")));
    assert_eq!(context.transcript.len(), 3);

    let delivered = |seq| Op::Delivered {
        webhook: "crm".into(),
        key: OutboxKey {
            chat: 1,
            seq,
            sub: 0,
        },
    };
    // Twice, as a retried removal would: counted once.
    write(&store, vec![delivered(1), delivered(1)]).unwrap();
    store.read().unwrap();
    assert_eq!(outbox_keys(&store, "crm"), vec![(1, 3, 0), (1, 3, 99)]);
    assert_eq!(store.outbox_len("crm").unwrap(), 2);
    assert_eq!(store.outbox_len("bi").unwrap(), 3, "each webhook its own");
}

#[test]
fn applying_a_group_again_writes_the_same_rows_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("chathub.redb")).unwrap();
    tables::create_all(&db).unwrap();
    let hook = OutboxHook::new(vec!["crm".into()]);
    let ops = [Op::Event(started(7)), Op::Event(ended(7, 2))];
    for _ in 0..2 {
        let rows = apply(&db, 1, ops.iter(), Durability::Immediate, &hook).unwrap();
        assert_eq!(rows, 2);
    }
    drop(db);
    let store = Store::open_with(
        dir.path(),
        crate::store::StoreOptions {
            webhooks: vec!["crm".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(outbox_keys(&store, "crm"), vec![(7, 1, 0), (7, 2, 0)]);
    assert_eq!(store.outbox_len("crm").unwrap(), 2);
}

#[test]
fn a_webhook_taken_out_of_the_configuration_loses_its_rows_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let both = crate::store::StoreOptions {
        webhooks: vec!["crm".into(), "old".into()],
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), both).unwrap();
    write(&store, vec![Op::Event(started(1))]).unwrap();
    store.close();
    drop(store);
    let one = crate::store::StoreOptions {
        webhooks: vec!["crm".into()],
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), one).unwrap();
    assert_eq!(outbox_keys(&store, "crm"), vec![(1, 1, 0)]);
    assert!(outbox_keys(&store, "old").is_empty());
    assert_eq!(store.outbox_len("old").unwrap(), 0);
}

#[test]
fn an_ended_chats_transcript_keeps_its_newest_events_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ops = vec![Op::Event(started(1))];
    for seq in 2..=200 {
        let mut long = message(1, seq);
        if let ChatEventKind::Message { text, .. } = &mut long.kind {
            *text = "x".repeat(4_000);
        }
        ops.push(Op::Event(long));
    }
    ops.push(Op::Event(ended(1, 201)));
    write(&store, ops).unwrap();
    // Outbox reads see what is applied, not what is only durable.
    store.read().unwrap();
    let context = store.outbox_context(ChatId(1), 201, true).unwrap();
    let kept = context.transcript.len() as u64;
    assert!(kept > 1 && kept < 100, "{kept}");
    assert_eq!(context.omitted + kept, 201, "every event kept or counted");
    assert_eq!(context.transcript.last().unwrap().seq, 201);
    assert_eq!(context.channel, Some(ChannelId::new("support")));
    let cost: u64 = context
        .transcript
        .iter()
        .map(|event| event.text_bytes() + 64)
        .sum();
    assert!(cost <= crate::store::WEBHOOK_TRANSCRIPT_BYTES);
    // Without a transcript, only the channel.
    let bare = store.outbox_context(ChatId(1), 100, false).unwrap();
    assert!(bare.transcript.is_empty());
    assert_eq!(bare.channel, Some(ChannelId::new("support")));
}

#[test]
fn erasing_a_chat_removes_all_it_left_but_never_a_live_chat_and_stays_erased() {
    let dir = tempfile::tempdir().unwrap();
    let options = crate::store::StoreOptions {
        webhooks: vec!["crm".into()],
        ..Default::default()
    };
    let store = Store::open_with(dir.path(), options.clone()).unwrap();
    let customer = Customer {
        name: Some("Bob".into()),
        email: Some("bob@example.com".into()),
    };
    let start = |chat| {
        event(
            chat,
            1,
            ChatEventKind::Started {
                channel: ChannelId::new("support"),
                customer: customer.clone(),
            },
        )
    };
    let file = crate::core::FileRef {
        id: FileId(5),
        name: "a.pdf".into(),
        content_type: "application/pdf".into(),
        size: 3,
    };
    let mut ops = vec![];
    for chat in [1, 2] {
        ops.push(Op::Event(start(chat)));
        ops.push(Op::Token {
            chat,
            digest: vec![chat as u8; 4],
        });
        for key in crate::store::contact_keys(&customer, None) {
            ops.push(Op::ContactChat { key, chat });
        }
    }
    ops.push(Op::Event(event(
        1,
        2,
        ChatEventKind::FileShared {
            from: Party::Customer,
            file: file.clone(),
        },
    )));
    ops.push(Op::File(StoredFile {
        file: file.clone(),
        chat: ChatId(1),
    }));
    ops.push(Op::Event(ended(1, 3)));
    ops.push(Op::Session(SessionSummary {
        chat: ChatId(1),
        channel: ChannelId::new("support"),
        customer: customer.clone(),
        agent: None,
        started: Timestamp(10),
        ended: Timestamp(30),
        ended_by: Party::Customer,
        events: 3,
    }));
    write(&store, ops).unwrap();
    store.read().unwrap();
    assert_eq!(store.outbox_len("crm").unwrap(), 3, "two starts, one end");

    // Chat 2 is live: its erasure changes nothing.
    write(&store, vec![Op::EraseChat(1), Op::EraseChat(2)]).unwrap();
    let check = |store: &Store| {
        store.read().unwrap();
        assert!(store.chat(ChatId(1)).unwrap().is_none());
        assert!(store.session(ChatId(1)).unwrap().is_none());
        assert!(store.file(file.id).unwrap().is_none());
        assert!(store.chat_by_token(&[1; 4]).unwrap().is_none());
        assert!(store.chat(ChatId(2)).unwrap().is_some());
        assert_eq!(store.chat_by_token(&[2; 4]).unwrap(), Some(ChatId(2)));
        for key in ["email:bob@example.com", "name:bob"] {
            assert_eq!(store.contact(key).unwrap().chats, vec![ChatId(2)]);
        }
        assert_eq!(outbox_keys(store, "crm"), vec![(2, 1, 0)]);
        assert_eq!(store.outbox_len("crm").unwrap(), 1);
    };
    check(&store);
    // Reopened (the log replayed over what redb holds): still erased.
    store.close();
    drop(store);
    let store = Store::open_with(dir.path(), options).unwrap();
    check(&store);
    write(
        &store,
        vec![Op::EraseContact("email:bob@example.com".into())],
    )
    .unwrap();
    assert!(
        store
            .contact("email:bob@example.com")
            .unwrap()
            .chats
            .is_empty()
    );
    assert_eq!(store.contact("name:bob").unwrap().chats, vec![ChatId(2)]);
}
