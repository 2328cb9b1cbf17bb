//! What a run reports: the latency distributions, the summary printed at
//! the end, the JSON report (`--json`) and the delivery timeline
//! (`--timeline`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::costs::Costs;

/// What a run measured and found.
pub(crate) struct Report {
    pub(crate) customers: usize,
    pub(crate) answered: usize,
    /// This run's chats each agent took, fewest first.
    pub(crate) per_agent: Vec<usize>,
    /// Chats that arrived during the message phase.
    pub(crate) arrivals: usize,
    /// Their time from arrival to the first offer (push routing).
    pub(crate) late_offer_us: Latencies,
    /// Their time from arrival to an agent's answer.
    pub(crate) late_answer_us: Latencies,
    /// Typing datagrams customers sent, and indicators agents received.
    pub(crate) typing_sent: u64,
    pub(crate) typing_seen: u64,
    pub(crate) elapsed: Duration,
    pub(crate) relayed: u64,
    pub(crate) answer_us: Latencies,
    pub(crate) to_agent_us: Latencies,
    pub(crate) to_customer_us: Latencies,
    /// Customer -> agent -> customer, on the customer's clock alone.
    pub(crate) round_trip_us: Latencies,
    /// How far behind schedule (with --rate) the customers' messages went
    /// out: a load generator that cannot keep up shows here.
    pub(crate) send_lag_us: Latencies,
    /// Where the customers ran: "native" (the Rust SDK) or "browser" (the
    /// web SDK in a headless Chromium page).
    pub(crate) customers_in: &'static str,
    /// Customer messages per second offered (with --rate).
    pub(crate) offered: Option<f64>,
    /// Customer messages the agents received.
    pub(crate) to_agents: u64,
    /// Delivery latency (both ways) by when the message was sent.
    pub(crate) timeline: Vec<Window>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) violations: Vec<String>,
    /// Chats agents took and ended that were not this run's customers'.
    pub(crate) foreign: u64,
    /// What the run cost the hub and the machine.
    pub(crate) costs: Costs,
}

impl Report {
    fn rate(&self) -> f64 {
        self.relayed as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn print(&self, echo_rate: Option<f64>) {
        println!(
            "customers: {}",
            match self.customers_in {
                "browser" => "the web SDK in headless Chromium, over WebTransport",
                _ => "the Rust SDK, over native QUIC",
            }
        );
        println!(
            "chats started {} answered {}; messages relayed {} in {:.2} s: {:.0} msg/s",
            self.customers,
            self.answered,
            self.relayed,
            self.elapsed.as_secs_f64(),
            self.rate()
        );
        if let Some(echo) = echo_rate {
            println!("hub relay / raw QUIC echo: {:.2}", self.rate() / echo);
        }
        if self.foreign > 0 {
            println!("other chats agents took and ended: {}", self.foreign);
        }
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "time to answer ms: p50 {:.1} p99 {:.1}",
            ms(self.answer_us.at(0.5)),
            ms(self.answer_us.at(0.99))
        );
        if let (Some(min), Some(max)) = (self.per_agent.first(), self.per_agent.last()) {
            println!(
                "chats per agent: min {min} median {} max {max}",
                self.per_agent[self.per_agent.len() / 2]
            );
        }
        if self.arrivals > 0 {
            println!(
                "arrivals during the messages: {}; to offer ms p50 {:.2} p99 {:.2} ({} offered); to answer ms p50 {:.2} p99 {:.2}",
                self.arrivals,
                ms(self.late_offer_us.at(0.5)),
                ms(self.late_offer_us.at(0.99)),
                self.late_offer_us.len(),
                ms(self.late_answer_us.at(0.5)),
                ms(self.late_answer_us.at(0.99)),
            );
        }
        if self.typing_sent > 0 {
            println!(
                "typing datagrams sent {} ({:.0}/s), seen by agents {}",
                self.typing_sent,
                self.typing_sent as f64 / self.elapsed.as_secs_f64(),
                self.typing_seen
            );
        }
        if let Some(offered) = self.offered {
            println!(
                "customer messages/s: offered {offered:.0}, delivered {:.0}; sends behind schedule ms: p50 {:.2} p99 {:.2} max {:.2}",
                self.to_agents as f64 / self.elapsed.as_secs_f64(),
                ms(self.send_lag_us.at(0.5)),
                ms(self.send_lag_us.at(0.99)),
                ms(self.send_lag_us.max()),
            );
        }
        for (name, samples) in [
            ("customer->agent", &self.to_agent_us),
            ("agent->customer", &self.to_customer_us),
            ("round trip", &self.round_trip_us),
        ] {
            println!(
                "delivery {name} ms: p50 {:.2} p99 {:.2} p999 {:.2}",
                ms(samples.at(0.5)),
                ms(samples.at(0.99)),
                ms(samples.at(0.999))
            );
        }
        self.costs.print();
        println!("errors: {:?}", self.errors);
        if self.violations.is_empty() {
            println!(
                "invariants: ok (no chat assigned twice; every message once; seqs without gap or duplicate)"
            );
        }
    }

