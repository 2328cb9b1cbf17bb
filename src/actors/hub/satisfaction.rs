//! Customer satisfaction: a customer rates a chat after its end, on
//! channels that ask for it. The chat's actor is gone by then, so the hub
//! reads the stored session and writes the rating itself.

use crate::core::satisfaction::{check_rating, check_rating_time};
use crate::core::{Rating, RatingError};

use super::*;

impl Hub {
    /// Keeps the customer's `rating` (1 to 5) and `comment` of the ended
    /// `chat`, answered once durable; a later rating replaces it. The
    /// caller has checked that the customer's connection started or
    /// resumed the chat. Refused unless the chat has ended within its
    /// channel's `return_window` and the channel has `satisfaction` on,
    /// and past `offline_forms_per_minute` ratings from one address
    /// (`from`, when known).
    pub async fn rate(
        &self,
        from: Option<std::net::IpAddr>,
        chat: ChatId,
        rating: u8,
        comment: Option<String>,
    ) -> Result<(), HubError> {
        let comment = check_rating(rating, comment.as_deref())
            .map_err(|err| HubError::Invalid(err.to_string()))?;
        let now = Timestamp::now();
        if let Some(ip) = from
            && !self.shared.rate_pace.allow(ip, now)
        {
            return Err(HubError::limited(
                Limit::OfflineForms,
                "too many ratings from this address; try again later",
            ));
        }
        // In the chat's turn: a return to the chat cannot reopen it between
        // the read and the write, and two ratings of it take turns (only
        // the first is counted).
        let turn = self.turn(chat);
        let _taken = turn.lock.lock().await;
        let store = self.shared.store.clone();
        let (session, earlier) =
            blocking(move || Ok((store.session(chat)?, store.rating(chat)?))).await?;
        let Some(session) = session else {
            return Err(HubError::Invalid(RatingError::NotEnded.to_string()));
        };
        let settings = self
            .channel(&session.channel)
            .ok_or_else(|| HubError::UnknownChannel(session.channel.clone()))?;
        if !settings.satisfaction {
            return Err(HubError::NotAllowed(format!(
                "channel {} does not ask for ratings",
                session.channel
            )));
        }
        check_rating_time(Some(session.ended), settings.return_window, now)
            .map_err(|err| HubError::NotAllowed(err.to_string()))?;
        let rating = Rating {
            rating,
            comment,
            at: now,
        };
        let value = rating.rating;
        self.write(vec![Op::Rate {
            chat: chat.0,
            rating,
        }])
        .await?;
        // A chat's first rating is counted; a repeat (or a retry) replaces
        // the stored one without counting again.
        if earlier.is_none() {
            metrics::histogram!("chathub_csat_rating", "channel" => session.channel.to_string())
                .record(f64::from(value));
        }
        Ok(())
    }
}
