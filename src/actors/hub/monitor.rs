//! Live monitors: supervisors watching a channel's monitor as it changes.
//!
//! One feed per watched channel, whoever and however many watch it: a task
//! that takes the channel's picture every `[limits] monitor_interval` and
//! publishes it into a `watch` channel only when something but the clock
//! changed ([`ChannelMonitor::same_but_clock`]). The feed starts with the
//! first watch of its channel and stops once nobody watches it (or the
//! channel is gone), so its cost is one picture per interval per watched
//! channel, not per supervisor. A watch ([`MonitorWatch`]) reads the
//! latest picture of its feed, so a watcher that falls behind skips
//! pictures and never queues them.
//!
//! Watches are counted per connection (`[limits]
//! monitors_per_connection`) and end with it; a reload that takes a
//! supervisor's oversight of a channel stops their watches of it.

use std::collections::HashMap;
use std::sync::Weak;

use tokio::sync::watch;

use super::*;
use crate::core::ChannelMonitor;

/// The live monitors: feeds by channel, watches by connection.
#[derive(Default)]
pub(super) struct Monitors {
    /// The feed of each watched channel. A feed's task removes its own
    /// entry, under this lock, when it stops; a watch joins a feed under
    /// it too, so a feed never stops with a watcher just joined.
    feeds: std::sync::Mutex<HashMap<ChannelId, watch::Sender<Arc<ChannelMonitor>>>>,
    /// The watches of each connection that has any.
    watches: DashMap<ConnId, Watching>,
}

/// A connection's watches.
struct Watching {
    /// The connection's agent, whose oversight a reload checks again.
    agent: AgentId,
    /// Per channel watched, what stops the watch: a message stops it with
    /// [`MonitorUpdate::Stopped`], dropping it ends it quietly. Closed
    /// once the watch itself is gone (its connection's writer ended).
    channels: HashMap<ChannelId, oneshot::Sender<()>>,
}

impl Watching {
    /// Forgets watches whose reader is gone.
    fn prune(&mut self) {
        self.channels.retain(|_, stop| !stop.is_closed());
    }
}

/// What a watch brings next.
#[derive(Clone, Debug)]
pub enum MonitorUpdate {
    /// A picture of the channel: the one at hand first, then each that
    /// changed in more than the clock.
    Picture(Arc<ChannelMonitor>),
    /// The hub ended the watch: its supervisor no longer oversees the
    /// channel, or the channel is gone. The watcher is to be told; nothing
    /// follows.
    Stopped,
    /// The watch was ended by its own connection (unwatched, or the
    /// connection is closing). Nothing follows.
    Ended,
}

/// One connection's watch of a channel's monitor.
#[derive(Debug)]
pub struct MonitorWatch {
    channel: ChannelId,
    /// The feed's pictures; `None` once the watch is over, so an ended
    /// watch no longer keeps its feed running.
    pictures: Option<watch::Receiver<Arc<ChannelMonitor>>>,
    stop: oneshot::Receiver<()>,
}

impl MonitorWatch {
    /// The channel watched.
    pub fn channel(&self) -> &ChannelId {
        &self.channel
    }

