//! `oxutl db compact PATH -o OUT`: copies the live buckets and keys of PATH into a new file
//! OUT, packed densely, leaving PATH untouched (it is opened read-only).
//!
//! OUT must not exist: compacting into an existing data file would merge two databases. If the
//! copy fails, the partial OUT is removed. OUT gets PATH's page size. A progress bar is drawn
//! on stderr only when stderr is a terminal; the summary line goes to stdout.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxcd_engine::layout::{MAX_FILL_PERCENT, MIN_FILL_PERCENT};
use oxcd_engine::{CompactOptions, Db, Options};

use super::{open_read_only, ToolError};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: oxutl db compact member/snap/db -o /tmp/db.compacted")]
pub struct CompactArgs {
    /// Data file to compact (opened read-only, never modified)
    pub path: PathBuf,
    /// Output data file; must not exist yet
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// How full to pack each page, 0.1 to 1.0 [default: the engine's, 0.5]
    #[arg(long, value_name = "F", value_parser = parse_fill_percent)]
    pub fill_percent: Option<f64>,
    /// Commit the copy every BYTES bytes of keys and values [default: the engine's, 64 MiB]
    #[arg(long, value_name = "BYTES")]
    pub tx_max_size: Option<u64>,
}

fn parse_fill_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (MIN_FILL_PERCENT..=MAX_FILL_PERCENT).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is outside {MIN_FILL_PERCENT}..={MAX_FILL_PERCENT}"
        ))
    }
}

pub fn run(args: &CompactArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    if args.output.exists() {
        return Err(ToolError::Refused {
            file: args.output.clone(),
            reason: "output file already exists; refusing to compact into it".to_string(),
        });
    }
    let src = open_read_only(&args.path)?;
    let before_bytes = file_size(&args.path)?;
    let total_bytes = src
        .begin_read()
        .map(|tx| tx.size_bytes())
        .map_err(|err| ToolError::engine(&args.path, err))?;
    let mut options = CompactOptions::default();
    if let Some(fill_percent) = args.fill_percent {
        options.fill_percent = fill_percent;
    }
    if let Some(tx_max_size) = args.tx_max_size {
        options.tx_max_bytes = tx_max_size;
    }
    let result = copy_into_new_file(&src, &args.output, &options, total_bytes);
    drop(src);
    if let Err(err) = result {
        // The output did not exist before this run, so removing it destroys nothing of the
        // user's; a failure to remove it is secondary to the error being reported.
        let _ = std::fs::remove_file(&args.output);
        return Err(err);
    }
    let after_bytes = file_size(&args.output)?;
    let percent = if before_bytes == 0 {
        100.0
    } else {
        after_bytes as f64 * 100.0 / before_bytes as f64
    };
    writeln!(
        out,
        "{}: {before_bytes} bytes -> {}: {after_bytes} bytes ({percent:.1}% of the original)",
        args.path.display(),
        args.output.display()
    )?;
    Ok(())
}

/// Creates `output` and copies `src` into it; the output Db is closed when this returns.
fn copy_into_new_file(
    src: &Db,
    output: &Path,
    options: &CompactOptions,
    total_bytes: u64,
) -> Result<(), ToolError> {
    let dst_options = Options {
        page_size: src.page_size(),
        ..Options::default()
    };
    let dst = Db::open(output, dst_options).map_err(|err| ToolError::engine(output, err))?;
    let bar = progress_bar(total_bytes);
    let result = oxcd_engine::compact(src, &dst, options, &mut |copied_bytes| {
        bar.set_position(copied_bytes);
    });
    bar.finish_and_clear();
    result.map_err(|err| ToolError::engine(src.path(), err))
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "compacting {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

fn file_size(path: &Path) -> Result<u64, ToolError> {
    std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(|source| ToolError::Io {
            file: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fill percent outside bbolt's accepted range is a usage error, inside it parses.
    #[test]
    fn fill_percent_range() {
        assert_eq!(parse_fill_percent("0.9"), Ok(0.9));
        assert_eq!(parse_fill_percent("1"), Ok(1.0));
        assert!(parse_fill_percent("0.05").is_err());
        assert!(parse_fill_percent("1.5").is_err());
        assert!(parse_fill_percent("abc").is_err());
        assert!(parse_fill_percent("NaN").is_err());
    }
}
