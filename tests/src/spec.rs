//! The database content model shared with the Go oracle, and a sorted model to compare with.
//!
//! [`Spec`] is, field for field, the JSON schema documented at the top of
//! `tests/oracle/bboltoracle/main.go`: `bboltoracle dump` prints one, `bboltoracle write` reads
//! one, and [`crate::engine_io::write_spec`] applies one with our engine in the same two phases.
//! Keys, values and names travel as lowercase hex. Fields marked "write only" steer how a writer
//! produces the content (page size, transaction batching, fill percent, keys and buckets that are
//! written and then deleted again); they never appear in a dump.
//!
//! [`Model`] is what a database holds once written: buckets and items in `BTreeMap`s, so two
//! databases are equal exactly when their models are, and [`Model::diff`] names the first
//! differences by bucket path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{bail, ensure, Result};

/// A whole database: its root's buckets plus write-only options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub buckets: Vec<BucketSpec>,
    /// Write only: page size of a new file (0 = the writer's default, the OS page size).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub page_size: u32,
    /// Write only: leave the freelist unwritten (meta freelist pgid = u64::MAX), as etcd does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_freelist_sync: bool,
    /// Write only: operations per write transaction (0 = one transaction per phase).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub batch_size: usize,
}

/// One bucket and everything below it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    #[serde(with = "hex")]
    pub name: Vec<u8>,
    pub sequence: u64,
    #[serde(default)]
    pub items: Vec<ItemSpec>,
    #[serde(default)]
    pub buckets: Vec<BucketSpec>,
    /// Write only: the bucket's fill percent in every transaction (0 = default 0.5).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub fill_percent: f64,
    /// Write only: put in phase 1, deleted in phase 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete: Vec<ItemSpec>,
    /// Write only: created with all their contents in phase 1, deleted in phase 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_buckets: Vec<BucketSpec>,
}

/// One plain key/value pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    #[serde(with = "hex")]
    pub key: Vec<u8>,
    #[serde(with = "hex")]
    pub value: Vec<u8>,
}

/// The contents of a database: its root's buckets by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub buckets: BTreeMap<Vec<u8>, BucketModel>,
}

/// The contents of one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketModel {
    pub sequence: u64,
    pub items: BTreeMap<Vec<u8>, Vec<u8>>,
    pub buckets: BTreeMap<Vec<u8>, BucketModel>,
}

impl Spec {
    /// What a database holds after this spec was written (write-only parts dropped).
    pub fn expected_model(&self) -> Model {
        fn bucket(s: &BucketSpec) -> BucketModel {
            BucketModel {
                sequence: s.sequence,
                items: s
                    .items
                    .iter()
                    .map(|i| (i.key.clone(), i.value.clone()))
                    .collect(),
                buckets: s
                    .buckets
                    .iter()
                    .map(|b| (b.name.clone(), bucket(b)))
                    .collect(),
            }
        }
        Model {
            buckets: self
                .buckets
                .iter()
                .map(|b| (b.name.clone(), bucket(b)))
                .collect(),
        }
    }

    /// The model of a dump, checking that it is one: every list strictly ascending by key (the
    /// order bbolt iterates in), no name used twice, no write-only field.
    pub fn dump_to_model(&self) -> Result<Model> {
        ensure!(
            self.page_size == 0 && !self.no_freelist_sync && self.batch_size == 0,
            "dump carries write-only options"
        );
        Ok(Model {
            buckets: dumped_buckets(&self.buckets, "")?,
        })
    }

    /// Number of plain items that end up in the database.
    pub fn item_count(&self) -> usize {
        self.expected_model().item_count()
    }
}

fn dumped_buckets(list: &[BucketSpec], path: &str) -> Result<BTreeMap<Vec<u8>, BucketModel>> {
    let mut out = BTreeMap::new();
    for pair in list.windows(2) {
        ensure!(
            pair[0].name < pair[1].name,
            "{path}: bucket {} not after {}",
            hx(&pair[1].name),
            hx(&pair[0].name)
        );
    }
    for b in list {
        let here = format!("{path}/{}", hx(&b.name));
        ensure!(
            b.fill_percent == 0.0 && b.delete.is_empty() && b.delete_buckets.is_empty(),
            "{here}: dump carries write-only fields"
        );
        for pair in b.items.windows(2) {
            ensure!(
                pair[0].key < pair[1].key,
                "{here}: key {} not after {}",
                hx(&pair[1].key),
                hx(&pair[0].key)
            );
        }
        let items: BTreeMap<_, _> = b
            .items
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        let buckets = dumped_buckets(&b.buckets, &here)?;
        if let Some(k) = buckets.keys().find(|k| items.contains_key(*k)) {
            bail!("{here}: {} is both a key and a bucket", hx(k));
        }
        out.insert(
            b.name.clone(),
            BucketModel {
                sequence: b.sequence,
                items,
                buckets,
            },
        );
    }
    Ok(out)
}

