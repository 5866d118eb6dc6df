//! What the engine benchmark does, independent of any engine: its parameters, the keys and
//! values it writes, the random sequences it reads with, and the tallies that prove each engine
//! returned exactly the data that was written.
//!
//! Keys are etcd's revision keys (17 bytes): the 8-byte big-endian main revision, `b'_'`, the
//! 8-byte big-endian sub revision. Worked example, main 5 sub 2:
//!
//! ```text
//! 00 00 00 00 00 00 00 05 | 5f | 00 00 00 00 00 00 00 02
//! main revision (BE)        '_'  sub revision (BE)
//! ```
//!
//! Key `i` (0-based) of the load is revision `(i + 1, 0)`: one put per revision, as etcd writes
//! when each client request is a single put, so keys arrive in ascending order (appends).
//! Values are 256-byte windows into a fixed pseudo-random pool, so they are cheap to produce,
//! identical for every engine and not trivially compressible. Every random sequence comes from
//! a fixed seed, so every engine sees the same gets and scans in the same order.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Length of an etcd revision key.
pub const REVISION_KEY_LEN: usize = 17;
const REVISION_KEY_SEPARATOR: u8 = b'_';
const _: () = assert!(REVISION_KEY_LEN == 8 + 1 + 8);

/// Size of the shared pool the value windows are cut from.
const VALUE_POOL_BYTES: usize = 64 * 1024;

/// etcd's revision key for `(main, sub)`.
pub fn revision_key(main: u64, sub: u64) -> [u8; REVISION_KEY_LEN] {
    let mut key = [0u8; REVISION_KEY_LEN];
    key[..8].copy_from_slice(&main.to_be_bytes());
    key[8] = REVISION_KEY_SEPARATOR;
    key[9..].copy_from_slice(&sub.to_be_bytes());
    key
}

/// The main revision of a revision key; `None` if `key` is not one.
pub fn main_revision(key: &[u8]) -> Option<u64> {
    if key.len() != REVISION_KEY_LEN || key[8] != REVISION_KEY_SEPARATOR {
        return None;
    }
    let mut main = [0u8; 8];
    main.copy_from_slice(&key[..8]);
    Some(u64::from_be_bytes(main))
}

/// The key the load writes as its `index`-th put (0-based): revision `(index + 1, 0)`.
pub fn load_key(index: u64) -> [u8; REVISION_KEY_LEN] {
    revision_key(index + 1, 0)
}

/// The benchmark's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Keys written by the load (N).
    pub key_count: u64,
    /// Puts per durable commit during the load.
    pub keys_per_commit: u64,
    /// Size of every value.
    pub value_size_bytes: usize,
    /// Random point gets over the N keys.
    pub get_count: u64,
    /// Gets per read transaction.
    pub gets_per_read_tx: u64,
    /// Range scans, each in its own read transaction, from random start keys.
    pub scan_count: u64,
    /// Keys each scan visits (fewer only when N is smaller).
    pub scan_length: u64,
    /// How often each workload runs; the best run is kept (each load on a fresh file).
    pub repeats: u32,
    /// Seed of every random sequence.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            key_count: 1_000_000,
            keys_per_commit: 1_000,
            value_size_bytes: 256,
            get_count: 1_000_000,
            gets_per_read_tx: 1_000,
            scan_count: 2_000,
            scan_length: 1_000,
            repeats: 2,
            seed: 0x6f78_6364, // "oxcd"
        }
    }
}

/// Environment variables that override [`WorkloadConfig`]'s defaults.
pub const ENV_KEY_COUNT: &str = "OXCD_BENCH_N";
pub const ENV_GET_COUNT: &str = "OXCD_BENCH_GETS";
pub const ENV_SCAN_COUNT: &str = "OXCD_BENCH_SCANS";
pub const ENV_REPEATS: &str = "OXCD_BENCH_REPEAT";

