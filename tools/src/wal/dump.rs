//! `oxutl wal dump DIR`: what a WAL holds, like etcd's `etcd-dump-logs`: the metadata, the
//! snapshot marks, the latest hard state, the snap files next to it, then one line per entry
//! of the effective raft log (term, index, type, data summary), optionally filtered by entry
//! type and index range; `--json` prints the same as one JSON object.
//!
//! Reads only. The whole WAL is read and verified before anything is printed, so a damaged
//! WAL gives one error line and no partial dump.

use std::io::Write;
use std::path::{Path, PathBuf};

use oxcd_wal::layout::parse_snap_name;
use oxcd_wal::{read_snap_file, Entry, EntryType, HardState};
use serde::Serialize;

use super::etcdpb::Metadata;
use super::scan::{locate, scan};
use super::summary::{summarize, EntryKind};
use super::{write_json, WalToolError};

#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// Data dir (holding member/wal) or WAL directory
    pub dir: PathBuf,
    /// Only entries of these types, comma-separated: norm, conf, empty, v2, irr, range, put,
    /// delete, txn, compaction, lease, lease_grant, lease_revoke, lease_checkpoint, alarm,
    /// auth, unknown; etcd-dump-logs' names (Normal, ConfigChange, Request,
    /// InternalRaftRequest, IRRPut, ...) work too
    #[arg(long, value_delimiter = ',', value_parser = EntryFilter::parse)]
    pub entry_type: Vec<EntryFilter>,
    /// Only entries at this index or later
    #[arg(long)]
    pub start_index: Option<u64>,
    /// Only entries at this index or earlier
    #[arg(long)]
    pub end_index: Option<u64>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// One name accepted by `--entry-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFilter {
    /// Every entry of type EntryNormal.
    Normal,
    /// Every entry of type EntryConfChange or EntryConfChangeV2.
    Conf,
    /// Every v3 request.
    InternalRaftRequest,
    /// Lease grants, revokes and checkpoints.
    Lease,
    /// One kind.
    Kind(EntryKind),
}

impl EntryFilter {
    /// Parses one name, case-insensitively.
    pub fn parse(name: &str) -> Result<EntryFilter, String> {
        use EntryKind as K;
        let filter = match name.trim().to_ascii_lowercase().as_str() {
            "norm" | "normal" => EntryFilter::Normal,
            "conf" | "configchange" => EntryFilter::Conf,
            "irr" | "internalraftrequest" => EntryFilter::InternalRaftRequest,
            "lease" => EntryFilter::Lease,
            "empty" => EntryFilter::Kind(K::Empty),
            "v2" | "request" => EntryFilter::Kind(K::V2Request),
            "range" | "irrrange" => EntryFilter::Kind(K::Range),
            "put" | "irrput" => EntryFilter::Kind(K::Put),
            "delete" | "delete_range" | "irrdeleterange" => EntryFilter::Kind(K::DeleteRange),
            "txn" | "irrtxn" => EntryFilter::Kind(K::Txn),
            "compaction" | "irrcompaction" => EntryFilter::Kind(K::Compaction),
            "lease_grant" | "irrleasegrant" => EntryFilter::Kind(K::LeaseGrant),
            "lease_revoke" | "irrleaserevoke" => EntryFilter::Kind(K::LeaseRevoke),
            "lease_checkpoint" => EntryFilter::Kind(K::LeaseCheckpoint),
            "alarm" => EntryFilter::Kind(K::Alarm),
            "auth" => EntryFilter::Kind(K::Auth),
            "unknown" => EntryFilter::Kind(K::Unknown),
            _ => {
                return Err(format!(
                    "unknown entry type {name:?} (expected norm, conf, empty, v2, irr, range, \
                     put, delete, txn, compaction, lease, lease_grant, lease_revoke, \
                     lease_checkpoint, alarm, auth, unknown)"
                ))
            }
        };
        Ok(filter)
    }

    fn matches(self, entry_type: i32, kind: EntryKind) -> bool {
        match self {
            EntryFilter::Normal => entry_type == EntryType::EntryNormal as i32,
            EntryFilter::Conf => {
                entry_type == EntryType::EntryConfChange as i32
                    || entry_type == EntryType::EntryConfChangeV2 as i32
            }
            EntryFilter::InternalRaftRequest => kind.is_internal_raft_request(),
            EntryFilter::Lease => matches!(
                kind,
                EntryKind::LeaseGrant | EntryKind::LeaseRevoke | EntryKind::LeaseCheckpoint
            ),
            EntryFilter::Kind(wanted) => kind == wanted,
        }
    }
}

/// The JSON shape of `dump`; the text output shows the same.
#[derive(Debug, Serialize)]
pub struct DumpReport {
    pub wal_dir: PathBuf,
    pub segments: Vec<String>,
    pub metadata: Option<MetadataView>,
    pub snapshots: Vec<SnapshotView>,
    pub hard_state: Option<HardStateView>,
    pub snap_files: Vec<SnapFileView>,
    pub torn_tail: Option<TornTailView>,
    /// Entries in the effective log, whatever the filters.
    pub entry_count: u64,
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// The entries the filters kept, in index order.
    pub entries: Vec<EntryLine>,
}

