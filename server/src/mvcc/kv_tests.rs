//! Tests of the KV requests on the store: Range options, Put flags, DeleteRange, Txn
//! compares, branches, nested txns and checks, and the pre-raft request checks. Expected
//! values follow etcd 3.4's `apply.go` and `v3rpc/key.go`.

use super::check::{check_put_request, check_txn};
use super::kv::{self, LeaseLookup, NoLeases};
use super::store_tests::{put, TestStore};
use super::txn::{apply_txn, is_txn_read_only, is_txn_serializable, read_only_txn};
use super::{MvccError, Store};
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};

/// A lessor in which every lease below 100 exists.
struct SmallLeases;

impl LeaseLookup for SmallLeases {
    fn lease_exists(&self, id: i64) -> bool {
        id < 100
    }
}

fn range_req(key: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: end.into(),
        ..RangeRequest::default()
    }
}

fn range(store: &Store, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
    kv::range(&store.read().unwrap(), req)
}

fn keys(resp: &RangeResponse) -> Vec<String> {
    resp.kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect()
}

fn put_req(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn apply_put(store: &Store, req: &PutRequest) -> Result<i64, MvccError> {
    let mut w = store.write(0, 0).unwrap();
    let resp = kv::put(&mut w, req, &SmallLeases);
    w.end().unwrap();
    resp.map(|r| r.header.unwrap().revision)
}

fn txn(store: &Store, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
    let mut w = store.write(0, 0).unwrap();
    let resp = apply_txn(&mut w, req, &SmallLeases);
    w.end().unwrap();
    resp
}

fn op(request: Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, union: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

#[test]
fn range_limit_more_and_count() {
    // Proves `more` and `count` with and without a limit, and keys_only / count_only.
    let store = TestStore::new();
    for key in ["a", "b", "c"] {
        put(&store, key, "v");
    }
    let mut req = range_req("a", "\0");
    req.limit = 2;
    let resp = range(&store, &req).unwrap();
    assert_eq!(
        (keys(&resp), resp.more, resp.count),
        (vec!["a".into(), "b".into()], true, 3)
    );
    req.limit = 3;
    assert!(!range(&store, &req).unwrap().more);
    req.keys_only = true;
    assert!(range(&store, &req)
        .unwrap()
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty()));
    req.count_only = true;
    let resp = range(&store, &req).unwrap();
    assert_eq!((resp.kvs.len(), resp.count), (0, 3));
    assert_eq!(resp.header.unwrap().revision, 4);
}

#[test]
fn range_filters_do_not_change_count() {
    // Proves min/max mod and create revision filters prune kvs after the read (count stays
    // the store's) and apply the limit after pruning.
    let store = TestStore::new();
    put(&store, "a", "1"); // 2
    put(&store, "b", "1"); // 3
    put(&store, "a", "2"); // 4
    put(&store, "c", "1"); // 5
    let mut req = range_req("a", "d");
    req.min_mod_revision = 4;
    let resp = range(&store, &req).unwrap();
    assert_eq!((keys(&resp), resp.count), (vec!["a".into(), "c".into()], 3));
    req.limit = 1;
    let resp = range(&store, &req).unwrap();
    assert_eq!((keys(&resp), resp.more), (vec!["a".into()], true));
    let mut req = range_req("a", "d");
    req.max_create_revision = 3;
    assert_eq!(keys(&range(&store, &req).unwrap()), ["a", "b"]);
    req.min_create_revision = 3;
    assert_eq!(keys(&range(&store, &req).unwrap()), ["b"]);
    let mut req = range_req("a", "d");
    req.max_mod_revision = 3;
    assert_eq!(keys(&range(&store, &req).unwrap()), ["b"]);
}

#[test]
fn range_sorts_as_etcd() {
    // Proves each sort target and order, the ascending default for non-key targets, and that
    // the limit applies after sorting.
    let store = TestStore::new();
    put(&store, "a", "3"); // 2
    put(&store, "b", "1"); // 3
    put(&store, "c", "2"); // 4
    put(&store, "b", "4"); // 5
    let sorted = |target: SortTarget, order: SortOrder, limit: i64| {
        let mut req = range_req("a", "\0");
        req.sort_target = target as i32;
        req.sort_order = order as i32;
        req.limit = limit;
        keys(&range(&store, &req).unwrap())
    };
    assert_eq!(
        sorted(SortTarget::Key, SortOrder::Descend, 0),
        ["c", "b", "a"]
    );
    assert_eq!(
        sorted(SortTarget::Value, SortOrder::None, 0),
        ["c", "a", "b"]
    );
    assert_eq!(sorted(SortTarget::Mod, SortOrder::Descend, 2), ["b", "c"]);
    assert_eq!(
        sorted(SortTarget::Create, SortOrder::Ascend, 0),
        ["a", "b", "c"]
    );
    // Ties keep key order for short results, descending too (Go's insertion sort).
    assert_eq!(
        sorted(SortTarget::Version, SortOrder::Descend, 0),
        ["b", "a", "c"]
    );
    assert_eq!(
        sorted(SortTarget::Version, SortOrder::Ascend, 0),
        ["a", "c", "b"]
    );
}

#[test]
fn range_revision_errors() {
    // Proves ErrFutureRev above the current revision and ErrCompacted below the compaction.
    let store = TestStore::new();
    put(&store, "a", "1");
    put(&store, "a", "2");
    store.compact(3).unwrap().wait().unwrap();
    let mut req = range_req("a", "");
    req.revision = 4;
    assert!(matches!(range(&store, &req), Err(MvccError::FutureRev)));
    req.revision = 2;
    assert!(matches!(range(&store, &req), Err(MvccError::Compacted)));
    req.revision = 3;
    assert_eq!(range(&store, &req).unwrap().kvs[0].value, b"2");
}

#[test]
fn put_flags() {
    // Proves prev_kv, ignore_value and ignore_lease (ErrKeyNotFound on a missing key), and the
    // lease check of a put on its own.
    let store = TestStore::new();
    let mut first = put_req("k", "v1");
    first.lease = 5;
    assert_eq!(apply_put(&store, &first).unwrap(), 2);
    let mut w = store.write(0, 0).unwrap();
    let mut req = put_req("k", "");
    req.ignore_value = true;
    req.prev_kv = true;
    let resp = kv::put(&mut w, &req, &SmallLeases).unwrap();
    w.end().unwrap();
    assert_eq!(resp.prev_kv.unwrap().value, b"v1");
    let now = &range(&store, &range_req("k", "")).unwrap().kvs[0];
    assert_eq!(
        (now.value.as_slice(), now.lease, now.version),
        (&b"v1"[..], 0, 2)
    );

    let mut req = put_req("k", "v2");
    req.ignore_lease = true;
    apply_put(&store, &first).unwrap();
    apply_put(&store, &req).unwrap();
    let now = &range(&store, &range_req("k", "")).unwrap().kvs[0];
    assert_eq!((now.value.as_slice(), now.lease), (&b"v2"[..], 5));

    let mut missing = put_req("nope", "");
    missing.ignore_value = true;
    assert!(matches!(
        apply_put(&store, &missing),
        Err(MvccError::KeyNotFound)
    ));
    let mut leased = put_req("x", "1");
    leased.lease = 100;
    assert!(matches!(
        apply_put(&store, &leased),
        Err(MvccError::LeaseNotFound)
    ));
    let mut w = store.write(0, 0).unwrap();
    assert!(matches!(
        kv::put(&mut w, &put_req("x", "1"), &NoLeases).map(|_| ()),
        Ok(())
    ));
}

#[test]
fn delete_range_prev_kvs_and_revisions() {
    // Proves prev_kvs, the deleted count, and the header revision of a delete that deletes
    // nothing (the revision begun at).
    let store = TestStore::new();
    put(&store, "a", "1");
    put(&store, "b", "2");
    let mut w = store.write(0, 0).unwrap();
    let req = DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: b"\0".to_vec(),
        prev_kv: true,
    };
    let resp = kv::delete_range(&mut w, &req).unwrap();
    w.end().unwrap();
    assert_eq!(resp.deleted, 2);
    assert_eq!(resp.prev_kvs.len(), 2);
    assert_eq!(resp.header.unwrap().revision, 4);
    let mut w = store.write(0, 0).unwrap();
    let resp = kv::delete_range(&mut w, &req).unwrap();
    w.end().unwrap();
    assert_eq!((resp.deleted, resp.header.unwrap().revision), (0, 4));
}

