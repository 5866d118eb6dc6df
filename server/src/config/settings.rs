//! The raw settings, in etcd's own terms (its `embed.Config` fields that oxcd uses), how each
//! flag value is set (Go `flag.Value.Set` semantics), etcd's `Config.Validate` checks, and the
//! step that turns validated settings into a [`Config`].
//!
//! Settings hold what the operator wrote (strings for modes and the initial cluster, as etcd
//! does); [`Settings::into_config`] is the single place where they become typed values, so the
//! order of etcd's checks, and therefore which error a bad invocation reports, is kept.

use std::path::PathBuf;
use std::time::Duration;

use super::url::{join_urls, parse_url_list, EtcdUrl};
use super::values::{
    parse_go_bool, parse_go_duration, parse_go_int, parse_go_uint, parse_retention,
};
use super::{
    ClusterState, Config, ConfigError, LogLevel, DEFAULT_SNAPSHOT_COUNT,
    DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL,
};

/// etcd's `DefaultName`.
pub(crate) const DEFAULT_NAME: &str = "default";
/// etcd's `maxElectionMs`.
const MAX_ELECTION_MS: u64 = 50_000;
/// etcd's default listen/advertise URLs.
const DEFAULT_PEER_URL: &str = "http://localhost:2380";
const DEFAULT_CLIENT_URL: &str = "http://localhost:2379";

/// etcd's `embed.Config` subset, before validation.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub name: String,
    /// Empty means `<name>.oxcd`, decided after parsing as etcd decides `<name>.etcd`.
    pub data_dir: String,
    pub wal_dir: String,
    pub snapshot_count: u64,
    pub max_snapshots: u64,
    pub max_wals: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub initial_election_tick_advance: bool,
    pub quota_backend_bytes: i64,
    pub max_txn_ops: u64,
    pub max_request_bytes: u64,
    pub listen_peer_urls: Vec<EtcdUrl>,
    pub listen_client_urls: Vec<EtcdUrl>,
    pub initial_advertise_peer_urls: Vec<EtcdUrl>,
    pub advertise_client_urls: Vec<EtcdUrl>,
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub initial_cluster_state: String,
    pub strict_reconfig_check: bool,
    pub pre_vote: bool,
    pub auto_compaction_mode: String,
    pub auto_compaction_retention: String,
    /// Signed nanoseconds, as Go's `time.Duration`.
    pub watch_progress_notify_interval_ns: i64,
    pub log_level: String,
}

impl Settings {
    /// etcd's defaults as the command line sees them (`etcdmain.newConfig`).
    pub(crate) fn flag_defaults() -> Settings {
        let peer = vec![default_url(DEFAULT_PEER_URL)];
        let client = vec![default_url(DEFAULT_CLIENT_URL)];
        Settings {
            name: DEFAULT_NAME.to_string(),
            data_dir: String::new(),
            wal_dir: String::new(),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            max_snapshots: 5,
            max_wals: 5,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 1000,
            initial_election_tick_advance: true,
            quota_backend_bytes: 0,
            max_txn_ops: 128,
            max_request_bytes: 1_572_864,
            initial_cluster: default_initial_cluster(),
            listen_peer_urls: peer.clone(),
            listen_client_urls: client.clone(),
            initial_advertise_peer_urls: peer,
            advertise_client_urls: client,
            initial_cluster_token: "etcd-cluster".to_string(),
            initial_cluster_state: "new".to_string(),
            strict_reconfig_check: true,
            // etcd 3.4's default; 3.5 turned it on.
            pre_vote: false,
            auto_compaction_mode: "periodic".to_string(),
            auto_compaction_retention: "0".to_string(),
            watch_progress_notify_interval_ns: DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL.as_nanos()
                as i64,
            log_level: "info".to_string(),
        }
    }

    /// etcd's defaults as a config file sees them (`embed.NewConfig`): the auto-compaction mode
    /// and retention start empty there, which [`parse_retention`] treats as etcd does.
    pub(crate) fn file_defaults() -> Settings {
        Settings {
            auto_compaction_mode: String::new(),
            auto_compaction_retention: String::new(),
            ..Settings::flag_defaults()
        }
    }

