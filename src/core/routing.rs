//! Push routing: which agent a waiting chat is offered to.
//!
//! A channel routes by `pull` (agents take chats: get-next, pick) or by
//! `push` (the channel offers each waiting chat to one eligible agent, who
//! accepts or declines it within the offer timeout). The choice of agent is
//! a pure function of the eligible agents as the channel sees them now;
//! the channel actor gathers them (Present members with a free slot and no
//! offer standing from this channel) and carries the choice out.

use std::time::Duration;

use crate::core::ids::AgentId;
use crate::core::time::Timestamp;

/// How a channel's waiting chats reach agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Agents take chats themselves (get-next, pick).
    #[default]
    Pull,
    /// The channel offers each waiting chat to one agent at a time; get-next
    /// and pick still work beside it.
    Push,
}

/// Which eligible agent a push channel offers a chat to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// The agent holding the fewest chats (offers included), then the one
    /// whose last assignment is longest ago.
    #[default]
    LeastBusy,
    /// The next eligible agent (by id) after the one offered last, round
    /// and round.
    RoundRobin,
}

impl Policy {
    /// The policy's name in the configuration and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::LeastBusy => "least_busy",
            Self::RoundRobin => "round_robin",
        }
    }
}

/// The shortest offer timeout a channel may set.
pub const MIN_OFFER_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest offer timeout a channel may set.
pub const MAX_OFFER_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// An agent a chat may be offered to now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The agent.
    pub agent: AgentId,
    /// Chat slots in use (chats held and offers standing).
    pub held: u64,
    /// When a chat was last assigned to them (`Timestamp(0)`: never).
    pub last_assigned: Timestamp,
}

/// The agent chosen for one chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Index into the candidates.
    pub index: usize,
    /// Every candidate had passed the chat up this wait: the choice starts
    /// a new round, and the caller forgets who passed.
    pub new_round: bool,
}

/// Chooses among `candidates` (sorted by agent id) for one chat under
/// `policy`. `last_offered` is the agent the channel offered a chat to
/// last (for round robin); `passed` holds the agents who declined or let
/// this chat's offer lapse in this wait, who get it again only once every
/// candidate has. `None` if there is no candidate.
pub fn choose(
    policy: Policy,
    candidates: &[Candidate],
    last_offered: Option<&AgentId>,
    passed: &[AgentId],
) -> Option<Choice> {
    let fresh = |c: &&Candidate| !passed.contains(&c.agent);
    let (pool, new_round): (Vec<(usize, &Candidate)>, bool) =
        if candidates.iter().any(|c| fresh(&c)) {
            (
                candidates
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| fresh(c))
                    .collect(),
                false,
            )
        } else {
            (candidates.iter().enumerate().collect(), true)
        };
    let index = match policy {
        Policy::LeastBusy => pool
            .iter()
            .min_by(|(_, a), (_, b)| {
                (a.held, a.last_assigned, &a.agent).cmp(&(b.held, b.last_assigned, &b.agent))
            })
            .map(|(index, _)| *index)?,
        Policy::RoundRobin => pool
            .iter()
            .find(|(_, c)| last_offered.is_some_and(|last| c.agent > *last))
            .or_else(|| pool.first())
            .map(|(index, _)| *index)?,
    };
    Some(Choice { index, new_round })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(agent: &str, held: u64, last_assigned: u64) -> Candidate {
        Candidate {
            agent: AgentId::new(agent),
            held,
            last_assigned: Timestamp(last_assigned),
        }
    }

    fn chosen(
        policy: Policy,
        candidates: &[Candidate],
        last: Option<&str>,
        passed: &[&str],
    ) -> Option<String> {
        let last = last.map(AgentId::new);
        let passed: Vec<AgentId> = passed.iter().map(|a| AgentId::new(*a)).collect();
        choose(policy, candidates, last.as_ref(), &passed)
            .map(|choice| candidates[choice.index].agent.to_string())
    }

    #[test]
    fn least_busy_takes_the_fewest_chats_then_the_longest_idle() {
        let candidates = [
            candidate("ann", 2, 10),
            candidate("bob", 1, 50),
            candidate("cid", 1, 20),
        ];
        assert_eq!(
            chosen(Policy::LeastBusy, &candidates, None, &[]).as_deref(),
            Some("cid"),
            "bob and cid hold one each; cid's last chat is older"
        );
        let never = [candidate("ann", 0, 10), candidate("bob", 0, 0)];
        assert_eq!(
            chosen(Policy::LeastBusy, &never, None, &[]).as_deref(),
            Some("bob"),
            "never assigned is longest idle"
        );
    }

    #[test]
    fn round_robin_goes_to_the_next_after_the_last_and_wraps() {
        let candidates = [
            candidate("ann", 5, 0),
            candidate("bob", 0, 0),
            candidate("cid", 0, 0),
        ];
        assert_eq!(
            chosen(Policy::RoundRobin, &candidates, None, &[]).as_deref(),
            Some("ann")
        );
        assert_eq!(
            chosen(Policy::RoundRobin, &candidates, Some("ann"), &[]).as_deref(),
            Some("bob"),
            "load does not matter"
        );
        assert_eq!(
            chosen(Policy::RoundRobin, &candidates, Some("bob"), &[]).as_deref(),
            Some("cid")
        );
        assert_eq!(
            chosen(Policy::RoundRobin, &candidates, Some("cid"), &[]).as_deref(),
            Some("ann"),
            "wraps"
        );
        assert_eq!(
            chosen(Policy::RoundRobin, &candidates, Some("bzz"), &[]).as_deref(),
            Some("cid"),
            "the last one offered may have left"
        );
    }

    #[test]
    fn an_agent_who_passed_gets_the_chat_again_only_after_everyone() {
        let candidates = [candidate("ann", 0, 0), candidate("bob", 3, 0)];
        assert_eq!(
            chosen(Policy::LeastBusy, &candidates, None, &["ann"]).as_deref(),
            Some("bob")
        );
        let choice = choose(
            Policy::LeastBusy,
            &candidates,
            None,
            &[AgentId::new("ann"), AgentId::new("bob")],
        );
        assert_eq!(
            choice,
            Some(Choice {
                index: 0,
                new_round: true
            })
        );
        assert_eq!(chosen(Policy::RoundRobin, &[], None, &[]), None);
    }
}
