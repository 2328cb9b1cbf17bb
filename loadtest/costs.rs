//! What a run cost: the hub's CPU time per relayed message (from
//! `/proc/<pid>/stat`), the UDP datagrams this machine sent per relayed
//! message (from `/proc/net/snmp`: on loopback every datagram of the hub
//! and of the load), and where a message waited inside the hub (the
//! `chathub_stage_seconds` histograms of its `/metrics`). Each is read
//! before and after the run; the difference is reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;

// The stages the hub reports, in a message's order.
use chathub::actors::stages::STAGE_NAMES as STAGES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of the counters.
#[derive(Default)]
pub(crate) struct Probe {
    cpu_ticks: Option<u64>,
    datagrams: Option<u64>,
    /// Per stage: cumulative counts by upper bound (seconds), and the sum.
    stages: Option<BTreeMap<String, Buckets>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Buckets {
    /// (upper bound in seconds, cumulative count), in bound order.
    counts: Vec<(f64, u64)>,
    sum: f64,
}

impl Probe {
    /// Reads whatever of the counters it can reach.
    pub(crate) async fn take(hub_pid: Option<u32>, metrics: Option<SocketAddr>) -> Self {
        let stages = match metrics {
            Some(addr) => match scrape(addr).await {
                Ok(text) => Some(parse_stages(&text)),
                Err(err) => {
                    eprintln!("cannot read the hub's metrics at {addr}: {err}");
                    None
                }
            },
            None => None,
        };
        Self {
            cpu_ticks: hub_pid.and_then(cpu_ticks),
            datagrams: datagrams_sent(),
            stages,
        }
    }
}

/// What the run cost, per relayed message.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Costs {
    /// The hub's CPU microseconds (user and system).
    pub(crate) hub_cpu_us_per_message: Option<f64>,
    /// UDP datagrams sent on this machine.
    pub(crate) datagrams_per_message: Option<f64>,
    /// The hub's stages: p50, p99 and mean in milliseconds.
    pub(crate) stages: Vec<StageLatency>,
}

/// One stage's latency inside the hub over the run.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StageLatency {
    pub(crate) stage: String,
    pub(crate) events: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
}

impl Costs {
    /// The difference between two readings, per relayed message.
    pub(crate) fn between(before: &Probe, after: &Probe, relayed: u64) -> Self {
        let per_message = |delta: f64| (relayed > 0).then(|| delta / relayed as f64);
        let cpu = match (before.cpu_ticks, after.cpu_ticks) {
            (Some(b), Some(a)) => per_message(a.saturating_sub(b) as f64 / TICKS_PER_SECOND * 1e6),
            _ => None,
        };
        let datagrams = match (before.datagrams, after.datagrams) {
            (Some(b), Some(a)) => per_message(a.saturating_sub(b) as f64),
            _ => None,
        };
        let mut stages = Vec::new();
        if let (Some(b), Some(a)) = (&before.stages, &after.stages) {
            for name in STAGES {
                let Some(after) = a.get(name) else { continue };
                let empty = Buckets::default();
                let before = b.get(name).unwrap_or(&empty);
                if let Some(latency) = stage_latency(name, before, after) {
                    stages.push(latency);
                }
            }
        }
        Self {
            hub_cpu_us_per_message: cpu,
            datagrams_per_message: datagrams,
            stages,
        }
    }

    pub(crate) fn print(&self) {
        if let Some(cpu) = self.hub_cpu_us_per_message {
            println!("hub CPU per relayed message: {cpu:.1} us");
        }
        if let Some(datagrams) = self.datagrams_per_message {
            println!("UDP datagrams sent on this machine per relayed message: {datagrams:.2}");
        }
        if !self.stages.is_empty() {
            println!("inside the hub, ms (p50 / p99 / mean):");
            for stage in &self.stages {
                println!(
                    "  {:<14} {:>8.3} {:>8.3} {:>8.3}   ({} events)",
                    stage.stage, stage.p50_ms, stage.p99_ms, stage.mean_ms, stage.events
                );
            }
        }
    }
}

