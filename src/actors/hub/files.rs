//! Files shared in chats: limits, where their bytes live, who may fetch
//! them.

use super::*;

/// Room taken for one upload or download: a slot among those in flight
/// and, for an upload, its bytes of the disk quota, given back when
/// dropped unless the file was kept.
#[must_use = "dropping the room gives it back"]
pub struct FileRoom {
    hub: Hub,
    bytes: u64,
    per_ip: Option<std::net::IpAddr>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl FileRoom {
    /// The upload was kept: its bytes stay counted.
    pub fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for FileRoom {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.hub
                .shared
                .files_used
                .fetch_sub(self.bytes, Ordering::Relaxed);
        }
        if let Some(ip) = self.per_ip {
            self.hub
                .shared
                .file_slots_per_ip
                .remove_if_mut(&ip, |_, open| {
                    *open = open.saturating_sub(1);
                    *open == 0
                });
        }
    }
}

impl Hub {
    /// Takes room for a transfer of `bytes` new bytes on disk (0 for a
    /// download) from `from` (when known), or refuses: too many transfers
    /// at once (from everyone, or from that address), more uploaded bytes
    /// than that address may upload this hour, or the files' quota passed.
    pub fn file_room(
        &self,
        bytes: u64,
        from: Option<std::net::IpAddr>,
    ) -> Result<FileRoom, HubError> {
        let limits = &self.shared.limits;
        let per_ip = match from {
            Some(ip) => {
                let mut open = self.shared.file_slots_per_ip.entry(ip).or_insert(0);
                if *open >= limits.files_in_flight_per_ip {
                    return Err(HubError::limited(
                        Limit::FilesInFlight,
                        "too many files are on their way from this address; try again shortly",
                    ));
                }
                *open += 1;
                Some(ip)
            }
            None => None,
        };
        // From here on the room gives back what it took when dropped.
        let mut room = FileRoom {
            hub: self.clone(),
            bytes: 0,
            per_ip,
            _slot: None,
        };
        room._slot = Some(
            self.shared
                .file_slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| {
                    HubError::limited(
                        Limit::FilesInFlight,
                        "too many files are on their way; try again shortly",
                    )
                })?,
        );
        if bytes > 0
            && let Some(ip) = from
        {
            let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
            if !self.shared.upload_pace.allow_n(ip, kib, Timestamp::now()) {
                return Err(HubError::limited(
                    Limit::UploadBytes,
                    "this address has uploaded as much as it may for now",
                ));
            }
        }
        let quota = limits.files_quota_bytes;
        let reserved =
            self.shared
                .files_used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    used.checked_add(bytes).filter(|total| *total <= quota)
                });
        if reserved.is_err() {
            return Err(HubError::limited(
                Limit::FilesQuota,
                "the hub has no room for more files",
            ));
        }
        room.bytes = bytes;
        Ok(room)
    }

    /// Whether `caller` may share a file in `chat` now: its customer
    /// (within the chat's pace and length), or the agent holding it. Asked
    /// before any byte of an upload is taken.
    pub async fn may_share(
        &self,
        caller: &Caller,
        chat: ChatId,
        size: u64,
    ) -> Result<(), HubError> {
        let caller = caller.clone();
        self.ask_chat(chat, move |reply| ChatMsg::MayShare {
            caller,
            size,
            reply,
        })
        .await
    }

    /// The most bytes a file shared in `chat`'s channel may have.
    pub fn file_limit(&self, chat: ChatId) -> Option<u64> {
        let channel = self.shared.chats.get(&chat)?.channel.clone();
        self.channel(&channel).map(|settings| settings.file_limit)
    }

    /// Where shared files' bytes live.
    pub fn files(&self) -> &crate::store::FileBytes {
        &self.shared.files
    }

    /// A fresh file id.
    pub fn next_file(&self) -> FileId {
        FileId(self.shared.next_file.fetch_add(1, Ordering::Relaxed))
    }

    /// Shares a file whose bytes are durably kept (see
    /// [`FileBytes::keep`](crate::store::FileBytes::keep)) in `chat`;
    /// answers the event's seq.
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
            Caller::Agent(agent) => self
                .chat_channel(stored.chat)
                .await?
                .is_some_and(|channel| self.is_member(agent, &channel)),
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
