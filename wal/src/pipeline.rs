//! Background preallocation of the next segment (etcd's `filePipeline`).
//!
//! A thread creates `0.tmp`, then `1.tmp`, alternately, each truncated to zero (a stale spare
//! from a crash may hold old bytes), `fallocate`d to the segment size and locked, and hands
//! each one over when the WAL cuts. Only one spare exists at a time besides the one just
//! handed over, so the alternating names never collide with a file the WAL still uses under
//! its `.tmp` name. Dropping the pipeline stops the thread and removes the unused spare.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::io::{preallocate, try_lock};

/// A preallocated, locked spare segment and its `.tmp` path.
pub(crate) struct Spare {
    pub path: PathBuf,
    pub file: File,
}

pub(crate) struct Pipeline {
    spares: Option<Receiver<Result<Spare>>>,
    thread: Option<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts preallocating `size_bytes` spares in `dir`.
    pub(crate) fn start(dir: &Path, size_bytes: u64) -> Result<Pipeline> {
        // Rendezvous: the thread prepares one spare ahead and waits until it is taken.
        let (tx, rx) = sync_channel::<Result<Spare>>(0);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("wal-preallocate".into())
            .spawn(move || {
                for count in 0u64.. {
                    let path = dir.join(format!("{}.tmp", count % 2));
                    let spare = allocate(&path, size_bytes);
                    let failed = spare.is_err();
                    if let Err(unsent) = tx.send(spare) {
                        if let Ok(spare) = unsent.0 {
                            drop(spare.file);
                            let _ = std::fs::remove_file(&spare.path);
                        }
                        return;
                    }
                    if failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io(Path::new("wal-preallocate thread"), e))?;
        Ok(Pipeline {
            spares: Some(rx),
            thread: Some(thread),
        })
    }

    /// Waits for the next spare segment.
    pub(crate) fn take(&mut self) -> Result<Spare> {
        let Some(rx) = &self.spares else {
            return Err(stopped());
        };
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Closing the channel makes the thread's pending send fail, so it cleans up and ends.
        self.spares = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> Error {
    Error::io(
        Path::new("wal-preallocate thread"),
        std::io::Error::other("stopped after an earlier failure"),
    )
}

fn allocate(path: &Path, size_bytes: u64) -> Result<Spare> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))
    };
    let mut file = open()?;
    if let Err(Error::Locked { .. }) = try_lock(&file, path) {
        // A stale spare still locked by a process that just died: its io_uring worker
        // threads keep its descriptors open for a few milliseconds after it is reaped. The
        // segments this WAL opened are locked by us, so no live writer owns this spare:
        // replace the file rather than wait for the old lock.
        drop(file);
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        file = open()?;
        try_lock(&file, path)?;
    }
    file.set_len(0).map_err(|e| Error::io(path, e))?;
    preallocate(&file, size_bytes).map_err(|e| Error::io(path, e))?;
    Ok(Spare {
        path: path.to_path_buf(),
        file,
    })
}
