//! What a raft entry means, in one line: decoding an entry's data as etcd 3.4 writes it and
//! summarising it the way `etcd-dump-logs` does (`put key="foo" value_size=3`).
//!
//! Normal entries hold an `InternalRaftRequest` (every v3 write), a v2 `Request` (member
//! attributes, cluster version), or nothing (the empty entry a new leader appends); conf
//! entries hold a `ConfChange` or `ConfChangeV2`. Anything else is `unknown <n bytes>`: a
//! dump never fails on an entry's contents.
//!
//! Values are never printed, only their sizes (they may be large or secret); keys and names
//! are quoted with non-printable bytes escaped. IDs are printed in hex, as etcd prints them.
//! Pure functions, no I/O.

use std::fmt::Write as _;

use oxcd_wal::{Entry, EntryType};
use prost::Message;
use serde::Serialize;

use super::etcdpb::{
    Compare, ConfChange, ConfChangeV2, InternalRaftRequest, PutRequest, RangeRequest, Request,
    RequestOp, TxnRequest,
};

/// What an entry holds; the filter of `--entry-type` and the `kind` of the JSON output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A normal entry without data (a new leader's first entry).
    Empty,
    /// A v2 store request.
    V2Request,
    Range,
    Put,
    DeleteRange,
    Txn,
    Compaction,
    LeaseGrant,
    LeaseRevoke,
    LeaseCheckpoint,
    Alarm,
    /// Any auth request.
    Auth,
    /// A `raftpb.ConfChange`.
    ConfChange,
    /// A `raftpb.ConfChangeV2`.
    ConfChangeV2,
    /// Data that does not decode as what its entry type should hold.
    Unknown,
}

impl EntryKind {
    /// True for kinds carried by an `InternalRaftRequest`.
    pub fn is_internal_raft_request(self) -> bool {
        !matches!(
            self,
            EntryKind::Empty
                | EntryKind::V2Request
                | EntryKind::ConfChange
                | EntryKind::ConfChangeV2
                | EntryKind::Unknown
        )
    }
}

/// An entry's kind and its one-line summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySummary {
    pub kind: EntryKind,
    pub text: String,
}

/// The data of a normal entry, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum NormalData {
    Empty,
    /// A v3 request (boxed: it is large).
    Internal(Box<InternalRaftRequest>),
    /// A v2 store request.
    V2(Request),
    Unknown,
}

/// Decodes a normal entry's data the way etcd applies it: as an `InternalRaftRequest` if it
/// decodes as one that carries a header or a request, else as a v2 `Request` if it has a
/// method. (A v2 request never decodes as an `InternalRaftRequest`: its method string lands
/// in field 2, which etcd declares as a nested message, and no method name parses as one.)
pub fn decode_normal(data: &[u8]) -> NormalData {
    if data.is_empty() {
        return NormalData::Empty;
    }
    if let Ok(request) = InternalRaftRequest::decode(data) {
        if request.header.is_some() || internal_summary(&request).is_some() {
            return NormalData::Internal(Box::new(request));
        }
    }
    match Request::decode(data) {
        Ok(request) if !request.method.is_empty() => NormalData::V2(request),
        _ => NormalData::Unknown,
    }
}

/// The kind and summary of `entry`.
pub fn summarize(entry: &Entry) -> EntrySummary {
    let data = &entry.data;
    let summary = match EntryType::try_from(entry.entry_type) {
        Ok(EntryType::EntryNormal) => normal_summary(data),
        Ok(EntryType::EntryConfChange) => ConfChange::decode(&data[..]).ok().map(|change| {
            let mut text = format!(
                "conf_change type={} node_id={:x}",
                conf_change_type(change.change_type),
                change.node_id
            );
            if let Some(context) = change.context.filter(|c| !c.is_empty()) {
                let _ = write!(text, " context_size={}", context.len());
            }
            (EntryKind::ConfChange, text)
        }),
        Ok(EntryType::EntryConfChangeV2) => ConfChangeV2::decode(&data[..]).ok().map(|change| {
            let changes: Vec<String> = change
                .changes
                .iter()
                .map(|c| format!("{} {:x}", conf_change_type(c.change_type), c.node_id))
                .collect();
            let text = format!(
                "conf_change_v2 transition={} changes=[{}]",
                conf_transition(change.transition),
                changes.join("; ")
            );
            (EntryKind::ConfChangeV2, text)
        }),
        Err(_) => None,
    };
    let (kind, text) =
        summary.unwrap_or_else(|| (EntryKind::Unknown, format!("unknown {} bytes", data.len())));
    EntrySummary { kind, text }
}

