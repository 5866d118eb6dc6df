//! Read transactions held by the random walk across later commits, rollbacks and reopens.
//!
//! Owns [`Reader`] and the `Case` methods that open, verify and drop readers. Invariant: a
//! reader keeps its transaction id and sees exactly the model state committed when it began,
//! however much was written since.

use rand::Rng;

use crate::case::{Case, MAX_READERS};
use crate::common::{first_difference, read_tree, ModelBucket, Must, WalkOpts};
use oxcd_engine::ReadTx;

/// A read transaction with the model state it must keep seeing.
pub(crate) struct Reader {
    tx: ReadTx,
    snapshot: ModelBucket,
    txid: u64,
}

impl Case {
    pub(crate) fn open_reader(&mut self) {
        if self.readers.len() >= MAX_READERS {
            self.drop_some_reader();
        }
        let tx = self.db().begin_read().must("begin_read");
        assert_eq!(tx.txid(), self.txid, "a new reader sees the last commit");
        self.log(format!(
            "open reader #{} at id {}",
            self.readers.len(),
            self.txid
        ));
        let snapshot = self.committed.clone();
        self.readers.push(Reader {
            tx,
            snapshot,
            txid: self.txid,
        });
    }

    pub(crate) fn drop_some_reader(&mut self) {
        if !self.readers.is_empty() {
            let i = self.rng.gen_range(0..self.readers.len());
            self.log(format!("drop reader #{i}"));
            self.readers.remove(i);
        }
    }

    pub(crate) fn verify_some_reader(&mut self) {
        if !self.readers.is_empty() {
            let i = self.rng.gen_range(0..self.readers.len());
            self.verify_reader(i);
        }
    }

    /// A reader must still see exactly the state committed when it began.
    pub(crate) fn verify_reader(&mut self, i: usize) {
        self.log(format!("verify reader #{i}"));
        self.count("reader verifications");
        let r = &self.readers[i];
        assert_eq!(r.tx.txid(), r.txid, "reader #{i} changed its id");
        let got = read_tree(&r.tx, &WalkOpts::THOROUGH)
            .unwrap_or_else(|e| panic!("seed {}: reader #{i} (id {}): {e}", self.seed, r.txid));
        if let Some(d) = first_difference(&r.snapshot, &got) {
            panic!(
                "seed {}: reader #{i} (id {}) lost its snapshot: {d}",
                self.seed, r.txid
            );
        }
    }
}
