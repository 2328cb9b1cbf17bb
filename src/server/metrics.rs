//! The Prometheus endpoint and the description of every metric.
//!
//! Metrics are recorded where things happen, through the `metrics` facade;
//! this installs the process-wide recorder that serves them at
//! `http://<listen>/metrics`.

use std::net::SocketAddr;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets, in seconds: 25 µs to 15 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Rating buckets: each rating from 1 to 5 (`le="1"` counts the 1s,
/// `le="2"` the 1s and 2s, ...).
const RATING_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0];

/// Load buckets: chats an agent held (offers included) when offered one.
const LOAD_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0,
];

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {listen}: {reason}")]
pub struct MetricsError {
    listen: SocketAddr,
    reason: String,
}

/// Installs the process-wide recorder and serves `/metrics` on `listen`.
/// Call once per process, from inside the tokio runtime.
pub fn install(listen: SocketAddr) -> Result<(), MetricsError> {
    let error = |err: &dyn std::fmt::Display| MetricsError {
        listen,
        reason: err.to_string(),
    };
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Full("chathub_csat_rating".into()), RATING_BUCKETS)
        .map_err(|err| error(&err))?
        .set_buckets_for_metric(Matcher::Full("chathub_offer_load".into()), LOAD_BUCKETS)
        .map_err(|err| error(&err))?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|err| error(&err))?
        .install()
        .map_err(|err| error(&err))?;
    describe();
    Ok(())
}

/// Gives every counter and gauge its first value (zero) for each label the
/// hub knows from the start (channels, roles, directions, limits), and
/// registers each channel's rating histogram (exported with no ratings), so an
/// idle hub's `/metrics` already lists them and alert rules that look for
/// a missing series (`absent()`) work from the first scrape.
pub(crate) fn export_from_start(channels: &[crate::core::ChannelId]) {
    use metrics::{counter, gauge};
    for channel in channels {
        let channel = channel.to_string();
        gauge!("chathub_chats_waiting", "channel" => channel.clone()).increment(0.0);
        gauge!("chathub_agents_present", "channel" => channel.clone()).increment(0.0);
        for name in [
            "chathub_chats_started_total",
            "chathub_chats_offline_total",
            "chathub_chats_answered_total",
            "chathub_chats_abandoned_total",
            "chathub_chats_ended_total",
            "chathub_alerts_raised_total",
            "chathub_alerts_cleared_total",
            "chathub_identity_refusals_total",
            "chathub_sla_breaches_total",
        ] {
            counter!(name, "channel" => channel.clone()).increment(0);
        }
        for outcome in ["made", "accepted", "declined", "timed_out", "withdrawn"] {
            counter!("chathub_offers_total", "channel" => channel.clone(), "outcome" => outcome)
                .increment(0);
        }
        for to in ["agent", "channel"] {
            counter!("chathub_chats_transferred_total", "channel" => channel.clone(), "to" => to)
                .increment(0);
        }
        let _ = metrics::histogram!("chathub_csat_rating", "channel" => channel.clone());
    }
    gauge!("chathub_chats_active").increment(0.0);
    for role in ["customer", "agent"] {
        gauge!("chathub_connections", "role" => role).increment(0.0);
    }
    for direction in ["customer_to_agent", "agent_to_customer", "system"] {
        counter!("chathub_messages_total", "direction" => direction).increment(0);
    }
    for limit in crate::core::Limit::ALL {
        counter!("chathub_limit_refusals_total", "limit" => limit.name()).increment(0);
    }
    for name in [
        "chathub_actor_restarts_total",
        "chathub_store_commit_failures_total",
        "chathub_retries_total",
        "chathub_files_expired_total",
        "chathub_contacts_forgotten_total",
        "chathub_chats_unrecoverable_total",
        "chathub_webtransport_origin_refusals_total",
    ] {
        counter!(name).increment(0);
    }
}

