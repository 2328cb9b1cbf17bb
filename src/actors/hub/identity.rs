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

use super::*;

/// The longest customer id a backend may give.
pub const MAX_IDENTITY_ID_BYTES: usize = 256;

/// The bytes a backend signs for `identity`.
pub(super) fn signed_bytes(identity: &Identity) -> Vec<u8> {
    let mut bytes = identity.id.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes.extend_from_slice(identity.email.as_deref().unwrap_or("").as_bytes());
    bytes
}

/// The signature a backend holding `key` gives `identity`, in hex.
pub fn sign_identity(key: &[u8], identity: &Identity) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    crate::core::hex::encode(ring::hmac::sign(&key, &signed_bytes(identity)).as_ref())
}

/// A signature's bytes, if it is hex of a sensible length.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() > 128 {
        return None;
    }
    crate::core::hex::decode(text)
}

impl Hub {
    /// Checks that `identity` was signed with `channel`'s identity secret
    /// (`signature` in hex); the identity to start chats with if so.
    pub fn verify_identity(
        &self,
        channel: &ChannelId,
        identity: Identity,
        signature: &str,
    ) -> Result<Identity, HubError> {
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
            ring::hmac::verify(&key, &signed_bytes(&identity), &signature).is_ok()
        });
        if !valid {
            metrics::counter!("chathub_identity_refusals_total", "channel" => channel.to_string())
                .increment(1);
            return Err(HubError::Unverified(
                "the identity's signature does not match".into(),
            ));
        }
        Ok(identity)
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
                &signed_bytes(identity),
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
}