    /// The timeline as tab-separated lines, one per window.
    pub(crate) fn timeline_tsv(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut text = String::from("start_ms\tmessages\tp50_ms\tp99_ms\tmax_ms\n");
        for window in &self.timeline {
            let latencies = &window.latencies_us;
            text.push_str(&format!(
                "{:.0}\t{}\t{:.3}\t{:.3}\t{:.3}\n",
                ms(window.start_us),
                latencies.len(),
                ms(latencies.at(0.5)),
                ms(latencies.at(0.99)),
                ms(latencies.max()),
            ));
        }
        text
    }

    pub(crate) fn json(&self, echo_rate: Option<f64>) -> String {
        let report = JsonReport {
            chats_started: self.customers,
            chats_answered: self.answered,
            messages_relayed: self.relayed,
            seconds: self.elapsed.as_secs_f64(),
            messages_per_second: self.rate(),
            echo_frames_per_second: echo_rate,
            time_to_answer: self.answer_us.quantiles(),
            chats_per_agent: &self.per_agent,
            arrivals: self.arrivals,
            arrival_to_offer: self.late_offer_us.quantiles(),
            arrival_to_answer: self.late_answer_us.quantiles(),
            typing_sent: self.typing_sent,
            typing_seen: self.typing_seen,
            delivery_customer_to_agent: self.to_agent_us.quantiles(),
            delivery_agent_to_customer: self.to_customer_us.quantiles(),
            round_trip: self.round_trip_us.quantiles(),
            customers_in: self.customers_in,
            offered_messages_per_second: self.offered,
            customer_messages_per_second: self.to_agents as f64 / self.elapsed.as_secs_f64(),
            send_lag: self.send_lag_us.quantiles(),
            errors: &self.errors,
            violations: self.violations.len(),
            foreign_chats: self.foreign,
            costs: &self.costs,
        };
        let mut text = serde_json::to_string_pretty(&report).expect("the report serializes");
        text.push('\n');
        text
    }
}

/// The messages sent within one [`WINDOW_US`] of the run.
pub(crate) struct Window {
    start_us: u64,
    /// Their delivery latencies.
    latencies_us: Latencies,
}

/// The width of a timeline window: short enough to show a stall.
const WINDOW_US: u64 = 50_000;

/// Groups (sent, latency) samples into windows by send time.
pub(crate) fn timeline(samples: Vec<(u64, u64)>) -> Vec<Window> {
    let mut windows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (sent, latency) in samples {
        windows.entry(sent / WINDOW_US).or_default().push(latency);
    }
    windows
        .into_iter()
        .map(|(window, latencies_us)| Window {
            start_us: window * WINDOW_US,
            latencies_us: Latencies::of(latencies_us),
        })
        .collect()
}

/// A distribution of microseconds, kept to three significant digits.
pub(crate) struct Latencies(hdrhistogram::Histogram<u64>);

