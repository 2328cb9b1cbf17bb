//! What any one client may make the hub do: the `[limits]` table of the
//! configuration, and the token bucket that paces a chat's messages (and a
//! connection's typing indicators).
//!
//! Customers are anonymous strangers on the public internet, so every input
//! of theirs is bounded here in size, count, rate and time. Each limit has a
//! documented default; a refusal names the limit it hit (see
//! [`Limit`]), which the hub counts in `chathub_limit_refusals_total{limit}`.

use std::time::Duration;

use serde::Deserialize;

use crate::core::Timestamp;

/// The shortest `monitor_interval`: a watched channel's picture is taken
/// at most this often.
pub const MIN_MONITOR_INTERVAL: Duration = Duration::from_millis(10);

/// Every bound the hub puts on its clients. Read from `[limits]`; each
/// field has the default documented on it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections open at once, from everyone. Default 50,000.
    pub connections: usize,
    /// Connections open at once from one IP address. Default 256 (offices
    /// and mobile carriers put many people behind one address).
    pub connections_per_ip: usize,
    /// New connections per second above which the hub asks clients to
    /// prove their address (a QUIC Retry) before it spends a handshake on
    /// them. Default 200.
    pub handshakes_per_sec: u32,
    /// How long a client has to open its control stream and say hello.
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub hello_timeout: Duration,
    /// Requests of one customer connection being answered at once; past
    /// it the hub stops reading that connection's requests until one is
    /// answered. Default 64.
    pub requests_in_flight: usize,
    /// The same for an agent's connection, which answers many chats at
    /// once. Default 1,024.
    pub agent_requests_in_flight: usize,
    /// How long a write on a connection's control stream may wait for the
    /// client to read before the connection is closed. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub control_write_timeout: Duration,
    /// Resume points one hello may carry. Default 256.
    pub resume_points: usize,
    /// Bytes a client may send on one stream ahead of the hub reading
    /// them. Default 256 KiB.
    pub stream_window: u32,
    /// Bytes a client may send on all its streams ahead of the hub reading
    /// them. Default 1 MiB.
    pub connection_window: u32,
    /// Live chats one customer connection may have started. Default 4.
    pub chats_per_connection: usize,
    /// Live chats customers of one IP address may have started. Default
    /// 64.
    pub chats_per_ip: usize,
    /// Messages per second a customer may post to one chat, on average
    /// (files and new read marks count as messages). Default 5.
    pub messages_per_sec: f64,
    /// Messages a customer may post to one chat in a burst. Default 20.
    pub message_burst: u32,
    /// Typing indicators (QUIC datagrams) one connection may send per
    /// second, on average; the others are dropped (the hub stops reading
    /// a connection's datagrams until the pace allows one again), and the
    /// connection stays. Default 5.
    pub typing_per_sec: f64,
    /// Typing indicators one connection may send in a burst. Default 10.
    pub typing_burst: u32,
    /// Live chats one supervisor may follow at once (`Follow`); more are
    /// refused (`TooManyChats`) until one is unfollowed or ends.
    /// Default 50.
    pub followed_chats: usize,
    /// Channel monitors one connection may watch live at once
    /// (`WatchMonitor`); more are refused (`TooManyChats`) until one is
    /// unwatched. Default 4.
    pub monitors_per_connection: usize,
    /// How often a watched channel's monitor is taken again; watchers get
    /// a new picture only when something but the clock changed, so this
    /// is the most a change waits. At least 10 ms. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub monitor_interval: Duration,
    /// Events a live chat may hold; past it the customer's messages are
    /// refused (`ChatTooLong`) and the agent is told once. Default 5,000.
    pub chat_events: u64,
    /// Bytes of text and names a live chat may hold. Default 4 MiB.
    pub chat_bytes: u64,
    /// Offline forms one IP address may submit per minute, and, counted
    /// apart at the same pace, satisfaction ratings (both refused as
    /// `offline_forms`). Default 5.
    pub offline_forms_per_minute: u32,
    /// Chats customers of one IP address may start per minute. Default 30.
    pub chat_starts_per_minute: u32,
    /// Failed agent sign-ins per minute from one IP address, and for one
    /// agent id; past it sign-ins are refused (`RateLimited`) until the
    /// pace allows again. Default 10.
    pub sign_in_failures_per_minute: u32,
    /// How long a client has to send a file stream's header. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub file_header_timeout: Duration,
    /// The slowest an upload or download may go, in bytes per second,
    /// after a grace as long as `file_header_timeout`. Default 16 KiB/s.
    pub file_min_bytes_per_sec: u64,
    /// Uploads and downloads in progress at once, from everyone. Default
    /// 256.
    pub files_in_flight: usize,
    /// Uploads and downloads in progress at once from one IP address.
    /// Default 8.
    pub files_in_flight_per_ip: usize,
    /// Bytes of files a customer may share in one live chat. Default 20
    /// MiB.
    pub chat_file_bytes: u64,
    /// Bytes customers of one IP address may upload per hour. Default 100
    /// MiB.
    pub upload_bytes_per_hour: u64,
    /// Bytes all shared files may take on disk together. Default 10 GiB.
    pub files_quota_bytes: u64,
    /// How long the files of an ended chat are kept; then they are
    /// removed (their events stay, a download answers `UnknownItem`).
    /// Default 30 days.
    #[serde(with = "humantime_serde")]
    pub file_retention: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections: 50_000,
            connections_per_ip: 256,
            handshakes_per_sec: 200,
            hello_timeout: Duration::from_secs(10),
            requests_in_flight: 64,
            agent_requests_in_flight: 1024,
            control_write_timeout: Duration::from_secs(10),
            resume_points: 256,
            stream_window: 256 << 10,
            connection_window: 1 << 20,
            chats_per_connection: 4,
            chats_per_ip: 64,
            messages_per_sec: 5.0,
            message_burst: 20,
            typing_per_sec: 5.0,
            typing_burst: 10,
            followed_chats: 50,
            monitors_per_connection: 4,
            monitor_interval: crate::core::roles::MONITOR_INTERVAL,
            chat_events: 5_000,
            chat_bytes: 4 << 20,
            offline_forms_per_minute: 5,
            chat_starts_per_minute: 30,
            sign_in_failures_per_minute: 10,
            file_header_timeout: Duration::from_secs(10),
            file_min_bytes_per_sec: 16 << 10,
            files_in_flight: 256,
            files_in_flight_per_ip: 8,
            chat_file_bytes: 20 << 20,
            upload_bytes_per_hour: 100 << 20,
            files_quota_bytes: 10 << 30,
            file_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Limits {
    /// Why the limits cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let at_least_one = [
            ("connections", self.connections as u64),
            ("connections_per_ip", self.connections_per_ip as u64),
            ("requests_in_flight", self.requests_in_flight as u64),
            (
                "agent_requests_in_flight",
                self.agent_requests_in_flight as u64,
            ),
            ("chats_per_connection", self.chats_per_connection as u64),
            ("chats_per_ip", self.chats_per_ip as u64),
            ("message_burst", u64::from(self.message_burst)),
            ("typing_burst", u64::from(self.typing_burst)),
            ("followed_chats", self.followed_chats as u64),
            (
                "monitors_per_connection",
                self.monitors_per_connection as u64,
            ),
            ("chat_events", self.chat_events),
            ("files_in_flight", self.files_in_flight as u64),
            ("files_in_flight_per_ip", self.files_in_flight_per_ip as u64),
            ("file_min_bytes_per_sec", self.file_min_bytes_per_sec),
            (
                "offline_forms_per_minute",
                u64::from(self.offline_forms_per_minute),
            ),
            (
                "chat_starts_per_minute",
                u64::from(self.chat_starts_per_minute),
            ),
            (
                "sign_in_failures_per_minute",
                u64::from(self.sign_in_failures_per_minute),
            ),
            ("chat_bytes", self.chat_bytes),
        ];
        for (name, value) in at_least_one {
            if value == 0 {
                return Err(format!("[limits] {name} must be at least 1"));
            }
        }
        if !(self.messages_per_sec.is_finite() && self.messages_per_sec > 0.0) {
            return Err("[limits] messages_per_sec must be above 0".into());
        }
        if !(self.typing_per_sec.is_finite() && self.typing_per_sec > 0.0) {
            return Err("[limits] typing_per_sec must be above 0".into());
        }
        if self.stream_window < 16 << 10 || self.connection_window < self.stream_window {
            return Err(
                "[limits] stream_window must be at least 16 KiB and connection_window at least stream_window"
                    .into(),
            );
        }
        if self.hello_timeout.is_zero()
            || self.control_write_timeout.is_zero()
            || self.file_header_timeout.is_zero()
        {
            return Err("[limits] timeouts must be above 0".into());
        }
        if self.monitor_interval < MIN_MONITOR_INTERVAL {
            return Err("[limits] monitor_interval must be at least 10ms".into());
        }
        Ok(())
    }
}

