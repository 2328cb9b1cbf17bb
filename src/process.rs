//! Process-wide settings the binaries apply when they start.

/// Turns transparent huge pages off for this process.
///
/// With huge pages, the first touch of each fresh 2 MiB of heap faults in
/// and zeroes the whole 2 MiB at once, stalling the thread that touched it;
/// in a virtual machine that is a millisecond or more. A hub's heap grows
/// with its live transcripts, so these stalls landed on message delivery:
/// at 50k relayed messages/s they were most of the p999. With 4 KiB pages
/// the same memory is faulted in small, even steps. (Databases and caches
/// that care for their tail latency advise the same.)
///
/// Best effort: where the kernel refuses (or outside Linux) nothing
/// changes, and the process runs as before. The setting is the process's
/// and passes on to any process it starts.
pub fn disable_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!("cannot turn transparent huge pages off: {err}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn huge_pages_are_off_afterwards() {
        super::disable_huge_pages();
        match rustix::thread::transparent_huge_pages_are_disabled() {
            Ok(disabled) => assert!(disabled),
            // A sandbox that refuses the question refused the setting too.
            Err(err) => eprintln!("this kernel does not say: {err}"),
        }
    }
}
