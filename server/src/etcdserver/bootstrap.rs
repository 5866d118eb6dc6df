//! How a member's raft node comes to be (etcd's `NewServer` branches): a new cluster's member
//! bootstraps from `--initial-cluster`; a member with a WAL restarts from it and its newest
//! snap file, ignoring the initial flags. Also where the membership starts from: the
//! snapshot's data, so that the conf changes after it replay to the same verdicts (see
//! `apply_membership`).

use std::time::Duration;

use oxcd_engine::backend::ConcurrentReadTx;
use oxcd_wal::pb;
use prost::Message as _;

use super::error::ServerError;
use crate::config::Config;
use crate::membership::{self, Cluster, Member};
use crate::pb::etcdserverpb::Metadata as WalMetadata;
use crate::raft::transport;
use crate::raft::{NodeConfig, Peer, RaftNode};

/// How long a joining member waits for a running member's membership (etcd: 10 s).
const JOIN_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new member asks each peer whether it was bootstrapped before (etcd: 1 s).
const BOOTSTRAPPED_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A raft node ready to run, with the IDs it runs under.
pub(super) struct Booted {
    pub(super) node: RaftNode,
    pub(super) member_id: u64,
    pub(super) cluster_id: u64,
    /// The snapshot raft restarted from (`None`: it replays the log from index 1).
    pub(super) snapshot: Option<pb::Snapshot>,
    /// A joining member's peers as the running cluster listed them: the transport talks to
    /// them before the member's own log knows them.
    pub(super) remotes: Vec<Member>,
}

/// The membership as of the point raft starts applying from: empty for a log replayed from
/// index 1 (its first entries add the initial members), else the snapshot's. A snapshot whose
/// data is not oxcd's (an etcd data dir) falls back to the buckets, as of the consistent
/// index: the conf changes replayed after it are then judged against a later membership.
pub(super) fn membership_at_start(
    cluster_id: u64,
    snapshot: Option<&pb::Snapshot>,
    read: &ConcurrentReadTx,
) -> Result<Cluster, ServerError> {
    let Some(snapshot) = snapshot else {
        return Ok(Cluster::new(cluster_id, []));
    };
    if let Some(cluster) = super::membership_from_snapshot_data(cluster_id, &snapshot.data) {
        return Ok(cluster);
    }
    tracing::warn!(
        index = snapshot.metadata.index,
        "the snapshot holds no oxcd membership; starting from the members bucket"
    );
    Ok(membership::load_cluster(cluster_id, read)?)
}

/// Restarts from the WAL and the newest snap file.
pub(super) fn restart_node(node_cfg: NodeConfig) -> Result<Booted, ServerError> {
    let mut ids = (0, 0);
    let (node, restored) = RaftNode::restart_as(&node_cfg, |metadata| {
        let metadata = WalMetadata::decode(metadata)
            .map_err(|e| format!("{}: bad WAL metadata: {e}", node_cfg.wal_dir.display()))?;
        ids = (metadata.node_id, metadata.cluster_id);
        Ok(metadata.node_id)
    })?;
    let (member_id, cluster_id) = ids;
    tracing::info!(
        member = format!("{member_id:x}"),
        cluster = format!("{cluster_id:x}"),
        commit = restored.hard_state.commit,
        "restarting member"
    );
    Ok(Booted {
        node,
        member_id,
        cluster_id,
        snapshot: restored.snapshot,
        remotes: Vec::new(),
    })
}

/// Starts a member of a new cluster from `--initial-cluster` (etcd's bootstrap).
pub(super) fn bootstrap_node(
    cfg: &Config,
    mut node_cfg: NodeConfig,
) -> Result<Booted, ServerError> {
    if !cfg.is_new_cluster() {
        return join_existing(cfg, node_cfg);
    }
    let members = initial_members(cfg)?;
    let local = members
        .iter()
        .find(|m| m.name == cfg.name)
        .map(|m| m.id)
        .ok_or_else(|| {
            ServerError::Internal(format!("member {:?} not in the initial cluster", cfg.name))
        })?;
    let cluster_id = membership::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    let metadata = wal_metadata(local, cluster_id);
    let peers: Vec<Peer> = members
        .iter()
        .map(|m| Peer {
            id: m.id,
            context: m.to_json(),
        })
        .collect();
    check_not_bootstrapped(&members, local, cluster_id)?;
    node_cfg.id = local;
    let node = RaftNode::start_new(&node_cfg, &metadata, &peers)?;
    tracing::info!(
        member = format!("{local:x}"),
        cluster = format!("{cluster_id:x}"),
        "starting member in a new cluster"
    );
    Ok(Booted {
        node,
        member_id: local,
        cluster_id,
        snapshot: None,
        remotes: Vec::new(),
    })
}

/// The WAL's metadata record for a new WAL (etcd's `etcdserverpb.Metadata`).
fn wal_metadata(member_id: u64, cluster_id: u64) -> Vec<u8> {
    WalMetadata {
        node_id: member_id,
        cluster_id,
    }
    .encode_to_vec()
}

/// The members `--initial-cluster` names, with IDs derived from their URLs and the token.
fn initial_members(cfg: &Config) -> Result<Vec<Member>, ServerError> {
    let initial = cfg
        .verify_bootstrap()
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(initial
        .iter()
        .map(|m| {
            let urls: Vec<String> = m.peer_urls.iter().map(|u| u.to_string()).collect();
            Member::new(&m.name, &urls, &cfg.initial_cluster_token)
        })
        .collect())
}

