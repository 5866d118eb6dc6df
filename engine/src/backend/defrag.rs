//! Online defragmentation (etcd's `backend.defrag`): copy the live data into a fresh file next
//! to the database, then swap it in.
//!
//! Order of effects, and what a crash at each point leaves behind:
//! 1. commit pending writes; no write transaction is open from here on (writers wait on the
//!    batch mutex);
//! 2. `crate::compact` into `<db>.tmp.<pid>.<n>` (fill percent 0.9, no fsync per commit) —
//!    crash: the old file is intact, a stale temp file is removed at the next open;
//! 3. fsync the temp file, rename it over the database, fsync the directory — the rename is
//!    atomic, so a crash leaves either the old or the new file at the path, both complete;
//! 4. open the new file, swap its snapshot in for new readers, begin the next write
//!    transaction.
//!
//! An error in 2 (or in the rename itself) cleans up and resumes on the old file. An error
//! after the rename fails the backend: the file at the path is no longer the one open.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::batch::Writer;
use super::buffer::ReadBuffer;
use super::read::Committed;
use super::{BackendConfig, Core, Error, Result, SEQ_FILL_PERCENT};
use crate::{CompactOptions, Db, Options};

impl Core {
    pub(super) fn defrag(&self) -> Result<()> {
        let mut writer = self.lock_writer()?;
        self.usable()?;
        self.commit_locked(&mut writer, true)?;
        let old_db = writer.db()?;
        let temp = match compact_into_temp(&old_db, &self.cfg) {
            Ok(temp) => temp,
            Err(e) => return self.resume(&mut writer, e),
        };
        if let Err(e) = fs::rename(&temp, &self.cfg.path) {
            let _ = fs::remove_file(&temp);
            return self.resume(&mut writer, Error::io(&self.cfg.path, e));
        }
        drop(old_db);
        self.install(&mut writer)
            .map_err(|e| self.fail(format!("reopen after defrag: {e}")))
    }

    /// Replaces the database with the complete, synced file at `src` (a snapshot received
    /// from a raft leader): commit pending writes, check that `src` opens, rename it over the
    /// database, fsync the directory, open it. Like step 3 above, the rename is atomic. A
    /// `src` that does not open (bad meta pages) is refused before anything changes.
    pub(super) fn replace_with(&self, src: &Path) -> Result<()> {
        let mut writer = self.lock_writer()?;
        self.usable()?;
        self.commit_locked(&mut writer, true)?;
        if let Err(e) = Db::open(src, self.cfg.engine_options()) {
            return self.resume(&mut writer, e.into());
        }
        let old_db = writer.db()?;
        if let Err(e) = fs::rename(src, &self.cfg.path) {
            return self.resume(&mut writer, Error::io(&self.cfg.path, e));
        }
        drop(old_db);
        self.install(&mut writer)
            .map_err(|e| self.fail(format!("reopen after replacing the database: {e}")))
    }

    /// Goes back to writing the old file after a failed defrag; returns the defrag's error.
    fn resume(&self, writer: &mut Writer, error: Error) -> Result<()> {
        writer
            .begin()
            .map_err(|e| self.fail(format!("resume after failed defrag: {e}")))?;
        Err(error)
    }

    /// Opens the renamed file and makes it the backend's.
    fn install(&self, writer: &mut Writer) -> Result<()> {
        if !self.cfg.options.no_sync {
            sync_parent_dir(&self.cfg.path)?;
        }
        let db = Db::open(&self.cfg.path, self.cfg.engine_options())?;
        let committed = Committed::new(db.begin_read()?);
        // Only new readers wait, and only for this pointer swap; the write buffer is empty
        // since the commit above.
        let old = self.swap_shared(Some(committed), Arc::new(ReadBuffer::default()))?;
        drop(old);
        self.refresh_sizes(&db);
        writer.replace_db(db);
        writer.begin()
    }
}

/// Writes a compacted copy of `src` to a new temp file next to it and syncs it; returns its
/// path. On error the temp file is removed.
fn compact_into_temp(src: &Db, cfg: &BackendConfig) -> Result<PathBuf> {
    let temp = temp_path(&cfg.path);
    let result = write_compacted(src, &temp, cfg);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| temp)
}

fn write_compacted(src: &Db, temp: &Path, cfg: &BackendConfig) -> Result<()> {
    let options = Options {
        page_size: src.page_size(),
        // Written once, front to back: no point reserving address space for growth.
        initial_mmap_size: 0,
        // One fsync at the end instead of one per compaction transaction.
        no_sync: true,
        ..cfg.engine_options()
    };
    let dst = Db::open(temp, options)?;
    let compact = CompactOptions {
        fill_percent: SEQ_FILL_PERCENT,
        ..CompactOptions::default()
    };
    crate::compact(src, &dst, &compact, &mut |_copied_bytes| {})?;
    drop(dst);
    if !cfg.options.no_sync {
        let file = File::open(temp).map_err(|e| Error::io(temp, e))?;
        file.sync_all().map_err(|e| Error::io(temp, e))?;
    }
    Ok(())
}

/// The prefix of every temp file of the database at `path`: `<file name>.tmp.`.
fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    format!("{}.tmp.", name.unwrap_or_else(|| "db".into()))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A path next to `path` that no other defrag of this process has used and that does not
/// exist. The database's lock keeps other processes from defragging it at the same time.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = temp_prefix(path);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let candidate = parent_dir(path).join(format!("{prefix}{}.{n}", std::process::id()));
        if !candidate.exists() {
            return candidate;
        }
    }
}

/// Removes temp files left by a defrag that crashed. Called once the database is open, so
/// its lock guarantees no defrag of it is running. Best effort: a file that cannot be removed
/// only wastes space.
pub(super) fn remove_stale_temp_files(path: &Path) -> Result<()> {
    let prefix = temp_prefix(path);
    let dir = parent_dir(path);
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
    file.sync_all().map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Temp files sit next to the database, carry its name, and never collide.
    #[test]
    fn temp_paths_are_siblings_and_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        let (a, b) = (temp_path(&db), temp_path(&db));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(dir.path()));
        assert!(a
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("db.tmp.")));
        assert_eq!(parent_dir(Path::new("db")), Path::new("."));
    }

    // Stale temp files of this database are removed at open; other files are left alone.
    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        fs::write(dir.path().join("db.tmp.1.0"), b"x").expect("write");
        fs::write(dir.path().join("other.tmp.1.0"), b"x").expect("write");
        remove_stale_temp_files(&db).expect("cleanup");
        assert!(!dir.path().join("db.tmp.1.0").exists());
        assert!(dir.path().join("other.tmp.1.0").exists());
    }
}
