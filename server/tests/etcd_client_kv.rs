//! KV and Txn edge cases through the Rust `etcd-client` crate, against real etcd 3.4.23 and oxcd
//! started by the same test.
//!
//! Each test runs one script of requests twice, once against a fresh etcd and once against a
//! fresh oxcd, and writes every response or error into a transcript line: headers, key-values,
//! counts, `more`, txn branches (nested responses included), gRPC codes and messages. The two
//! transcripts must be equal line for line. Only what legitimately differs between two clusters
//! is normalised: cluster ID, member ID and raft term print as `0` when zero and `N` otherwise
//! (nested txn responses carry zero headers in etcd, and that must stay visible). Both servers
//! start empty at revision 1, so revisions must agree exactly. A few answers of etcd's own are
//! pinned as well, so a script that stops reaching its edge case fails instead of passing.
//!
//! The client is etcd-client 0.8.4 (tonic 0.6): its build compiles the etcd protos with the
//! protoc bundled in prost-build 0.9, so building this test needs no protoc install.

use std::path::Path;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, DeleteResponse,
    Error as ClientError, GetOptions, GetResponse, KeyValue, PutOptions, PutResponse,
    ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use oxcd_tests::{bail, Error, Etcd, Result};

/// A request that takes longer than this is a failure (printed in the transcript), not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

/// etcd's default `--max-request-bytes` (1.5 MiB); gRPC accepts 512 KiB more than this.
const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// A lease ID no server has granted.
const MISSING_LEASE: i64 = 0x1234_5678;

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

/// One side's run: the client, the runtime that drives it (dropped after the client, which
/// closes the connection before the server is stopped), and one `(case, outcome)` per request.
struct Script {
    client: Client,
    runtime: tokio::runtime::Runtime,
    lines: Vec<(String, String)>,
}

impl Script {
    fn connect(url: &str) -> Result<Script> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let options = ConnectOptions::new().with_timeout(REQUEST_TIMEOUT);
        let client = runtime
            .block_on(Client::connect([url], Some(options)))
            .map_err(|e| Error::msg(format!("etcd-client cannot connect to {url}: {e}")))?;
        let lines = Vec::new();
        Ok(Script {
            client,
            runtime,
            lines,
        })
    }

    fn record(&mut self, case: &str, outcome: std::result::Result<String, ClientError>) {
        let text = outcome.unwrap_or_else(|e| error_text(&e));
        self.lines.push((case.to_string(), text));
    }

    /// Records a put; returns the header revision (0 on error) for later steps.
    fn put(&mut self, case: &str, key: &str, value: &str, options: PutOptions) -> i64 {
        self.put_bytes(case, key.as_bytes(), value.as_bytes(), options)
    }

    fn put_bytes(&mut self, case: &str, key: &[u8], value: &[u8], options: PutOptions) -> i64 {
        let response = self
            .runtime
            .block_on(self.client.put(key, value, Some(options)));
        let header = response.as_ref().ok().and_then(|r| r.header());
        let revision = header.map_or(0, ResponseHeader::revision);
        self.record(case, response.map(|r| put_text(&r)));
        revision
    }

    fn get(&mut self, case: &str, key: impl Into<Vec<u8>>, options: GetOptions) {
        let response = self.runtime.block_on(self.client.get(key, Some(options)));
        self.record(case, response.map(|r| get_text(&r)));
    }

    fn delete(&mut self, case: &str, key: &str, options: DeleteOptions) {
        let response = self
            .runtime
            .block_on(self.client.delete(key, Some(options)));
        self.record(case, response.map(|r| delete_text(&r)));
    }

    fn txn(&mut self, case: &str, txn: Txn) {
        let response = self.runtime.block_on(self.client.txn(txn));
        self.record(case, response.map(|r| txn_text(&r)));
    }

    fn compact(&mut self, case: &str, revision: i64, options: CompactionOptions) {
        let response = self
            .runtime
            .block_on(self.client.compact(revision, Some(options)));
        let text = response.map(|r| format!("compact {}", header_text(r.header())));
        self.record(case, text);
    }
}

fn bytes_text(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// Zero stays visible (nested txn headers are zero in etcd); any other ID or term is `N`.
fn normalized(id: u64) -> &'static str {
    if id == 0 {
        "0"
    } else {
        "N"
    }
}

