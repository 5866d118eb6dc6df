//! Process configuration: etcd 3.4's flags, `ETCD_*` environment variables and YAML config
//! file, with etcd's defaults, precedence, validation and error wording, turned into one
//! [`Config`] the server starts from.
//!
//! Precedence, as etcd's: when `--config-file` (or `ETCD_CONFIG_FILE`) names a file, the file
//! alone decides and every other flag and variable is ignored (a warning names the ignored
//! flags). Otherwise a command-line flag beats its `ETCD_*` variable, which beats the default;
//! setting the same flag both ways is an error, as in etcd.
//!
//! This module owns parsing and checking only: it opens no sockets and touches no files except
//! reading the config file. Everything it cannot reject without the data directory (the
//! initial cluster, which etcd only reads when bootstrapping) is checked by
//! [`Config::initial_members`] and [`Config::verify_bootstrap`], which the server calls.
//!
//! Invariants of a [`Config`] built by [`load`]: the heartbeat interval is > 0 and at most a
//! fifth of the election timeout (≤ 50 s); listen URLs bind (IP or `localhost`, valid port);
//! advertised URLs have a host; `snapshot_count` is > 0; `data_dir` is not empty.
//!
//! Exit codes, as etcd's: command-line syntax errors (unknown flag, unparsable value) → 2;
//! everything else → 1. See [`ConfigError::exit_code`].

mod bootstrap;
mod file;
mod flags;
mod settings;
mod url;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use url::{initial_cluster_string, join_urls, BindAddr, EtcdUrl, InitialMember};
pub use values::AutoCompaction;

use flags::CommandLine;
use settings::Settings;

/// The etcd API version oxcd implements, reported where etcd reports its own version.
pub const ETCD_API_VERSION: &str = "3.5";
/// The etcd server version oxcd reports (Maintenance Status, `/version`, the cluster version
/// it records): the API it implements, so version-gated clients enable what it serves.
pub const ETCD_SERVER_VERSION: &str = "3.5.0";
/// etcd's default `--experimental-watch-progress-notify-interval`.
pub const DEFAULT_WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// etcd's default `--snapshot-count` (also what 0 means).
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// etcd's backend quota when `--quota-backend-bytes` is 0: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd's largest recommended backend quota (larger values are warned about): 8 GiB.
pub const MAX_QUOTA_BYTES: i64 = 8 * 1024 * 1024 * 1024;

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster that already exists.
    Existing,
}

/// `--log-level`: zap's levels, which etcd accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (the default)
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `dpanic`
    DPanic,
    /// `panic`
    Panic,
    /// `fatal`
    Fatal,
}

