//! `oxutl db page PATH ID`: one page's header and its decoded elements, read from the raw
//! page bytes with [`super::decode`] so the tool shows what is on disk, not what the engine
//! makes of it.
//!
//! A page the engine reports as free is decoded too (its bytes are whatever was last written
//! there), but a failure to decode it is a note rather than an error.

use std::io::Write;
use std::path::PathBuf;

use oxcd_engine::{PageInfo, PageKind};
use serde::Serialize;

use super::encoding::{self, ByteFormat};
use oxcd_engine::layout::BUCKET_LEAF_FLAG;

use super::decode::{self, BucketValue, PageBody};
use super::{open_read_only, write_json, ToolError};

#[derive(Debug, clap::Args)]
pub struct PageArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Page id (see `oxutl db pages`)
    pub id: u64,
    /// How keys and values are printed (`bytes` prints as `ascii` here)
    #[arg(long, value_enum, default_value_t)]
    pub format: ByteFormat,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct PageReport {
    pub id: u64,
    /// The engine's view: "meta", "freelist", "branch", "leaf", "free" or "unknown<xx>".
    #[serde(rename = "type")]
    pub kind: String,
    pub header_id: u64,
    pub flags: u16,
    pub items: u16,
    pub overflow: u32,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_ids: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<Vec<BranchJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<Vec<LeafJson>>,
}

#[derive(Debug, Serialize)]
pub struct MetaJson {
    pub magic: String,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    pub root_pgid: u64,
    pub sequence: u64,
    pub freelist_pgid: u64,
    pub high_water_pgid: u64,
    pub txid: u64,
    pub checksum: String,
    pub checksum_ok: bool,
}

#[derive(Debug, Serialize)]
pub struct BranchJson {
    pub key: String,
    pub key_hex: String,
    pub child_pgid: u64,
}

#[derive(Debug, Serialize)]
pub struct LeafJson {
    pub flags: u32,
    pub key: String,
    pub key_hex: String,
    pub value: String,
    pub value_hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketJson>,
}

#[derive(Debug, Serialize)]
pub struct BucketJson {
    pub root_pgid: u64,
    pub sequence: u64,
    pub inline_items: Option<u16>,
}

pub fn run(args: &PageArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    let found = db
        .view(|tx| match tx.page_info(args.id)? {
            None => Ok(Err(tx.meta().high_water_pgid)),
            Some(info) => Ok(Ok((info, tx.raw_page(args.id)?.to_vec()))),
        })
        .map_err(|err| ToolError::engine(&args.path, err))?;
    let (info, bytes) = found.map_err(|high_water| ToolError::PageNotFound {
        file: args.path.clone(),
        id: args.id,
        high_water,
    })?;
    let report = build_report(&info, &bytes, args.format).map_err(|reason| ToolError::BadPage {
        file: args.path.clone(),
        id: args.id,
        reason,
    })?;
    if args.json {
        return write_json(out, &report);
    }
    write_text(out, &report)?;
    Ok(())
}

/// Decodes `bytes` into a report; `Err` only for a page in use that cannot be decoded.
pub fn build_report(
    info: &PageInfo,
    bytes: &[u8],
    format: ByteFormat,
) -> Result<PageReport, String> {
    let free = info.kind == PageKind::Free;
    let header = decode::decode_header(bytes)?;
    let mut report = PageReport {
        id: info.id,
        kind: info.kind.to_string(),
        header_id: header.id,
        flags: header.flags,
        items: header.count,
        overflow: header.overflow,
        size_bytes: bytes.len() as u64,
        ..PageReport::default()
    };
    if free {
        report.note = Some(format!(
            "page is free; its bytes are stale (last written as {})",
            decode::kind_name(header.flags)
        ));
    }
    let body = match decode::decode_body(bytes, &header) {
        Ok(body) => body,
        Err(reason) if free => {
            report.note = Some(format!(
                "page is free and its stale bytes do not decode: {reason}"
            ));
            return Ok(report);
        }
        Err(reason) => return Err(reason),
    };
    match body {
        PageBody::Meta(meta) => report.meta = Some(meta_json(&meta)),
        PageBody::Freelist(ids) => report.free_ids = Some(ids),
        PageBody::Branch(elements) => {
            let rows = elements.iter().map(|element| BranchJson {
                key: encoding::render_text(element.key, format),
                key_hex: encoding::to_hex(element.key),
                child_pgid: element.child_pgid,
            });
            report.branch = Some(rows.collect());
        }
        PageBody::Leaf(elements) => {
            let rows = elements.iter().map(|element| LeafJson {
                flags: element.flags,
                key: encoding::render_text(element.key, format),
                key_hex: encoding::to_hex(element.key),
                value: encoding::render_text(element.value, format),
                value_hex: encoding::to_hex(element.value),
                bucket: (element.flags & BUCKET_LEAF_FLAG != 0)
                    .then(|| decode::decode_bucket_value(element.value))
                    .flatten()
                    .map(bucket_json),
            });
            report.leaf = Some(rows.collect());
        }
        PageBody::Unknown => {}
    }
    Ok(report)
}

