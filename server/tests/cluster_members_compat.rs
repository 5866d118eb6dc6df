//! etcdctl 3.4.23's membership commands against a 3-member real etcd 3.4.23 cluster and a
//! 3-member oxcd cluster started by the same test (`cluster_pair::ClusterPair`): `member add`
//! (voter and learner; simple, json and table output), `member list` after each change, `member
//! update`, `member promote` refusals (a voter, an unstarted learner, unknown and removed IDs, and
//! through a follower), `member remove` of the added members and of unknown IDs, the strict
//! reconfiguration check's `unhealthy cluster` and the learner limit, and etcdctl's own argument
//! errors. Added members never start, so every outcome is deterministic.
//!
//! Normalisation is `cluster_pair::normalise` (base members by the rank of their ID, addresses,
//! raft counters) plus, in this file, what membership changes add:
//! - an added member's ID is time-based on both sides: its hex and decimal forms become
//!   `<id-NAME>` (NAME as given to `member add`), learnt from `member list` by its peer URL;
//! - each added member gets a peer URL of its own, on a port picked per side: `<peer-pK>`;
//! - members are listed in ID order, so where they sit among the others differs: member list
//!   rows, the `members` arrays of JSON answers and the `ETCD_INITIAL_CLUSTER` entries are sorted,
//!   and whether the raw rows were in ascending ID order is appended as a line of its own;
//! - `Member %16x ...` lines pad IDs to 16 columns: runs of spaces there become one.
//!
//! Every command goes to the member ranked 0, which leads on both sides, unless noted.

#[allow(dead_code)] // this file uses the pair's start and leader moves, not its cases
mod cluster_pair;
mod grpc;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Output;
use std::time::Duration;

use cluster_pair::normalise::{replace_words, MemberFacts, Normaliser, Rows, Run};
use cluster_pair::{ClusterPair, Side, SIZE};
use oxcd_server::config::ETCD_SERVER_VERSION;
use oxcd_tests::cluster::free_peer_url;
use serde_json::Value;

/// How long `member add` is retried while the strict check answers `unhealthy cluster` (etcd
/// wants every voter connected for 5 s first).
const STRICT_WAIT: Duration = Duration::from_secs(30);

/// One side's cluster, and what is needed to name its members in etcdctl's output.
struct Members<'a> {
    side: &'a Side,
    normaliser: Normaliser,
    /// Base member IDs by rank.
    ids: Vec<u64>,
    /// Added members: name given to `member add` -> ID.
    added: BTreeMap<String, u64>,
    /// Spare peer URLs by label (`p0`, ...), picked on first use.
    spare_urls: BTreeMap<String, String>,
    /// (text, placeholder) replaced before the base normaliser runs.
    labels: Vec<(String, String)>,
}

