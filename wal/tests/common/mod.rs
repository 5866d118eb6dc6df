//! Helpers shared by the WAL's integration tests: deterministic entries and hard states whose
//! encodings never end in a zero byte (so that zeroing any part of a record changes it), a
//! builder for a WAL spread over many small segments, and `io_mode_tests!`, which runs each
//! test once per write path.
//!
//! The io_uring runs fail when io_uring is unavailable, so that a machine (or CI) silently
//! falling back to pwrite is noticed; `OXCD_WAL_ALLOW_NO_URING=1` skips them instead.
#![allow(dead_code, unused_macros, unused_imports)]

use std::path::{Path, PathBuf};

use oxcd_wal::{Entry, HardState, IoMode, Wal, WalOptions};

/// Set to `1` to skip (instead of fail) the io_uring runs where io_uring is unavailable.
pub const ALLOW_NO_URING_ENV: &str = "OXCD_WAL_ALLOW_NO_URING";

/// `Some(IoMode::Uring)` if io_uring works here; `None` (skip) if it does not and
/// `OXCD_WAL_ALLOW_NO_URING=1`; otherwise panics, naming the probe's error.
pub fn uring_mode() -> Option<IoMode> {
    match oxcd_wal::probe_io_uring() {
        Ok(()) => Some(IoMode::Uring),
        Err(e) if std::env::var(ALLOW_NO_URING_ENV).as_deref() == Ok("1") => {
            eprintln!("io_uring unavailable ({e}): io_uring run skipped ({ALLOW_NO_URING_ENV}=1)");
            None
        }
        Err(e) => panic!(
            "io_uring is unavailable here ({e}), so the io_uring write path goes untested; \
             set {ALLOW_NO_URING_ENV}=1 to accept that"
        ),
    }
}

/// For each named `fn(IoMode)`, declares two tests: `pwrite::NAME` and `uring::NAME`.
macro_rules! io_mode_tests {
    ($($name:ident),+ $(,)?) => {
        /// The tests on the pwrite + fdatasync path.
        mod pwrite {
            $(
                #[test]
                fn $name() {
                    // Proves the claim of the function of this name, writing with pwrite.
                    super::$name(oxcd_wal::IoMode::Pwrite);
                }
            )+
        }

        /// The tests on the io_uring path.
        mod uring {
            $(
                #[test]
                fn $name() {
                    // Proves the claim of the function of this name, writing with io_uring.
                    if let Some(io) = crate::common::uring_mode() {
                        super::$name(io);
                    }
                }
            )+
        }
    };
}
pub(crate) use io_mode_tests;

/// Metadata used by the tests: not valid protobuf, so it can never pass for another body.
pub const METADATA: &[u8] = b"oxcd wal test metadata";

/// Options with small segments so that tests cut many of them, writing through `io`.
pub fn opts(segment_size_bytes: u64, io: IoMode) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        max_wals: 5,
        io,
    }
}

/// A splitmix64 step: a cheap deterministic hash.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `len` bytes derived from `seed`, none of them zero.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (splitmix64(seed ^ (i << 32)) % 255) as u8 + 1)
        .collect()
}

/// Entry `index`: its term grows every 50 entries; 1..=300 bytes of non-zero data.
pub fn entry(index: u64) -> Entry {
    let len = 1 + (splitmix64(index) % 300) as usize;
    Entry::normal(1 + index / 50, index, pattern(index, len))
}

/// The hard state saved with entry `index`: term at least 3, vote and commit non-zero.
pub fn state(index: u64) -> HardState {
    HardState {
        term: 3 + index / 50,
        vote: 1 + index % 3,
        commit: index.max(1),
    }
}

/// Creates a WAL in `dir` writing through `io` and saves entries 1..=n in batches of 1..=7,
/// each with a hard state. Returns the WAL, still open.
pub fn build(dir: &Path, n: u64, segment_size_bytes: u64, io: IoMode) -> Wal {
    let mut wal = Wal::create(dir, METADATA, opts(segment_size_bytes, io)).expect("create");
    if io != IoMode::Auto {
        assert_eq!(
            wal.io_mode(),
            io,
            "the WAL writes through the path asked for"
        );
    }
    let mut next = 1;
    while next <= n {
        let batch = (1 + splitmix64(next) % 7).min(n - next + 1);
        let entries: Vec<Entry> = (next..next + batch).map(entry).collect();
        wal.save(Some(&state(next + batch - 1)), &entries)
            .expect("save");
        next += batch;
    }
    wal
}

/// The `.wal` files of `dir`, sorted.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

/// Copies every regular file of `from` into the new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}
