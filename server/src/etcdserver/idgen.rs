//! Request IDs (etcd's `idutil.Generator`): the high 16 bits are the low 16 bits of the member
//! ID, the low 48 bits a counter that starts at the start-up time in milliseconds shifted left
//! by 8. IDs are unique within a process and, since the clock moves on, across restarts of a
//! member, so an old entry replayed from the WAL never answers a new proposer's waiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const SUFFIX_BITS: u32 = 48;
const SUFFIX_MASK: u64 = (1 << SUFFIX_BITS) - 1;

/// Hands out request IDs. See the module doc.
#[derive(Debug)]
pub(super) struct IdGenerator {
    prefix: u64,
    suffix: AtomicU64,
}

impl IdGenerator {
    pub(super) fn new(member_id: u64) -> IdGenerator {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator {
            prefix: (member_id & 0xffff) << SUFFIX_BITS,
            suffix: AtomicU64::new((now_ms << 8) & SUFFIX_MASK),
        }
    }

    pub(super) fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.prefix | (suffix & SUFFIX_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_the_member_prefix_and_never_repeat() {
        // Proves consecutive IDs differ and keep the member's 16-bit prefix.
        let ids = IdGenerator::new(0x1234_5678_9abc_def0);
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a >> 48, 0xdef0);
        assert_eq!(b >> 48, 0xdef0);
    }
}