#[test]
fn txn_compares_on_missing_keys() {
    // Proves a missing key compares as a zero key-value except for VALUE, which fails.
    let store = TestStore::new();
    let with = |c: Compare| TxnRequest {
        compare: vec![c],
        ..TxnRequest::default()
    };
    let version_zero = cmp(
        "m",
        CompareTarget::Version,
        CompareResult::Equal,
        TargetUnion::Version(0),
    );
    assert!(txn(&store, &with(version_zero)).unwrap().succeeded);
    let create_less = cmp(
        "m",
        CompareTarget::Create,
        CompareResult::Less,
        TargetUnion::CreateRevision(1),
    );
    assert!(txn(&store, &with(create_less)).unwrap().succeeded);
    let value_ne = cmp(
        "m",
        CompareTarget::Value,
        CompareResult::NotEqual,
        TargetUnion::Value(b"x".to_vec()),
    );
    assert!(!txn(&store, &with(value_ne)).unwrap().succeeded);
    let lease_eq = cmp(
        "m",
        CompareTarget::Lease,
        CompareResult::Equal,
        TargetUnion::Lease(0),
    );
    assert!(txn(&store, &with(lease_eq)).unwrap().succeeded);
}

#[test]
fn txn_compare_results_and_ranges() {
    // Proves every compare result on every target, and a range compare holding only when it
    // holds for every key in the range.
    let store = TestStore::new();
    put(&store, "a", "5"); // 2
    put(&store, "b", "7"); // 3
    let holds = |c: Compare| {
        let req = TxnRequest {
            compare: vec![c],
            ..TxnRequest::default()
        };
        txn(&store, &req).unwrap().succeeded
    };
    use CompareResult::{Equal, Greater, Less, NotEqual};
    let value = |r, v: &str| cmp("a", CompareTarget::Value, r, TargetUnion::Value(v.into()));
    assert!(holds(value(Equal, "5")));
    assert!(holds(value(Greater, "4")));
    assert!(holds(value(Less, "6")));
    assert!(holds(value(NotEqual, "6")));
    assert!(!holds(value(Greater, "5")));
    let modr = |r, v| cmp("a", CompareTarget::Mod, r, TargetUnion::ModRevision(v));
    assert!(holds(modr(Equal, 2)) && holds(modr(Less, 3)) && !holds(modr(Greater, 2)));
    let mut span = cmp(
        "a",
        CompareTarget::Mod,
        Greater,
        TargetUnion::ModRevision(1),
    );
    span.range_end = b"c".to_vec();
    assert!(holds(span.clone()));
    span.target_union = Some(TargetUnion::ModRevision(2));
    assert!(!holds(span));
    // A target union of another kind compares against 0.
    assert!(holds(cmp(
        "a",
        CompareTarget::Version,
        Greater,
        TargetUnion::Lease(7)
    )));
}

