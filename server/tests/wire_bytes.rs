//! Byte-for-byte wire compatibility with etcd 3.4.23's own Go types.
//!
//! `tests/go/wireoracle` (built offline by `scripts/go-build-offline.sh` against Debian's etcd sources in
//! /usr/share/gocode) prints "name hex" for a fixed set of messages encoded by etcd's gogoproto
//! code. Here the same messages are built with oxcd's generated types: each must encode to the
//! same bytes, and etcd's bytes must decode back to the same message. The case lists on both
//! sides must name the same cases. Without Go or the etcd sources the test fails loudly: a
//! compatibility claim that silently skips its proof is worse than none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use oxcd_server::pb::authpb::{self, permission, Permission, UserAddOptions};
use oxcd_server::pb::etcdserverpb::{
    alarm_request, compare, range_request, request_op, watch_create_request, watch_request,
    AlarmRequest, AlarmType, AuthRoleGrantPermissionRequest, AuthUserAddRequest, CompactionRequest,
    Compare, DeleteRangeRequest, HashKvResponse, InternalAuthenticateRequest, InternalRaftRequest,
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseTimeToLiveResponse, Member, MemberAddResponse,
    PutRequest, RangeRequest, RangeResponse, RequestHeader, RequestOp, ResponseHeader,
    SnapshotResponse, StatusResponse, TxnRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
use oxcd_server::pb::mvccpb::{event, Event, KeyValue};
use oxcd_server::pb::v3electionpb::{LeaderKey, ProclaimRequest};
use oxcd_server::pb::v3lockpb::LockResponse;
use prost::Message;

/// One message under test: its encoding, and a check that etcd's bytes decode back to it.
struct Case {
    encoded: Vec<u8>,
    decodes_to_same: DecodeCheck,
}

/// Decodes etcd's bytes into the case's type and compares with the case's message.
type DecodeCheck = Box<dyn Fn(&[u8]) -> Result<(), String>>;

fn case<M: Message + Default + PartialEq + std::fmt::Debug + 'static>(msg: M) -> Case {
    let encoded = msg.encode_to_vec();
    let decodes_to_same = Box::new(move |bytes: &[u8]| match M::decode(bytes) {
        Ok(decoded) if decoded == msg => Ok(()),
        Ok(decoded) => Err(format!(
            "decoded to a different message: {decoded:?}, want {msg:?}"
        )),
        Err(err) => Err(format!("does not decode: {err}")),
    });
    Case {
        encoded,
        decodes_to_same,
    }
}

fn kv() -> KeyValue {
    KeyValue {
        key: b"foo".to_vec(),
        create_revision: 2,
        mod_revision: 9,
        version: 4,
        value: b"bar".to_vec(),
        lease: -7,
    }
}

fn put_prev_kv() -> PutRequest {
    PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 0x694d_77a1_b2c3_d4e5,
        prev_kv: true,
        ..Default::default()
    }
}

fn range_sorted() -> RangeRequest {
    RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 10,
        revision: 5,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: false,
        min_mod_revision: 1,
        max_mod_revision: 100,
        min_create_revision: 2,
        max_create_revision: 200,
    }
}

fn cmp(
    result: compare::CompareResult,
    target: compare::CompareTarget,
    key: &[u8],
    union: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.to_vec(),
        target_union: Some(union),
        range_end: Vec::new(),
    }
}

fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn txn_nested() -> TxnRequest {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let inner = TxnRequest {
        compare: vec![cmp(R::Equal, T::Lease, b"l", U::Lease(0))],
        success: vec![op(request_op::Request::RequestRange(RangeRequest {
            key: b"l".to_vec(),
            ..Default::default()
        }))],
        failure: vec![],
    };
    let mut mod_range = cmp(R::Greater, T::Mod, b"k2", U::ModRevision(7));
    mod_range.range_end = b"k3".to_vec();
    TxnRequest {
        compare: vec![
            cmp(R::NotEqual, T::Value, b"k", U::Value(b"v".to_vec())),
            mod_range,
            cmp(R::Equal, T::Version, b"new", U::Version(0)),
            cmp(R::Less, T::Create, b"c", U::CreateRevision(3)),
        ],
        success: vec![
            op(request_op::Request::RequestPut(put_prev_kv())),
            op(request_op::Request::RequestTxn(inner)),
        ],
        failure: vec![
            op(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b"d".to_vec(),
                    range_end: vec![0],
                    prev_kv: true,
                },
            )),
            op(request_op::Request::RequestRange(RangeRequest::default())),
        ],
    }
}

fn raft(id: u64, username: &str) -> InternalRaftRequest {
    InternalRaftRequest {
        header: Some(RequestHeader {
            id,
            username: username.to_owned(),
            auth_revision: 0,
        }),
        ..Default::default()
    }
}

fn header(cluster_id: u64, member_id: u64, revision: i64, raft_term: u64) -> ResponseHeader {
    ResponseHeader {
        cluster_id,
        member_id,
        revision,
        raft_term,
    }
}

