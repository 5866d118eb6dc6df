//! `--config-file`: etcd's YAML configuration file, read as etcd 3.4 reads it
//! (`embed.ConfigFromFile`): keys are the flag names (`name`, `data-dir`, `listen-client-urls`,
//! `initial-cluster`, ...), matched case-insensitively as Go's JSON decoder matches them; a null
//! value leaves the default; a YAML scalar is accepted for a text setting whatever its YAML type
//! (`auto-compaction-retention: 1` means "1"); numeric settings need YAML integers in range;
//! boolean settings (`pre-vote`, `strict-reconfig-check`, `initial-election-tick-advance`) need
//! YAML booleans, including YAML 1.1's `yes`/`no`/`on`/`off`/`y`/`n`, which etcd's YAML library
//! reads as booleans (a quoted `"true"` is a string and refused, as etcd refuses it).
//!
//! When several keys have the wrong type, the one reported is the first in key order, because
//! etcd converts the YAML to JSON (whose object keys Go sorts) and Go's JSON decoder reports the
//! earliest type error.
//!
//! URL lists are parsed after every key is read, in etcd's order (listen-peer, listen-client,
//! initial-advertise-peer, advertise-client), so a file with several problems reports the one
//! etcd would. Keys oxcd does not implement are ignored, as etcd ignores unknown keys, but are
//! named in one warning so an operator knows they had no effect.

use std::path::Path;

use serde_yaml::Value;

use super::flags::{self, Kind};
use super::settings::Settings;
use super::ConfigError;

/// Reads `path` into settings (file defaults + the file's keys). Validation is the caller's.
pub(crate) fn settings_from_file(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::Verify(format!("open {}: {}", path.display(), go_io_error(&err)))
    })?;
    settings_from_yaml(&text, warnings)
}

/// Parses YAML text into settings (see the module docs for the rules).
pub(crate) fn settings_from_yaml(
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<Settings, ConfigError> {
    let document: Value = serde_yaml::from_str(text)
        .map_err(|err| ConfigError::Verify(format!("error converting YAML to JSON: {err}")))?;
    let mut settings = Settings::file_defaults();
    let mapping = match document {
        Value::Null => return Ok(settings),
        Value::Mapping(mapping) => mapping,
        other => {
            return Err(ConfigError::Verify(format!(
                "error unmarshaling JSON: json: cannot unmarshal {} into Go value of type \
                 embed.configYAML",
                json_kind(&other)
            )))
        }
    };
    let mut entries: Vec<(String, Value)> = mapping
        .into_iter()
        .map(|(key, value)| {
            let key_text = match &key {
                Value::String(text) => text.clone(),
                other => scalar_text(other).unwrap_or_default(),
            };
            (key_text, value)
        })
        .collect();
    // JSON key order, so the first type error is the one etcd reports (see the module docs).
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut url_texts: Vec<(&'static str, String)> = Vec::new();
    let mut ignored = Vec::new();
    for (key_text, value) in entries {
        let spec = flags::FLAGS
            .iter()
            .find(|spec| spec.name != "config-file" && spec.name.eq_ignore_ascii_case(&key_text));
        let Some(spec) = spec else {
            ignored.push(key_text);
            continue;
        };
        let value = untag(value);
        if value.is_null() {
            continue;
        }
        let text = typed_text(spec.name, spec.kind, &value)?;
        match spec.kind {
            Kind::Urls => url_texts.push((spec.name, text)),
            // etcd's file loader stores the state as given; Validate judges it.
            Kind::ClusterState => settings.initial_cluster_state = text,
            _ => settings
                .set(spec.name, &text)
                .map_err(ConfigError::Verify)?,
        }
    }
    for name in [
        "listen-peer-urls",
        "listen-client-urls",
        "initial-advertise-peer-urls",
        "advertise-client-urls",
    ] {
        let Some((_, text)) = url_texts
            .iter()
            .find(|(key, text)| *key == name && !text.is_empty())
        else {
            continue;
        };
        settings.set(name, text).map_err(|err| {
            ConfigError::Setup(format!("unexpected error setting up {name}: {err}"))
        })?;
    }
    if settings.initial_cluster_state.is_empty() {
        settings.initial_cluster_state = "new".to_string();
    }
    if !ignored.is_empty() {
        warnings.push(format!(
            "config file keys not supported by oxcd were ignored: {}",
            ignored.join(", ")
        ));
    }
    Ok(settings)
}

/// The value as the text `Settings::set` takes, checking its YAML type against the setting's
/// Go type with the JSON decoder's wording.
fn typed_text(name: &str, kind: Kind, value: &Value) -> Result<String, ConfigError> {
    let go_type = match kind {
        Kind::Unsigned(go_type) => go_type,
        Kind::Signed => "int64",
        Kind::Duration => "time.Duration",
        Kind::Bool => "bool",
        Kind::Text | Kind::Urls | Kind::ClusterState => "string",
    };
    let number_fits = match (kind, value) {
        (Kind::Unsigned(_), Value::Number(n)) => n.as_u64().map(|v| v.to_string()),
        (Kind::Signed, Value::Number(n)) => n.as_i64().map(|v| v.to_string()),
        (Kind::Duration, Value::Number(n)) => n.as_i64().map(|nanos| format!("{nanos}ns")),
        (Kind::Unsigned(_) | Kind::Signed | Kind::Duration, _) => None,
        (Kind::Bool, Value::Bool(flag)) => Some(flag.to_string()),
        (Kind::Bool, Value::String(text)) => yaml_1_1_bool(text).map(|flag| flag.to_string()),
        (Kind::Bool, _) => None,
        (_, scalar) => scalar_text(scalar),
    };
    number_fits.ok_or_else(|| {
        let what = match value {
            // Go names the number only for numeric targets.
            Value::Number(_) if kind == Kind::Bool => "number".to_string(),
            Value::Number(n) => format!("number {n}"),
            other => json_kind(other).to_string(),
        };
        ConfigError::Verify(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {what} into Go \
             struct field configYAML.{name} of type {go_type}"
        ))
    })
}

/// The YAML 1.1 boolean words etcd's YAML library (yaml.v2) accepts beyond YAML 1.2's
/// `true`/`false`, which serde_yaml already reads as booleans. serde_yaml cannot say whether
/// the word was quoted, so a quoted `"yes"` is accepted too, where etcd would refuse it.
fn yaml_1_1_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A YAML scalar as text; `None` for sequences and mappings.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null => Some(String::new()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

fn untag(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => untag(tagged.value),
        other => other,
    }
}

/// The JSON type name Go's decoder uses in its errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "array",
        Value::Mapping(_) => "object",
        Value::Tagged(tagged) => json_kind(&tagged.value),
    }
}

