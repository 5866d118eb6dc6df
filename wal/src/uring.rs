//! The io_uring write path: `UringWriter`, a `SegmentWriter` that makes each group commit one
//! `io_uring_enter` holding a write linked to an fdatasync, and `probe`, which tells at open
//! whether io_uring works on this machine.
//!
//! Owns one ring per segment writer, used by one thread at a time (`&mut self`). The crate's
//! only `unsafe` lives here: a submission entry carries a raw pointer to the caller's buffer
//! and a raw file descriptor, which the kernel uses until the entry completes. Invariant that
//! makes it sound: `Ring::run` returns only once every entry it pushed has completed, or, when
//! the kernel refused them all, after marking the ring dead so it is never entered again (the
//! queued entries are then dropped unread with the ring). Either way no operation outlives the
//! borrow of the buffer or the writer that owns the file.
//!
//! Ordering: the fdatasync is linked after the write (`IOSQE_IO_LINK`), so it starts only after
//! the write completed in full; a failed or short write cancels it (`-ECANCELED`). The retry
//! rules are kept in `WritePlan`, a pure state machine that tests drive with made-up
//! completions. Worked example, 100 bytes at offset 4096 with a short first write:
//!
//! ```text
//! round 1: WRITE(buf[0..100] @ 4096) -link-> FDATASYNC   => 40, -ECANCELED
//! round 2: WRITE(buf[40..100] @ 4136) -link-> FDATASYNC  => 60, 0          => durable
//! ```
//!
//! A fdatasync error other than `-ECANCELED` is returned even if its write was short: after a
//! failed sync the kernel may have dropped the dirty pages, so retrying could acknowledge lost
//! data (the caller then poisons the WAL).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, register::Probe, squeue, types, IoUring};

use crate::io::SegmentWriter;

/// Submission queue size: a round needs at most two entries, and the queue is empty between
/// rounds.
const RING_ENTRIES: u32 = 8;
/// Largest single write submitted: the SQE length field is 32 bits and Linux caps one write at
/// 0x7fff_f000 bytes; a longer buffer is written in several rounds, the last one synced.
const MAX_WRITE_BYTES: usize = 1 << 30;
/// Consecutive `-EINTR`/`-EAGAIN` write results tolerated before giving up.
const MAX_RETRIES: u32 = 64;

/// One submission: `buf[start..start + len]` written at `offset + start`, then, when `sync`,
/// an fdatasync linked after it. `len == 0` means no write, only the sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Round {
    pub start: usize,
    pub len: usize,
    pub sync: bool,
}

/// What the kernel answered for one round: the write's result (0 when no write was
/// submitted) and the sync's result (`None` when no sync was submitted). Negative values are
/// `-errno`, as in a CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub write: i32,
    pub sync: Option<i32>,
}

/// The retry rules of one durable write of `total` bytes, free of any I/O.
#[derive(Debug)]
pub(crate) struct WritePlan {
    total: usize,
    written: usize,
    max_write_bytes: usize,
    retries: u32,
}

impl WritePlan {
    pub(crate) fn with_max_write(total: usize, max_write_bytes: usize) -> WritePlan {
        assert!(max_write_bytes > 0, "a write plan must make progress");
        WritePlan {
            total,
            written: 0,
            max_write_bytes,
            retries: 0,
        }
    }

    /// The next submission: the rest of the buffer (up to the write limit), with the sync
    /// linked when it reaches the end.
    pub(crate) fn next_round(&self) -> Round {
        let len = (self.total - self.written).min(self.max_write_bytes);
        Round {
            start: self.written,
            len,
            sync: self.written + len == self.total,
        }
    }

    /// Takes the results of `round`; `Ok(true)` once every byte is written and synced,
    /// `Ok(false)` if another round is needed.
    pub(crate) fn complete(&mut self, round: Round, done: Completion) -> io::Result<bool> {
        if let Some(sync) = done.sync {
            // Only a sync cancelled by its short or failed write may be retried.
            if sync < 0 && sync != -libc::ECANCELED {
                return Err(io::Error::from_raw_os_error(-sync));
            }
        }
        if round.len > 0 {
            if done.write < 0 {
                let errno = -done.write;
                if (errno == libc::EINTR || errno == libc::EAGAIN) && self.retries < MAX_RETRIES {
                    self.retries += 1;
                    return Ok(false);
                }
                return Err(io::Error::from_raw_os_error(errno));
            }
            let wrote = done.write as usize;
            if wrote == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write wrote nothing",
                ));
            }
            if wrote > round.len {
                return Err(io::Error::other(format!(
                    "io_uring write reported {wrote} bytes written of {} submitted",
                    round.len
                )));
            }
            self.retries = 0;
            self.written += wrote;
        }
        if self.written < self.total {
            return Ok(false);
        }
        match done.sync {
            Some(0) => Ok(true),
            Some(res) if res < 0 => Err(io::Error::from_raw_os_error(-res)),
            Some(res) => Err(io::Error::other(format!(
                "io_uring fdatasync returned {res}"
            ))),
            // All written but not synced by this round: the next round is a lone sync.
            None => Ok(false),
        }
    }
}

/// A ring that runs small batches of entries to completion.
struct Ring {
    ring: IoUring,
    /// Set when the kernel refused a batch: its entries stay queued, so the ring must never be
    /// entered again.
    dead: bool,
}

impl Ring {
    fn new() -> io::Result<Ring> {
        Ok(Ring {
            ring: IoUring::new(RING_ENTRIES)?,
            dead: false,
        })
    }

