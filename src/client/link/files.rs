//! Files, each on a stream of its own.

use super::*;

impl Link {
    /// The connection now, for a stream of its own.
    pub(super) fn current(&self) -> Result<quinn::Connection, ClientError> {
        lock(&self.inner.connection)
            .clone()
            .ok_or_else(|| ClientError::Closed("not connected right now; try again".into()))
    }

    /// Shares `bytes` as a file in `chat`, on a stream of its own.
    pub(crate) async fn upload(&self, upload: Upload, bytes: &[u8]) -> Result<Reply, ClientError> {
        if upload.size != bytes.len() as u64 {
            return Err(ClientError::Protocol(
                "the upload's size does not match its bytes".into(),
            ));
        }
        let (mut send, recv) = self.current()?.open_bi().await?;
        let mut buf = Vec::new();
        encode(&ClientFrame::Upload(upload), &mut buf).map_err(protocol)?;
        // The hub may refuse the upload after its header (too large, not
        // this caller's chat) and stop reading: its answer, not the
        // stopped stream, is what the caller hears.
        let write = async {
            send.write_all(&buf).await?;
            send.write_all(bytes).await?;
            let _ = send.finish();
            Ok::<(), quinn::WriteError>(())
        };
        let answer = read_stream_answer(recv);
        tokio::pin!(answer);
        let answered = tokio::select! {
            answered = &mut answer => answered,
            _ = write => answer.await,
        };
        let (reply, _) = answered?;
        Ok(reply)
    }

    /// Fetches a file: its description and its bytes.
    pub(crate) async fn download(
        &self,
        file: crate::core::FileId,
    ) -> Result<(Reply, Vec<u8>), ClientError> {
        let (mut send, recv) = self.current()?.open_bi().await?;
        let mut buf = Vec::new();
        encode(&ClientFrame::Download { file }, &mut buf).map_err(protocol)?;
        send.write_all(&buf)
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;
        let _ = send.finish();
        read_stream_answer(recv).await
    }
}

/// Reads a file stream's response, then every byte after it.
async fn read_stream_answer(mut recv: quinn::RecvStream) -> Result<(Reply, Vec<u8>), ClientError> {
    let mut frames = FrameBuf::new();
    let response = loop {
        if let Some(frame) = frames.next_frame::<ServerFrame>().map_err(protocol)? {
            break frame;
        }
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => frames.push(&chunk.bytes),
            Ok(None) => {
                return Err(ClientError::Closed(
                    "the file stream ended without an answer".into(),
                ));
            }
            Err(err) => return Err(ClientError::Closed(err.to_string())),
        }
    };
    let reply = match response {
        ServerFrame::Response(Response {
            result: Ok(reply), ..
        }) => reply,
        ServerFrame::Response(Response {
            result: Err(error), ..
        }) => return Err(ClientError::Refused(error)),
        other => {
            return Err(protocol(format!(
                "unexpected frame on a file stream: {other:?}"
            )));
        }
    };
    let mut bytes = frames.take_rest().to_vec();
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk.bytes),
            Ok(None) => return Ok((reply, bytes)),
            Err(err) => return Err(ClientError::Closed(err.to_string())),
        }
    }
}
