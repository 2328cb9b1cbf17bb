//! Files, each on a bidirectional stream of its own.
//!
//! Upload: the client's first frame is an [`Upload`] header, then exactly
//! `size` raw bytes. The bytes go to a temporary file that is synced and
//! renamed into the hub's files folder (and, in a cluster, put into its
//! partition's bucket: [`FileBytes`](crate::store::FileBytes)) before the
//! chat records the share, so a shared file is durable before anyone hears
//! of it. Download: the
//! client's frame names the file; the hub answers with its description and
//! streams the bytes. A file in flight never holds up chat messages: those
//! travel on the control stream and the chats' own streams.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actors::{Caller, Hub, HubError};
use crate::core::{FileRef, Limit, Limits};
use crate::protocol::{
    ClientFrame, ErrorCode, ErrorFrame, FrameBuf, Reply, Response, ServerFrame, Upload, encode,
};
use crate::server::requests::error_frame;

/// The longest file name and content type accepted as sent.
const MAX_NAME_BYTES: usize = 1024;

/// The largest first frame of a file stream: an upload's header with its
/// longest name and content type, or a download request.
const MAX_HEADER_BYTES: usize = 3 * MAX_NAME_BYTES;

/// How long a transfer of `bytes` may take at most: the slowest allowed
/// rate, after a grace as long as the header's deadline.
fn transfer_time(limits: &Limits, bytes: u64) -> Duration {
    limits.file_header_timeout + Duration::from_secs(bytes / limits.file_min_bytes_per_sec)
}

fn too_slow() -> HubError {
    HubError::limited(
        Limit::FileTransferTime,
        "the file travelled slower than the hub allows",
    )
}

/// Serves one file stream.
pub(crate) async fn serve(
    hub: Hub,
    caller: Caller,
    peer: std::net::IpAddr,
    mut send: crate::server::connection::SendStream,
    mut recv: crate::server::connection::RecvStream,
) {
    let limits = hub.limits().clone();
    let mut frames = FrameBuf::with_limit(MAX_HEADER_BYTES);
    let header = tokio::time::timeout(limits.file_header_timeout, async {
        loop {
            match frames.next_frame::<ClientFrame>() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(err) => return Err(err),
            }
            match recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => frames.push(&chunk.bytes),
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    })
    .await;
    let first = match header {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            answer(
                &mut send,
                Err(ErrorFrame::new(ErrorCode::BadFrame, err.to_string())),
            )
            .await;
            return;
        }
        Err(_) => {
            let _ = recv.stop(0u32.into());
            answer(&mut send, Err(error_frame(too_slow()))).await;
            return;
        }
    };
    match first {
        ClientFrame::Upload(upload) => {
            let result = receive(
                &hub,
                caller,
                peer,
                upload,
                frames.take_rest().to_vec(),
                &mut recv,
            )
            .await;
            if result.is_err() {
                // Whatever else the client sends is not wanted.
                let _ = recv.stop(0u32.into());
            }
            answer(&mut send, result.map_err(error_frame)).await;
        }
        ClientFrame::Download { file } => {
            // A download's request is all the client may send.
            let _ = recv.stop(0u32.into());
            // Whether the caller may have the file comes first; then room.
            let found = match hub.file_for(caller, file).await {
                Ok(found) => hub.file_room(0, Some(peer)).map(|room| (room, found)),
                Err(err) => Err(err),
            };
            // The bytes are opened (in a cluster, fetched into the folder
            // if need be) before the answer, so a file that cannot be read
            // is a typed error rather than a broken stream.
            let found = match found {
                Ok((room, found)) => match tokio::time::timeout(
                    transfer_time(&limits, found.size),
                    hub.files().open(found.id),
                )
                .await
                {
                    Ok(Ok(reader)) => Ok((room, found, reader)),
                    Ok(Err(err)) => Err(HubError::StorageUnavailable(format!(
                        "cannot read the file: {err}"
                    ))),
                    Err(_) => Err(HubError::StorageUnavailable(
                        "the file's bytes did not come in time".into(),
                    )),
                },
                Err(err) => Err(err),
            };
            match found {
                Ok((_room, found, reader)) => {
                    if answer_open(&mut send, Ok(Reply::File(found.clone()))).await {
                        let sent = tokio::time::timeout(
                            transfer_time(&limits, found.size),
                            stream_file(reader, &mut send),
                        )
                        .await
                        .unwrap_or_else(|_| {
                            crate::actors::count_refusal(Limit::FileTransferTime);
                            Err(std::io::Error::other("the client read too slowly"))
                        });
                        if let Err(err) = sent {
                            tracing::debug!(file = %found.id, "download failed: {err}");
                            let _ = send.reset(1u32.into());
                            return;
                        }
                        let _ = send.finish();
                    }
                }
                Err(err) => answer(&mut send, Err(error_frame(err))).await,
            }
        }
        _ => {
            let error = ErrorFrame::new(
                ErrorCode::BadFrame,
                "a file stream starts with Upload or Download",
            );
            answer(&mut send, Err(error)).await;
        }
    }
}

/// Writes the stream's one response and finishes it.
async fn answer(send: &mut quinn::SendStream, result: Result<Reply, ErrorFrame>) {
    if answer_open(send, result).await {
        let _ = send.finish();
    }
}

