//! Where shared files' bytes live.
//!
//! A hub alone keeps them in a folder of its data directory, one file per
//! shared file, named by its id. A partition of a cluster keeps them in a
//! JetStream object store bucket of its own as well (file storage,
//! replicated like its commit log), and its folder is then a cache: a file
//! is in the bucket before its share is recorded, so whichever hub owns
//! the partition next serves it, fetching it into its own folder on the
//! first download. The bucket's server acknowledges a file once it is
//! stored as configured (`sync_interval: always` makes that a sync).
//!
//! Either way a file whose record is gone (erased, or its share never
//! stored because the hub died in between) is removed by the next start's
//! sweep, so a crash between the two steps leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::jetstream::{self, object_store};
use futures::StreamExt;

use crate::core::FileId;
use crate::store::StoreError;

/// Where a partition's files are replicated in a cluster.
#[derive(Clone, Debug)]
pub struct FileBucket {
    /// A connected client.
    pub client: async_nats::Client,
    /// The object store bucket (created if missing).
    pub bucket: String,
    /// Replicas for a bucket created here (1, 3 or 5).
    pub replicas: usize,
}

/// The bytes of a hub's shared files: a folder, and in a cluster a
/// JetStream object store bucket the folder caches.
#[derive(Clone, Debug, Default)]
pub struct FileBytes {
    dir: PathBuf,
    bucket: Option<Bucket>,
}

#[derive(Clone)]
struct Bucket {
    name: String,
    store: object_store::ObjectStore,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

/// Numbers the temporary files of downloads fetched from a bucket, so two
/// fetches of one file never write the same temporary file.
static FETCHES: AtomicU64 = AtomicU64::new(0);

fn bucket_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("file bucket: {what}: {err}"))
}

