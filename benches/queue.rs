//! Channel queue operations at queue lengths from 10 to 100k: the cost per
//! operation must not grow with the queue.
//!
//! `cargo bench --bench queue` prints nanoseconds per operation.

use std::hint::black_box;
use std::time::Instant;

use chathub::core::{ChatId, Queue, Timestamp};

const OPS: u64 = 1_000_000;

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

/// Nanoseconds per call of `op`; each call leaves the queue as long as it
/// found it.
fn per_op(len: u64, mut op: impl FnMut(&mut Queue<u64>, u64)) -> f64 {
    let mut queue = filled(len);
    let start = Instant::now();
    for n in 0..OPS {
        op(&mut queue, n);
    }
    let elapsed = start.elapsed();
    assert_eq!(queue.len() as u64, len);
    black_box(&queue);
    elapsed.as_nanos() as f64 / OPS as f64
}

fn main() {
    println!(
        "{:>10}  {:>16}  {:>16}",
        "queue len", "next + enqueue", "pick + enqueue"
    );
    for len in [10u64, 1_000, 10_000, 100_000] {
        // Get next: take the head; a new chat joins at the back.
        let next = per_op(len, |queue, n| {
            let (_, _, value) = queue.pop_front().expect("not empty");
            queue
                .push_back(ChatId(len + n), Timestamp(len + n), black_box(value))
                .expect("fits");
        });
        // Pick: take a chat from the middle by id; a new chat joins. The
        // id `len / 2 + n` is always queued, about halfway along.
        let pick = per_op(len, |queue, n| {
            let picked = queue.remove(ChatId(black_box(len / 2 + n)));
            assert!(picked.is_some(), "the picked chat waits in the queue");
            queue
                .push_back(ChatId(len + n), Timestamp(len + n), n)
                .expect("fits");
        });
        println!("{len:>10}  {next:>13.1} ns  {pick:>13.1} ns");
    }
}
