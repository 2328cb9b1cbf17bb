//! Customers who prove who they are: an identity signed by the contact
//! center's own web backend with the channel's secret, the convention of
//! Chatwoot's and Intercom's identity verification.
//!
//! The backend signs `id` and `email` with HMAC-SHA256 under the channel's
//! `identity_secret` and hands the signature (hex) to its page, which gives
//! it to the SDK. The message signed is the id, a newline, and the email
//! (empty when there is none):
//!
//! ```text
//! signature = hex(HMAC-SHA256(identity_secret, id + "\n" + email))
//! ```
//!
//! A backend may also claim a priority for the customer (`IdentifyClaiming`):
//! the priority's name is then signed after a second newline, so a customer
//! cannot add or raise a claim without the secret, and signatures without a
//! claim are what they always were. Neither the id nor the email may hold a
//! newline (control characters are refused), so the two forms never sign
//! the same bytes.
//!
//! ```text
//! signature = hex(HMAC-SHA256(identity_secret, id + "\n" + email + "\n" + priority))
//! ```

use super::*;

/// An identity that verified, with the priority its backend claims, if
/// any (not yet lowered to the channel's cap: that is applied at each
/// start, with the settings of the moment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// Who the customer is.
    pub identity: Identity,
    /// The priority the backend claims for them.
    pub priority: Option<Priority>,
}

/// The longest customer id a backend may give.
pub const MAX_IDENTITY_ID_BYTES: usize = 256;

/// The bytes a backend signs for `identity`, claiming `priority` if any.
pub(super) fn signed_bytes(identity: &Identity, priority: Option<Priority>) -> Vec<u8> {
    let mut bytes = identity.id.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(identity.email.as_deref().unwrap_or("").as_bytes());
    if let Some(priority) = priority {
        bytes.push(b'\n');
        bytes.extend_from_slice(priority.name().as_bytes());
    }
    bytes
}

/// The signature a backend holding `key` gives `identity`, in hex.
pub fn sign_identity(key: &[u8], identity: &Identity) -> String {
    sign(key, &signed_bytes(identity, None))
}

/// The signature a backend holding `key` gives `identity` with a claim of
/// `priority`, in hex.
pub fn sign_identity_claiming(key: &[u8], identity: &Identity, priority: Priority) -> String {
    sign(key, &signed_bytes(identity, Some(priority)))
}

fn sign(key: &[u8], bytes: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    crate::core::hex::encode(ring::hmac::sign(&key, bytes).as_ref())
}

/// A signature's bytes, if it is hex of a sensible length.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() > 128 {
        return None;
    }
    crate::core::hex::decode(text)
}

impl Hub {
    /// Checks that `identity`, with its `claim` of a priority if any, was
    /// signed with `channel`'s identity secret (`signature` in hex); the
    /// identity to start chats with if so.
    pub fn verify_identity(
        &self,
        channel: &ChannelId,
        identity: Identity,
        claim: Option<Priority>,
        signature: &str,
    ) -> Result<VerifiedIdentity, HubError> {
        let settings = self
            .channel(channel)
            .ok_or_else(|| HubError::UnknownChannel(channel.clone()))?;
        let Some(key) = settings
            .identity_key
            .as_ref()
            .filter(|_| settings.identity != IdentityPolicy::Off)
        else {
            return Err(HubError::NotAllowed(format!(
                "channel {channel} does not take customer identities"
            )));
        };
        let id_ok = !identity.id.is_empty()
            && identity.id.len() <= MAX_IDENTITY_ID_BYTES
            && !identity.id.chars().any(char::is_control);
        if !id_ok {
            return Err(HubError::limited(
                Limit::Field,
                format!(
                    "an identity's id needs 1 to {MAX_IDENTITY_ID_BYTES} bytes, no control characters"
                ),
            ));
        }
        crate::core::ticket::check_customer(None, identity.email.as_deref())
            .map_err(|err| HubError::limited(Limit::Field, err.to_string()))?;
        let signature = from_hex(signature.trim());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.0);
        let valid = signature.is_some_and(|signature| {
            ring::hmac::verify(&key, &signed_bytes(&identity, claim), &signature).is_ok()
        });
        if !valid {
            metrics::counter!("chathub_identity_refusals_total", "channel" => channel.to_string())
                .increment(1);
            return Err(HubError::Unverified(
                "the identity's signature does not match".into(),
            ));
        }
        Ok(VerifiedIdentity {
            identity,
            priority: claim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_the_id_and_the_email() {
        let key = b"a-channel-secret-of-32-bytes-xxxx";
        let ada = Identity {
            id: "cust-17".into(),
            email: Some("ada@example.com".into()),
        };
        let signature = sign_identity(key, &ada);
        assert_eq!(signature.len(), 64);
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let check = |identity: &Identity, signature: &str| {
            ring::hmac::verify(
                &hmac,
                &signed_bytes(identity, None),
                &from_hex(signature).unwrap(),
            )
            .is_ok()
        };
        assert!(check(&ada, &signature));
        let other_email = Identity {
            email: Some("eve@example.com".into()),
            ..ada.clone()
        };
        assert!(!check(&other_email, &signature));
        let no_email = Identity {
            email: None,
            ..ada.clone()
        };
        assert!(!check(&no_email, &signature));
        // The newline keeps id and email apart.
        let shifted = Identity {
            id: "cust-17\nada@example.com".into(),
            email: None,
        };
        assert!(!check(&shifted, &signature));
    }

    #[test]
    fn a_claim_is_signed_with_the_identity_and_unclaimed_signatures_stay() {
        let key = b"a-channel-secret-of-32-bytes-xxxx";
        let ada = Identity {
            id: "cust-17".into(),
            email: Some("ada@example.com".into()),
        };
        // The form without a claim is the one backends already sign.
        assert_eq!(signed_bytes(&ada, None), b"cust-17\nada@example.com");
        assert_eq!(
            signed_bytes(&ada, Some(Priority::Urgent)),
            b"cust-17\nada@example.com\nurgent"
        );
        let urgent = sign_identity_claiming(key, &ada, Priority::Urgent);
        assert_ne!(urgent, sign_identity(key, &ada));
        assert_ne!(urgent, sign_identity_claiming(key, &ada, Priority::High));
    }
}
