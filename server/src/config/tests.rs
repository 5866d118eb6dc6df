//! End-to-end tests of [`load`]: etcd's defaults, the precedence of flags, `ETCD_*` variables
//! and config files, and every validation error with etcd's wording and exit code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(args: &[&str], pairs: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let argv = std::iter::once("oxcd").chain(args.iter().copied());
    match load(argv, &env(pairs))? {
        Action::Run(loaded) => Ok(*loaded),
        other => panic!("expected a configuration, got {other:?}"),
    }
}

fn config(args: &[&str]) -> Config {
    run(args, &[]).unwrap().config
}

fn error(args: &[&str]) -> ConfigError {
    run(args, &[]).unwrap_err()
}

fn urls(list: &[EtcdUrl]) -> String {
    join_urls(list)
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_are_etcds() {
    // Proves a bare `oxcd` gets etcd 3.4's defaults (with oxcd's data dir name) and layout.
    let loaded = run(&[], &[]).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c, Config::default());
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.oxcd"));
    assert_eq!(c.dedicated_wal_dir, None);
    assert_eq!(urls(&c.listen_client_urls), "http://localhost:2379");
    assert_eq!(urls(&c.advertise_client_urls), "http://localhost:2379");
    assert_eq!(urls(&c.listen_peer_urls), "http://localhost:2380");
    assert_eq!(
        urls(&c.initial_advertise_peer_urls),
        "http://localhost:2380"
    );
    let client: SocketAddr = "127.0.0.1:2379".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:2380".parse().unwrap();
    assert_eq!(c.client_bind_addrs().unwrap(), vec![BindAddr::Tcp(client)]);
    assert_eq!(c.peer_bind_addrs().unwrap(), vec![BindAddr::Tcp(peer)]);
    assert_eq!(c.initial_cluster, "default=http://localhost:2380");
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(
        (c.snapshot_count, c.max_snapshots, c.max_wals),
        (100_000, 5, 5)
    );
    assert_eq!(
        (c.heartbeat_interval_ms, c.election_timeout_ms),
        (100, 1000)
    );
    assert_eq!(c.quota_backend_bytes, 0);
    assert_eq!(c.backend_quota_bytes(), Some(2 * 1024 * 1024 * 1024));
    assert_eq!((c.max_request_bytes, c.max_txn_ops), (1_572_864, 128));
    assert_eq!(c.auto_compaction, AutoCompaction::Disabled);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.config_file, None);
    assert_eq!(c.wal_dir(), PathBuf::from("default.oxcd/member/wal"));
    assert_eq!(c.snap_dir(), PathBuf::from("default.oxcd/member/snap"));
    assert_eq!(
        c.backend_path(),
        PathBuf::from("default.oxcd/member/snap/db")
    );
    assert_eq!(c.election_ticks(), 10);
    assert_eq!(c.request_timeout(), Duration::from_secs(7));
    assert!(c.is_new_cluster());
    assert!(c.strict_reconfig_check);
    assert!(!c.pre_vote, "etcd 3.4 leaves pre-vote off");
    assert!(c.initial_election_tick_advance);
}

