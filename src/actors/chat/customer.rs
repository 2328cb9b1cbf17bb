//! What a chat holds its customer to: the pace and length of their
//! messages and files, and how long a waiting chat waits for them.

use super::*;

impl ChatActorState {
    /// Whether the customer may post `text` now: within the chat's pace
    /// and length. At the length limit the agent is told once, by a system
    /// message in the chat.
    pub(super) fn admit_customer_post(
        &mut self,
        myself: &ActorRef<ChatMsg>,
        text: &str,
    ) -> Result<(), HubError> {
        if let Err(full) = self.room_for(text.len() as u64) {
            if !self.told_too_long {
                self.told_too_long = true;
                let notice = "This chat has reached its length limit: the customer cannot \
                              write more. End it, or make a ticket of it.";
                if self
                    .chat
                    .post(Party::System, 0, notice.to_owned(), Timestamp::now())
                    .is_ok()
                {
                    self.persist(myself, Vec::new());
                }
            }
            return Err(full);
        }
        if !self.customer_rate.take(Timestamp::now()) {
            return Err(too_fast());
        }
        Ok(())
    }

    /// Whether `caller` may share a file of `size` bytes now; see
    /// [`ChatMsg::MayShare`]. Nothing is counted: the share itself is.
    pub(super) fn may_share(&mut self, caller: &Caller, size: u64) -> Result<(), HubError> {
        match self.party(caller)? {
            Party::Customer => {
                let limits = self.hub.limits();
                if self.customer_file_bytes.saturating_add(size) > limits.chat_file_bytes {
                    return Err(HubError::limited(
                        Limit::UploadBytes,
                        format!(
                            "the files of a chat may have {} bytes in all",
                            limits.chat_file_bytes
                        ),
                    ));
                }
                // Room for the share's event, whose name has a byte at least.
                self.room_for(1)?;
                if !self.customer_rate.has_token(Timestamp::now()) {
                    return Err(too_fast());
                }
                Ok(())
            }
            Party::Agent(agent) if self.chat.agent() == Some(&agent) => Ok(()),
            _ => Err(HubError::NotYourChat(self.chat.id())),
        }
    }

    /// Whether the chat has room for one more event carrying `bytes` of
    /// text, within `chat_events` and `chat_bytes`.
    fn room_for(&self, bytes: u64) -> Result<(), HubError> {
        let limits = self.hub.limits();
        let events = self.chat.events();
        if events.len() as u64 >= limits.chat_events
            || events.text_bytes() + bytes > limits.chat_bytes
        {
            return Err(HubError::limited(
                Limit::ChatLength,
                "the chat holds as much as a live chat may",
            ));
        }
        Ok(())
    }

    /// The customer no longer receives the chat: a queued chat is
    /// abandoned if they stay away for the channel's `abandon_after`.
    pub(super) fn customer_left(&mut self, myself: &ActorRef<ChatMsg>) {
        self.customer = None;
        self.customer_gone_since = Some(std::time::Instant::now());
        if matches!(self.chat.state(), ChatState::Queued { .. }) {
            self.arm_abandonment(myself);
        }
    }

    /// Checks back after the channel's `abandon_after` whether the customer
    /// (gone since now, or earlier) came back; see
    /// [`ChatActorState::abandon_if_gone`].
    pub(super) fn arm_abandonment(&mut self, myself: &ActorRef<ChatMsg>) {
        let since = *self
            .customer_gone_since
            .get_or_insert_with(std::time::Instant::now);
        if let Some(after) = self
            .hub
            .channel(self.chat.channel())
            .map(|settings| settings.abandon_after)
        {
            let left = after.saturating_sub(since.elapsed());
            myself.send_after(left, || ChatMsg::AbandonIfGone);
        }
    }

    /// Abandons the chat if it still waits and its customer has been gone
    /// for the channel's `abandon_after`.
    pub(super) fn abandon_if_gone(&mut self, myself: &ActorRef<ChatMsg>) -> Result<(), HubError> {
        let Some(after) = self
            .hub
            .channel(self.chat.channel())
            .map(|settings| settings.abandon_after)
        else {
            return Ok(());
        };
        let gone_long = self
            .customer_gone_since
            .is_some_and(|since| since.elapsed() >= after);
        if self.customer.is_none()
            && gone_long
            && matches!(self.chat.state(), ChatState::Queued { .. })
        {
            self.leave(myself, Party::System)?;
        }
        Ok(())
    }
}

fn too_fast() -> HubError {
    HubError::limited(
        Limit::MessageRate,
        "messages come faster than the chat allows; wait a moment",
    )
}
