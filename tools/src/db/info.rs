//! `oxutl db info PATH`: the engine's summary of the current meta page and file sizes.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{open_read_only, write_json, ToolError};

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// The JSON shape of `info`; field names carry their units.
#[derive(Debug, Serialize)]
pub struct InfoReport {
    pub page_size: u32,
    pub txid: u64,
    pub root_pgid: u64,
    pub freelist_pgid: u64,
    pub high_water_pgid: u64,
    pub free_page_count: u64,
    pub pending_page_count: u64,
    pub file_size_bytes: u64,
    pub size_in_use_bytes: u64,
}

pub fn run(args: &InfoArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    let info = db
        .info()
        .map_err(|err| ToolError::engine(&args.path, err))?;
    let report = InfoReport {
        page_size: info.page_size,
        txid: info.txid,
        root_pgid: info.root_pgid,
        freelist_pgid: info.freelist_pgid,
        high_water_pgid: info.high_water_pgid,
        free_page_count: info.free_page_count,
        pending_page_count: info.pending_page_count,
        file_size_bytes: info.file_size_bytes,
        size_in_use_bytes: info.size_in_use_bytes,
    };
    if args.json {
        return write_json(out, &report);
    }
    write_text(out, &report)?;
    Ok(())
}

fn write_text(out: &mut dyn Write, report: &InfoReport) -> std::io::Result<()> {
    writeln!(out, "Page size:          {} bytes", report.page_size)?;
    writeln!(out, "Transaction id:     {}", report.txid)?;
    writeln!(out, "Root bucket page:   {}", report.root_pgid)?;
    writeln!(out, "Freelist page:      {}", report.freelist_pgid)?;
    writeln!(out, "High water pgid:    {}", report.high_water_pgid)?;
    writeln!(out, "Free pages:         {}", report.free_page_count)?;
    writeln!(out, "Pending pages:      {}", report.pending_page_count)?;
    writeln!(out, "File size:          {} bytes", report.file_size_bytes)?;
    writeln!(
        out,
        "Size in use:        {} bytes",
        report.size_in_use_bytes
    )
}
