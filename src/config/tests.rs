//! Reading, overriding and checking configurations.

use super::*;
use crate::core::Priority;

#[test]
fn the_empty_file_is_the_documented_default() {
    let config = Config::default();
    assert_eq!(config.listen, "127.0.0.1:4433".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("chathub-data"));
    assert!(config.metrics.enabled);
    assert_eq!(config.channels.len(), 1);
    assert_eq!(config.channels[0].name, "support");
    assert_eq!(config.agents[0].id, "agent");
    assert_eq!(
        config.agent_channels(&config.agents[0]),
        [ChannelId::new("support")]
    );
}

#[test]
fn channels_and_agents_are_read_from_toml() {
    let config = Config::from_toml(
        r#"
        listen = "127.0.0.1:0"
        [[channel]]
        name = "sales"
        alert_after_secs = 30
        welcome = "Hej!"
        [[channel]]
        name = "support"
        alert_after = "250ms"
        return_window = "2m"
        satisfaction = true
        [[agent]]
        id = "alice"
        token = "a-long-enough-token"
        channels = ["sales"]
        "#,
    )
    .unwrap();
    let settings = config.channel_settings();
    assert_eq!(settings[0].alert_after, Duration::from_secs(30));
    assert_eq!(settings[1].alert_after, Duration::from_millis(250));
    assert_eq!(settings[1].return_window, Duration::from_secs(120));
    assert_eq!(settings[0].welcome.as_deref(), Some("Hej!"));
    assert_eq!(
        (settings[0].satisfaction, settings[1].satisfaction),
        (false, true)
    );
    assert_eq!(
        config.agent_channels(&config.agents[0]),
        [ChannelId::new("sales")]
    );
}

#[test]
fn retention_is_per_channel_and_keeps_for_ever_unless_set() {
    let config = Config::from_toml(
        r#"
        [[channel]]
        name = "sales"
        [[channel]]
        name = "support"
        retention = "90d"
        file_retention = "7d"
        ticket_retention = "365d"
        "#,
    )
    .unwrap();
    let settings = config.channel_settings();
    assert_eq!(settings[0].retention, crate::core::Retention::default());
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(
        settings[1].retention,
        crate::core::Retention {
            chats: Some(90 * day),
            files: Some(7 * day),
            tickets: Some(365 * day),
        }
    );
}

