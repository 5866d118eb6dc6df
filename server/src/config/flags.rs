//! The command line: the table of etcd flags oxcd accepts, the clap command built from it, and
//! the translation of clap's outcomes into etcd's behaviour and wording.
//!
//! etcd parses flags with Go's `flag` package, so `--flag value`, `--flag=value`, `-flag value`
//! and `-flag=value` are all the same flag, a repeated flag keeps its last value, and values may
//! start with `-`. Syntax errors use that package's words ("flag provided but not defined: -x")
//! and exit 2; etcd's own checks afterwards exit 1.
//!
//! Boolean flags follow the same package: `--pre-vote` alone means true, a value must be
//! attached (`--pre-vote=false`), and `--pre-vote false` leaves `false` as a stray argument,
//! which etcd refuses ("'false' is not a valid flag").
//!
//! Environment variables are handled here too because their rules are the flag package's
//! (`pkg/flags.SetFlagsFromEnv`): `ETCD_<FLAG_NAME>` applies only to flags absent from the command
//! line, an empty value counts as unset, a variable shadowed by a command-line flag is fatal, and
//! unrecognised `ETCD_*` variables are warned about.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use super::ConfigError;

/// How a flag's value is read (from the command line, `ETCD_*` or a YAML config file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Free text (a YAML scalar of any type is taken as text, as etcd's YAML loader does).
    Text,
    /// Unsigned integer; the name is the Go type, used in config-file type errors.
    Unsigned(&'static str),
    /// Signed 64-bit integer.
    Signed,
    /// Comma-separated URL list.
    Urls,
    /// `new` or `existing`.
    ClusterState,
    /// A Go duration (`10m`, `1.5s`); in a config file, integer nanoseconds, as Go's YAML
    /// loader reads a `time.Duration`.
    Duration,
    /// A Go `bool` (`strconv.ParseBool`); on the command line the flag alone means true and a
    /// value needs `=`; in a config file, a YAML boolean.
    Bool,
}

/// One etcd flag: its name (also its YAML key and, upper-cased, its `ETCD_*` variable), its
/// value kind, the default etcd's help shows, the help text, and its help section.
pub(crate) struct FlagSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub shown_default: &'static str,
    pub help: &'static str,
    pub section: &'static str,
}

const MEMBER: &str = "Member";
const CLUSTERING: &str = "Clustering";
const LOGGING: &str = "Logging";
const CONFIG: &str = "Configuration file";

