//! `--idle N`: holds idle customer connections and reports the hub's
//! resident memory per connection; [`resident_bytes`] also gives the
//! `--hostile` report its figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chathub::client::{ClientConfig, CustomerClient};

use crate::CONNECTING;

/// A process's resident memory in bytes, from /proc.
pub(crate) fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Holds `count` idle customer connections and reports the hub's memory
/// for them.
pub(crate) async fn run(
    client: &ClientConfig,
    count: usize,
    hub_pid: Option<u32>,
) -> anyhow::Result<()> {
    let before = hub_pid.and_then(resident_bytes);
    let started = Instant::now();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let (client, connecting) = (client.clone(), connecting.clone());
            tokio::spawn(async move {
                let _permit = connecting.acquire_owned().await?;
                anyhow::Ok(CustomerClient::connect(&client).await?)
            })
        })
        .collect();
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        held.push(task.await??);
    }
    println!(
        "{count} connections open in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    match (before, hub_pid.and_then(resident_bytes)) {
        (Some(before), Some(after)) => println!(
            "hub resident memory {:.1} MiB -> {:.1} MiB: {:.1} KiB per connection",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / 1024.0 / count as f64
        ),
        _ => println!("(pass --hub-pid to measure the hub's memory)"),
    }
    drop(held);
    Ok(())
}
