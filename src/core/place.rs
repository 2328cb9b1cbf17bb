//! Where a waiting customer stands: their place in the queue and an
//! estimate of their wait, recomputed in one walk of the queue and told
//! only to the customers whose answer changed.
//!
//! The estimate is the place times the mean time between the channel's
//! recent answers (the last [`RATE_SAMPLES`] chats taken from its queue
//! within [`RATE_WINDOW`]); with fewer than two such answers there is no
//! estimate. Far back in a long queue a place is told roughly (to ten
//! from 100, to a hundred from 1,000) and an estimate to the
//! [`ESTIMATE_STEP`], so one answer at the head changes what a few
//! customers are told, not what every one of them is.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bincode::{Decode, Encode};

use crate::core::ids::ChatId;
use crate::core::time::Timestamp;

/// How many recent answers the rate is taken from.
pub const RATE_SAMPLES: usize = 32;

/// How far back an answer still counts for the rate.
pub const RATE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// Estimates are told in steps of this many seconds, rounded up.
pub const ESTIMATE_STEP: u32 = 15;

/// What a waiting customer is told of where they stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueuePlace {
    /// The chat.
    pub chat: ChatId,
    /// 1 for the next chat to be answered; from 100 on, rounded down to
    /// ten, from 1,000 on to a hundred.
    pub position: u32,
    /// About how long until an agent answers, in seconds (a multiple of
    /// [`ESTIMATE_STEP`]); `None` until the channel has answered enough
    /// chats lately to tell.
    pub estimated_wait_secs: Option<u32>,
}

/// The position as told: exact near the head, rounded far back.
pub fn told_position(exact: usize) -> u32 {
    let exact = u32::try_from(exact).unwrap_or(u32::MAX);
    match exact {
        0..100 => exact,
        100..1000 => exact / 10 * 10,
        _ => exact / 100 * 100,
    }
}

/// When a channel answered its recent chats.
#[derive(Debug, Default)]
pub struct AnswerRate {
    answers: VecDeque<Timestamp>,
}

impl AnswerRate {
    /// A chat was taken from the queue by an agent at `at`.
    pub fn record(&mut self, at: Timestamp) {
        if self.answers.len() == RATE_SAMPLES {
            self.answers.pop_front();
        }
        self.answers.push_back(at);
    }

    /// The mean time between recent answers, if there were at least two
    /// within [`RATE_WINDOW`] of `now`.
    pub fn interval(&self, now: Timestamp) -> Option<Duration> {
        let recent: Vec<Timestamp> = self
            .answers
            .iter()
            .copied()
            .filter(|at| now.since(*at) <= RATE_WINDOW)
            .collect();
        let (first, last) = (recent.first()?, recent.last()?);
        let gaps = u32::try_from(recent.len() - 1).ok().filter(|&n| n > 0)?;
        Some(last.since(*first) / gaps)
    }

    /// The estimate told to the chat at `position` (1 = next).
    pub fn estimate(&self, position: usize, now: Timestamp) -> Option<u32> {
        let interval = self.interval(now)?;
        let secs = (interval.as_secs_f64() * position as f64)
            .ceil()
            .min(f64::from(u32::MAX - ESTIMATE_STEP));
        // Rounded up to the step, never 0 for a chat that still waits.
        let secs = secs as u32;
        Some(secs.div_ceil(ESTIMATE_STEP).max(1) * ESTIMATE_STEP)
    }
}

/// What each waiting chat was last told.
#[derive(Debug, Default)]
pub struct Places {
    told: HashMap<ChatId, QueuePlace>,
}

impl Places {
    /// Walks the queue once, in the order it serves, and answers the
    /// places that changed since they were last told (every chat's, the
    /// first time). Chats no longer in `order` are forgotten.
    pub fn update(
        &mut self,
        order: impl Iterator<Item = ChatId>,
        rate: &AnswerRate,
        now: Timestamp,
    ) -> Vec<QueuePlace> {
        let mut changed = Vec::new();
        let mut told = HashMap::with_capacity(self.told.len());
        for (index, chat) in order.enumerate() {
            let exact = index + 1;
            let place = QueuePlace {
                chat,
                position: told_position(exact),
                estimated_wait_secs: rate.estimate(exact, now),
            };
            if self.told.get(&chat) != Some(&place) {
                changed.push(place);
            }
            told.insert(chat, place);
        }
        self.told = told;
        changed
    }

    /// What `chat` was last told, if it waits.
    pub fn told(&self, chat: ChatId) -> Option<QueuePlace> {
        self.told.get(&chat).copied()
    }
}

#[cfg(all(test, not(chathub_loom)))]
mod tests {
    use super::*;

    fn chats(ids: &[u64]) -> impl Iterator<Item = ChatId> + '_ {
        ids.iter().map(|&id| ChatId(id))
    }

    #[test]
    fn positions_are_exact_near_the_head_and_rough_far_back() {
        assert_eq!(told_position(1), 1);
        assert_eq!(told_position(99), 99);
        assert_eq!(told_position(100), 100);
        assert_eq!(told_position(109), 100);
        assert_eq!(told_position(999), 990);
        assert_eq!(told_position(5_432), 5_400);
    }

    #[test]
    fn the_estimate_is_the_place_times_the_mean_gap_between_answers() {
        let mut rate = AnswerRate::default();
        let now = Timestamp(10_000_000);
        assert_eq!(rate.estimate(3, now), None, "no answers yet");
        rate.record(Timestamp(9_880_000));
        assert_eq!(rate.estimate(3, now), None, "one answer is no rate");
        rate.record(Timestamp(9_940_000));
        rate.record(Timestamp(10_000_000));
        // One answer a minute: third in line waits about three minutes.
        assert_eq!(rate.estimate(3, now), Some(180));
        assert_eq!(rate.estimate(1, now), Some(60));
        // Answers older than the window no longer count.
        let later = now.after(RATE_WINDOW + Duration::from_secs(1));
        assert_eq!(rate.estimate(1, later), None);
    }

    #[test]
    fn only_changed_places_are_told_and_gone_chats_forgotten() {
        let mut places = Places::default();
        let rate = AnswerRate::default();
        let now = Timestamp(0);
        let first = places.update(chats(&[1, 2, 3]), &rate, now);
        assert_eq!(first.len(), 3, "everyone hears their place first");
        assert!(places.update(chats(&[1, 2, 3]), &rate, now).is_empty());
        // The head is answered: the others move up.
        let moved = places.update(chats(&[2, 3]), &rate, now);
        let positions: Vec<(u64, u32)> = moved.iter().map(|p| (p.chat.0, p.position)).collect();
        assert_eq!(positions, [(2, 1), (3, 2)]);
        assert_eq!(places.told(ChatId(1)), None);
    }

    #[test]
    fn far_back_an_answer_at_the_head_changes_few_places() {
        let mut places = Places::default();
        let rate = AnswerRate::default();
        let ids: Vec<u64> = (0..10_000).collect();
        places.update(chats(&ids), &rate, Timestamp(0));
        let changed = places.update(chats(&ids[1..]), &rate, Timestamp(0));
        // 99 exact places near the head, then one per ten up to 1,000 and
        // one per hundred beyond.
        assert_eq!(changed.len(), 99 + 90 + 90);
    }
}
