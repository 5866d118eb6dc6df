//! Revisions and their byte encoding as keys of the `key` bucket (etcd's `mvcc/revision.go`).
//!
//! A [`Revision`] names one change to the key space: `main` is the revision of the atomic set of
//! changes (one raft entry's put, delete or txn), `sub` numbers the changes inside that set from
//! 0. Revisions order by `main`, then `sub`.
//!
//! In the `key` bucket every version of every key is stored under its revision, encoded so that
//! byte order equals revision order (so a cursor walks the history oldest first):
//!
//! | offset | size | meaning                                       |
//! |--------|------|-----------------------------------------------|
//! | 0      | 8    | `main`, big-endian                            |
//! | 8      | 1    | `b'_'`                                        |
//! | 9      | 8    | `sub`, big-endian                             |
//! | 17     | 1    | optional: `b't'` marks a tombstone (a delete) |
//!
//! Worked example: the delete of a key at main revision 5, second change of its txn
//! (`Revision { main: 5, sub: 1 }`) is stored under the 18 bytes
//!
//! ```text
//! 00 00 00 00 00 00 00 05  5f  00 00 00 00 00 00 00 01  74
//! └──────── main=5 ──────┘ '_' └─────── sub=1 ────────┘ 't'
//! ```
//!
//! and the put that preceded it at `Revision { main: 4, sub: 0 }` under the first 17 bytes of
//! `00…04 5f 00…00`. The meta bucket's `scheduledCompactRev` and `finishedCompactRev` hold the
//! unmarked 17-byte form.
//!
//! Invariants: revisions written to disk are non-negative (etcd starts at main 1 and only counts
//! up), so the byte order of encoded keys equals [`Revision`]'s `Ord`. Decoding checks every
//! byte that has a fixed meaning and rejects negative fields, so a malformed key is an error
//! value, never a panic. Pure: no I/O.

use std::fmt;

/// Byte length of an unmarked revision key: 8-byte main, `b'_'`, 8-byte sub.
pub const REVISION_BYTES_LEN: usize = 17;
/// Byte length of a revision key carrying a mark byte (today only the tombstone mark).
pub const MARKED_REVISION_BYTES_LEN: usize = REVISION_BYTES_LEN + 1;
/// Offset of the big-endian `main` field.
pub const MAIN_OFFSET: usize = 0;
/// Offset of the separator byte between `main` and `sub`.
pub const SEPARATOR_OFFSET: usize = 8;
/// Offset of the big-endian `sub` field.
pub const SUB_OFFSET: usize = 9;
/// Offset of the optional mark byte.
pub const MARK_OFFSET: usize = REVISION_BYTES_LEN;
/// The separator byte between `main` and `sub`.
pub const SEPARATOR: u8 = b'_';
/// The mark byte that turns a revision key into a tombstone key.
pub const TOMBSTONE_MARK: u8 = b't';

const _: () = assert!(REVISION_BYTES_LEN == 17);
const _: () = assert!(MARKED_REVISION_BYTES_LEN == 18);
const _: () = assert!(SEPARATOR_OFFSET == MAIN_OFFSET + 8);
const _: () = assert!(SUB_OFFSET == SEPARATOR_OFFSET + 1);
const _: () = assert!(MARK_OFFSET == SUB_OFFSET + 8);

/// One change to the key space: `main` is the atomic change set, `sub` the change within it.
///
/// The derived `Ord` compares `main` first, then `sub`, as etcd's `GreaterThan` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The 17-byte unmarked encoding. The caller keeps revisions non-negative (checked in debug
    /// builds); a negative field would break the byte order and is refused by [`Self::decode`].
    pub fn encode(self) -> [u8; REVISION_BYTES_LEN] {
        debug_assert!(self.main >= 0 && self.sub >= 0, "negative revision {self}");
        let mut bytes = [0u8; REVISION_BYTES_LEN];
        bytes[MAIN_OFFSET..SEPARATOR_OFFSET].copy_from_slice(&self.main.to_be_bytes());
        bytes[SEPARATOR_OFFSET] = SEPARATOR;
        bytes[SUB_OFFSET..MARK_OFFSET].copy_from_slice(&self.sub.to_be_bytes());
        bytes
    }

    /// Decodes exactly 17 bytes (no mark). Use [`BucketKey::decode`] for `key` bucket keys.
    pub fn decode(bytes: &[u8]) -> Result<Self, RevisionKeyError> {
        if bytes.len() != REVISION_BYTES_LEN {
            return Err(RevisionKeyError::WrongLength { len: bytes.len() });
        }
        decode_fields(bytes)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

/// A key of the `key` bucket: a revision, and whether the value stored under it is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub revision: Revision,
    pub tombstone: bool,
}

impl BucketKey {
    pub const fn new(revision: Revision, tombstone: bool) -> Self {
        BucketKey {
            revision,
            tombstone,
        }
    }

    /// The encoded length: 17 bytes, or 18 for a tombstone.
    pub const fn encoded_len(self) -> usize {
        if self.tombstone {
            MARKED_REVISION_BYTES_LEN
        } else {
            REVISION_BYTES_LEN
        }
    }

