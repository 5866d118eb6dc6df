//! The member: raft loop, apply layer and the handle the API serves from (etcd's
//! `etcdserver` package).
//!
//! * `start`: bootstrap or restart a member, open its backend and store, start the loop;
//! * `raft_loop`: the thread that owns the raft node: group commit, read index, snapshots;
//! * `apply`: committed entries into the store, alarms and membership, exactly once;
//! * `server`: [`EtcdServer`], proposals and linearizable reads for the API layer;
//! * [`compactor`]: auto compaction (`--auto-compaction-mode`);
//! * `idgen`: request IDs; `error`: [`ServerError`].
//!
//! May use `raft`, `mvcc`, `membership`, `config`; the API layer uses it.

mod apply;
mod apply_membership;
mod bootstrap;
pub mod compactor;
mod error;
mod idgen;
mod raft_loop;
mod reconfig;
mod server;
mod snapshot;
mod start;
mod timeout;

pub use error::ServerError;
pub use server::{Applied, ApplyResult, EtcdServer, Limits};
pub use start::{start, Started};

use crate::membership::{Cluster, Member};

/// The data of a raft snapshot (a snap file). etcd 3.4 stores its v2 store there, which holds
/// the membership; oxcd has no v2 store and keeps all other state in `member/snap/db`, so the
/// snapshot records the membership as of its index, as JSON:
/// `{"oxcd":{"members":[<member JSON>…],"removed":[<ID>…]}}`. A restart rebuilds the
/// membership from it and replays the conf changes after it, so each one gets the verdict it
/// got the first time (see `apply`).
fn snapshot_data(cluster: &Cluster) -> Vec<u8> {
    let data = SnapshotData {
        oxcd: SnapshotMembership {
            members: cluster.members.values().cloned().collect(),
            removed: cluster.removed.iter().copied().collect(),
        },
    };
    serde_json::to_vec(&data).expect("a membership always serialises")
}

/// The JSON a snapshot's data holds (see [`snapshot_data`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotData {
    oxcd: SnapshotMembership,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotMembership {
    members: Vec<Member>,
    /// Absent in snap files written before removals were recorded: nothing was removed.
    #[serde(default)]
    removed: Vec<u64>,
}

/// The membership a snapshot's data records (see [`snapshot_data`]); `None` if the data is not
/// oxcd's (an etcd snap file holds a v2 store).
fn membership_from_snapshot_data(cluster_id: u64, data: &[u8]) -> Option<Cluster> {
    let data: SnapshotData = serde_json::from_slice(data).ok()?;
    let mut cluster = Cluster::new(cluster_id, data.oxcd.members);
    cluster.removed = data.oxcd.removed.into_iter().collect();
    Some(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_data_round_trips_the_membership() {
        // Proves the membership written into a snap file is read back whole, removals included,
        // and that data from before removals were recorded, or not oxcd's, is handled.
        let a = Member::new("a", &["http://127.0.0.1:1".to_string()], "t");
        let mut cluster = Cluster::new(7, [a.clone()]);
        cluster.removed.insert(0xabc);
        let data = snapshot_data(&cluster);
        assert_eq!(membership_from_snapshot_data(7, &data), Some(cluster));
        let old = br#"{"oxcd":{"members":[]}}"#;
        assert_eq!(
            membership_from_snapshot_data(7, old),
            Some(Cluster::new(7, []))
        );
        assert_eq!(membership_from_snapshot_data(7, br#"{"Root":{}}"#), None);
        assert_eq!(membership_from_snapshot_data(7, b"\x00"), None);
    }
}
