//! The raft layer of one member: raft-rs (`RawNode`) over etcd's WAL and snap files.
//!
//! * [`convert`]: raft-rs `eraftpb` ⇄ `oxcd_wal::pb` (etcd's `raftpb`), and etcd's
//!   `ConfChange`;
//! * [`memlog`]: the in-memory log raft-rs reads ([`MemoryLog`], etcd's `MemoryStorage`);
//! * [`storage`]: [`WalStorage`], the `raft::Storage` that makes entries, hard state and
//!   snapshots durable before raft-rs sees them as persisted;
//! * [`node`]: [`RaftNode`], starting, restarting and the `Ready` loop step, with committed
//!   entries handed to a [`ReadyHandler`];
//! * `logger`: raft-rs's slog records forwarded to `tracing`;
//! * [`transport`]: the peer transport, raft messages and snapshots between members over TCP
//!   (our own framing, `transport/FORMAT.md`).
//!
//! The `raft` crate is referred to as `::raft` throughout, to keep it apart from this module.

pub mod convert;
mod error;
mod logger;
pub mod memlog;
pub mod node;
pub mod storage;
pub mod transport;

#[cfg(test)]
mod memlog_tests;
#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod storage_tests;

pub use error::{ApplyError, RaftError, Result};
pub use memlog::MemoryLog;
pub use node::{NodeConfig, Peer, RaftNode, ReadyHandler};
pub use storage::{valid_snapshot_marks, wal_exists, Restored, WalStorage};
