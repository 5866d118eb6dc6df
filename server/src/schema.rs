//! The registry of etcd's bucket names and meta keys (etcd's `schema/bucket.go` idea).
//!
//! Every bucket and meta key the server touches is named here and nowhere else.

/// Revision-keyed key/value history (17-byte revision keys, mvccpb.KeyValue values).
pub const KEY: &[u8] = b"key";
/// Consistent index, term, compaction progress.
pub const META: &[u8] = b"meta";
/// Leases by ID.
pub const LEASE: &[u8] = b"lease";
/// Alarms raised on the cluster.
pub const ALARM: &[u8] = b"alarm";
/// Cluster-level facts (cluster version).
pub const CLUSTER: &[u8] = b"cluster";
/// Members of the cluster.
pub const MEMBERS: &[u8] = b"members";
/// Members removed from the cluster (never allowed back).
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
/// Auth enabled flag and revision.
pub const AUTH: &[u8] = b"auth";
/// Auth users.
pub const AUTH_USERS: &[u8] = b"authUsers";
/// Auth roles.
pub const AUTH_ROLES: &[u8] = b"authRoles";

/// Meta key holding the last applied raft index (8 bytes, big-endian).
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Meta key holding the term of the last applied entry (8 bytes, big-endian).
pub const META_TERM: &[u8] = b"term";
/// Meta key holding the compaction revision scheduled (17-byte revision key).
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
/// Meta key holding the compaction revision finished (17-byte revision key).
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

/// `cluster` key holding the cluster version, as text (`3.5.0`).
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// `auth` key holding the auth store's revision (8 bytes, big-endian; 1 when created).
pub const AUTH_REVISION: &[u8] = b"authRevision";

/// Every bucket etcd 3.4 creates at start, in the order it creates them.
pub const ALL_BUCKETS: &[&[u8]] = &[
    KEY,
    META,
    LEASE,
    ALARM,
    CLUSTER,
    MEMBERS,
    MEMBERS_REMOVED,
    AUTH,
    AUTH_USERS,
    AUTH_ROLES,
];

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_are_unique() {
        // Proves no two registry entries share a name (a typo would silently merge buckets).
        let mut names: Vec<&[u8]> = super::ALL_BUCKETS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), super::ALL_BUCKETS.len());
    }
}