#[test]
fn txn_branches_nested_and_revisions() {
    // Proves the chosen branch runs, nested txns take their own branch, every write shares
    // one revision, nested responses carry etcd's headers, and a txn without changes keeps
    // the revision.
    let store = TestStore::new();
    put(&store, "a", "1"); // 2
    let nested = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b"nope".to_vec()),
        )],
        success: vec![op(Request::RequestPut(put_req("wrong", "x")))],
        failure: vec![
            op(Request::RequestPut(put_req("c", "3"))),
            op(Request::RequestRange(range_req("a", "\0"))),
        ],
    };
    let req = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(1),
        )],
        success: vec![
            op(Request::RequestRange(range_req("a", ""))),
            op(Request::RequestPut(put_req("b", "2"))),
            op(Request::RequestTxn(nested)),
            op(Request::RequestDeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                ..DeleteRangeRequest::default()
            })),
        ],
        failure: vec![op(Request::RequestPut(put_req("wrong", "y")))],
    };
    let resp = txn(&store, &req).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 3);
    let kinds: Vec<Option<Response>> = resp.responses.iter().map(|r| r.response.clone()).collect();
    let [Some(Response::ResponseRange(r0)), Some(Response::ResponsePut(p1)), Some(Response::ResponseTxn(t2)), Some(Response::ResponseDeleteRange(d3))] =
        <[Option<Response>; 4]>::try_from(kinds).unwrap()
    else {
        panic!("wrong response kinds");
    };
    assert_eq!(r0.header.unwrap().revision, 2);
    assert_eq!(p1.header.unwrap().revision, 3);
    assert_eq!(t2.header, Some(ResponseHeader::default()));
    assert!(!t2.succeeded);
    let Some(Response::ResponseRange(inner)) = &t2.responses[1].response else {
        panic!("nested range missing");
    };
    // The nested range sees the txn's own writes at the txn's revision.
    assert_eq!(keys(inner), ["a", "b", "c"]);
    assert_eq!(inner.header.unwrap().revision, 3);
    assert_eq!(d3.deleted, 1);
    let all = range(&store, &range_req("\0", "\0")).unwrap();
    assert_eq!(keys(&all), ["b", "c"]);
    assert!(all.kvs.iter().all(|kv| kv.mod_revision == 3));

    let read_only = TxnRequest {
        success: vec![op(Request::RequestRange(range_req("b", "")))],
        ..TxnRequest::default()
    };
    assert_eq!(txn(&store, &read_only).unwrap().header.unwrap().revision, 3);
    assert_eq!(store.rev().unwrap(), 3);
}