    /// Appends the 17- or 18-byte encoding to `out` (lets the caller reuse one buffer).
    pub fn encode_into(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.revision.encode());
        if self.tombstone {
            out.push(TOMBSTONE_MARK);
        }
    }

    /// The 17- or 18-byte encoding.
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Decodes a `key` bucket key: 17 bytes, or 18 ending in the tombstone mark.
    pub fn decode(bytes: &[u8]) -> Result<Self, RevisionKeyError> {
        let tombstone = match bytes.len() {
            REVISION_BYTES_LEN => false,
            MARKED_REVISION_BYTES_LEN => match bytes[MARK_OFFSET] {
                TOMBSTONE_MARK => true,
                found => return Err(RevisionKeyError::UnknownMark { found }),
            },
            len => return Err(RevisionKeyError::WrongLength { len }),
        };
        Ok(BucketKey {
            revision: decode_fields(&bytes[..REVISION_BYTES_LEN])?,
            tombstone,
        })
    }
}

/// Why bytes are not a valid revision key.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RevisionKeyError {
    #[error("revision key has {len} bytes, want 17 (or 18 with a mark)")]
    WrongLength { len: usize },
    #[error("revision key has byte {found:#04x} at offset 8, want '_'")]
    BadSeparator { found: u8 },
    #[error("revision key has mark byte {found:#04x} at offset 17, want 't'")]
    UnknownMark { found: u8 },
    #[error("revision key decodes to negative revision {main}_{sub}")]
    Negative { main: i64, sub: i64 },
}

/// Decodes the fields of a slice already known to be exactly 17 bytes long.
fn decode_fields(bytes: &[u8]) -> Result<Revision, RevisionKeyError> {
    debug_assert_eq!(bytes.len(), REVISION_BYTES_LEN);
    if bytes[SEPARATOR_OFFSET] != SEPARATOR {
        return Err(RevisionKeyError::BadSeparator {
            found: bytes[SEPARATOR_OFFSET],
        });
    }
    let main = i64::from_be_bytes(field(bytes, MAIN_OFFSET));
    let sub = i64::from_be_bytes(field(bytes, SUB_OFFSET));
    if main < 0 || sub < 0 {
        return Err(RevisionKeyError::Negative { main, sub });
    }
    Ok(Revision { main, sub })
}

fn field(bytes: &[u8], offset: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[offset..offset + 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_example_matches_doc() {
        // Proves the encoding is exactly the byte string shown in the module doc.
        let key = BucketKey::new(Revision::new(5, 1), true).encode();
        let want: [u8; 18] = [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 1, b't'];
        assert_eq!(key, want);
        assert_eq!(
            BucketKey::decode(&key),
            Ok(BucketKey::new(Revision::new(5, 1), true))
        );
        let put = Revision::new(4, 0).encode();
        assert_eq!(&put[..9], &[0, 0, 0, 0, 0, 0, 0, 4, b'_']);
        assert_eq!(Revision::decode(&put), Ok(Revision::new(4, 0)));
    }

    #[test]
    fn ordering_is_main_then_sub() {
        // Proves Revision orders as etcd's GreaterThan: main first, then sub.
        assert!(Revision::new(2, 0) > Revision::new(1, 9));
        assert!(Revision::new(1, 1) > Revision::new(1, 0));
        assert_eq!(Revision::new(3, 3), Revision::new(3, 3));
        assert_eq!(Revision::new(7, 2).to_string(), "7_2");
    }

    #[test]
    fn malformed_keys_are_typed_errors() {
        // Proves every malformed shape of key decodes to its own error instead of a panic.
        let good = Revision::new(9, 3).encode();
        assert_eq!(
            BucketKey::decode(&good[..16]),
            Err(RevisionKeyError::WrongLength { len: 16 })
        );
        assert_eq!(
            BucketKey::decode(&[]),
            Err(RevisionKeyError::WrongLength { len: 0 })
        );
        let mut long = good.to_vec();
        long.extend_from_slice(b"tt");
        assert_eq!(
            BucketKey::decode(&long),
            Err(RevisionKeyError::WrongLength { len: 19 })
        );
        let mut marked = good.to_vec();
        marked.push(b'x');
        assert_eq!(
            BucketKey::decode(&marked),
            Err(RevisionKeyError::UnknownMark { found: b'x' })
        );
        assert_eq!(
            Revision::decode(&marked),
            Err(RevisionKeyError::WrongLength { len: 18 })
        );
        let mut bad_sep = good;
        bad_sep[SEPARATOR_OFFSET] = b'-';
        assert_eq!(
            Revision::decode(&bad_sep),
            Err(RevisionKeyError::BadSeparator { found: b'-' })
        );
        let mut negative = good;
        negative[MAIN_OFFSET] = 0x80;
        assert!(matches!(
            Revision::decode(&negative),
            Err(RevisionKeyError::Negative { .. })
        ));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips_and_preserves_order(
            a_main in 0i64..=i64::MAX, a_sub in 0i64..=i64::MAX,
            b_main in 0i64..=i64::MAX, b_sub in 0i64..=i64::MAX,
            tombstone in any::<bool>(),
        ) {
            // Proves decode(encode(r)) == r and byte order equals revision order.
            let a = Revision::new(a_main, a_sub);
            let b = Revision::new(b_main, b_sub);
            let key = BucketKey::new(a, tombstone);
            let bytes = key.encode();
            prop_assert_eq!(bytes.len(), key.encoded_len());
            prop_assert_eq!(BucketKey::decode(&bytes), Ok(key));
            prop_assert_eq!(a.encode().cmp(&b.encode()), a.cmp(&b));
        }
    }
}
