//! A lease in a JetStream key-value bucket, taken and renewed by compare
//! and set on the key's revision.
//!
//! No clocks of different machines are compared. The holder writes the
//! key again every third of the lease's time, each write expecting the
//! revision of its last. A lease nobody renews goes away: the buckets keep
//! a key for one lease time after its last write (`max_age`, by the NATS
//! servers' clock), and a contender also takes a key whose revision has
//! stood unchanged for a whole lease time by its own clock (a write
//! expecting the revision it saw). A holder whose write finds another
//! revision, or no key, or that could not write for a whole lease time,
//! has lost the lease. The revision it took the lease at is its epoch,
//! which grows with every taking.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

/// What went wrong with NATS or a lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The servers could not be reached, or answered with an error.
    #[error("NATS: {0}")]
    Nats(String),
    /// Another holder's revision stood in the way.
    #[error("the lease {key:?} is held by {holder:?}")]
    Held {
        /// The lease.
        key: String,
        /// Who holds it.
        holder: String,
    },
}

fn nats(what: &str, err: impl std::fmt::Display) -> LeaseError {
    LeaseError::Nats(format!("{what}: {err}"))
}

/// A lease held, renewed by a task of its own until it is released or
/// lost.
#[derive(Debug)]
pub struct Lease {
    key: String,
    epoch: u64,
    lost: watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
    bucket: kv::Store,
    /// The revision of the holder's last write, shared with the renewer.
    revision: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Lease {
    /// Takes the lease `key` of `bucket` for `holder` (the value written),
    /// waiting (watching the key) for as long as another holder keeps
    /// renewing it, up to `patience` (zero: one try).
    pub async fn take(
        bucket: &kv::Store,
        key: &str,
        holder: &str,
        ttl: Duration,
        patience: Duration,
    ) -> Result<Self, LeaseError> {
        let bucket = bucket.clone();
        let value = Bytes::from(holder.to_owned());
        let give_up = Instant::now() + patience;
        // The revision seen and since when it stands.
        let mut seen: Option<(u64, Instant, String)> = None;
        let epoch = loop {
            match bucket.create(key, value.clone()).await {
                Ok(revision) => break revision,
                Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(err) => return Err(nats("cannot take the lease", err)),
            }
            let entry = bucket
                .entry(key)
                .await
                .map_err(|err| nats("cannot read the lease", err))?;
            let now = Instant::now();
            let Some(entry) = entry else {
                // Gone between the two asks: try again, within patience.
                if now >= give_up {
                    return Err(LeaseError::Held {
                        key: key.to_owned(),
                        holder: String::new(),
                    });
                }
                tokio::time::sleep(ttl / 8).await;
                continue;
            };
            let holder_now = String::from_utf8_lossy(&entry.value).into_owned();
            match &seen {
                Some((revision, since, _)) if *revision == entry.revision => {
                    if now.duration_since(*since) >= ttl {
                        // Not renewed for a whole lease time: take it.
                        match bucket.update(key, value.clone(), entry.revision).await {
                            Ok(revision) => break revision,
                            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                                seen = None;
                                continue;
                            }
                            Err(err) => return Err(nats("cannot take the lease", err)),
                        }
                    }
                }
                _ => seen = Some((entry.revision, now, holder_now)),
            }
            if now >= give_up {
                let holder = seen.map(|(_, _, holder)| holder).unwrap_or_default();
                return Err(LeaseError::Held {
                    key: key.to_owned(),
                    holder,
                });
            }
            tokio::time::sleep(ttl / 8).await;
        };
        let revision = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(epoch));
        let (lost_tx, lost) = watch::channel(None);
        let renewer = tokio::spawn(renew(
            bucket.clone(),
            key.to_owned(),
            value,
            ttl,
            revision.clone(),
            lost_tx,
        ));
        Ok(Self {
            key: key.to_owned(),
            epoch,
            lost,
            renewer,
            bucket,
            revision,
        })
    }

    /// The revision the lease was taken at: larger for every later taking.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the lease is lost already.
    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Resolves once the lease is lost, with why.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the lease's renewal stopped".into(),
        }
    }

    /// Stops renewing and gives the lease up (a delete expecting the
    /// holder's own revision), so the next holder need not wait out the
    /// lease time.
    pub async fn release(mut self) {
        self.renewer.abort();
        let _ = (&mut self.renewer).await;
        if self.lost.borrow().is_some() {
            return;
        }
        let revision = self.revision.load(std::sync::atomic::Ordering::Acquire);
        if let Err(err) = self
            .bucket
            .delete_expect_revision(&self.key, Some(revision))
            .await
        {
            tracing::warn!("cannot give the lease {:?} up: {err}", self.key);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of `ttl` until a write finds another
/// revision or none succeeds for a whole `ttl`.
async fn renew(
    bucket: kv::Store,
    key: String,
    value: Bytes,
    ttl: Duration,
    revision: std::sync::Arc<std::sync::atomic::AtomicU64>,
    lost: watch::Sender<Option<String>>,
) {
    use std::sync::atomic::Ordering;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let last = revision.load(Ordering::Acquire);
        match tokio::time::timeout(ttl / 3, bucket.update(&key, value.clone(), last)).await {
            Ok(Ok(next)) => {
                revision.store(next, Ordering::Release);
                renewed = Instant::now();
            }
            Ok(Err(err)) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                let _ = lost.send(Some(format!("the lease {key:?} was taken over")));
                return;
            }
            Ok(Err(err)) => tracing::warn!("cannot renew the lease {key:?}: {err}"),
            Err(_) => tracing::warn!("cannot renew the lease {key:?}: timed out"),
        }
        if renewed.elapsed() >= ttl {
            let _ = lost.send(Some(format!(
                "the lease {key:?} was not renewed for {ttl:?}"
            )));
            return;
        }
    }
}
