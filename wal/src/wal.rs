//! The WAL writer: create, open (replay and position to append), save with group commit,
//! snapshot marks, segment cuts, and releasing and purging old segments.
//!
//! Owns the WAL directory while open: every segment it may still need is `flock`ed, and the
//! tail is written only through a `SegmentWriter`. Invariants: `offset` is the end of the last
//! durable record of the tail and `crc` the running CRC there; a call that fails to make its
//! data durable poisons the WAL, after which nothing is written or acknowledged.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, Result};
use crate::io::{
    choose_io, fsync_dir, open_locked, preallocate, try_lock, IoMode, SegmentWriter, WriterFactory,
};
use crate::layout::{
    append_frame, chain_crc, wal_name, RecordType, DEFAULT_SEGMENT_SIZE_BYTES, MAX_RECORD_BYTES,
};
use crate::pb::{Entry, HardState, SnapshotMark};
use crate::pipeline::Pipeline;
use crate::read::{list_segments, select_segments, SegmentName, WalReader};
use crate::replay::{replay, ReadAll};

/// Room left in a record for its header, so that a payload within the limit always fits.
const RECORD_HEADER_ALLOWANCE: u64 = 64;

/// How a WAL is sized, purged and written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment is cut once its write offset reaches this (default 64 MB, etcd's).
    pub segment_size_bytes: u64,
    /// `purge` keeps at least this many segments (etcd's `--max-wals`, default 5).
    pub max_wals: usize,
    /// The write path: io_uring, pwrite, or (default) io_uring when it works here. See
    /// `IoMode` and the `OXCD_WAL_IO` environment variable.
    pub io: IoMode,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES,
            max_wals: 5,
            io: IoMode::Auto,
        }
    }
}

// The server hands its WAL to the raft thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Wal>();
};

/// A segment the WAL holds locked.
struct HeldSegment {
    name: SegmentName,
    file: File,
}