/// The flags oxcd accepts, in the order etcd's help lists them.
pub(crate) const FLAGS: &[FlagSpec] = &[
    flag(
        "name",
        Kind::Text,
        "default",
        "Human-readable name for this member.",
        MEMBER,
    ),
    flag(
        "data-dir",
        Kind::Text,
        "${name}.oxcd",
        "Path to the data directory.",
        MEMBER,
    ),
    flag(
        "wal-dir",
        Kind::Text,
        "",
        "Path to the dedicated wal directory.",
        MEMBER,
    ),
    flag(
        "snapshot-count",
        Kind::Unsigned("uint64"),
        "100000",
        "Number of committed transactions to trigger a snapshot to disk.",
        MEMBER,
    ),
    flag(
        "heartbeat-interval",
        Kind::Unsigned("uint"),
        "100",
        "Time (in milliseconds) of a heartbeat interval.",
        MEMBER,
    ),
    flag(
        "election-timeout",
        Kind::Unsigned("uint"),
        "1000",
        "Time (in milliseconds) for an election to timeout.",
        MEMBER,
    ),
    flag(
        "initial-election-tick-advance",
        Kind::Bool,
        "true",
        "Whether to fast-forward initial election ticks on boot for faster election.",
        MEMBER,
    ),
    flag(
        "listen-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of URLs to listen on for peer traffic.",
        MEMBER,
    ),
    flag(
        "listen-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of URLs to listen on for client traffic.",
        MEMBER,
    ),
    flag(
        "max-snapshots",
        Kind::Unsigned("uint"),
        "5",
        "Maximum number of snapshot files to retain (0 is unlimited).",
        MEMBER,
    ),
    flag(
        "max-wals",
        Kind::Unsigned("uint"),
        "5",
        "Maximum number of wal files to retain (0 is unlimited).",
        MEMBER,
    ),
    flag(
        "quota-backend-bytes",
        Kind::Signed,
        "0",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
        MEMBER,
    ),
    flag(
        "max-txn-ops",
        Kind::Unsigned("uint"),
        "128",
        "Maximum number of operations permitted in a transaction.",
        MEMBER,
    ),
    flag(
        "max-request-bytes",
        Kind::Unsigned("uint"),
        "1572864",
        "Maximum client request size in bytes the server will accept.",
        MEMBER,
    ),
    flag(
        "initial-advertise-peer-urls",
        Kind::Urls,
        "http://localhost:2380",
        "List of this member's peer URLs to advertise to the rest of the cluster.",
        CLUSTERING,
    ),
    flag(
        "initial-cluster",
        Kind::Text,
        "default=http://localhost:2380",
        "Initial cluster configuration for bootstrapping.",
        CLUSTERING,
    ),
    flag(
        "initial-cluster-state",
        Kind::ClusterState,
        "new",
        "Initial cluster state ('new' or 'existing').",
        CLUSTERING,
    ),
    flag(
        "initial-cluster-token",
        Kind::Text,
        "etcd-cluster",
        "Initial cluster token for the etcd cluster during bootstrap.",
        CLUSTERING,
    ),
    flag(
        "advertise-client-urls",
        Kind::Urls,
        "http://localhost:2379",
        "List of this member's client URLs to advertise to the public.",
        CLUSTERING,
    ),
    flag(
        "strict-reconfig-check",
        Kind::Bool,
        "true",
        "Reject reconfiguration requests that would cause quorum loss.",
        CLUSTERING,
    ),
    flag(
        "pre-vote",
        Kind::Bool,
        "false",
        "Enable to run an additional Raft election phase.",
        CLUSTERING,
    ),
    flag(
        "auto-compaction-retention",
        Kind::Text,
        "0",
        "Auto compaction retention length. 0 means disable auto compaction.",
        CLUSTERING,
    ),
    flag(
        "auto-compaction-mode",
        Kind::Text,
        "periodic",
        "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for \
         duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). \
         'revision' for revision number based retention.",
        CLUSTERING,
    ),
    flag(
        "experimental-watch-progress-notify-interval",
        Kind::Duration,
        "10m0s",
        "Duration of periodic watch progress notifications.",
        MEMBER,
    ),
    flag(
        "log-level",
        Kind::Text,
        "info",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
        LOGGING,
    ),
    flag(
        "config-file",
        Kind::Text,
        "",
        "Path to the server configuration file (YAML, etcd's keys). Note that if a \
         configuration file is provided, other command line flags and environment variables \
         will be ignored.",
        CONFIG,
    ),
];

const fn flag(
    name: &'static str,
    kind: Kind,
    shown_default: &'static str,
    help: &'static str,
    section: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        shown_default,
        help,
        section,
    }
}

/// The flag named `name`, if oxcd accepts it.
pub(crate) fn find(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|spec| spec.name == name)
}

/// The environment variable for a flag: `ETCD_` + upper case, `-` → `_`.
pub(crate) fn env_key(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// What the command line asked for.
pub(crate) enum CommandLine {
    /// `--help` / `-h`: the rendered help.
    Help(String),
    /// `--version`.
    Version,
    /// Start a member with these flags (name → last value given), in table order.
    Flags(BTreeMap<&'static str, String>),
}

/// Parses the command line (`args` includes the program name) into flag values, help or
/// version. Syntax errors come back in the Go flag package's words.
pub(crate) fn parse_command_line(args: Vec<OsString>) -> Result<CommandLine, ConfigError> {
    let args = normalize_single_dash(args);
    let matches = match command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(err) if err.kind() == ErrorKind::DisplayHelp => {
            return Ok(CommandLine::Help(err.render().to_string()));
        }
        Err(err) => return Err(translate_clap_error(&err)),
    };
    if matches.get_flag("version") {
        return Ok(CommandLine::Version);
    }
    let mut values = BTreeMap::new();
    for spec in FLAGS {
        if let Some(value) = matches.get_one::<String>(spec.name) {
            values.insert(spec.name, value.clone());
        }
    }
    Ok(CommandLine::Flags(values))
}

/// The clap command: one long option per table entry, plus `--version` and clap's `--help`.
fn command() -> Command {
    let mut command = Command::new("oxcd")
        .about("oxcd: an etcd v3 compatible key-value store member. Flags and ETCD_* variables as etcd 3.4's.")
        .disable_version_flag(true)
        .args_override_self(true)
        .after_help(
            "Every flag may also be set by its ETCD_* environment variable (--data-dir: \
             ETCD_DATA_DIR); a flag given on the command line must not also be set that way.",
        );
    for spec in FLAGS {
        let help = if spec.shown_default.is_empty() {
            spec.help.to_string()
        } else {
            format!("{} [default: {}]", spec.help, spec.shown_default)
        };
        let arg = Arg::new(spec.name)
            .long(spec.name)
            .value_name(value_name(spec.kind))
            .help(help)
            .help_heading(spec.section);
        let arg = match spec.kind {
            // Go's boolean flags: alone means true; a value only with `=`.
            Kind::Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true"),
            _ => arg.num_args(1).allow_hyphen_values(true),
        };
        command = command.arg(arg);
    }
    command.arg(
        Arg::new("version")
            .long("version")
            .action(ArgAction::SetTrue)
            .help("Print the version and exit."),
    )
}

fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "VALUE",
        Kind::Unsigned(_) | Kind::Signed => "N",
        Kind::Duration => "DURATION",
        Kind::Urls => "URLS",
        Kind::ClusterState => "new|existing",
        Kind::Bool => "BOOL",
    }
}

