//! Snap files (`member/snap/%016x-%016x.snap`, term then index; etcd's `snap.Snapshotter`):
//! saving a raft snapshot atomically, loading the newest valid one while setting broken ones
//! aside as `.broken`, and purging old ones.
//!
//! Owns only `*.snap`, `*.snap.tmp` and `*.snap.broken` files in its directory (etcd keeps
//! the backend's `db` there too; it is never touched here).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Corruption, Error, Result};
use crate::io::{fsync_dir, read_whole};
use crate::layout::{parse_snap_name, snap_name, BROKEN_SUFFIX};
use crate::pb::{SnapFile, Snapshot, SnapshotMark};

/// Saves and loads the snap files of one directory.
#[derive(Clone, Debug)]
pub struct Snapshotter {
    dir: PathBuf,
}

impl Snapshotter {
    /// Snap files live in `dir`, which must exist.
    pub fn new(dir: &Path) -> Snapshotter {
        Snapshotter {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `snapshot` to its snap file durably (temporary file, fsync, rename, directory
    /// fsync) and returns its path; an empty snapshot (index 0) is not saved (`None`).
    pub fn save(&self, snapshot: &Snapshot) -> Result<Option<PathBuf>> {
        if snapshot.is_empty() {
            return Ok(None);
        }
        let data = snapshot.encode_to_vec();
        let envelope = SnapFile {
            crc: crc32c::crc32c(&data),
            data: Some(data),
        };
        let name = snap_name(snapshot.metadata.term, snapshot.metadata.index);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&envelope.encode_to_vec())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        fsync_dir(&self.dir)?;
        Ok(Some(path))
    }

    /// The newest valid snapshot; broken files on the way are renamed `<name>.broken`.
    /// `NoSnapshot` if none is valid.
    pub fn load(&self) -> Result<Snapshot> {
        self.load_matching(|_| true)
    }

    /// The newest valid snapshot whose (term, index) is one of `marks` (etcd's
    /// `LoadNewestAvailable`, given the WAL's snapshot marks).
    pub fn load_newest_available(&self, marks: &[SnapshotMark]) -> Result<Snapshot> {
        self.load_matching(|s| {
            marks
                .iter()
                .any(|m| m.term == s.metadata.term && m.index == s.metadata.index)
        })
    }

    fn load_matching(&self, wanted: impl Fn(&Snapshot) -> bool) -> Result<Snapshot> {
        for name in self.snap_names()?.iter().rev() {
            let path = self.dir.join(name);
            match read_snap_file(&path) {
                Ok(snapshot) if wanted(&snapshot) => return Ok(snapshot),
                Ok(_) => {}
                Err(Error::Corrupted { .. }) => {
                    let mut broken = path.as_os_str().to_os_string();
                    broken.push(BROKEN_SUFFIX);
                    std::fs::rename(&path, &broken).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoSnapshot)
    }

    /// Removes the oldest snap files while more than `max_snapshots` remain (etcd's
    /// `--max-snapshots`). Returns the removed paths.
    pub fn purge(&self, max_snapshots: usize) -> Result<Vec<PathBuf>> {
        let names = self.snap_names()?;
        let excess = names.len().saturating_sub(max_snapshots);
        let mut removed = Vec::new();
        for name in &names[..excess] {
            let path = self.dir.join(name);
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            removed.push(path);
        }
        if !removed.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Snap file names, oldest first (their fixed-width hex names sort by term, then index).
    fn snap_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                if parse_snap_name(name).is_some() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Reads and verifies one snap file (etcd's `snap.Read`).
///
/// Errors: `Corrupted` when the file is empty, does not decode, has no data, a zero or wrong
/// CRC, or data that is not a snapshot; `Io` when it cannot be read.
pub fn read_snap_file(path: &Path) -> Result<Snapshot> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = read_whole(&file, path)?;
    let corrupt = |what| Error::corrupted(path, 0, what);
    if bytes.is_empty() {
        return Err(corrupt(Corruption::EmptySnapshot));
    }
    let envelope = SnapFile::decode(&bytes[..]).map_err(|_| corrupt(Corruption::BadSnapshot))?;
    let data = envelope.data.unwrap_or_default();
    if data.is_empty() || envelope.crc == 0 {
        return Err(corrupt(Corruption::EmptySnapshot));
    }
    let computed = crc32c::crc32c(&data);
    if computed != envelope.crc {
        return Err(corrupt(Corruption::SnapCrcMismatch {
            stored: envelope.crc,
            computed,
        }));
    }
    Snapshot::decode(&data[..]).map_err(|_| corrupt(Corruption::BadSnapshot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{ConfState, SnapshotMetadata};

    fn snapshot(term: u64, index: u64) -> Snapshot {
        Snapshot {
            data: format!("state at {index}").into_bytes(),
            metadata: SnapshotMetadata {
                conf_state: ConfState {
                    voters: vec![1, 2, 3],
                    ..ConfState::default()
                },
                index,
                term,
            },
        }
    }

    #[test]
    fn save_load_round_trip_and_newest_wins() {
        // Proves save/load round-trips and load picks the newest (term, index) by name.
        let dir = tempfile::tempdir().expect("tempdir");
        let snap = Snapshotter::new(dir.path());
        assert!(matches!(snap.load(), Err(Error::NoSnapshot)));
        assert_eq!(snap.save(&snapshot(0, 0)).expect("empty"), None);
        for (term, index) in [(1, 10), (2, 20), (2, 15)] {
            let path = snap
                .save(&snapshot(term, index))
                .expect("save")
                .expect("saved");
            assert_eq!(
                path.file_name().and_then(|n| n.to_str()),
                Some(&*snap_name(term, index))
            );
        }
        assert_eq!(snap.load().expect("load"), snapshot(2, 20));
        let marks = [
            SnapshotMark { index: 15, term: 2 },
            SnapshotMark { index: 10, term: 1 },
        ];
        assert_eq!(
            snap.load_newest_available(&marks).expect("load"),
            snapshot(2, 15)
        );
    }

    #[test]
    fn broken_files_are_set_aside_and_the_next_one_loads() {
        // Proves a damaged newest file is renamed .broken and the previous one is returned.
        let dir = tempfile::tempdir().expect("tempdir");
        let snap = Snapshotter::new(dir.path());
        snap.save(&snapshot(1, 10)).expect("save");
        let newest = snap.save(&snapshot(1, 20)).expect("save").expect("saved");
        let mut bytes = std::fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&newest, &bytes).expect("write");
        let empty = dir.path().join(snap_name(1, 30));
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(
            read_snap_file(&newest),
            Err(Error::Corrupted {
                what: Corruption::SnapCrcMismatch { .. },
                ..
            })
        ));
        assert_eq!(snap.load().expect("load"), snapshot(1, 10));
        assert!(!newest.exists() && !empty.exists());
        let mut broken = newest.into_os_string();
        broken.push(".broken");
        assert!(Path::new(&broken).exists());
    }

    #[test]
    fn purge_keeps_the_newest() {
        // Proves purge removes the oldest files beyond max_snapshots and nothing else.
        let dir = tempfile::tempdir().expect("tempdir");
        let snap = Snapshotter::new(dir.path());
        for index in 1..=7 {
            snap.save(&snapshot(1, index * 10)).expect("save");
        }
        std::fs::write(dir.path().join("db"), b"backend").expect("db");
        let removed = snap.purge(5).expect("purge");
        assert_eq!(removed.len(), 2);
        assert!(removed[0].ends_with(snap_name(1, 10)));
        assert!(removed[1].ends_with(snap_name(1, 20)));
        assert_eq!(snap.snap_names().expect("names").len(), 5);
        assert!(dir.path().join("db").exists());
    }
}