fn normal_summary(data: &[u8]) -> Option<(EntryKind, String)> {
    match decode_normal(data) {
        NormalData::Empty => Some((EntryKind::Empty, "empty".to_string())),
        NormalData::Internal(request) => internal_summary(&request),
        NormalData::V2(request) => Some((EntryKind::V2Request, v2_summary(&request))),
        NormalData::Unknown => None,
    }
}

fn v2_summary(request: &Request) -> String {
    let mut text = format!(
        "v2 method={} path={}",
        String::from_utf8_lossy(&request.method),
        quote(&request.path)
    );
    if !request.val.is_empty() {
        let _ = write!(text, " val={}", quote(&request.val));
    }
    text
}

/// The summary of the one request an `InternalRaftRequest` carries; `None` if it carries
/// none that etcd 3.4 knows.
fn internal_summary(r: &InternalRaftRequest) -> Option<(EntryKind, String)> {
    if let Some(v2) = &r.v2 {
        return Some((EntryKind::V2Request, v2_summary(v2)));
    }
    if let Some(range) = &r.range {
        return Some((EntryKind::Range, range_summary(range)));
    }
    if let Some(put) = &r.put {
        return Some((EntryKind::Put, put_summary(put)));
    }
    if let Some(delete) = &r.delete_range {
        let text = key_range(
            "delete_range",
            &delete.key,
            &delete.range_end,
            delete.prev_kv,
        );
        return Some((EntryKind::DeleteRange, text));
    }
    if let Some(txn) = &r.txn {
        return Some((EntryKind::Txn, txn_summary(txn)));
    }
    if let Some(compaction) = &r.compaction {
        let mut text = format!("compaction revision={}", compaction.revision);
        if compaction.physical {
            text.push_str(" physical");
        }
        return Some((EntryKind::Compaction, text));
    }
    if let Some(grant) = &r.lease_grant {
        let text = format!("lease_grant id={:x} ttl={}", grant.id, grant.ttl);
        return Some((EntryKind::LeaseGrant, text));
    }
    if let Some(revoke) = &r.lease_revoke {
        return Some((
            EntryKind::LeaseRevoke,
            format!("lease_revoke id={:x}", revoke.id),
        ));
    }
    if let Some(checkpoint) = &r.lease_checkpoint {
        let leases: Vec<String> = checkpoint
            .checkpoints
            .iter()
            .map(|c| format!("{:x} remaining_ttl={}", c.id, c.remaining_ttl))
            .collect();
        let text = format!("lease_checkpoint [{}]", leases.join("; "));
        return Some((EntryKind::LeaseCheckpoint, text));
    }
    if let Some(alarm) = &r.alarm {
        let text = format!(
            "alarm action={} member_id={:x} alarm={}",
            name_of(alarm.action, &["GET", "ACTIVATE", "DEACTIVATE"]),
            alarm.member_id,
            name_of(alarm.alarm, &["NONE", "NOSPACE", "CORRUPT"])
        );
        return Some((EntryKind::Alarm, text));
    }
    auth_summary(r).map(|text| (EntryKind::Auth, text))
}

fn auth_summary(r: &InternalRaftRequest) -> Option<String> {
    let named = |op: &str, field: &str, name: &[u8]| format!("{op} {field}={}", quote(name));
    let text = if r.auth_enable.is_some() {
        "auth_enable".to_string()
    } else if r.auth_disable.is_some() {
        "auth_disable".to_string()
    } else if let Some(a) = &r.authenticate {
        named("authenticate", "name", &a.name)
    } else if let Some(a) = &r.auth_user_add {
        let mut text = named("auth_user_add", "name", &a.name);
        if a.options.as_ref().is_some_and(|o| o.no_password) {
            text.push_str(" no_password");
        }
        text
    } else if let Some(a) = &r.auth_user_delete {
        named("auth_user_delete", "name", &a.name)
    } else if let Some(a) = &r.auth_user_get {
        named("auth_user_get", "name", &a.name)
    } else if let Some(a) = &r.auth_user_change_password {
        named("auth_user_change_password", "name", &a.name)
    } else if let Some(a) = &r.auth_user_grant_role {
        let user = named("auth_user_grant_role", "user", &a.user);
        format!("{user} role={}", quote(&a.role))
    } else if let Some(a) = &r.auth_user_revoke_role {
        let user = named("auth_user_revoke_role", "name", &a.user);
        format!("{user} role={}", quote(&a.role))
    } else if r.auth_user_list.is_some() {
        "auth_user_list".to_string()
    } else if r.auth_role_list.is_some() {
        "auth_role_list".to_string()
    } else if let Some(a) = &r.auth_role_add {
        named("auth_role_add", "name", &a.name)
    } else if let Some(a) = &r.auth_role_delete {
        named("auth_role_delete", "role", &a.name)
    } else if let Some(a) = &r.auth_role_get {
        named("auth_role_get", "role", &a.name)
    } else if let Some(a) = &r.auth_role_grant_permission {
        let mut text = named("auth_role_grant_permission", "name", &a.name);
        if let Some(perm) = &a.perm {
            let perm_type = name_of(perm.perm_type, &["READ", "WRITE", "READWRITE"]);
            let _ = write!(text, " perm={perm_type} key={}", quote(&perm.key));
            if !perm.range_end.is_empty() {
                let _ = write!(text, " range_end={}", quote(&perm.range_end));
            }
        }
        text
    } else if let Some(a) = &r.auth_role_revoke_permission {
        let role = named("auth_role_revoke_permission", "role", &a.role);
        key_range(&role, &a.key, &a.range_end, false)
    } else {
        return None;
    };
    Some(text)
}