    /// Sets one flag from text, as the flag's Go `Set` method would. The error is the bare
    /// reason ("parse error", "invalid value", a URL error); callers add where it came from.
    pub(crate) fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let uint = |value: &str| parse_go_uint(value).map_err(str::to_string);
        let boolean = |value: &str| parse_go_bool(value).map_err(str::to_string);
        match flag {
            "name" => self.name = value.to_string(),
            "data-dir" => self.data_dir = value.to_string(),
            "wal-dir" => self.wal_dir = value.to_string(),
            "snapshot-count" => self.snapshot_count = uint(value)?,
            "max-snapshots" => self.max_snapshots = uint(value)?,
            "max-wals" => self.max_wals = uint(value)?,
            "heartbeat-interval" => self.heartbeat_interval_ms = uint(value)?,
            "election-timeout" => self.election_timeout_ms = uint(value)?,
            "initial-election-tick-advance" => self.initial_election_tick_advance = boolean(value)?,
            "quota-backend-bytes" => {
                self.quota_backend_bytes = parse_go_int(value).map_err(str::to_string)?
            }
            "max-txn-ops" => self.max_txn_ops = uint(value)?,
            "max-request-bytes" => self.max_request_bytes = uint(value)?,
            "listen-peer-urls" => set_urls(&mut self.listen_peer_urls, value)?,
            "listen-client-urls" => set_urls(&mut self.listen_client_urls, value)?,
            "initial-advertise-peer-urls" => {
                set_urls(&mut self.initial_advertise_peer_urls, value)?
            }
            "advertise-client-urls" => set_urls(&mut self.advertise_client_urls, value)?,
            "initial-cluster" => self.initial_cluster = value.to_string(),
            "initial-cluster-token" => self.initial_cluster_token = value.to_string(),
            "initial-cluster-state" => match value {
                "new" | "existing" => self.initial_cluster_state = value.to_string(),
                _ => return Err("invalid value".to_string()),
            },
            "strict-reconfig-check" => self.strict_reconfig_check = boolean(value)?,
            "pre-vote" => self.pre_vote = boolean(value)?,
            "auto-compaction-mode" => self.auto_compaction_mode = value.to_string(),
            "auto-compaction-retention" => self.auto_compaction_retention = value.to_string(),
            "experimental-watch-progress-notify-interval" => {
                // Go's flag package reports every bad duration as a parse error.
                self.watch_progress_notify_interval_ns =
                    parse_go_duration(value).map_err(|_| "parse error".to_string())?
            }
            "log-level" => self.log_level = value.to_string(),
            // `config-file` is read before any settings exist; nothing else reaches here.
            _ => return Err(format!("unknown flag {flag:?}")),
        }
        Ok(())
    }

    /// etcd's `Config.Validate`, for the settings oxcd has, in etcd's order.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let verify = |message: String| Err(ConfigError::Verify(message));
        if let Err(message) = log_level(&self.log_level) {
            return verify(message);
        }
        for url in self.listen_peer_urls.iter().chain(&self.listen_client_urls) {
            if let Err(message) = url.check_bindable() {
                return verify(message);
            }
        }
        for (flag, urls) in [
            (
                "initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
            ("advertise-client-urls", &self.advertise_client_urls),
        ] {
            if let Some(message) = urls.iter().find_map(|url| url.check_has_host().err()) {
                let joined = join_urls(urls);
                return verify(format!(
                    r#"--{flag} "{joined}" must be "host:port" ({message})"#
                ));
            }
        }
        if cluster_state(&self.initial_cluster_state).is_none() {
            return verify(format!(
                "unexpected clusterState {:?}",
                self.initial_cluster_state
            ));
        }
        let (tick, election) = (self.heartbeat_interval_ms, self.election_timeout_ms);
        if tick == 0 {
            return verify(format!("--heartbeat-interval must be >0 (set to {tick}ms)"));
        }
        if election == 0 {
            return verify(format!(
                "--election-timeout must be >0 (set to {election}ms)"
            ));
        }
        if tick.saturating_mul(5) > election {
            return verify(format!(
                "--election-timeout[{election}ms] should be at least as 5 times as \
                 --heartbeat-interval[{tick}ms]"
            ));
        }
        if election > MAX_ELECTION_MS {
            return verify(format!(
                "--election-timeout[{election}ms] is too long, and should be set less than \
                 {MAX_ELECTION_MS}ms"
            ));
        }
        if !self.listen_client_urls.is_empty() && self.advertise_client_urls.is_empty() {
            return verify(
                "--advertise-client-urls is required when --listen-client-urls is set explicitly"
                    .to_string(),
            );
        }
        match self.auto_compaction_mode.as_str() {
            "" | "periodic" | "revision" => Ok(()),
            mode => verify(format!("unknown auto-compaction-mode {mode:?}")),
        }
    }

    /// Validates, applies etcd's post-parse defaults (data dir from the name, the initial
    /// cluster from the name), and builds the typed [`Config`]. Warnings are appended.
    pub(crate) fn into_config(
        mut self,
        config_file: Option<PathBuf>,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        self.validate()?;
        // etcd's UpdateDefaultClusterFromName: a renamed member with the untouched default
        // cluster bootstraps as a one-member cluster of itself.
        if self.name != DEFAULT_NAME && self.initial_cluster == default_initial_cluster() {
            let name = if self.name.is_empty() {
                DEFAULT_NAME
            } else {
                &self.name
            };
            self.initial_cluster = self
                .initial_advertise_peer_urls
                .iter()
                .map(|url| format!("{name}={url}"))
                .collect::<Vec<_>>()
                .join(",");
        }
        if self.data_dir.is_empty() {
            self.data_dir = format!("{}.oxcd", self.name);
        }
        for url in self.listen_peer_urls.iter().chain(&self.listen_client_urls) {
            url.bind_addr().map_err(ConfigError::Setup)?;
        }
        let retention = if self.auto_compaction_retention.is_empty() {
            "0"
        } else {
            self.auto_compaction_retention.as_str()
        };
        let (auto_compaction, retention_warning) =
            parse_retention(&self.auto_compaction_mode, retention).map_err(ConfigError::Setup)?;
        warnings.extend(retention_warning);
        if self.quota_backend_bytes > super::MAX_QUOTA_BYTES {
            warnings.push(format!(
                "backend quota {} exceeds maximum recommended quota {}",
                self.quota_backend_bytes,
                super::MAX_QUOTA_BYTES
            ));
        }
        Ok(Config {
            name: self.name,
            data_dir: PathBuf::from(self.data_dir),
            dedicated_wal_dir: (!self.wal_dir.is_empty()).then(|| PathBuf::from(self.wal_dir)),
            listen_client_urls: self.listen_client_urls,
            advertise_client_urls: self.advertise_client_urls,
            listen_peer_urls: self.listen_peer_urls,
            initial_advertise_peer_urls: self.initial_advertise_peer_urls,
            initial_cluster: self.initial_cluster,
            initial_cluster_state: cluster_state(&self.initial_cluster_state)
                .unwrap_or(ClusterState::New),
            initial_cluster_token: self.initial_cluster_token,
            strict_reconfig_check: self.strict_reconfig_check,
            pre_vote: self.pre_vote,
            snapshot_count: if self.snapshot_count == 0 {
                DEFAULT_SNAPSHOT_COUNT
            } else {
                self.snapshot_count
            },
            max_snapshots: self.max_snapshots,
            max_wals: self.max_wals,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            election_timeout_ms: self.election_timeout_ms,
            initial_election_tick_advance: self.initial_election_tick_advance,
            quota_backend_bytes: self.quota_backend_bytes,
            max_request_bytes: self.max_request_bytes,
            max_txn_ops: self.max_txn_ops,
            auto_compaction,
            watch_progress_notify_interval: watch_progress_interval(
                self.watch_progress_notify_interval_ns,
                warnings,
            ),
            log_level: log_level(&self.log_level).unwrap_or(LogLevel::Info),
            config_file,
        })
    }
}