#[test]
fn every_flag_is_read() {
    // Proves each flag lands in its field, with URLs sorted and the wal dir overriding the layout.
    let c = config(&[
        "--name=n1",
        "--data-dir=/d",
        "--wal-dir=/w",
        "--listen-client-urls=http://127.0.0.1:2,http://127.0.0.1:1",
        "--advertise-client-urls=http://h:1",
        "--listen-peer-urls=http://[::1]:3",
        "--initial-advertise-peer-urls=http://h:3",
        "--initial-cluster=n1=http://h:3,n2=http://i:3",
        "--initial-cluster-state=existing",
        "--initial-cluster-token=tok",
        "--snapshot-count=10",
        "--max-snapshots=0",
        "--max-wals=1",
        "--heartbeat-interval=10",
        "--election-timeout=50",
        "--quota-backend-bytes=-1",
        "--max-request-bytes=2048",
        "--max-txn-ops=3",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1000",
        "--log-level=warn",
    ]);
    assert_eq!(c.name, "n1");
    assert_eq!(c.wal_dir(), PathBuf::from("/w"));
    assert_eq!(c.backend_path(), PathBuf::from("/d/member/snap/db"));
    assert_eq!(
        urls(&c.listen_client_urls),
        "http://127.0.0.1:1,http://127.0.0.1:2"
    );
    assert_eq!(urls(&c.advertise_client_urls), "http://h:1");
    assert_eq!(urls(&c.listen_peer_urls), "http://[::1]:3");
    assert_eq!(urls(&c.initial_advertise_peer_urls), "http://h:3");
    let members = c.initial_members().unwrap();
    assert_eq!(
        members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
    assert_eq!(c.initial_cluster_token, "tok");
    assert_eq!((c.snapshot_count, c.max_snapshots, c.max_wals), (10, 0, 1));
    assert_eq!(
        (
            c.heartbeat_interval_ms,
            c.election_timeout_ms,
            c.election_ticks()
        ),
        (10, 50, 5)
    );
    assert_eq!(c.backend_quota_bytes(), None);
    assert_eq!((c.max_request_bytes, c.max_txn_ops), (2048, 3));
    assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
    assert_eq!(c.log_level, LogLevel::Warn);
}

#[test]
fn name_drives_data_dir_and_default_cluster() {
    // Proves etcd's post-parse defaults: data dir `<name>.oxcd` and a renamed one-member cluster.
    let c = config(&["--name", "infra1"]);
    assert_eq!(c.data_dir, PathBuf::from("infra1.oxcd"));
    assert_eq!(c.initial_cluster, "infra1=http://localhost:2380");
    assert_eq!(c.verify_bootstrap().unwrap()[0].name, "infra1");
    let c = config(&[
        "--name",
        "a",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:12380",
    ]);
    assert_eq!(c.initial_cluster, "a=http://127.0.0.1:12380");
    let c = config(&["--name", "a", "--initial-cluster", "a=http://127.0.0.1:1"]);
    assert_eq!(c.initial_cluster, "a=http://127.0.0.1:1");
    let c = config(&["--snapshot-count", "0"]);
    assert_eq!(
        c.snapshot_count, DEFAULT_SNAPSHOT_COUNT,
        "0 means the default, as in etcd"
    );
}

#[test]
fn environment_and_flags() {
    // Proves ETCD_* fills flags not given, a flag and its variable together are refused, and
    // unknown ETCD_* variables only warn.
    let loaded = run(
        &["--name", "flag"],
        &[
            ("ETCD_DATA_DIR", "/env"),
            ("ETCD_MAX_TXN_OPS", "0x10"),
            ("ETCD_BOGUS", "1"),
        ],
    )
    .unwrap();
    assert_eq!(loaded.config.name, "flag");
    assert_eq!(loaded.config.data_dir, PathBuf::from("/env"));
    assert_eq!(loaded.config.max_txn_ops, 16);
    assert_eq!(
        loaded.warnings,
        ["unrecognized environment variable ETCD_BOGUS=1"]
    );
    let err = run(&["--name", "flag"], &[("ETCD_NAME", "env")]).unwrap_err();
    assert!(matches!(err, ConfigError::Setup(ref m) if m.contains("\"ETCD_NAME\" is shadowed")));
    assert_eq!(err.exit_code(), 1);
    let err = run(&[], &[("ETCD_SNAPSHOT_COUNT", "abc")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "error verifying flags, invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error. \
         See 'oxcd --help'."
    );
    let err = run(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:1")]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Verify(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                .into()
        ),
        "a listen URL from the environment needs an advertised one too"
    );
    let ok = run(
        &["--listen-client-urls", "http://127.0.0.1:1"],
        &[("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:1")],
    )
    .unwrap();
    assert_eq!(urls(&ok.config.advertise_client_urls), "http://127.0.0.1:1");
}

#[test]
fn config_file_wins() {
    // Proves a config file (by flag or ETCD_CONFIG_FILE) replaces flags and variables, with a
    // warning naming what was ignored.
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "etcd.yml",
        "name: from-file\nlisten-client-urls: http://127.0.0.1:4001\n\
         auto-compaction-mode: periodic\nauto-compaction-retention: 1\n",
    );
    let path_text = path.to_str().unwrap();
    let loaded = run(
        &["--config-file", path_text, "--name", "from-flag"],
        &[("ETCD_DATA_DIR", "/env")],
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.name, "from-file");
    assert_eq!(c.data_dir, PathBuf::from("from-file.oxcd"));
    assert_eq!(c.config_file.as_deref(), Some(path.as_path()));
    assert_eq!(
        c.auto_compaction,
        AutoCompaction::Periodic(Duration::from_secs(3600))
    );
    // etcd's file loader keeps the default advertised URL when only the listen URL is given.
    assert_eq!(urls(&c.advertise_client_urls), "http://localhost:2379");
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("--name, ETCD_DATA_DIR"),
        "{:?}",
        loaded.warnings
    );
    let from_env = run(&[], &[("ETCD_CONFIG_FILE", path_text), ("ETCD_NAME", "x")]).unwrap();
    assert_eq!(from_env.config.name, "from-file");
}