impl Model {
    /// The bucket at `path`, if any.
    pub fn bucket(&self, path: &[Vec<u8>]) -> Option<&BucketModel> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.buckets.get(first)?, |b, name| b.buckets.get(name))
    }

    /// The bucket at `path` for changing, if any.
    pub fn bucket_mut(&mut self, path: &[Vec<u8>]) -> Option<&mut BucketModel> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.buckets.get_mut(first)?, |b, name| {
                b.buckets.get_mut(name)
            })
    }

    /// Paths of every bucket, parents before children, in key order.
    pub fn bucket_paths(&self) -> Vec<Vec<Vec<u8>>> {
        fn walk(
            b: &BTreeMap<Vec<u8>, BucketModel>,
            prefix: &[Vec<u8>],
            out: &mut Vec<Vec<Vec<u8>>>,
        ) {
            for (name, child) in b {
                let mut path = prefix.to_vec();
                path.push(name.clone());
                out.push(path.clone());
                walk(&child.buckets, &path, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.buckets, &[], &mut out);
        out
    }

    /// Number of plain items in all buckets.
    pub fn item_count(&self) -> usize {
        fn count(b: &BucketModel) -> usize {
            b.items.len() + b.buckets.values().map(count).sum::<usize>()
        }
        self.buckets.values().map(count).sum()
    }

    /// Up to `limit` differences between `self` (expected) and `actual`, each naming a bucket path
    /// (hex names) and what differs; empty when they are equal.
    pub fn diff(&self, actual: &Model, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        diff_buckets(&self.buckets, &actual.buckets, "", &mut out);
        out.truncate(limit);
        out
    }

    /// `Ok` when equal, otherwise an error listing the first differences.
    pub fn ensure_eq(&self, actual: &Model, what: &str) -> Result<()> {
        let diff = self.diff(actual, 20);
        ensure!(
            diff.is_empty(),
            "{what}: contents differ (expected vs actual):\n  {}",
            diff.join("\n  ")
        );
        Ok(())
    }
}

fn diff_buckets(
    want: &BTreeMap<Vec<u8>, BucketModel>,
    got: &BTreeMap<Vec<u8>, BucketModel>,
    path: &str,
    out: &mut Vec<String>,
) {
    for (name, w) in want {
        let here = format!("{path}/{}", hx(name));
        match got.get(name) {
            None => out.push(format!("{here}: bucket missing")),
            Some(g) => diff_bucket(w, g, &here, out),
        }
    }
    for name in got.keys().filter(|n| !want.contains_key(*n)) {
        out.push(format!("{path}/{}: unexpected bucket", hx(name)));
    }
}

fn diff_bucket(want: &BucketModel, got: &BucketModel, path: &str, out: &mut Vec<String>) {
    if want.sequence != got.sequence {
        out.push(format!(
            "{path}: sequence {} vs {}",
            want.sequence, got.sequence
        ));
    }
    for (k, v) in &want.items {
        match got.items.get(k) {
            None => out.push(format!("{path}: key {} missing", hx(k))),
            Some(g) if g != v => out.push(format!(
                "{path}: key {}: value of {} bytes ({}) vs {} bytes ({})",
                hx(k),
                v.len(),
                short_hex(v),
                g.len(),
                short_hex(g)
            )),
            Some(_) => {}
        }
    }
    for k in got.items.keys().filter(|k| !want.items.contains_key(*k)) {
        out.push(format!("{path}: unexpected key {}", hx(k)));
    }
    diff_buckets(&want.buckets, &got.buckets, path, out);
}

/// Lowercase hex of `bytes`.
pub fn hx(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn short_hex(bytes: &[u8]) -> String {
    if bytes.len() <= 16 {
        hx(bytes)
    } else {
        format!("{}…", hx(&bytes[..16]))
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// serde adapter: `Vec<u8>` as a lowercase hex string.
mod hex {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hx(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom(format!("odd-length hex string {text:?}")));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom(format!("bad hex string {text:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a spec survives a JSON round trip and write-only fields vanish from the model.
    #[test]
    fn json_round_trip_and_model() {
        let spec = Spec {
            buckets: vec![BucketSpec {
                name: b"b".to_vec(),
                sequence: u64::MAX,
                items: vec![ItemSpec {
                    key: vec![0, 255],
                    value: vec![],
                }],
                delete: vec![ItemSpec {
                    key: b"gone".to_vec(),
                    value: b"x".to_vec(),
                }],
                fill_percent: 0.9,
                ..BucketSpec::default()
            }],
            batch_size: 3,
            ..Spec::default()
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"00ff\""), "{text}");
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
        let model = spec.expected_model();
        assert_eq!(model.item_count(), 1);
        assert_eq!(
            model.bucket(&[b"b".to_vec()]).map(|b| b.sequence),
            Some(u64::MAX)
        );
    }

    // Proves a dump out of key order is rejected rather than silently sorted.
    #[test]
    fn unsorted_dump_is_rejected() {
        let item = |k: &[u8]| ItemSpec {
            key: k.to_vec(),
            value: vec![],
        };
        let dump = Spec {
            buckets: vec![BucketSpec {
                name: b"b".to_vec(),
                items: vec![item(b"b"), item(b"a")],
                ..BucketSpec::default()
            }],
            ..Spec::default()
        };
        assert!(dump.dump_to_model().is_err());
    }

    // Proves diff reports a changed value and a missing bucket by path.
    #[test]
    fn diff_names_paths() {
        let mut a = Model::default();
        let mut b = BucketModel::default();
        b.items.insert(b"k".to_vec(), b"v".to_vec());
        a.buckets.insert(b"x".to_vec(), b.clone());
        a.buckets.insert(b"y".to_vec(), BucketModel::default());
        let mut c = Model::default();
        b.items.insert(b"k".to_vec(), b"w".to_vec());
        c.buckets.insert(b"x".to_vec(), b);
        let diff = a.diff(&c, 10);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("/78: key 6b"), "{diff:?}");
        assert_eq!(diff[1], "/79: bucket missing");
    }
}