    /// Submits `entries` (whose `user_data` must be their index) and waits until all have
    /// completed; `results[i]` receives entry `i`'s result.
    ///
    /// Panics if the kernel fails the wait with entries in flight (EFAULT, EBADF...: a broken
    /// ring), since their buffers could then not be released safely.
    ///
    /// # Safety
    /// Every buffer and file descriptor the entries refer to must stay valid until this returns.
    unsafe fn run(&mut self, entries: &[squeue::Entry], results: &mut [i32]) -> io::Result<()> {
        assert!(entries.len() == results.len() && entries.len() <= RING_ENTRIES as usize);
        if self.dead {
            return Err(io::Error::other(
                "io_uring ring unusable after an earlier submission failure",
            ));
        }
        // SAFETY: the caller keeps every buffer and fd valid until we return, and we return
        // only after all of these entries completed (or were never taken by the kernel, in
        // which case the ring is marked dead and never entered again).
        unsafe { self.ring.submission().push_multiple(entries) }
            .map_err(|_| io::Error::other("io_uring submission queue unexpectedly full"))?;
        let mut pending = entries.len();
        let mut completed_any = false;
        while pending > 0 {
            if let Err(e) = self.ring.submit_and_wait(pending) {
                let retry = matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                );
                if !retry {
                    if !completed_any && self.ring.submission().len() == entries.len() {
                        self.dead = true;
                        return Err(e);
                    }
                    panic!("io_uring_enter failed with operations in flight: {e}");
                }
            }
            for cqe in self.ring.completion() {
                let index = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
                assert!(index < results.len(), "unexpected io_uring completion");
                results[index] = cqe.result();
                pending -= 1;
                completed_any = true;
            }
        }
        Ok(())
    }
}

/// Checks that io_uring works here: a ring can be set up, the kernel supports the operations
/// the writer uses, and a NOP makes the round trip. Any error means "use pwrite".
pub(crate) fn probe() -> io::Result<()> {
    let mut ring = Ring::new()?;
    let mut supported = Probe::new();
    ring.ring.submitter().register_probe(&mut supported)?;
    for (code, name) in [
        (opcode::Nop::CODE, "NOP"),
        (opcode::Write::CODE, "WRITE"),
        (opcode::Fsync::CODE, "FSYNC"),
    ] {
        if !supported.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring lacks IORING_OP_{name}"),
            ));
        }
    }
    let nop = opcode::Nop::new().build().user_data(0);
    let mut result = [i32::MIN];
    // SAFETY: a NOP refers to no buffer and no file descriptor.
    unsafe { ring.run(&[nop], &mut result) }?;
    if result[0] < 0 {
        return Err(io::Error::from_raw_os_error(-result[0]));
    }
    Ok(())
}

/// `SegmentWriter` on io_uring: write and fdatasync in one submission.
pub(crate) struct UringWriter {
    file: File,
    ring: Ring,
    /// `MAX_WRITE_BYTES`, smaller in tests to exercise multi-round writes.
    max_write_bytes: usize,
}

impl UringWriter {
    /// Sets up a ring for `file`; fails if io_uring is unavailable.
    pub(crate) fn boxed(file: File) -> io::Result<Box<dyn SegmentWriter>> {
        Ok(Box::new(UringWriter::new(file, MAX_WRITE_BYTES)?))
    }

    fn new(file: File, max_write_bytes: usize) -> io::Result<UringWriter> {
        Ok(UringWriter {
            file,
            ring: Ring::new()?,
            max_write_bytes,
        })
    }

    /// Submits one round of `data` at `offset` and waits for it.
    fn submit(&mut self, data: &[u8], offset: u64, round: Round) -> io::Result<Completion> {
        let fd = types::Fd(self.file.as_raw_fd());
        let chunk = &data[round.start..round.start + round.len];
        // Placeholders, overwritten by the entries actually submitted.
        let mut entries = [opcode::Nop::new().build(), opcode::Nop::new().build()];
        let mut count = 0;
        if round.len > 0 {
            let len = u32::try_from(round.len).expect("rounds are at most MAX_WRITE_BYTES long");
            let flags = if round.sync {
                squeue::Flags::IO_LINK
            } else {
                squeue::Flags::empty()
            };
            entries[count] = opcode::Write::new(fd, chunk.as_ptr(), len)
                .offset(offset + round.start as u64)
                .build()
                .flags(flags)
                .user_data(count as u64);
            count += 1;
        }
        let sync_index = count;
        if round.sync {
            entries[count] = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(count as u64);
            count += 1;
        }
        let mut results = [i32::MIN; 2];
        // SAFETY: `chunk` borrows `data`, which the caller lends for the whole call, and `fd`
        // belongs to `self.file`, which `&mut self` keeps open; `run` returns only after both
        // entries completed, so neither is used after this call.
        unsafe { self.ring.run(&entries[..count], &mut results[..count]) }?;
        Ok(Completion {
            write: if round.len > 0 { results[0] } else { 0 },
            sync: round.sync.then_some(results[sync_index]),
        })
    }
}

impl SegmentWriter for UringWriter {
    fn write_durable(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let mut plan = WritePlan::with_max_write(data.len(), self.max_write_bytes);
        loop {
            let round = plan.next_round();
            let done = self.submit(data, offset, round)?;
            if plan.complete(round, done)? {
                return Ok(());
            }
        }
    }

    fn set_len_durable(&mut self, len: u64) -> io::Result<()> {
        // Rare (torn tail at open, end of a segment at cut): the plain syscalls do.
        self.file.set_len(len)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
#[path = "uring_tests.rs"]
mod tests;