#[test]
fn txn_checks_fail_before_any_write() {
    // Proves ErrKeyNotFound (ignore_value on a missing key), ErrLeaseNotFound, ErrFutureRev
    // and ErrCompacted abort the whole txn with nothing written.
    let store = TestStore::new();
    put(&store, "a", "1"); // 2
    put(&store, "a", "2"); // 3
    store.compact(3).unwrap().wait().unwrap();
    let mut ignore = put_req("missing", "");
    ignore.ignore_value = true;
    let mut leased = put_req("b", "1");
    leased.lease = 500;
    let mut future = range_req("a", "");
    future.revision = 9;
    let mut compacted = range_req("a", "");
    compacted.revision = 2;
    let cases = [
        (Request::RequestPut(ignore), "etcdserver: key not found"),
        (Request::RequestPut(leased), "lease not found"),
        (
            Request::RequestRange(future),
            "mvcc: required revision is a future revision",
        ),
        (
            Request::RequestRange(compacted),
            "mvcc: required revision has been compacted",
        ),
    ];
    for (bad, message) in cases {
        let req = TxnRequest {
            success: vec![op(Request::RequestPut(put_req("first", "x"))), op(bad)],
            ..TxnRequest::default()
        };
        let err = txn(&store, &req).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(store.rev().unwrap(), 3);
        assert!(range(&store, &range_req("first", ""))
            .unwrap()
            .kvs
            .is_empty());
    }
}

