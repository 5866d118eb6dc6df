//! Txn (etcd 3.4's `applierV3backend.Txn`): compares, then the success or failure branch,
//! nested txns included, all at one revision.
//!
//! Steps, as etcd takes them:
//!
//! 1. Evaluate the compares of the txn and, recursively, of every nested txn in the branch
//!    chosen, against the view before any change: the [`Path`].
//! 2. If the txn writes at all (any op other than a range, in either branch, at the top
//!    level), check every put on the path: `ignore_value` / `ignore_lease` need the key to
//!    exist ([`MvccError::KeyNotFound`]), a lease must exist ([`MvccError::LeaseNotFound`]).
//!    Then check every range on the path against the view's revision and compaction revision
//!    ([`MvccError::FutureRev`], [`MvccError::Compacted`]). A failed check applies nothing.
//! 3. Apply the ops of the path in order; nested txns answer with a header without revision.
//!    The txn's revision is the view's, plus one if anything changed.
//!
//! A compare reads `[key, range_end)` (3.4 compares ranges) and holds if it holds for every
//! key found. With no key found, a VALUE compare fails (a missing value cannot be compared);
//! the others compare a zero key-value (version, create, mod revision and lease 0). Results:
//! EQUAL, NOT_EQUAL, GREATER, LESS; an unknown result holds; an unknown target compares equal.

use std::cmp::Ordering;

use super::error::MvccError;
use super::kv::{self, header, LeaseLookup};
use super::view::{RangeOptions, RangeResult, ReadView, StoreRead};
use super::write::StoreWrite;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::response_op::Response;
use crate::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::pb::mvccpb::KeyValue;

/// Applies `req` in the write `txn` (the apply loop's path for every txn through raft).
pub fn apply_txn(
    txn: &mut StoreWrite<'_>,
    req: &TxnRequest,
    leases: &dyn LeaseLookup,
) -> Result<TxnResponse, MvccError> {
    run(txn, req, leases)
}

/// Serves a read-only txn from a read view (serializable txns, or linearizable ones after a
/// read index). [`MvccError::TxnNotReadOnly`] if `req` writes.
pub fn read_only_txn(view: &StoreRead, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
    if !is_txn_read_only(req) {
        return Err(MvccError::TxnNotReadOnly);
    }
    run(&mut ReadOnly(view), req, &kv::NoLeases)
}

/// etcd's `isTxnReadonly`: every op of both branches is a range (a nested txn counts as a
/// write).
pub fn is_txn_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| matches!(op.request, Some(Request::RequestRange(_))))
}

/// etcd's `isTxnSerializable`: every op of both branches is a serializable range.
pub fn is_txn_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| matches!(&op.request, Some(Request::RequestRange(r)) if r.serializable))
}

/// What a txn can run against.
trait TxnTarget: ReadView {
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError>;
    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError>;
    fn changed(&self) -> bool;
}

impl TxnTarget for StoreWrite<'_> {
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        kv::put_in_txn(self, req)
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        kv::delete_range(self, req)
    }

    fn changed(&self) -> bool {
        !self.changes().is_empty()
    }
}

/// A read view that refuses writes (reached only if a caller skipped the read-only check).
struct ReadOnly<'v>(&'v StoreRead);

impl ReadView for ReadOnly<'_> {
    fn rev(&self) -> i64 {
        self.0.rev()
    }

    fn first_rev(&self) -> i64 {
        self.0.first_rev()
    }

    fn range(&self, key: &[u8], end: &[u8], opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.0.range(key, end, opts)
    }
}

impl TxnTarget for ReadOnly<'_> {
    fn put(&mut self, _req: &PutRequest) -> Result<PutResponse, MvccError> {
        Err(MvccError::TxnNotReadOnly)
    }

    fn delete_range(
        &mut self,
        _req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        Err(MvccError::TxnNotReadOnly)
    }

    fn changed(&self) -> bool {
        false
    }
}

/// The branch a txn took, and those taken by the nested txns of that branch, in op order.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn run<T: TxnTarget>(
    target: &mut T,
    req: &TxnRequest,
    leases: &dyn LeaseLookup,
) -> Result<TxnResponse, MvccError> {
    let path = compare_to_path(target, req);
    if !is_txn_read_only(req) {
        check_ops(req, &path, &mut |op| check_put(target, op, leases))?;
    }
    check_ops(req, &path, &mut |op| check_range(target, op))?;
    let mut response = apply(target, req, &path)?;
    let mut rev = target.rev();
    if target.changed() {
        rev += 1;
    }
    response.header = header(rev);
    Ok(response)
}