/// Go's flag package treats `-name` like `--name`; clap only knows `--name`. Rewrites every
/// multi-letter single-dash token as its double-dash form, skipping tokens that are the value
/// of a preceding flag (`--initial-cluster -x` keeps `-x` as the value). A boolean flag never
/// takes the next token as its value.
fn normalize_single_dash(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_value = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || next_is_value {
            next_is_value = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        let body = match text.strip_prefix("--") {
            Some(body) => body,
            None => match text.strip_prefix('-') {
                Some(body) if body.len() > 1 => body,
                _ => {
                    out.push(arg);
                    continue;
                }
            },
        };
        let (name, has_inline_value) = match body.split_once('=') {
            Some((name, _)) => (name, true),
            None => (body, false),
        };
        let known_value_flag = find(name).is_some_and(|spec| spec.kind != Kind::Bool);
        next_is_value = known_value_flag && !has_inline_value;
        // Go has no short-flag bundling: `-abc` is the flag `abc`, known or not.
        if !text.starts_with("--") {
            out.push(OsString::from(format!("-{text}")));
        } else {
            out.push(arg);
        }
    }
    out
}

/// Maps a clap error to etcd's words: Go's flag package for syntax (exit 2), etcd's own
/// "'x' is not a valid flag" for a stray argument (exit 1).
fn translate_clap_error(err: &clap::Error) -> ConfigError {
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(text)) => text.clone(),
        _ => String::new(),
    };
    let invalid_arg = context(ContextKind::InvalidArg);
    let flag_name = invalid_arg
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('-')
        .split('=')
        .next()
        .unwrap_or("")
        .to_string();
    match err.kind() {
        ErrorKind::UnknownArgument if !invalid_arg.starts_with('-') => {
            ConfigError::Verify(format!("'{invalid_arg}' is not a valid flag"))
        }
        ErrorKind::UnknownArgument => {
            ConfigError::Usage(format!("flag provided but not defined: -{flag_name}"))
        }
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
            ConfigError::Usage(format!("flag needs an argument: -{flag_name}"))
        }
        _ => {
            let rendered = err.render().to_string();
            let first_line = rendered.lines().next().unwrap_or("invalid command line");
            ConfigError::Usage(first_line.trim_start_matches("error: ").to_string())
        }
    }
}

/// The outcome of applying `ETCD_*` variables on top of the command line.
pub(crate) struct EnvApplied {
    /// Flags set from the environment (name → value).
    pub values: BTreeMap<&'static str, String>,
    /// One line per unrecognised `ETCD_*` variable, as etcd warns.
    pub warnings: Vec<String>,
}

