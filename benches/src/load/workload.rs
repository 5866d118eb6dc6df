//! What each `oxbench` request is: the key it touches and the gRPC message that carries it.
//!
//! Keys follow etcd's `benchmark` tool so the two tools load a server identically: a key is
//! `key_size` bytes, all zero except for a leading zig-zag varint (Go's `binary.PutVarint`) of the
//! key's number in `0..key_space_size`. With `--sequential-keys` request `i` uses number
//! `i % key_space_size`, otherwise a uniformly random number. Worked example, `--key-size 4`:
//! number 0 is `00 00 00 00`, number 1 is `02 00 00 00`, number 64 is `80 01 00 00`.
//! `txn-put` request `i` with `ops` puts per transaction writes numbers `i*ops .. i*ops+ops-1`
//! (modulo the key space), as etcd's `txn-put` does. Every put carries the same value.
//!
//! This module is pure: it builds messages and never talks to the network.

use oxcd_server::pb::etcdserverpb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use rand::Rng;

/// Which operation the benchmark repeats.
#[derive(Clone, Debug)]
pub enum Operation {
    /// One `Put` per request.
    Put,
    /// One `Range` over `[key, range_end)` per request (`range_end` empty: the single key).
    Range {
        key: Vec<u8>,
        range_end: Vec<u8>,
        serializable: bool,
    },
    /// One `Txn` with no compares and `ops_per_txn` puts in its success branch per request.
    TxnPut { ops_per_txn: u64 },
    /// One keep-alive of the client's own lease per request, each on a new stream (etcd's
    /// `benchmark lease-keepalive`, which calls `KeepAliveOnce`); each client grants its lease
    /// before the clock starts.
    LeaseKeepAlive,
}

impl Operation {
    /// The name used in the summary (the subcommand's name).
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::Range { .. } => "range",
            Operation::TxnPut { .. } => "txn-put",
            Operation::LeaseKeepAlive => "lease-keepalive",
        }
    }
}

/// The key shape shared by `put` and `txn-put`.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub key_size_bytes: usize,
    pub key_space_size: u64,
    pub sequential: bool,
}

impl KeySpec {
    /// Checks that every key number fits in `key_size_bytes` (etcd's tool panics instead).
    pub fn validate(&self) -> Result<(), String> {
        if self.key_space_size == 0 {
            return Err("--key-space-size must be at least 1".to_string());
        }
        let needed = zigzag_varint(self.key_space_size - 1).len();
        if self.key_size_bytes < needed {
            return Err(format!(
                "--key-size {} is too small for --key-space-size {} (needs {needed} bytes)",
                self.key_size_bytes, self.key_space_size
            ));
        }
        Ok(())
    }

    /// The key with number `number % key_space_size`.
    pub fn key(&self, number: u64) -> Vec<u8> {
        let mut key = vec![0u8; self.key_size_bytes];
        let varint = zigzag_varint(number % self.key_space_size);
        key[..varint.len()].copy_from_slice(&varint);
        key
    }

    /// The key number request `index` uses (sequential or random).
    fn number_for(&self, index: u64, rng: &mut impl Rng) -> u64 {
        if self.sequential {
            index % self.key_space_size
        } else {
            rng.gen_range(0..self.key_space_size)
        }
    }
}

/// One request ready to send.
#[derive(Clone, Debug)]
pub enum Request {
    Put(PutRequest),
    Range(RangeRequest),
    Txn(TxnRequest),
    /// A keep-alive of the sending client's lease.
    KeepAlive,
}

/// Builds the requests of one benchmark run.
#[derive(Clone, Debug)]
pub struct Workload {
    pub operation: Operation,
    pub keys: KeySpec,
    pub value: Vec<u8>,
}

impl Workload {
    /// The request with number `index` (0-based) of the run.
    pub fn request(&self, index: u64, rng: &mut impl Rng) -> Request {
        match &self.operation {
            Operation::LeaseKeepAlive => Request::KeepAlive,
            Operation::Put => {
                let key = self.keys.key(self.keys.number_for(index, rng));
                Request::Put(self.put(key))
            }
            Operation::Range {
                key,
                range_end,
                serializable,
            } => Request::Range(RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                serializable: *serializable,
                ..RangeRequest::default()
            }),
            Operation::TxnPut { ops_per_txn } => {
                let success = (0..*ops_per_txn)
                    .map(|op| RequestOp {
                        request: Some(request_op::Request::RequestPut(
                            self.put(self.keys.key(index * ops_per_txn + op)),
                        )),
                    })
                    .collect();
                Request::Txn(TxnRequest {
                    success,
                    ..TxnRequest::default()
                })
            }
        }
    }

    fn put(&self, key: Vec<u8>) -> PutRequest {
        PutRequest {
            key,
            value: self.value.clone(),
            ..PutRequest::default()
        }
    }
}

/// Go's `binary.PutVarint`: zig-zag, then 7 bits per byte, low group first.
fn zigzag_varint(number: u64) -> Vec<u8> {
    let signed = number as i64;
    let mut rest = ((signed << 1) ^ (signed >> 63)) as u64;
    let mut out = Vec::with_capacity(10);
    while rest >= 0x80 {
        out.push((rest as u8) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key_size_bytes: usize, key_space_size: u64) -> KeySpec {
        KeySpec {
            key_size_bytes,
            key_space_size,
            sequential: true,
        }
    }

    // Proves keys match Go's binary.PutVarint layout, as the module doc's worked example says.
    #[test]
    fn keys_are_zigzag_varints_padded_with_zeros() {
        let keys = spec(4, 1000);
        assert_eq!(keys.key(0), [0, 0, 0, 0]);
        assert_eq!(keys.key(1), [2, 0, 0, 0]);
        assert_eq!(keys.key(64), [0x80, 0x01, 0, 0]);
        assert_eq!(keys.key(1001), [2, 0, 0, 0]);
    }

    // Proves a key space whose numbers do not fit the key size is rejected, not truncated.
    #[test]
    fn validate_rejects_keys_too_small_for_the_space() {
        assert!(spec(1, 64).validate().is_ok());
        assert!(spec(1, 65).validate().is_err());
        assert!(spec(8, 0).validate().is_err());
    }

    // Proves txn-put request i writes key numbers i*ops.. and sequential puts cycle the space.
    #[test]
    fn requests_cover_the_expected_keys() {
        let mut rng = rand::thread_rng();
        let txn = Workload {
            operation: Operation::TxnPut { ops_per_txn: 2 },
            keys: spec(2, 100),
            value: b"v".to_vec(),
        };
        let Request::Txn(request) = txn.request(3, &mut rng) else {
            panic!("txn-put must build a Txn");
        };
        let keys: Vec<Vec<u8>> = request
            .success
            .iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(put)) => put.key.clone(),
                other => panic!("unexpected op {other:?}"),
            })
            .collect();
        assert_eq!(keys, [spec(2, 100).key(6), spec(2, 100).key(7)]);
        let put = Workload {
            operation: Operation::Put,
            ..txn
        };
        let Request::Put(request) = put.request(105, &mut rng) else {
            panic!("put must build a Put");
        };
        assert_eq!(request.key, spec(2, 100).key(5));
    }
}