#[test]
fn config_file_quirks_and_errors() {
    // Proves file-mode defaults (empty compaction mode) and file errors behave as etcd's.
    let dir = tempfile::tempdir().unwrap();
    let no_mode = write_file(dir.path(), "a.yml", "auto-compaction-retention: 2\n");
    let loaded = run(&["--config-file", no_mode.to_str().unwrap()], &[]).unwrap();
    assert_eq!(loaded.config.auto_compaction, AutoCompaction::Disabled);
    assert_eq!(loaded.warnings.len(), 1, "the empty-mode quirk is reported");
    let bad_state = write_file(dir.path(), "b.yml", "initial-cluster-state: maybe\n");
    assert_eq!(
        run(&["--config-file", bad_state.to_str().unwrap()], &[]).unwrap_err(),
        ConfigError::Verify("unexpected clusterState \"maybe\"".into())
    );
    let missing = dir.path().join("missing.yml");
    let err = run(&["--config-file", missing.to_str().unwrap()], &[]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Verify(format!(
            "open {}: no such file or directory",
            missing.display()
        ))
    );
}

#[test]
fn validation_errors_match_etcd() {
    // Proves every check reports etcd 3.4's text (as printed after "error verifying flags, "
    // where etcd prints that) and etcd's exit code.
    let usage = |m: &str| ConfigError::Usage(m.to_string());
    let verify = |m: &str| ConfigError::Verify(m.to_string());
    let setup = |m: &str| ConfigError::Setup(m.to_string());
    let cases: Vec<(&[&str], ConfigError)> = vec![
        (
            &["--initial-cluster-state", "foo"],
            usage(r#"invalid value "foo" for flag -initial-cluster-state: invalid value"#),
        ),
        (&["--snapshot-count", "abc"], usage(r#"invalid value "abc" for flag -snapshot-count: parse error"#)),
        (&["--max-wals=-1"], usage(r#"invalid value "-1" for flag -max-wals: parse error"#)),
        (
            &["--max-txn-ops", "99999999999999999999"],
            usage(r#"invalid value "99999999999999999999" for flag -max-txn-ops: value out of range"#),
        ),
        (
            &["--listen-client-urls", "foo://x:1"],
            usage(
                r#"invalid value "foo://x:1" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: foo://x:1"#,
            ),
        ),
        (&["--bogus"], usage("flag provided but not defined: -bogus")),
        (&["extra"], verify("'extra' is not a valid flag")),
        (&["--log-level", "loud"], verify(r#"unknown level "loud""#)),
        (
            &["--listen-peer-urls", "http://example.com:2380"],
            verify("expected IP in URL for binding (http://example.com:2380)"),
        ),
        (
            &["--initial-advertise-peer-urls", "http://:2380"],
            verify(r#"--initial-advertise-peer-urls "http://:2380" must be "host:port" (unexpected empty host (http://:2380))"#),
        ),
        (
            &["--advertise-client-urls", "http://:2379"],
            verify(r#"--advertise-client-urls "http://:2379" must be "host:port" (unexpected empty host (http://:2379))"#),
        ),
        (&["--heartbeat-interval", "0"], verify("--heartbeat-interval must be >0 (set to 0ms)")),
        (&["--election-timeout", "0"], verify("--election-timeout must be >0 (set to 0ms)")),
        (
            &["--election-timeout", "100"],
            verify("--election-timeout[100ms] should be at least as 5 times as --heartbeat-interval[100ms]"),
        ),
        (
            &["--election-timeout", "60000"],
            verify("--election-timeout[60000ms] is too long, and should be set less than 50000ms"),
        ),
        (
            &["--listen-client-urls", "http://127.0.0.1:2379"],
            verify("--advertise-client-urls is required when --listen-client-urls is set explicitly"),
        ),
        (&["--auto-compaction-mode", "foo"], verify(r#"unknown auto-compaction-mode "foo""#)),
        (
            &["--auto-compaction-retention", "foo"],
            setup(r#"error parsing CompactionRetention: time: invalid duration "foo""#),
        ),
        (
            &["--listen-peer-urls", "http://127.0.0.1:99999"],
            setup("listen tcp: address 99999: invalid port"),
        ),
    ];
    for (args, want) in cases {
        let got = error(args);
        assert_eq!(got, want, "{args:?}");
        let want_code = if matches!(want, ConfigError::Usage(_)) {
            2
        } else {
            1
        };
        assert_eq!(got.exit_code(), want_code, "{args:?}");
    }
    assert_eq!(
        error(&["--election-timeout", "100"]).to_string(),
        "error verifying flags, --election-timeout[100ms] should be at least as 5 times as \
         --heartbeat-interval[100ms]. See 'oxcd --help'."
    );
}

#[test]
fn retention_through_flags() {
    // Proves --auto-compaction-retention reads bare numbers as hours in periodic mode and
    // accepts Go durations.
    let retention = |args: &[&str]| config(args).auto_compaction;
    let hours = |h: u64| AutoCompaction::Periodic(Duration::from_secs(h * 3600));
    assert_eq!(retention(&["--auto-compaction-retention", "1"]), hours(1));
    assert_eq!(retention(&["--auto-compaction-retention", "72"]), hours(72));
    assert_eq!(
        retention(&["--auto-compaction-retention", "5m"]),
        AutoCompaction::Periodic(Duration::from_secs(300))
    );
    assert_eq!(
        retention(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "10"
        ]),
        AutoCompaction::Revision(10)
    );
}

#[test]
fn help_and_version_actions() {
    // Proves --help and --version are actions, not errors, and the version names both versions.
    match load(["oxcd", "--version"], &[]).unwrap() {
        Action::PrintVersion(text) => {
            assert!(text.starts_with(&format!("oxcd Version: {}\n", env!("CARGO_PKG_VERSION"))));
            assert!(text.contains("etcd API version: 3.5"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        load(["oxcd", "--help"], &[]).unwrap(),
        Action::PrintHelp(_)
    ));
}

#[test]
fn watch_progress_interval_follows_etcds_rules() {
    // Proves the flag takes Go durations, a config file integer nanoseconds, and that values
    // under 100 ms are raised with a warning while 0 keeps the 10-minute default, as etcd does.
    assert_eq!(
        Config::default().watch_progress_notify_interval,
        Duration::from_secs(600)
    );
    let set = |value: &str| {
        let flag = format!("--experimental-watch-progress-notify-interval={value}");
        run(&[&flag], &[]).unwrap()
    };
    assert_eq!(
        set("1.5s").config.watch_progress_notify_interval,
        Duration::from_millis(1500)
    );
    assert_eq!(
        set("0").config.watch_progress_notify_interval,
        Duration::from_secs(600)
    );
    let raised = set("10ms");
    assert_eq!(
        raised.config.watch_progress_notify_interval,
        Duration::from_millis(100)
    );
    assert_eq!(raised.warnings.len(), 1, "{:?}", raised.warnings);
    let env_set = run(
        &[],
        &[("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "2m")],
    )
    .unwrap();
    assert_eq!(
        env_set.config.watch_progress_notify_interval,
        Duration::from_secs(120)
    );
    assert_eq!(
        error(&["--experimental-watch-progress-notify-interval", "soon"]),
        ConfigError::Usage(
            r#"invalid value "soon" for flag -experimental-watch-progress-notify-interval: parse error"#
                .to_string()
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "c.yaml",
        "experimental-watch-progress-notify-interval: 250000000\n",
    );
    let from_file = run(&["--config-file", file.to_str().unwrap()], &[]).unwrap();
    assert_eq!(
        from_file.config.watch_progress_notify_interval,
        Duration::from_millis(250)
    );
    let file = write_file(
        dir.path(),
        "d.yaml",
        "experimental-watch-progress-notify-interval: 1s\n",
    );
    let refused = run(&["--config-file", file.to_str().unwrap()], &[]).unwrap_err();
    assert!(
        refused.to_string().contains("of type time.Duration"),
        "{refused}"
    );
}

/// The three boolean flags with their etcd defaults, for table-driven tests.
const BOOL_FLAGS: [(&str, bool); 3] = [
    ("strict-reconfig-check", true),
    ("pre-vote", false),
    ("initial-election-tick-advance", true),
];

fn bool_fields(c: &Config) -> [bool; 3] {
    [
        c.strict_reconfig_check,
        c.pre_vote,
        c.initial_election_tick_advance,
    ]
}

/// The value of the flag `name` (one of [`BOOL_FLAGS`]) in `c`.
fn bool_field(c: &Config, name: &str) -> bool {
    let index = BOOL_FLAGS.iter().position(|(flag, _)| *flag == name);
    bool_fields(c)[index.expect("a boolean flag")]
}

#[test]
fn boolean_flags_take_go_spellings() {
    // Proves `--x` alone means true and `--x=v` / `-x=v` take exactly strconv.ParseBool's words.
    let spellings = [
        ("1", true),
        ("t", true),
        ("T", true),
        ("TRUE", true),
        ("true", true),
        ("True", true),
        ("0", false),
        ("f", false),
        ("F", false),
        ("FALSE", false),
        ("false", false),
        ("False", false),
    ];
    for (name, default) in BOOL_FLAGS {
        assert_eq!(bool_field(&Config::default(), name), default, "{name}");
        assert!(
            bool_field(&config(&[&format!("--{name}")]), name),
            "--{name}"
        );
        assert!(bool_field(&config(&[&format!("-{name}")]), name), "-{name}");
        for (text, want) in spellings {
            let double = format!("--{name}={text}");
            assert_eq!(bool_field(&config(&[&double]), name), want, "{double}");
            let single = format!("-{name}={text}");
            assert_eq!(bool_field(&config(&[&single]), name), want, "{single}");
        }
        // The last repeat wins, as for every Go flag.
        let last = config(&[&format!("--{name}=false"), &format!("--{name}")]);
        assert!(bool_field(&last, name), "{name} repeated");
    }
    // A boolean flag does not swallow the flag after it.
    let c = config(&["-pre-vote", "--name", "n", "--strict-reconfig-check=f"]);
    assert_eq!((c.pre_vote, c.strict_reconfig_check), (true, false));
    assert_eq!(c.name, "n");
}

#[test]
fn boolean_flag_errors_match_etcd() {
    // Proves a bad boolean value gets Go's "invalid boolean value" (exit 2) and a separated value
    // stays a stray argument (exit 1), as etcd 3.4.23 reports them.
    for (name, _) in BOOL_FLAGS {
        for bad in ["maybe", "yes", "2", ""] {
            let err = error(&[&format!("--{name}={bad}")]);
            assert_eq!(
                err,
                ConfigError::Usage(format!(
                    "invalid boolean value {bad:?} for -{name}: parse error"
                )),
                "{name}={bad}"
            );
            assert_eq!(err.exit_code(), 2);
        }
        for value in ["false", "true"] {
            let err = error(&[&format!("--{name}"), value]);
            assert_eq!(
                err,
                ConfigError::Verify(format!("'{value}' is not a valid flag"))
            );
            assert_eq!(err.exit_code(), 1);
        }
    }
    // Go stops at the first non-flag, so a flag after the stray value changes nothing.
    assert_eq!(
        error(&["--pre-vote", "false", "--name", "n"]),
        ConfigError::Verify("'false' is not a valid flag".into())
    );
    assert_eq!(
        error(&["--strict-reconfig-check=maybe"]).to_string(),
        r#"invalid boolean value "maybe" for -strict-reconfig-check: parse error"#
    );
}

#[test]
fn boolean_environment_variables() {
    // Proves ETCD_* sets each boolean with ParseBool's words, a bad value is etcd's
    // verify error (exit 1), and a flag given with its variable is refused as etcd refuses it.
    for (name, _) in BOOL_FLAGS {
        let key = flags::env_key(name);
        for (text, want) in [("true", true), ("1", true), ("F", false), ("False", false)] {
            let loaded = run(&[], &[(key.as_str(), text)]).unwrap();
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            assert_eq!(bool_field(&loaded.config, name), want, "{key}={text}");
        }
        let err = run(&[], &[(key.as_str(), "maybe")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error verifying flags, invalid value \"maybe\" for {key}: parse error. \
                 See 'oxcd --help'."
            )
        );
        assert_eq!(err.exit_code(), 1);
        let err = run(&[&format!("--{name}=false")], &[(key.as_str(), "true")]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Setup(format!(
                "conflicting environment variable {key:?} is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
            ))
        );
        assert_eq!(err.exit_code(), 1);
    }
    assert_eq!(
        flags::env_key("initial-election-tick-advance"),
        "ETCD_INITIAL_ELECTION_TICK_ADVANCE"
    );
    // Variables fill the flags not given; an empty variable counts as unset (and is warned of).
    let loaded = run(
        &["--pre-vote"],
        &[
            ("ETCD_STRICT_RECONFIG_CHECK", "false"),
            ("ETCD_INITIAL_ELECTION_TICK_ADVANCE", ""),
        ],
    )
    .unwrap();
    assert_eq!(bool_fields(&loaded.config), [false, true, true]);
}

#[test]
fn boolean_config_file_keys() {
    // Proves the YAML keys set the booleans (YAML 1.1 words included, as etcd's loader reads
    // them), null keeps the default, and non-booleans get etcd's JSON type error.
    let dir = tempfile::tempdir().unwrap();
    let load_file = |text: &str| {
        let path = write_file(dir.path(), "bools.yml", text);
        run(&["--config-file", path.to_str().unwrap()], &[])
    };
    let c = load_file(
        "strict-reconfig-check: false\npre-vote: true\ninitial-election-tick-advance: false\n",
    )
    .unwrap()
    .config;
    assert_eq!(bool_fields(&c), [false, true, false]);
    for (word, want) in [
        ("yes", true),
        ("on", true),
        ("Y", true),
        ("True", true),
        ("TRUE", true),
        ("no", false),
        ("OFF", false),
        ("n", false),
        ("False", false),
    ] {
        let c = load_file(&format!(
            "pre-vote: {word}\nstrict-reconfig-check: {word}\n"
        ))
        .unwrap()
        .config;
        assert_eq!(
            (c.pre_vote, c.strict_reconfig_check),
            (want, want),
            "{word}"
        );
    }
    let c = load_file("pre-vote:\nstrict-reconfig-check: ~\n")
        .unwrap()
        .config;
    assert_eq!(
        bool_fields(&c),
        [true, false, true],
        "null keeps etcd's defaults"
    );
    let type_error = |what: &str, key: &str| {
        ConfigError::Verify(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {what} into Go \
             struct field configYAML.{key} of type bool"
        ))
    };
    for (value, what) in [
        ("maybe", "string"),
        ("'true'", "string"),
        ("1", "number"),
        ("[true]", "array"),
    ] {
        let err = load_file(&format!("strict-reconfig-check: {value}\n")).unwrap_err();
        assert_eq!(err, type_error(what, "strict-reconfig-check"), "{value}");
        assert_eq!(err.exit_code(), 1);
    }
    // With two bad keys etcd names the first in key order, not in file order.
    assert_eq!(
        load_file("pre-vote: 1\ninitial-election-tick-advance: maybe\n").unwrap_err(),
        type_error("string", "initial-election-tick-advance")
    );
}

#[test]
fn boolean_flags_in_help() {
    // Proves --help lists the booleans in etcd's sections and order, with etcd's text and defaults.
    let Action::PrintHelp(text) = load(["oxcd", "--help"], &[]).unwrap() else {
        panic!("--help should print help");
    };
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from help:\n{text}"))
    };
    for (line, after, before) in [
        (
            "Whether to fast-forward initial election ticks on boot for faster election. \
             [default: true]",
            "--election-timeout <N>",
            "--listen-peer-urls",
        ),
        (
            "Reject reconfiguration requests that would cause quorum loss. [default: true]",
            "--advertise-client-urls",
            "--pre-vote",
        ),
        (
            "Enable to run an additional Raft election phase. [default: false]",
            "--strict-reconfig-check",
            "--auto-compaction-retention",
        ),
    ] {
        assert!(position(after) < position(line), "{line} after {after}");
        assert!(position(line) < position(before), "{line} before {before}");
    }
    assert!(position("Member:") < position("--initial-election-tick-advance"));
    assert!(position("Clustering:") < position("--strict-reconfig-check"));
    assert!(position("--pre-vote") < position("Logging:"));
}