/// Requests, raft envelopes and storage records.
fn request_cases() -> Vec<(&'static str, Case)> {
    let internal_put = InternalRaftRequest {
        header: Some(RequestHeader {
            id: 0x1c2d_3e4f_5a6b_7c8d,
            username: "root".into(),
            auth_revision: 3,
        }),
        put: Some(put_prev_kv()),
        ..Default::default()
    };
    let mut internal_txn = raft(1, "");
    internal_txn.txn = Some(txn_nested());
    let mut internal_compaction = raft(2, "");
    internal_compaction.compaction = Some(CompactionRequest {
        revision: 100,
        physical: true,
    });
    let mut internal_checkpoint = raft(3, "");
    internal_checkpoint.lease_checkpoint = Some(LeaseCheckpointRequest {
        checkpoints: vec![
            LeaseCheckpoint {
                id: 5,
                remaining_ttl: 30,
            },
            LeaseCheckpoint {
                id: 6,
                remaining_ttl: 1,
            },
        ],
    });
    let mut internal_grant = raft(4, "root");
    internal_grant.auth_role_grant_permission = Some(AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: Some(Permission {
            perm_type: permission::Type::Readwrite as i32,
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        }),
    });
    let mut internal_authenticate = raft(5, "");
    internal_authenticate.authenticate = Some(InternalAuthenticateRequest {
        name: "u".into(),
        password: "p".into(),
        simple_token: "tok.7".into(),
    });
    let put_ignore = PutRequest {
        key: b"k".to_vec(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    };
    let range_all = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        ..Default::default()
    };
    vec![
        ("put_prev_kv", case(put_prev_kv())),
        ("put_ignore", case(put_ignore)),
        ("range_sorted", case(range_sorted())),
        ("range_all_count_only", case(range_all)),
        ("txn_nested", case(txn_nested())),
        ("internal_raft_put", case(internal_put)),
        ("internal_raft_txn", case(internal_txn)),
        ("internal_raft_compaction", case(internal_compaction)),
        ("internal_raft_lease_checkpoint", case(internal_checkpoint)),
        ("internal_raft_auth_role_grant", case(internal_grant)),
        ("internal_raft_authenticate", case(internal_authenticate)),
        ("key_value", case(kv())),
        (
            "event_delete",
            case(Event {
                r#type: event::EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: b"foo".to_vec(),
                    mod_revision: 10,
                    ..Default::default()
                }),
                prev_kv: Some(kv()),
            }),
        ),
        (
            "watch_create",
            case(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: b"w".to_vec(),
                        range_end: b"x".to_vec(),
                        start_revision: 4,
                        progress_notify: true,
                        filters: vec![
                            watch_create_request::FilterType::Noput as i32,
                            watch_create_request::FilterType::Nodelete as i32,
                        ],
                        prev_kv: true,
                        watch_id: 3,
                        fragment: true,
                    },
                )),
            }),
        ),
        (
            "watch_progress",
            case(WatchRequest {
                request_union: Some(watch_request::RequestUnion::ProgressRequest(
                    WatchProgressRequest {},
                )),
            }),
        ),
    ]
}

