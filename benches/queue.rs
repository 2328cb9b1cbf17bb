//! Channel queue operations at queue lengths from 10 to 100k: the cost per
//! operation must not grow with the queue.
//!
//! `cargo bench --bench queue`

use std::hint::black_box;

use chathub::core::{ChatId, Queue, Timestamp};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// A queue holding `len` chats, ids `0..len`.
fn filled(len: u64) -> Queue<u64> {
    let mut queue = Queue::new(usize::MAX);
    for id in 0..len {
        queue
            .push_back(ChatId(id), Timestamp(id), id)
            .expect("fits");
    }
    queue
}

fn queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    for len in [10u64, 1_000, 10_000, 100_000] {
        // Get next: take the head; a new chat joins at the back, so the
        // queue keeps its length.
        group.bench_with_input(BenchmarkId::new("next+enqueue", len), &len, |b, &len| {
            let mut queue = filled(len);
            let mut next = len;
            b.iter(|| {
                let (_, _, value) = queue.pop_front().expect("not empty");
                queue
                    .push_back(ChatId(next), Timestamp(next), black_box(value))
                    .expect("fits");
                next += 1;
            });
        });
        // Pick: take a chat from the middle by id; a new chat joins. The id
        // `len / 2 + n` is always queued, about halfway along.
        group.bench_with_input(BenchmarkId::new("pick+enqueue", len), &len, |b, &len| {
            let mut queue = filled(len);
            let mut n = 0;
            b.iter(|| {
                let picked = queue.remove(ChatId(black_box(len / 2 + n)));
                assert!(picked.is_some(), "the picked chat waits in the queue");
                queue
                    .push_back(ChatId(len + n), Timestamp(len + n), n)
                    .expect("fits");
                n += 1;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, queue);
criterion_main!(benches);
