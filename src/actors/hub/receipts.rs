//! Read receipts: a participant's read mark, stored as a chat event.

use super::*;

impl Hub {
    /// `caller` has read `chat` up to seq `up_to`, said on connection
    /// `conn`; answers the caller's mark once it is durable. A mark beyond
    /// the caller's own is a `Read` event that everyone in the chat gets
    /// but `conn`, which learns of it from this answer; one not beyond it,
    /// or over nothing but read marks, changes nothing.
    pub fn mark_read(
        &self,
        caller: Caller,
        conn: ConnId,
        chat: ChatId,
        up_to: u64,
    ) -> impl Future<Output = Result<ReadMark, HubError>> + Send + 'static {
        self.ask_chat(chat, move |reply| ChatMsg::MarkRead {
            caller,
            conn,
            up_to,
            reply,
        })
    }
}
