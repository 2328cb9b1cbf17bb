//! loom models of the shared-memory cells in `core`: every interleaving of
//! the racing threads is explored.
//!
//! Run with `RUSTFLAGS="--cfg chathub_loom" cargo test --release --test loom`.
//! Each model has a twin that does the racy step the naive way (a load and
//! a store instead of one compare-and-swap, a phase check without the
//! generation); those are `#[should_panic]`, to show the models catch the
//! bug they guard against.
#![cfg(chathub_loom)]

use std::sync::Arc as StdArc;

use chathub::core::claim::word::{
    ALERTED, OFFERED, TAKEN, WAITING, generation, offer_number, pack, phase, with_offer,
};
use chathub::core::{
    AgentPresence, Capacity, ChannelId, ClaimCell, Claimer, OfferId, PresentCount, Status,
};
use loom::sync::Arc;
use loom::sync::atomic::Ordering;
use loom::thread;

// ---- claim: get-next, pick and the customer leaving race on one chat ----

/// The correct claim, or the broken one: a load, a check, a store.
fn claim(cell: &ClaimCell, by: Claimer, broken: bool) -> bool {
    if !broken {
        return cell.claim(by).is_ok();
    }
    let raw = cell.raw();
    let current = raw.load(Ordering::Acquire);
    if phase(current) != WAITING {
        return false;
    }
    raw.store(pack(generation(current), TAKEN), Ordering::Release);
    true
}

fn claim_model(broken: bool) {
    loom::model(move || {
        let cell = Arc::new(ClaimCell::new());
        let next = {
            let cell = cell.clone();
            thread::spawn(move || claim(&cell, Claimer::Agent, broken))
        };
        let pick = {
            let cell = cell.clone();
            thread::spawn(move || claim(&cell, Claimer::Agent, broken))
        };
        let leave = claim(&cell, Claimer::Abandon, broken);
        let winners = [next.join().unwrap(), pick.join().unwrap(), leave]
            .into_iter()
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1, "a waiting chat is claimed exactly once");
    });
}

#[test]
fn a_chat_is_claimed_exactly_once() {
    claim_model(false);
}

#[test]
#[should_panic(expected = "claimed exactly once")]
fn a_claim_by_load_then_store_is_caught() {
    claim_model(true);
}

// ---- alert vs answer: the alert timer races with the claim ----

#[test]
fn an_alert_is_raised_only_while_waiting_and_always_cleared() {
    loom::model(|| {
        let cell = Arc::new(ClaimCell::new());
        let timer = {
            let cell = cell.clone();
            thread::spawn(move || cell.raise_alert(0))
        };
        let won = cell.claim(Claimer::Agent).expect("the only claimer wins");
        let raised = timer.join().unwrap();
        // Either the alert came first and the winner knows to clear it, or
        // the claim came first and no alert was raised.
        assert_eq!(
            raised, won.alerted,
            "a raised alert is cleared; no alert after the answer"
        );
        assert!(!cell.is_alerted() || cell.holder().is_none());
    });
}

