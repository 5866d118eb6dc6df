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
use super::bootstrap::{self, Booted};
use super::error::ServerError;
use super::idgen::IdGenerator;
use super::raft_loop::{LoopConfig, RaftLoop};
use super::server::{
    Alarms, EtcdServer, Limits, LoopRequest, Members, RaftStatus, Shared, Waiters,
};
use crate::config::{BindAddr, Config};
use crate::lease::{min_lease_ttl, Lessor};
use crate::mvcc::Store;
use crate::pb::etcdserverpb::AlarmMember;
use crate::raft::transport::{EarlyCloser, Transport, TransportConfig};
use crate::raft::{wal_exists, NodeConfig};
use crate::schema;

/// A started member: the handle the API serves from and the raft loop thread.
pub struct Started {
    /// The handle.
    pub server: EtcdServer,
    /// The raft loop; it ends after [`EtcdServer::stop`] (Ok) or on a fatal error.
    pub raft_thread: std::thread::JoinHandle<Result<(), ServerError>>,
}

/// Starts the member `cfg` describes. See the module doc.
pub fn start(cfg: &Config) -> Result<Started, ServerError> {
    let peer_listeners = bind_peer_listeners(cfg)?;
    // Until the transport runs, peers' connections are closed at once rather than left to
    // time out in the backlog (see `EarlyCloser`); dropped on any early return.
    let early = EarlyCloser::start(&peer_listeners)
        .map_err(|e| ServerError::Internal(format!("cannot watch the peer listeners: {e}")))?;
    let wal_dir = cfg.wal_dir();
    let snap_dir = cfg.snap_dir();
    std::fs::create_dir_all(&snap_dir)
        .map_err(|e| ServerError::Internal(format!("cannot create {}: {e}", snap_dir.display())))?;
    let mut node_cfg = NodeConfig::new(0, wal_dir.clone(), snap_dir.clone());
    node_cfg.heartbeat_tick = 1;
    node_cfg.election_tick = cfg.election_ticks().max(2) as usize;
    node_cfg.pre_vote = cfg.pre_vote;
    let election_tick = node_cfg.election_tick;
    node_cfg.wal_options = WalOptions {
        max_wals: keep_limit(cfg.max_wals),
        ..WalOptions::default()
    };
    remove_partial_snapshots(&snap_dir);
    let booted = if wal_exists(&wal_dir) {
        bootstrap::restart_node(node_cfg)?
    } else {
        bootstrap::bootstrap_node(cfg, node_cfg)?
    };
    let Booted {
        node,
        member_id,
        cluster_id,
        snapshot,
        remotes,
    } = booted;
    let snapshot_index = snapshot.as_ref().map_or(0, |s| s.metadata.index);
    let backend = Backend::open(BackendConfig::new(cfg.backend_path()))?;
    super::snapshot::finish_interrupted_install(
        &backend,
        stored_consistent_index(&backend)?,
        snapshot_index,
    )?;
    let store = Store::open(backend)?;
    record_versions(&store)?;
    let read = store.backend().read_tx()?;
    let members = bootstrap::membership_at_start(cluster_id, snapshot.as_ref(), &read)?;
    let alarms = load_alarms(&read)?;
    let lessor = Lessor::new(min_lease_ttl(
        cfg.election_ticks(),
        cfg.heartbeat_interval_ms,
    ));
    restore_leases(&lessor, &read, store.restored_key_leases())?;
    drop(read);
    let hub = crate::mvcc::watch::EventHub::new(store.rev()?);
    let (to_loop, requests) = mpsc::channel();
    early.stop();
    let transport = Transport::start(
        TransportConfig {
            member_id,
            cluster_id,
            advertised_urls: cfg
                .initial_advertise_peer_urls
                .iter()
                .map(|u| u.to_string())
                .collect(),
            snap_dir,
        },
        peer_listeners,
        Arc::new({
            let to_loop = to_loop.clone();
            move |event| {
                // The loop has stopped when this fails; the transport is stopping too.
                let _ = to_loop.send(LoopRequest::Peer(event));
            }
        }),
    )
    .map_err(|e| ServerError::Internal(format!("cannot start the peer transport: {e}")))?;
    let shared = Arc::new(Shared {
        store,
        member_id,
        cluster_id,
        members: Members::new(members),
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
        strict_reconfig_check: cfg.strict_reconfig_check,
        transport,
    });
    let rpc_handler = super::reconfig::rpc_handler(Arc::downgrade(&shared));
    shared.transport.set_rpc_handler(rpc_handler);
    let voters = node.conf_state().voters;
    let applier = Applier::new(Arc::clone(&shared), &voters)?;
    let raft_loop = RaftLoop::new(
        node,
        applier,
        requests,
        &remotes,
        LoopConfig {
            tick: std::time::Duration::from_millis(cfg.heartbeat_interval_ms.max(1)),
            snapshot_count: cfg.snapshot_count,
            max_snapshots: keep_limit(cfg.max_snapshots),
            campaign_if_alone: true,
            initial_tick_advance: if cfg.initial_election_tick_advance {
                election_tick.saturating_sub(2)
            } else {
                0
            },
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

/// Deletes `member/snap/tmp*`: snapshot databases whose transfer a crash interrupted.
fn remove_partial_snapshots(snap_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(snap_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("tmp") {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a partial snapshot"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), %e, "cannot remove a partial snapshot")
                }
            }
        }
    }
}

/// The consistent index recorded in the backend's `meta` bucket (0 when none).
fn stored_consistent_index(backend: &Backend) -> Result<u64, ServerError> {
    let read = backend.read_tx()?;
    let index = read
        .get(schema::META, schema::META_CONSISTENT_INDEX)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map_or(0, u64::from_be_bytes);
    Ok(index)
}

/// Binds `--listen-peer-urls` before anything else starts, as etcd does, so a port in use
/// fails the start with etcd's text.
fn bind_peer_listeners(cfg: &Config) -> Result<Vec<std::net::TcpListener>, ServerError> {
    let addrs = cfg
        .peer_bind_addrs()
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    let mut listeners = Vec::new();
    for addr in addrs {
        match addr {
            BindAddr::Tcp(socket) => {
                let listener = std::net::TcpListener::bind(socket).map_err(|e| {
                    ServerError::Internal(format!("listen tcp {socket}: bind: {}", io_text(&e)))
                })?;
                tracing::info!(address = %socket, "listening for peers");
                listeners.push(listener);
            }
            BindAddr::Unix(path) => {
                return Err(ServerError::Internal(format!(
                    "listen unix {path}: peer URLs over unix sockets are not supported"
                )))
            }
        }
    }
    Ok(listeners)
}

/// An I/O error's text as Go prints it ("address already in use"), without Rust's
/// "(os error N)" suffix.
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
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

/// Loads the leases of the backend `read` views into `lessor`, attaching `key_leases`; keys
/// whose lease is missing are logged, as etcd does.
pub(super) fn restore_leases(
    lessor: &Lessor,
    read: &oxcd_engine::backend::ConcurrentReadTx,
    key_leases: &[(Vec<u8>, i64)],
) -> Result<(), ServerError> {
    for key in lessor.restore(read, key_leases)? {
        tracing::warn!(key = %String::from_utf8_lossy(&key), "failed to attach a lease");
    }
    Ok(())
}

pub(super) fn load_alarms(
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
