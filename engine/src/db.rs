//! The database handle: opening (and creating) a file, choosing the meta page, locking,
//! tracking readers, and handing out transactions.
//!
//! Concurrency: any number of [`ReadTx`] and one [`WriteTx`] at a time. A reader holds an
//! `Arc` of the mapping that was current when it began, so growing the file maps a new,
//! larger region without waiting for readers: the old mapping is dropped when its last reader
//! ends (bbolt instead blocks the writer until every reader is gone). Pages freed by a commit
//! stay pending while any reader older than that commit is open.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Corruption, Error, Result};
use crate::freelist::{self, Freelist};
use crate::layout::*;
use crate::meta::Meta;
use crate::page::Mapping;
use crate::{ReadTx, WriteTx};

/// How to open a database.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Page size for a new file; 0 means the OS page size. An existing file keeps its own.
    pub page_size: u32,
    /// Map at least this many bytes from the start, so early growth needs no remap.
    pub initial_mmap_size: u64,
    /// Skip fdatasync on commit. A crash may then lose or tear recent commits.
    pub no_sync: bool,
    /// Do not write the freelist; rebuild it by scanning the tree when opening.
    pub no_freelist_sync: bool,
    /// Open with a shared lock; no write transactions.
    pub read_only: bool,
    /// Run the consistency check after every commit and fail the commit if it finds problems.
    pub strict: bool,
}

/// Facts about the latest committed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbInfo {
    pub page_size: u32,
    pub txid: u64,
    pub root_pgid: u64,
    pub freelist_pgid: u64,
    pub high_water_pgid: u64,
    pub free_page_count: u64,
    pub pending_page_count: u64,
    pub file_size_bytes: u64,
    /// Bytes of pages in use as etcd counts them (its SizeInUse): (high water − free) × page
    /// size. Pending pages still count as in use until a later writer releases them.
    pub size_in_use_bytes: u64,
}

pub(crate) struct Shared {
    pub(crate) meta: Meta,
    pub(crate) map: Arc<Mapping>,
    /// Open readers by the txid they read.
    pub(crate) readers: BTreeMap<u64, usize>,
}

pub(crate) struct WriterSlot {
    /// The freelist; None while a write transaction holds it.
    pub(crate) freelist: Option<Freelist>,
    pub(crate) file_len: u64,
}

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) opts: Options,
    pub(crate) page_size: usize,
    pub(crate) shared: Mutex<Shared>,
    pub(crate) writer: Mutex<WriterSlot>,
    pub(crate) writer_free: Condvar,
    /// Set when a durable write failed: the file's state on disk is unknown, so no further
    /// write transaction may run until the database is reopened.
    pub(crate) poisoned: AtomicBool,
}

/// A bbolt-format database file. Cheap to clone; all clones share one open file.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
}

fn os_page_size() -> u32 {
    // The engine targets Linux on 4 KiB-page machines; other sizes come from Options.
    4096
}