/// etcd's `SetFlagsFromEnv` for the flags oxcd accepts. `from_command_line` names the flags
/// given on the command line. The fatal "shadowed" condition comes back as an error.
pub(crate) fn apply_env(
    from_command_line: &BTreeSet<&'static str>,
    env: &[(String, String)],
) -> Result<EnvApplied, ConfigError> {
    let lookup: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut values = BTreeMap::new();
    let mut used_keys = BTreeSet::new();
    let mut shadowed_keys = BTreeSet::new();
    let mut sorted: Vec<&'static FlagSpec> = FLAGS.iter().collect();
    sorted.sort_by_key(|spec| spec.name);
    for spec in sorted {
        let key = env_key(spec.name);
        if from_command_line.contains(spec.name) {
            shadowed_keys.insert(key);
            continue;
        }
        if let Some(value) = lookup.get(key.as_str()).filter(|value| !value.is_empty()) {
            values.insert(spec.name, value.to_string());
            used_keys.insert(key);
        }
    }
    let mut warnings = Vec::new();
    for (key, value) in env {
        if used_keys.contains(key) {
            continue;
        }
        if shadowed_keys.contains(key) {
            return Err(ConfigError::Setup(format!(
                "conflicting environment variable {key:?} is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
            )));
        }
        if key.starts_with("ETCD_") {
            warnings.push(format!("unrecognized environment variable {key}={value}"));
        }
    }
    Ok(EnvApplied { values, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("oxcd")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn flags(list: &[&str]) -> Result<BTreeMap<&'static str, String>, ConfigError> {
        match parse_command_line(args(list))? {
            CommandLine::Flags(values) => Ok(values),
            _ => panic!("expected flags"),
        }
    }

    #[test]
    fn table_is_consistent() {
        // Proves the flag table has no duplicate names and every env key is derived mechanically.
        let names: BTreeSet<_> = FLAGS.iter().map(|spec| spec.name).collect();
        assert_eq!(names.len(), FLAGS.len());
        assert_eq!(
            env_key("initial-cluster-state"),
            "ETCD_INITIAL_CLUSTER_STATE"
        );
        command().debug_assert();
    }

    #[test]
    fn go_flag_spellings() {
        // Proves --f v, --f=v, -f v and -f=v all set the flag, the last repeat wins, and values
        // may start with a dash.
        let values = flags(&[
            "--name",
            "a",
            "-data-dir=/d",
            "-wal-dir",
            "/w",
            "--name=b",
            "--quota-backend-bytes",
            "-1",
            "--initial-cluster",
            "-name",
        ])
        .unwrap();
        assert_eq!(values["name"], "b");
        assert_eq!(values["data-dir"], "/d");
        assert_eq!(values["wal-dir"], "/w");
        assert_eq!(values["quota-backend-bytes"], "-1");
        assert_eq!(values["initial-cluster"], "-name");
        assert!(!values.contains_key("snapshot-count"));
    }

    #[test]
    fn syntax_errors_use_go_words() {
        // Proves unknown flags, missing values and stray words get etcd's messages and exit codes.
        let err = flags(&["--bogus"]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Usage("flag provided but not defined: -bogus".into())
        );
        assert_eq!(err.exit_code(), 2);
        let err = flags(&["-bogus=1"]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Usage("flag provided but not defined: -bogus".into())
        );
        let err = flags(&["--name"]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Usage("flag needs an argument: -name".into())
        );
        let err = flags(&["extra"]).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Verify("'extra' is not a valid flag".into())
        );
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn help_and_version() {
        // Proves --help, -help and -h render help and --version / -version are recognised.
        for spelling in ["--help", "-help", "-h"] {
            match parse_command_line(args(&[spelling])).unwrap() {
                CommandLine::Help(text) => {
                    assert!(text.contains("--initial-cluster-state"), "{text}")
                }
                _ => panic!("{spelling} should print help"),
            }
        }
        for spelling in ["--version", "-version"] {
            assert!(matches!(
                parse_command_line(args(&[spelling])).unwrap(),
                CommandLine::Version
            ));
        }
    }

    #[test]
    fn env_rules() {
        // Proves env applies only to flags not on the command line, skips empty values, warns on
        // unknown ETCD_ variables and refuses a variable shadowed by a flag.
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let none = BTreeSet::new();
        let applied = apply_env(
            &none,
            &env(&[
                ("ETCD_NAME", "n"),
                ("ETCD_WAL_DIR", ""),
                ("ETCD_FOO", "1"),
                ("HOME", "/"),
            ]),
        )
        .unwrap();
        assert_eq!(applied.values.get("name").map(String::as_str), Some("n"));
        assert!(!applied.values.contains_key("wal-dir"));
        // etcd warns about a set-but-empty variable too: it was not used.
        assert_eq!(
            applied.warnings,
            vec![
                "unrecognized environment variable ETCD_WAL_DIR=",
                "unrecognized environment variable ETCD_FOO=1"
            ]
        );
        let on_command_line: BTreeSet<&'static str> = ["name"].into_iter().collect();
        let err = apply_env(&on_command_line, &env(&[("ETCD_NAME", "n")]))
            .err()
            .unwrap();
        assert_eq!(
            err,
            ConfigError::Setup(
                "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding \
                 command-line flag (either unset environment variable or disable flag)"
                    .into()
            )
        );
    }
}
