//! File system primitives of the WAL: the `SegmentWriter` seam through which every durable
//! segment write goes, the choice between its two implementations (`IoMode`: io_uring in
//! `uring.rs`, or `pwrite` + `fdatasync` here), and small helpers for preallocation, locking,
//! directory fsync and whole-file reads.
//!
//! Invariant of every `SegmentWriter`: when a call returns `Ok`, the bytes it wrote (and the
//! file length it set) are on stable storage; when it returns `Err`, nothing about the range
//! it touched may be assumed, and the caller must stop acknowledging writes.
//!
//! Choosing the path (at every `Wal::create` and `Wal::open`): `IoMode::Pwrite` never touches
//! io_uring; `IoMode::Uring` probes it and fails if it is unavailable; `IoMode::Auto` (the
//! default) first honours the environment variable `OXCD_WAL_IO` (`uring`, `pwrite` or `auto`;
//! meant for tests and benchmarks), then probes io_uring and falls back to pwrite on any error
//! (EPERM from seccomp or `kernel.io_uring_disabled`, ENOSYS, ENOMEM, a kernel lacking an
//! operation...). The outcome is logged with `tracing` when it differs from the last one logged
//! by this process, so a server logs it once.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{FallocateFlags, FlockOperation};

use crate::error::{Error, Result};
use crate::uring::{self, UringWriter};

/// Environment variable that overrides `IoMode::Auto`: `uring`, `pwrite` or `auto`.
pub const IO_MODE_ENV: &str = "OXCD_WAL_IO";

/// Which system calls make WAL writes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IoMode {
    /// io_uring if it works here, else pwrite; `OXCD_WAL_IO` may force either.
    #[default]
    Auto,
    /// io_uring (a write linked to an fdatasync per group commit); create and open fail if it
    /// is unavailable.
    Uring,
    /// `pwrite` then `fdatasync`.
    Pwrite,
}

impl IoMode {
    /// The lower-case name, as accepted by `OXCD_WAL_IO` and `FromStr`.
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::Uring => "uring",
            IoMode::Pwrite => "pwrite",
        }
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IoMode {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<IoMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(IoMode::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(IoMode::Uring),
            "pwrite" => Ok(IoMode::Pwrite),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown wal io mode {s:?}: expected uring, pwrite or auto"),
            )),
        }
    }
}

/// Tells whether io_uring works on this machine, as `IoMode::Auto` would find it: a ring can be
/// set up, the kernel has the operations the WAL uses, and a NOP makes the round trip.
pub fn probe_io_uring() -> io::Result<()> {
    uring::probe()
}

/// Durable writes to one segment file. One `write_durable` call is one group commit: one
/// write of the whole buffer, then one data sync.
pub(crate) trait SegmentWriter: Send {
    /// Writes all of `data` at `offset` (resubmitting short writes), then makes it durable.
    fn write_durable(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Sets the file's length to `len` and makes the new length durable.
    fn set_len_durable(&mut self, len: u64) -> io::Result<()>;
}

/// Builds the writer for a freshly opened segment file.
pub(crate) type WriterFactory = fn(File) -> io::Result<Box<dyn SegmentWriter>>;

/// The write path chosen for a WAL: the mode in use (never `Auto`) and its writer factory.
#[derive(Clone, Copy)]
pub(crate) struct IoChoice {
    pub mode: IoMode,
    pub factory: WriterFactory,
}

/// Chooses the write path for the WAL in `dir` (named in errors) as the module doc says.
pub(crate) fn choose_io(dir: &Path, requested: IoMode) -> Result<IoChoice> {
    let env = std::env::var(IO_MODE_ENV).ok();
    choose_io_with(dir, requested, env.as_deref(), uring::probe)
}

/// `choose_io` with the environment's value and the probe passed in, so tests can force a
/// failing probe.
pub(crate) fn choose_io_with(
    dir: &Path,
    requested: IoMode,
    env: Option<&str>,
    probe: fn() -> io::Result<()>,
) -> Result<IoChoice> {
    let mode = match (requested, env) {
        (IoMode::Auto, Some(value)) => value.parse().map_err(|e: io::Error| {
            Error::io(dir, io::Error::new(e.kind(), format!("{IO_MODE_ENV}: {e}")))
        })?,
        (mode, _) => mode,
    };
    let uring = IoChoice {
        mode: IoMode::Uring,
        factory: UringWriter::boxed,
    };
    let pwrite = IoChoice {
        mode: IoMode::Pwrite,
        factory: PwriteWriter::boxed,
    };
    match mode {
        IoMode::Pwrite => {
            log_choice(Logged::PwriteRequested, || {
                tracing::info!("wal: writing with pwrite + fdatasync (requested)")
            });
            Ok(pwrite)
        }
        IoMode::Uring => match probe() {
            Ok(()) => {
                log_choice(Logged::Uring, || {
                    tracing::info!("wal: writing with io_uring")
                });
                Ok(uring)
            }
            Err(e) => Err(Error::io(
                dir,
                io::Error::new(
                    e.kind(),
                    format!("io_uring was required (IoMode::Uring) but is unavailable: {e}"),
                ),
            )),
        },
        IoMode::Auto => match probe() {
            Ok(()) => {
                log_choice(Logged::Uring, || {
                    tracing::info!("wal: writing with io_uring")
                });
                Ok(uring)
            }
            Err(e) => {
                log_choice(Logged::PwriteFallback, || {
                    tracing::info!(
                        error = %e,
                        "wal: io_uring unavailable, writing with pwrite + fdatasync"
                    )
                });
                Ok(pwrite)
            }
        },
    }
}

/// The outcomes `choose_io` logs.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Logged {
    Uring = 1,
    PwriteRequested = 2,
    PwriteFallback = 3,
}

