//! The durability gate of one chat: nothing is acknowledged or published
//! before it is durable.
//!
//! A chat's events get their seqs as they happen; the gate is told which
//! of them were handed to the store ([`Gate::handle_written`]) and which the
//! store made durable ([`Gate::handle_durable`]). Requests that changed the
//! chat wait in the gate for the seq they need ([`Gate::wait`]); the events
//! that became durable, and the answers now due, come out of
//! [`Gate::poll_publish`] and [`Gate::poll_answer`], in seq order. A
//! message's event is withheld from the connection that posted it (which
//! learns of it from its answer): [`Gate::withhold`] records that, and
//! each published seq says whom it skips.
//!
//! Sans-IO: no store, no actors, no clock. The Chat actor drives it and
//! carries out what it says.

use std::collections::VecDeque;

/// What comes out of the gate: a durable event to publish, skipping the
/// connection (`C`) that posted it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<C> {
    /// The event's seq.
    pub seq: u64,
    /// The connection that learns of it from its answer instead.
    pub except: Option<C>,
}

/// One chat's gate, holding answers of type `A` for connections of type
/// `C`.
#[derive(Debug)]
pub struct Gate<A, C> {
    /// The last seq handed to the store. Invariant: `durable <= written`.
    written: u64,
    /// The last seq the store made durable; everything up to it may be
    /// shown to anyone.
    durable: u64,
    /// The last seq handed out by `poll_publish`. Invariant:
    /// `published <= durable`.
    published: u64,
    /// Answers waiting for the seq they need, in the order they came.
    /// Invariant: each needs a seq not above `written` when it came in.
    waiting: VecDeque<(u64, A)>,
    /// Events not yet published that skip the connection that posted
    /// them, in seq order. Invariant: seqs strictly rising, above
    /// `published`.
    withheld: VecDeque<(u64, C)>,
}

impl<A, C: Copy> Gate<A, C> {
    /// A gate for a chat whose events up to `durable` are in the store
    /// already (0 for a new chat).
    pub fn new(durable: u64) -> Self {
        Self {
            written: durable,
            durable,
            published: durable,
            waiting: VecDeque::new(),
            withheld: VecDeque::new(),
        }
    }

    /// The last seq the store made durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The last seq handed to the store.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The events up to `seq` were handed to the store.
    pub fn handle_written(&mut self, seq: u64) {
        debug_assert!(seq >= self.written, "writes go forward");
        self.written = self.written.max(seq);
    }

    /// The store made the events up to `seq` durable.
    pub fn handle_durable(&mut self, seq: u64) {
        debug_assert!(seq <= self.written, "only what was written becomes durable");
        self.durable = self.durable.max(seq.min(self.written));
    }

    /// Event `seq` (not yet durable) must not be sent to connection `conn`,
    /// which learns of it from its answer.
    pub fn withhold(&mut self, seq: u64, conn: C) {
        debug_assert!(seq > self.published, "withheld before it is published");
        debug_assert!(
            self.withheld.back().is_none_or(|(last, _)| *last < seq),
            "withheld in seq order"
        );
        self.withheld.push_back((seq, conn));
    }

    /// Holds `answer` until the events up to `needed` are durable; gives
    /// it back at once if they are.
    #[must_use = "an answer given back is due now"]
    pub fn wait(&mut self, needed: u64, answer: A) -> Option<A> {
        if needed <= self.durable {
            return Some(answer);
        }
        debug_assert!(needed <= self.written, "an answer waits for a written seq");
        self.waiting.push_back((needed, answer));
        None
    }

    /// The next durable event to publish, in seq order.
    pub fn poll_publish(&mut self) -> Option<Publish<C>> {
        if self.published >= self.durable {
            return None;
        }
        self.published += 1;
        let seq = self.published;
        let mut except = None;
        while let Some(&(withheld, conn)) = self.withheld.front()
            && withheld <= seq
        {
            self.withheld.pop_front();
            if withheld == seq {
                except = Some(conn);
            }
        }
        Some(Publish { seq, except })
    }

