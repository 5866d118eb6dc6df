//! The random walk's operation table and its generators: which operation a write transaction
//! runs next (weights differ while the model grows and while it shrinks), and how buckets, keys
//! and values are picked or made up. Keys range from short shared names to the largest allowed
//! key; values from empty to multi-page overflow chains, bounded by the walk's size budget.
//!
//! Owns [`Op`], [`OPS`] and `Case::random_op`; the operations it dispatches to live in
//! `point_ops`, `cursor_ops` and `readers`.

use rand::Rng;

use crate::case::{resolve, Case, Path, MAX_MODEL_BYTES};
use crate::common::{
    first_difference, pattern_bytes, read_tree, show, show_path, Entry, ModelBucket, Must, WalkOpts,
};
use oxcd_engine::{BucketId, TxRead, WriteTx};

/// Operations inside a write transaction, with weights while growing and while shrinking.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Put,
    Delete,
    Get,
    CreateBucket,
    DeleteBucket,
    Sequence,
    Scan,
    Seek,
    CursorDelete,
    FillPercent,
    Misuse,
    OpenReader,
    VerifyReader,
    WalkTx,
}

pub(crate) const OPS: [(Op, u32, u32); 14] = [
    (Op::Put, 60, 8),
    (Op::Delete, 8, 24),
    (Op::Get, 8, 6),
    (Op::CreateBucket, 2, 1),
    (Op::DeleteBucket, 0, 2),
    (Op::Sequence, 3, 2),
    (Op::Scan, 2, 2),
    (Op::Seek, 4, 4),
    (Op::CursorDelete, 1, 8),
    (Op::FillPercent, 2, 2),
    (Op::Misuse, 3, 3),
    (Op::OpenReader, 1, 1),
    (Op::VerifyReader, 1, 1),
    (Op::WalkTx, 1, 1),
];

impl Case {
    pub(crate) fn random_op(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let total: u32 = OPS
            .iter()
            .map(|o| if self.shrinking { o.2 } else { o.1 })
            .sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut op = Op::Put;
        for (o, grow, shrink) in OPS {
            let w = if self.shrinking { shrink } else { grow };
            if pick < w {
                op = o;
                break;
            }
            pick -= w;
        }
        match op {
            Op::Put => self.op_put(tx, model),
            Op::Delete => self.op_delete(tx, model),
            Op::Get => self.op_get(tx, model),
            Op::CreateBucket => self.op_create_bucket(tx, model),
            Op::DeleteBucket => self.op_delete_bucket(tx, model),
            Op::Sequence => self.op_sequence(tx, model),
            Op::Scan => self.op_scan(tx, model),
            Op::Seek => self.op_seek(tx, model),
            Op::CursorDelete => self.op_cursor_delete(tx, model),
            Op::FillPercent => {
                let (path, id) = self.pick_bucket(tx, model);
                let fill = self.rng.gen_range(0.1..=1.0);
                self.log(format!("set_fill_percent {} {fill:.2}", show_path(&path)));
                tx.set_fill_percent(id, fill);
            }
            Op::Misuse => self.op_misuse(tx, model),
            Op::OpenReader => self.open_reader(),
            Op::VerifyReader => self.verify_some_reader(),
            Op::WalkTx => {
                self.log("walk the write tx".into());
                let got = read_tree(&*tx, &WalkOpts::THOROUGH)
                    .unwrap_or_else(|e| panic!("seed {}: walking the write tx: {e}", self.seed));
                if let Some(d) = first_difference(model, &got) {
                    panic!(
                        "seed {}: uncommitted state differs from the model: {d}",
                        self.seed
                    );
                }
            }
        }
    }

    /// A random existing bucket (creating a top-level one when there is none).
    pub(crate) fn pick_bucket(
        &mut self,
        tx: &mut WriteTx,
        model: &mut ModelBucket,
    ) -> (Path, BucketId) {
        let paths = model.bucket_paths();
        if paths.is_empty() {
            let name = format!("top{}", self.rng.gen_range(0..100)).into_bytes();
            self.log(format!("create_bucket <root> {}", show(&name)));
            let id = tx
                .create_bucket(tx.root(), &name)
                .must("create first bucket");
            model
                .entries
                .insert(name.clone(), Entry::Bucket(ModelBucket::default()));
            return (vec![name], id);
        }
        // Favour top-level buckets so that some grow large enough for several tree levels.
        let top: Vec<&Path> = paths.iter().filter(|p| p.len() == 1).collect();
        let path = if self.rng.gen_bool(0.6) {
            top[self.rng.gen_range(0..top.len())].clone()
        } else {
            paths[self.rng.gen_range(0..paths.len())].clone()
        };
        let id = resolve(&*tx, &path);
        if self.rng.gen_bool(0.1) {
            let refs: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
            let via_path = tx.bucket_path(&refs).must("bucket_path");
            assert!(
                via_path.is_some(),
                "bucket_path({}) is None",
                show_path(&path)
            );
        }
        (path, id)
    }

    /// A key of `bucket` with probability `existing_pct`%, else a fresh random key.
    pub(crate) fn pick_key(&mut self, bucket: &ModelBucket, existing_pct: u32) -> Vec<u8> {
        if !bucket.entries.is_empty() && self.rng.gen_range(0..100) < existing_pct {
            let i = self.rng.gen_range(0..bucket.entries.len());
            return bucket
                .entries
                .keys()
                .nth(i)
                .expect("index in range")
                .clone();
        }
        self.gen_key()
    }

    pub(crate) fn gen_key(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        match rng.gen_range(0..100) {
            0..=64 => format!("k{:04}", rng.gen_range(0..1500)).into_bytes(),
            65..=84 => (0..rng.gen_range(1..=12)).map(|_| rng.gen()).collect(),
            85..=98 => {
                let mut k = format!("long{}", rng.gen_range(0..10)).into_bytes();
                k.extend(pattern_bytes(rng.gen(), rng.gen_range(40..2000)));
                k
            }
            // Huge keys, sometimes exactly the largest allowed one.
            _ if rng.gen_bool(0.2) => pattern_bytes(rng.gen(), 32_768),
            _ => pattern_bytes(rng.gen(), rng.gen_range(4000..10_000)),
        }
    }

    pub(crate) fn gen_value(&mut self) -> Vec<u8> {
        let big_ok = self.committed.size().bytes < MAX_MODEL_BYTES;
        let rng = &mut self.rng;
        let len = match rng.gen_range(0..100) {
            0..=19 => 0,
            20..=54 => rng.gen_range(1..64),
            55..=79 => rng.gen_range(64..1024),
            80..=91 if big_ok => rng.gen_range(1024..4096),
            92..=96 if big_ok => rng.gen_range(4096..16_384),
            97..=99 if big_ok => rng.gen_range(16_385..24_000),
            _ => rng.gen_range(1..64),
        };
        pattern_bytes(rng.gen(), len)
    }

    /// A parent for bucket operations: the root or an existing bucket at most 3 deep.
    pub(crate) fn pick_parent(&mut self, model: &ModelBucket) -> Path {
        let paths: Vec<Path> = model
            .bucket_paths()
            .into_iter()
            .filter(|p| p.len() < 4)
            .collect();
        if paths.is_empty() || self.rng.gen_bool(0.35) {
            return Vec::new();
        }
        paths[self.rng.gen_range(0..paths.len())].clone()
    }
}