/// The last outcome logged by this process (0: none yet).
static LAST_LOGGED: AtomicU8 = AtomicU8::new(0);

/// Runs `log` unless `outcome` is the one logged last, so that reopening a WAL does not repeat
/// the same line.
fn log_choice(outcome: Logged, log: impl FnOnce()) {
    if LAST_LOGGED.swap(outcome as u8, Ordering::Relaxed) != outcome as u8 {
        log();
    }
}

/// `pwrite` + `fdatasync`: the portable path.
pub(crate) struct PwriteWriter {
    file: File,
}

impl PwriteWriter {
    pub(crate) fn boxed(file: File) -> io::Result<Box<dyn SegmentWriter>> {
        Ok(Box::new(PwriteWriter { file }))
    }
}

impl SegmentWriter for PwriteWriter {
    fn write_durable(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        self.file.sync_data()
    }

    fn set_len_durable(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_data()
    }
}

/// Takes an exclusive `flock` on `file` without waiting; `Locked` if someone else holds it.
pub(crate) fn try_lock(file: &File, path: &Path) -> Result<()> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked {
            file: path.to_path_buf(),
        }),
        Err(e) => Err(Error::io(path, e.into())),
    }
}

/// Opens `path` for reading and writing and locks it.
pub(crate) fn open_locked(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    try_lock(&file, path)?;
    Ok(file)
}

