//! Leases (etcd 3.4's `lease.lessor`): which leases exist, their TTLs and deadlines, which keys
//! each one holds, and the `lease` bucket that makes them survive a restart.
//!
//! What goes through raft and what does not, as in etcd:
//!
//! * Grant and revoke are raft entries; the applier calls [`Lessor::grant`] and
//!   [`Lessor::revoke`] inside the entry's store write, so the `lease` bucket row changes in
//!   the same backend session as the keys a revoke deletes.
//! * Attachments (key → lease) live only in memory: the applier reports every entry's changes
//!   ([`Lessor::on_changes`]) and the store reports, at open, the lease of every live key.
//! * Deadlines live only in memory and only on the leader ("primary"): [`Lessor::promote`]
//!   gives every lease `now + extend + remaining`, [`Lessor::demote`] takes them away. Renewal
//!   (keep-alive) moves a deadline without raft. Expired leases are found by
//!   [`Lessor::expired`] and revoked through raft by the caller.
//!
//! Records: key = the lease ID as 8 big-endian bytes, value = `leasepb.Lease {ID=1, TTL=2,
//! RemainingTTL=3}`; the TTL stored is the granted one, raised to the minimum TTL.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use oxcd_engine::backend::{BatchTx, ConcurrentReadTx};
use prost::Message as _;

use crate::mvcc::{Change, ChangeKind, LeaseLookup};
use crate::schema;

/// etcd's `MaxLeaseTTL`, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How long after an expired lease's revoke was handed out it is handed out again, if it is
/// still there (etcd: the request timeout).
pub const EXPIRED_RETRY: Duration = Duration::from_secs(7);

/// etcd's `leasepb.Lease`, the `lease` bucket value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// What a lease operation fails with; texts are etcd's internal ones, which the API maps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    #[error("lease not found")]
    NotFound,
    #[error("lease already exists")]
    Exists,
    #[error("too large lease TTL")]
    TtlTooLarge,
}

