//! Catch-up by snapshot (etcd's merged snapshot message and `applySnapshot`).
//!
//! Sending (leader): raft asks for a snapshot when a follower needs entries the leader's log
//! no longer holds. Its `MsgSnapshot` carries the newest snap file's metadata; the body that
//! goes with it is a point-in-time copy of the whole backend taken now, after a commit, so the
//! copy's consistent index is the applied index, at or above the snapshot's index. The copy is
//! written by its own thread into a bounded pipe that the transport reads on the snapshot
//! connection, so neither the raft thread nor heartbeats wait for it.
//!
//! Receiving (follower): the transport has already stored the body, checked, as
//! `member/snap/<index as %016x>.snap.db`. Once raft has made the snapshot durable (snap file
//! and WAL record), [`install`] renames that file over `member/snap/db`, rebuilds the store
//! from it, reloads leases, members and alarms, and resets the watch hub so watchers catch up
//! from the new store's history. Entries after the snapshot index that the new database
//! already holds are skipped by the consistent index, as after a restart.
//!
//! A crash between the two (the WAL names a snapshot the database does not have yet) is
//! finished at the next start by [`finish_interrupted_install`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::error::ServerError;
use super::server::Shared;
use crate::membership;
use crate::raft::transport::{SnapshotBody, Transport};

/// Chunks in flight between the copying thread and the transport.
const PIPE_CHUNKS: usize = 16;

/// `member/snap/<index>.snap.db`, next to the database at `db_path`.
pub(super) fn snapshot_db_path(db_path: &Path, index: u64) -> PathBuf {
    db_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(crate::raft::transport::snap_db_name(index))
}

/// Sends `message` (a `MsgSnapshot`) with a copy of the backend as its body. If no copy can
/// be taken, the message goes to [`Transport::send`], which reports the snapshot failed.
pub(super) fn send(shared: &Shared, transport: &Transport, message: raft::eraftpb::Message) {
    let snapshot = match shared.store.backend().begin_snapshot() {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::warn!(%e, to = format!("{:x}", message.to), "cannot copy the database for a snapshot");
            transport.send(vec![message]);
            return;
        }
    };
    let size = snapshot.size_bytes();
    let (tx, rx) = sync_channel(PIPE_CHUNKS);
    let to = message.to;
    let spawned = std::thread::Builder::new()
        .name("snapshot-copy".to_string())
        .spawn(move || {
            let mut writer = PipeWriter(tx);
            // The transport hangs up on a failed send; the copy then stops here.
            if let Err(e) = snapshot.write_to(&mut writer) {
                tracing::debug!(%e, to = format!("{to:x}"), "snapshot copy ended early");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(%e, "cannot start the snapshot copy thread");
        transport.send(vec![message]);
        return;
    }
    tracing::info!(
        to = format!("{to:x}"),
        index = message.get_snapshot().get_metadata().index,
        size_bytes = size,
        "sending a database snapshot"
    );
    let reader = PipeReader {
        rx,
        chunk: Vec::new(),
        pos: 0,
    };
    transport.send_snapshot(
        message,
        SnapshotBody {
            size,
            reader: Box::new(reader),
        },
    );
}

/// Installs the database received with `snapshot` (see the module doc); returns the new
/// consistent index. The membership comes from the snapshot's data (as of its index, so the
/// entries after it replay onto it), or from the new database if the data is not oxcd's.
pub(super) fn install(
    shared: &Shared,
    snapshot: &oxcd_wal::pb::Snapshot,
) -> Result<u64, ServerError> {
    let index = snapshot.metadata.index;
    let store = &shared.store;
    let path = snapshot_db_path(store.backend().path(), index);
    if !path.exists() {
        return Err(ServerError::Internal(format!(
            "failed to find database snapshot file ({})",
            path.display()
        )));
    }
    let key_leases = store.replace_db(&path)?;
    let consistent_index = store.consistent_index()?;
    let read = store.backend().read_tx()?;
    super::start::restore_leases(&shared.lessor, &read, &key_leases)?;
    let cluster = match super::membership_from_snapshot_data(shared.cluster_id, &snapshot.data) {
        Some(cluster) => cluster,
        None => membership::load_cluster(shared.cluster_id, &read)?,
    };
    shared.members.replace(cluster);
    shared.alarms.replace(super::start::load_alarms(&read)?);
    drop(read);
    let rev = store.rev()?;
    shared.hub.reset(rev);
    tracing::info!(
        index,
        consistent_index,
        revision = rev,
        "installed the database snapshot received from the leader"
    );
    Ok(consistent_index)
}

/// At start, before the backend opens: if the newest snapshot (at `snapshot_index`) came from
/// a leader and its database was stored but not yet installed, install it now (etcd's
/// `recoverSnapshotBackend`). A database at or beyond the snapshot needs nothing.
pub(super) fn finish_interrupted_install(
    backend: &oxcd_engine::backend::Backend,
    consistent_index: u64,
    snapshot_index: u64,
) -> Result<(), ServerError> {
    if consistent_index >= snapshot_index {
        return Ok(());
    }
    let path = snapshot_db_path(backend.path(), snapshot_index);
    if !path.exists() {
        return Err(ServerError::Internal(format!(
            "database file ({} index {consistent_index}) does not match with snapshot (index \
             {snapshot_index})",
            backend.path().display()
        )));
    }
    tracing::info!(path = %path.display(), "installing a database snapshot received before the restart");
    backend.replace_with(&path)?;
    Ok(())
}

/// The copying thread's end of the pipe.
struct PipeWriter(SyncSender<Vec<u8>>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "receiver gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The transport's end: reads chunks in order; end of file once the writer is done.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipe_delivers_every_byte_in_order_then_eof() {
        // Proves the copy pipe loses, reorders and duplicates nothing, and ends.
        let (tx, rx) = sync_channel(2);
        let writer = std::thread::spawn(move || {
            let mut w = PipeWriter(tx);
            for i in 0..1000u32 {
                w.write_all(&i.to_be_bytes()).unwrap();
            }
        });
        let mut reader = PipeReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        writer.join().unwrap();
        let expected: Vec<u8> = (0..1000u32).flat_map(|i| i.to_be_bytes()).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn snapshot_db_files_sit_next_to_the_database() {
        // Proves the file name is etcd's `%016x.snap.db` in member/snap.
        let path = snapshot_db_path(Path::new("/d/member/snap/db"), 0x1234);
        assert_eq!(path, Path::new("/d/member/snap/0000000000001234.snap.db"));
    }
}
