//! Reading a WAL directory: listing and selecting segments, and `WalReader`, the one path
//! every reader goes through (`Wal::open`, `read_all`, `repair`, dump tools). It yields every
//! verified record with its segment and offset, follows the CRC chain across segments, checks
//! that every metadata record is the same, and ends cleanly at a torn tail of the last
//! segment.
//!
//! Reads only; never modifies a file. Holds one segment in memory at a time.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::decode::{decode_frame, FramePos, RecordBody, Step};
use crate::error::{Corruption, Error, Result};
use crate::io::read_whole;
use crate::layout::parse_wal_name;

/// A segment file's name and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentName {
    pub name: String,
    pub seq: u64,
    pub first_index: u64,
}

/// The segments of `dir`, sorted by sequence number; `NotFound` if there are none.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentName>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some((seq, first_index)) = parse_wal_name(&name) {
            names.push(SegmentName {
                name,
                seq,
                first_index,
            });
        }
    }
    if names.is_empty() {
        return Err(Error::NotFound {
            dir: dir.to_path_buf(),
        });
    }
    names.sort_by_key(|n| (n.seq, n.first_index));
    Ok(names)
}

/// The segments needed to read from raft index `index` on: the last one whose first index is
/// at most `index`, and every later one (etcd's `searchIndex`).
pub(crate) fn select_segments(
    dir: &Path,
    mut names: Vec<SegmentName>,
    index: u64,
) -> Result<Vec<SegmentName>> {
    let Some(start) = names.iter().rposition(|n| n.first_index <= index) else {
        return Err(Error::IndexNotCovered {
            dir: dir.to_path_buf(),
            index,
            oldest: names.first().map_or(0, |n| n.first_index),
        });
    };
    names.drain(..start);
    Ok(names)
}

/// One record as read from disk, for tools and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpRecord {
    /// The segment's file name.
    pub segment: String,
    /// Offset of the frame's length word in the segment.
    pub offset: u64,
    /// The whole frame's size: length word, record, padding.
    pub frame_bytes: u64,
    /// The record's `crc` field (running CRC, or the previous segment's for a crc record).
    pub crc: u32,
    /// The decoded payload.
    pub body: RecordBody,
}

/// Where and why the last segment's valid data ended in a torn write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment's file name.
    pub segment: String,
    /// Offset where the valid data ends.
    pub offset: u64,
    /// What was found there.
    pub what: &'static str,
}

/// What a finished reader knows about the last segment, for appending after it.
#[derive(Debug)]
pub(crate) struct TailInfo {
    /// End of the last verified record.
    pub valid_end: u64,
    /// The file's length.
    pub file_len: u64,
    /// Some byte after `valid_end` is not zero.
    pub dirty: bool,
    /// Records read from the last segment.
    pub records: u64,
}

struct Current {
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
    offset: usize,
    records: u64,
    is_last: bool,
}

/// Streams the records of a run of consecutive segments. After the iterator returns `None`,
/// the log ended cleanly (possibly at a torn tail, see `torn_tail`); after it returns an
/// error, it returns `None`.
pub struct WalReader {
    dir: PathBuf,
    segments: std::vec::IntoIter<(SegmentName, Option<File>)>,
    current: Option<Current>,
    crc: u32,
    /// The first metadata record's payload; every later one must equal it.
    metadata: Option<Vec<u8>>,
    torn: Option<TornTail>,
    done: bool,
}

impl WalReader {
    /// Reads every segment of `dir` from the oldest.
    pub fn open(dir: &Path) -> Result<WalReader> {
        let names = list_segments(dir)?;
        WalReader::from_names(dir, names)
    }

    /// Reads the segments needed from raft index `index` on.
    pub fn open_at(dir: &Path, index: u64) -> Result<WalReader> {
        let names = select_segments(dir, list_segments(dir)?, index)?;
        WalReader::from_names(dir, names)
    }

