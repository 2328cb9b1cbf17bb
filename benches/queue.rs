//! Channel queue operations at queue lengths from 10 to 100k, with every
//! chat at one priority, with chats spread over all four, and with chats
//! spread over skill sets: the cost per operation must not grow with the
//! queue.
//!
//! `cargo bench --bench queue`

use std::hint::black_box;

use chathub::core::{AnswerRate, ChatId, Match, Places, Priority, Queue, SkillSet, Timestamp};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const LEVELS: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Urgent,
];

/// The priority of chat `id`: always normal, or spread over all four.
fn priority(id: u64, spread: bool) -> Priority {
    if spread {
        LEVELS[(id % 4) as usize]
    } else {
        Priority::Normal
    }
}

/// A queue holding `len` chats, ids `0..len`, aging on.
fn filled(len: u64, spread: bool) -> Queue<u64> {
    let mut queue = Queue::new(usize::MAX);
    queue.set_aging(std::time::Duration::from_secs(300));
    for id in 0..len {
        queue
            .push_back(ChatId(id), Timestamp(id), priority(id, spread), id)
            .expect("fits");
    }
    queue
}

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    for (spread, name) in [(false, "one"), (true, "four")] {
        for len in [10u64, 1_000, 10_000, 100_000] {
            // Get next: take the best; a new chat joins, so the queue
            // keeps its length.
            let id = BenchmarkId::new(format!("next+enqueue/{name}-priorities"), len);
            group.bench_with_input(id, &len, |b, &len| {
                let mut queue = filled(len, spread);
                let mut next = len;
                b.iter(|| {
                    let (_, _, value) = queue.pop_next().expect("not empty");
                    queue
                        .push_back(
                            ChatId(next),
                            Timestamp(next),
                            priority(next, spread),
                            black_box(value),
                        )
                        .expect("fits");
                    next += 1;
                });
            });
            // Pick: take a chat from the middle by id; a new chat joins.
            // The id `len / 2 + n` is always queued.
            let id = BenchmarkId::new(format!("pick+enqueue/{name}-priorities"), len);
            group.bench_with_input(id, &len, |b, &len| {
                let mut queue = filled(len, spread);
                let mut n = 0;
                b.iter(|| {
                    let picked = queue.remove(ChatId(black_box(len / 2 + n)));
                    assert!(picked.is_some(), "the picked chat waits in the queue");
                    queue
                        .push_back(
                            ChatId(len + n),
                            Timestamp(len + n),
                            priority(len + n, spread),
                            n,
                        )
                        .expect("fits");
                    n += 1;
                });
            });
        }
    }
    // Get next for an agent with one skill of eight, chats spread over
    // eight skill sets (a ninth needs none) and all four priorities, none
    // past the fallback: the agent's next is compared among the lists'
    // heads only.
    let sets: Vec<SkillSet> = (0..9)
        .map(|n| {
            if n == 8 {
                SkillSet::default()
            } else {
                SkillSet::new([format!("skill{n}")]).expect("plain names")
            }
        })
        .collect();
    let agent = SkillSet::new(["skill3"]).expect("plain names");
    for len in [10u64, 1_000, 10_000, 100_000] {
        let id = BenchmarkId::new("next-for+enqueue/nine-skill-sets", len);
        group.bench_with_input(id, &len, |b, &len| {
            let mut queue = Queue::new(usize::MAX);
            queue.set_aging(std::time::Duration::from_secs(300));
            // Each chat's value is its kind: skill set and priority.
            let set = |kind: u64| sets[(kind % 9) as usize].clone();
            for id in 0..len {
                queue
                    .push_needing(
                        ChatId(id),
                        Timestamp(id),
                        priority(id, true),
                        set(id),
                        id,
                        false,
                    )
                    .expect("fits");
            }
            let mut next = len;
            b.iter(|| {
                let by = Match {
                    skills: &agent,
                    now: Timestamp(next),
                    fallback: std::time::Duration::from_secs(3600),
                };
                let (_, _, kind) = queue.pop_next_for(&by).expect("a chat for skill3");
                // The same kind of chat joins, so the mix stays.
                queue
                    .push_needing(
                        ChatId(next),
                        Timestamp(next),
                        priority(kind, true),
                        set(kind),
                        black_box(kind),
                        false,
                    )
                    .expect("fits");
                next += 1;
            });
        });
    }
    group.finish();

    // Telling waiting customers where they stand after one answer: one
    // walk of the queue, and only the places that changed are told.
    let mut group = c.benchmark_group("places");
    for len in [10u64, 1_000, 10_000, 100_000] {
        group.bench_with_input(
            BenchmarkId::new("after-one-answer", len),
            &len,
            |b, &len| {
                let mut rate = AnswerRate::default();
                rate.record(Timestamp(0));
                rate.record(Timestamp(60_000));
                let mut places = Places::default();
                let mut head = 0;
                places.update((head..head + len).map(ChatId), &rate, Timestamp(60_000));
                b.iter(|| {
                    // The head was answered and a chat joined at the back.
                    head += 1;
                    let told =
                        places.update((head..head + len).map(ChatId), &rate, Timestamp(60_000));
                    black_box(told.len())
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
