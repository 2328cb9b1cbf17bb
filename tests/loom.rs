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

use chathub::core::claim::word::{ALERTED, TAKEN, WAITING, generation, pack, phase};
use chathub::core::{AgentPresence, Capacity, ChannelId, ClaimCell, Claimer, PresentCount, Status};
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
    if phase(current) != WAITING && phase(current) != ALERTED {
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
                pack(generation(current), ALERTED),
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