/// The alert timer's step, correct or broken (checks the phase but not
/// the generation).
fn raise(cell: &ClaimCell, timer_generation: u64, broken: bool) -> bool {
    if !broken {
        return cell.raise_alert(timer_generation);
    }
    let raw = cell.raw();
    let current = raw.load(Ordering::Acquire);
    phase(current) == WAITING
        && raw
            .compare_exchange(
                current,
                current | ALERTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
}

fn stale_timer_model(broken: bool) {
    loom::model(move || {
        // An agent holds the chat; its first wait's timer is still pending
        // while the agent transfers the chat back to the queue.
        let cell = Arc::new(ClaimCell::new());
        cell.claim(Claimer::Agent).unwrap();
        let timer = {
            let cell = cell.clone();
            thread::spawn(move || raise(&cell, 0, broken))
        };
        let generation = cell.requeue().expect("the agent holds it");
        let raised = timer.join().unwrap();
        assert!(!raised, "a timer of an earlier wait never alerts");
        assert_eq!(generation, 1);
        assert!(
            !cell.is_alerted(),
            "a timer of an earlier wait never alerts"
        );
    });
}

#[test]
fn a_stale_alert_timer_never_alerts_the_next_wait() {
    stale_timer_model(false);
}

#[test]
#[should_panic(expected = "never alerts")]
fn an_alert_check_without_the_generation_is_caught() {
    stale_timer_model(true);
}

// ---- capacity: concurrent claims of one agent never exceed it ----

fn reserve(capacity: &Capacity, broken: bool) -> bool {
    if !broken {
        return capacity.try_reserve();
    }
    let raw = capacity.raw();
    let used = raw.load(Ordering::Acquire);
    if used >= capacity.max() {
        return false;
    }
    raw.store(used + 1, Ordering::Release);
    true
}

fn capacity_model(broken: bool) {
    loom::model(move || {
        let capacity = Arc::new(Capacity::new(1));
        let other = {
            let capacity = capacity.clone();
            thread::spawn(move || reserve(&capacity, broken))
        };
        let mine = reserve(&capacity, broken);
        let granted = usize::from(mine) + usize::from(other.join().unwrap());
        assert_eq!(granted, 1, "never more slots than the capacity");
        assert_eq!(capacity.used(), 1);
    });
}

#[test]
fn capacity_slots_are_never_overbooked() {
    capacity_model(false);
}

#[test]
#[should_panic(expected = "never more slots")]
fn a_slot_reserved_by_load_then_store_is_caught() {
    capacity_model(true);
}

#[test]
fn a_released_slot_can_be_taken_again_concurrently() {
    loom::model(|| {
        let capacity = Arc::new(Capacity::new(1));
        assert!(capacity.try_reserve());
        let releaser = {
            let capacity = capacity.clone();
            thread::spawn(move || capacity.release())
        };
        let retook = capacity.try_reserve();
        releaser.join().unwrap();
        assert_eq!(capacity.used(), u64::from(retook));
    });
}

// ---- presence: racing status changes of one agent count it once ----

fn set(agent: &AgentPresence, count: &PresentCount, status: Status, broken: bool) {
    if !broken {
        agent.set(status);
        return;
    }
    let raw = agent.raw_status();
    let present = u64::from(status == Status::Present);
    let old = raw.load(Ordering::Acquire);
    raw.store(present, Ordering::Release);
    if old != present {
        if present == 1 {
            count.raw().fetch_add(1, Ordering::AcqRel);
        } else {
            count.raw().fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn presence_model(broken: bool) {
    loom::model(move || {
        let count = StdArc::new(PresentCount::default());
        let agent = Arc::new(AgentPresence::new(
            vec![(ChannelId::new("support"), count.clone())],
            4,
        ));
        // Two connections of one agent both say Present.
        let other = {
            let (agent, count) = (agent.clone(), count.clone());
            thread::spawn(move || set(&agent, &count, Status::Present, broken))
        };
        set(&agent, &count, Status::Present, broken);
        other.join().unwrap();
        assert_eq!(count.get(), 1, "an agent is counted once");
        set(&agent, &count, Status::Absent, broken);
        assert_eq!(count.get(), 0, "an agent is counted once");
    });
}

#[test]
fn racing_status_changes_count_an_agent_once() {
    presence_model(false);
}

#[test]
#[should_panic(expected = "counted once")]
fn a_status_change_by_load_then_store_is_caught() {
    presence_model(true);
}

// ---- presence: an idle agent turning Away racing an explicit change ----

/// The idle timer turns the agent Away, correctly or the broken way: a
/// check of the status, then a store, outside the lock.
fn turn_away(agent: &AgentPresence, count: &PresentCount, broken: bool) {
    if !broken {
        agent.idle();
        return;
    }
    if agent.status() == Status::Present {
        agent.raw_status().store(2, Ordering::Release);
        count.raw().fetch_sub(1, Ordering::AcqRel);
    }
}

fn away_model(broken: bool, explicit: Status) {
    loom::model(move || {
        let count = StdArc::new(PresentCount::default());
        let agent = Arc::new(AgentPresence::new(
            vec![(ChannelId::new("support"), count.clone())],
            4,
        ));
        agent.set(Status::Present);
        // The idle timer fires while the agent says `explicit`.
        let timer = {
            let (agent, count) = (agent.clone(), count.clone());
            thread::spawn(move || turn_away(&agent, &count, broken))
        };
        agent.set(explicit);
        timer.join().unwrap();
        let present = u64::from(agent.status() == Status::Present);
        assert_eq!(count.get(), present, "an agent is counted once");
        if explicit == Status::Absent {
            assert_eq!(
                agent.status(),
                Status::Absent,
                "idling never undoes a change"
            );
        }
    });
}

#[test]
fn turning_away_racing_going_absent_keeps_the_count_exact() {
    away_model(false, Status::Absent);
}

#[test]
fn turning_away_racing_activity_keeps_the_count_exact() {
    away_model(false, Status::Present);
}

#[test]
#[should_panic(expected = "counted once")]
fn turning_away_by_check_then_store_is_caught() {
    away_model(true, Status::Absent);
}

// ---- presence: a status change racing a change of the agent's channels ----

/// Makes the agent work support and sales (it worked support), correctly
/// or the broken way: the status read before the membership's lock.
fn add_sales(
    agent: &AgentPresence,
    support: &StdArc<PresentCount>,
    sales: &StdArc<PresentCount>,
    broken: bool,
) {
    let membership = vec![
        (ChannelId::new("support"), support.clone()),
        (ChannelId::new("sales"), sales.clone()),
    ];
    if !broken {
        agent.set_channels(membership);
        return;
    }
    let present = agent.status() == Status::Present;
    let mut current = agent.raw_channels().lock().unwrap();
    if present {
        sales.raw().fetch_add(1, Ordering::AcqRel);
    }
    *current = membership;
}

fn membership_model(broken: bool) {
    loom::model(move || {
        let support = StdArc::new(PresentCount::default());
        let sales = StdArc::new(PresentCount::default());
        let agent = Arc::new(AgentPresence::new(
            vec![(ChannelId::new("support"), support.clone())],
            4,
        ));
        // A reload adds sales while the agent says Present.
        let reload = {
            let (agent, support, sales) = (agent.clone(), support.clone(), sales.clone());
            thread::spawn(move || add_sales(&agent, &support, &sales, broken))
        };
        agent.set(Status::Present);
        reload.join().unwrap();
        assert_eq!(support.get(), 1, "a Present member is counted once");
        assert_eq!(sales.get(), 1, "a Present member is counted once");
        agent.set(Status::Absent);
        assert_eq!(sales.get(), 0, "an Absent agent is not counted");
    });
}

#[test]
fn a_change_of_channels_racing_a_status_change_keeps_counts_exact() {
    membership_model(false);
}

#[test]
#[should_panic(expected = "counted once")]
fn a_change_of_channels_that_reads_the_status_outside_the_lock_is_caught() {
    membership_model(true);
}

// ---- offers: exactly one party ends an offer, and its slot is freed once ----
//
// An offered agent's slot is reserved before the offer. Whoever ends the
// offer settles the slot: an accept keeps it for the assignment; a lapse
// (decline, timeout) frees it; a claim that withdrew the offer (pick,
// get-next, the customer leaving) has the channel free it.

/// Reserves the offered agent's slot and offers the chat in wait 0.
fn offered(cell: &ClaimCell, slot: &Capacity) -> OfferId {
    assert!(slot.try_reserve());
    cell.offer(0).expect("a waiting chat can be offered")
}

/// The offered agent accepts, correctly or by a load, a check and a store.
fn accept(cell: &ClaimCell, offer: OfferId, broken: bool) -> bool {
    if !broken {
        return cell.accept(offer).is_ok();
    }
    let raw = cell.raw();
    let current = raw.load(Ordering::Acquire);
    let standing = phase(current) == WAITING
        && current & OFFERED != 0
        && generation(current) == offer.generation
        && offer_number(current) == offer.number;
    if !standing {
        return false;
    }
    raw.store(
        with_offer(pack(offer.generation, TAKEN), offer.number),
        Ordering::Release,
    );
    true
}

/// The offer lapses (declined or timed out), correctly or broken: by a load
/// and a store, or (`ignore_generation`) matching the offer's number only.
fn lapse(cell: &ClaimCell, offer: OfferId, broken: bool) -> bool {
    if !broken {
        return cell.lapse(offer);
    }
    let raw = cell.raw();
    let current = raw.load(Ordering::Acquire);
    let standing = phase(current) == WAITING
        && current & OFFERED != 0
        && offer_number(current) == offer.number;
    if !standing {
        return false;
    }
    raw.store(current & !OFFERED, Ordering::Release);
    true
}

/// A claim (pick, get-next, the customer leaving) that withdraws a standing
/// offer frees the offered slot, as the channel's `Withdraw` does.
fn claim_withdrawing(cell: &ClaimCell, by: Claimer, offered_slot: &Capacity, broken: bool) -> bool {
    if broken {
        return claim(cell, by, true);
    }
    match cell.claim(by) {
        Ok(won) => {
            if won.offer.is_some() {
                offered_slot.release();
            }
            true
        }
        Err(_) => false,
    }
}

fn accept_vs_pick_model(broken: bool) {
    loom::model(move || {
        let cell = Arc::new(ClaimCell::new());
        let slot = Arc::new(Capacity::new(1));
        let offer = offered(&cell, &slot);
        let pick = {
            let (cell, slot) = (cell.clone(), slot.clone());
            thread::spawn(move || claim_withdrawing(&cell, Claimer::Agent, &slot, false))
        };
        let accepted = accept(&cell, offer, broken);
        let picked = pick.join().unwrap();
        assert_eq!(
            usize::from(accepted) + usize::from(picked),
            1,
            "an offered chat is taken exactly once"
        );
        assert_eq!(
            slot.used(),
            u64::from(accepted),
            "the offered slot is kept by an accept, else freed once"
        );
    });
}

#[test]
fn an_accept_racing_a_pick_takes_the_chat_once() {
    accept_vs_pick_model(false);
}

#[test]
#[should_panic(expected = "taken exactly once")]
fn an_accept_by_load_then_store_racing_a_pick_is_caught() {
    accept_vs_pick_model(true);
}

fn accept_vs_lapse_model(broken: bool) {
    loom::model(move || {
        let cell = Arc::new(ClaimCell::new());
        let slot = Arc::new(Capacity::new(1));
        let offer = offered(&cell, &slot);
        let timer = {
            let (cell, slot) = (cell.clone(), slot.clone());
            thread::spawn(move || {
                let lapsed = lapse(&cell, offer, broken);
                if lapsed {
                    slot.release();
                }
                lapsed
            })
        };
        let accepted = accept(&cell, offer, false);
        let lapsed = timer.join().unwrap();
        assert_eq!(
            usize::from(accepted) + usize::from(lapsed),
            1,
            "an offer ends exactly once"
        );
        assert_eq!(slot.used(), u64::from(accepted));
        assert_eq!(cell.holder().is_some(), accepted);
    });
}

#[test]
fn an_accept_racing_the_offer_timeout_ends_the_offer_once() {
    accept_vs_lapse_model(false);
}

#[test]
#[should_panic(expected = "ends exactly once")]
fn a_lapse_by_load_then_store_racing_an_accept_is_caught() {
    accept_vs_lapse_model(true);
}

/// The channel offers the chat, correctly or by a load, a check and a
/// store; a refused offer gives its slot straight back.
fn offer_or_give_back(cell: &ClaimCell, slot: &Capacity, broken: bool) -> Option<OfferId> {
    assert!(slot.try_reserve());
    let offer = if broken {
        let raw = cell.raw();
        let current = raw.load(Ordering::Acquire);
        (phase(current) == WAITING && current & OFFERED == 0).then(|| {
            raw.store(with_offer(current, 1) | OFFERED, Ordering::Release);
            OfferId {
                generation: 0,
                number: 1,
            }
        })
    } else {
        cell.offer(0).ok()
    };
    if offer.is_none() {
        slot.release();
    }
    offer
}

fn offer_vs_abandon_model(broken: bool) {
    loom::model(move || {
        let cell = Arc::new(ClaimCell::new());
        let slot = Arc::new(Capacity::new(1));
        let channel = {
            let (cell, slot) = (cell.clone(), slot.clone());
            thread::spawn(move || offer_or_give_back(&cell, &slot, broken))
        };
        let won = cell
            .claim(Claimer::Abandon)
            .expect("the customer is the only claimer");
        let offer = channel.join().unwrap();
        // The channel's Withdraw: the claim ended the offer it reports.
        if won.offer.is_some() {
            slot.release();
        }
        assert_eq!(won.offer, offer, "the claim reports the offer it ended");
        assert_eq!(slot.used(), 0, "the offered slot is freed exactly once");
        assert_eq!(cell.holder(), Some(Claimer::Abandon));
    });
}

#[test]
fn an_offer_racing_the_customer_leaving_frees_its_slot_once() {
    offer_vs_abandon_model(false);
}

#[test]
#[should_panic(expected = "the claim reports the offer it ended")]
fn an_offer_by_load_then_store_racing_the_customer_leaving_is_caught() {
    offer_vs_abandon_model(true);
}

fn get_next_vs_accept_model(broken: bool) {
    loom::model(move || {
        let cell = Arc::new(ClaimCell::new());
        let offered_slot = Arc::new(Capacity::new(1));
        let getter_slot = Arc::new(Capacity::new(1));
        let offer = offered(&cell, &offered_slot);
        // The channel's get-next for another agent: a slot, then the claim.
        let get_next = {
            let (cell, offered_slot, getter_slot) =
                (cell.clone(), offered_slot.clone(), getter_slot.clone());
            thread::spawn(move || {
                assert!(getter_slot.try_reserve());
                let won = claim_withdrawing(&cell, Claimer::Agent, &offered_slot, broken);
                if !won {
                    getter_slot.release();
                }
                won
            })
        };
        let accepted = accept(&cell, offer, false);
        let got = get_next.join().unwrap();
        assert_eq!(
            usize::from(accepted) + usize::from(got),
            1,
            "an offered chat is taken exactly once"
        );
        assert_eq!(offered_slot.used(), u64::from(accepted));
        assert_eq!(getter_slot.used(), u64::from(got));
    });
}

#[test]
fn get_next_racing_an_accept_takes_the_chat_once() {
    get_next_vs_accept_model(false);
}

#[test]
#[should_panic(expected = "taken exactly once")]
fn a_get_next_claim_by_load_then_store_racing_an_accept_is_caught() {
    get_next_vs_accept_model(true);
}

fn stale_offer_timer_model(broken: bool) {
    loom::model(move || {
        // Offered to A in the first wait, picked (the pick withdrew A's
        // offer and freed A's slot), then transferred back to the queue.
        let cell = Arc::new(ClaimCell::new());
        let first_slot = Arc::new(Capacity::new(1));
        let next_slot = Arc::new(Capacity::new(1));
        let stale = offered(&cell, &first_slot);
        assert!(claim_withdrawing(&cell, Claimer::Agent, &first_slot, false));
        assert_eq!(cell.requeue(), Ok(1));
        // The first offer's timer fires while the new wait is offered to B.
        let timer = {
            let (cell, first_slot) = (cell.clone(), first_slot.clone());
            thread::spawn(move || {
                let lapsed = lapse(&cell, stale, broken);
                if lapsed {
                    first_slot.release();
                }
                lapsed
            })
        };
        assert!(next_slot.try_reserve());
        let fresh = cell.offer(1).expect("the new wait is offered");
        let lapsed = timer.join().unwrap();
        assert!(
            !lapsed,
            "a stale offer timer never ends the next wait's offer"
        );
        assert_eq!(cell.standing_offer(), Some(fresh));
        assert_eq!(first_slot.used(), 0);
        assert_eq!(next_slot.used(), 1);
    });
}

#[test]
fn a_stale_offer_timer_never_ends_the_next_waits_offer() {
    stale_offer_timer_model(false);
}

#[test]
#[should_panic(expected = "never ends the next wait's offer")]
fn an_offer_timer_without_the_generation_is_caught() {
    stale_offer_timer_model(true);
}