fn header_text(header: Option<&ResponseHeader>) -> String {
    match header {
        None => "header=none".to_string(),
        Some(h) => format!(
            "rev={} cluster={} member={} term={}",
            h.revision(),
            normalized(h.cluster_id()),
            normalized(h.member_id()),
            normalized(h.raft_term())
        ),
    }
}

fn kv_text(kv: &KeyValue) -> String {
    format!(
        "{{key={} value={} create={} mod={} version={} lease={}}}",
        bytes_text(kv.key()),
        bytes_text(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease()
    )
}

fn kvs_text(kvs: &[KeyValue]) -> String {
    let items: Vec<String> = kvs.iter().map(kv_text).collect();
    format!("[{}]", items.join(", "))
}

fn put_text(r: &PutResponse) -> String {
    let prev = r.prev_key().map_or_else(|| "none".to_string(), kv_text);
    format!("put {} prev={prev}", header_text(r.header()))
}

fn get_text(r: &GetResponse) -> String {
    let (header, kvs) = (header_text(r.header()), kvs_text(r.kvs()));
    format!(
        "range {header} count={} more={} kvs={kvs}",
        r.count(),
        r.more()
    )
}

fn delete_text(r: &DeleteResponse) -> String {
    let (header, prev_kvs) = (header_text(r.header()), kvs_text(r.prev_kvs()));
    format!(
        "delete {header} deleted={} prev_kvs={prev_kvs}",
        r.deleted()
    )
}

fn txn_text(r: &TxnResponse) -> String {
    let responses: Vec<String> = r
        .op_responses()
        .iter()
        .map(|op| match op {
            TxnOpResponse::Put(put) => put_text(put),
            TxnOpResponse::Get(get) => get_text(get),
            TxnOpResponse::Delete(delete) => delete_text(delete),
            TxnOpResponse::Txn(txn) => txn_text(txn),
        })
        .collect();
    let header = header_text(r.header());
    let responses = responses.join("; ");
    format!(
        "txn {header} succeeded={} responses=[{responses}]",
        r.succeeded()
    )
}

fn error_text(e: &ClientError) -> String {
    match e {
        ClientError::GRpcStatus(s) => {
            format!("error code={:?} message={:?}", s.code(), s.message())
        }
        other => format!("client error: {other}"),
    }
}

/// Runs `script` against a fresh etcd and a fresh oxcd; fails with a per-step diff unless both
/// transcripts are equal, or if etcd's transcript lacks one of `etcd_answers` (case, fragment).
fn compare_with_etcd(etcd_answers: &[(&str, &str)], script: impl Fn(&mut Script)) -> Result<()> {
    let mut etcd = Etcd::start()?;
    let etcd_lines = run(etcd.client_url(), &script)?;
    check_etcd_answers(&etcd_lines, etcd_answers)?;
    etcd.stop()?;
    let mut oxcd = Etcd::start_oxcd(Path::new(env!("CARGO_BIN_EXE_oxcd")))?;
    let oxcd_lines = run(oxcd.client_url(), &script);
    let stopped = oxcd.stop();
    diff(&etcd_lines, &oxcd_lines?)?;
    stopped
}

fn run(url: &str, script: &impl Fn(&mut Script)) -> Result<Vec<(String, String)>> {
    let mut side = Script::connect(url)?;
    script(&mut side);
    Ok(std::mem::take(&mut side.lines))
}

fn check_etcd_answers(etcd: &[(String, String)], answers: &[(&str, &str)]) -> Result<()> {
    for (case, fragment) in answers {
        let Some((_, text)) = etcd.iter().find(|(c, _)| c == case) else {
            bail!("the script has no case {case:?}");
        };
        if !text.contains(fragment) {
            bail!("etcd answered case {case:?} with {text}, which lacks {fragment:?}");
        }
    }
    Ok(())
}

fn diff(etcd: &[(String, String)], oxcd: &[(String, String)]) -> Result<()> {
    let mut report = Vec::new();
    for index in 0..etcd.len().max(oxcd.len()) {
        let (case, expected) = etcd
            .get(index)
            .map_or(("?", "<missing>"), |(c, t)| (c.as_str(), t.as_str()));
        let got = oxcd.get(index).map_or("<missing>", |(_, t)| t.as_str());
        if expected != got {
            report.push(format!("case {case}:\n  etcd: {expected}\n  oxcd: {got}"));
        }
    }
    if !report.is_empty() {
        let (count, total) = (report.len(), etcd.len());
        bail!(
            "{count} of {total} steps differ between etcd and oxcd:\n{}",
            report.join("\n")
        );
    }
    Ok(())
}

fn none() -> PutOptions {
    PutOptions::new()
}

fn prev() -> PutOptions {
    PutOptions::new().with_prev_key()
}

fn all_keys() -> GetOptions {
    GetOptions::new().with_all_keys()
}

fn put(key: &str, value: &str) -> TxnOp {
    TxnOp::put(key, value, None)
}

fn then(ops: impl Into<Vec<TxnOp>>) -> Txn {
    Txn::new().and_then(ops)
}

fn puts(prefix: &str, count: usize) -> Vec<TxnOp> {
    (0..count)
        .map(|i| put(&format!("{prefix}{i:03}"), "v"))
        .collect()
}

// Proves put/get/range/delete responses and their errors match etcd's, option by option.
#[test]
fn put_get_range_delete_match_etcd() -> Result<()> {
    let etcd_answers = [
        ("overwrite with prev_kv", "prev={key=\"a\" value=\"1\""),
        ("get missing key", "count=0 more=false kvs=[]"),
        ("range limit 2", "count=5 more=true"),
        ("range count_only", "count=5 more=false kvs=[]"),
        ("range keys_only", "{key=\"k1\" value=\"\" create=7"),
        ("get empty key", EMPTY_KEY),
        ("put with missing lease", LEASE_NOT_FOUND),
        ("ignore_value on missing key", KEY_NOT_FOUND),
        (
            "delete range with prev_kv",
            "deleted=2 prev_kvs=[{key=\"k2\"",
        ),
        (
            "value just over max-request-bytes",
            "etcdserver: request is too large",
        ),
    ];
    compare_with_etcd(&etcd_answers, |s| {
        s.put("put new key with prev_kv", "a", "1", prev());
        s.put("overwrite with prev_kv", "a", "2", prev());
        s.put("overwrite without prev_kv", "a", "3", none());
        s.put_bytes("binary value", b"bin", b"\0\xff\n", none());
        s.get("get existing key", "a", GetOptions::new());
        s.get("get missing key", "missing", GetOptions::new());
        s.get("get binary value", "bin", GetOptions::new());

        for (key, value) in [
            ("k3", "c"),
            ("k1", "e"),
            ("k5", "a"),
            ("k2", "d"),
            ("k4", "b"),
        ] {
            s.put(&format!("put {key}"), key, value, none());
        }
        s.put("bump k2 version", "k2", "d2", none());
        s.put("bump k2 version again", "k2", "d3", none());
        s.put("bump k4 version", "k4", "b2", none());
        let range = || GetOptions::new().with_range("k6");
        s.get("range k1..k6", "k1", range());
        for limit in [2, 5, 6, -1] {
            s.get(
                &format!("range limit {limit}"),
                "k1",
                range().with_limit(limit),
            );
        }
        let targets = [
            ("key", SortTarget::Key),
            ("version", SortTarget::Version),
            ("create", SortTarget::Create),
            ("mod", SortTarget::Mod),
            ("value", SortTarget::Value),
        ];
        let orders = [
            ("none", SortOrder::None),
            ("ascend", SortOrder::Ascend),
            ("descend", SortOrder::Descend),
        ];
        for (target_name, target) in targets {
            for (order_name, order) in orders {
                let case = format!("range sort {target_name} {order_name}");
                s.get(&case, "k1", range().with_sort(target, order));
                let limited = range().with_sort(target, order).with_limit(2);
                s.get(&format!("{case} limit 2"), "k1", limited);
            }
        }
        s.get("range count_only", "k1", range().with_count_only());
        let options = range().with_count_only().with_limit(2);
        s.get("range count_only limit 2", "k1", options);
        s.get("range keys_only", "k1", range().with_keys_only());
        let options = range().with_keys_only().with_limit(1);
        s.get("range keys_only limit 1", "k1", options);
        let options = range().with_keys_only().with_count_only();
        s.get("range keys_only count_only", "k1", options);
        let options = range()
            .with_keys_only()
            .with_sort(SortTarget::Value, SortOrder::Descend);
        s.get("range keys_only sorted by value", "k1", options);
        s.get("range prefix k", "k", GetOptions::new().with_prefix());
        s.get("range from key k3", "k3", GetOptions::new().with_from_key());
        s.get("range all keys", "", all_keys());
        s.get(
            "range end before key",
            "k5",
            GetOptions::new().with_range("k1"),
        );
        s.get(
            "range empty interval",
            "k3",
            GetOptions::new().with_range("k3"),
        );
        s.get("range serializable", "k1", range().with_serializable());
        let options = range().with_min_mod_revision(9).with_limit(1);
        s.get("range min_mod_revision limit 1", "k1", options);
        s.get(
            "range max_mod_revision",
            "k1",
            range().with_max_mod_revision(8),
        );
        let options = range()
            .with_min_create_revision(7)
            .with_max_create_revision(8);
        s.get("range create revision window", "k1", options);
        let options = range().with_min_mod_revision(9).with_count_only();
        s.get("range min_mod_revision count_only", "k1", options);
        s.put_bytes("put key 0xff", b"\xff", b"top", none());
        let options = GetOptions::new().with_prefix();
        s.get("range prefix 0xff (range_end \\0)", vec![0xffu8], options);

        s.get("get empty key", "", GetOptions::new());
        s.put("put empty key", "", "v", none());
        s.delete("delete empty key", "", DeleteOptions::new());
        let lease = PutOptions::new().with_lease(MISSING_LEASE);
        s.put("put with missing lease", "leased", "v", lease);
        let ignore_value = || PutOptions::new().with_ignore_value();
        let ignore_lease = || PutOptions::new().with_ignore_lease();
        s.put("ignore_value on missing key", "nokey", "", ignore_value());
        s.put("ignore_lease on missing key", "nokey", "v", ignore_lease());
        let options = ignore_value().with_prev_key();
        s.put("ignore_value on existing key", "a", "", options);
        s.put("ignore_value with a value", "a", "x", ignore_value());
        let options = ignore_lease().with_lease(MISSING_LEASE);
        s.put("ignore_lease with a lease", "a", "x", options);
        s.put("ignore_lease on existing key", "a", "4", ignore_lease());
        s.get("a after ignore_* puts", "a", GetOptions::new());
        let big = vec![b'v'; MAX_REQUEST_BYTES + 1024];
        s.put_bytes("value just over max-request-bytes", b"big", &big, none());
        let huge = vec![b'v'; MAX_REQUEST_BYTES + 1024 * 1024];
        s.put_bytes("value over the gRPC message limit", b"big", &huge, none());

        let with_prev = || DeleteOptions::new().with_prev_key();
        s.delete("delete one key with prev_kv", "k1", with_prev());
        s.delete("delete missing key with prev_kv", "k1", with_prev());
        let options = with_prev().with_range("k4");
        s.delete("delete range with prev_kv", "k2", options);
        let options = with_prev().with_range("k1");
        s.delete("delete range end before key", "k5", options);
        let options = DeleteOptions::new().with_prefix();
        s.delete("delete prefix without prev_kv", "k", options);
        s.delete("delete from key", "b", with_prev().with_from_key());
        s.get("all keys after deletes", "", all_keys());
        s.put("recreate deleted key", "k1", "again", prev());
        s.get("recreated key", "k1", GetOptions::new());
        let options = DeleteOptions::new().with_all_keys().with_prev_key();
        s.delete("delete all keys", "", options);
        s.get("count after deleting all", "", all_keys().with_count_only());
    })
}

// Proves reads at past, compacted and future revisions, and compactions, match etcd.
#[test]
fn revisions_and_compaction_match_etcd() -> Result<()> {
    let etcd_answers = [
        ("get c at first revision", "value=\"v1\""),
        ("get at future revision", FUTURE_REV),
        ("get at compacted revision", COMPACTED),
        ("get at compaction revision itself", "value=\"v2\""),
    ];
    compare_with_etcd(&etcd_answers, |s| {
        let rev1 = s.put("put c v1", "c", "v1", none());
        let rev2 = s.put("put c v2", "c", "v2", none());
        s.put("put d", "d", "x", none());
        s.delete("delete d", "d", DeleteOptions::new());
        let rev5 = s.put("put c v3", "c", "v3", none());
        let at = |revision| GetOptions::new().with_revision(revision);
        s.get("get c at first revision", "c", at(rev1));
        s.get("get c at second revision", "c", at(rev2));
        s.get("get c at revision 1 (before it existed)", "c", at(1));
        s.get("get d at its put", "d", at(rev2 + 1));
        s.get("get d at its delete", "d", at(rev2 + 2));
        s.get("get at current revision", "c", at(rev5));
        s.get("get at future revision", "c", at(rev5 + 1));
        s.get("get at far future revision", "c", at(1_000_000));
        s.get("get at negative revision", "c", at(-1));
        let logical = CompactionOptions::new;
        s.compact("compact at future revision", rev5 + 1, logical());
        s.compact("compact at revision 0", 0, logical());
        s.compact("compact at second revision", rev2, logical());
        s.get("get at compacted revision", "c", at(rev1));
        s.get("get at compaction revision itself", "c", at(rev2));
        s.get("range all after compaction", "", all_keys());
        let options = all_keys().with_revision(rev2);
        s.get("range all at compaction revision", "", options);
        let options = all_keys().with_revision(1).with_count_only();
        s.get("count at compacted revision", "", options);
        s.compact("compact at same revision again", rev2, logical());
        s.compact("compact at older revision", rev1, logical());
        let physical = CompactionOptions::new().with_physical();
        s.compact("physical compact at current revision", rev5, physical);
        s.get("get at old compaction revision", "c", at(rev2));
        s.get("get at new compaction revision", "c", at(rev5));
        let read = |revision| TxnOp::get("c", Some(GetOptions::new().with_revision(revision)));
        s.txn("read-only txn at compacted revision", then([read(rev1)]));
        let txn = then([put("e", "1"), read(rev1)]);
        s.txn("write txn with read at compacted revision", txn);
        s.txn("read-only txn at future revision", then([read(rev5 + 9)]));
        let txn = then([put("e", "1"), read(rev5 + 9)]);
        s.txn("write txn with read at future revision", txn);
        let txn = Txn::new().or_else([read(rev1)]);
        s.txn("compacted read in the branch not taken", txn);
        s.get("c after failed txns", "c", GetOptions::new());
    })
}

/// Every compare target with values that a missing key (or empty range) meets as zero.
fn zero_compares(key: &str) -> Vec<(String, Compare)> {
    let ops = [
        ("EQUAL", CompareOp::Equal),
        ("NOT_EQUAL", CompareOp::NotEqual),
        ("GREATER", CompareOp::Greater),
        ("LESS", CompareOp::Less),
    ];
    let mut compares = Vec::new();
    for (name, op) in ops {
        compares.push((format!("value {name} \"\""), Compare::value(key, op, "")));
        compares.push((format!("value {name} \"x\""), Compare::value(key, op, "x")));
        for number in [0, 1] {
            let targets = [
                ("version", Compare::version(key, op, number)),
                ("create", Compare::create_revision(key, op, number)),
                ("mod", Compare::mod_revision(key, op, number)),
                ("lease", Compare::lease(key, op, number)),
            ];
            for (target, compare) in targets {
                compares.push((format!("{target} {name} {number}"), compare));
            }
        }
    }
    compares
}

// Proves txn compares on missing, deleted and existing keys and on key ranges pick etcd's branch.
#[test]
fn txn_compares_match_etcd() -> Result<()> {
    let etcd_answers = [
        ("missing key: version EQUAL 0", "succeeded=true"),
        ("missing key: value EQUAL \"\"", "succeeded=false"),
        ("version EQUAL 1 over r1..r4", "succeeded=false"),
        ("compare on empty key", EMPTY_KEY),
    ];
    compare_with_etcd(&etcd_answers, |s| {
        for (name, compare) in zero_compares("nokey") {
            s.txn(&format!("missing key: {name}"), Txn::new().when([compare]));
        }
        s.put("put r1", "r1", "5", none());
        s.put("put r2", "r2", "7", none());
        s.put("put r2 again", "r2", "8", none());
        s.put("put r3", "r3", "10", none());
        s.put("put gone", "gone", "soon", none());
        s.delete("delete gone", "gone", DeleteOptions::new());
        for (name, compare) in zero_compares("gone") {
            s.txn(&format!("deleted key: {name}"), Txn::new().when([compare]));
        }
        for (name, compare) in zero_compares("r1") {
            s.txn(
                &format!("existing key r1: {name}"),
                Txn::new().when([compare]),
            );
        }
        for (name, compare) in zero_compares("r1") {
            let txn = Txn::new().when([compare.with_range("r4")]);
            s.txn(&format!("range r1..r4: {name}"), txn);
        }
        for (name, compare) in zero_compares("x1") {
            let txn = Txn::new().when([compare.with_range("x9")]);
            s.txn(&format!("empty range x1..x9: {name}"), txn);
        }
        let (greater, less) = (CompareOp::Greater, CompareOp::Less);
        let checks = [
            (
                "value GREATER \"4\" over r1..r4",
                Compare::value("r1", greater, "4"),
            ),
            (
                "value GREATER \"0\" over r1..r4",
                Compare::value("r1", greater, "0"),
            ),
            (
                "value LESS \"9\" over r1..r4",
                Compare::value("r1", less, "9"),
            ),
            (
                "version EQUAL 1 over r1..r4",
                Compare::version("r1", CompareOp::Equal, 1),
            ),
            (
                "version LESS 3 over r1..r4",
                Compare::version("r1", less, 3),
            ),
            (
                "mod GREATER 1 over r1..r4",
                Compare::mod_revision("r1", greater, 1),
            ),
            (
                "create NOT_EQUAL 3 over r1..r4",
                Compare::create_revision("r1", CompareOp::NotEqual, 3),
            ),
        ];
        for (name, compare) in checks {
            let txn = Txn::new()
                .when([compare.with_range("r4")])
                .and_then([TxnOp::get("r1", Some(GetOptions::new().with_prefix()))])
                .or_else([TxnOp::get("r2", None)]);
            s.txn(name, txn);
        }
        let prefix = Compare::version("r", greater, 0).with_prefix();
        s.txn("version GREATER 0 over prefix r", Txn::new().when([prefix]));
        let from_key = Compare::value("r2", CompareOp::NotEqual, "").with_range("\0");
        s.txn(
            "value NOT_EQUAL \"\" from key r2",
            Txn::new().when([from_key]),
        );
        let backwards = Compare::version("r3", CompareOp::Equal, 0).with_range("r1");
        s.txn("range end before key", Txn::new().when([backwards]));
        let mixed = [
            Compare::value("r1", CompareOp::Equal, "5"),
            Compare::version("nokey", CompareOp::Equal, 0),
            Compare::mod_revision("r3", CompareOp::Equal, 5),
        ];
        s.txn("three compares, all true", Txn::new().when(mixed));
        let mixed = [
            Compare::value("r1", CompareOp::Equal, "5"),
            Compare::value("nokey", CompareOp::Equal, ""),
        ];
        s.txn("two compares, one false", Txn::new().when(mixed));
        let empty_key = Compare::version("", CompareOp::Equal, 0);
        s.txn("compare on empty key", Txn::new().when([empty_key]));
    })
}

// Proves nested txns, mixed put/range txns and txn validation errors match etcd.
#[test]
fn txn_structure_and_errors_match_etcd() -> Result<()> {
    let etcd_answers = [
        (
            "nested txn in success branch",
            "succeeded=true responses=[put",
        ),
        ("puts, ranges and a delete in one txn", "succeeded=true"),
        ("same key put twice", DUPLICATE_KEY),
        ("exactly max-txn-ops puts", "succeeded=true"),
        ("max-txn-ops + 1 puts", TOO_MANY_OPS),
        ("put with empty key", EMPTY_KEY),
        ("put with missing lease", LEASE_NOT_FOUND),
        ("ignore_value on missing key", KEY_NOT_FOUND),
    ];
    compare_with_etcd(&etcd_answers, |s| {
        let missing_x = || Compare::version("x", CompareOp::Equal, 0);
        let get = |key: &str| TxnOp::get(key, None);
        let inner = Txn::new()
            .when([missing_x()])
            .and_then([get("x"), put("y", "inner")])
            .or_else([put("y", "inner-else")]);
        let outer =
            Txn::new()
                .when([missing_x()])
                .and_then([put("x", "1"), TxnOp::txn(inner), get("x")]);
        s.txn("nested txn in success branch", outer);
        s.get("y after nested txn", "y", GetOptions::new());
        let inner = then([TxnOp::put("y", "deep", Some(prev()))]);
        let twice = then([TxnOp::txn(then([TxnOp::txn(inner)]))]);
        let outer = Txn::new().when([missing_x()]).or_else([TxnOp::txn(twice)]);
        s.txn("doubly nested txn in failure branch", outer);
        s.txn("empty txn", Txn::new());

        let prefix = || GetOptions::new().with_prefix();
        let ops = [
            TxnOp::put("t1", "a", Some(prev())),
            get("t1"),
            put("t2", "b"),
            TxnOp::get("t", Some(prefix().with_count_only())),
            TxnOp::get(
                "t",
                Some(prefix().with_sort(SortTarget::Key, SortOrder::Descend)),
            ),
            TxnOp::delete("y", Some(DeleteOptions::new().with_prev_key())),
            TxnOp::get("", Some(all_keys())),
        ];
        s.txn("puts, ranges and a delete in one txn", then(ops));
        s.get("y after the delete in a txn", "y", GetOptions::new());
        let ops = [TxnOp::get("t", Some(prefix())), get("x")];
        s.txn("read-only txn", then(ops));

        s.txn("same key put twice", then([put("d", "1"), put("d", "2")]));
        let dup = [put("d", "1"), put("d", "2")];
        s.txn(
            "same key put twice in failure branch",
            Txn::new().or_else(dup),
        );
        let split = then([put("d", "1")]).or_else([put("d", "2")]);
        s.txn("same key in success and failure branches", split);
        let dup = [put("d", "1"), TxnOp::txn(then([put("d", "3")]))];
        s.txn("same key in outer and nested txn", then(dup));
        let both = [
            TxnOp::txn(then([put("d", "3")])),
            TxnOp::txn(then([put("d", "4")])),
        ];
        s.txn("same key in two sibling nested txns", then(both));
        let nested = then([put("d", "5")]).or_else([put("d", "6")]);
        s.txn(
            "same key in both branches of a nested txn",
            then([TxnOp::txn(nested)]),
        );
        let delete = |from: &str, to: &str| {
            TxnOp::delete(
                from,
                Some(DeleteOptions::new().with_range(to).with_prev_key()),
            )
        };
        let overlap = [delete("c", "e"), put("d", "1")];
        s.txn("put inside a deleted range", then(overlap));
        let overlap = [delete("c", "e"), delete("d", "dz")];
        s.txn("two overlapping deletes", then(overlap));
        let same = [get("x"), get("x"), put("g", "1")];
        s.txn("same key read twice and a put", then(same));

        s.txn("exactly max-txn-ops puts", then(puts("many", MAX_TXN_OPS)));
        s.txn("max-txn-ops + 1 puts", then(puts("many", MAX_TXN_OPS + 1)));
        let over = Txn::new().or_else(puts("many", MAX_TXN_OPS + 1));
        s.txn("max-txn-ops + 1 puts in failure branch", over);
        let compares: Vec<Compare> = (0..=MAX_TXN_OPS)
            .map(|i| Compare::version(format!("c{i}"), CompareOp::Equal, 0))
            .collect();
        s.txn("max-txn-ops + 1 compares", Txn::new().when(compares));
        let nested = then(puts("nested", MAX_TXN_OPS + 1));
        s.txn(
            "max-txn-ops + 1 puts in a nested txn",
            then([TxnOp::txn(nested)]),
        );
        let mut too_many_with_dup = puts("many", MAX_TXN_OPS);
        too_many_with_dup.push(put("many000", "again"));
        s.txn("too many ops and a duplicate", then(too_many_with_dup));

        s.txn("put with empty key", then([put("", "v")]));
        s.txn("range with empty key", then([get("")]));
        s.txn(
            "delete with empty key",
            Txn::new().or_else([TxnOp::delete("", None)]),
        );
        let dup_then_empty = [put("d", "1"), put("d", "2"), put("", "3")];
        s.txn("duplicate then empty key", then(dup_then_empty));

        let lease = Some(PutOptions::new().with_lease(MISSING_LEASE));
        s.txn(
            "put with missing lease",
            then([TxnOp::put("l", "v", lease.clone())]),
        );
        let txn = Txn::new().or_else([TxnOp::put("l", "v", lease)]);
        s.txn("missing lease in branch not taken", txn);
        let ignore = Some(PutOptions::new().with_ignore_value());
        let txn = then([TxnOp::put("nokey", "", ignore.clone())]);
        s.txn("ignore_value on missing key", txn);
        let ops = [TxnOp::put("x", "", ignore.clone()), get("x")];
        s.txn("ignore_value on existing key", then(ops));
        let ops = [put("fresh", "1"), TxnOp::put("fresh", "", ignore)];
        s.txn("put, then ignore_value put of the same key", then(ops));
        let options = all_keys().with_keys_only();
        s.get("all keys at the end", "", options);
    })
}