impl FileBytes {
    /// Files kept in `dir` alone.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            bucket: None,
        }
    }

    /// Files kept in `target`'s bucket (created if missing) and cached in
    /// `dir`.
    pub async fn replicated(
        dir: impl Into<PathBuf>,
        target: &FileBucket,
    ) -> Result<Self, StoreError> {
        let context = jetstream::new(target.client.clone());
        let store = match context.get_object_store(&target.bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: target.bucket.clone(),
                    description: Some("files shared in a partition's chats".into()),
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: target.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|err| bucket_error("creating it", err))?,
        };
        Ok(Self {
            dir: dir.into(),
            bucket: Some(Bucket {
                name: target.bucket.clone(),
                store,
            }),
        })
    }

    /// The folder the bytes are kept (or cached) in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where file `id`'s bytes are in the folder.
    pub fn path(&self, id: FileId) -> PathBuf {
        self.dir.join(id.0.to_string())
    }

    /// Makes the bytes written and synced at [`path`](Self::path) durable
    /// beyond this machine: in a cluster, puts them into the bucket (and
    /// returns once its server acknowledged them); alone, they already are
    /// as durable as the hub's own store.
    pub async fn keep(&self, id: FileId) -> Result<(), StoreError> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        let mut file = tokio::fs::File::open(self.path(id))
            .await
            .map_err(|err| bucket_error("reading the upload", err))?;
        bucket
            .store
            .put(id.0.to_string().as_str(), &mut file)
            .await
            .map_err(|err| bucket_error(&format!("putting file {}", id.0), err))?;
        Ok(())
    }

    /// Opens file `id`'s bytes for reading; in a cluster, a file not in
    /// the folder yet is fetched from the bucket into it first.
    pub async fn open(&self, id: FileId) -> std::io::Result<tokio::fs::File> {
        let path = self.path(id);
        match tokio::fs::File::open(&path).await {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            opened => return opened,
        }
        let Some(bucket) = &self.bucket else {
            return tokio::fs::File::open(&path).await;
        };
        let fetch = self.dir.join(format!(
            "{}.{}.part",
            id.0,
            FETCHES.fetch_add(1, Ordering::Relaxed)
        ));
        let fetched = async {
            let mut object =
                bucket
                    .store
                    .get(id.0.to_string())
                    .await
                    .map_err(|err| match err.kind() {
                        object_store::GetErrorKind::NotFound => {
                            std::io::Error::new(std::io::ErrorKind::NotFound, err)
                        }
                        _ => std::io::Error::other(err),
                    })?;
            let mut options = tokio::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            options.mode(0o600);
            let mut file = options.open(&fetch).await?;
            // The object checks its digest as its last bytes are read.
            tokio::io::copy(&mut object, &mut file).await?;
            file.sync_all().await?;
            tokio::fs::rename(&fetch, &path).await
        }
        .await;
        if let Err(err) = fetched {
            let _ = tokio::fs::remove_file(&fetch).await;
            return Err(err);
        }
        tokio::fs::File::open(&path).await
    }

    /// Removes file `id`'s bytes (from the bucket too, in a cluster) once
    /// its record is durably gone; answers how many bytes that frees of
    /// the files' quota, if there were any.
    pub async fn remove(&self, id: FileId) -> std::io::Result<Option<u64>> {
        let path = self.path(id);
        let local = tokio::fs::metadata(&path).await.map(|meta| meta.len());
        let removed = match tokio::fs::remove_file(&path).await {
            Ok(()) => local.ok(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let Some(bucket) = &self.bucket else {
            return Ok(removed);
        };
        let name = id.0.to_string();
        let size = match bucket.store.info(&name).await {
            Ok(info) => info.size as u64,
            Err(err) if err.kind() == object_store::InfoErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(std::io::Error::other(err)),
        };
        bucket
            .store
            .delete(&name)
            .await
            .map_err(std::io::Error::other)?;
        Ok(Some(size))
    }

    /// At a start: removes what a crash left behind (half-written uploads
    /// and fetches, files no record in `known` names, in the folder and in
    /// the bucket), and answers how many bytes the recorded files take.
    pub async fn sweep(&self, known: HashSet<u64>) -> Result<u64, StoreError> {
        let local = {
            let (dir, known) = (self.dir.clone(), known.clone());
            tokio::task::spawn_blocking(move || sweep_folder(&dir, &known))
                .await
                .map_err(|err| bucket_error("sweeping the folder", err))?
        };
        let Some(bucket) = &self.bucket else {
            return Ok(local);
        };
        let mut objects = bucket
            .store
            .list()
            .await
            .map_err(|err| bucket_error("listing it", err))?;
        let (mut used, mut unrecorded) = (0, Vec::new());
        while let Some(info) = objects.next().await {
            let info = info.map_err(|err| bucket_error("listing it", err))?;
            match info.name.parse::<u64>() {
                Ok(id) if known.contains(&id) => used += info.size as u64,
                _ => unrecorded.push(info.name),
            }
        }
        for name in unrecorded {
            match bucket.store.delete(&name).await {
                Ok(()) => {
                    tracing::info!(bucket = %bucket.name, file = %name, "removed a file no share was stored for")
                }
                Err(err) => {
                    tracing::warn!(bucket = %bucket.name, file = %name, "cannot remove a file no share was stored for: {err}")
                }
            }
        }
        Ok(used)
    }
}

/// Removes from `dir` the temporary files a crash left (`*.part`) and the
/// files no record names (written, but their share was never stored), and
/// answers how many bytes the files there take.
fn sweep_folder(dir: &Path, known: &HashSet<u64>) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut used = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let unrecorded = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u64>().ok())
            .is_some_and(|id| !known.contains(&id));
        if path.extension().is_some_and(|ext| ext == "part") || unrecorded {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed a file no share was stored for")
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), "cannot remove a half-written upload: {err}")
                }
            }
        } else if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            used += meta.len();
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_sweep_keeps_recorded_files_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1"), b"kept").unwrap();
        std::fs::write(dir.path().join("2"), b"unrecorded").unwrap();
        std::fs::write(dir.path().join("3.part"), b"half").unwrap();
        std::fs::write(dir.path().join("1.7.part"), b"a fetch").unwrap();
        let used = sweep_folder(dir.path(), &HashSet::from([1, 3]));
        assert_eq!(used, 4);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["1"]);
    }

    #[tokio::test]
    async fn a_local_file_is_opened_removed_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileBytes::local(dir.path());
        std::fs::write(files.path(FileId(5)), b"bytes").unwrap();
        files.keep(FileId(5)).await.unwrap();
        assert!(files.open(FileId(5)).await.is_ok());
        assert_eq!(files.remove(FileId(5)).await.unwrap(), Some(5));
        assert_eq!(files.remove(FileId(5)).await.unwrap(), None);
        let missing = files.open(FileId(5)).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