/// A benchmark variable that is set but unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl WorkloadConfig {
    /// The defaults, overridden by the `OXCD_BENCH_*` variables of this process.
    pub fn from_env() -> Result<WorkloadConfig, ConfigError> {
        WorkloadConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// The defaults, overridden by whatever `lookup` returns for the `OXCD_BENCH_*` names.
    /// Numbers may use `_` separators (`1_000_000`); zero is refused.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<WorkloadConfig, ConfigError> {
        let mut config = WorkloadConfig::default();
        let positive = |variable: &'static str, default: u64| -> Result<u64, ConfigError> {
            let Some(value) = lookup(variable) else {
                return Ok(default);
            };
            let error = |reason| ConfigError {
                variable,
                value: value.clone(),
                reason,
            };
            match value.trim().replace('_', "").parse::<u64>() {
                Ok(0) => Err(error("must be at least 1")),
                Ok(n) => Ok(n),
                Err(_) => Err(error("not a whole number")),
            }
        };
        config.key_count = positive(ENV_KEY_COUNT, config.key_count)?;
        config.get_count = positive(ENV_GET_COUNT, config.get_count)?;
        config.scan_count = positive(ENV_SCAN_COUNT, config.scan_count)?;
        let repeats = positive(ENV_REPEATS, u64::from(config.repeats))?;
        config.repeats = u32::try_from(repeats).map_err(|_| ConfigError {
            variable: ENV_REPEATS,
            value: repeats.to_string(),
            reason: "too large",
        })?;
        Ok(config)
    }

    /// Keys each scan visits: `scan_length`, or N when N is smaller.
    pub fn effective_scan_length(&self) -> u64 {
        self.scan_length.min(self.key_count)
    }

    /// Indices of the keys the gets look up, in order.
    pub fn get_indices(&self) -> Vec<u64> {
        random_below(self.seed, self.get_count, self.key_count)
    }

    /// Index of each scan's start key, chosen so every scan visits a full
    /// [`effective_scan_length`](Self::effective_scan_length) keys.
    pub fn scan_starts(&self) -> Vec<u64> {
        let starts = self.key_count - self.effective_scan_length() + 1;
        random_below(self.seed.wrapping_add(1), self.scan_count, starts)
    }
}

/// `count` numbers uniformly in `0..below`, from a generator seeded with `seed`.
pub fn random_below(seed: u64, count: u64, below: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count).map(|_| rng.gen_range(0..below.max(1))).collect()
}

/// The values of the load: fixed-size windows into one seeded pseudo-random pool.
#[derive(Clone, Debug)]
pub struct ValuePool {
    bytes: Vec<u8>,
    value_size_bytes: usize,
}

impl ValuePool {
    pub fn new(seed: u64, value_size_bytes: usize) -> ValuePool {
        let mut bytes = vec![0u8; VALUE_POOL_BYTES + value_size_bytes];
        StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
        ValuePool {
            bytes,
            value_size_bytes,
        }
    }

    /// The value written under load key `index`.
    pub fn value(&self, index: u64) -> &[u8] {
        // A large odd multiplier spreads neighbouring indices over the whole pool.
        let offset = (index.wrapping_mul(0x9E37_79B9) % VALUE_POOL_BYTES as u64) as usize;
        &self.bytes[offset..offset + self.value_size_bytes]
    }
}

/// What a read workload saw: how many pairs, and a digest over their keys and values that
/// matches only if every pair is the one the load wrote (order does not matter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadTally {
    pub pairs: u64,
    pub digest: u64,
}

impl ReadTally {
    /// Counts one key/value pair an engine returned.
    #[inline]
    pub fn record(&mut self, key: &[u8], value: &[u8]) {
        self.pairs += 1;
        self.digest = self.digest.wrapping_add(pair_digest(key, value));
    }

    /// Adds another tally (for example, of a later read transaction).
    pub fn merge(&mut self, other: ReadTally) {
        self.pairs += other.pairs;
        self.digest = self.digest.wrapping_add(other.digest);
    }

