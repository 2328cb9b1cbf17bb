//! The atomics (and the one lock) the core shares across threads, switched to loom's models when
//! built with `--cfg chathub_loom` so the loom test target can explore every
//! interleaving of the same code that runs in production.

#[cfg(chathub_loom)]
pub use loom::sync::Mutex;
#[cfg(chathub_loom)]
pub use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(chathub_loom))]
pub use std::sync::Mutex;
#[cfg(not(chathub_loom))]
pub use std::sync::atomic::{AtomicU64, Ordering};