/// A stage's quantiles over the events counted between two readings,
/// interpolated within the histogram's buckets.
fn stage_latency(name: &str, before: &Buckets, after: &Buckets) -> Option<StageLatency> {
    let earlier = |bound: f64| {
        before
            .counts
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0, |(_, count)| *count)
    };
    let counts: Vec<(f64, u64)> = after
        .counts
        .iter()
        .map(|&(bound, count)| (bound, count.saturating_sub(earlier(bound))))
        .collect();
    let total = counts.last().map_or(0, |(_, count)| *count);
    if total == 0 {
        return None;
    }
    let quantile = |q: f64| {
        let target = q * total as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, count) in &counts {
            if count as f64 >= target {
                if bound.is_infinite() {
                    return lower.0;
                }
                let within = count.saturating_sub(lower.1).max(1) as f64;
                return lower.0 + (bound - lower.0) * (target - lower.1 as f64) / within;
            }
            lower = (bound, count);
        }
        lower.0
    };
    Some(StageLatency {
        stage: name.to_owned(),
        events: total,
        p50_ms: quantile(0.5) * 1e3,
        p99_ms: quantile(0.99) * 1e3,
        mean_ms: (after.sum - before.sum) / total as f64 * 1e3,
    })
}

/// The `chathub_stage_seconds` histograms in a Prometheus text page.
fn parse_stages(text: &str) -> BTreeMap<String, Buckets> {
    let mut stages: BTreeMap<String, Buckets> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("chathub_stage_seconds") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_owned())
        };
        let Some(stage) = label("stage") else {
            continue;
        };
        let entry = stages.entry(stage).or_default();
        if labels.starts_with("_bucket") {
            let bound = match label("le").as_deref() {
                Some("+Inf") => f64::INFINITY,
                Some(bound) => match bound.parse() {
                    Ok(bound) => bound,
                    Err(_) => continue,
                },
                None => continue,
            };
            if let Ok(count) = value.parse::<f64>() {
                entry.counts.push((bound, count as u64));
            }
        } else if labels.starts_with("_sum") {
            entry.sum = value.parse().unwrap_or(0.0);
        }
    }
    for buckets in stages.values_mut() {
        buckets.counts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    stages
}

/// GET /metrics over plain HTTP.
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: chathub\r\n\r\n")
        .await?;
    let mut body = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut body),
    )
    .await
    .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The process's user and system CPU time, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// UDP datagrams this machine has sent.
fn datagrams_sent() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let column = names.iter().position(|name| *name == "OutDatagrams")?;
    values.get(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# TYPE chathub_stage_seconds histogram
chathub_stage_seconds_bucket{stage="durable",le="0.0005"} 10
chathub_stage_seconds_bucket{stage="durable",le="0.001"} 90
chathub_stage_seconds_bucket{stage="durable",le="0.002"} 100
chathub_stage_seconds_bucket{stage="durable",le="+Inf"} 100
chathub_stage_seconds_sum{stage="durable"} 0.08
chathub_stage_seconds_count{stage="durable"} 100
chathub_other_seconds_bucket{stage="durable",le="0.001"} 7
"#;

    #[test]
    fn stages_are_read_from_the_page_and_diffed_between_readings() {
        let after = parse_stages(PAGE);
        let durable = &after["durable"];
        assert_eq!(
            durable.counts,
            [
                (0.0005, 10),
                (0.001, 90),
                (0.002, 100),
                (f64::INFINITY, 100)
            ]
        );
        let before = Probe {
            stages: Some(BTreeMap::new()),
            ..Probe::default()
        };
        let after = Probe {
            stages: Some(after),
            ..Probe::default()
        };
        let costs = Costs::between(&before, &after, 0);
        let [latency] = costs.stages.as_slice() else {
            panic!("{:?}", costs.stages)
        };
        assert_eq!(latency.events, 100);
        // The 50th of 100 lies half way through the 0.5-1 ms bucket (10 to
        // 90); the 99th nine tenths through the 1-2 ms one.
        assert!((latency.p50_ms - 0.75).abs() < 1e-9, "{}", latency.p50_ms);
        assert!((latency.p99_ms - 1.9).abs() < 1e-9, "{}", latency.p99_ms);
        assert!((latency.mean_ms - 0.8).abs() < 1e-9);
        assert_eq!(costs.hub_cpu_us_per_message, None);
        // Read against itself, nothing happened.
        assert!(Costs::between(&after, &after, 10).stages.is_empty());
    }
}
