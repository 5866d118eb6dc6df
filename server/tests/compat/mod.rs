//! Shared machinery for `etcdctl_compat.rs`: a [`Pair`] of members — real etcd 3.4.23 and oxcd,
//! started with identical flags — that runs each etcdctl command against both and asserts the
//! outputs are equal once normalised.
//!
//! Normalisation removes only what legitimately differs between two independent members:
//! - member and cluster IDs (derived from the peer URL and a start time), wherever they appear:
//!   decimal, hex, or as a JSON number; both become placeholders, so a `leader` that is not the
//!   member's own ID still shows up as a difference;
//! - the ports each member listens on, and each side's scratch directory (snapshot files);
//! - in JSON lines: raft term and indexes, db sizes, the server `version` of `endpoint status`,
//!   durations (`took`), and the timestamp and connection `target` of etcdctl's log lines.
//!
//! Everything else — header revisions, values, counts, error text, gRPC codes in etcdctl's retry
//! log lines, exit statuses — must match byte for byte.

use std::path::Path;

use oxcd_tests::etcd::Flavor;
use oxcd_tests::Etcd;
use serde_json::Value;
use tempfile::TempDir;

/// JSON keys whose values differ between members for legitimate reasons (raft bookkeeping, the
/// size of the backend file, timing, the server's own version string in `endpoint status`).
const BLANKED_KEYS: &[&str] = &[
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
    "took",
    "size",
];

/// Keys of etcdctl's own log lines that identify one run, not the server's answer.
const DROPPED_KEYS: &[&str] = &["ts", "target"];

/// What one etcdctl run did, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    /// The exit code (`None` if etcdctl died of a signal).
    pub code: Option<i32>,
}

impl Run {
    /// The first stdout line that is JSON, parsed (after any `txn -i` prompts).
    pub fn json(&self) -> Value {
        self.stdout
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON line in stdout:\n{}", self.stdout))
    }
}

/// One member and what is needed to normalise etcdctl's view of it.
pub struct Side {
    pub member: Etcd,
    scratch: TempDir,
    member_id: u64,
    cluster_id: u64,
    /// (text, placeholder), longest first so no replacement eats part of a longer one.
    replacements: Vec<(String, &'static str)>,
}

impl Side {
    fn new(member: Etcd) -> Side {
        let listed = member
            .ctl(&["member", "list", "-w", "json"])
            .unwrap_or_else(|e| panic!("member list on {}: {e}", member.flavor().name()));
        let listed: Value = serde_json::from_str(&listed).expect("member list -w json is JSON");
        let header_id = |key: &str| {
            listed["header"][key]
                .as_u64()
                .unwrap_or_else(|| panic!("member list header lacks {key}: {listed}"))
        };
        let (member_id, cluster_id) = (header_id("member_id"), header_id("cluster_id"));
        let scratch = tempfile::Builder::new()
            .prefix("oxcd-compat-")
            .tempdir()
            .expect("scratch dir");
        let mut replacements = vec![
            (scratch.path().display().to_string(), "<scratch>"),
            (authority(member.client_url()), "<client>"),
            (authority(member.peer_url()), "<peer>"),
            (member_id.to_string(), "<member-id>"),
            (cluster_id.to_string(), "<cluster-id>"),
            (format!("{member_id:x}"), "<member-id>"),
            (format!("{cluster_id:x}"), "<cluster-id>"),
        ];
        replacements.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        Side {
            member,
            scratch,
            member_id,
            cluster_id,
            replacements,
        }
    }

    /// Shows `text` as `placeholder` in every later output of this side (IDs the server chose,
    /// such as lease IDs).
    #[allow(dead_code)] // etcdctl_compat.rs has no server-chosen IDs; lease_compat.rs does
    pub fn alias(&mut self, text: String, placeholder: &'static str) {
        self.replacements.push((text, placeholder));
        self.replacements
            .sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
    }

    /// A path inside this side's scratch dir (shown as `<scratch>/NAME` once normalised).
    pub fn scratch_path(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    /// Runs etcdctl against this member and normalises what it printed; `blank` names extra JSON
    /// keys to blank for this command.
    pub fn run(&self, args: &[&str], stdin: Option<&str>, blank: &[&str]) -> Run {
        let output = self
            .member
            .ctl_output(args, stdin)
            .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?}: {e}"));
        Run {
            stdout: self.normalise(&String::from_utf8_lossy(&output.stdout), blank),
            stderr: self.normalise(&String::from_utf8_lossy(&output.stderr), blank),
            code: output.status.code(),
        }
    }

    /// Runs etcdctl and panics unless it succeeds; returns the normalised stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.run(args, stdin, &[]);
        assert_eq!(
            run.code,
            Some(0),
            "etcdctl {args:?} failed on {}: {run:?}",
            self.member.flavor().name()
        );
        run.stdout
    }

    /// The member's current revision, from a `get` response header.
    pub fn revision(&self) -> i64 {
        let out = self.ok(&["get", "revision-probe", "-w", "json"], None);
        let value: Value = serde_json::from_str(&out).expect("get -w json is JSON");
        value["header"]["revision"]
            .as_i64()
            .unwrap_or_else(|| panic!("no header revision in {value}"))
    }

