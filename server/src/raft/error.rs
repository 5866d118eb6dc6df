//! The error type of the raft layer: WAL and snap file failures, raft-rs refusals, values
//! that etcd's formats cannot carry, and broken log-shape requests (appending with a gap,
//! compacting past what a snapshot covers). All are values; none of them panics.

/// An error the apply layer returned from its callback, passed through unchanged.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the raft storage and node.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// Reading or writing the WAL or a snap file failed (a failed sync poisons the WAL).
    #[error(transparent)]
    Wal(#[from] oxcd_wal::Error),
    /// A file system call outside the WAL failed (creating the snap directory).
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// raft-rs refused an operation (for example a proposal dropped without a leader).
    #[error("raft: {0}")]
    Raft(#[from] ::raft::Error),
    /// A raft-rs value has a field etcd's `raftpb` has no room for, so it cannot be stored
    /// byte-compatibly (an entry `context`, a `sync_log` flag).
    #[error("raft: entry {index} has a {field} field, which etcd's raftpb.Entry cannot carry")]
    NotRepresentable { index: u64, field: &'static str },
    /// A stored value holds an enum number this version does not know.
    #[error("raft: entry {index}: unknown {what} {value}")]
    UnknownEnum {
        index: u64,
        what: &'static str,
        value: i32,
    },
    /// A committed configuration-change entry's data does not decode as a `raftpb.ConfChange`.
    #[error("raft: entry {index}: bad conf change data: {source}")]
    BadConfChange {
        index: u64,
        source: prost::DecodeError,
    },
    /// A `ConfChangeV2` entry was committed; etcd 3.4 never proposes one and oxcd does not yet
    /// apply them.
    #[error("raft: entry {index}: ConfChangeV2 entries are not supported")]
    ConfChangeV2Unsupported { index: u64 },
    /// Entries to append would leave a gap after the last index.
    #[error("raft: entries starting at {first} do not follow the last index {last}")]
    LogGap { first: u64, last: u64 },
    /// Entries to append would overwrite entries already compacted away.
    #[error(
        "raft: entries starting at {first} overwrite the compacted log (first index {first_index})"
    )]
    AppendCompacted { first: u64, first_index: u64 },
    /// Compaction was asked to discard entries not yet covered by a snapshot, or past the log.
    #[error("raft: cannot compact to {index}: the log ends at {last} and the newest snapshot covers {snapshot}")]
    CompactBeyond {
        index: u64,
        last: u64,
        snapshot: u64,
    },
    /// A snapshot was requested at an index that is older than the newest one or past the log.
    #[error("raft: cannot snapshot at {index}: the newest snapshot is at {snapshot} and the log ends at {last}")]
    SnapshotOutOfRange {
        index: u64,
        snapshot: u64,
        last: u64,
    },
    /// The apply layer's callback failed; the node stopped before acknowledging the batch.
    #[error("raft: apply failed: {0}")]
    Apply(ApplyError),
}

/// Result of the raft layer.
pub type Result<T, E = RaftError> = std::result::Result<T, E>;