fn put_summary(put: &PutRequest) -> String {
    let mut text = format!("put key={} value_size={}", quote(&put.key), put.value.len());
    if put.lease != 0 {
        let _ = write!(text, " lease={:x}", put.lease);
    }
    for (set, flag) in [
        (put.prev_kv, " prev_kv"),
        (put.ignore_value, " ignore_value"),
        (put.ignore_lease, " ignore_lease"),
    ] {
        if set {
            text.push_str(flag);
        }
    }
    text
}

fn range_summary(range: &RangeRequest) -> String {
    let mut text = key_range("range", &range.key, &range.range_end, false);
    if range.revision != 0 {
        let _ = write!(text, " revision={}", range.revision);
    }
    if range.limit != 0 {
        let _ = write!(text, " limit={}", range.limit);
    }
    if range.keys_only {
        text.push_str(" keys_only");
    }
    if range.count_only {
        text.push_str(" count_only");
    }
    text
}

/// `OP key="a"`, then ` range_end="b"` when there is one, then ` prev_kv` when asked.
fn key_range(op: &str, key: &[u8], range_end: &[u8], prev_kv: bool) -> String {
    let mut text = format!("{op} key={}", quote(key));
    if !range_end.is_empty() {
        let _ = write!(text, " range_end={}", quote(range_end));
    }
    if prev_kv {
        text.push_str(" prev_kv");
    }
    text
}

/// `txn compare=[...] success=[...] failure=[...]`, compares in etcdctl's txn syntax.
fn txn_summary(txn: &TxnRequest) -> String {
    let compares: Vec<String> = txn.compare.iter().map(compare_summary).collect();
    format!(
        "txn compare=[{}] success=[{}] failure=[{}]",
        compares.join("; "),
        ops_summary(&txn.success),
        ops_summary(&txn.failure)
    )
}

fn ops_summary(ops: &[RequestOp]) -> String {
    let ops: Vec<String> = ops
        .iter()
        .map(|op| {
            if let Some(range) = &op.request_range {
                range_summary(range)
            } else if let Some(put) = &op.request_put {
                put_summary(put)
            } else if let Some(delete) = &op.request_delete_range {
                key_range(
                    "delete_range",
                    &delete.key,
                    &delete.range_end,
                    delete.prev_kv,
                )
            } else if let Some(txn) = &op.request_txn {
                txn_summary(txn)
            } else {
                "unknown".to_string()
            }
        })
        .collect();
    ops.join("; ")
}

/// A compare as etcdctl's txn reads it: `mod("k") > 5`, `value("k") = "v"`.
fn compare_summary(compare: &Compare) -> String {
    let target = name_of(
        compare.target,
        &["version", "create", "mod", "value", "lease"],
    );
    let op = name_of(compare.result, &["=", ">", "<", "!="]);
    let operand = if let Some(value) = &compare.value {
        quote(value)
    } else if let Some(lease) = compare.lease {
        format!("{lease:x}")
    } else {
        let number = compare.version.or(compare.create_revision);
        number.or(compare.mod_revision).unwrap_or(0).to_string()
    };
    let mut text = format!("{target}({}) {op} {operand}", quote(&compare.key));
    if !compare.range_end.is_empty() {
        let _ = write!(text, " range_end={}", quote(&compare.range_end));
    }
    text
}

fn conf_change_type(value: i32) -> String {
    let names = [
        "ConfChangeAddNode",
        "ConfChangeRemoveNode",
        "ConfChangeUpdateNode",
        "ConfChangeAddLearnerNode",
    ];
    name_of(value, &names)
}

fn conf_transition(value: i32) -> String {
    let names = [
        "ConfChangeTransitionAuto",
        "ConfChangeTransitionJointImplicit",
        "ConfChangeTransitionJointExplicit",
    ];
    name_of(value, &names)
}