    /// The next update; after [`MonitorUpdate::Stopped`] or
    /// [`MonitorUpdate::Ended`] it is always `Ended`. Cancel-safe: a
    /// picture not taken stays for the next call, replaced by a newer one
    /// if one comes first.
    pub async fn next(&mut self) -> MonitorUpdate {
        let Some(pictures) = &mut self.pictures else {
            return MonitorUpdate::Ended;
        };
        let update = tokio::select! {
            biased;
            stopped = &mut self.stop => match stopped {
                Ok(()) => MonitorUpdate::Stopped,
                Err(_) => MonitorUpdate::Ended,
            },
            changed = pictures.changed() => match changed {
                Ok(()) => return MonitorUpdate::Picture(pictures.borrow_and_update().clone()),
                // The feed stopped: its channel is gone (or the hub is).
                Err(_) => MonitorUpdate::Stopped,
            },
        };
        self.pictures = None;
        update
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// `by` watches `channel`'s monitor live on connection `conn`: the
    /// watch answers the picture at hand at once, then each that changed.
    /// `NotAllowed` unless `by` oversees the channel (as for
    /// [`Hub::monitor`]); `None` if `conn` watches it already (nothing
    /// changes); `Limited` beyond `[limits] monitors_per_connection`.
    pub async fn watch_monitor(
        &self,
        by: &AgentId,
        conn: ConnId,
        channel: ChannelId,
    ) -> Result<Option<MonitorWatch>, HubError> {
        self.oversee(by, &channel)?;
        // Checked before any work for it, and again once the feed is at
        // hand (another request of the connection may have come between).
        if !self.admit_watch(by, conn, &channel, None)? {
            return Ok(None);
        }
        let pictures = self.feed(&channel).await?;
        let (stop, stopped) = oneshot::channel();
        if !self.admit_watch(by, conn, &channel, Some(stop))? {
            return Ok(None);
        }
        Ok(Some(MonitorWatch {
            channel,
            pictures: Some(pictures),
            stop: stopped,
        }))
    }

    /// Whether connection `conn` of `by` may start watching `channel`
    /// (and, given its `stop`, does): false if it watches it already,
    /// `Limited` if it watches as many as it may.
    fn admit_watch(
        &self,
        by: &AgentId,
        conn: ConnId,
        channel: &ChannelId,
        stop: Option<oneshot::Sender<()>>,
    ) -> Result<bool, HubError> {
        let mut watching = self
            .shared
            .monitors
            .watches
            .entry(conn)
            .or_insert_with(|| Watching {
                agent: by.clone(),
                channels: HashMap::new(),
            });
        watching.prune();
        if watching.channels.contains_key(channel) {
            return Ok(false);
        }
        let most = self.shared.limits.monitors_per_connection;
        if watching.channels.len() >= most {
            return Err(HubError::limited(
                Limit::MonitorsPerConnection,
                format!("this connection watches {most} monitors already"),
            ));
        }
        if let Some(stop) = stop {
            watching.channels.insert(channel.clone(), stop);
        }
        Ok(true)
    }

    /// Connection `conn` of `by` stops watching `channel`; not watching
    /// it is no error. `NotAllowed` for someone who oversees nothing.
    pub fn unwatch_monitor(
        &self,
        by: &AgentId,
        conn: ConnId,
        channel: &ChannelId,
    ) -> Result<(), HubError> {
        if !self.role(by).oversees_any() {
            return Err(HubError::NotAllowed(format!("{by} supervises no channel")));
        }
        if let Some(mut watching) = self.shared.monitors.watches.get_mut(&conn) {
            // Dropping the stop ends the watch quietly.
            watching.channels.remove(channel);
        }
        Ok(())
    }

    /// Connection `conn` closed: its watches end.
    pub fn monitors_gone(&self, conn: ConnId) {
        self.shared.monitors.watches.remove(&conn);
    }

    /// Stops every watch whose supervisor no longer oversees its channel
    /// (after a reload changed roles); each watcher is told.
    pub(super) fn check_monitor_watches(&self) {
        for mut entry in self.shared.monitors.watches.iter_mut() {
            let role = self.role(&entry.agent);
            let lost: Vec<ChannelId> = entry
                .channels
                .keys()
                .filter(|channel| !role.oversees(channel))
                .cloned()
                .collect();
            for channel in lost {
                if let Some(stop) = entry.channels.remove(&channel) {
                    let _ = stop.send(());
                }
            }
        }
    }

    /// How many channels have a feed running (one however many watch it).
    pub fn monitor_feeds(&self) -> usize {
        lock(&self.shared.monitors.feeds).len()
    }

    /// A reader of `channel`'s feed, started if none runs, that sees the
    /// picture at hand as new.
    async fn feed(
        &self,
        channel: &ChannelId,
    ) -> Result<watch::Receiver<Arc<ChannelMonitor>>, HubError> {
        if let Some(pictures) = self.join_feed(channel) {
            return Ok(pictures);
        }
        let first = Arc::new(self.picture(channel.clone()).await?);
        let mut feeds = lock(&self.shared.monitors.feeds);
        // Another watch may have started it meanwhile.
        if let Some(feed) = feeds.get(channel) {
            let mut pictures = feed.subscribe();
            pictures.mark_changed();
            return Ok(pictures);
        }
        let (feed, mut pictures) = watch::channel(first);
        pictures.mark_changed();
        feeds.insert(channel.clone(), feed.clone());
        spawn_feed(
            Arc::downgrade(&self.shared),
            channel.clone(),
            feed,
            self.shared.limits.monitor_interval,
        );
        Ok(pictures)
    }

    /// A reader of `channel`'s running feed, if one runs.
    fn join_feed(&self, channel: &ChannelId) -> Option<watch::Receiver<Arc<ChannelMonitor>>> {
        let feeds = lock(&self.shared.monitors.feeds);
        let mut pictures = feeds.get(channel)?.subscribe();
        pictures.mark_changed();
        Some(pictures)
    }

    /// Ends `channel`'s feed `feed` if nobody reads it (or `anyway`):
    /// its entry goes, under the lock joining takes. True if it ended.
    fn end_feed(
        &self,
        channel: &ChannelId,
        feed: &watch::Sender<Arc<ChannelMonitor>>,
        anyway: bool,
    ) -> bool {
        let mut feeds = lock(&self.shared.monitors.feeds);
        if !anyway && feed.receiver_count() > 0 {
            return false;
        }
        if feeds
            .get(channel)
            .is_some_and(|running| running.same_channel(feed))
        {
            feeds.remove(channel);
        }
        true
    }
}

/// Runs `channel`'s feed: every `every`, while anyone reads it, takes the
/// channel's picture and publishes it if more than the clock changed.
/// Stops once nobody reads it, the channel is gone, or the hub is.
fn spawn_feed(
    shared: Weak<Shared>,
    channel: ChannelId,
    feed: watch::Sender<Arc<ChannelMonitor>>,
    every: Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = feed.closed() => {}
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let hub = Hub { shared };
            if hub.end_feed(&channel, &feed, false) {
                return;
            }
            match hub.picture(channel.clone()).await {
                Ok(picture) => {
                    feed.send_if_modified(|shown| {
                        let changed = !shown.same_but_clock(&picture);
                        if changed {
                            *shown = Arc::new(picture);
                        }
                        changed
                    });
                }
                Err(HubError::UnknownChannel(_)) => {
                    // Its watchers learn the feed stopped.
                    hub.end_feed(&channel, &feed, true);
                    return;
                }
                // The channel's actor is being restarted, say: the next
                // turn tries again.
                Err(err) => tracing::debug!(%channel, "no monitor picture this turn: {err}"),
            }
        }
    });
}