/// Go's wording for the common `open` failures.
fn go_io_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::url::join_urls;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        settings_from_yaml(text, &mut Vec::new())
    }

    #[test]
    fn reads_etcds_keys() {
        // Proves every supported key is read under etcd's name, with scalars taken as text and
        // keys matched without regard to case.
        let settings = parse(
            "name: n1\ndata-dir: /d\nwal-dir: /w\nsnapshot-count: 10\nmax-snapshots: 1\n\
             max-wals: 2\nheartbeat-interval: 50\nelection-timeout: 500\n\
             quota-backend-bytes: -1\nmax-txn-ops: 7\nmax-request-bytes: 0x10\n\
             listen-peer-urls: http://127.0.0.1:1,http://127.0.0.1:2\n\
             listen-client-urls: http://127.0.0.1:3\n\
             initial-advertise-peer-urls: http://h:1\nadvertise-client-urls: http://h:3\n\
             initial-cluster: n1=http://h:1\ninitial-cluster-token: tok\n\
             initial-cluster-state: existing\nauto-compaction-mode: revision\n\
             auto-compaction-retention: 100\nLog-Level: debug\n",
        )
        .unwrap();
        assert_eq!(settings.name, "n1");
        assert_eq!(
            (settings.data_dir.as_str(), settings.wal_dir.as_str()),
            ("/d", "/w")
        );
        assert_eq!(
            (
                settings.snapshot_count,
                settings.max_snapshots,
                settings.max_wals
            ),
            (10, 1, 2)
        );
        assert_eq!(
            (settings.heartbeat_interval_ms, settings.election_timeout_ms),
            (50, 500)
        );
        assert_eq!(settings.quota_backend_bytes, -1);
        assert_eq!((settings.max_txn_ops, settings.max_request_bytes), (7, 16));
        assert_eq!(
            join_urls(&settings.listen_peer_urls),
            "http://127.0.0.1:1,http://127.0.0.1:2"
        );
        assert_eq!(
            join_urls(&settings.listen_client_urls),
            "http://127.0.0.1:3"
        );
        assert_eq!(
            join_urls(&settings.initial_advertise_peer_urls),
            "http://h:1"
        );
        assert_eq!(join_urls(&settings.advertise_client_urls), "http://h:3");
        assert_eq!(settings.initial_cluster, "n1=http://h:1");
        assert_eq!(settings.initial_cluster_token, "tok");
        assert_eq!(settings.initial_cluster_state, "existing");
        assert_eq!(settings.auto_compaction_mode, "revision");
        assert_eq!(settings.auto_compaction_retention, "100");
        assert_eq!(settings.log_level, "debug");
    }

    #[test]
    fn empty_and_null_keep_defaults() {
        // Proves an empty file, null values and empty URL strings leave etcd's file defaults.
        for text in [
            "",
            "# nothing\n",
            "name:\nlisten-client-urls: ''\ninitial-cluster-state: ''\n",
        ] {
            let settings = parse(text).unwrap();
            assert_eq!(settings.name, "default");
            assert_eq!(
                join_urls(&settings.listen_client_urls),
                "http://localhost:2379"
            );
            assert_eq!(settings.initial_cluster_state, "new");
            assert_eq!(settings.auto_compaction_mode, "");
        }
    }

    #[test]
    fn type_and_url_errors() {
        // Proves wrong YAML types and bad URLs fail with etcd's wording, not silently.
        let err = |text: &str| parse(text).err().unwrap().to_string();
        assert!(err("snapshot-count: abc\n").contains(
            "cannot unmarshal string into Go struct field configYAML.snapshot-count of type uint64"
        ));
        assert!(err("max-wals: -1\n").contains(
            "cannot unmarshal number -1 into Go struct field configYAML.max-wals of type uint"
        ));
        assert!(err("name: [a]\n")
            .contains("cannot unmarshal array into Go struct field configYAML.name"));
        assert!(
            err("- a\n").contains("cannot unmarshal array into Go value of type embed.configYAML")
        );
        assert!(err("name: [\n").contains("error converting YAML to JSON"));
        assert_eq!(
            parse("listen-client-urls: localhost:2379\n").err().unwrap(),
            ConfigError::Setup(
                "unexpected error setting up listen-client-urls: URL scheme must be http, https, \
                 unix, or unixs: localhost:2379"
                    .into()
            )
        );
    }

    #[test]
    fn unsupported_keys_warn() {
        // Proves keys oxcd does not implement are ignored but named in one warning.
        let mut warnings = Vec::new();
        settings_from_yaml("enable-v2: true\nlogger: zap\nname: x\n", &mut warnings).unwrap();
        assert_eq!(
            warnings,
            vec!["config file keys not supported by oxcd were ignored: enable-v2, logger"]
        );
    }
}