fn branch<'r>(req: &'r TxnRequest, path: &Path) -> &'r [RequestOp] {
    if path.succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn compare_to_path(view: &impl ReadView, req: &TxnRequest) -> Path {
    let succeeded = req.compare.iter().all(|c| apply_compare(view, c));
    let ops = if succeeded {
        &req.success
    } else {
        &req.failure
    };
    let nested = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestTxn(txn)) => Some(compare_to_path(view, txn)),
            _ => None,
        })
        .collect();
    Path { succeeded, nested }
}

fn apply_compare(view: &impl ReadView, c: &Compare) -> bool {
    let Ok(result) = view.range(&c.key, &c.range_end, &RangeOptions::default()) else {
        return false;
    };
    if result.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    result.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let int =
        |pick: fn(&TargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(pick).unwrap_or(0);
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let value = match &c.target_union {
                Some(TargetUnion::Value(value)) => value.as_slice(),
                _ => &[],
            };
            kv.value.as_slice().cmp(value)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int(|u| match u {
            TargetUnion::CreateRevision(rev) => Some(*rev),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int(|u| match u {
            TargetUnion::ModRevision(rev) => Some(*rev),
            _ => None,
        })),
        Ok(CompareTarget::Version) => kv.version.cmp(&int(|u| match u {
            TargetUnion::Version(version) => Some(*version),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int(|u| match u {
            TargetUnion::Lease(lease) => Some(*lease),
            _ => None,
        })),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}

/// Calls `check` on every non-txn op along `path` (etcd's `checkRequests`).
fn check_ops(
    req: &TxnRequest,
    path: &Path,
    check: &mut dyn FnMut(&RequestOp) -> Result<(), MvccError>,
) -> Result<(), MvccError> {
    let mut nested = path.nested.iter();
    for op in branch(req, path) {
        if let Some(Request::RequestTxn(txn)) = &op.request {
            let Some(nested_path) = nested.next() else {
                return Err(path_mismatch());
            };
            check_ops(txn, nested_path, check)?;
            continue;
        }
        check(op)?;
    }
    Ok(())
}

fn check_put(
    view: &impl ReadView,
    op: &RequestOp,
    leases: &dyn LeaseLookup,
) -> Result<(), MvccError> {
    let Some(Request::RequestPut(put)) = &op.request else {
        return Ok(());
    };
    if put.ignore_value || put.ignore_lease {
        let found = view.range(&put.key, &[], &RangeOptions::default())?;
        if found.kvs.is_empty() {
            return Err(MvccError::KeyNotFound);
        }
    }
    if put.lease != 0 && !leases.lease_exists(put.lease) {
        return Err(MvccError::LeaseNotFound);
    }
    Ok(())
}

fn check_range(view: &impl ReadView, op: &RequestOp) -> Result<(), MvccError> {
    let Some(Request::RequestRange(range)) = &op.request else {
        return Ok(());
    };
    match range.revision {
        0 => Ok(()),
        rev if rev > view.rev() => Err(MvccError::FutureRev),
        rev if rev < view.first_rev() => Err(MvccError::Compacted),
        _ => Ok(()),
    }
}

/// Applies the ops along `path` (etcd's `applyTxn`); the header is left to the caller.
fn apply<T: TxnTarget>(
    target: &mut T,
    req: &TxnRequest,
    path: &Path,
) -> Result<TxnResponse, MvccError> {
    let ops = branch(req, path);
    let mut nested = path.nested.iter();
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            None => None,
            Some(Request::RequestRange(range)) => {
                Some(Response::ResponseRange(kv::range(&*target, range)?))
            }
            Some(Request::RequestPut(put)) => Some(Response::ResponsePut(target.put(put)?)),
            Some(Request::RequestDeleteRange(delete)) => {
                Some(Response::ResponseDeleteRange(target.delete_range(delete)?))
            }
            Some(Request::RequestTxn(txn)) => {
                let nested_path = nested.next().ok_or_else(path_mismatch)?;
                let mut response = apply(target, txn, nested_path)?;
                // etcd answers a nested txn with an empty header.
                response.header = Some(ResponseHeader::default());
                Some(Response::ResponseTxn(response))
            }
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: path.succeeded,
        responses,
    })
}

/// The path was built from the same request, so it always matches; this is a broken
/// invariant reported as a value.
fn path_mismatch() -> MvccError {
    MvccError::corrupted("txn path does not match the request")
}
