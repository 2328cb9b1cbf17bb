//! A chat's events in order, kept in fixed-size chunks.
//!
//! A transcript only grows, and a busy chat grows by thousands of events.
//! In one contiguous vector every doubling copies the whole transcript into
//! fresh memory at once; chats that started together double together, and
//! the hub stalls while it copies and faults in their memory. Chunks of
//! [`CHUNK`] events never move: growing costs one small allocation per
//! chunk, spread evenly over the chat's life.
//!
//! Most chats are short, and a waiting chat holds two or three events, so
//! the first chunk grows as a vector does, up to [`CHUNK`] (copying at most
//! that many events); only the later ones are allocated whole.

use super::event::ChatEvent;

/// Events per chunk.
pub const CHUNK: usize = 64;

/// Room for events the first chunk starts with: a waiting chat's few.
const FIRST_CAPACITY: usize = 4;

/// A chat's events, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Every chunk but the last is full.
    chunks: Vec<Vec<ChatEvent>>,
    len: usize,
    /// The text the events carry, in bytes (see [`ChatEvent::text_bytes`]).
    bytes: u64,
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes of text its events carry: what bounds a live chat's size.
    pub fn text_bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an event and returns it.
    pub fn push(&mut self, event: ChatEvent) -> &ChatEvent {
        match self.chunks.last() {
            None => self.chunks.push(Vec::with_capacity(FIRST_CAPACITY)),
            Some(chunk) if chunk.len() == CHUNK => self.chunks.push(Vec::with_capacity(CHUNK)),
            Some(_) => {}
        }
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was just ensured");
        self.bytes += event.text_bytes();
        chunk.push(event);
        self.len += 1;
        chunk.last().expect("an event was just pushed")
    }

    /// The event at `index` (0 is the first).
    pub fn get(&self, index: usize) -> Option<&ChatEvent> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// The first event.
    pub fn first(&self) -> Option<&ChatEvent> {
        self.chunks.first()?.first()
    }

    /// The last event.
    pub fn last(&self) -> Option<&ChatEvent> {
        self.chunks.last()?.last()
    }

    /// Every event, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &ChatEvent> + Clone {
        self.chunks.iter().flatten()
    }

    /// The events from `index` on (none when `index` is at or past the end),
    /// found without walking the ones before.
    pub fn iter_from(&self, index: usize) -> impl DoubleEndedIterator<Item = &ChatEvent> + Clone {
        let first = (index / CHUNK).min(self.chunks.len());
        let skip = if first < self.chunks.len() {
            index % CHUNK
        } else {
            0
        };
        let mut chunks = self.chunks[first..].iter();
        let head = chunks
            .next()
            .map_or(&[][..], |chunk| &chunk[skip.min(chunk.len())..]);
        head.iter().chain(chunks.flatten())
    }

    /// A copy of every event in one vector.
    pub fn to_vec(&self) -> Vec<ChatEvent> {
        let mut all = Vec::with_capacity(self.len);
        all.extend(self.iter().cloned());
        all
    }
}

impl FromIterator<ChatEvent> for Transcript {
    fn from_iter<I: IntoIterator<Item = ChatEvent>>(events: I) -> Self {
        let mut transcript = Self::new();
        for event in events {
            transcript.push(event);
        }
        transcript
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> ChatEvent {
        ChatEvent::customer_message(1, seq, format!("message {seq}"))
    }

    fn seqs<'a>(events: impl Iterator<Item = &'a ChatEvent>) -> Vec<u64> {
        events.map(|event| event.seq).collect()
    }

    #[test]
    fn it_reads_like_the_vector_it_replaces_at_every_length_and_index() {
        // Lengths around chunk edges, and every start index up to past the
        // end: the chunked reads must agree with a plain vector's.
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
            let plain: Vec<ChatEvent> = (1..=len as u64).map(event).collect();
            let chunked: Transcript = plain.iter().cloned().collect();
            assert_eq!(chunked.len(), len);
            assert_eq!(chunked.is_empty(), len == 0);
            assert_eq!(chunked.first(), plain.first());
            assert_eq!(chunked.last(), plain.last());
            assert_eq!(chunked.to_vec(), plain);
            assert_eq!(seqs(chunked.iter().rev()), seqs(plain.iter().rev()));
            for index in 0..=len + CHUNK + 1 {
                assert_eq!(
                    chunked.get(index),
                    plain.get(index),
                    "len {len} get {index}"
                );
                let from = plain.get(index..).unwrap_or(&[]);
                assert_eq!(
                    seqs(chunked.iter_from(index)),
                    seqs(from.iter()),
                    "len {len} from {index}"
                );
            }
        }
    }

    #[test]
    fn chunks_fill_before_a_new_one_starts_and_never_grow_past_their_size() {
        let transcript: Transcript = (1..=2 * CHUNK as u64 + 1).map(event).collect();
        assert_eq!(transcript.chunks.len(), 3);
        assert!(
            transcript
                .chunks
                .iter()
                .all(|chunk| chunk.capacity() == CHUNK)
        );
        assert_eq!(transcript.chunks[2].len(), 1);
    }

    #[test]
    fn a_short_transcript_holds_room_for_a_few_events_not_a_chunk() {
        let mut transcript = Transcript::new();
        transcript.push(event(1));
        transcript.push(event(2));
        assert_eq!(transcript.chunks[0].capacity(), FIRST_CAPACITY);
        // Growing past it, the first chunk ends a chunk's size exactly.
        for seq in 3..=CHUNK as u64 {
            transcript.push(event(seq));
        }
        assert_eq!(transcript.chunks[0].capacity(), CHUNK);
        assert_eq!(transcript.chunks.len(), 1);
    }
}
