//! `oxutl db buckets|keys|get`: reading names, keys and values.
//!
//! A bucket is named by one argument per nesting level: `keys PATH outer inner` lists the keys
//! of bucket `inner` inside top-level bucket `outer`. Arguments are text unless
//! `--parse-format hex` says otherwise, so any byte string can be named.

use std::io::Write;
use std::path::{Path, PathBuf};

use oxcd_engine::{BucketId, Error as EngineError, TxRead};
use serde::Serialize;

use super::encoding::{self, ByteFormat, ParseFormat};
use super::{open_read_only, write_json, ToolError};

#[derive(Debug, clap::Args)]
pub struct BucketsArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// How names are printed
    #[arg(long, value_enum, default_value_t)]
    pub format: ByteFormat,
    /// Print a JSON array of {"name", "name_hex"} instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example: oxutl db keys member.db members")]
pub struct KeysArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Bucket, one argument per nesting level (outer first)
    #[arg(required = true, num_args = 1..)]
    pub bucket: Vec<String>,
    /// How keys are printed
    #[arg(long, value_enum, default_value_t)]
    pub format: ByteFormat,
    /// How the BUCKET arguments are read
    #[arg(long, value_enum, default_value_t)]
    pub parse_format: ParseFormat,
    /// Print a JSON array of {"key", "key_hex", "is_bucket"} instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: oxutl db get member.db meta consistent_index --format hex\n\
    With --format bytes the value is written exactly, without a trailing newline."
)]
pub struct GetArgs {
    /// Data file (opened read-only)
    pub path: PathBuf,
    /// Bucket, one argument per nesting level (outer first)
    #[arg(required = true, num_args = 1..)]
    pub bucket: Vec<String>,
    /// Key to read (the last argument)
    #[arg(required = true)]
    pub key: String,
    /// How the value is printed
    #[arg(long, value_enum, default_value_t)]
    pub format: ByteFormat,
    /// How the BUCKET and KEY arguments are read
    #[arg(long, value_enum, default_value_t)]
    pub parse_format: ParseFormat,
}

#[derive(Debug, Serialize)]
struct NameJson {
    name: String,
    name_hex: String,
}

#[derive(Debug, Serialize)]
struct KeyJson {
    key: String,
    key_hex: String,
    is_bucket: bool,
}

pub fn run_buckets(args: &BucketsArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let db = open_read_only(&args.path)?;
    let names: Vec<Vec<u8>> = db
        .view(|tx| {
            let entries = list(tx, tx.root())?;
            Ok(entries
                .into_iter()
                .filter(|(_, is_bucket)| *is_bucket)
                .map(|(name, _)| name)
                .collect())
        })
        .map_err(|err| ToolError::engine(&args.path, err))?;
    if args.json {
        let names: Vec<NameJson> = names
            .iter()
            .map(|name| NameJson {
                name: encoding::to_auto(name).into_owned(),
                name_hex: encoding::to_hex(name),
            })
            .collect();
        return write_json(out, &names);
    }
    for name in names {
        encoding::write_line(out, &name, args.format)?;
    }
    Ok(())
}

pub fn run_keys(args: &KeysArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let path = parse_names(&args.path, &args.bucket, args.parse_format)?;
    let db = open_read_only(&args.path)?;
    let keys = db
        .view(|tx| match resolve(tx, &path)? {
            Some(bucket) => list(tx, bucket).map(Some),
            None => Ok(None),
        })
        .map_err(|err| ToolError::engine(&args.path, err))?
        .ok_or_else(|| bucket_not_found(&args.path, &path))?;
    if args.json {
        let keys: Vec<KeyJson> = keys
            .into_iter()
            .map(|(key, is_bucket)| KeyJson {
                key: encoding::to_auto(&key).into_owned(),
                key_hex: encoding::to_hex(&key),
                is_bucket,
            })
            .collect();
        return write_json(out, &keys);
    }
    for (key, _) in keys {
        encoding::write_line(out, &key, args.format)?;
    }
    Ok(())
}

/// What `get` found under the key.
enum Lookup {
    NoBucket,
    Value(Vec<u8>),
    NestedBucket,
    Missing,
}

pub fn run_get(args: &GetArgs, out: &mut dyn Write) -> Result<(), ToolError> {
    let path = parse_names(&args.path, &args.bucket, args.parse_format)?;
    let key = parse_names(
        &args.path,
        std::slice::from_ref(&args.key),
        args.parse_format,
    )?
    .remove(0);
    let db = open_read_only(&args.path)?;
    let lookup = db
        .view(|tx| {
            let Some(bucket) = resolve(tx, &path)? else {
                return Ok(Lookup::NoBucket);
            };
            if let Some(value) = tx.get(bucket, &key)? {
                return Ok(Lookup::Value(value.to_vec()));
            }
            Ok(match tx.bucket(bucket, &key) {
                Ok(Some(_)) => Lookup::NestedBucket,
                _ => Lookup::Missing,
            })
        })
        .map_err(|err| ToolError::engine(&args.path, err))?;
    let key_error = |nested: bool| {
        let (file, bucket) = (args.path.clone(), encoding::display_path(&path));
        let key = encoding::to_auto(&key).into_owned();
        if nested {
            ToolError::KeyIsBucket { file, bucket, key }
        } else {
            ToolError::KeyNotFound { file, bucket, key }
        }
    };
    match lookup {
        Lookup::NoBucket => Err(bucket_not_found(&args.path, &path)),
        Lookup::NestedBucket => Err(key_error(true)),
        Lookup::Missing => Err(key_error(false)),
        Lookup::Value(value) if args.format == ByteFormat::Bytes => {
            out.write_all(&value)?;
            Ok(())
        }
        Lookup::Value(value) => Ok(encoding::write_line(out, &value, args.format)?),
    }
}

fn parse_names(
    file: &Path,
    args: &[String],
    format: ParseFormat,
) -> Result<Vec<Vec<u8>>, ToolError> {
    args.iter()
        .map(|arg| encoding::parse_arg(arg, format))
        .collect::<Result<_, _>>()
        .map_err(|reason| ToolError::Refused {
            file: file.to_path_buf(),
            reason,
        })
}

fn bucket_not_found(file: &Path, path: &[Vec<u8>]) -> ToolError {
    ToolError::BucketNotFound {
        file: file.to_path_buf(),
        bucket: encoding::display_path(path),
    }
}

/// Walks the bucket path from the root; `None` when any level is missing or names a plain
/// key rather than a bucket.
fn resolve(tx: &impl TxRead, path: &[Vec<u8>]) -> Result<Option<BucketId>, EngineError> {
    let mut bucket = tx.root();
    for name in path {
        match tx.bucket(bucket, name) {
            Ok(Some(child)) => bucket = child,
            Ok(None) | Err(EngineError::IncompatibleValue) | Err(EngineError::BucketNotFound) => {
                return Ok(None)
            }
            Err(err) => return Err(err),
        }
    }
    Ok(Some(bucket))
}

/// Every key of `bucket` in order, flagged when it names a nested bucket.
fn list(tx: &impl TxRead, bucket: BucketId) -> Result<Vec<(Vec<u8>, bool)>, EngineError> {
    let mut entries = Vec::new();
    let mut cursor = tx.cursor(bucket)?;
    let mut item = cursor.first()?;
    while let Some(current) = item {
        entries.push((current.key.to_vec(), current.is_bucket));
        item = cursor.next()?;
    }
    Ok(entries)
}