    /// The tally a correct engine produces when it returns the load's pairs for `indices`.
    pub fn expected(values: &ValuePool, indices: impl IntoIterator<Item = u64>) -> ReadTally {
        let mut tally = ReadTally::default();
        for index in indices {
            tally.record(&load_key(index), values.value(index));
        }
        tally
    }
}

/// Cheap per-pair digest: mixes the key's bytes, the value's first 8 bytes and its length.
#[inline]
fn pair_digest(key: &[u8], value: &[u8]) -> u64 {
    // Load keys are revision keys, whose main revision identifies them; anything else an engine
    // might return by mistake is hashed whole (FNV-1a) so it cannot pass for a load key.
    let key_part = main_revision(key).unwrap_or_else(|| {
        key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    });
    let mut head = [0u8; 8];
    let n = value.len().min(8);
    head[..n].copy_from_slice(&value[..n]);
    key_part
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from_le_bytes(head))
        .wrapping_add(value.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn revision_key_matches_etcds_layout() {
        // Proves the 17-byte layout of the worked example and that main_revision inverts it.
        let key = revision_key(5, 2);
        let expected = [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(key, expected);
        assert_eq!(main_revision(&key), Some(5));
        assert_eq!(main_revision(&key[..16]), None);
        assert_eq!(load_key(0), revision_key(1, 0));
        assert!(
            load_key(255) < load_key(256),
            "big-endian keys sort by revision"
        );
    }

    #[test]
    fn config_reads_overrides_and_refuses_bad_values() {
        // Proves env overrides (with '_' separators) apply and zero or junk are errors.
        let vars: HashMap<&str, &str> = [(ENV_KEY_COUNT, "100_000"), (ENV_REPEATS, "1")].into();
        let config = WorkloadConfig::from_lookup(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(config.key_count, 100_000);
        assert_eq!(config.repeats, 1);
        assert_eq!(config.get_count, WorkloadConfig::default().get_count);

        let zero = WorkloadConfig::from_lookup(|n| (n == ENV_KEY_COUNT).then(|| "0".into()));
        assert_eq!(zero.unwrap_err().reason, "must be at least 1");
        let junk = WorkloadConfig::from_lookup(|n| (n == ENV_SCAN_COUNT).then(|| "lots".into()));
        assert_eq!(junk.unwrap_err().variable, ENV_SCAN_COUNT);
    }

    #[test]
    fn random_sequences_are_seeded_and_in_range() {
        // Proves the gets and scans are reproducible and every scan fits inside the N keys.
        let config = WorkloadConfig {
            key_count: 1_500,
            get_count: 500,
            ..Default::default()
        };
        assert_eq!(config.get_indices(), config.get_indices());
        assert!(config.get_indices().iter().all(|&i| i < 1_500));
        let starts = config.scan_starts();
        assert_eq!(starts.len(), 2_000);
        assert!(starts
            .iter()
            .all(|&s| s + config.effective_scan_length() <= 1_500));

        let tiny = WorkloadConfig {
            key_count: 10,
            ..Default::default()
        };
        assert_eq!(tiny.effective_scan_length(), 10);
        assert!(tiny.scan_starts().iter().all(|&s| s == 0));
    }

    #[test]
    fn tallies_detect_a_wrong_pair() {
        // Proves a tally over the load's pairs matches expected() and differs if a value is wrong.
        let values = ValuePool::new(7, 256);
        assert_eq!(values.value(3).len(), 256);
        assert_ne!(values.value(3), values.value(4));
        let expected = ReadTally::expected(&values, [3, 9, 3]);

        let mut right = ReadTally::default();
        for index in [9, 3, 3] {
            right.record(&load_key(index), values.value(index));
        }
        assert_eq!(right, expected);

        let mut wrong = ReadTally::default();
        wrong.record(&load_key(9), values.value(9));
        wrong.record(&load_key(3), values.value(3));
        wrong.record(&load_key(3), values.value(4));
        assert_ne!(wrong, expected);
    }
}