/// Responses, auth records and the concurrency services.
fn response_cases() -> Vec<(&'static str, Case)> {
    let watch_response = WatchResponse {
        header: Some(header(0xcdf8_1819_4e3a_8c32, 0x8e9e_05c5_2164_694d, 12, 2)),
        watch_id: 3,
        created: false,
        canceled: true,
        compact_revision: 5,
        cancel_reason: "compacted".into(),
        fragment: true,
        events: vec![Event {
            r#type: event::EventType::Put as i32,
            kv: Some(kv()),
            prev_kv: None,
        }],
    };
    let status = StatusResponse {
        header: Some(header(1, 2, 3, 4)),
        version: "3.5.0".into(),
        db_size: 24576,
        leader: 2,
        raft_index: 7,
        raft_term: 4,
        raft_applied_index: 7,
        errors: vec!["memberID:2 alarm:NOSPACE ".into()],
        db_size_in_use: 16384,
        is_learner: true,
    };
    let member_add = MemberAddResponse {
        header: None,
        member: Some(Member {
            id: 0x8e9e_05c5_2164_694d,
            name: "default".into(),
            peer_ur_ls: vec!["http://localhost:2380".into()],
            client_ur_ls: vec![],
            is_learner: true,
        }),
        members: vec![Member {
            id: 1,
            client_ur_ls: vec![
                "http://127.0.0.1:2379".into(),
                "http://10.0.0.1:2379".into(),
            ],
            ..Default::default()
        }],
    };
    let role = authpb::Role {
        name: b"r".to_vec(),
        key_permission: vec![
            Permission {
                perm_type: permission::Type::Write as i32,
                key: b"k".to_vec(),
                range_end: vec![],
            },
            Permission {
                perm_type: 0,
                key: b"a".to_vec(),
                range_end: vec![0],
            },
        ],
    };
    let proclaim = ProclaimRequest {
        leader: Some(LeaderKey {
            name: b"e".to_vec(),
            key: b"e/1".to_vec(),
            rev: 4,
            lease: 0x694d,
        }),
        value: b"v".to_vec(),
    };
    vec![
        ("watch_response", case(watch_response)),
        (
            "range_response",
            case(RangeResponse {
                header: Some(header(0, 0, 9, 0)),
                kvs: vec![kv(), kv()],
                more: true,
                count: 2,
            }),
        ),
        ("status_response", case(status)),
        (
            "alarm_request",
            case(AlarmRequest {
                action: alarm_request::AlarmAction::Deactivate as i32,
                member_id: 2,
                alarm: AlarmType::Nospace as i32,
            }),
        ),
        (
            "hash_kv_response",
            case(HashKvResponse {
                header: Some(header(0, 0, 5, 0)),
                hash: 0xdead_beef,
                compact_revision: 2,
            }),
        ),
        (
            "snapshot_response",
            case(SnapshotResponse {
                header: None,
                remaining_bytes: 1 << 20,
                blob: vec![0, 1, 2, 0xff],
            }),
        ),
        (
            "lease_time_to_live_response",
            case(LeaseTimeToLiveResponse {
                header: None,
                id: 9,
                ttl: -1,
                granted_ttl: 60,
                keys: vec![b"a".to_vec(), b"b".to_vec()],
            }),
        ),
        ("member_add_response", case(member_add)),
        (
            "auth_user_add",
            case(AuthUserAddRequest {
                name: "u".into(),
                password: "p".into(),
                options: Some(UserAddOptions { no_password: true }),
                hashed_password: String::new(),
            }),
        ),
        (
            "authpb_user",
            case(authpb::User {
                name: b"u".to_vec(),
                password: b"$2a$10$x".to_vec(),
                roles: vec!["r1".into(), "r2".into()],
                options: Some(UserAddOptions::default()),
            }),
        ),
        ("authpb_role", case(role)),
        (
            "lock_response",
            case(LockResponse {
                header: Some(header(0, 0, 3, 0)),
                key: b"lk/694d".to_vec(),
            }),
        ),
        ("election_proclaim", case(proclaim)),
    ]
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("oracle printed non-ASCII");
            assert_eq!(pair.len(), 2, "odd-length hex from the oracle: {hex}");
            u8::from_str_radix(pair, 16).expect("oracle printed non-hex")
        })
        .collect()
}

/// Builds the Go oracle into this test's scratch dir (Go's cache keeps rebuilds quick).
fn build_oracle() -> PathBuf {
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wireoracle/wireoracle");
    go_build_offline(
        "tests/go/wireoracle",
        &binary,
        "to prove wire compatibility",
    );
    binary
}

/// Builds the Go program in `src` (relative to this crate) with the project's offline Go build
/// script, panicking with what to install if it fails.
fn go_build_offline(src: &str, binary: &Path, purpose: &str) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = crate_dir.join("../scripts/go-build-offline.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(crate_dir.join(src))
        .arg(binary)
        .arg("go.etcd.io/etcd")
        .status()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        status.success(),
        "building {src} failed ({status}): this test needs Go (golang-go) and etcd 3.4's Go \
         sources (golang-etcd-server-dev) {purpose}"
    );
}

fn oracle_encodings() -> BTreeMap<String, Vec<u8>> {
    let binary = build_oracle();
    let output = Command::new(&binary)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    assert!(
        output.status.success(),
        "wireoracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("wireoracle printed non-UTF-8");
    let mut cases = BTreeMap::new();
    for line in stdout.lines() {
        let (name, hex) = line.split_once(' ').unwrap_or((line, ""));
        assert!(
            cases.insert(name.to_owned(), from_hex(hex)).is_none(),
            "duplicate case {name}"
        );
    }
    cases
}

#[test]
fn encodings_match_etcd_go_types() {
    // Proves oxcd's generated types encode and decode exactly as etcd 3.4.23's Go types do.
    let go = oracle_encodings();
    let rust: BTreeMap<&str, Case> = request_cases()
        .into_iter()
        .chain(response_cases())
        .collect();
    let go_names: Vec<&str> = go.keys().map(String::as_str).collect();
    let rust_names: Vec<&str> = rust.keys().copied().collect();
    assert_eq!(go_names, rust_names, "the Go and Rust case lists differ");
    let mut failures = Vec::new();
    for (name, case) in &rust {
        let etcd = &go[*name];
        if case.encoded != *etcd {
            failures.push(format!(
                "{name}: oxcd encodes {}\n{:width$}  etcd encodes {}",
                to_hex(&case.encoded),
                "",
                to_hex(etcd),
                width = name.len()
            ));
        }
        if let Err(err) = (case.decodes_to_same)(etcd) {
            failures.push(format!("{name}: etcd's bytes {err}"));
        }
    }
    assert!(
        failures.is_empty(),
        "wire mismatches with etcd:\n{}",
        failures.join("\n")
    );
}