impl<'a> Members<'a> {
    fn new(side: &'a Side, version: &str) -> Members<'a> {
        let cluster = &side.cluster;
        let facts: Vec<MemberFacts> = (0..SIZE)
            .map(|i| MemberFacts {
                id: cluster.member_id(i).expect("a base member's ID"),
                name: cluster.name(i).to_string(),
                client_url: cluster.client_url(i).to_string(),
                peer_url: cluster.peer_url(i).to_string(),
            })
            .collect();
        let (cluster_id, _) = cluster
            .member_list(0)
            .unwrap_or_else(|e| panic!("{}: member list: {e}", cluster.flavor().name()));
        Members {
            ids: (0..SIZE)
                .map(|k| {
                    cluster
                        .member_id(side.index(k))
                        .expect("a base member's ID")
                })
                .collect(),
            normaliser: Normaliser::new(cluster_id, &facts, version),
            side,
            added: BTreeMap::new(),
            spare_urls: BTreeMap::new(),
            labels: Vec::new(),
        }
    }

    fn name(&self) -> String {
        self.side.cluster.flavor().name()
    }

    /// A peer URL of this side for `label`: a port nobody listens on, picked on first use.
    fn spare_url(&mut self, label: &str) -> String {
        if let Some(url) = self.spare_urls.get(label) {
            return url.clone();
        }
        let url = free_peer_url().expect("a free port");
        let addr = url.trim_start_matches("http://").to_string();
        self.spare_urls.insert(label.to_string(), url.clone());
        self.labels.push((addr, format!("<peer-{label}>")));
        url
    }

    /// `arg` with `{mK}` (hex ID of the base member ranked K), `{peer-mK}` (its peer URL),
    /// `{id:NAME}` (hex ID of the added member NAME) and `{peer:LABEL}` (a spare peer URL)
    /// filled in for this side.
    fn concrete(&mut self, arg: &str) -> String {
        let mut arg = arg.to_string();
        for k in 0..SIZE {
            let peer_url = self.side.cluster.peer_url(self.side.index(k)).to_string();
            arg = arg.replace(&format!("{{peer-m{k}}}"), &peer_url);
            arg = arg.replace(&format!("{{m{k}}}"), &format!("{:x}", self.ids[k]));
        }
        while let Some(start) = arg.find("{id:").or_else(|| arg.find("{peer:")) {
            let Some(len) = arg[start..].find('}') else {
                break;
            };
            let token = arg[start + 1..start + len].to_string();
            let value = match token.split_once(':') {
                Some(("id", name)) => self
                    .added
                    .get(name)
                    .map_or_else(|| format!("<unknown id-{name}>"), |id| format!("{id:x}")),
                Some((_, label)) => self.spare_url(label),
                None => token.clone(),
            };
            arg.replace_range(start..=start + len, &value);
        }
        arg
    }

    /// Runs etcdctl against the member ranked `rank`.
    fn run(&mut self, rank: usize, args: &[&str]) -> Output {
        let args = self.concrete_args(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.side
            .cluster
            .ctl_output(self.side.index(rank), &args, None)
            .unwrap_or_else(|e| panic!("{}: cannot run etcdctl {args:?}: {e}", self.name()))
    }

    /// Like [`Members::run`], retried while the strict reconfiguration check answers
    /// `unhealthy cluster`; past [`STRICT_WAIT`] the last answer is returned.
    fn run_past_strict_check(&mut self, rank: usize, args: &[&str]) -> Output {
        let args = self.concrete_args(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.side
            .cluster
            .ctl_output_past_strict_check(self.side.index(rank), &args, STRICT_WAIT)
            .unwrap_or_else(|e| panic!("{}: cannot run etcdctl {args:?}: {e}", self.name()))
    }

    /// [`Members::concrete`] of each argument.
    fn concrete_args(&mut self, args: &[&str]) -> Vec<String> {
        args.iter().map(|a| self.concrete(a)).collect()
    }

    /// Learns the ID of the member `member add NAME` added with the spare peer URL `label`,
    /// from `member list`; false if it is not listed.
    fn learn_added(&mut self, name: &str, label: &str) -> bool {
        let url = self.spare_url(label);
        let Ok((_, members)) = self.side.cluster.member_list(0) else {
            return false;
        };
        let found = members
            .iter()
            .find(|m| m.peer_urls.contains(&url))
            .map(|m| m.id);
        let Some(id) = found else {
            return false;
        };
        self.added.insert(name.to_string(), id);
        self.labels
            .push((format!("{id:x}"), format!("<id-{name}>")));
        // In JSON an ID is a number: it becomes a string, which the base normaliser leaves be.
        self.labels
            .push((id.to_string(), format!("\"<id-{name}>\"")));
        true
    }

    /// What etcdctl printed, normalised (see the module docs).
    fn normalise(&self, out: &Output, rows: Rows) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let order = id_order_note(&stdout);
        let stdout = replace_words(&stdout, &self.labels);
        let stderr = replace_words(&stderr, &self.labels);
        let run = self.normaliser.run(
            stdout.as_bytes(),
            stderr.as_bytes(),
            out.status.code(),
            false,
            rows,
        );
        Run {
            stdout: format!("{}{order}", tidy(&run.stdout)),
            stderr: tidy(&run.stderr),
            code: run.code,
        }
    }
}

/// Puts what legitimately differs in order (see the module docs), line by line.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let initial_cluster = body
            .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
            .and_then(|rest| rest.strip_suffix('"'));
        if let Some(entries) = initial_cluster {
            let mut entries: Vec<&str> = entries.split(',').collect();
            entries.sort_unstable();
            let _ = write!(out, "ETCD_INITIAL_CLUSTER=\"{}\"", entries.join(","));
        } else if body.starts_with("Member ") {
            out.push_str(
                &body
                    .split(' ')
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        } else if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(body) {
            if let Some(Value::Array(members)) = map.get_mut("members") {
                members.sort_by_key(Value::to_string);
            }
            out.push_str(&Value::Object(map).to_string());
        } else {
            out.push_str(body);
        }
        out.push_str(end);
    }
    out
}

/// `(members in ID order: BOOL)` for a raw answer that lists members — a JSON object with a
/// `members` array, or simple `member list` rows — else nothing.
fn id_order_note(stdout: &str) -> String {
    let ids: Option<Vec<u64>> = match serde_json::from_str::<Value>(stdout.trim_end()) {
        Ok(value) => value["members"].as_array().map(|members| {
            members
                .iter()
                .map(|m| m["ID"].as_u64().unwrap_or(0))
                .collect()
        }),
        Err(_) => stdout
            .lines()
            .map(|line| {
                let (id, rest) = line.split_once(", ")?;
                let is_row = rest.starts_with("started, ") || rest.starts_with("unstarted, ");
                is_row.then(|| u64::from_str_radix(id, 16).ok()).flatten()
            })
            .collect::<Option<Vec<u64>>>()
            .filter(|ids| !ids.is_empty()),
    };
    ids.map_or_else(String::new, |ids| {
        let sorted = ids.windows(2).all(|w| w[0] < w[1]);
        format!("(members in ID order: {sorted})\n")
    })
}

/// Both clusters, and the differences found so far.
struct MembersPair<'a> {
    etcd: Members<'a>,
    oxcd: Members<'a>,
    differences: Vec<String>,
}