/// Writes the stream's response, leaving the stream open for bytes.
async fn answer_open(send: &mut quinn::SendStream, result: Result<Reply, ErrorFrame>) -> bool {
    let mut buf = Vec::new();
    if encode(&ServerFrame::Response(Response { id: 0, result }), &mut buf).is_err() {
        return false;
    }
    send.write_all(&buf).await.is_ok()
}

/// Takes an upload's bytes into the store's files, then shares the file.
async fn receive(
    hub: &Hub,
    caller: Caller,
    peer: std::net::IpAddr,
    upload: Upload,
    first_bytes: Vec<u8>,
    recv: &mut quinn::RecvStream,
) -> Result<Reply, HubError> {
    if upload.name.len() > MAX_NAME_BYTES || upload.content_type.len() > MAX_NAME_BYTES {
        return Err(HubError::Invalid(format!(
            "a file name and content type may have at most {MAX_NAME_BYTES} bytes"
        )));
    }
    let Some(name) = crate::core::files::clean_file_name(&upload.name) else {
        return Err(HubError::Invalid("a file needs a name".into()));
    };
    let content_type = crate::core::files::safe_content_type(&upload.content_type).to_owned();
    // Nothing is taken before the caller is known to take part in the chat.
    let limit = hub
        .file_limit(upload.chat)
        .ok_or(HubError::NotYourChat(upload.chat))?;
    hub.may_share(&caller, upload.chat, upload.size).await?;
    if upload.size > limit {
        return Err(HubError::FileTooLarge {
            size: upload.size,
            limit,
        });
    }
    let room = hub.file_room(upload.size, Some(peer))?;
    let id = hub.next_file();
    let path = hub.files().path(id);
    let partial = path.with_extension("part");
    let written = write_file(&partial, upload.size, first_bytes, recv, hub.limits()).await;
    if let Err(err) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(err);
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|err| HubError::Unavailable(format!("cannot keep the file: {err}")))?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = tokio::fs::File::open(dir).await
    {
        let _ = dir.sync_all().await;
    }
    if let Err(err) = hub.files().keep(id).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(HubError::StorageUnavailable(format!(
            "cannot keep the file: {err}"
        )));
    }
    let file = FileRef {
        id,
        name,
        content_type,
        size: upload.size,
    };
    match hub.share_file(caller, upload.chat, file.clone()).await {
        Ok(seq) => {
            room.keep();
            Ok(Reply::FileShared { file, seq })
        }
        // The share may have been stored all the same (a failed sync, like
        // a lost answer, may or may not have taken effect): the file stays,
        // and a restart removes it if its record is not there.
        Err(err @ HubError::StorageUnavailable(_)) => {
            room.keep();
            Err(err)
        }
        Err(err) => {
            if let Err(removing) = hub.files().remove(id).await {
                tracing::warn!(
                    file = id.0,
                    "cannot remove a file whose share was refused: {removing}"
                );
            }
            Err(err)
        }
    }
}

/// Writes exactly `size` bytes from the stream (after `first`) and syncs.
/// The bytes must keep coming at `file_min_bytes_per_sec` (after a grace
/// as long as the header's deadline): each read waits only until the moment
/// the bytes so far would have been due.
async fn write_file(
    path: &std::path::Path,
    size: u64,
    first: Vec<u8>,
    recv: &mut quinn::RecvStream,
    limits: &Limits,
) -> Result<(), HubError> {
    let started = tokio::time::Instant::now();
    let (grace, min_rate) = (
        limits.file_header_timeout,
        limits.file_min_bytes_per_sec.max(1),
    );
    let due = |received: u64| {
        started + grace + Duration::from_secs_f64(received as f64 / min_rate as f64)
    };
    let io = |err: std::io::Error| HubError::Unavailable(format!("cannot write the file: {err}"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await.map_err(io)?;
    let mut received = first.len() as u64;
    if received > size {
        return Err(HubError::Invalid(format!(
            "more than the announced {size} bytes"
        )));
    }
    file.write_all(&first).await.map_err(io)?;
    while received < size {
        let chunk = tokio::time::timeout_at(due(received), recv.read_chunk(usize::MAX, true))
            .await
            .map_err(|_| too_slow())?;
        match chunk {
            Ok(Some(chunk)) => {
                received += chunk.bytes.len() as u64;
                if received > size {
                    return Err(HubError::Invalid(format!(
                        "more than the announced {size} bytes"
                    )));
                }
                file.write_all(&chunk.bytes).await.map_err(io)?;
            }
            Ok(None) => {
                return Err(HubError::Invalid(format!(
                    "the stream ended after {received} of {size} bytes"
                )));
            }
            Err(err) => {
                return Err(HubError::Unavailable(format!(
                    "the upload broke off: {err}"
                )));
            }
        }
    }
    file.sync_all().await.map_err(io)?;
    Ok(())
}

async fn stream_file(
    mut reader: tokio::fs::File,
    send: &mut quinn::SendStream,
) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let read = reader.read(&mut buf).await?;
        if read == 0 {
            return Ok(());
        }
        send.write_all(&buf[..read])
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
    }
}
