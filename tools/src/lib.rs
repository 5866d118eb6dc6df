//! oxcd operator tools.
//!
//! The binaries in `src/bin/` are thin: they parse arguments and hand over to the modules here.
//! `db` holds the offline data-file utilities behind `oxutl db ...`; they open data files
//! read-only (only `compact` writes, and only to a new output file). `wal` holds `oxutl wal
//! ...`, which reads etcd-format write-ahead logs and never writes to them.
#![forbid(unsafe_code)]

pub mod db;
pub mod wal;
