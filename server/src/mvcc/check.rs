//! The checks etcd's KV service makes before a request reaches raft (etcd 3.4
//! `api/v3rpc/key.go`): empty keys, `ignore_value` / `ignore_lease` with a value or lease,
//! `--max-txn-ops`, and puts and deletes of one key in one txn. Pure functions over the
//! request; the API layer calls them, and maps the errors with the rest.
//!
//! Duplicate detection follows etcd's `checkIntervals` exactly, quirks included: a put
//! conflicts with an earlier put of the same key (except the same key in both branches of one
//! nested txn) and with a delete of this level or of a nested txn *before* it; a delete range
//! is `[key, range_end)` compared bytewise, so a from-key delete (`range_end` `"\0"`) never
//! conflicts, and a nested txn's deletes are not checked against earlier nested txns' puts.

use std::collections::HashSet;

use super::error::MvccError;
use crate::pb::etcdserverpb::request_op::Request;
use crate::pb::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// etcd's `checkRangeRequest`.
pub fn check_range_request(req: &RangeRequest) -> Result<(), MvccError> {
    if req.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// etcd's `checkPutRequest`.
pub fn check_put_request(req: &PutRequest) -> Result<(), MvccError> {
    if req.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub fn check_delete_request(req: &DeleteRangeRequest) -> Result<(), MvccError> {
    if req.key.is_empty() {
        return Err(MvccError::EmptyKey);
    }
    Ok(())
}

/// Everything etcd's KV service checks on a Txn, in its order: `checkTxnRequest` (sizes
/// against `max_txn_ops`, empty keys, each op), then `checkIntervals` on each branch.
pub fn check_txn(req: &TxnRequest, max_txn_ops: usize) -> Result<(), MvccError> {
    check_txn_request(req, i64::try_from(max_txn_ops).unwrap_or(i64::MAX))?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

/// etcd's `checkTxnRequest`: a nested txn is checked against what its parent leaves of the
/// budget (`max_txn_ops` minus the parent's largest list).
fn check_txn_request(req: &TxnRequest, max_txn_ops: i64) -> Result<(), MvccError> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len()) as i64;
    if ops > max_txn_ops {
        return Err(MvccError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::EmptyKey);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_request_op(op, max_txn_ops - ops)?;
    }
    Ok(())
}

fn check_request_op(op: &RequestOp, max_txn_ops: i64) -> Result<(), MvccError> {
    match &op.request {
        Some(Request::RequestRange(range)) => check_range_request(range),
        Some(Request::RequestPut(put)) => check_put_request(put),
        Some(Request::RequestDeleteRange(delete)) => check_delete_request(delete),
        Some(Request::RequestTxn(txn)) => check_txn_request(txn, max_txn_ops),
        // etcd: an empty op is ErrGRPCKeyNotFound.
        None => Err(MvccError::KeyNotFound),
    }
}

/// A delete's keys: `[begin, end)`; a single-key delete is `[key, key + "\0")`.
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            begin: key.to_vec(),
            end,
        }
    }

    /// Whether the interval overlaps the point `key` (`[key, key + "\0")`).
    fn holds(&self, key: &[u8]) -> bool {
        let point = Interval::point(key);
        self.begin < point.end && point.begin < self.end
    }
}

fn deleted(dels: &[Interval], key: &[u8]) -> bool {
    dels.iter().any(|del| del.holds(key))
}

type Puts = HashSet<Vec<u8>>;

/// etcd's `checkIntervals` (see the module doc): the puts and deletes of `ops`, or
/// [`MvccError::DuplicateKey`].
fn check_intervals(ops: &[RequestOp]) -> Result<(Puts, Vec<Interval>), MvccError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(del)) if del.range_end.is_empty() => {
                Some(Interval::point(&del.key))
            }
            Some(Request::RequestDeleteRange(del)) => Some(Interval {
                begin: del.key.clone(),
                end: del.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut puts = Puts::new();
    for op in ops {
        let Some(Request::RequestTxn(txn)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&txn.success)?;
        let (puts_else, dels_else) = check_intervals(&txn.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&dels, key) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in puts_else {
            // The same key in both branches is fine: only one branch runs.
            if puts.contains(&key) && !puts_then.contains(&key) {
                return Err(MvccError::DuplicateKey);
            }
            if deleted(&dels, &key) {
                return Err(MvccError::DuplicateKey);
            }
            puts.insert(key);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if puts.contains(&put.key) || deleted(&dels, &put.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(put.key.clone());
    }
    Ok((puts, dels))
}