/// The metadata record: etcd's node and cluster IDs when it is etcd's `Metadata`, always hex.
#[derive(Debug, Serialize)]
pub struct MetadataView {
    pub node_id: Option<u64>,
    pub cluster_id: Option<u64>,
    pub hex: String,
}

#[derive(Debug, Serialize)]
pub struct SnapshotView {
    pub term: u64,
    pub index: u64,
}

#[derive(Debug, Serialize)]
pub struct HardStateView {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

/// One `*.snap` file of the snap directory, newest last.
#[derive(Debug, Serialize)]
pub struct SnapFileView {
    pub name: String,
    pub term: Option<u64>,
    pub index: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub data_size_bytes: Option<u64>,
    /// Why the file cannot be read, when it cannot.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TornTailView {
    pub segment: String,
    pub offset: u64,
    pub what: String,
}

/// One entry of the dump.
#[derive(Debug, Serialize)]
pub struct EntryLine {
    pub term: u64,
    pub index: u64,
    /// `norm`, `conf`, or `type<N>` for an entry type raft does not define.
    #[serde(rename = "type")]
    pub entry_type: String,
    pub kind: EntryKind,
    pub data_size_bytes: u64,
    pub summary: String,
}

pub fn run(args: &DumpArgs, out: &mut dyn Write) -> Result<(), WalToolError> {
    let report = build_report(args)?;
    if args.json {
        return write_json(out, &report);
    }
    write_text(out, &report)?;
    Ok(())
}

/// Reads the WAL (and snap files) of `args.dir` into a report.
pub fn build_report(args: &DumpArgs) -> Result<DumpReport, WalToolError> {
    let location = locate(&args.dir)?;
    let start = args.start_index.unwrap_or(0);
    let end = args.end_index.unwrap_or(u64::MAX);
    let scan = scan(&location.wal_dir, |entry| {
        if entry.index < start || entry.index > end {
            return None;
        }
        let line = entry_line(entry);
        let wanted = args.entry_type.is_empty()
            || args
                .entry_type
                .iter()
                .any(|f| f.matches(entry.entry_type, line.kind));
        wanted.then_some(line)
    })?;
    let snap_files = match &location.snap_dir {
        Some(dir) => snap_files(dir)?,
        None => Vec::new(),
    };
    Ok(DumpReport {
        wal_dir: location.wal_dir,
        entry_count: scan.log.len() as u64,
        first_index: scan.log.first().map(|&(index, _)| index),
        last_index: scan.last_index(),
        segments: scan.segments,
        metadata: scan.metadata.map(|bytes| metadata_view(&bytes)),
        snapshots: scan
            .snapshots
            .iter()
            .map(|m| SnapshotView {
                term: m.term,
                index: m.index,
            })
            .collect(),
        hard_state: scan.hard_state.map(|s: HardState| HardStateView {
            term: s.term,
            vote: s.vote,
            commit: s.commit,
        }),
        snap_files,
        torn_tail: scan.torn_tail.map(|t| TornTailView {
            segment: t.segment,
            offset: t.offset,
            what: t.what.to_string(),
        }),
        entries: scan.kept.into_iter().map(|(_, line)| line).collect(),
    })
}

fn entry_line(entry: &Entry) -> EntryLine {
    let summary = summarize(entry);
    let entry_type = match EntryType::try_from(entry.entry_type) {
        Ok(EntryType::EntryNormal) => "norm".to_string(),
        Ok(EntryType::EntryConfChange | EntryType::EntryConfChangeV2) => "conf".to_string(),
        Err(_) => format!("type{}", entry.entry_type),
    };
    EntryLine {
        term: entry.term,
        index: entry.index,
        entry_type,
        kind: summary.kind,
        data_size_bytes: entry.data.len() as u64,
        summary: summary.text,
    }
}

fn metadata_view(bytes: &[u8]) -> MetadataView {
    let decoded = Metadata::decode_exact(bytes);
    MetadataView {
        node_id: decoded.as_ref().map(|m| m.node_id),
        cluster_id: decoded.as_ref().map(|m| m.cluster_id),
        hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Every snap file of `dir`, oldest first, each read and verified (never renamed or
/// modified, unlike the server's loader).
fn snap_files(dir: &Path) -> Result<Vec<SnapFileView>, WalToolError> {
    let io_error = |source| WalToolError::Io {
        file: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let name = entry.map_err(io_error)?.file_name();
        if let Some(name) = name.to_str().filter(|n| parse_snap_name(n).is_some()) {
            names.push(name.to_string());
        }
    }
    names.sort();
    let views = names
        .into_iter()
        .map(|name| match read_snap_file(&dir.join(&name)) {
            Ok(snapshot) => SnapFileView {
                name,
                term: Some(snapshot.metadata.term),
                index: Some(snapshot.metadata.index),
                voters: snapshot.metadata.conf_state.voters,
                learners: snapshot.metadata.conf_state.learners,
                data_size_bytes: Some(snapshot.data.len() as u64),
                error: None,
            },
            Err(err) => SnapFileView {
                name,
                term: None,
                index: None,
                voters: Vec::new(),
                learners: Vec::new(),
                data_size_bytes: None,
                error: Some(err.to_string()),
            },
        })
        .collect();
    Ok(views)
}

fn hex_list(ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| format!("{id:x}")).collect();
    ids.join(",")
}

fn write_text(out: &mut dyn Write, report: &DumpReport) -> std::io::Result<()> {
    writeln!(
        out,
        "WAL: {} ({} segment{})",
        report.wal_dir.display(),
        report.segments.len(),
        if report.segments.len() == 1 { "" } else { "s" }
    )?;
    match &report.metadata {
        Some(MetadataView {
            node_id: Some(node_id),
            cluster_id: Some(cluster_id),
            ..
        }) => writeln!(
            out,
            "Metadata: node_id={node_id:x} cluster_id={cluster_id:x}"
        )?,
        Some(metadata) => writeln!(out, "Metadata: hex={}", metadata.hex)?,
        None => writeln!(out, "Metadata: none")?,
    }
    if report.snapshots.is_empty() {
        writeln!(out, "Snapshot: none")?;
    }
    for mark in &report.snapshots {
        writeln!(out, "Snapshot: term={} index={}", mark.term, mark.index)?;
    }
    match &report.hard_state {
        Some(s) => writeln!(
            out,
            "Hard state: term={} vote={:x} commit={}",
            s.term, s.vote, s.commit
        )?,
        None => writeln!(out, "Hard state: none")?,
    }
    write_snap_files(out, &report.snap_files)?;
    write_entries(out, report)
}

fn write_snap_files(out: &mut dyn Write, snap_files: &[SnapFileView]) -> std::io::Result<()> {
    for snap in snap_files {
        match (&snap.error, snap.term, snap.index) {
            (None, Some(term), Some(index)) => writeln!(
                out,
                "Snap file: {} term={term} index={index} voters=[{}] learners=[{}] data_size={}",
                snap.name,
                hex_list(&snap.voters),
                hex_list(&snap.learners),
                snap.data_size_bytes.unwrap_or(0)
            )?,
            (error, _, _) => writeln!(
                out,
                "Snap file: {} unreadable: {}",
                snap.name,
                error.as_deref().unwrap_or("unknown error")
            )?,
        }
    }
    Ok(())
}

/// The torn tail, if any, and the entries after a count line and the column header.
fn write_entries(out: &mut dyn Write, report: &DumpReport) -> std::io::Result<()> {
    if let Some(torn) = &report.torn_tail {
        writeln!(
            out,
            "Torn tail: {} at offset {}: {}",
            torn.segment, torn.offset, torn.what
        )?;
    }
    match (report.first_index, report.last_index) {
        (Some(first), Some(last)) => writeln!(
            out,
            "Entries: {} (index {first} to {last}), {} shown",
            report.entry_count,
            report.entries.len()
        )?,
        _ => writeln!(out, "Entries: 0")?,
    }
    writeln!(out, "{:>4}\t{:>10}\ttype\tdata", "term", "index")?;
    for line in &report.entries {
        writeln!(
            out,
            "{:>4}\t{:>10}\t{}\t{}",
            line.term, line.index, line.entry_type, line.summary
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_type_names_parse_like_etcd_dump_logs() {
        // Proves our short names and etcd-dump-logs' names select the same entries.
        assert_eq!(EntryFilter::parse("norm"), Ok(EntryFilter::Normal));
        assert_eq!(EntryFilter::parse("Normal"), Ok(EntryFilter::Normal));
        assert_eq!(EntryFilter::parse("ConfigChange"), Ok(EntryFilter::Conf));
        assert_eq!(
            EntryFilter::parse("IRRPut"),
            Ok(EntryFilter::Kind(EntryKind::Put))
        );
        assert!(EntryFilter::parse("bogus").is_err());
        let normal = EntryType::EntryNormal as i32;
        let conf_v2 = EntryType::EntryConfChangeV2 as i32;
        assert!(EntryFilter::Conf.matches(conf_v2, EntryKind::ConfChangeV2));
        assert!(!EntryFilter::Conf.matches(normal, EntryKind::Put));
        assert!(EntryFilter::InternalRaftRequest.matches(normal, EntryKind::Txn));
        assert!(!EntryFilter::InternalRaftRequest.matches(normal, EntryKind::V2Request));
        assert!(EntryFilter::Lease.matches(normal, EntryKind::LeaseRevoke));
    }
}
