//! Agents signing in: tokens kept only as SHA-256 digests, compared in
//! constant time, the same work for an unknown agent as for a wrong token,
//! and failed attempts paced per address and per agent id.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use super::*;

/// The longest token looked at; a longer one is wrong without hashing it.
pub const MAX_TOKEN_BYTES: usize = 256;

/// The SHA-256 digest of an agent's token: all the hub keeps of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads `sha256:<64 hex digits>`, the form `chathub token` prints.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = crate::core::hex::decode(text.strip_prefix("sha256:")?)?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// `sha256:<64 hex digits>`.
    pub fn to_config(&self) -> String {
        format!("sha256:{}", crate::core::hex::encode(&self.0))
    }

    fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

/// Failed sign-ins, paced per address and per agent id.
#[derive(Debug)]
pub(super) struct SignInPace {
    per_ip: Pace<IpAddr>,
    /// Per agent id and address: one address cannot lock an agent out of
    /// every other address by failing on its id.
    per_agent: Pace<(AgentId, Option<IpAddr>)>,
}

impl SignInPace {
    pub(super) fn new(limits: &Limits) -> Self {
        Self {
            per_ip: Pace::per_minute(limits.sign_in_failures_per_minute),
            per_agent: Pace::per_minute(limits.sign_in_failures_per_minute),
        }
    }
}

impl Hub {
    /// Checks an agent's credentials, presented from `from` (when known);
    /// the agent's configuration on success. An unknown agent and a wrong
    /// token get the same answer after the same work. After
    /// `sign_in_failures_per_minute` failures from one address (in all), or
    /// for one configured agent id from one address, attempts from there
    /// are refused `RateLimited` until the pace allows again. Failures are
    /// not paced by agent id alone: a stranger could then lock an agent
    /// out by failing on their id, and a token (16 characters at least, 48
    /// hex digits when generated) is not guessed from a few addresses.
    pub fn authenticate(
        &self,
        from: Option<IpAddr>,
        agent: &AgentId,
        token: &str,
    ) -> Result<AgentConfig, HubError> {
        let pace = &self.shared.sign_in_pace;
        let now = Timestamp::now();
        let known = self.shared.agents.contains_key(agent);
        let throttled = from.is_some_and(|ip| !pace.per_ip.has_room(&ip, now))
            || (known && !pace.per_agent.has_room(&(agent.clone(), from), now));
        if throttled {
            return Err(HubError::limited(
                Limit::SignIn,
                "too many failed sign-ins; try again later",
            ));
        }
        let presented = (token.len() <= MAX_TOKEN_BYTES).then(|| TokenDigest::of(token));
        let entry = self.shared.agents.get(agent);
        // The same comparison whether or not the agent exists.
        let expected = entry
            .as_ref()
            .map_or(&self.shared.unknown_agent, |entry| &entry.token_digest);
        let matched = presented
            .as_ref()
            .is_some_and(|presented| presented.matches(expected));
        match entry {
            Some(entry) if matched => Ok(entry.config.clone()),
            _ => {
                if let Some(ip) = from {
                    pace.per_ip.charge(ip, now);
                }
                // Only configured ids get a budget of their own, so made-up
                // ids cannot crowd real agents' budgets out of the table.
                if known {
                    pace.per_agent.charge((agent.clone(), from), now);
                }
                Err(HubError::Unauthorized)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_print_and_parse_the_configured_form() {
        let digest = TokenDigest::of("a-long-enough-token");
        let text = digest.to_config();
        assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
        assert_eq!(TokenDigest::parse(&text), Some(digest.clone()));
        assert!(TokenDigest::parse("sha256:abc").is_none());
        assert!(TokenDigest::parse(&text.replace("sha256:", "md5:")).is_none());
        assert!(TokenDigest::parse(&format!("sha256:{}", "zz".repeat(32))).is_none());
        assert!(digest.matches(&TokenDigest::of("a-long-enough-token")));
        assert!(!digest.matches(&TokenDigest::of("a-long-enough-tokeN")));
        assert_eq!(format!("{digest:?}"), "TokenDigest(<redacted>)");
    }
}