/// An etcd-format write-ahead log open for appending.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    metadata: Vec<u8>,
    /// The last non-empty hard state saved; repeated at the head of each new segment.
    hard_state: HardState,
    /// Index of the last entry saved, or of a later snapshot mark (etcd's `enti`).
    last_index: u64,
    crc: u32,
    /// Oldest first; the last one is the tail.
    held: Vec<HeldSegment>,
    tail: Box<dyn SegmentWriter>,
    offset: u64,
    pipeline: Pipeline,
    poisoned: bool,
    make_writer: WriterFactory,
    /// The write path in use (never `Auto`).
    io_mode: IoMode,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("held_segments", &self.held_segments())
            .field("offset", &self.offset)
            .field("last_index", &self.last_index)
            .field("hard_state", &self.hard_state)
            .field("poisoned", &self.poisoned)
            .field("io_mode", &self.io_mode)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Creates a WAL in `dir` holding `metadata` and the snapshot mark (0, 0), atomically: it
    /// is built in `dir.tmp` and renamed. Fails with `AlreadyExists` if `dir` has segments.
    /// Writes go through the path `opts.io` selects (see `IoMode`); an unavailable
    /// `IoMode::Uring` is an `Io` error.
    pub fn create(dir: &Path, metadata: &[u8], opts: WalOptions) -> Result<Wal> {
        let io = choose_io(dir, opts.io)?;
        let mut wal = Wal::create_with(dir, metadata, opts, io.factory)?;
        wal.io_mode = io.mode;
        Ok(wal)
    }

    /// Opens the WAL in `dir` at snapshot mark `at` (which must have been saved in it): reads
    /// and verifies every segment from the one holding `at.index`, zeroes a torn tail, and
    /// returns the WAL positioned to append along with what it holds after `at`.
    /// Writes go through the path `opts.io` selects, as for `create`.
    pub fn open(dir: &Path, at: SnapshotMark, opts: WalOptions) -> Result<(Wal, ReadAll)> {
        let io = choose_io(dir, opts.io)?;
        let (mut wal, read_all) = Wal::open_with(dir, at, opts, io.factory)?;
        wal.io_mode = io.mode;
        Ok((wal, read_all))
    }

    pub(crate) fn create_with(
        dir: &Path,
        metadata: &[u8],
        opts: WalOptions,
        make_writer: WriterFactory,
    ) -> Result<Wal> {
        if list_segments(dir).is_ok() {
            return Err(Error::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        let Some(base) = dir.file_name() else {
            return Err(Error::io(dir, std::io::ErrorKind::InvalidInput.into()));
        };
        let mut tmp_name = base.to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.with_file_name(tmp_name);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut buf = Vec::new();
        let (segment, tail, crc) =
            write_first_segment(&tmp, metadata, &opts, make_writer, &mut buf)?;
        fsync_dir(&tmp)?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
        fsync_dir(parent_of(dir))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            pipeline: Pipeline::start(dir, opts.segment_size_bytes)?,
            opts,
            metadata: metadata.to_vec(),
            hard_state: HardState::default(),
            last_index: 0,
            crc,
            held: vec![segment],
            tail,
            offset: buf.len() as u64,
            poisoned: false,
            make_writer,
            // `create` records the mode it chose; a test's own factory writes like pwrite.
            io_mode: IoMode::Pwrite,
            buf,
        })
    }

    pub(crate) fn open_with(
        dir: &Path,
        at: SnapshotMark,
        opts: WalOptions,
        make_writer: WriterFactory,
    ) -> Result<(Wal, ReadAll)> {
        let names = select_segments(dir, list_segments(dir)?, at.index)?;
        let mut held = Vec::with_capacity(names.len());
        let mut sources = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name.name);
            let file = open_locked(&path)?;
            let source = file.try_clone().map_err(|e| Error::io(&path, e))?;
            sources.push((name.clone(), Some(source)));
            held.push(HeldSegment { name, file });
        }
        let mut reader = WalReader::new(dir, sources)?;
        let replayed = replay(dir, &mut reader, at)?;
        let tail_info = reader
            .tail_info()
            .expect("a reader that ended cleanly over at least one segment has a tail");
        let crc = reader.running_crc();
        drop(reader);

        let tail_segment = held.last().expect("select_segments returns at least one");
        let tail_path = dir.join(&tail_segment.name.name);
        let tail_file = tail_segment
            .file
            .try_clone()
            .map_err(|e| Error::io(&tail_path, e))?;
        let mut tail = make_writer(tail_file).map_err(|e| Error::io(&tail_path, e))?;
        if tail_info.dirty {
            // Bytes of a torn write: never acknowledged, and in the way of new frames.
            tail.set_len_durable(tail_info.valid_end)
                .and_then(|()| preallocate(&tail_segment.file, tail_info.file_len))
                .map_err(|e| Error::io(&tail_path, e))?;
        }
        let read_all = replayed.read_all;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            pipeline: Pipeline::start(dir, opts.segment_size_bytes)?,
            opts,
            metadata: read_all.metadata.clone(),
            hard_state: read_all.hard_state,
            last_index: replayed.last_entry_index,
            crc,
            held,
            tail,
            offset: tail_info.valid_end,
            poisoned: false,
            make_writer,
            // `open` records the mode it chose; a test's own factory writes like pwrite.
            io_mode: IoMode::Pwrite,
            buf: Vec::new(),
        };
        if tail_info.records == 0 {
            // The tail lost even its header (possible only if it was damaged by hand).
            wal.buf.clear();
            let crc = wal.encode_header();
            wal.write_buf(crc)?;
        }
        Ok((wal, read_all))
    }

    /// Appends `entries`, then `hard_state` (skipped when `None` or empty), as one write and
    /// one fdatasync; returns only once they are durable. Cuts a new segment afterwards if the
    /// tail reached the segment size.
    ///
    /// Errors: `RecordTooLarge` before anything is written; `Poisoned` after an earlier
    /// failure; `Io` if the write or sync failed, or if the cut after a durable write failed
    /// (the entries are then durable but not acknowledged); an `Io` error poisons the WAL.
    pub fn save(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<()> {
        self.check_poisoned()?;
        let hard_state = hard_state.filter(|s| !s.is_empty());
        if hard_state.is_none() && entries.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        let mut crc = self.crc;
        for entry in entries {
            crc = append_body(&mut self.buf, RecordType::Entry, crc, entry)?;
        }
        if let Some(state) = hard_state {
            crc = append_body(&mut self.buf, RecordType::State, crc, state)?;
        }
        self.write_buf(crc)?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        if let Some(state) = hard_state {
            self.hard_state = *state;
        }
        if self.offset >= self.opts.segment_size_bytes {
            self.cut()?;
        }
        Ok(())
    }

    /// Records that a raft snapshot was taken at `mark`, durably.
    pub fn save_snapshot(&mut self, mark: SnapshotMark) -> Result<()> {
        self.check_poisoned()?;
        self.buf.clear();
        let crc = append_body(&mut self.buf, RecordType::Snapshot, self.crc, &mark)?;
        self.write_buf(crc)?;
        self.last_index = self.last_index.max(mark.index);
        Ok(())
    }

    /// Unlocks the segments not needed to open at `index` any more (etcd's `ReleaseLockTo`:
    /// the segments before the last one whose first index is below `index`), so that `purge`
    /// may remove them.
    pub fn release_lock_to(&mut self, index: u64) {
        let keep_from = match self.held.iter().position(|s| s.name.first_index >= index) {
            Some(first_at_or_after) => first_at_or_after.saturating_sub(1),
            None => self.held.len() - 1,
        };
        // Dropping the files releases their locks.
        self.held.drain(..keep_from);
    }

    /// Removes the oldest segments while more than `max_wals` remain, never one this WAL
    /// still holds nor one another process has locked. Returns the removed paths.
    pub fn purge(&mut self) -> Result<Vec<PathBuf>> {
        let names = list_segments(&self.dir)?;
        let oldest_held = self.held.first().map_or(u64::MAX, |s| s.name.seq);
        let excess = names.len().saturating_sub(self.opts.max_wals);
        let mut removed = Vec::new();
        for name in names.iter().take(excess) {
            if name.seq >= oldest_held {
                break;
            }
            let path = self.dir.join(&name.name);
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Removed by someone else since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            };
            match try_lock(&file, &path) {
                Ok(()) => {}
                Err(Error::Locked { .. }) => break,
                Err(e) => return Err(e),
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            removed.push(path);
        }
        if !removed.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the last entry saved (or of a later snapshot mark).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// The last non-empty hard state saved or read.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The metadata at the head of every segment.
    pub fn metadata(&self) -> &[u8] {
        &self.metadata
    }

    /// The write path in use: `IoMode::Uring` or `IoMode::Pwrite`, never `Auto`.
    pub fn io_mode(&self) -> IoMode {
        self.io_mode
    }

    /// Names of the segments this WAL holds locked, oldest first; the last is the tail.
    pub fn held_segments(&self) -> Vec<String> {
        self.held.iter().map(|s| s.name.name.clone()).collect()
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    fn tail_name(&self) -> &SegmentName {
        &self.held.last().expect("a WAL always holds its tail").name
    }

    /// Writes `buf` durably at the tail's offset; on success `crc` becomes the running CRC.
    fn write_buf(&mut self, crc: u32) -> Result<()> {
        if let Err(e) = self.tail.write_durable(&self.buf, self.offset) {
            self.poisoned = true;
            return Err(Error::io(&self.dir.join(&self.tail_name().name), e));
        }
        self.offset += self.buf.len() as u64;
        self.crc = crc;
        Ok(())
    }

    /// Fills `buf` with a new segment's header: crc record, metadata, last hard state.
    /// Returns the running CRC after it.
    fn encode_header(&mut self) -> u32 {
        append_frame(&mut self.buf, RecordType::Crc, self.crc, None);
        let mut crc = chain_crc(self.crc, &self.metadata);
        append_frame(
            &mut self.buf,
            RecordType::Metadata,
            crc,
            Some(&self.metadata),
        );
        if !self.hard_state.is_empty() {
            let state = self.hard_state.encode_to_vec();
            crc = chain_crc(crc, &state);
            append_frame(&mut self.buf, RecordType::State, crc, Some(&state));
        }
        crc
    }

    fn cut(&mut self) -> Result<()> {
        let result = self.try_cut();
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// etcd's cut: finish the tail, fill a preallocated spare with a header, sync it, and
    /// only then give it its final name.
    fn try_cut(&mut self) -> Result<()> {
        let tail_path = self.dir.join(&self.tail_name().name);
        self.tail
            .set_len_durable(self.offset)
            .map_err(|e| Error::io(&tail_path, e))?;
        let spare = self.pipeline.take()?;
        let writer_file = spare
            .file
            .try_clone()
            .map_err(|e| Error::io(&spare.path, e))?;
        let mut writer = (self.make_writer)(writer_file).map_err(|e| Error::io(&spare.path, e))?;
        self.buf.clear();
        let crc = self.encode_header();
        writer
            .write_durable(&self.buf, 0)
            .map_err(|e| Error::io(&spare.path, e))?;
        let seq = self.tail_name().seq + 1;
        let first_index = self.last_index.saturating_add(1);
        let name = SegmentName {
            name: wal_name(seq, first_index),
            seq,
            first_index,
        };
        let path = self.dir.join(&name.name);
        std::fs::rename(&spare.path, &path).map_err(|e| Error::io(&path, e))?;
        fsync_dir(&self.dir)?;
        self.held.push(HeldSegment {
            name,
            file: spare.file,
        });
        self.tail = writer;
        self.offset = self.buf.len() as u64;
        self.crc = crc;
        Ok(())
    }
}

/// Creates segment 0 in `tmp`, preallocated and locked, and writes durably into it the first
/// records of every WAL: crc(0), metadata, snapshot mark (0, 0). Leaves them in `buf`;
/// returns the segment, its writer and the running CRC.
fn write_first_segment(
    tmp: &Path,
    metadata: &[u8],
    opts: &WalOptions,
    make_writer: WriterFactory,
    buf: &mut Vec<u8>,
) -> Result<(HeldSegment, Box<dyn SegmentWriter>, u32)> {
    let name = SegmentName {
        name: wal_name(0, 0),
        seq: 0,
        first_index: 0,
    };
    let path = tmp.join(&name.name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    try_lock(&file, &path)?;
    preallocate(&file, opts.segment_size_bytes).map_err(|e| Error::io(&path, e))?;
    append_frame(buf, RecordType::Crc, 0, None);
    let mut crc = chain_crc(0, metadata);
    append_frame(buf, RecordType::Metadata, crc, Some(metadata));
    crc = append_body(buf, RecordType::Snapshot, crc, &SnapshotMark::default())?;
    let mut tail = make_writer(file.try_clone().map_err(|e| Error::io(&path, e))?)
        .map_err(|e| Error::io(&path, e))?;
    tail.write_durable(buf, 0)
        .map_err(|e| Error::io(&path, e))?;
    Ok((HeldSegment { name, file }, tail, crc))
}

/// Appends a frame holding `message` to `buf`, chaining `crc`; returns the new running CRC.
fn append_body(
    buf: &mut Vec<u8>,
    record_type: RecordType,
    crc: u32,
    message: &impl Message,
) -> Result<u32> {
    thread_local! {
        // Reused across records so a batch of entries costs no allocation per record.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        let mut body = scratch.borrow_mut();
        body.clear();
        message.encode_raw(&mut *body);
        let bytes = body.len() as u64;
        if bytes + RECORD_HEADER_ALLOWANCE >= MAX_RECORD_BYTES {
            return Err(Error::RecordTooLarge {
                bytes,
                max: MAX_RECORD_BYTES - RECORD_HEADER_ALLOWANCE,
            });
        }
        let crc = chain_crc(crc, &body);
        append_frame(buf, record_type, crc, Some(&body));
        Ok(crc)
    })
}

fn parent_of(dir: &Path) -> &Path {
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