/// The limit a refusal hit: the `limit` label of
/// `chathub_limit_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Limits::connections`].
    Connections,
    /// [`Limits::connections_per_ip`].
    ConnectionsPerIp,
    /// [`Limits::hello_timeout`].
    HelloTimeout,
    /// [`Limits::control_write_timeout`].
    ControlWrite,
    /// [`Limits::resume_points`].
    ResumePoints,
    /// [`Limits::chats_per_connection`].
    ChatsPerConnection,
    /// [`Limits::chats_per_ip`].
    ChatsPerIp,
    /// [`Limits::messages_per_sec`] and [`Limits::message_burst`].
    MessageRate,
    /// [`Limits::chat_events`] and [`Limits::chat_bytes`].
    ChatLength,
    /// [`Limits::offline_forms_per_minute`].
    OfflineForms,
    /// [`Limits::chat_starts_per_minute`].
    ChatStarts,
    /// A customer's name, email or other field.
    Field,
    /// [`Limits::file_header_timeout`] and [`Limits::file_min_bytes_per_sec`].
    FileTransferTime,
    /// [`Limits::files_in_flight`].
    FilesInFlight,
    /// [`Limits::files_quota_bytes`].
    FilesQuota,
    /// [`Limits::chat_file_bytes`] and [`Limits::upload_bytes_per_hour`].
    UploadBytes,
    /// [`Limits::sign_in_failures_per_minute`].
    SignIn,
    /// [`Limits::typing_per_sec`] and [`Limits::typing_burst`].
    Typing,
    /// [`Limits::followed_chats`].
    FollowedChats,
    /// [`Limits::monitors_per_connection`].
    MonitorsPerConnection,
}