#[derive(Debug)]
struct Lease {
    ttl: i64,
    remaining_ttl: i64,
    /// `None` while not primary (etcd: "forever").
    deadline: Option<Instant>,
    /// When an expired lease may be handed out for revocation again.
    retry_at: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// etcd's `RemainingTTL()`: the checkpointed remainder if any, else the TTL.
    fn remaining(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

#[derive(Debug, Default)]
struct State {
    leases: HashMap<i64, Lease>,
    key_lease: HashMap<Vec<u8>, i64>,
    primary: bool,
}

/// The lease table of one member. See the module doc.
#[derive(Debug)]
pub struct Lessor {
    state: Mutex<State>,
    min_ttl: i64,
}

/// What [`Lessor::time_to_live`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    /// Whole seconds left (truncated, as etcd's), or -1 when the lease does not exist.
    pub ttl: i64,
    /// The granted TTL (0 when the lease does not exist).
    pub granted_ttl: i64,
    /// Attached keys, sorted.
    pub keys: Vec<Vec<u8>>,
}

/// etcd's minimum lease TTL in seconds: 1.5 election timeouts, rounded up
/// (`ceil((3 * election_ticks / 2) * tick)`); 2 s with etcd's default flags.
pub fn min_lease_ttl(election_ticks: u64, heartbeat_ms: u64) -> i64 {
    let ms = (3 * election_ticks / 2) * heartbeat_ms;
    ms.div_ceil(1000) as i64
}

impl Lessor {
    /// An empty lessor with etcd's minimum TTL `min_ttl` (seconds).
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor {
            state: Mutex::new(State::default()),
            min_ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads every lease from the `lease` bucket (not primary: no deadlines yet) and attaches
    /// `key_leases` (each live key's lease as the store found it). Returns the keys whose lease
    /// is missing, which etcd logs and leaves unattached.
    pub fn restore(
        &self,
        tx: &ConcurrentReadTx,
        key_leases: &[(Vec<u8>, i64)],
    ) -> Result<Vec<Vec<u8>>, oxcd_engine::backend::Error> {
        let mut state = self.lock();
        // A snapshot installed from the leader replaces whatever was there.
        state.leases.clear();
        state.key_lease.clear();
        tx.for_each::<oxcd_engine::backend::Error>(schema::LEASE, |_, value| {
            if let Ok(record) = LeaseRecord::decode(value) {
                state.leases.insert(
                    record.id,
                    Lease {
                        ttl: record.ttl.max(self.min_ttl),
                        remaining_ttl: record.remaining_ttl,
                        deadline: None,
                        retry_at: None,
                        keys: BTreeSet::new(),
                    },
                );
            }
            Ok(())
        })?;
        let mut orphans = Vec::new();
        for (key, id) in key_leases {
            match state.leases.get_mut(id) {
                Some(lease) => {
                    lease.keys.insert(key.clone());
                    state.key_lease.insert(key.clone(), *id);
                }
                None => orphans.push(key.clone()),
            }
        }
        Ok(orphans)
    }

    /// Applies a grant (etcd's `Grant`): TTL over the maximum and existing IDs are refused, a
    /// TTL under the minimum is raised to it; the record is written through `tx`. Returns the
    /// TTL granted.
    pub fn grant(
        &self,
        id: i64,
        ttl: i64,
        tx: &mut BatchTx<'_>,
    ) -> Result<Result<i64, LeaseError>, oxcd_engine::backend::Error> {
        if id == 0 {
            return Ok(Err(LeaseError::NotFound));
        }
        if ttl > MAX_LEASE_TTL {
            return Ok(Err(LeaseError::TtlTooLarge));
        }
        let mut state = self.lock();
        if state.leases.contains_key(&id) {
            return Ok(Err(LeaseError::Exists));
        }
        let ttl = ttl.max(self.min_ttl);
        let record = LeaseRecord {
            id,
            ttl,
            remaining_ttl: 0,
        };
        tx.put(schema::LEASE, &lease_key(id), &record.encode_to_vec())?;
        let deadline = state
            .primary
            .then(|| Instant::now() + Duration::from_secs(ttl as u64));
        state.leases.insert(
            id,
            Lease {
                ttl,
                remaining_ttl: 0,
                deadline,
                retry_at: None,
                keys: BTreeSet::new(),
            },
        );
        Ok(Ok(ttl))
    }

    /// The keys attached to lease `id`, sorted (the order a revoke deletes them in, as etcd's),
    /// or `None` if it does not exist.
    pub fn keys(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.lock()
            .leases
            .get(&id)
            .map(|lease| lease.keys.iter().cloned().collect())
    }

    /// Forgets lease `id` and deletes its record through `tx` (its keys are deleted by the
    /// caller in the same write). `NotFound` if it does not exist.
    pub fn revoke(
        &self,
        id: i64,
        tx: &mut BatchTx<'_>,
    ) -> Result<Result<(), LeaseError>, oxcd_engine::backend::Error> {
        let mut state = self.lock();
        let Some(lease) = state.leases.remove(&id) else {
            return Ok(Err(LeaseError::NotFound));
        };
        for key in &lease.keys {
            if state.key_lease.get(key) == Some(&id) {
                state.key_lease.remove(key);
            }
        }
        tx.delete(schema::LEASE, &lease_key(id))?;
        Ok(Ok(()))
    }

    /// Moves attachments for one entry's changes: a put detaches its key from its previous
    /// lease and attaches it to the lease it carries; a delete detaches it.
    pub fn on_changes(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let mut state = self.lock();
        if state.leases.is_empty() {
            // Nothing to attach to, and so nothing attached (the common case for puts).
            return;
        }
        for change in changes {
            let key = &change.kv.key;
            if let Some(old) = state.key_lease.remove(key) {
                if let Some(lease) = state.leases.get_mut(&old) {
                    lease.keys.remove(key);
                }
            }
            if change.kind == ChangeKind::Put && change.kv.lease != 0 {
                if let Some(lease) = state.leases.get_mut(&change.kv.lease) {
                    lease.keys.insert(key.clone());
                    state.key_lease.insert(key.clone(), change.kv.lease);
                }
            }
        }
    }

    /// Becomes primary (the leader): every lease expires `extend` plus its remaining TTL from
    /// now (etcd's `Promote`). A no-op while already primary.
    pub fn promote(&self, extend: Duration) {
        let mut state = self.lock();
        if state.primary {
            return;
        }
        state.primary = true;
        let now = Instant::now();
        for lease in state.leases.values_mut() {
            lease.deadline = Some(now + extend + Duration::from_secs(lease.remaining() as u64));
            lease.retry_at = None;
        }
    }

    /// Stops being primary: no deadlines (etcd's `Demote`).
    pub fn demote(&self) {
        let mut state = self.lock();
        state.primary = false;
        for lease in state.leases.values_mut() {
            lease.deadline = None;
        }
    }

    /// Renews lease `id` (keep-alive): its deadline becomes now + TTL. Returns the granted TTL;
    /// `NotFound` if it does not exist or has already expired (its revoke is on the way; etcd
    /// waits for it and then answers not found).
    pub fn renew(&self, id: i64) -> Result<i64, LeaseError> {
        let mut state = self.lock();
        let primary = state.primary;
        let lease = state.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        let now = Instant::now();
        if lease.deadline.is_some_and(|d| d <= now) {
            return Err(LeaseError::NotFound);
        }
        if primary {
            lease.deadline = Some(now + Duration::from_secs(lease.remaining() as u64));
        }
        Ok(lease.ttl)
    }

    /// etcd's TimeToLive for lease `id`.
    pub fn time_to_live(&self, id: i64) -> TimeToLive {
        let state = self.lock();
        let Some(lease) = state.leases.get(&id) else {
            return TimeToLive {
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            };
        };
        let ttl = match lease.deadline {
            Some(deadline) => remaining_secs(deadline),
            None => lease.remaining(),
        };
        TimeToLive {
            ttl,
            granted_ttl: lease.ttl,
            keys: lease.keys.iter().cloned().collect(),
        }
    }

    /// Every lease ID, soonest deadline first (ties by ID).
    pub fn leases(&self) -> Vec<i64> {
        let state = self.lock();
        let mut ids: Vec<(Option<Instant>, i64)> = state
            .leases
            .iter()
            .map(|(id, lease)| (lease.deadline, *id))
            .collect();
        ids.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Leases past their deadline that were not handed out in the last [`EXPIRED_RETRY`]: the
    /// caller proposes their revocation. At most `limit` (etcd: 500 per check).
    pub fn expired(&self, limit: usize) -> Vec<i64> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, lease) in state.leases.iter_mut() {
            if out.len() >= limit {
                break;
            }
            let due = lease.deadline.is_some_and(|d| d <= now);
            let waiting = lease.retry_at.is_some_and(|r| r > now);
            if due && !waiting {
                lease.retry_at = Some(now + EXPIRED_RETRY);
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }
}

impl LeaseLookup for Lessor {
    fn lease_exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }
}

/// The `lease` bucket key of lease `id`.
pub fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

/// Whole seconds until `deadline`, truncated toward zero (Go's `int64(d.Seconds())`).
fn remaining_secs(deadline: Instant) -> i64 {
    let now = Instant::now();
    if deadline >= now {
        (deadline - now).as_secs() as i64
    } else {
        -((now - deadline).as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_ttl_is_etcds() {
        // Proves 1.5 election timeouts rounded up: 2 s for etcd's defaults, 8 s for 5 s.
        assert_eq!(min_lease_ttl(10, 100), 2);
        assert_eq!(min_lease_ttl(50, 100), 8);
    }

    #[test]
    fn attachments_follow_puts_and_deletes() {
        // Proves a put moves its key between leases, lease 0 detaches, a delete detaches.
        let lessor = Lessor::new(2);
        {
            let mut state = lessor.lock();
            for id in [1, 2] {
                state.leases.insert(
                    id,
                    Lease {
                        ttl: 10,
                        remaining_ttl: 0,
                        deadline: None,
                        retry_at: None,
                        keys: BTreeSet::new(),
                    },
                );
            }
        }
        let put = |key: &str, lease| Change {
            kind: ChangeKind::Put,
            kv: crate::pb::mvccpb::KeyValue {
                key: key.as_bytes().to_vec(),
                lease,
                ..Default::default()
            },
        };
        lessor.on_changes(&[put("a", 1), put("b", 1)]);
        assert_eq!(lessor.keys(1).unwrap(), [b"a".to_vec(), b"b".to_vec()]);
        lessor.on_changes(&[put("a", 2)]);
        assert_eq!(lessor.keys(1).unwrap(), [b"b".to_vec()]);
        assert_eq!(lessor.keys(2).unwrap(), [b"a".to_vec()]);
        lessor.on_changes(&[put("b", 0)]);
        assert!(lessor.keys(1).unwrap().is_empty());
        let delete = Change {
            kind: ChangeKind::Delete,
            kv: crate::pb::mvccpb::KeyValue {
                key: b"a".to_vec(),
                ..Default::default()
            },
        };
        lessor.on_changes(&[delete]);
        assert!(lessor.keys(2).unwrap().is_empty());
        assert_eq!(lessor.time_to_live(3).ttl, -1);
    }
}
