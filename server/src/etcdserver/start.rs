//! Starting a member (etcd's `NewServer`): bootstrap a new one or restart an existing one,
//! open its backend and store, and start the raft loop thread.
//!
//! * New member (no WAL yet): etcd's bootstrap checks, member and cluster IDs from
//!   `--initial-cluster` and its token, a WAL created holding the `etcdserverpb.Metadata`
//!   (member and cluster ID) and one committed `ConfChangeAddNode` entry per initial member.
//! * Restart: IDs from the WAL's metadata, raft state from the newest snap file and the WAL;
//!   the store reads its consistent index from `meta`, and the first raft step re-applies only
//!   the entries beyond it.
//!
//! Either way the backend is `member/snap/db`, the WAL `member/wal` (or `--wal-dir`).

use std::sync::{mpsc, Arc, Mutex};

use oxcd_engine::backend::{Backend, BackendConfig};
use oxcd_wal::WalOptions;
use prost::Message as _;

use super::apply::Applier;
use super::error::ServerError;
use super::idgen::IdGenerator;
use super::raft_loop::{LoopConfig, RaftLoop};
use super::server::{Alarms, EtcdServer, Limits, Members, RaftStatus, Shared, Waiters};
use crate::config::Config;
use crate::lease::{min_lease_ttl, Lessor};
use crate::membership::{self, Member};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::AlarmMember;
use crate::raft::{wal_exists, NodeConfig, Peer, RaftNode};
use crate::schema;

/// The WAL's metadata record (etcd's `etcdserverpb.Metadata`).
#[derive(Clone, PartialEq, prost::Message)]
struct WalMetadata {
    #[prost(uint64, tag = "1")]
    node_id: u64,
    #[prost(uint64, tag = "2")]
    cluster_id: u64,
}

/// A started member: the handle the API serves from and the raft loop thread.
pub struct Started {
    /// The handle.
    pub server: EtcdServer,
    /// The raft loop; it ends after [`EtcdServer::stop`] (Ok) or on a fatal error.
    pub raft_thread: std::thread::JoinHandle<Result<(), ServerError>>,
}

/// Starts the member `cfg` describes. See the module doc.
pub fn start(cfg: &Config) -> Result<Started, ServerError> {
    let wal_dir = cfg.wal_dir();
    let snap_dir = cfg.snap_dir();
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| ServerError::Internal(format!("cannot create {}: {e}", snap_dir.display())))?;
    let mut node_cfg = NodeConfig::new(0, wal_dir.clone(), snap_dir);
    node_cfg.heartbeat_tick = 1;
    node_cfg.election_tick = cfg.election_ticks().max(2) as usize;
    node_cfg.wal_options = WalOptions {
        max_wals: keep_limit(cfg.max_wals),
        ..WalOptions::default()
    };
    let (node, member_id, cluster_id) = if wal_exists(&wal_dir) {
        restart_node(node_cfg)?
    } else {
        bootstrap_node(cfg, node_cfg)?
    };
    let backend = Backend::open(BackendConfig::new(cfg.backend_path()))?;
    let store = Store::open(backend)?;
    record_versions(&store)?;
    let read = store.backend().read_tx()?;
    let members = membership::load(&read)?;
    let alarms = load_alarms(&read)?;
    let lessor = Lessor::new(min_lease_ttl(
        cfg.election_ticks(),
        cfg.heartbeat_interval_ms,
    ));
    for key in lessor.restore(&read, store.restored_key_leases())? {
        tracing::warn!(key = %String::from_utf8_lossy(&key), "failed to attach a lease");
    }
    drop(read);
    let hub = crate::mvcc::watch::EventHub::new(store.rev()?);
    let (to_loop, requests) = mpsc::channel();
    let shared = Arc::new(Shared {
        store,
        member_id,
        cluster_id,
        members: Members::load(members, local_attributes(cfg, member_id)),
        alarms: Alarms::load(alarms),
        status: RaftStatus::default(),
        waiters: Waiters::default(),
        to_loop: Mutex::new(Some(to_loop)),
        ids: IdGenerator::new(member_id),
        limits: Limits {
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops as usize,
            quota_bytes: cfg.backend_quota_bytes(),
            request_timeout: cfg.request_timeout(),
            watch_progress_interval: cfg.watch_progress_notify_interval,
        },
        lessor,
        hub,
        election_timeout: std::time::Duration::from_millis(
            cfg.election_ticks() * cfg.heartbeat_interval_ms,
        ),
    });
    let applier = Applier::new(Arc::clone(&shared))?;
    let raft_loop = RaftLoop::new(
        node,
        applier,
        requests,
        LoopConfig {
            tick: std::time::Duration::from_millis(cfg.heartbeat_interval_ms.max(1)),
            snapshot_count: cfg.snapshot_count,
            max_snapshots: keep_limit(cfg.max_snapshots),
            campaign_if_alone: true,
        },
    );
    let raft_thread = std::thread::Builder::new()
        .name("raft".to_string())
        .spawn(move || raft_loop.run())
        .map_err(|e| ServerError::Internal(format!("cannot start the raft thread: {e}")))?;
    Ok(Started {
        server: EtcdServer { shared },
        raft_thread,
    })
}