/// Allocates `len` bytes to `file` and extends it to that length (etcd's `Preallocate` with
/// `extendFile`): real blocks where the file system supports it, a sparse extension if not.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INTR) => {
            if file.metadata()?.len() < len {
                file.set_len(len)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes the entries of directory `dir` (creations, renames, removals) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Reads all of `file` (from offset 0, whatever its cursor).
pub(crate) fn read_whole(file: &File, path: &Path) -> Result<Vec<u8>> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0usize;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod faulty {
    //! A `SegmentWriter` that fails on command, for tests of the poisoning rules.

    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Number of `write_durable` calls that succeed before every later one fails; shared by
    /// all faulty writers of the test process, so tests using it must not run concurrently
    /// with each other (they serialise on `LOCK`).
    pub(crate) static WRITES_LEFT: AtomicU64 = AtomicU64::new(u64::MAX);
    pub(crate) static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(crate) struct FaultyWriter {
        inner: PwriteWriter,
    }

    pub(crate) fn boxed(file: File) -> io::Result<Box<dyn SegmentWriter>> {
        Ok(Box::new(FaultyWriter {
            inner: PwriteWriter { file },
        }))
    }

    impl SegmentWriter for FaultyWriter {
        fn write_durable(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
            let left = WRITES_LEFT.load(Ordering::SeqCst);
            if left == 0 {
                // The bytes reach the page cache, then the sync fails: whether they are on
                // disk is unknown, so nothing may be acknowledged from here on.
                self.inner.file.write_all_at(data, offset)?;
                return Err(io::Error::other("injected fdatasync failure"));
            }
            WRITES_LEFT.store(left - 1, Ordering::SeqCst);
            self.inner.write_durable(data, offset)
        }

        fn set_len_durable(&mut self, len: u64) -> io::Result<()> {
            self.inner.set_len_durable(len)
        }
    }
}

#[cfg(test)]
mod choice_tests {
    //! How `choose_io` picks the write path, with the probe forced to succeed or fail.

    use super::*;

    fn works() -> io::Result<()> {
        Ok(())
    }

    fn seccomp_says_no() -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }

    fn choose(requested: IoMode, env: Option<&str>, probe: fn() -> io::Result<()>) -> IoMode {
        choose_io_with(Path::new("wal"), requested, env, probe)
            .expect("a choice")
            .mode
    }

    #[test]
    fn auto_uses_io_uring_when_it_works_and_falls_back_when_not() {
        // Proves Auto picks io_uring after a good probe and pwrite after a failed one.
        assert_eq!(choose(IoMode::Auto, None, works), IoMode::Uring);
        assert_eq!(choose(IoMode::Auto, None, seccomp_says_no), IoMode::Pwrite);
    }

    #[test]
    fn forced_modes_never_fall_back() {
        // Proves Pwrite never probes and Uring fails loudly, naming the cause, when unavailable.
        assert_eq!(choose(IoMode::Pwrite, None, works), IoMode::Pwrite);
        assert_eq!(choose(IoMode::Uring, None, works), IoMode::Uring);
        match choose_io_with(Path::new("wal"), IoMode::Uring, None, seccomp_says_no) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
                assert!(source.to_string().contains("io_uring"), "{source}");
            }
            Err(other) => panic!("expected an Io error, got {other}"),
            Ok(choice) => panic!("expected an error, got {}", choice.mode),
        }
    }

    #[test]
    fn the_environment_overrides_auto_only() {
        // Proves OXCD_WAL_IO steers Auto, cannot override an explicit mode, and rejects typos.
        assert_eq!(choose(IoMode::Auto, Some("pwrite"), works), IoMode::Pwrite);
        assert_eq!(choose(IoMode::Auto, Some("uring"), works), IoMode::Uring);
        assert_eq!(choose(IoMode::Auto, Some("auto"), works), IoMode::Uring);
        assert_eq!(
            choose(IoMode::Auto, Some(""), seccomp_says_no),
            IoMode::Pwrite
        );
        assert_eq!(choose(IoMode::Pwrite, Some("uring"), works), IoMode::Pwrite);
        assert!(choose_io_with(
            Path::new("wal"),
            IoMode::Auto,
            Some("uring"),
            seccomp_says_no
        )
        .is_err());
        assert!(choose_io_with(Path::new("wal"), IoMode::Auto, Some("urnig"), works).is_err());
    }

    #[test]
    fn io_modes_parse_and_print_the_same_names() {
        // Proves FromStr and Display agree for every mode.
        for mode in [IoMode::Auto, IoMode::Uring, IoMode::Pwrite] {
            assert_eq!(mode.to_string().parse::<IoMode>().expect("parse"), mode);
        }
        assert_eq!("io_uring".parse::<IoMode>().expect("alias"), IoMode::Uring);
    }

    #[test]
    fn a_wal_on_the_fallback_path_writes_and_reads_back() {
        // Proves the writer Auto falls back to makes a working WAL, across a cut and a reopen.
        let dir = tempfile::tempdir().expect("tempdir");
        let wal_dir = dir.path().join("wal");
        let choice =
            choose_io_with(&wal_dir, IoMode::Auto, None, seccomp_says_no).expect("fallback");
        assert_eq!(choice.mode, IoMode::Pwrite);
        let opts = crate::WalOptions {
            segment_size_bytes: 1024,
            ..crate::WalOptions::default()
        };
        let mut wal =
            crate::Wal::create_with(&wal_dir, b"md", opts.clone(), choice.factory).expect("create");
        let entries: Vec<crate::Entry> = (1..=20)
            .map(|i| crate::Entry::normal(1, i, vec![i as u8; 100]))
            .collect();
        for entry in &entries {
            wal.save(None, std::slice::from_ref(entry)).expect("save");
        }
        assert!(wal.held_segments().len() > 1, "the test cut no segment");
        drop(wal);
        let (_wal, read) = crate::Wal::open_with(
            &wal_dir,
            crate::SnapshotMark::default(),
            opts,
            choice.factory,
        )
        .expect("open");
        assert_eq!(read.entries, entries);
    }
}
