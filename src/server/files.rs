//! Files, each on a bidirectional stream of its own.
//!
//! Upload: the client's first frame is an [`Upload`] header, then exactly
//! `size` raw bytes. The bytes go to a temporary file that is synced and
//! renamed into `<data_dir>/files/<id>` before the chat records the share,
//! so a shared file is durable before anyone hears of it. Download: the
//! client's frame names the file; the hub answers with its description and
//! streams the bytes. A file in flight never holds up chat messages: those
//! travel on the control stream and the chats' own streams.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actors::{Caller, Hub, HubError};
use crate::core::FileRef;
use crate::protocol::{
    ClientFrame, ErrorCode, ErrorFrame, FrameBuf, Reply, Response, ServerFrame, Upload, encode,
};
use crate::server::requests::error_frame;

/// The longest file name and content type accepted.
const MAX_NAME_BYTES: usize = 255;

/// Serves one file stream.
pub(crate) async fn serve(
    hub: Hub,
    caller: Caller,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let mut frames = FrameBuf::new();
    let first = loop {
        match frames.next_frame::<ClientFrame>() {
            Ok(Some(frame)) => break frame,
            Ok(None) => {}
            Err(err) => {
                answer(
                    &mut send,
                    Err(ErrorFrame::new(ErrorCode::BadFrame, err.to_string())),
                )
                .await;
                return;
            }
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
    };
    match first {
        ClientFrame::Upload(upload) => {
            let result =
                receive(&hub, caller, upload, frames.take_rest().to_vec(), &mut recv).await;
            answer(&mut send, result.map_err(error_frame)).await;
        }
        ClientFrame::Download { file } => match hub.file_for(caller, file).await {
            Ok(found) => {
                if answer_open(&mut send, Ok(Reply::File(found.clone()))).await {
                    if let Err(err) = stream_file(&hub, &found, &mut send).await {
                        tracing::warn!(file = %found.id, "download failed: {err}");
                        let _ = send.reset(1u32.into());
                        return;
                    }
                    let _ = send.finish();
                }
            }
            Err(err) => answer(&mut send, Err(error_frame(err))).await,
        },
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
    upload: Upload,
    first_bytes: Vec<u8>,
    recv: &mut quinn::RecvStream,
) -> Result<Reply, HubError> {
    if upload.name.trim().is_empty()
        || upload.name.len() > MAX_NAME_BYTES
        || upload.name.contains(['/', '\\'])
    {
        return Err(HubError::Invalid(format!(
            "a file name needs 1 to {MAX_NAME_BYTES} bytes and no path separators"
        )));
    }
    if upload.content_type.trim().is_empty() || upload.content_type.len() > MAX_NAME_BYTES {
        return Err(HubError::Invalid("a file needs a content type".into()));
    }
    let limit = hub
        .file_limit(upload.chat)
        .ok_or(HubError::UnknownChat(upload.chat))?;
    if upload.size > limit {
        return Err(HubError::FileTooLarge {
            size: upload.size,
            limit,
        });
    }
    let id = hub.next_file();
    let path = hub.file_path(id);
    let partial = path.with_extension("part");
    let written = write_file(&partial, upload.size, first_bytes, recv).await;
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
    let file = FileRef {
        id,
        name: upload.name,
        content_type: upload.content_type,
        size: upload.size,
    };
    match hub.share_file(caller, upload.chat, file.clone()).await {
        Ok(seq) => Ok(Reply::FileShared { file, seq }),
        Err(err) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(err)
        }
    }
}

/// Writes exactly `size` bytes from the stream (after `first`) and syncs.
async fn write_file(
    path: &std::path::Path,
    size: u64,
    first: Vec<u8>,
    recv: &mut quinn::RecvStream,
) -> Result<(), HubError> {
    let io = |err: std::io::Error| HubError::Unavailable(format!("cannot write the file: {err}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut received = first.len() as u64;
    if received > size {
        return Err(HubError::Invalid(format!(
            "more than the announced {size} bytes"
        )));
    }
    file.write_all(&first).await.map_err(io)?;
    while received < size {
        match recv.read_chunk(usize::MAX, true).await {
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
    hub: &Hub,
    file: &FileRef,
    send: &mut quinn::SendStream,
) -> std::io::Result<()> {
    let mut reader = tokio::fs::File::open(hub.file_path(file.id)).await?;
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