impl MembersPair<'_> {
    /// Compares one command's normalised outputs, recording a difference.
    fn compare(&mut self, command: String, etcd: &Output, oxcd: &Output, rows: Rows) {
        let etcd = self.etcd.normalise(etcd, rows);
        let oxcd = self.oxcd.normalise(oxcd, rows);
        if etcd != oxcd {
            self.differences.push(format!(
                "\n=== {command}\n--- etcd (exit {:?}) stdout:\n{}--- etcd stderr:\n{}\
                 --- oxcd (exit {:?}) stdout:\n{}--- oxcd stderr:\n{}",
                etcd.code, etcd.stdout, etcd.stderr, oxcd.code, oxcd.stdout, oxcd.stderr
            ));
        }
    }

    /// Runs `args` against the member ranked `rank` on both sides and compares.
    fn check_at(&mut self, rank: usize, args: &[&str]) {
        let etcd = self.etcd.run(rank, args);
        let oxcd = self.oxcd.run(rank, args);
        let rows = if args.starts_with(&["member", "list"]) {
            Rows::Unordered
        } else {
            Rows::Ordered
        };
        self.compare(command(rank, args), &etcd, &oxcd, rows);
    }

    /// [`MembersPair::check_at`] the leader (ranked 0).
    fn check(&mut self, args: &[&str]) {
        self.check_at(0, args);
    }

    /// `member list` in each output format this file compares.
    fn check_lists(&mut self) {
        let formats: [&[&str]; 3] = [&[], &["-w", "json"], &["-w", "table"]];
        for format in formats {
            self.check(&[&["member", "list"][..], format].concat());
        }
    }

    /// `member add NAME --peer-urls={peer:LABEL} EXTRA...` on both sides, past the strict
    /// check's warm-up; the new member's ID is learnt before the outputs are compared.
    fn check_add(&mut self, name: &str, label: &str, extra: &[&str]) {
        let peer_urls = format!("--peer-urls={{peer:{label}}}");
        let args = [&["member", "add", name, &peer_urls][..], extra].concat();
        let etcd = self.etcd.run_past_strict_check(0, &args);
        let oxcd = self.oxcd.run_past_strict_check(0, &args);
        assert!(
            self.etcd.learn_added(name, label),
            "etcd did not list the member added by {args:?}: {etcd:?}"
        );
        if !self.oxcd.learn_added(name, label) {
            self.differences.push(format!(
                "\n=== {}\n    oxcd does not list the added member",
                command(0, &args)
            ));
        }
        self.compare(command(0, &args), &etcd, &oxcd, Rows::Ordered);
    }

    /// Fails the test with every difference found.
    fn finish(self) {
        assert!(
            self.differences.is_empty(),
            "{} case(s) differ from etcd:{}",
            self.differences.len(),
            self.differences.concat()
        );
    }
}

/// How a case is reported: `etcdctl --endpoints=<client-mK> ARGS`.
fn command(rank: usize, args: &[&str]) -> String {
    format!("etcdctl --endpoints=<client-m{rank}> {}", args.join(" "))
}