    /// The next answer now due: answers go out only after every event up
    /// to the seq they needed was published.
    pub fn poll_answer(&mut self) -> Option<A> {
        match self.waiting.front() {
            Some((needed, _)) if *needed <= self.published => {
                self.waiting.pop_front().map(|(_, answer)| answer)
            }
            _ => None,
        }
    }

    /// The store failed: every waiting answer, to be refused.
    pub fn fail(&mut self) -> impl Iterator<Item = A> + '_ {
        self.withheld.clear();
        self.waiting.drain(..).map(|(_, answer)| answer)
    }

    /// Whether everything written is durable and published.
    pub fn settled(&self) -> bool {
        self.published == self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestGate = Gate<&'static str, u32>;

    fn drain(gate: &mut TestGate) -> (Vec<Publish<u32>>, Vec<&'static str>) {
        let mut published = Vec::new();
        while let Some(event) = gate.poll_publish() {
            published.push(event);
        }
        let mut answers = Vec::new();
        while let Some(answer) = gate.poll_answer() {
            answers.push(answer);
        }
        (published, answers)
    }

    #[test]
    fn nothing_is_published_or_answered_before_it_is_durable() {
        let mut gate = TestGate::new(0);
        gate.handle_written(3);
        assert_eq!(gate.wait(2, "post at 2"), None);
        assert_eq!(gate.wait(3, "post at 3"), None);
        assert_eq!(drain(&mut gate), (vec![], vec![]));
        gate.handle_durable(2);
        let (published, answers) = drain(&mut gate);
        assert_eq!(published.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(answers, ["post at 2"]);
        gate.handle_durable(3);
        let (published, answers) = drain(&mut gate);
        assert_eq!(published.iter().map(|p| p.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(answers, ["post at 3"]);
        assert!(gate.settled());
    }

    #[test]
    fn an_answer_for_what_is_durable_already_is_due_at_once() {
        let mut gate = TestGate::new(5);
        assert_eq!(gate.wait(4, "a retry"), Some("a retry"));
        assert_eq!(gate.wait(5, "another"), Some("another"));
    }

    #[test]
    fn answers_go_out_in_the_order_they_came_after_their_events() {
        let mut gate = TestGate::new(0);
        gate.handle_written(4);
        assert_eq!(gate.wait(4, "end"), None);
        gate.handle_written(4);
        // A later answer needing an earlier seq still waits behind it: the
        // client hears of things in the order it asked.
        assert_eq!(gate.wait(4, "ticket"), None);
        gate.handle_durable(4);
        let (published, answers) = drain(&mut gate);
        assert_eq!(published.len(), 4);
        assert_eq!(answers, ["end", "ticket"]);
    }

    #[test]
    fn a_posters_own_event_skips_its_connection_and_only_that_event() {
        let mut gate = TestGate::new(0);
        gate.handle_written(3);
        gate.withhold(2, 7);
        gate.withhold(3, 8);
        gate.handle_durable(3);
        let (published, _) = drain(&mut gate);
        assert_eq!(
            published,
            [
                Publish {
                    seq: 1,
                    except: None
                },
                Publish {
                    seq: 2,
                    except: Some(7)
                },
                Publish {
                    seq: 3,
                    except: Some(8)
                },
            ]
        );
    }

    #[test]
    fn a_durable_mark_never_runs_ahead_of_what_was_written_or_back() {
        let mut gate = TestGate::new(2);
        gate.handle_written(4);
        gate.handle_durable(4);
        gate.handle_durable(3);
        assert_eq!(gate.durable(), 4);
        assert_eq!(gate.written(), 4);
    }

    #[test]
    fn a_failed_store_refuses_every_waiting_answer() {
        let mut gate = TestGate::new(0);
        gate.handle_written(2);
        assert_eq!(gate.wait(1, "a"), None);
        assert_eq!(gate.wait(2, "b"), None);
        gate.withhold(2, 1);
        let refused: Vec<_> = gate.fail().collect();
        assert_eq!(refused, ["a", "b"]);
        assert_eq!(gate.poll_answer(), None);
    }
}