#[test]
fn environment_variables_override_fields() {
    let vars = [
        ("CHATHUB_LISTEN", "127.0.0.1:5555"),
        ("CHATHUB_DATA_DIR", "/var/lib/chathub"),
        ("CHATHUB_METRICS__ENABLED", "false"),
        ("CHATHUB_LIMITS__CHATS_PER_IP", "7"),
        ("CHATHUB_LIMITS__HELLO_TIMEOUT", "3s"),
        ("HOME", "/root"),
    ]
    .map(|(key, value)| (key.to_owned(), value.to_owned()));
    let config = Config::from_toml_with("[metrics]\nenabled = true\n", vars).unwrap();
    assert_eq!(config.listen, "127.0.0.1:5555".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/chathub"));
    assert!(!config.metrics.enabled);
    assert_eq!(config.limits.chats_per_ip, 7);
    assert_eq!(config.limits.hello_timeout, Duration::from_secs(3));
    // An override is checked like the file.
    let bad = [("CHATHUB_LIMITS__CHATS_PER_IP".to_owned(), "0".to_owned())];
    let err = Config::from_toml_with("", bad).unwrap_err().to_string();
    assert!(err.contains("chats_per_ip"), "{err}");
    let unknown = [("CHATHUB_COLOUR".to_owned(), "blue".to_owned())];
    let err = Config::from_toml_with("", unknown).unwrap_err().to_string();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn contradictions_are_refused_with_a_reason() {
    for (text, reason) in [
        (
            "[[channel]]\nname = \"a\"\n[[channel]]\nname = \"a\"",
            "declared twice",
        ),
        (
            "[[agent]]\nid = \"x\"\nchannels = [\"nope\"]",
            "unknown channel",
        ),
        ("[[agent]]\nid = \"../etc\"", "agent id"),
        ("[[agent]]\nid = \"x\"\ntoken = \"short\"", "at least 16"),
        ("colour = \"blue\"", "unknown field"),
        (
            "[store]\ncheckpoint_bytes = 100",
            "checkpoint_bytes must be at least",
        ),
        ("[runtime]\nworkers = 0", "workers must be at least 1"),
        (
            "[[channel]]\nname = \"a\"\nticket_retention = \"0s\"",
            "ticket_retention must be longer than zero",
        ),
        (
            "[[channel]]\nname = \"a\"\nretention = \"soon\"",
            "retention",
        ),
        (
            "[[channel]]\nname = \"a\"\n[channel.hours]\ntime_zone = \"Mars/Olympus\"\nmonday = [\"09:00-17:00\"]",
            "unknown time zone",
        ),
        (
            "[[channel]]\nname = \"a\"\n[channel.hours]\ntime_zone = \"UTC\"\nmonday = [\"17:00-09:00\"]",
            "split a span over midnight",
        ),
        (
            "[[channel]]\nname = \"a\"\n[channel.hours]\ntime_zone = \"UTC\"\nmonday = [\"09:00-17:00\"]\nholidays = [\"christmas\"]",
            "is not a date",
        ),
        (
            "[[channel]]\nname = \"a\"\n[channel.hours]\ntime_zone = \"UTC\"\nmonady = [\"09:00-17:00\"]",
            "unknown field",
        ),
    ] {
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(reason), "{text:?} gave {err:?}");
    }
}

#[test]
fn business_hours_are_read_into_the_channel_settings() {
    let config = Config::from_toml(
        "[[channel]]\nname = \"sales\"\n[channel.hours]\ntime_zone = \"Europe/Paris\"\n\
         monday = [\"09:00-12:30\", \"13:30-18:00\"]\nholidays = [\"2026-12-28\"]\n\
         [[channel]]\nname = \"support\"",
    )
    .unwrap();
    let settings = config.channel_settings();
    let hours = settings[0].hours.as_ref().expect("sales has hours");
    assert_eq!(hours.zone(), "Europe/Paris");
    // Monday 2026-12-07 10:00 in Paris is 09:00 UTC; Monday 2026-12-28 is
    // a holiday.
    assert!(hours.is_open(crate::core::Timestamp(1_796_634_000_000)));
    assert!(!hours.is_open(crate::core::Timestamp(1_798_448_400_000)));
    assert_eq!(settings[1].hours, None, "support is always open");
}

#[test]
fn push_routing_is_read_and_its_offer_timeout_bounded() {
    let config = Config::from_toml(
        r#"
        [[channel]]
        name = "pull"
        [[channel]]
        name = "push"
        routing = "push"
        policy = "round_robin"
        offer_timeout = "5s"
        "#,
    )
    .unwrap();
    let settings = config.channel_settings();
    assert_eq!(settings[0].routing, Routing::Pull, "pull is the default");
    assert_eq!(settings[0].policy, Policy::LeastBusy);
    assert_eq!(settings[0].offer_timeout, Duration::from_secs(30));
    assert_eq!(settings[1].routing, Routing::Push);
    assert_eq!(settings[1].policy, Policy::RoundRobin);
    assert_eq!(settings[1].offer_timeout, Duration::from_secs(5));

    for (timeout, ok) in [
        ("999ms", false),
        ("1s", true),
        ("10m", true),
        ("601s", false),
    ] {
        let text = format!(
            "[[channel]]\nname = \"push\"\nrouting = \"push\"\noffer_timeout = \"{timeout}\"\n"
        );
        match Config::from_toml(&text) {
            Ok(_) => assert!(ok, "{timeout} accepted"),
            Err(ConfigError::Invalid(why)) => {
                assert!(!ok, "{timeout} refused: {why}");
                assert!(
                    why.contains("offer_timeout must be between 1s and 10m"),
                    "{why}"
                );
            }
            Err(err) => panic!("{timeout}: {err}"),
        }
    }
    assert!(Config::from_toml("[[channel]]\nname = \"x\"\nrouting = \"shove\"\n").is_err());
    assert!(Config::from_toml("[[channel]]\nname = \"x\"\npolicy = \"random\"\n").is_err());
}

#[test]
fn the_first_response_target_and_the_claim_cap_are_read_and_bounded() {
    let config = Config::from_toml(
        r#"
        [[channel]]
        name = "plain"
        [[channel]]
        name = "sla"
        first_response_within = "2m"
        max_claimed_priority = "urgent"
        "#,
    )
    .unwrap();
    let settings = config.channel_settings();
    assert_eq!(
        settings[0].first_response_within, None,
        "no target by default"
    );
    assert_eq!(settings[0].max_claimed_priority, Priority::High);
    assert_eq!(
        settings[1].first_response_within,
        Some(Duration::from_secs(120))
    );
    assert_eq!(settings[1].max_claimed_priority, Priority::Urgent);

    for (within, ok) in [
        ("999ms", false),
        ("1s", true),
        ("24h", true),
        ("25h", false),
    ] {
        let text = format!("[[channel]]\nname = \"x\"\nfirst_response_within = \"{within}\"\n");
        match Config::from_toml(&text) {
            Ok(_) => assert!(ok, "{within} accepted"),
            Err(ConfigError::Invalid(why)) => {
                assert!(!ok, "{within} refused: {why}");
                assert!(
                    why.contains("first_response_within must be between 1s and 1day"),
                    "{why}"
                );
            }
            Err(err) => panic!("{within}: {err}"),
        }
    }
    assert!(
        Config::from_toml("[[channel]]\nname = \"x\"\nmax_claimed_priority = \"vip\"\n").is_err()
    );
}

#[test]
fn idle_after_and_on_agent_gone_are_read_defaulted_and_checked() {
    let config = Config::from_toml(
        r#"
        [[channel]]
        name = "plain"
        [[channel]]
        name = "quiet"
        idle_after = "10m"
        on_agent_gone = "requeue"
        "#,
    )
    .unwrap();
    let settings = config.channel_settings();
    assert_eq!(settings[0].idle_after, None, "nobody turns Away by default");
    assert_eq!(settings[0].on_agent_gone, OnAgentGone::Keep);
    assert_eq!(settings[1].idle_after, Some(Duration::from_secs(600)));
    assert_eq!(settings[1].on_agent_gone, OnAgentGone::Requeue);
    assert_eq!(
        Config::from_toml("[[channel]]\nname = \"x\"\non_agent_gone = \"keep\"\n")
            .unwrap()
            .channel_settings()[0]
            .on_agent_gone,
        OnAgentGone::Keep
    );
    match Config::from_toml("[[channel]]\nname = \"x\"\nidle_after = \"50ms\"\n") {
        Err(ConfigError::Invalid(why)) => {
            assert!(why.contains("idle_after must be at least 100ms"), "{why}")
        }
        other => panic!("50ms accepted: {other:?}"),
    }
    assert!(Config::from_toml("[[channel]]\nname = \"x\"\nidle_after = \"100ms\"\n").is_ok());
    assert!(Config::from_toml("[[channel]]\nname = \"x\"\non_agent_gone = \"drop\"\n").is_err());
}

#[test]
fn the_edit_window_is_read_and_bounded() {
    let config = Config::from_toml(
        r#"
        [[channel]]
        name = "default"
        [[channel]]
        name = "short"
        edit_window = "2m"
        [[channel]]
        name = "off"
        edit_window = "0s"
        "#,
    )
    .unwrap();
    let windows: Vec<Duration> = config
        .channel_settings()
        .iter()
        .map(|settings| settings.edit_window)
        .collect();
    assert_eq!(
        windows,
        [
            Duration::from_secs(15 * 60),
            Duration::from_secs(120),
            Duration::ZERO
        ]
    );
    assert_eq!(
        Config::default().channel_settings()[0].edit_window,
        Duration::from_secs(15 * 60)
    );
    for (window, ok) in [("24h", true), ("25h", false)] {
        let text = format!("[[channel]]\nname = \"x\"\nedit_window = \"{window}\"\n");
        match Config::from_toml(&text) {
            Ok(_) => assert!(ok, "{window} accepted"),
            Err(ConfigError::Invalid(why)) => {
                assert!(!ok, "{window} refused: {why}");
                assert!(why.contains("edit_window must be at most 1day"), "{why}");
            }
            Err(err) => panic!("{window}: {err}"),
        }
    }
    assert!(Config::from_toml("[[channel]]\nname = \"x\"\nedit_window = \"soon\"\n").is_err());
}

#[test]
fn the_widget_listener_is_on_without_a_file_and_off_in_one() {
    let file = Config::default();
    assert!(!file.web.enabled && !file.webtransport.enabled);
    let embedded = Config::from_toml(EMBEDDED_DEFAULT).unwrap();
    assert!(embedded.web.enabled && embedded.webtransport.enabled);
    assert_eq!(embedded.web.listen, "127.0.0.1:4480".parse().unwrap());
    assert_eq!(embedded.web.assets, PathBuf::from("web/dist"));
}

#[test]
fn the_widget_listener_needs_webtransport_and_a_loopback_address() {
    let alone = Config::from_toml("[web]\nenabled = true\n").unwrap_err();
    assert!(alone.to_string().contains("[webtransport]"), "{alone}");
    let public = Config::from_toml(
        "[webtransport]\nenabled = true\n[web]\nenabled = true\nlisten = \"0.0.0.0:4480\"\n",
    )
    .unwrap_err();
    assert!(public.to_string().contains("loopback"), "{public}");
    let off = Config::from_toml("[web]\nlisten = \"0.0.0.0:4480\"\n");
    assert!(off.is_ok(), "a listener that is off is not checked");
}

#[test]
fn allowed_origins_are_checked_as_origins() {
    let config = Config::from_toml(
        "[webtransport]\nenabled = true\nallowed_origins = [\"https://Shop.Example:443\", \"*\"]\n",
    )
    .unwrap();
    let origins = config.webtransport.origins().unwrap();
    assert!(
        origins.admits(Some("https://elsewhere.example")),
        "* admits any"
    );
    let listed =
        Config::from_toml("[webtransport]\nallowed_origins = [\"https://shop.example\"]\n")
            .unwrap();
    let origins = listed.webtransport.origins().unwrap();
    assert!(origins.admits(Some("https://shop.example")));
    assert!(!origins.admits(Some("https://elsewhere.example")));
    let bad =
        Config::from_toml("[webtransport]\nallowed_origins = [\"https://shop.example/chat\"]\n")
            .unwrap_err()
            .to_string();
    assert!(
        bad.contains("allowed_origins") && bad.contains("shop.example/chat"),
        "{bad}"
    );
    assert!(Config::default().webtransport.allowed_origins.is_empty());
}

#[test]
fn the_test_suites_switches_are_not_configuration() {
    let vars = [
        ("CHATHUB_BROWSER_TESTS".to_owned(), "1".to_owned()),
        ("CHATHUB_BLESS".to_owned(), "1".to_owned()),
        ("CHATHUB_CLUSTER_TESTS".to_owned(), "1".to_owned()),
        ("CHATHUB_CLUSTER_KILLS".to_owned(), "20".to_owned()),
        ("CHATHUB_NATS_SERVER".to_owned(), "nats-server".to_owned()),
    ];
    assert!(Config::from_toml_with("", vars).is_ok());
    let typo = [("CHATHUB_LISTN".to_owned(), "127.0.0.1:1".to_owned())];
    assert!(Config::from_toml_with("", typo).is_err());
}

#[test]
fn roles_are_read_and_checked() {
    let base = r#"
        [[channel]]
        name = "support"
        [[channel]]
        name = "sales"
    "#;
    let config = Config::from_toml(&format!(
        r#"{base}
        [[agent]]
        id = "alice"
        [[agent]]
        id = "sam"
        role = "supervisor"
        supervises = ["support"]
        [[agent]]
        id = "root"
        role = "admin"
        "#
    ))
    .unwrap();
    assert_eq!(config.agent_role(&config.agents[0]), AgentRole::Agent);
    assert_eq!(
        config.agent_role(&config.agents[1]),
        AgentRole::Supervisor {
            supervises: vec![ChannelId::new("support")]
        }
    );
    assert_eq!(config.agent_role(&config.agents[2]), AgentRole::Admin);

    let refused = |agent: &str, needle: &str| {
        let err = Config::from_toml(&format!("{base}\n[[agent]]\nid = \"x\"\n{agent}"))
            .expect_err(agent)
            .to_string();
        assert!(err.contains(needle), "{agent}: {err}");
    };
    refused("role = \"supervisor\"", "needs supervises");
    refused(
        "role = \"supervisor\"\nsupervises = []",
        "at least one channel",
    );
    refused(
        "role = \"supervisor\"\nsupervises = [\"billing\"]",
        "supervises unknown channel \"billing\"",
    );
    refused("supervises = [\"support\"]", "only a role = \"supervisor\"");
    refused(
        "role = \"admin\"\nsupervises = [\"support\"]",
        "only a role",
    );
    refused("role = \"boss\"", "unknown variant");
}

#[test]
fn the_cluster_table_is_read_defaulted_and_checked() {
    assert_eq!(Config::default().cluster, None, "alone unless configured");
    let config = Config::from_toml(
        r#"
        [cluster]
        node = "h1"
        nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        "#,
    )
    .unwrap();
    let cluster = config.cluster.unwrap();
    assert_eq!(cluster.node, "h1");
    assert_eq!(cluster.nats.len(), 2);
    assert_eq!(cluster.lease_ttl, Duration::from_secs(3));
    assert_eq!(cluster.replicas, 3);
    assert_eq!(cluster.partitions, 16);
    assert_eq!(cluster.log_stream(3), "CHATHUB_P3");
    assert_eq!(cluster.log_subject(3), "chathub.log.p3");
    assert_eq!(
        cluster.advertised(config.listen),
        config.listen,
        "clients are sent to where the hub listens"
    );
    for (table, why) in [
        ("node = \"h.1\"\nnats = [\"nats://a:1\"]", "node"),
        ("node = \"\"\nnats = [\"nats://a:1\"]", "node"),
        ("node = \"h1\"\nnats = []", "at least one"),
        ("node = \"h1\"\nnats = [\"http://a:1\"]", "nats://"),
        (
            "node = \"h1\"\nnats = [\"nats://a:1\"]\nlease_ttl = \"100ms\"",
            "lease_ttl",
        ),
        (
            "node = \"h1\"\nnats = [\"nats://a:1\"]\nreplicas = 2",
            "replicas",
        ),
        (
            "node = \"h1\"\nnats = [\"nats://a:1\"]\npartitions = 0",
            "partitions",
        ),
        (
            "node = \"h1\"\nnats = [\"nats://a:1\"]\nadvertise = \"0.0.0.0:1\"",
            "advertise",
        ),
    ] {
        let err = Config::from_toml(&format!("[cluster]\n{table}")).unwrap_err();
        assert!(err.to_string().contains(why), "{table}: {err}");
    }
}

#[test]
fn in_a_cluster_an_agents_channels_share_a_partition() {
    let cluster = "[cluster]\nnode = \"h1\"\nnats = [\"nats://a:1\"]\npartitions = 4\n";
    let two = format!(
        "{cluster}[[channel]]\nname = \"a\"\npartition = 1\n[[channel]]\nname = \"b\"\npartition = 2\n\
         [[agent]]\nid = \"x\"\ntoken = \"0123456789abcdef\"\nchannels = [\"a\", \"b\"]\n"
    );
    let err = Config::from_toml(&two).unwrap_err();
    assert!(err.to_string().contains("share a partition"), "{err}");
    let one = two.replace("partition = 2", "partition = 1");
    let config = Config::from_toml(&one).unwrap();
    let settings = config.cluster.as_ref().unwrap();
    assert_eq!(config.agent_partition(settings, &config.agents[0]), 1);
    assert_eq!(config.partition_of(settings, &ChannelId::new("b")), 1);
    let beyond = two.replace("partition = 2", "partition = 4");
    let err = Config::from_toml(&beyond).unwrap_err();
    assert!(err.to_string().contains("not below"), "{err}");
    // Without [cluster] the same channels are one hub's, as always.
    let alone = two.replace(cluster, "");
    assert!(Config::from_toml(&alone).is_ok());
    // A hub listening on every address says where clients reach it.
    let everywhere = format!("listen = \"0.0.0.0:4433\"\n{one}");
    let err = Config::from_toml(&everywhere).unwrap_err();
    assert!(err.to_string().contains("advertise"), "{err}");
}

#[test]
fn a_webtransport_address_to_advertise_is_an_https_url() {
    let good = Config::from_toml(
        "[webtransport]\nenabled = true\nadvertise = \"https://hub1.example:4434/chathub\"\n",
    )
    .unwrap();
    assert_eq!(
        good.webtransport.advertise.as_deref(),
        Some("https://hub1.example:4434/chathub")
    );
    for bad in [
        "http://hub1.example/chathub",
        "https://",
        "https://hub1.example/chat hub",
    ] {
        let err = Config::from_toml(&format!(
            "[webtransport]\nenabled = true\nadvertise = \"{bad}\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("advertise"), "{bad}: {err}");
    }
}