/// A member's configuration, fully resolved (defaults applied, URLs parsed and sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `--name` (default `default`).
    pub name: String,
    /// `--data-dir` (default `<name>.oxcd`, so `default.oxcd`).
    pub data_dir: PathBuf,
    /// `--wal-dir`: a dedicated WAL directory replacing `<data-dir>/member/wal`.
    pub dedicated_wal_dir: Option<PathBuf>,
    /// `--listen-client-urls` (default `http://localhost:2379`, which binds 127.0.0.1:2379).
    pub listen_client_urls: Vec<EtcdUrl>,
    /// `--advertise-client-urls` (default `http://localhost:2379`).
    pub advertise_client_urls: Vec<EtcdUrl>,
    /// `--listen-peer-urls` (default `http://localhost:2380`).
    pub listen_peer_urls: Vec<EtcdUrl>,
    /// `--initial-advertise-peer-urls` (default `http://localhost:2380`).
    pub initial_advertise_peer_urls: Vec<EtcdUrl>,
    /// `--initial-cluster` as given, after etcd's rename rule (a member renamed with `--name`
    /// whose initial cluster is still the default bootstraps as `<name>=<advertised peer
    /// URLs>`). Parsed by [`Config::initial_members`].
    pub initial_cluster: String,
    /// `--initial-cluster-state` (default new).
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token` (default `etcd-cluster`).
    pub initial_cluster_token: String,
    /// `--strict-reconfig-check` (default true): refuse a member add or remove that would
    /// leave the cluster without a quorum of started, connected members.
    pub strict_reconfig_check: bool,
    /// `--pre-vote` (default false, as in etcd 3.4): run raft's pre-vote phase, so a member that
    /// could not win an election does not bump the term and unseat a healthy leader.
    pub pre_vote: bool,
    /// `--snapshot-count` (default 100,000; 0 also means the default, as in etcd).
    pub snapshot_count: u64,
    /// `--max-snapshots`: snapshot files kept, 0 = unlimited (default 5).
    pub max_snapshots: u64,
    /// `--max-wals`: WAL files kept, 0 = unlimited (default 5).
    pub max_wals: u64,
    /// `--heartbeat-interval` in milliseconds: one raft tick (default 100).
    pub heartbeat_interval_ms: u64,
    /// `--election-timeout` in milliseconds (default 1000).
    pub election_timeout_ms: u64,
    /// `--initial-election-tick-advance` (default true): on start, fast-forward the election
    /// clock so that only a couple of ticks remain before this member may campaign, instead of
    /// waiting a full election timeout. A member alone in its cluster advances regardless. Off
    /// trades slower first elections for fewer disruptive ones when a restarted follower hears
    /// from the leader late.
    pub initial_election_tick_advance: bool,
    /// `--quota-backend-bytes` as given: 0 = 2 GiB default, negative = no quota. See
    /// [`Config::backend_quota_bytes`].
    pub quota_backend_bytes: i64,
    /// `--max-request-bytes` (default 1.5 MiB).
    pub max_request_bytes: u64,
    /// `--max-txn-ops` (default 128).
    pub max_txn_ops: u64,
    /// `--auto-compaction-mode` with `--auto-compaction-retention` (default disabled).
    pub auto_compaction: AutoCompaction,
    /// `--experimental-watch-progress-notify-interval` (default 10 minutes, at least 100 ms):
    /// how long a `progress_notify` watcher may go without a response before it gets an empty
    /// one.
    pub watch_progress_notify_interval: Duration,
    /// `--log-level` (default info).
    pub log_level: LogLevel,
    /// The `--config-file` that produced this configuration, if any.
    pub config_file: Option<PathBuf>,
}

impl Default for Config {
    /// etcd's defaults, as `oxcd` with no flags and no `ETCD_*` variables would run.
    fn default() -> Config {
        Settings::flag_defaults()
            .into_config(None, &mut Vec::new())
            .expect("etcd's defaults are a valid configuration")
    }
}

impl Config {
    /// `<data-dir>/member`.
    pub fn member_dir(&self) -> PathBuf {
        self.data_dir.join("member")
    }

    /// Where the WAL lives: `--wal-dir` if given, else `<data-dir>/member/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        match &self.dedicated_wal_dir {
            Some(dir) => dir.clone(),
            None => self.member_dir().join("wal"),
        }
    }

    /// `<data-dir>/member/snap`, holding `*.snap` raft snapshots and the backend file.
    pub fn snap_dir(&self) -> PathBuf {
        self.member_dir().join("snap")
    }

    /// `<data-dir>/member/snap/db`: the backend (engine) file.
    pub fn backend_path(&self) -> PathBuf {
        self.snap_dir().join("db")
    }

    /// Election timeout in raft ticks (etcd's `ElectionTicks`): election / heartbeat.
    pub fn election_ticks(&self) -> u64 {
        self.election_timeout_ms / self.heartbeat_interval_ms.max(1)
    }

    /// etcd's request timeout: 5 s plus two election timeouts (`ServerConfig.ReqTimeout`).
    pub fn request_timeout(&self) -> Duration {
        let election_ms = self
            .election_ticks()
            .saturating_mul(self.heartbeat_interval_ms);
        Duration::from_secs(5) + Duration::from_millis(election_ms.saturating_mul(2))
    }

    /// The backend quota in bytes, or `None` when quotas are disabled (negative setting).
    pub fn backend_quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES),
            q => Some(q as u64),
        }
    }

    /// True when bootstrapping a new cluster (`--initial-cluster-state new`).
    pub fn is_new_cluster(&self) -> bool {
        self.initial_cluster_state == ClusterState::New
    }

    /// Where the client listeners bind, in URL order.
    pub fn client_bind_addrs(&self) -> Result<Vec<BindAddr>, ConfigError> {
        bind_addrs(&self.listen_client_urls)
    }

    /// Where the peer listeners bind, in URL order.
    pub fn peer_bind_addrs(&self) -> Result<Vec<BindAddr>, ConfigError> {
        bind_addrs(&self.listen_peer_urls)
    }
}

fn bind_addrs(urls: &[EtcdUrl]) -> Result<Vec<BindAddr>, ConfigError> {
    urls.iter()
        .map(|url| url.bind_addr().map_err(ConfigError::Setup))
        .collect()
}

/// Why the configuration was refused. `Display` gives the one line to print, in etcd's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Command-line syntax, as Go's flag package reports it (unknown flag, unparsable value).
    #[error("{0}")]
    Usage(String),
    /// etcd's "error verifying flags" family (validation, environment, config file).
    #[error("error verifying flags, {0}. See 'oxcd --help'.")]
    Verify(String),
    /// Fatal problems etcd reports later in start-up (initial cluster, compaction retention,
    /// listener addresses, shadowed environment variables), printed as is.
    #[error("{0}")]
    Setup(String),
}

