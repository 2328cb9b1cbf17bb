//! Tags on chats and changes to messages already posted: the checks the
//! hub makes before the chat's actor (and `core::Chat`) decides.

use super::*;

impl Hub {
    /// Puts `tag` on a live chat (`add`) or takes it off, for `by`: the
    /// agent holding it, or a supervisor of its channel. Answered once
    /// durable (at once if it changes nothing); the event reaches agents
    /// only.
    pub fn tag(
        &self,
        by: AgentId,
        chat: ChatId,
        tag: String,
        add: bool,
    ) -> impl Future<Output = Result<(), HubError>> + Send + 'static {
        let overseer = self
            .shared
            .chats
            .get(&chat)
            .map(|entry| entry.channel.clone())
            .is_some_and(|channel| self.oversee(&by, &channel).is_ok());
        self.ask_chat(chat, move |reply| ChatMsg::Tag {
            by,
            overseer,
            tag,
            add,
            reply,
        })
    }

    /// Edits (`text`) or deletes (`None`) message `seq` of a live chat for
    /// its author, within the channel's `edit_window`: answered with the
    /// new event's seq and time once durable. Everyone in the chat gets
    /// the event but `conn`, which learns of it from this answer.
    pub fn change_message(
        &self,
        caller: Caller,
        conn: ConnId,
        chat: ChatId,
        seq: u64,
        text: Option<String>,
    ) -> impl Future<Output = Result<Receipt, HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::Change {
            caller,
            conn,
            seq,
            text,
            reply,
        })
    }

    /// Ended chats of the agent's channels with their ratings and tags,
    /// newest first; only those tagged `tag` if given.
    pub async fn recent_sessions_tagged(
        &self,
        agent: &AgentId,
        before: Option<ChatId>,
        limit: usize,
        tag: Option<String>,
    ) -> Result<Vec<TaggedSession>, HubError> {
        check_page(limit)?;
        let tag = tag
            .map(|tag| normalize_tag(&tag))
            .transpose()
            .map_err(|err| HubError::Chat(err.into()))?;
        let (store, channels) = (self.shared.store.clone(), self.member_channels(agent));
        blocking(move || store.recent_sessions_tagged(&channels, before, limit, tag.as_deref()))
            .await
    }
}
