//! oxcd's error table against etcd 3.4.23's own Go code.
//!
//! `tests/go/erroracle`, built offline against Debian's etcd sources in /usr/share/gocode (as
//! `scripts/go-build-offline.sh` builds every Go oracle), prints every `rpctypes.ErrGRPC*` status (name,
//! code, message) and every entry of v3rpc's `toGRPCErrorMap` (internal error, its text, and
//! the code and message grpc-go really sends for it). Both lists are complete by construction
//! on the Go side. Here every etcd 3.4 status must have an `EtcdError` variant with the same
//! name, code and message, every 3.4 variant must exist in etcd, and `INTERNAL_ERRORS` plus
//! `to_status` must reproduce etcd's map entry for entry. Without Go or the etcd sources the
//! test fails loudly: a compatibility claim that silently skips its proof is worse than none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxcd_server::api::{to_status, EtcdError, Since, INTERNAL_ERRORS};
use tonic::Code;

const GOPATH: &str = "/usr/share/gocode";
const RPCTYPES_ERROR_GO: &str = "src/go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes/error.go";

/// A status as the oracle prints it.
#[derive(Debug, PartialEq, Eq)]
struct GoStatus {
    code: Code,
    message: String,
}

/// An entry of etcd's `toGRPCErrorMap`.
#[derive(Debug, PartialEq, Eq)]
struct GoMapping {
    text: String,
    wire: GoStatus,
}

#[derive(Default)]
struct Oracle {
    /// `rpctypes` variable name -> declared status.
    rpctypes: BTreeMap<String, GoStatus>,
    /// Internal error name (`mvcc.ErrCompacted`) -> its mapping.
    togrpc: BTreeMap<String, GoMapping>,
}

/// Builds the Go oracle into this test's scratch dir with the project's offline Go build script
/// (Go's cache keeps rebuilds quick).
fn build_oracle() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = crate_dir.join("../scripts/go-build-offline.sh");
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("erroracle/erroracle");
    let status = Command::new("bash")
        .arg(&script)
        .arg(crate_dir.join("tests/go/erroracle"))
        .arg(&binary)
        .arg("go.etcd.io/etcd")
        .status()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        status.success(),
        "building tests/go/erroracle failed ({status}): this test needs Go (golang-go) and \
         etcd 3.4's Go sources (golang-etcd-server-dev) to prove error compatibility"
    );
    binary
}

fn go_code(field: &str) -> Code {
    Code::from_i32(field.parse().expect("oracle printed a non-numeric code"))
}

fn run_oracle() -> Oracle {
    let binary = build_oracle();
    let output = Command::new(&binary)
        .arg(Path::new(GOPATH).join(RPCTYPES_ERROR_GO))
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    assert!(
        output.status.success(),
        "erroracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("erroracle printed non-UTF-8");
    let mut oracle = Oracle::default();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let fresh = match fields[..] {
            ["rpctypes", name, code, message] => oracle
                .rpctypes
                .insert(
                    name.to_owned(),
                    GoStatus {
                        code: go_code(code),
                        message: message.to_owned(),
                    },
                )
                .is_none(),
            ["togrpc", name, text, code, message] => oracle
                .togrpc
                .insert(
                    name.to_owned(),
                    GoMapping {
                        text: text.to_owned(),
                        wire: GoStatus {
                            code: go_code(code),
                            message: message.to_owned(),
                        },
                    },
                )
                .is_none(),
            _ => panic!("unexpected oracle line {line:?}"),
        };
        assert!(fresh, "oracle printed {line:?} twice");
    }
    oracle
}

/// Compares the `rpctypes` statuses with the variants; returns the mismatches.
fn check_rpctypes(go: &BTreeMap<String, GoStatus>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut ours = BTreeMap::new();
    for &error in EtcdError::ALL {
        let spec = error.spec();
        if spec.since == Since::V3_4 {
            ours.insert(spec.go_name, error);
        }
    }
    for (name, status) in go {
        let Some(error) = ours.remove(name.as_str()) else {
            failures.push(format!("etcd's rpctypes.{name} has no EtcdError variant"));
            continue;
        };
        let spec = error.spec();
        if spec.code != status.code || spec.message != status.message {
            failures.push(format!(
                "{error:?}: oxcd has {:?} {:?}, etcd's rpctypes.{name} has {:?} {:?}",
                spec.code, spec.message, status.code, status.message
            ));
        }
    }
    for (name, error) in ours {
        failures.push(format!(
            "{error:?} claims etcd 3.4's rpctypes.{name}, which etcd lacks"
        ));
    }
    failures
}

/// Compares `toGRPCErrorMap` with `INTERNAL_ERRORS` and `to_status`; returns the mismatches.
fn check_togrpc(go: &BTreeMap<String, GoMapping>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut ours: BTreeMap<&str, _> = INTERNAL_ERRORS
        .iter()
        .map(|row| (row.go_name, row))
        .collect();
    for (name, mapping) in go {
        let Some(row) = ours.remove(name.as_str()) else {
            failures.push(format!(
                "etcd maps {name} ({:?}); INTERNAL_ERRORS lacks it",
                mapping.text
            ));
            continue;
        };
        if row.text != mapping.text {
            failures.push(format!(
                "{name}: oxcd's text {:?}, etcd's {:?}",
                row.text, mapping.text
            ));
        }
        let sent = to_status(mapping.text.as_str());
        let sent = GoStatus {
            code: sent.code(),
            message: sent.message().to_owned(),
        };
        if sent != mapping.wire {
            failures.push(format!(
                "{name}: oxcd sends {sent:?}, etcd sends {:?}",
                mapping.wire
            ));
        }
    }
    for name in ours.keys() {
        failures.push(format!(
            "INTERNAL_ERRORS maps {name}, which etcd's map lacks"
        ));
    }
    failures
}

#[test]
fn error_table_matches_etcd_go_sources() {
    // Proves every etcd 3.4.23 gRPC error and every togRPCError mapping is oxcd's, exactly.
    let oracle = run_oracle();
    assert!(
        oracle.rpctypes.len() > 40 && oracle.togrpc.len() > 40,
        "the oracle printed too little to prove anything"
    );
    let mut failures = check_rpctypes(&oracle.rpctypes);
    failures.extend(check_togrpc(&oracle.togrpc));
    assert!(
        failures.is_empty(),
        "error table differs from etcd's:\n{}",
        failures.join("\n")
    );
}
