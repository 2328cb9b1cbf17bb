//! Skills: what an agent can do (`billing`, `french`) and what a chat
//! needs.
//!
//! A channel offers some skills; its chats need its `default_skills`
//! unless the customer chose others among the offered ones when starting.
//! Until a chat has waited the channel's `skill_fallback_after`, only an
//! agent with every skill it needs gets it (by get-next or an offer);
//! after that, any agent of the channel. A [`SkillSet`] is kept sorted and
//! without duplicates, so two chats needing the same skills have equal
//! sets, and the queue keeps one list per set.

use bincode::{Decode, Encode};

/// The most skills one set may hold (an agent's, a channel's offer, or a
/// chat's needs).
pub const MAX_SKILLS: usize = 32;

/// The most bytes a skill's name may have.
pub const MAX_SKILL_BYTES: usize = 64;

/// Why a list of skills was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillError {
    /// More than [`MAX_SKILLS`] skills.
    #[error("at most {MAX_SKILLS} skills")]
    TooMany,
    /// A name that is empty, longer than [`MAX_SKILL_BYTES`], or has
    /// characters other than letters, digits, `_`, `-` and `.`.
    #[error("{0:?} is not a skill name (1 to {MAX_SKILL_BYTES} letters, digits, '_', '-', '.')")]
    BadName(String),
    /// A skill the channel does not offer.
    #[error("the channel does not offer skill {0:?}")]
    NotOffered(String),
}

/// A set of skills, sorted, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct SkillSet(Vec<String>);

impl SkillSet {
    /// The set of `names`, checked: at most [`MAX_SKILLS`] (after
    /// duplicates are dropped), each a plain name.
    pub fn new<I, S>(names: I) -> Result<Self, SkillError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut skills = Vec::new();
        for name in names {
            let name = name.as_ref();
            let plain = !name.is_empty()
                && name.len() <= MAX_SKILL_BYTES
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !plain {
                return Err(SkillError::BadName(
                    name.chars().take(MAX_SKILL_BYTES).collect(),
                ));
            }
            // Checked as it grows, so a huge list is refused early
            // (duplicates are dropped only at the end).
            if skills.len() >= 4 * MAX_SKILLS {
                return Err(SkillError::TooMany);
            }
            skills.push(name.to_owned());
        }
        skills.sort_unstable();
        skills.dedup();
        if skills.len() > MAX_SKILLS {
            return Err(SkillError::TooMany);
        }
        Ok(Self(skills))
    }

    /// No skill at all: every agent has it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The skills, sorted.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether this set holds every skill of `needed` (an agent with these
    /// skills qualifies for a chat that needs `needed`).
    pub fn covers(&self, needed: &Self) -> bool {
        // Both sorted: one walk.
        let mut have = self.0.iter();
        needed
            .0
            .iter()
            .all(|skill| have.by_ref().any(|mine| mine == skill))
    }

    /// The skills a chat of a channel needs: `chosen` by the customer if
    /// any (each one the channel `offered`), else the channel's
    /// `defaults`.
    pub fn needed(chosen: &[String], offered: &Self, defaults: &Self) -> Result<Self, SkillError> {
        if chosen.is_empty() {
            return Ok(defaults.clone());
        }
        let chosen = Self::new(chosen)?;
        match chosen.0.iter().find(|skill| !offered.0.contains(skill)) {
            Some(skill) => Err(SkillError::NotOffered(skill.clone())),
            None => Ok(chosen),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> SkillSet {
        SkillSet::new(names).unwrap()
    }

    #[test]
    fn sets_are_sorted_and_deduplicated() {
        assert_eq!(
            set(&["french", "billing", "french"]),
            set(&["billing", "french"])
        );
        assert_eq!(set(&["b", "a"]).names(), ["a", "b"]);
    }

    #[test]
    fn covers_needs_every_skill() {
        let agent = set(&["billing", "french", "vip"]);
        assert!(agent.covers(&set(&[])));
        assert!(agent.covers(&set(&["french"])));
        assert!(agent.covers(&set(&["billing", "vip"])));
        assert!(!agent.covers(&set(&["billing", "german"])));
        assert!(!set(&[]).covers(&set(&["billing"])));
        assert!(!set(&["french"]).covers(&set(&["billing", "french"])));
    }

    #[test]
    fn refuses_bad_names_and_too_many() {
        assert!(matches!(SkillSet::new([""]), Err(SkillError::BadName(_))));
        assert!(matches!(
            SkillSet::new(["a b"]),
            Err(SkillError::BadName(_))
        ));
        assert!(matches!(
            SkillSet::new(["x".repeat(MAX_SKILL_BYTES + 1)]),
            Err(SkillError::BadName(_))
        ));
        let many: Vec<String> = (0..=MAX_SKILLS).map(|n| format!("s{n}")).collect();
        assert_eq!(SkillSet::new(&many), Err(SkillError::TooMany));
        assert!(SkillSet::new(&many[..MAX_SKILLS]).is_ok());
        // Duplicates do not count twice.
        assert!(SkillSet::new(vec!["a"; MAX_SKILLS + 5]).is_ok());
    }

    #[test]
    fn needed_is_the_choice_among_the_offered_or_the_defaults() {
        let offered = set(&["billing", "french", "german"]);
        let defaults = set(&["billing"]);
        assert_eq!(
            SkillSet::needed(&[], &offered, &defaults),
            Ok(defaults.clone())
        );
        assert_eq!(
            SkillSet::needed(&["german".into()], &offered, &defaults),
            Ok(set(&["german"]))
        );
        assert_eq!(
            SkillSet::needed(&["spanish".into()], &offered, &defaults),
            Err(SkillError::NotOffered("spanish".into()))
        );
    }
}
