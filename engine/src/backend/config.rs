//! Backend configuration and its etcd-derived defaults.

use std::path::PathBuf;
use std::time::Duration;

use crate::Options;

/// etcd's `defaultBatchInterval`.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);
/// etcd's `defaultBatchLimit`, in write operations.
pub const DEFAULT_BATCH_LIMIT: usize = 10_000;
/// Fill percent for append-mostly buckets (etcd's `UnsafeSeqPut`) and for defrag's copy:
/// pages are split when 90% full instead of half full, since keys arrive in order.
pub const SEQ_FILL_PERCENT: f64 = 0.9;

#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// The database file; created if missing.
    pub path: PathBuf,
    /// Longest time a write waits in the batch before the background thread commits it.
    /// `Duration::ZERO` disables the background thread: commits then happen only at
    /// `batch_limit`, `force_commit`, `snapshot`, `hash`, `defrag` and `close`.
    pub batch_interval: Duration,
    /// A batch transaction commits when its guard is released with at least this many pending
    /// write operations (bucket creates and deletes count, as in etcd).
    pub batch_limit: usize,
    /// Engine options for the main file. Defrag's temp file reuses them, except that it is
    /// written without fsyncs and synced once before the rename.
    pub options: Options,
    /// Run the engine's consistency check after every commit (sets `options.strict` on every
    /// `Db` the backend opens, including defrag's temp file). For tests.
    pub strict: bool,
}

impl BackendConfig {
    /// etcd's defaults for a file at `path`.
    ///
    /// Engine options: the freelist is not written (`no_freelist_sync`, as etcd's
    /// `NoFreelistSync: true` on Linux; it is rebuilt by a scan at open). The initial mmap
    /// size is left at 0 (the engine maps just enough and grows as bbolt does: doubling to
    /// 1 GiB, then 1 GiB steps), not etcd's 10 GiB. etcd reserves 10 GiB because bbolt's remap
    /// waits for every open reader, so a growing file stalls the writer behind long reads;
    /// this engine remaps without waiting (readers keep the old mapping alive through an
    /// `Arc`), so the reservation would buy nothing and cost 10 GiB of address space per open
    /// backend (which trips `ulimit -v` and crowds tests that open many). Set
    /// `options.initial_mmap_size` to map more up front.
    pub fn new(path: impl Into<PathBuf>) -> BackendConfig {
        BackendConfig {
            path: path.into(),
            batch_interval: DEFAULT_BATCH_INTERVAL,
            batch_limit: DEFAULT_BATCH_LIMIT,
            options: Options {
                no_freelist_sync: true,
                ..Options::default()
            },
            strict: false,
        }
    }

    /// The options every `Db` of this backend is opened with.
    pub(super) fn engine_options(&self) -> Options {
        Options {
            strict: self.options.strict || self.strict,
            ..self.options.clone()
        }
    }
}
