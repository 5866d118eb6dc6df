//! The KV requests (`etcdserverpb` Range, Put, DeleteRange) applied to the store, with etcd
//! 3.4's applier semantics (`etcdserver/apply.go`). Txn is in `txn.rs`, request validation in
//! `check.rs`.
//!
//! Responses carry a header with only `revision` set; the API layer fills in cluster id,
//! member id and raft term (etcd fills the outer header the same way and leaves the headers of
//! responses nested in a txn with the revision alone).
//!
//! Range: filters on min/max mod and create revision and any sort make the store read every
//! key of the range and apply the limit afterwards; otherwise the store reads `limit + 1` keys
//! so `more` is known. `count` is the number of keys in the range at the revision before any
//! filter (etcd's). A sort target other than KEY with sort order NONE sorts ascending. Ties
//! come out in the order of Go's `sort.Sort` (see `gosort.rs`).

use super::error::MvccError;
use super::gosort;
use super::view::{RangeOptions, ReadView};
use super::write::StoreWrite;
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader,
};
use crate::pb::mvccpb::KeyValue;

/// Whether a lease exists, for the lease checks of puts (etcd asks its lessor). Until the
/// lessor exists, [`NoLeases`] answers "no" for every lease, as a server without any granted
/// lease would.
pub trait LeaseLookup {
    fn lease_exists(&self, id: i64) -> bool;
}

/// A [`LeaseLookup`] in which no lease exists.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLeases;

impl LeaseLookup for NoLeases {
    fn lease_exists(&self, _id: i64) -> bool {
        false
    }
}

/// A response header carrying only a revision (the API layer adds the rest).
pub fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

/// Applies a Range (etcd's `applierV3backend.Range`) on `view`.
pub fn range(view: &impl ReadView, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
    let sort_order = req.sort_order;
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let mut limit = req.limit;
    if sort_order != SortOrder::None as i32 || filtered {
        limit = 0;
    }
    if limit > 0 {
        // One more than asked, to know whether there are more. Go's int64 wraps.
        limit = limit.wrapping_add(1);
    }
    let opts = RangeOptions {
        rev: req.revision,
        limit,
        count_only: req.count_only,
        keys_only: false,
    };
    let result = view.range(&req.key, &req.range_end, &opts)?;
    let mut kvs = result.kvs;
    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }
    sort(&mut kvs, sort_order, req.sort_target);
    let mut more = false;
    if req.limit > 0 && kvs.len() as i64 > req.limit {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header: header(result.rev),
        kvs,
        more,
        count: result.count as i64,
    })
}

/// etcd's sort step: target KEY with order NONE keeps key order; any other target with order
/// NONE sorts ascending; DESCEND is Go's `sort.Reverse`. Unknown orders or targets leave the
/// order alone.
fn sort(kvs: &mut [KeyValue], order: i32, target: i32) {
    let mut order = SortOrder::try_from(order).ok();
    let target = SortTarget::try_from(target).ok();
    if target != Some(SortTarget::Key) && order == Some(SortOrder::None) {
        order = Some(SortOrder::Ascend);
    }
    let (Some(order), Some(target)) = (order, target) else {
        return;
    };
    // etcd compares integers as `a - b < 0` (wrapping in Go).
    let less: fn(&KeyValue, &KeyValue) -> bool = match target {
        SortTarget::Key => |a, b| a.key < b.key,
        SortTarget::Version => |a, b| a.version.wrapping_sub(b.version) < 0,
        SortTarget::Create => |a, b| a.create_revision.wrapping_sub(b.create_revision) < 0,
        SortTarget::Mod => |a, b| a.mod_revision.wrapping_sub(b.mod_revision) < 0,
        SortTarget::Value => |a, b| a.value < b.value,
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => gosort::sort_by(kvs, less),
        SortOrder::Descend => gosort::sort_by(kvs, |a, b| less(b, a)),
    }
}

/// Applies a Put on its own (etcd's `Put` with no txn): checks the lease first, then as
/// [`put_in_txn`].
pub fn put(
    txn: &mut StoreWrite<'_>,
    req: &PutRequest,
    leases: &dyn LeaseLookup,
) -> Result<PutResponse, MvccError> {
    if req.lease != 0 && !leases.lease_exists(req.lease) {
        return Err(MvccError::LeaseNotFound);
    }
    put_in_txn(txn, req)
}

/// Applies a Put inside a write whose lease checks were done (etcd's `Put` with a txn):
/// reads the previous key-value when `prev_kv`, `ignore_value` or `ignore_lease` needs it
/// ([`MvccError::KeyNotFound`] if one of the latter two finds none), then writes.
pub fn put_in_txn(txn: &mut StoreWrite<'_>, req: &PutRequest) -> Result<PutResponse, MvccError> {
    let mut prev = None;
    if req.ignore_value || req.ignore_lease || req.prev_kv {
        prev = txn
            .range(&req.key, &[], &RangeOptions::default())?
            .kvs
            .into_iter()
            .next();
    }
    if (req.ignore_value || req.ignore_lease) && prev.is_none() {
        return Err(MvccError::KeyNotFound);
    }
    let value = match (&prev, req.ignore_value) {
        (Some(prev), true) => prev.value.as_slice(),
        _ => req.value.as_slice(),
    };
    let lease = match (&prev, req.ignore_lease) {
        (Some(prev), true) => prev.lease,
        _ => req.lease,
    };
    let revision = txn.put(&req.key, value, lease)?;
    Ok(PutResponse {
        header: header(revision),
        prev_kv: if req.prev_kv { prev } else { None },
    })
}

/// Applies a DeleteRange (etcd's `DeleteRange`): with `prev_kv`, the key-values deleted as
/// they were just before.
pub fn delete_range(
    txn: &mut StoreWrite<'_>,
    req: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, MvccError> {
    let mut prev_kvs = Vec::new();
    if req.prev_kv {
        prev_kvs = txn
            .range(&req.key, &req.range_end, &RangeOptions::default())?
            .kvs;
    }
    let (deleted, revision) = txn.delete_range(&req.key, &req.range_end)?;
    Ok(DeleteRangeResponse {
        header: header(revision),
        deleted,
        prev_kvs,
    })
}