impl Limit {
    /// Every limit, for exporting each counter from the start.
    pub const ALL: [Self; 20] = [
        Self::Connections,
        Self::ConnectionsPerIp,
        Self::HelloTimeout,
        Self::ControlWrite,
        Self::ResumePoints,
        Self::ChatsPerConnection,
        Self::ChatsPerIp,
        Self::MessageRate,
        Self::ChatLength,
        Self::OfflineForms,
        Self::ChatStarts,
        Self::Field,
        Self::FileTransferTime,
        Self::FilesInFlight,
        Self::FilesQuota,
        Self::UploadBytes,
        Self::SignIn,
        Self::Typing,
        Self::FollowedChats,
        Self::MonitorsPerConnection,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::ConnectionsPerIp => "connections_per_ip",
            Self::HelloTimeout => "hello_timeout",
            Self::ControlWrite => "control_write_timeout",
            Self::ResumePoints => "resume_points",
            Self::ChatsPerConnection => "chats_per_connection",
            Self::ChatsPerIp => "chats_per_ip",
            Self::MessageRate => "message_rate",
            Self::ChatLength => "chat_length",
            Self::OfflineForms => "offline_forms",
            Self::ChatStarts => "chat_starts",
            Self::Field => "field",
            Self::FileTransferTime => "file_transfer_time",
            Self::FilesInFlight => "files_in_flight",
            Self::FilesQuota => "files_quota",
            Self::UploadBytes => "upload_bytes",
            Self::SignIn => "sign_in",
            Self::Typing => "typing",
            Self::FollowedChats => "followed_chats",
            Self::MonitorsPerConnection => "monitors_per_connection",
        }
    }
}

