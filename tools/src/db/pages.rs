//! `oxutl db pages PATH`: bbolt's page table, one row per page up to the high water mark.
//!
//! Free pages show no item count; a page with overflow pages is followed directly by the next
//! page after its overflow run, so overflow pages get no row of their own.

use std::io::Write;
use std::path::PathBuf;

use oxcd_engine::PageKind;
use serde::Serialize;

use super::{open_read_only, write_json, ToolError};

#[derive(Debug, clap::Args)]
pub struct PagesArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Print a JSON array of {"id", "type", "items", "overflow"} instead of the table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct PageRow {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    /// `None` for free pages, whose on-disk count means nothing.
    pub items: Option<u64>,
    pub overflow: u32,
}

pub fn run(args: &PagesArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    let rows = db
        .view(|tx| {
            let mut rows = Vec::new();
            let mut id = 0u64;
            while let Some(info) = tx.page_info(id)? {
                let free = info.kind == PageKind::Free;
                rows.push(PageRow {
                    id: info.id,
                    kind: info.kind.to_string(),
                    items: (!free).then_some(info.count),
                    overflow: if free { 0 } else { info.overflow },
                });
                id += 1 + if free { 0 } else { u64::from(info.overflow) };
            }
            Ok(rows)
        })
        .map_err(|err| ToolError::engine(&args.path, err))?;
    if args.json {
        return write_json(out, &rows);
    }
    write_table(out, &rows)?;
    Ok(())
}

fn write_table(out: &mut dyn Write, rows: &[PageRow]) -> std::io::Result<()> {
    writeln!(out, "ID       TYPE       ITEMS  OVRFLW")?;
    writeln!(out, "======== ========== ====== ======")?;
    for row in rows {
        let items = row.items.map(|count| count.to_string()).unwrap_or_default();
        let overflow = if row.overflow > 0 {
            row.overflow.to_string()
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<8} {:<10} {:<6} {:<6}",
            row.id, row.kind, items, overflow
        )?;
    }
    Ok(())
}
