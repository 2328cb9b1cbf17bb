//! The hub's local control socket, `<data_dir>/control.sock`: how
//! `chathub reload` asks a running hub to read its configuration again and
//! learns what came of it.
//!
//! Only the data folder's owner can reach it (the folder is 0700, the
//! socket 0600). One request a connection: the line `reload`, answered by
//! one line, `ok <what changed>` or `refused <why>`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// How long either side waits for the other's line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest request line taken.
const MAX_REQUEST: u64 = 64;

/// The control socket's path in a data folder.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// The listening control socket; the file is removed when it is dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// A request read from the control socket, waiting for its answer.
#[derive(Debug)]
pub struct ControlRequest {
    stream: UnixStream,
}

impl ControlSocket {
    /// Listens on `<data_dir>/control.sock`, replacing a file a stopped
    /// hub left there. (The store's lock keeps a second hub off the same
    /// data folder before it gets here.)
    pub fn bind(data_dir: &Path) -> io::Result<Self> {
        let path = socket_path(data_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let listener = UnixListener::bind(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Self { listener, path })
    }

    /// The next `reload` request. Connections that say anything else, or
    /// nothing in time, are answered `refused` (or dropped) and skipped.
    pub async fn next_reload(&self) -> ControlRequest {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                // Out of descriptors, say: try again in a moment rather
                // than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut request = ControlRequest { stream };
            match request.read_line().await {
                Ok(line) if line == "reload" => return request,
                Ok(line) => {
                    request
                        .answer(Err(format!("unknown request {line:?}; try \"reload\"")))
                        .await;
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlRequest {
    async fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let mut reader = BufReader::new((&mut self.stream).take(MAX_REQUEST));
        tokio::time::timeout(LINE_TIMEOUT, reader.read_line(&mut line))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(line.trim().to_owned())
    }

    /// Answers the request: what changed, or why nothing did.
    pub async fn answer(mut self, outcome: Result<String, String>) {
        let line = match outcome {
            Ok(done) => format!("ok {}\n", one_line(&done)),
            Err(why) => format!("refused {}\n", one_line(&why)),
        };
        let _ = tokio::time::timeout(LINE_TIMEOUT, self.stream.write_all(line.as_bytes())).await;
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Asks the hub running on `data_dir` to reload its configuration: what
/// changed on success, the hub's reason as an `InvalidData` error if it
/// refused.
pub async fn request_reload(data_dir: &Path) -> io::Result<String> {
    let path = socket_path(data_dir);
    let mut stream = UnixStream::connect(&path).await.map_err(|err| {
        io::Error::new(
            err.kind(),
            format!(
                "no hub answers on {} (is one running on this data folder?): {err}",
                path.display()
            ),
        )
    })?;
    stream.write_all(b"reload\n").await?;
    let mut line = String::new();
    tokio::time::timeout(
        LINE_TIMEOUT,
        BufReader::new(&mut stream).read_line(&mut line),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the hub did not answer"))??;
    let line = line.trim_end();
    if let Some(done) = line.strip_prefix("ok ") {
        Ok(done.to_owned())
    } else if let Some(why) = line.strip_prefix("refused ") {
        Err(io::Error::new(io::ErrorKind::InvalidData, why.to_owned()))
    } else {
        Err(io::Error::other(format!("an unexpected answer: {line:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reload_request_gets_the_hubs_answer_and_other_lines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = ControlSocket::bind(dir.path()).unwrap();
        let hub = tokio::spawn(async move {
            let first = socket.next_reload().await;
            first.answer(Ok("channels added: sales".into())).await;
            let second = socket.next_reload().await;
            second
                .answer(Err("invalid configuration:\nline 3".into()))
                .await;
            socket
        });
        // Something other than a reload is answered and skipped.
        let mut stranger = UnixStream::connect(socket_path(dir.path())).await.unwrap();
        stranger.write_all(b"shutdown\n").await.unwrap();
        let mut answer = String::new();
        BufReader::new(&mut stranger)
            .read_line(&mut answer)
            .await
            .unwrap();
        assert!(answer.starts_with("refused unknown request"), "{answer}");

        assert_eq!(
            request_reload(dir.path()).await.unwrap(),
            "channels added: sales"
        );
        let refused = request_reload(dir.path()).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert_eq!(refused.to_string(), "invalid configuration: line 3");
        drop(hub.await.unwrap());
        assert!(
            !socket_path(dir.path()).exists(),
            "the socket file goes with the socket"
        );
        let gone = request_reload(dir.path()).await.unwrap_err();
        assert!(gone.to_string().contains("no hub answers"), "{gone}");
    }
}
