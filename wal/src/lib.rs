//! oxcd-wal: etcd 3.4's write-ahead log (`%016x-%016x.wal` segments in `member/wal`) and
//! snap files (`member/snap/*.snap`), byte-compatible with etcd so data directories and
//! tools interoperate.
//!
//! The formats are described in `wal/FORMAT.md`. `Wal` creates, opens (replaying from a
//! snapshot mark), appends with one write and one fdatasync per `save` (through io_uring, a
//! write linked to an fdatasync, or `pwrite` + `fdatasync`: see `IoMode`), cuts segments and
//! purges old ones; `WalReader` / `read_records` stream every verified record for tools;
//! `read_all` reads without opening for writing; `repair` cuts off a torn tail; `Snapshotter`
//! handles snap files. Knows nothing of MVCC or of what entries mean.
// Only the io_uring module may use unsafe (ring submission); it documents every block.
#![deny(unsafe_code)]

mod decode;
mod error;
mod io;
pub mod layout;
pub mod pb;
mod pipeline;
mod read;
mod repair;
mod replay;
pub mod snap;
#[allow(unsafe_code)]
mod uring;
mod wal;

pub use decode::RecordBody;
pub use error::{Corruption, Error, Result};
pub use io::{probe_io_uring, IoMode, IO_MODE_ENV};
pub use pb::{ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMark, SnapshotMetadata};
pub use read::{read_records, DumpRecord, TornTail, WalReader};
pub use repair::{repair, RepairOutcome};
pub use replay::{read_all, ReadAll};
pub use snap::{read_snap_file, Snapshotter};
pub use wal::{Wal, WalOptions};
