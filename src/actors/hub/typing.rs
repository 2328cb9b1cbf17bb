//! Typing indicators: passed to a live chat's actor, never stored.

use super::*;

impl Hub {
    /// `caller` is typing in `chat`: the chat's actor passes it on to the
    /// other party if `caller` takes part. A chat without a live actor
    /// (ended, unknown) takes nothing, and nothing is read from the store.
    pub fn typing(&self, caller: Caller, chat: ChatId) {
        if let Some(actor) = self.chat_actor(chat) {
            let _ = actor.cast(ChatMsg::Typing { caller });
        }
    }
}
