//! Random-walk operations on one key or one bucket at a time: put, delete, get, bucket creation
//! and deletion (nested up to four levels), sequences, and documented misuse that must fail with
//! the documented error.
//!
//! Invariant: each operation applies to the model exactly what the engine was told to do, and
//! only when the engine reports success; an expected error leaves the model unchanged.

use rand::Rng;

use crate::case::{expect_err, resolve, Case, Path};
use crate::common::{show, show_path, Entry, ModelBucket, Must};
use oxcd_engine::{Error, TxRead, WriteTx};

impl Case {
    pub(crate) fn op_put(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let key = self.pick_key(model.bucket(&path).expect("picked"), 45);
        let value = self.gen_value();
        self.log(format!(
            "put {} {} ({} bytes)",
            show_path(&path),
            show(&key),
            value.len()
        ));
        let r = tx.put(id, &key, &value);
        let b = model.bucket_mut(&path).expect("picked");
        if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
            expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "put over a bucket",
            );
        } else {
            r.must("put");
            if self.rng.gen_bool(0.2) {
                let got = tx.get(id, &key).must("get after put");
                assert!(got == Some(value.as_slice()), "get right after put differs");
            }
            b.entries.insert(key, Entry::Value(value));
        }
    }

    pub(crate) fn op_delete(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let key = self.pick_key(model.bucket(&path).expect("picked"), 75);
        self.log(format!("delete {} {}", show_path(&path), show(&key)));
        let r = tx.delete(id, &key);
        let b = model.bucket_mut(&path).expect("picked");
        if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
            expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "delete of a bucket key",
            );
        } else {
            r.must("delete");
            b.entries.remove(&key);
        }
    }

    pub(crate) fn op_get(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket(&path).expect("picked");
        let key = self.pick_key(b, 60);
        self.log(format!("get {} {}", show_path(&path), show(&key)));
        let want = match b.entries.get(&key) {
            Some(Entry::Value(v)) => Some(v.as_slice()),
            _ => None,
        };
        let got = tx.get(id, &key).must("get");
        assert!(
            got == want,
            "get {}: got {:?} bytes, want {:?}",
            show(&key),
            got.map(<[u8]>::len),
            want.map(<[u8]>::len)
        );
    }

    pub(crate) fn op_create_bucket(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let parent_path = self.pick_parent(model);
        let name = self.pick_key(model.bucket(&parent_path).expect("picked"), 30);
        let if_not_exists = self.rng.gen_bool(0.3);
        self.log(format!(
            "create_bucket{} {} {}",
            if if_not_exists { "_if_not_exists" } else { "" },
            show_path(&parent_path),
            show(&name)
        ));
        let pid = resolve(&*tx, &parent_path);
        let r = if if_not_exists {
            tx.create_bucket_if_not_exists(pid, &name)
        } else {
            tx.create_bucket(pid, &name)
        };
        let parent = model.bucket_mut(&parent_path).expect("picked");
        let id = match parent.entries.get(&name) {
            Some(Entry::Bucket(_)) if if_not_exists => r.must("create_bucket_if_not_exists"),
            Some(Entry::Bucket(_)) => {
                return expect_err(r, |e| matches!(e, Error::BucketExists), "create existing");
            }
            Some(Entry::Value(_)) => {
                return expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "bucket over value",
                );
            }
            None => {
                let id = r.must("create_bucket");
                parent
                    .entries
                    .insert(name.clone(), Entry::Bucket(ModelBucket::default()));
                id
            }
        };
        // Use the returned id straight away.
        if self.rng.gen_bool(0.5) {
            let key = self.gen_key();
            let value = self.gen_value();
            self.log(format!(
                "  put via returned id {} ({} bytes)",
                show(&key),
                value.len()
            ));
            let mut path = parent_path;
            path.push(name);
            let b = model.bucket_mut(&path).expect("just created");
            let r = tx.put(id, &key, &value);
            if let Some(Entry::Bucket(_)) = b.entries.get(&key) {
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "put over a bucket",
                );
            } else {
                r.must("put via returned bucket id");
                b.entries.insert(key, Entry::Value(value));
            }
        }
    }

    pub(crate) fn op_delete_bucket(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let parent_path = self.pick_parent(model);
        let parent = model.bucket(&parent_path).expect("picked");
        let subs: Vec<&Vec<u8>> = parent
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Bucket(_)))
            .map(|(k, _)| k)
            .collect();
        let name = if !subs.is_empty() && self.rng.gen_bool(0.7) {
            subs[self.rng.gen_range(0..subs.len())].clone()
        } else {
            self.pick_key(parent, 40)
        };
        self.log(format!(
            "delete_bucket {} {}",
            show_path(&parent_path),
            show(&name)
        ));
        let pid = resolve(&*tx, &parent_path);
        let r = tx.delete_bucket(pid, &name);
        let parent = model.bucket_mut(&parent_path).expect("picked");
        match parent.entries.get(&name) {
            Some(Entry::Bucket(_)) => {
                r.must("delete_bucket");
                parent.entries.remove(&name);
                assert!(
                    tx.bucket(pid, &name).must("bucket").is_none(),
                    "deleted bucket still found"
                );
            }
            Some(Entry::Value(_)) => expect_err(
                r,
                |e| matches!(e, Error::IncompatibleValue),
                "delete_bucket on value",
            ),
            None => expect_err(
                r,
                |e| matches!(e, Error::BucketNotFound),
                "delete missing bucket",
            ),
        }
    }

    pub(crate) fn op_sequence(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        let b = model.bucket_mut(&path).expect("picked");
        if self.rng.gen_bool(0.85) {
            self.log(format!("next_sequence {}", show_path(&path)));
            b.sequence += 1;
            assert_eq!(
                tx.next_sequence(id).must("next_sequence"),
                b.sequence,
                "next_sequence"
            );
        } else {
            let v = if self.rng.gen_bool(0.5) {
                self.rng.gen_range(0..1000)
            } else {
                self.rng.gen::<u64>() >> 2
            };
            self.log(format!("set_sequence {} {v}", show_path(&path)));
            tx.set_sequence(id, v).must("set_sequence");
            b.sequence = v;
        }
        assert_eq!(tx.sequence(id).must("sequence"), b.sequence, "sequence");
    }

    /// One documented misuse; the model stays unchanged.
    pub(crate) fn op_misuse(&mut self, tx: &mut WriteTx, model: &mut ModelBucket) {
        let (path, id) = self.pick_bucket(tx, model);
        // A bucket that has a parent bucket (not the root), if any.
        let nested: Vec<Path> = model
            .bucket_paths()
            .into_iter()
            .filter(|p| p.len() >= 2)
            .collect();
        let pick = self.rng.gen_range(0..6);
        self.log(format!("misuse #{pick} in {}", show_path(&path)));
        match pick {
            0 => expect_err(
                tx.put(id, b"", b"x"),
                |e| matches!(e, Error::KeyRequired),
                "empty key",
            ),
            1 => {
                let key = vec![b'x'; self.rng.gen_range(32_769..40_000)];
                expect_err(
                    tx.put(id, &key, b"x"),
                    |e| matches!(e, Error::KeyTooLarge),
                    "huge key",
                );
            }
            2 => {
                let r = tx.create_bucket(id, b"").map(drop);
                expect_err(
                    r,
                    |e| matches!(e, Error::BucketNameRequired),
                    "empty bucket name",
                );
            }
            3 => {
                let (parent, name) = path.split_at(path.len() - 1);
                let pid = resolve(&*tx, parent);
                let r = tx.create_bucket(pid, &name[0]).map(drop);
                expect_err(
                    r,
                    |e| matches!(e, Error::BucketExists),
                    "create existing bucket",
                );
            }
            4 if !nested.is_empty() => {
                let p = &nested[self.rng.gen_range(0..nested.len())];
                let pid = resolve(&*tx, &p[..p.len() - 1]);
                let last = &p[p.len() - 1];
                let r = tx.put(pid, last, b"x");
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "put over a bucket",
                );
            }
            _ if !nested.is_empty() => {
                let p = &nested[self.rng.gen_range(0..nested.len())];
                let pid = resolve(&*tx, &p[..p.len() - 1]);
                let r = tx.delete(pid, &p[p.len() - 1]);
                expect_err(
                    r,
                    |e| matches!(e, Error::IncompatibleValue),
                    "delete a bucket key",
                );
            }
            _ => {}
        }
    }
}