impl Db {
    /// Opens (creating if missing, unless read-only) the database at `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        let ps = opts.page_size;
        if ps != 0 && (!ps.is_power_of_two() || !(512..=(1 << 20)).contains(&ps)) {
            return Err(Error::InvalidPageSize(ps));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .create(!opts.read_only)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let locked = if opts.read_only {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        if locked.is_err() {
            return Err(Error::Locked { file: path });
        }
        let mut file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if file_len == 0 && !opts.read_only {
            let ps = if opts.page_size == 0 {
                os_page_size()
            } else {
                opts.page_size
            };
            init_file(&file, &path, ps as usize)?;
            file_len = 4 * ps as u64;
        }
        let meta = choose_meta(&file, &path, file_len, &opts)?;
        let page_size = meta.page_size as usize;
        let map_len = mmap_size(file_len.max(opts.initial_mmap_size), page_size as u64)
            .ok_or_else(|| Error::MapTooLarge { file: path.clone() })?;
        let map = Arc::new(Mapping::new(&file, &path, map_len, page_size)?);
        let freelist = if meta.freelist_pgid == NO_FREELIST || opts.no_freelist_sync {
            Freelist::from_ids(crate::check::unreachable_pages(&map, &meta)?)
        } else {
            let page = map.page(meta.freelist_pgid, meta.high_water_pgid)?;
            let ids = freelist::read_page(page.bytes, meta.high_water_pgid)
                .map_err(|what| map.corrupt(page.offset, Corruption::BadPage(what)))?;
            Freelist::from_ids(ids)
        };
        let inner = Inner {
            path,
            file,
            opts,
            page_size,
            shared: Mutex::new(Shared {
                meta,
                map,
                readers: BTreeMap::new(),
            }),
            writer: Mutex::new(WriterSlot {
                freelist: Some(freelist),
                file_len,
            }),
            writer_free: Condvar::new(),
            poisoned: AtomicBool::new(false),
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// Begins a read transaction on the latest committed state.
    pub fn begin_read(&self) -> Result<ReadTx> {
        let (meta, map) = {
            let mut shared = self.inner.shared.lock().expect("shared state lock");
            let meta = shared.meta;
            *shared.readers.entry(meta.txid).or_insert(0) += 1;
            (meta, shared.map.clone())
        };
        Ok(ReadTx::new(self.inner.clone(), map, meta))
    }

    /// Begins the write transaction, waiting while another one is open.
    pub fn begin_write(&self) -> Result<WriteTx> {
        if self.inner.opts.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.is_poisoned() {
            return Err(Error::Poisoned {
                file: self.inner.path.clone(),
            });
        }
        let mut slot = self.inner.writer.lock().expect("writer lock");
        while slot.freelist.is_none() {
            slot = self.inner.writer_free.wait(slot).expect("writer lock");
        }
        let mut freelist = slot.freelist.take().expect("checked above");
        let txid = self
            .inner
            .shared
            .lock()
            .expect("shared state lock")
            .meta
            .txid;
        if txid == u64::MAX {
            slot.freelist = Some(freelist);
            drop(slot);
            self.inner.writer_free.notify_one();
            let what = Corruption::BadPage("meta txid is at its largest value".into());
            return Err(Error::Corrupted {
                file: self.inner.path.clone(),
                offset: 0,
                what,
            });
        }
        let file_len = slot.file_len;
        drop(slot);
        let (meta, map) = {
            let shared = self.inner.shared.lock().expect("shared state lock");
            let oldest_reader = shared.readers.keys().next().copied().unwrap_or(u64::MAX);
            freelist.release_below(oldest_reader);
            (shared.meta, shared.map.clone())
        };
        Ok(WriteTx::new(
            self.inner.clone(),
            map,
            meta,
            freelist,
            file_len,
        ))
    }

    /// Runs `f` in a read transaction.
    pub fn view<T>(&self, f: impl FnOnce(&ReadTx) -> Result<T>) -> Result<T> {
        let tx = self.begin_read()?;
        f(&tx)
    }

    /// Runs `f` in a write transaction, committing if it returns Ok, rolling back otherwise.
    pub fn update<T>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        let mut tx = self.begin_write()?;
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Checks the latest committed state: every page below the high water mark is reachable
    /// exactly once or free, and every tree page is well formed and ordered.
    pub fn check(&self) -> Result<()> {
        let tx = self.begin_read()?;
        crate::check::check_tx(&tx)
    }

    /// Facts about the latest committed state.
    pub fn info(&self) -> Result<DbInfo> {
        let tx = self.begin_read()?;
        let meta = tx.meta();
        let (free, pending, file_len) = {
            let slot = self.inner.writer.lock().expect("writer lock");
            match &slot.freelist {
                Some(f) => (
                    f.free_count() as u64,
                    f.pending_count() as u64,
                    slot.file_len,
                ),
                None => {
                    let ids = tx.free_page_ids()?.len() as u64;
                    (ids, 0, slot.file_len)
                }
            }
        };
        let ps = meta.page_size as u64;
        let file_len = if self.inner.opts.read_only {
            self.inner
                .file
                .metadata()
                .map_err(|e| Error::io(&self.inner.path, e))?
                .len()
        } else {
            file_len
        };
        Ok(DbInfo {
            page_size: meta.page_size,
            txid: meta.txid,
            root_pgid: meta.root_pgid,
            freelist_pgid: meta.freelist_pgid,
            high_water_pgid: meta.high_water_pgid,
            free_page_count: free,
            pending_page_count: pending,
            file_size_bytes: file_len,
            size_in_use_bytes: meta.high_water_pgid.saturating_sub(free) * ps,
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size as u32
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }
}

impl Inner {
    pub(crate) fn end_reader(&self, txid: u64) {
        let mut shared = self.shared.lock().expect("shared state lock");
        if let Some(n) = shared.readers.get_mut(&txid) {
            *n -= 1;
            if *n == 0 {
                shared.readers.remove(&txid);
            }
        }
    }

    /// Gives the writer slot back (with the freelist to use from now on) and wakes a waiter.
    pub(crate) fn end_writer(&self, freelist: Freelist, file_len: u64) {
        let mut slot = self.writer.lock().expect("writer lock");
        slot.freelist = Some(freelist);
        slot.file_len = file_len;
        drop(slot);
        self.writer_free.notify_one();
    }

    /// fdatasync, unless the database was opened with no_sync.
    ///
    /// Panics if fdatasync fails: after a failed fsync the kernel may have dropped the dirty
    /// pages, so nothing written since the last good sync may be acknowledged as durable, and
    /// retrying cannot tell us otherwise. The database is poisoned first, so other threads
    /// holding it cannot write to it again (their `begin_write` and `commit` fail).
    pub(crate) fn sync(&self) {
        if self.opts.no_sync {
            return;
        }
        if let Err(e) = self.file.sync_data() {
            self.poison();
            panic!(
                "fdatasync of {} failed: {e}; refusing to continue",
                self.path.display()
            );
        }
    }

    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }
}

/// Writes the four pages of a new database: two metas, an empty freelist, an empty leaf.
fn init_file(file: &File, path: &Path, page_size: usize) -> Result<()> {
    let mut buf = vec![0u8; page_size * 4];
    for txid in 0..2u64 {
        let meta = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: page_size as u32,
            flags: 0,
            root_pgid: 3,
            sequence: 0,
            freelist_pgid: 2,
            high_water_pgid: 4,
            txid,
            checksum: 0,
        };
        let at = txid as usize * page_size;
        buf[at..at + page_size].copy_from_slice(&meta.encode_page(page_size));
    }
    let fl = 2 * page_size;
    put_u64(&mut buf, fl + PAGE_ID, 2);
    put_u16(&mut buf, fl + PAGE_FLAGS, FREELIST_PAGE);
    let leaf = 3 * page_size;
    put_u64(&mut buf, leaf + PAGE_ID, 3);
    put_u16(&mut buf, leaf + PAGE_FLAGS, LEAF_PAGE);
    file.write_all_at(&buf, 0).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    // The new file's directory entry must survive a crash too.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    Ok(())
}

/// Reads both meta pages with pread and picks the valid one with the higher txid.
fn choose_meta(file: &File, path: &Path, file_len: u64, opts: &Options) -> Result<Meta> {
    let corrupt = |offset, what| Error::Corrupted {
        file: path.to_path_buf(),
        offset,
        what,
    };
    let min_len = (PAGE_HEADER_SIZE + META_SIZE) as u64;
    if file_len < min_len {
        return Err(corrupt(0, Corruption::Truncated { len: file_len }));
    }
    let read_meta = |offset: u64| -> Result<Option<Meta>> {
        if offset + min_len > file_len {
            return Ok(None);
        }
        let mut buf = [0u8; PAGE_HEADER_SIZE + META_SIZE];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(path, e))?;
        Ok(Some(Meta::decode(&buf[PAGE_HEADER_SIZE..])))
    };
    let validate = |m: &Meta| m.validate().and_then(|_| m.validate_against_file(file_len));
    let meta0 = read_meta(0)?.expect("length checked");
    // The second meta sits one page in; trust meta 0's page size when it is valid.
    let page_size = match meta0.validate() {
        Ok(()) if meta0.page_size.is_power_of_two() => meta0.page_size as u64,
        _ if opts.page_size != 0 => opts.page_size as u64,
        _ => os_page_size() as u64,
    };
    let meta1 = read_meta(page_size)?;
    let r0 = validate(&meta0);
    let r1 = meta1.as_ref().map(validate);
    match (r0, meta1, r1) {
        (Ok(()), Some(m1), Some(Ok(()))) => Ok(if m1.txid > meta0.txid { m1 } else { meta0 }),
        (Ok(()), _, _) => Ok(meta0),
        (Err(_), Some(m1), Some(Ok(()))) => Ok(m1),
        (Err(e0), _, _) => Err(corrupt(0, e0)),
    }
}