/// `--max-wals` / `--max-snapshots`: files kept, where etcd's 0 means all of them.
fn keep_limit(setting: u64) -> usize {
    match setting {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

fn restart_node(node_cfg: NodeConfig) -> Result<(RaftNode, u64, u64), ServerError> {
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
    Ok((node, member_id, cluster_id))
}

fn bootstrap_node(
    cfg: &Config,
    mut node_cfg: NodeConfig,
) -> Result<(RaftNode, u64, u64), ServerError> {
    if !cfg.is_new_cluster() {
        return Err(ServerError::Internal(
            "joining an existing cluster (--initial-cluster-state=existing) is not supported yet"
                .to_string(),
        ));
    }
    let initial = cfg
        .verify_bootstrap()
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    let members: Vec<Member> = initial
        .iter()
        .map(|m| {
            let urls: Vec<String> = m.peer_urls.iter().map(|u| u.to_string()).collect();
            Member::new(&m.name, &urls, &cfg.initial_cluster_token)
        })
        .collect();
    let local = members
        .iter()
        .find(|m| m.name == cfg.name)
        .map(|m| m.id)
        .ok_or_else(|| {
            ServerError::Internal(format!("member {:?} not in the initial cluster", cfg.name))
        })?;
    let cluster_id = membership::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    let metadata = WalMetadata {
        node_id: local,
        cluster_id,
    }
    .encode_to_vec();
    let peers: Vec<Peer> = members
        .iter()
        .map(|m| Peer {
            id: m.id,
            context: m.to_json(),
        })
        .collect();
    node_cfg.id = local;
    let node = RaftNode::start_new(&node_cfg, &metadata, &peers)?;
    tracing::info!(
        member = format!("{local:x}"),
        cluster = format!("{cluster_id:x}"),
        "starting member in a new cluster"
    );
    Ok((node, local, cluster_id))
}

/// This member's ID, name and client URLs from its flags. etcd publishes them through raft at
/// every start; a single member simply takes them (issue 5 proposes them to peers).
fn local_attributes(cfg: &Config, member_id: u64) -> (u64, String, Vec<String>) {
    let client_urls = cfg
        .advertise_client_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    (member_id, cfg.name.clone(), client_urls)
}

/// Writes what etcd records at start when missing: the auth store's revision (1, as a new auth
/// store starts) and the cluster version this member runs, so a `db` carries the same keys as
/// etcd's (`etcdctl snapshot status` counts them).
fn record_versions(store: &Store) -> Result<(), ServerError> {
    let read = store.backend().read_tx()?;
    let has_auth = read.get(schema::AUTH, schema::AUTH_REVISION)?.is_some();
    let version = crate::config::ETCD_SERVER_VERSION;
    let same_version =
        read.get(schema::CLUSTER, schema::CLUSTER_VERSION)? == Some(version.as_bytes());
    drop(read);
    if has_auth && same_version {
        return Ok(());
    }
    let mut tx = store.backend().batch_tx()?;
    if !has_auth {
        tx.put(schema::AUTH, schema::AUTH_REVISION, &1u64.to_be_bytes())?;
    }
    tx.put(schema::CLUSTER, schema::CLUSTER_VERSION, version.as_bytes())?;
    tx.release()?;
    Ok(())
}

fn load_alarms(
    tx: &oxcd_engine::backend::ConcurrentReadTx,
) -> Result<Vec<AlarmMember>, ServerError> {
    let mut alarms = Vec::new();
    tx.for_each::<oxcd_engine::backend::Error>(schema::ALARM, |key, _| {
        if let Ok(alarm) = AlarmMember::decode(key) {
            alarms.push(alarm);
        }
        Ok(())
    })?;
    Ok(alarms)
}
