//! `oxutl db stats PATH [PREFIX]`: bbolt-style B+tree statistics summed over every top-level
//! bucket whose name starts with PREFIX (all buckets when PREFIX is absent). Each bucket's
//! figures include its nested buckets, as the engine's `bucket_stats` (bbolt's
//! `Bucket.Stats`) reports them; depth is the maximum, everything else is summed.

use std::io::Write;
use std::path::PathBuf;

use oxcd_engine::{BucketStats, TxRead};
use serde::Serialize;

use super::{open_read_only, write_json, ToolError};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Only buckets whose names start with this text
    pub prefix: Option<String>,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// The aggregate, in the JSON shape `--json` prints.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct StatsReport {
    /// Top-level buckets that matched the prefix.
    pub matched_bucket_count: u64,
    pub branch_page_count: u64,
    pub branch_overflow_page_count: u64,
    pub leaf_page_count: u64,
    pub leaf_overflow_page_count: u64,
    pub key_count: u64,
    pub depth: u64,
    pub branch_allocated_bytes: u64,
    pub branch_in_use_bytes: u64,
    pub leaf_allocated_bytes: u64,
    pub leaf_in_use_bytes: u64,
    /// All buckets counted, nested ones included.
    pub bucket_count: u64,
    pub inline_bucket_count: u64,
    pub inline_bucket_in_use_bytes: u64,
}

impl StatsReport {
    /// Adds one top-level bucket's statistics (its nested buckets already included).
    pub fn add(&mut self, stats: &BucketStats) {
        self.matched_bucket_count += 1;
        self.branch_page_count += stats.branch_page_n;
        self.branch_overflow_page_count += stats.branch_overflow_n;
        self.leaf_page_count += stats.leaf_page_n;
        self.leaf_overflow_page_count += stats.leaf_overflow_n;
        self.key_count += stats.key_n;
        self.depth = self.depth.max(stats.depth);
        self.branch_allocated_bytes += stats.branch_alloc;
        self.branch_in_use_bytes += stats.branch_inuse;
        self.leaf_allocated_bytes += stats.leaf_alloc;
        self.leaf_in_use_bytes += stats.leaf_inuse;
        self.bucket_count += stats.bucket_n;
        self.inline_bucket_count += stats.inline_bucket_n;
        self.inline_bucket_in_use_bytes += stats.inline_bucket_inuse;
    }
}

pub fn run(args: &StatsArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    let engine_err = |err| ToolError::engine(&args.path, err);
    let prefix = args.prefix.as_deref().unwrap_or("").as_bytes();
    let report = db
        .view(|tx| {
            let mut report = StatsReport::default();
            let mut names = Vec::new();
            let mut cursor = tx.cursor(tx.root())?;
            let mut item = cursor.first()?;
            while let Some(current) = item {
                if current.is_bucket && current.key.starts_with(prefix) {
                    names.push(current.key.to_vec());
                }
                item = cursor.next()?;
            }
            for name in names {
                if let Some(bucket) = tx.bucket(tx.root(), &name)? {
                    report.add(&tx.bucket_stats(bucket)?);
                }
            }
            Ok(report)
        })
        .map_err(engine_err)?;
    if args.json {
        return write_json(out, &report);
    }
    write_text(out, &report)?;
    Ok(())
}

/// Whole percent of `part` in `whole`, 0 when `whole` is 0.
fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

fn write_text(out: &mut dyn Write, r: &StatsReport) -> std::io::Result<()> {
    writeln!(out, "Buckets matched: {}", r.matched_bucket_count)?;
    writeln!(out)?;
    writeln!(out, "Pages")?;
    writeln!(
        out,
        "  branch pages (logical):         {}",
        r.branch_page_count
    )?;
    writeln!(
        out,
        "  branch overflow pages:          {}",
        r.branch_overflow_page_count
    )?;
    writeln!(
        out,
        "  leaf pages (logical):           {}",
        r.leaf_page_count
    )?;
    writeln!(
        out,
        "  leaf overflow pages:            {}",
        r.leaf_overflow_page_count
    )?;
    writeln!(out, "Tree")?;
    writeln!(out, "  keys:                           {}", r.key_count)?;
    writeln!(out, "  depth (levels):                 {}", r.depth)?;
    writeln!(out, "Space")?;
    writeln!(
        out,
        "  branch bytes allocated:         {}",
        r.branch_allocated_bytes
    )?;
    let branch_pct = percent(r.branch_in_use_bytes, r.branch_allocated_bytes);
    writeln!(
        out,
        "  branch bytes in use:            {} ({branch_pct}%)",
        r.branch_in_use_bytes
    )?;
    writeln!(
        out,
        "  leaf bytes allocated:           {}",
        r.leaf_allocated_bytes
    )?;
    let leaf_pct = percent(r.leaf_in_use_bytes, r.leaf_allocated_bytes);
    writeln!(
        out,
        "  leaf bytes in use:              {} ({leaf_pct}%)",
        r.leaf_in_use_bytes
    )?;
    writeln!(out, "Buckets")?;
    writeln!(out, "  buckets (nested included):      {}", r.bucket_count)?;
    let inline_pct = percent(r.inline_bucket_count, r.bucket_count);
    writeln!(
        out,
        "  inline buckets:                 {} ({inline_pct}%)",
        r.inline_bucket_count
    )?;
    let inline_bytes_pct = percent(r.inline_bucket_in_use_bytes, r.leaf_in_use_bytes);
    writeln!(
        out,
        "  inline bucket bytes in use:     {} ({inline_bytes_pct}% of leaf bytes in use)",
        r.inline_bucket_in_use_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Percentages never divide by zero and round down like bbolt's integer percentages.
    #[test]
    fn percent_rounds_down_and_handles_zero() {
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(3, 3), 100);
    }
}