    fn from_names(dir: &Path, names: Vec<SegmentName>) -> Result<WalReader> {
        WalReader::new(dir, names.into_iter().map(|n| (n, None)).collect())
    }

    /// Reads the given segments, using the open files where given (else opening by name).
    pub(crate) fn new(dir: &Path, segments: Vec<(SegmentName, Option<File>)>) -> Result<Self> {
        for pair in segments.windows(2) {
            let (previous, next) = (&pair[0].0, &pair[1].0);
            if previous.seq.checked_add(1) != Some(next.seq) {
                return Err(Error::corrupted(
                    &dir.join(&next.name),
                    0,
                    Corruption::SequenceGap {
                        seq: next.seq,
                        previous: previous.seq,
                    },
                ));
            }
        }
        Ok(WalReader {
            dir: dir.to_path_buf(),
            segments: segments.into_iter(),
            current: None,
            crc: 0,
            metadata: None,
            torn: None,
            done: false,
        })
    }

    /// The torn write the log ended at, if it did.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// The running CRC after the last record read.
    pub(crate) fn running_crc(&self) -> u32 {
        self.crc
    }

    /// After a clean end: where the last segment's valid data ends.
    pub(crate) fn tail_info(&self) -> Option<TailInfo> {
        let current = self.current.as_ref()?;
        Some(TailInfo {
            valid_end: current.offset as u64,
            file_len: current.bytes.len() as u64,
            dirty: current.bytes[current.offset..].iter().any(|&b| b != 0),
            records: current.records,
        })
    }

    fn load_next(&mut self) -> Result<bool> {
        let Some((name, file)) = self.segments.next() else {
            return Ok(false);
        };
        let path = self.dir.join(&name.name);
        let bytes = match file {
            Some(file) => read_whole(&file, &path)?,
            None => {
                let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
                read_whole(&file, &path)?
            }
        };
        self.current = Some(Current {
            name: name.name,
            path,
            bytes,
            offset: 0,
            records: 0,
            is_last: self.segments.len() == 0,
        });
        Ok(true)
    }

    fn step(&mut self) -> Result<Option<DumpRecord>> {
        loop {
            if self.current.is_none() && !self.load_next()? {
                return Ok(None);
            }
            let Some(current) = self.current.as_mut() else {
                return Ok(None);
            };
            let pos = FramePos {
                offset: current.offset,
                is_last: current.is_last,
                first: current.records == 0,
            };
            match decode_frame(&current.bytes, &pos, &mut self.crc) {
                Ok(Step::Record(frame)) => {
                    if let RecordBody::Metadata(data) = &frame.body {
                        match &self.metadata {
                            Some(first) if first != data => {
                                let what = Corruption::MetadataConflict;
                                return Err(Error::corrupted(&current.path, frame.offset, what));
                            }
                            Some(_) => {}
                            None => self.metadata = Some(data.clone()),
                        }
                    }
                    current.offset += frame.frame_bytes as usize;
                    current.records += 1;
                    return Ok(Some(DumpRecord {
                        segment: current.name.clone(),
                        offset: frame.offset,
                        frame_bytes: frame.frame_bytes,
                        crc: frame.crc,
                        body: frame.body,
                    }));
                }
                Ok(Step::End { torn }) => {
                    if current.is_last {
                        self.torn = torn.map(|what| TornTail {
                            segment: current.name.clone(),
                            offset: current.offset as u64,
                            what,
                        });
                        return Ok(None);
                    }
                    self.current = None;
                }
                Err((offset, what)) => return Err(Error::corrupted(&current.path, offset, what)),
            }
        }
    }
}

impl Iterator for WalReader {
    type Item = Result<DumpRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Every record of the WAL in `dir`, from its oldest segment, verified; the log may end in a
/// torn tail (use `WalReader` to learn about it).
pub fn read_records(dir: &Path) -> Result<Vec<DumpRecord>> {
    WalReader::open(dir)?.collect()
}