fn meta_json(meta: &oxcd_engine::Meta) -> MetaJson {
    MetaJson {
        magic: format!("{:#010x}", meta.magic),
        version: meta.version,
        page_size: meta.page_size,
        flags: meta.flags,
        root_pgid: meta.root_pgid,
        sequence: meta.sequence,
        freelist_pgid: meta.freelist_pgid,
        high_water_pgid: meta.high_water_pgid,
        txid: meta.txid,
        checksum: format!("{:#018x}", meta.checksum),
        checksum_ok: meta.checksum_ok(),
    }
}

fn bucket_json(value: BucketValue) -> BucketJson {
    BucketJson {
        root_pgid: value.root_pgid,
        sequence: value.sequence,
        inline_items: value.inline_items,
    }
}

fn write_text(out: &mut dyn Write, report: &PageReport) -> std::io::Result<()> {
    writeln!(out, "Page:           {}", report.id)?;
    writeln!(
        out,
        "Type:           {} (flags {:#06x})",
        report.kind, report.flags
    )?;
    if report.header_id != report.id {
        writeln!(
            out,
            "Header id:      {} (differs from the page's position)",
            report.header_id
        )?;
    }
    writeln!(out, "Items:          {}", report.items)?;
    writeln!(out, "Overflow pages: {}", report.overflow)?;
    writeln!(out, "Size:           {} bytes", report.size_bytes)?;
    if let Some(note) = &report.note {
        writeln!(out, "Note:           {note}")?;
    }
    if let Some(meta) = &report.meta {
        write_meta(out, meta)?;
    }
    if let Some(ids) = &report.free_ids {
        writeln!(out)?;
        writeln!(out, "Free page ids ({}):", ids.len())?;
        for id in ids {
            writeln!(out, "{id}")?;
        }
    }
    if let Some(elements) = &report.branch {
        writeln!(out)?;
        for (index, element) in elements.iter().enumerate() {
            writeln!(
                out,
                "[{index}] key={} child={}",
                element.key, element.child_pgid
            )?;
        }
    }
    if let Some(elements) = &report.leaf {
        writeln!(out)?;
        for (index, element) in elements.iter().enumerate() {
            write!(
                out,
                "[{index}] flags={:#x} key={} ",
                element.flags, element.key
            )?;
            match &element.bucket {
                Some(bucket) => {
                    write!(
                        out,
                        "bucket: root={} sequence={}",
                        bucket.root_pgid, bucket.sequence
                    )?;
                    match bucket.inline_items {
                        Some(items) => writeln!(out, " inline with {items} items")?,
                        None => writeln!(out)?,
                    }
                }
                None => writeln!(out, "value={}", element.value)?,
            }
        }
    }
    Ok(())
}

fn write_meta(out: &mut dyn Write, meta: &MetaJson) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Magic:           {}", meta.magic)?;
    writeln!(out, "Version:         {}", meta.version)?;
    writeln!(out, "Page size:       {}", meta.page_size)?;
    writeln!(out, "Flags:           {:#x}", meta.flags)?;
    writeln!(out, "Root pgid:       {}", meta.root_pgid)?;
    writeln!(out, "Sequence:        {}", meta.sequence)?;
    writeln!(out, "Freelist pgid:   {}", meta.freelist_pgid)?;
    writeln!(out, "High water pgid: {}", meta.high_water_pgid)?;
    writeln!(out, "Txid:            {}", meta.txid)?;
    let verdict = if meta.checksum_ok { "ok" } else { "MISMATCH" };
    writeln!(out, "Checksum:        {} ({verdict})", meta.checksum)
}