fn describe() {
    describe_gauge!(
        "chathub_chats_waiting",
        "Chats waiting unanswered in a channel's queue."
    );
    describe_gauge!("chathub_chats_active", "Chats assigned to an agent.");
    describe_gauge!(
        "chathub_agents_present",
        "Member agents of a channel whose status is Present."
    );
    describe_gauge!("chathub_connections", "Open client connections, by role.");
    describe_counter!(
        "chathub_chats_started_total",
        "Chats started and queued, by channel."
    );
    describe_counter!(
        "chathub_chats_offline_total",
        "Chat starts answered with the offline form."
    );
    describe_counter!(
        "chathub_chats_answered_total",
        "Chats taken by an agent (get next, pick or an accepted offer)."
    );
    describe_counter!(
        "chathub_chats_abandoned_total",
        "Queued chats the customer left before an answer."
    );
    describe_counter!(
        "chathub_chats_transferred_total",
        "Chats transferred, to an agent or a channel."
    );
    describe_counter!("chathub_chats_ended_total", "Chats ended, by channel.");
    describe_counter!(
        "chathub_chats_agent_gone_total",
        "Chats whose agent stayed without a connection past the presence grace (kept or requeued as the channel's on_agent_gone says), by channel."
    );
    describe_counter!(
        "chathub_agents_idle_total",
        "Times a Present agent turned Away after making no request for idle_after."
    );
    describe_counter!(
        "chathub_messages_total",
        "Chat messages stored, by direction."
    );
    describe_counter!(
        "chathub_alerts_raised_total",
        "Unanswered-chat alerts raised."
    );
    describe_gauge!(
        "chathub_partitions_owned",
        "In a cluster, the partitions this hub owns now."
    );
    describe_counter!(
        "chathub_partition_takeovers_total",
        "In a cluster, partitions this hub took over (opened its stream, replayed it, serves it)."
    );
    describe_counter!(
        "chathub_partition_handovers_total",
        "In a cluster, partitions this hub stopped serving (handed over, or given up after losing its lease or stream)."
    );
    describe_counter!(
        "chathub_alerts_cleared_total",
        "Unanswered-chat alerts cleared."
    );
    describe_counter!(
        "chathub_sla_breaches_total",
        "Chats that waited their channel's first_response_within from their start without an agent taking them (once per chat, held while the channel is closed)."
    );
    describe_counter!(
        "chathub_actor_restarts_total",
        "Actors that failed and were restarted or dropped."
    );
    describe_counter!(
        "chathub_protocol_errors_total",
        "Connections refused or closed for a protocol error, by kind (BadDatagram: a datagram that did not decode, dropped; the connection stays)."
    );
    describe_counter!(
        "chathub_request_errors_total",
        "Requests answered with an error, by code."
    );
    describe_counter!(
        "chathub_store_commit_failures_total",
        "Store commits that failed."
    );
    describe_histogram!(
        "chathub_chat_wait_seconds",
        Unit::Seconds,
        "How long chats waited in the queue before an agent took them."
    );
    describe_histogram!(
        "chathub_assignment_seconds",
        Unit::Seconds,
        "From a chat's enqueue (start, transfer to the queue, return) to its assignment, whichever way it was taken (get next, pick, an accepted offer)."
    );
    describe_counter!(
        "chathub_offers_total",
        "Offers of push channels, by outcome: made, accepted, declined, timed_out, withdrawn (taken by someone else, the customer left, the agent became Absent or left the channel)."
    );
    describe_histogram!(
        "chathub_offer_load",
        "Chats the chosen agent held (offers included) when a push channel offered them one, by channel and policy: how evenly a policy spreads the load."
    );
    describe_histogram!(
        "chathub_stage_seconds",
        Unit::Seconds,
        "A chat event's time in each stage inside the hub (to_chat, durable, to_publish, agent_actor, to_connection)."
    );
    describe_histogram!(
        "chathub_message_delivery_seconds",
        Unit::Seconds,
        "From a message reaching its chat to it being durable and pushed out."
    );
    describe_histogram!(
        "chathub_store_commit_seconds",
        Unit::Seconds,
        "Duration of one group commit: log append and sync, then apply."
    );
    describe_histogram!(
        "chathub_store_checkpoint_seconds",
        Unit::Seconds,
        "Duration of one checkpoint: the database synced up to a full commit-log file, which is then free to start over."
    );
    describe_histogram!("chathub_store_commit_ops", "Writes per group commit.");
    describe_histogram!(
        "chathub_csat_rating",
        "Customers' ratings of ended chats (1 to 5), by channel; each chat's first rating (a replacement is not counted again)."
    );
    describe_counter!(
        "chathub_limit_refusals_total",
        "Requests and connections refused at a limit, by the limit."
    );
    describe_counter!(
        "chathub_webtransport_origin_refusals_total",
        "WebTransport sessions refused (403) because their page's origin is not in [webtransport] allowed_origins."
    );
    describe_counter!(
        "chathub_retries_total",
        "Connection attempts asked to prove their address (QUIC Retry)."
    );
    describe_counter!(
        "chathub_identity_refusals_total",
        "Customer identities whose signature did not verify, by channel."
    );
    describe_counter!(
        "chathub_tag_changes_total",
        "Tags put on (added) or taken off (removed) chats."
    );
    describe_counter!(
        "chathub_message_changes_total",
        "Messages their authors changed, by change: edited, deleted."
    );
    describe_counter!(
        "chathub_files_expired_total",
        "Files of ended chats removed after their retention."
    );
    describe_counter!(
        "chathub_retention_erased_total",
        "Ended chats, files and tickets erased once their channel's retention ran out, by kind (chat, file, ticket)."
    );
    describe_counter!(
        "chathub_contacts_forgotten_total",
        "Contacts an admin erased (ForgetContact)."
    );
    describe_counter!(
        "chathub_chats_unrecoverable_total",
        "Live chats whose stored events could not be read at start."
    );
    describe_counter!(
        "chathub_webhook_deliveries_total",
        "Webhook posts, by webhook and outcome: delivered (2xx), status (another answer), error (no answer: connect or connection failure), timeout."
    );
    describe_histogram!(
        "chathub_webhook_lag_seconds",
        Unit::Seconds,
        "Time from a chat lifecycle event to its webhook's 2xx, by webhook (retries and restarts included)."
    );
    describe_gauge!(
        "chathub_webhook_outbox",
        "Webhook events stored and not yet delivered, by webhook."
    );
}