/// `default=http://localhost:2380`: etcd's default initial cluster, from the default name and
/// default advertised peer URL.
fn default_initial_cluster() -> String {
    format!("{DEFAULT_NAME}={DEFAULT_PEER_URL}")
}

fn default_url(text: &str) -> EtcdUrl {
    EtcdUrl::parse(text).expect("etcd's default URLs parse")
}

/// etcd's `UniqueURLs.Set`: the empty string is an allowed exception that leaves the URLs as
/// they were; anything else replaces them.
fn set_urls(urls: &mut Vec<EtcdUrl>, value: &str) -> Result<(), String> {
    if !value.is_empty() {
        *urls = parse_url_list(value)?;
    }
    Ok(())
}

fn cluster_state(text: &str) -> Option<ClusterState> {
    match text {
        "new" => Some(ClusterState::New),
        "existing" => Some(ClusterState::Existing),
        _ => None,
    }
}

/// etcd's `logutil.ConvertToZapLevel`, which panics on anything else; oxcd reports it instead.
fn log_level(text: &str) -> Result<LogLevel, String> {
    Ok(match text {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "dpanic" => LogLevel::DPanic,
        "panic" => LogLevel::Panic,
        "fatal" => LogLevel::Fatal,
        _ => return Err(format!("unknown level {text:?}")),
    })
}

/// etcd's watch server rule: a progress interval of 0 or less keeps the default (10 minutes);
/// one under 100 ms is raised to 100 ms, with a warning.
fn watch_progress_interval(nanos: i64, warnings: &mut Vec<String>) -> Duration {
    const MIN: Duration = Duration::from_millis(100);
    if nanos <= 0 {
        return DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL;
    }
    let interval = Duration::from_nanos(nanos as u64);
    if interval < MIN {
        warnings.push(format!(
            "adjusting watch progress notify interval to minimum period {MIN:?}"
        ));
        return MIN;
    }
    interval
}