impl ConfigError {
    /// The process exit code etcd uses for this kind of error: 2 for syntax, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) => 2,
            ConfigError::Verify(_) | ConfigError::Setup(_) => 1,
        }
    }
}

/// What the command line asks the process to do.
#[derive(Debug)]
pub enum Action {
    /// Run a member with this configuration.
    Run(Box<Loaded>),
    /// Print this help text to stdout and exit 0.
    PrintHelp(String),
    /// Print this version text to stdout and exit 0.
    PrintVersion(String),
}

/// A loaded configuration plus the warnings etcd would log while loading it (unrecognised
/// `ETCD_*` variables, ignored flags, ignored config-file keys, surprising settings).
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// One line each, for the caller to log.
    pub warnings: Vec<String>,
}

/// `oxcd --version`: oxcd's version and the etcd API version it serves.
pub fn version_text() -> String {
    format!(
        "oxcd Version: {}\netcd API version: {ETCD_API_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Loads the configuration from this process's arguments and environment.
pub fn load_from_process() -> Result<Action, ConfigError> {
    let env = std::env::vars_os()
        .map(|(key, value)| {
            (
                key.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect::<Vec<_>>();
    load(std::env::args_os(), &env)
}

/// Loads the configuration from `args` (including the program name, as `std::env::args_os`
/// gives them) and `env` (name, value pairs in environment order).
pub fn load<I, T>(args: I, env: &[(String, String)]) -> Result<Action, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command_line = match flags::parse_command_line(args)? {
        CommandLine::Help(text) => return Ok(Action::PrintHelp(text)),
        CommandLine::Version => return Ok(Action::PrintVersion(version_text())),
        CommandLine::Flags(values) => values,
    };
    let mut warnings = Vec::new();
    let config_file = command_line
        .get("config-file")
        .filter(|path| !path.is_empty())
        .or_else(|| {
            let key = flags::env_key("config-file");
            env.iter()
                .find(|(k, v)| *k == key && !v.is_empty())
                .map(|(_, v)| v)
        })
        .map(PathBuf::from);
    let settings = match &config_file {
        Some(path) => {
            warn_ignored_in_file_mode(path, &command_line, env, &mut warnings);
            file::settings_from_file(path, &mut warnings)?
        }
        None => settings_from_flags_and_env(&command_line, env, &mut warnings)?,
    };
    let config = settings.into_config(config_file, &mut warnings)?;
    Ok(Action::Run(Box::new(Loaded { config, warnings })))
}

/// etcd's `configFromCmdLine`: defaults, then command-line flags, then `ETCD_*` for flags not
/// on the command line; listening on explicit client URLs requires advertising explicit ones.
fn settings_from_flags_and_env(
    command_line: &std::collections::BTreeMap<&'static str, String>,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<Settings, ConfigError> {
    let mut settings = Settings::flag_defaults();
    for (name, value) in command_line
        .iter()
        .filter(|(name, _)| **name != "config-file")
    {
        settings.set(name, value).map_err(|err| {
            // Go's flag package words a bad boolean differently from other bad values.
            let message = match flags::find(name) {
                Some(spec) if spec.kind == flags::Kind::Bool => {
                    format!("invalid boolean value {value:?} for -{name}: {err}")
                }
                _ => format!("invalid value {value:?} for flag -{name}: {err}"),
            };
            ConfigError::Usage(message)
        })?;
    }
    let given: BTreeSet<&'static str> = command_line.keys().copied().collect();
    let from_env = flags::apply_env(&given, env)?;
    for (name, value) in from_env
        .values
        .iter()
        .filter(|(name, _)| **name != "config-file")
    {
        settings.set(name, value).map_err(|err| {
            let key = flags::env_key(name);
            ConfigError::Verify(format!("invalid value {value:?} for {key}: {err}"))
        })?;
    }
    warnings.extend(from_env.warnings);
    let is_set = |name| given.contains(name) || from_env.values.contains_key(name);
    if is_set("listen-client-urls") && !is_set("advertise-client-urls") {
        settings.advertise_client_urls.clear();
    }
    Ok(settings)
}

/// etcd ignores flags and variables when a config file is given; oxcd says which.
fn warn_ignored_in_file_mode(
    path: &Path,
    command_line: &std::collections::BTreeMap<&'static str, String>,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) {
    let config_key = flags::env_key("config-file");
    let ignored: Vec<String> = command_line
        .keys()
        .filter(|name| **name != "config-file")
        .map(|name| format!("--{name}"))
        .chain(
            env.iter()
                .filter(|(key, _)| key.starts_with("ETCD_") && *key != config_key)
                .map(|(key, _)| key.clone()),
        )
        .collect();
    if !ignored.is_empty() {
        warnings.push(format!(
            "loaded server configuration from {}; other command line flags and environment \
             variables are ignored: {}",
            path.display(),
            ignored.join(", ")
        ));
    }
}
