//! Files shared in chats: limits, where their bytes live, who may fetch
//! them.

use super::*;

impl Hub {
    /// The most bytes a file shared in `chat`'s channel may have.
    pub fn file_limit(&self, chat: ChatId) -> Option<u64> {
        let channel = self.shared.chats.get(&chat)?.channel.clone();
        self.channel(&channel).map(|settings| settings.file_limit)
    }

    /// Where a shared file's bytes live.
    pub fn file_path(&self, id: FileId) -> std::path::PathBuf {
        self.shared.files_dir.join(id.0.to_string())
    }

    /// A fresh file id.
    pub fn next_file(&self) -> FileId {
        FileId(self.shared.next_file.fetch_add(1, Ordering::Relaxed))
    }

    /// Shares a file whose bytes are durably on disk at
    /// [`file_path`](Self::file_path) in `chat`; answers the event's seq.
    pub fn share_file(
        &self,
        caller: Caller,
        chat: ChatId,
        file: FileRef,
    ) -> impl Future<Output = Result<u64, HubError>> + Send + 'static {
        let shared = self.ask_chat(chat, move |reply| ChatMsg::ShareFile {
            caller,
            file,
            reply,
        });
        async move { shared.await.map(|receipt| receipt.seq) }
    }

    /// A shared file's description, if `caller` may download it: the chat's
    /// customer or agent, or an agent of its channel.
    pub async fn file_for(&self, caller: Caller, id: FileId) -> Result<FileRef, HubError> {
        let store = self.shared.store.clone();
        let stored = blocking(move || store.file(id))
            .await?
            .ok_or(HubError::UnknownItem)?;
        let allowed = match &caller {
            Caller::Agent(agent) => {
                let store = self.shared.store.clone();
                let chat = stored.chat;
                let channel = blocking(move || store.transcript(chat, 0))
                    .await?
                    .map(|page| page.channel);
                channel.is_some_and(|channel| self.is_member(agent, &channel))
            }
            Caller::Customer(_) => {
                let caller = caller.clone();
                self.ask_chat(stored.chat, move |reply| ChatMsg::IsParticipant {
                    caller,
                    reply,
                })
                .await
                .unwrap_or(false)
            }
        };
        if allowed {
            Ok(stored.file)
        } else {
            Err(HubError::UnknownItem)
        }
    }
}