/// What per-address limits count a client by: its IPv4 address, or the /64
/// network of its IPv6 address (one subscriber's allocation, which a client
/// can rotate through at will). An IPv4 address mapped into IPv6 counts as
/// itself.
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

/// A token bucket: `burst` tokens, refilled at `per_sec`. Time is a
/// parameter, so it is tested without a clock.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Timestamp,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(per_sec: f64, burst: u32, now: Timestamp) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether a token is there at `now`, without taking it.
    pub fn has_token(&mut self, now: Timestamp) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
    }

    /// The last time a token was asked for.
    pub fn last_taken(&self) -> Timestamp {
        self.last
    }

    /// Takes `n` tokens if there are that many at `now`.
    #[must_use = "a refused take must refuse the request"]
    pub fn take_n(&mut self, n: f64, now: Timestamp) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes a token if there is one at `now`.
    #[must_use = "a refused take must refuse the request"]
    pub fn take(&mut self, now: Timestamp) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Timestamp(1_000_000);
        let mut bucket = TokenBucket::new(5.0, 3, start);
        assert!((0..3).all(|_| bucket.take(start)), "the burst");
        assert!(!bucket.take(start), "then nothing until it refills");
        assert!(!bucket.take(start.after(Duration::from_millis(150))));
        assert!(
            bucket.take(start.after(Duration::from_millis(200))),
            "one per 200 ms"
        );
        assert!(!bucket.take(start.after(Duration::from_millis(250))));
        // A long pause refills to the burst, not beyond.
        let later = start.after(Duration::from_secs(60));
        assert!((0..3).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }

    #[test]
    fn ipv6_clients_count_by_their_64_network() {
        let key = |text: &str| address_key(text.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn a_clock_going_back_takes_nothing_extra() {
        let start = Timestamp(1_000_000);
        let mut bucket = TokenBucket::new(1.0, 1, start);
        assert!(bucket.take(start));
        assert!(!bucket.take(Timestamp(0)));
        assert!(!bucket.take(start));
    }

    #[test]
    fn the_defaults_are_valid_and_zeroes_are_not() {
        Limits::default().check().unwrap();
        let zero = Limits {
            requests_in_flight: 0,
            ..Limits::default()
        };
        assert!(zero.check().unwrap_err().contains("requests_in_flight"));
        let nan = Limits {
            messages_per_sec: f64::NAN,
            ..Limits::default()
        };
        assert!(nan.check().is_err());
        let no_typing = Limits {
            typing_per_sec: 0.0,
            ..Limits::default()
        };
        assert!(no_typing.check().unwrap_err().contains("typing_per_sec"));
        let no_burst = Limits {
            typing_burst: 0,
            ..Limits::default()
        };
        assert!(no_burst.check().unwrap_err().contains("typing_burst"));
        let spinning = Limits {
            monitor_interval: Duration::from_millis(1),
            ..Limits::default()
        };
        assert!(spinning.check().unwrap_err().contains("monitor_interval"));
        let no_monitors = Limits {
            monitors_per_connection: 0,
            ..Limits::default()
        };
        assert!(
            no_monitors
                .check()
                .unwrap_err()
                .contains("monitors_per_connection")
        );
    }
}
