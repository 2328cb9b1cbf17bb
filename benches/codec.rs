//! Encoding and decoding typical frames.
//!
//! `cargo bench --bench codec`

use std::hint::black_box;

use chathub::core::{AgentId, ChatEvent, ChatEventKind, ChatId, Party, Timestamp};
use chathub::protocol::{
    ClientFrame, Event, EventRef, FrameBuf, Request, RequestBody, ServerEventRef, ServerFrame,
    decode, encode,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn frames(c: &mut Criterion) {
    let post = ClientFrame::Request(Request {
        id: 42,
        body: RequestBody::Post {
            chat: ChatId(1234),
            client_id: 987_654_321,
            text: "Hi! My parcel has not arrived yet 📦, order 12345.".into(),
        },
    });
    let event = ChatEvent {
        chat: ChatId(1234),
        seq: 17,
        at: Timestamp(1_700_000_000_000),
        kind: ChatEventKind::Message {
            from: Party::Agent(AgentId::new("alice")),
            client_id: 5,
            text: "Let me check that for you right away 👀".into(),
        },
    };
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(256);
    group.bench_function("encode post request", |b| {
        b.iter(|| {
            buf.clear();
            encode(black_box(&post), &mut buf).unwrap();
        })
    });
    let mut wire = Vec::new();
    encode(&post, &mut wire).unwrap();
    group.bench_function("decode post request", |b| {
        b.iter(|| decode::<ClientFrame>(black_box(&wire[4..])).unwrap())
    });
    group.bench_function("encode chat event (borrowed)", |b| {
        b.iter(|| {
            buf.clear();
            encode(
                &ServerEventRef::Event(EventRef::Chat(black_box(&event))),
                &mut buf,
            )
            .unwrap();
        })
    });
    let mut events = Vec::new();
    for _ in 0..64 {
        encode(&ServerFrame::Event(Event::Chat(event.clone())), &mut events).unwrap();
    }
    group.throughput(Throughput::Elements(64));
    group.bench_function("cut and decode 64 chat events from a stream", |b| {
        b.iter(|| {
            let mut frames = FrameBuf::new();
            frames.push(black_box(&events));
            let mut n = 0;
            while let Some(frame) = frames.next_frame::<ServerFrame>().unwrap() {
                black_box(frame);
                n += 1;
            }
            assert_eq!(n, 64);
        })
    });
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