#[test]
fn membership_commands_match_etcd() {
    // Proves member add/list/update/promote/remove print what etcd prints, errors included, in the simple, json and table formats.
    let pair = ClusterPair::start(grpc::oxcd_flavor(), ETCD_SERVER_VERSION);
    let mut members = MembersPair {
        etcd: Members::new(&pair.etcd, oxcd_tests::etcd::ETCD_VERSION),
        oxcd: Members::new(&pair.oxcd, ETCD_SERVER_VERSION),
        differences: Vec::new(),
    };
    members.check_lists();
    check_voter_added_unstarted(&mut members);
    check_added_in_json_and_table(&mut members);
    check_learner(&mut members);
    check_unknown_and_removed_ids(&mut members);
    check_bad_arguments(&mut members);
    members.check_lists();
    members.finish();
}

/// A voter added but never started: listed unstarted; the strict check then refuses further
/// adds; promote refuses voters; update and its refusals; remove, twice.
fn check_voter_added_unstarted(members: &mut MembersPair) {
    members.check_add("new0", "p0", &[]);
    members.check_lists();
    // The unstarted voter has never been connected: the strict check refuses any add.
    members.check(&["member", "add", "new1", "--peer-urls={peer:p1}"]);
    members.check(&[
        "member",
        "add",
        "new1",
        "--learner",
        "--peer-urls={peer:p1}",
    ]);
    members.check(&["member", "promote", "{m1}"]);
    members.check(&["member", "promote", "{id:new0}"]);

    members.check(&["member", "update", "{id:new0}", "--peer-urls={peer:p2}"]);
    members.check(&["member", "list"]);
    members.check(&["member", "update", "{m1}", "--peer-urls={peer-m0}"]);
    members.check(&["member", "update", "{id:new0}", "--peer-urls={peer-m2}"]);
    members.check(&["member", "update", "1234", "--peer-urls={peer:p3}"]);
    members.check(&["member", "list", "-w", "json"]);

    members.check(&["member", "remove", "{id:new0}"]);
    members.check(&["member", "list"]);
    members.check(&["member", "remove", "{id:new0}"]);
    members.check(&["member", "update", "{id:new0}", "--peer-urls={peer:p2}"]);
}

/// `member add` and `member remove` with `-w json`, then `-w table` (the change is made, then
/// etcdctl refuses to print it).
fn check_added_in_json_and_table(members: &mut MembersPair) {
    members.check_add("new1", "p4", &["-w", "json"]);
    members.check(&["member", "list", "-w", "json"]);
    members.check(&[
        "member",
        "update",
        "{id:new1}",
        "--peer-urls={peer:p5}",
        "-w",
        "json",
    ]);
    members.check(&["member", "remove", "{id:new1}", "-w", "json"]);

    members.check_add("new2", "p6", &["-w", "table"]);
    members.check(&["member", "list", "-w", "table"]);
    members.check(&[
        "member",
        "update",
        "{id:new2}",
        "--peer-urls={peer:p7}",
        "-w",
        "table",
    ]);
    members.check(&["member", "remove", "{id:new2}", "-w", "table"]);
    members.check_lists();
}

/// A learner added but never started: listed; promote refuses it (also through a follower); a
/// second learner is one too many; updating its URLs (3.4.23 then lists it as a voter); removed.
fn check_learner(members: &mut MembersPair) {
    members.check_add("lrn0", "p8", &["--learner"]);
    members.check_lists();
    members.check(&["member", "promote", "{id:lrn0}"]);
    members.check(&["member", "promote", "{id:lrn0}", "-w", "json"]);
    members.check_at(1, &["member", "promote", "{id:lrn0}"]);
    members.check(&[
        "member",
        "add",
        "lrn1",
        "--learner",
        "--peer-urls={peer:p9}",
    ]);
    members.check(&["member", "list", "-w", "json"]);
    members.check(&["member", "remove", "{id:lrn0}"]);
    members.check(&["member", "promote", "{id:lrn0}"]);

    members.check_add("lrn1", "p10", &["--learner", "-w", "json"]);
    members.check(&["member", "list"]);
    members.check(&["member", "update", "{id:lrn1}", "--peer-urls={peer:p11}"]);
    members.check(&["member", "list", "-w", "json"]);
    members.check(&["member", "remove", "{id:lrn1}", "-w", "json"]);
    members.check(&["member", "list"]);
}

/// IDs no member has, or had.
fn check_unknown_and_removed_ids(members: &mut MembersPair) {
    for args in [
        &["member", "remove", "1234"][..],
        &["member", "promote", "1234"],
        &["member", "update", "1234", "--peer-urls={peer:p12}"],
        &["member", "remove", "{id:new1}"],
        &["member", "promote", "{id:new1}"],
        &["member", "update", "{id:lrn1}", "--peer-urls={peer:p12}"],
    ] {
        members.check(args);
    }
}

