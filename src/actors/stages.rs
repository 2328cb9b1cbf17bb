//! Where a chat message's time goes inside the hub, stage by stage, as
//! the histogram `chathub_stage_seconds{stage}`:
//!
//! - `to_chat`: the connection task handed the request on; the chat's
//!   actor takes it (its mailbox, and the worker threads' backlog);
//! - `durable`: the actor handed the event to the store; the commit log
//!   synced it (gathering with other writes, the write, the sync);
//! - `to_publish`: the store said so; the actor publishes (its mailbox
//!   again) straight into the customer's and the agents' connection
//!   queues;
//! - `to_connection`: queued for a connection; the connection's task
//!   writes it to its stream.
//!
//! Together with the client's own clock on both ends (the loadtest), they
//! say where a message waits. The handles are looked up once per process.

use std::sync::LazyLock;
use std::time::Instant;

use metrics::Histogram;

/// One histogram per stage.
pub(crate) struct Stages {
    pub(crate) to_chat: Histogram,
    pub(crate) durable: Histogram,
    pub(crate) to_publish: Histogram,
    pub(crate) to_connection: Histogram,
}

/// Every stage's name, as the `stage` label says it.
pub const STAGE_NAMES: [&str; 4] = ["to_chat", "durable", "to_publish", "to_connection"];

/// The stages' histograms, from the recorder installed when first used.
pub(crate) static STAGES: LazyLock<Stages> = LazyLock::new(|| {
    let stage = |name: &'static str| metrics::histogram!("chathub_stage_seconds", "stage" => name);
    Stages {
        to_chat: stage(STAGE_NAMES[0]),
        durable: stage(STAGE_NAMES[1]),
        to_publish: stage(STAGE_NAMES[2]),
        to_connection: stage(STAGE_NAMES[3]),
    }
});

/// Records the time since `since` in `histogram`.
pub(crate) fn since(histogram: &Histogram, since: Instant) {
    histogram.record(since.elapsed().as_secs_f64());
}