#[test]
fn read_only_txns_from_a_view() {
    // Proves read-only detection, serializable detection, and serving from a read view.
    let store = TestStore::new();
    put(&store, "a", "1");
    let mut serial = range_req("a", "");
    serial.serializable = true;
    let req = TxnRequest {
        success: vec![op(Request::RequestRange(serial))],
        failure: vec![op(Request::RequestRange(range_req("a", "")))],
        ..TxnRequest::default()
    };
    assert!(is_txn_read_only(&req));
    assert!(!is_txn_serializable(&req));
    let resp = read_only_txn(&store.read().unwrap(), &req).unwrap();
    assert_eq!(resp.header.unwrap().revision, 2);
    let writes = TxnRequest {
        success: vec![op(Request::RequestPut(put_req("a", "2")))],
        ..TxnRequest::default()
    };
    assert!(!is_txn_read_only(&writes));
    assert!(matches!(
        read_only_txn(&store.read().unwrap(), &writes),
        Err(MvccError::TxnNotReadOnly)
    ));
}

#[test]
fn request_checks_match_v3rpc() {
    // Proves etcd's pre-raft checks: empty keys, value/lease provided, too many ops, and
    // duplicate keys with checkIntervals' exceptions.
    let mut p = put_req("k", "v");
    p.ignore_value = true;
    assert_eq!(
        check_put_request(&p).unwrap_err().to_string(),
        "etcdserver: value is provided"
    );
    let mut p = put_req("k", "");
    p.ignore_lease = true;
    p.lease = 3;
    assert_eq!(
        check_put_request(&p).unwrap_err().to_string(),
        "etcdserver: lease is provided"
    );
    assert!(matches!(
        check_put_request(&put_req("", "v")),
        Err(MvccError::EmptyKey)
    ));

    let puts = |keys: &[&str]| -> Vec<RequestOp> {
        keys.iter()
            .map(|k| op(Request::RequestPut(put_req(k, "v"))))
            .collect()
    };
    let txn_of = |success: Vec<RequestOp>, failure: Vec<RequestOp>| TxnRequest {
        compare: Vec::new(),
        success,
        failure,
    };
    let del = |key: &str, end: &str| {
        op(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            range_end: end.into(),
            prev_kv: false,
        }))
    };
    assert!(check_txn(&txn_of(puts(&["a", "b"]), puts(&["a"])), 128).is_ok());
    assert!(matches!(
        check_txn(&txn_of(puts(&["a", "a"]), vec![]), 128),
        Err(MvccError::DuplicateKey)
    ));
    assert!(matches!(
        check_txn(&txn_of(puts(&["a", "b", "c"]), vec![]), 2),
        Err(MvccError::TooManyOps)
    ));
    let mut with_del = puts(&["b"]);
    with_del.push(del("a", "c"));
    assert!(matches!(
        check_txn(&txn_of(with_del, vec![]), 128),
        Err(MvccError::DuplicateKey)
    ));
    // A from-key delete never conflicts in etcd 3.4.
    let mut from_key = puts(&["b"]);
    from_key.push(del("a", "\0"));
    assert!(check_txn(&txn_of(from_key, vec![]), 128).is_ok());
    // The same key in both branches of a nested txn is fine; in a nested txn and its parent
    // it is not.
    let nested = op(Request::RequestTxn(txn_of(puts(&["x"]), puts(&["x"]))));
    assert!(check_txn(&txn_of(vec![nested.clone()], vec![]), 128).is_ok());
    let mut twice = puts(&["x"]);
    twice.push(nested);
    assert!(matches!(
        check_txn(&txn_of(twice, vec![]), 128),
        Err(MvccError::DuplicateKey)
    ));
    // An empty op is ErrGRPCKeyNotFound.
    let empty = TxnRequest {
        success: vec![RequestOp { request: None }],
        ..TxnRequest::default()
    };
    assert!(matches!(
        check_txn(&empty, 128),
        Err(MvccError::KeyNotFound)
    ));
}