impl Latencies {
    /// Up to an hour: a longer delivery is counted as an hour.
    pub(crate) fn of(samples: impl IntoIterator<Item = u64>) -> Self {
        let mut histogram = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("1 µs to an hour at three digits is a valid range");
        for sample in samples {
            histogram.saturating_record(sample);
        }
        Self(histogram)
    }

    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }

    /// The sample at quantile `q` (0 when there is none).
    fn at(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    fn max(&self) -> u64 {
        self.0.max()
    }

    /// p50, p99 and p999 in milliseconds, for the JSON report.
    fn quantiles(&self) -> Quantiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            p50_ms: ms(self.at(0.5)),
            p99_ms: ms(self.at(0.99)),
            p999_ms: ms(self.at(0.999)),
        }
    }
}

/// A distribution's quantiles in the JSON report.
#[derive(serde::Serialize)]
struct Quantiles {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

/// The JSON report (`--json FILE`).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    chats_started: usize,
    chats_answered: usize,
    messages_relayed: u64,
    seconds: f64,
    messages_per_second: f64,
    echo_frames_per_second: Option<f64>,
    time_to_answer: Quantiles,
    chats_per_agent: &'a [usize],
    arrivals: usize,
    arrival_to_offer: Quantiles,
    arrival_to_answer: Quantiles,
    typing_sent: u64,
    typing_seen: u64,
    delivery_customer_to_agent: Quantiles,
    delivery_agent_to_customer: Quantiles,
    round_trip: Quantiles,
    customers_in: &'a str,
    offered_messages_per_second: Option<f64>,
    customer_messages_per_second: f64,
    send_lag: Quantiles,
    errors: &'a BTreeMap<String, u64>,
    violations: usize,
    foreign_chats: u64,
    costs: &'a Costs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_groups_messages_by_when_they_were_sent() {
        // Sent at 10 ms, 60 ms, 20 ms and 160 ms: the 10 and 20 ms sends
        // share the first window whatever order they arrived in, and the
        // empty window at 100 ms is left out rather than shown as zeros.
        let windows = timeline(vec![(10_000, 7), (60_000, 5), (20_000, 3), (160_000, 9)]);
        let rows: Vec<(u64, u64, u64)> = windows
            .iter()
            .map(|window| {
                let latencies = &window.latencies_us;
                (window.start_us, latencies.len(), latencies.max())
            })
            .collect();
        assert_eq!(rows, [(0, 2, 7), (50_000, 1, 5), (150_000, 1, 9)]);
        let report = Report {
            customers: 1,
            answered: 1,
            per_agent: vec![1],
            arrivals: 0,
            late_offer_us: Latencies::of([]),
            late_answer_us: Latencies::of([]),
            typing_sent: 0,
            typing_seen: 0,
            elapsed: Duration::from_secs(1),
            relayed: 4,
            answer_us: Latencies::of([]),
            to_agent_us: Latencies::of([]),
            to_customer_us: Latencies::of([]),
            round_trip_us: Latencies::of([]),
            send_lag_us: Latencies::of([]),
            customers_in: "native",
            offered: None,
            to_agents: 2,
            timeline: windows,
            errors: BTreeMap::new(),
            violations: Vec::new(),
            foreign: 0,
            costs: Costs::default(),
        };
        let tsv = report.timeline_tsv();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines[0], "start_ms\tmessages\tp50_ms\tp99_ms\tmax_ms");
        // The median of two is the lower (nearest rank); the p99 and the
        // maximum are the slower one.
        assert_eq!(lines[1], "0\t2\t0.003\t0.007\t0.007");
        assert_eq!(lines.len(), 4);
        let json: serde_json::Value = serde_json::from_str(&report.json(Some(1000.0))).unwrap();
        assert_eq!(json["messages_relayed"], 4);
        assert_eq!(json["echo_frames_per_second"], 1000.0);
        assert_eq!(json["delivery_customer_to_agent"]["p99_ms"], 0.0);
        // Latencies far above the smallest keep their size.
        let spread = Latencies::of([1_000, 2_000, 3_000, 250_000]);
        assert_eq!(spread.at(0.5), 2_000);
        assert!(
            (249_000..=251_000).contains(&spread.max()),
            "{}",
            spread.max()
        );
    }
}
