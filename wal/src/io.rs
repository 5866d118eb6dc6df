//! File system primitives of the WAL: the `SegmentWriter` seam through which every durable
//! segment write goes (pwrite + fdatasync today; an io_uring implementation can sit next to
//! it), and small helpers for preallocation, locking, directory fsync and whole-file reads.
//!
//! Invariant of every `SegmentWriter`: when a call returns `Ok`, the bytes it wrote (and the
//! file length it set) are on stable storage; when it returns `Err`, nothing about the range
//! it touched may be assumed, and the caller must stop acknowledging writes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{FallocateFlags, FlockOperation};

use crate::error::{Error, Result};

/// Durable writes to one segment file. One `write_durable` call is one group commit: one
/// write of the whole buffer, then one data sync.
pub(crate) trait SegmentWriter: Send {
    /// Writes all of `data` at `offset` (resubmitting short writes), then makes it durable.
    fn write_durable(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Sets the file's length to `len` and makes the new length durable.
    fn set_len_durable(&mut self, len: u64) -> io::Result<()>;
}

/// Builds the writer for a freshly opened segment file.
pub(crate) type WriterFactory = fn(File) -> Box<dyn SegmentWriter>;

/// `pwrite` + `fdatasync`: the portable path.
pub(crate) struct PwriteWriter {
    file: File,
}

impl PwriteWriter {
    pub(crate) fn boxed(file: File) -> Box<dyn SegmentWriter> {
        Box::new(PwriteWriter { file })
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

    pub(crate) fn boxed(file: File) -> Box<dyn SegmentWriter> {
        Box::new(FaultyWriter {
            inner: PwriteWriter { file },
        })
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
