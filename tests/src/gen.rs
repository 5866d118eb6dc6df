//! Random database contents from a seeded RNG, shaped to reach every corner of the format.
//!
//! A generated [`Spec`] has nested buckets up to [`GenConfig::max_depth`] levels; big buckets
//! with hundreds to thousands of keys (so branch pages and several tree levels appear); small
//! buckets with a few tiny keys and no children (bbolt stores those inline in the parent's leaf);
//! empty buckets; values from 0 bytes to more than 4 pages of 4 KiB (overflow pages); a few long
//! keys (fat branch entries); sequences from 0 to `u64::MAX`; per-bucket fill percents; and keys
//! and whole buckets that are written and then deleted in later transactions (freelist churn).
//! Items are listed in random order so writers insert out of key order.
//!
//! Names are unique within a bucket across items, deleted items, sub-buckets and deleted
//! sub-buckets, because bbolt keeps keys and bucket names in one key space.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::spec::{BucketSpec, ItemSpec, Spec};

/// Size knobs for [`random_spec`].
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Buckets directly under the root.
    pub root_buckets: usize,
    /// Deepest bucket nesting (1 = root buckets only).
    pub max_depth: usize,
    /// Most items in one big bucket at depth 1; deeper big buckets get a quarter of it per level.
    pub max_items: usize,
    /// Operations per write transaction (see [`Spec::batch_size`]).
    pub batch_size: usize,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            root_buckets: 4,
            max_depth: 3,
            max_items: 2500,
            batch_size: 400,
        }
    }
}

/// Largest value generated: more than four 4 KiB pages.
pub const MAX_VALUE_BYTES: usize = 5 * 4096 + 123;

/// Random contents per `config`.
pub fn random_spec(rng: &mut impl Rng, config: &GenConfig) -> Spec {
    let mut names = BTreeSet::new();
    let buckets = (0..config.root_buckets)
        .map(|_| {
            let name = unique_key(rng, &mut names);
            random_bucket(rng, config, 1, name, false)
        })
        .collect();
    Spec {
        buckets,
        batch_size: config.batch_size,
        ..Spec::default()
    }
}

fn random_bucket(
    rng: &mut impl Rng,
    config: &GenConfig,
    depth: usize,
    name: Vec<u8>,
    small: bool,
) -> BucketSpec {
    let mut names = BTreeSet::new();
    let mut bucket = BucketSpec {
        name,
        sequence: random_sequence(rng),
        ..BucketSpec::default()
    };
    if small {
        // Few tiny entries and no children: bbolt keeps such a bucket inline.
        for _ in 0..rng.gen_range(0..=4) {
            let key = unique_key(rng, &mut names);
            let len = rng.gen_range(0..=16);
            let value = random_bytes(rng, len);
            bucket.items.push(ItemSpec { key, value });
        }
        return bucket;
    }
    let max_items = (config.max_items >> (2 * (depth - 1))).max(8);
    for _ in 0..rng.gen_range(0..=max_items) {
        let key = unique_key(rng, &mut names);
        bucket.items.push(ItemSpec {
            key,
            value: random_value(rng),
        });
    }
    for _ in 0..rng.gen_range(0..=max_items / 3) {
        let key = unique_key(rng, &mut names);
        bucket.delete.push(ItemSpec {
            key,
            value: random_value(rng),
        });
    }
    bucket.items.shuffle(rng);
    if rng.gen_bool(0.25) {
        bucket.fill_percent = *[0.1, 0.25, 0.9, 1.0].choose(rng).unwrap_or(&0.5);
    }
    if depth < config.max_depth {
        for _ in 0..rng.gen_range(0..=4) {
            let name = unique_key(rng, &mut names);
            let small = rng.gen_bool(0.4);
            bucket
                .buckets
                .push(random_bucket(rng, config, depth + 1, name, small));
        }
        if rng.gen_bool(0.3) {
            let name = unique_key(rng, &mut names);
            let small = rng.gen_bool(0.3);
            bucket
                .delete_buckets
                .push(random_bucket(rng, config, depth + 1, name, small));
        }
    }
    bucket
}

fn random_sequence(rng: &mut impl Rng) -> u64 {
    match rng.gen_range(0..4) {
        0 | 1 => 0,
        2 => rng.gen_range(1..1000),
        _ => *[u64::MAX, rng.gen()].choose(rng).unwrap_or(&1),
    }
}

/// A key not yet in `used`: mostly short random bytes or ordered text keys, sometimes long.
fn unique_key(rng: &mut impl Rng, used: &mut BTreeSet<Vec<u8>>) -> Vec<u8> {
    loop {
        let key = match rng.gen_range(0..100) {
            0..=44 => {
                let len = rng.gen_range(1..=24);
                random_bytes(rng, len)
            }
            45..=97 => format!("key-{:08}", rng.gen_range(0..100_000_000u32)).into_bytes(),
            _ => {
                let len = rng.gen_range(100..=1500);
                random_bytes(rng, len)
            }
        };
        if used.insert(key.clone()) {
            return key;
        }
    }
}

/// A random value: often small, sometimes empty, sometimes larger than four 4 KiB pages.
pub fn random_value(rng: &mut impl Rng) -> Vec<u8> {
    let len = match rng.gen_range(0..100) {
        0..=9 => 0,
        10..=59 => rng.gen_range(1..=64),
        60..=84 => rng.gen_range(65..=1024),
        85..=96 => rng.gen_range(1025..=8192),
        _ => rng.gen_range(8193..=MAX_VALUE_BYTES),
    };
    random_bytes(rng, len)
}

fn random_bytes(rng: &mut impl Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(bytes.as_mut_slice());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    // Proves the generator reaches the shapes the interop tests rely on.
    #[test]
    fn covers_required_shapes() {
        let spec = random_spec(&mut StdRng::seed_from_u64(7), &GenConfig::default());
        let model = spec.expected_model();
        let paths = model.bucket_paths();
        assert!(paths.iter().any(|p| p.len() == 3), "no bucket 3 deep");
        assert!(
            model.item_count() > 2000,
            "only {} items",
            model.item_count()
        );
        let all: Vec<_> = paths.iter().filter_map(|p| model.bucket(p)).collect();
        let biggest = all
            .iter()
            .flat_map(|b| b.items.values())
            .map(Vec::len)
            .max();
        assert!(biggest > Some(4 * 4096), "largest value {biggest:?}");
        assert!(
            all.iter().any(|b| b.items.values().any(Vec::is_empty)),
            "no empty value"
        );
        assert!(
            all.iter()
                .any(|b| b.sequence == u64::MAX || b.sequence > 1 << 40),
            "no big sequence"
        );
    }
}
