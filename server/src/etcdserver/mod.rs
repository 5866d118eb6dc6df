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
pub mod compactor;
mod error;
mod idgen;
mod raft_loop;
mod server;
mod snapshot;
mod start;

pub use error::ServerError;
pub use server::{Applied, ApplyResult, EtcdServer, Limits};
pub use start::{start, Started};

use crate::membership::Member;

/// The data of a raft snapshot (a snap file). etcd 3.4 stores its v2 store there; oxcd has no
/// v2 store and keeps all state in `member/snap/db`, so the snapshot records only the members,
/// as JSON, for tools to show.
fn snapshot_data(members: &[Member]) -> Vec<u8> {
    let members: Vec<serde_json::Value> = members
        .iter()
        .map(|m| serde_json::from_slice(&m.to_json()).unwrap_or_default())
        .collect();
    serde_json::to_vec(&serde_json::json!({ "oxcd": { "members": members } })).unwrap_or_default()
}