    /// Normalises what an etcdctl this test ran itself (in the background) printed, as
    /// [`Side::run`] normalises its output.
    #[allow(dead_code)] // concurrency_compat.rs runs long-lived etcdctl processes of its own
    pub fn normalise_text(&self, text: &str) -> String {
        self.normalise(text, &[])
    }

    /// Normalises each line: JSON lines structurally, others by text replacement.
    fn normalise(&self, text: &str, blank: &[&str]) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            match serde_json::from_str::<Value>(body) {
                Ok(mut value @ (Value::Object(_) | Value::Array(_))) => {
                    self.normalise_json(&mut value, blank);
                    out.push_str(&value.to_string());
                }
                _ => out.push_str(&self.replace_text(body)),
            }
            out.push_str(end);
        }
        out
    }

    fn normalise_json(&self, value: &mut Value, blank: &[&str]) {
        match value {
            Value::Object(map) => {
                for key in DROPPED_KEYS {
                    map.remove(*key);
                }
                // `version` is the server's version only in a StatusResponse; elsewhere it is a
                // key's version and must match.
                let is_status = map.contains_key("raftIndex");
                for (key, field) in map.iter_mut() {
                    let key = key.as_str();
                    if BLANKED_KEYS.contains(&key)
                        || blank.contains(&key)
                        || (is_status && key == "version")
                    {
                        *field = Value::String(format!("<{key}>"));
                    } else {
                        self.normalise_json(field, blank);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.normalise_json(v, blank)),
            Value::Number(n) if n.as_u64() == Some(self.member_id) => {
                *value = Value::String("<member-id>".into());
            }
            Value::Number(n) if n.as_u64() == Some(self.cluster_id) => {
                *value = Value::String("<cluster-id>".into());
            }
            Value::String(s) => *s = self.replace_text(s),
            _ => {}
        }
    }

    fn replace_text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.replacements {
            text = text.replace(from.as_str(), to);
        }
        text
    }
}

/// `http://127.0.0.1:2379` -> `127.0.0.1:2379` (etcdctl prints both forms).
fn authority(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_string()
}

/// Real etcd and oxcd side by side.
pub struct Pair {
    pub etcd: Side,
    pub oxcd: Side,
}

impl Pair {
    /// Starts etcd and oxcd concurrently with the standard flags plus `extra_args`.
    pub fn start(extra_args: &[&str]) -> Pair {
        let oxcd_flavor = Flavor::Binary(Path::new(env!("CARGO_BIN_EXE_oxcd")).to_path_buf());
        let start = |flavor: Flavor| {
            let name = flavor.name();
            Etcd::start_with_args(flavor, extra_args)
                .unwrap_or_else(|e| panic!("start {name} with {extra_args:?}: {e}"))
        };
        let (etcd, oxcd) = std::thread::scope(|s| {
            let etcd = s.spawn(|| start(Flavor::Etcd));
            let oxcd = s.spawn(|| start(oxcd_flavor));
            (etcd.join(), oxcd.join())
        });
        let (etcd, oxcd) = match (etcd, oxcd) {
            (Ok(etcd), Ok(oxcd)) => (etcd, oxcd),
            (Err(panic), _) | (_, Err(panic)) => std::panic::resume_unwind(panic),
        };
        Pair {
            etcd: Side::new(etcd),
            oxcd: Side::new(oxcd),
        }
    }

    /// Runs `etcdctl ARGS` against both and asserts equal normalised stdout, stderr and exit
    /// code; returns etcd's run.
    pub fn run(&self, args: &[&str]) -> Run {
        self.compare(args, None, &[])
    }

    /// Like [`Pair::run`], asserting etcdctl succeeded; returns the normalised stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "etcdctl {args:?} failed on both: {run:?}"
        );
        run.stdout
    }

    /// Like [`Pair::run`], asserting etcdctl failed; returns the normalised run.
    pub fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_ne!(
            run.code,
            Some(0),
            "etcdctl {args:?} succeeded on both: {run:?}"
        );
        run
    }

    /// Like [`Pair::run`], feeding `stdin` to etcdctl and blanking the extra JSON keys `blank`.
    pub fn compare(&self, args: &[&str], stdin: Option<&str>, blank: &[&str]) -> Run {
        let want = self.etcd.run(args, stdin, blank);
        let got = self.oxcd.run(args, stdin, blank);
        assert_same(args, &want, &got);
        want
    }
}

/// Panics, showing both sides, unless the two normalised runs are equal.
pub fn assert_same(args: &[&str], want: &Run, got: &Run) {
    if want != got {
        panic!(
            "etcdctl {} differs\n--- etcd (exit {:?}) stdout:\n{}\n--- etcd stderr:\n{}\n\
             --- oxcd (exit {:?}) stdout:\n{}\n--- oxcd stderr:\n{}",
            args.join(" "),
            want.code,
            clip(&want.stdout),
            clip(&want.stderr),
            got.code,
            clip(&got.stdout),
            clip(&got.stderr),
        );
    }
}

/// Long outputs are cut so a failure message stays readable.
fn clip(text: &str) -> &str {
    const MAX: usize = 4000;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// The cells of a `-w table` output, trimmed, without the border lines: column widths depend
/// on the length of normalised-away IDs, cell contents do not.
pub fn table_cells(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}