/// etcdctl's own refusals (exit 128), and URLs its client library refuses before any RPC.
fn check_bad_arguments(members: &mut MembersPair) {
    for args in [
        &["member", "add"][..],
        &["member", "add", "x"],
        &["member", "add", "x", "http://127.0.0.1:1"],
        &["member", "add", "x", "y", "--peer-urls=http://127.0.0.1:1"],
        &["member", "add", "x", "--peer-urls=foo"],
        &["member", "add", "x", "--peer-urls=http://127.0.0.1:1/path"],
        &["member", "add", "x", "--peer-urls=http://127.0.0.1"],
        &["member", "remove"],
        &["member", "remove", "zz"],
        &["member", "remove", "1", "2"],
        &["member", "promote"],
        &["member", "promote", "zz"],
        &["member", "update"],
        &["member", "update", "zz", "--peer-urls=http://127.0.0.1:1"],
        &["member", "update", "{m1}"],
        &["member", "update", "{m1}", "--peer-urls=foo"],
        &["member", "list", "extra"],
    ] {
        members.check(args);
    }
}

/// `(text, placeholder)` pairs as [`Members::learn_added`] and [`Members::spare_url`] make them.
fn labels_for(id: u64, peer: &str) -> Vec<(String, String)> {
    vec![
        (peer.to_string(), "<peer-p0>".to_string()),
        (format!("{id:x}"), "<id-new0>".to_string()),
        (id.to_string(), "\"<id-new0>\"".to_string()),
    ]
}

#[test]
fn membership_normalisation_hides_only_what_legitimately_differs() {
    // Proves an added member's ID, peer URL, ID padding and place among the other members are hidden, while its learner flag, another URL or a list out of ID order still differ.
    let a = labels_for(0x0c70cabb4bab8f48, "127.0.0.1:4001");
    let b = labels_for(0xa38631cfccd7d000, "127.0.0.1:5002");
    let same = |x: &str, y: &str| tidy(&replace_words(x, &a)) == tidy(&replace_words(y, &b));

    assert!(same(
        "Member  c70cabb4bab8f48 added to cluster <cluster>\n",
        "Member a38631cfccd7d000 added to cluster <cluster>\n"
    ));
    // Only whole words: a longer hex number is not the added member's ID.
    assert!(!same(
        "Member  c70cabb4bab8f481 added\n",
        "Member a38631cfccd7d000 added\n"
    ));
    assert!(same(
        "ETCD_INITIAL_CLUSTER=\"new0=http://127.0.0.1:4001,m0=http://<peer-m0>\"\n",
        "ETCD_INITIAL_CLUSTER=\"m0=http://<peer-m0>,new0=http://127.0.0.1:5002\"\n"
    ));
    assert!(!same(
        "ETCD_INITIAL_CLUSTER=\"new0=http://127.0.0.1:4001,m0=http://<peer-m0>\"\n",
        "ETCD_INITIAL_CLUSTER=\"m0=http://<peer-m0>,new0=http://127.0.0.1:5003\"\n"
    ));

    let a_json = r#"{"members":[{"ID":896439231623958344,"isLearner":true,"peerURLs":["http://127.0.0.1:4001"]},{"ID":"<m0>"}]}"#;
    let b_json = r#"{"members":[{"ID":"<m0>"},{"ID":11783160243626168320,"isLearner":true,"peerURLs":["http://127.0.0.1:5002"]}]}"#;
    assert!(same(a_json, b_json));
    assert!(!same(a_json, &b_json.replace(r#""isLearner":true,"#, "")));

    // The ID order is judged on what was printed, before anything is sorted.
    let ordered =
        "1, started, m0, http://a:1, http://a:2, false\n2, unstarted, , http://a:3, , true\n";
    let reversed =
        "2, unstarted, , http://a:3, , true\n1, started, m0, http://a:1, http://a:2, false\n";
    assert_eq!(id_order_note(ordered), "(members in ID order: true)\n");
    assert_eq!(id_order_note(reversed), "(members in ID order: false)\n");
    assert_eq!(
        id_order_note(r#"{"members":[{"ID":9},{"ID":3}]}"#),
        "(members in ID order: false)\n"
    );
    assert_eq!(id_order_note("Member 1 removed from cluster 2\n"), "");
}