/// etcd's `isMemberBootstrapped`: a new member whose ID a running peer lists as started (with
/// client URLs) was bootstrapped before and lost its data dir; starting it as new would fork
/// the cluster. Peers that do not answer within a second are skipped.
fn check_not_bootstrapped(
    members: &[Member],
    local: u64,
    cluster_id: u64,
) -> Result<(), ServerError> {
    for member in members.iter().filter(|m| m.id != local) {
        let Ok((_, listed)) = transport::fetch_members(
            &member.peer_urls,
            local,
            cluster_id,
            BOOTSTRAPPED_CHECK_TIMEOUT,
        ) else {
            continue;
        };
        if listed
            .iter()
            .any(|m| m.id == local && !m.client_urls.is_empty())
        {
            return Err(ServerError::Internal(format!(
                "member {local:x} has already been bootstrapped"
            )));
        }
    }
    Ok(())
}

/// Joins a running cluster (`--initial-cluster-state existing`, etcd's "no WAL, existing"
/// branch): fetch the membership from the other members' peer URLs, match every member to
/// an `--initial-cluster` entry by its peer URLs to learn the IDs (this member's was assigned
/// by MemberAdd), and start raft empty under the running cluster's ID.
fn join_existing(cfg: &Config, mut node_cfg: NodeConfig) -> Result<Booted, ServerError> {
    let local_members = initial_members(cfg)?;
    let mut peer_urls: Vec<String> = local_members
        .iter()
        .filter(|m| m.name != cfg.name)
        .flat_map(|m| m.peer_urls.iter().cloned())
        .collect();
    peer_urls.sort();
    let (cluster_id, existing) = transport::fetch_members(&peer_urls, 0, 0, JOIN_FETCH_TIMEOUT)
        .map_err(|e| {
            tracing::warn!(%e, "cannot fetch the membership from the peers");
            ServerError::Internal(
                "cannot fetch cluster info from peer urls: could not retrieve cluster \
                 information from the given URLs"
                    .to_string(),
            )
        })?;
    if existing.is_empty() {
        return Err(ServerError::Internal(
            "cannot fetch cluster info from peer urls: failed to get raft cluster member(s) \
             from the given URLs"
                .to_string(),
        ));
    }
    let local = assign_ids(&cfg.name, &local_members, &existing, cluster_id)?;
    let metadata = wal_metadata(local, cluster_id);
    node_cfg.id = local;
    let node = RaftNode::start_join(&node_cfg, &metadata)?;
    tracing::info!(
        member = format!("{local:x}"),
        cluster = format!("{cluster_id:x}"),
        "joining an existing cluster"
    );
    Ok(Booted {
        node,
        member_id: local,
        cluster_id,
        snapshot: None,
        remotes: existing.into_iter().filter(|m| m.id != local).collect(),
    })
}

/// etcd's `ValidateClusterAndAssignIDs`: the flags must list as many members as the running
/// cluster has, and each running member must match an `--initial-cluster` entry by its set
/// of peer URLs. Returns the ID the running cluster knows `name` by.
fn assign_ids(
    name: &str,
    local_members: &[Member],
    existing: &[Member],
    cluster_id: u64,
) -> Result<u64, ServerError> {
    let fail = |reason: String| {
        ServerError::Internal(format!(
            "error validating peerURLs {{ClusterID:{cluster_id:x} Members:{}}}: {reason}",
            existing
                .iter()
                .map(|m| format!("{:x}={:?}", m.id, m.peer_urls))
                .collect::<Vec<_>>()
                .join(",")
        ))
    };
    if local_members.len() != existing.len() {
        return Err(fail("member count is unequal".to_string()));
    }
    let sorted = |urls: &[String]| {
        let mut urls = urls.to_vec();
        urls.sort();
        urls
    };
    let mut local_id = None;
    for member in existing {
        let urls = sorted(&member.peer_urls);
        let matched = local_members
            .iter()
            .find(|l| sorted(&l.peer_urls) == urls)
            .ok_or_else(|| {
                fail(format!(
                    "PeerURLs: no match found for existing member ({:x}, {:?})",
                    member.id, member.peer_urls
                ))
            })?;
        if matched.name == name {
            local_id = Some(member.id);
        }
    }
    local_id.ok_or_else(|| {
        fail(format!(
            "couldn't find local name {name:?} in the running cluster"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, url: &str, id: u64) -> Member {
        Member {
            id,
            name: name.to_string(),
            peer_urls: vec![url.to_string()],
            ..Member::default()
        }
    }

    #[test]
    fn a_joining_member_takes_the_ids_the_running_cluster_knows() {
        // Proves IDs are matched by peer URLs (names ignored) and the errors etcd gives for a
        // wrong member count and an unmatched member.
        let local = [member("a", "http://h:1", 1), member("new", "http://h:2", 2)];
        let existing = [member("a", "http://h:1", 10), member("", "http://h:2", 20)];
        assert_eq!(assign_ids("new", &local, &existing, 7).unwrap(), 20);
        assert_eq!(assign_ids("a", &local, &existing, 7).unwrap(), 10);
        let e = assign_ids("new", &local[..1], &existing, 7).unwrap_err();
        assert!(e.to_string().ends_with("member count is unequal"), "{e}");
        let other = [member("a", "http://h:1", 10), member("", "http://h:3", 30)];
        let e = assign_ids("new", &local, &other, 7).unwrap_err();
        assert!(
            e.to_string()
                .contains("PeerURLs: no match found for existing member (1e, [\"http://h:3\"])"),
            "{e}"
        );
    }
}