/// The name of enum value `value`, or the number itself when it is not one of `names`.
fn name_of(value: i32, names: &[&str]) -> String {
    usize::try_from(value)
        .ok()
        .and_then(|i| names.get(i))
        .map_or_else(|| value.to_string(), |name| (*name).to_string())
}

/// `bytes` in double quotes: Rust string escapes for UTF-8, `\xNN` for other bytes.
pub fn quote(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("\"{}\"", bytes.escape_ascii()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::etcdpb::{DeleteRangeRequest, LeaseGrantRequest, RequestHeader};
    use super::*;

    fn normal(data: Vec<u8>) -> EntrySummary {
        summarize(&Entry::normal(1, 1, data))
    }

    fn internal(build: impl FnOnce(&mut InternalRaftRequest)) -> Vec<u8> {
        let mut request = InternalRaftRequest {
            header: Some(RequestHeader {
                id: 42,
                ..RequestHeader::default()
            }),
            ..InternalRaftRequest::default()
        };
        build(&mut request);
        request.encode_to_vec()
    }

    #[test]
    fn puts_deletes_and_leases_read_like_etcd_dump_logs() {
        // Proves the one-line summaries of the common v3 requests, values by size only.
        let put = internal(|r| {
            r.put = Some(PutRequest {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                lease: 0x694d,
                ..PutRequest::default()
            })
        });
        let summary = normal(put);
        assert_eq!(summary.kind, EntryKind::Put);
        assert_eq!(summary.text, r#"put key="foo" value_size=3 lease=694d"#);
        let delete = internal(|r| {
            r.delete_range = Some(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"\0".to_vec(),
                prev_kv: true,
            })
        });
        assert_eq!(
            normal(delete).text,
            r#"delete_range key="a" range_end="\0" prev_kv"#
        );
        let grant = internal(|r| r.lease_grant = Some(LeaseGrantRequest { ttl: 60, id: 0x1f }));
        assert_eq!(normal(grant).text, "lease_grant id=1f ttl=60");
    }

    #[test]
    fn txn_shows_compares_and_both_branches() {
        // Proves a txn summary lists its compares in etcdctl syntax and the ops of each branch.
        let txn = internal(|r| {
            r.txn = Some(TxnRequest {
                compare: vec![Compare {
                    target: 2,
                    result: 1,
                    key: b"k".to_vec(),
                    mod_revision: Some(0),
                    ..Compare::default()
                }],
                success: vec![RequestOp {
                    request_put: Some(PutRequest {
                        key: b"a".to_vec(),
                        value: b"1".to_vec(),
                        ..PutRequest::default()
                    }),
                    ..RequestOp::default()
                }],
                failure: vec![],
            })
        });
        let summary = normal(txn);
        assert_eq!(summary.kind, EntryKind::Txn);
        assert_eq!(
            summary.text,
            r#"txn compare=[mod("k") > 0] success=[put key="a" value_size=1] failure=[]"#
        );
    }

    #[test]
    fn v2_requests_empty_and_garbage_are_told_apart() {
        // Proves the fallbacks: v2 requests by method, empty data, and unknown bytes.
        for method in ["PUT", "DELETE", "POST", "QGET", "SYNC", "GET", "HEAD"] {
            let request = Request {
                id: 9,
                method: method.as_bytes().to_vec(),
                path: b"/0/version".to_vec(),
                val: b"3.4.0".to_vec(),
            };
            let summary = normal(request.encode_to_vec());
            assert_eq!(summary.kind, EntryKind::V2Request, "{method}");
            assert_eq!(
                summary.text,
                format!(r#"v2 method={method} path="/0/version" val="3.4.0""#)
            );
        }
        assert_eq!(normal(vec![]).text, "empty");
        let garbage = normal(vec![0xff, 0xff, 0xff]);
        assert_eq!(
            (garbage.kind, garbage.text.as_str()),
            (EntryKind::Unknown, "unknown 3 bytes")
        );
    }

    #[test]
    fn conf_changes_and_quoting() {
        // Proves conf entries summarise with hex node ids and keys are escaped, never lossy.
        let change = ConfChange {
            id: 0,
            change_type: 3,
            node_id: 0xabc,
            context: Some(b"{}".to_vec()),
        };
        let entry = Entry {
            entry_type: EntryType::EntryConfChange as i32,
            term: 1,
            index: 1,
            data: change.encode_to_vec(),
        };
        assert_eq!(
            summarize(&entry).text,
            "conf_change type=ConfChangeAddLearnerNode node_id=abc context_size=2"
        );
        assert_eq!(quote(b"a\"b"), r#""a\"b""#);
        assert_eq!(quote(&[0x61, 0xff]), r#""a\xff""#);
        assert_eq!(name_of(7, &["A"]), "7");
    }
}
