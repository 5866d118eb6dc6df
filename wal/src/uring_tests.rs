//! Unit tests of the io_uring path: the retry rules of `WritePlan` driven by made-up
//! completion sequences (short writes, errors, interruptions, cancelled syncs), and
//! `UringWriter` against the real kernel.

use std::os::unix::fs::FileExt;

use super::*;

const ECANCELED: i32 = -libc::ECANCELED;

/// Runs `plan` against `answers` (one per round), returning the rounds it asked for and its
/// final verdict (`Ok(true)` when done).
fn drive(plan: &mut WritePlan, answers: &[Completion]) -> (Vec<Round>, io::Result<bool>) {
    let mut rounds = Vec::new();
    for &answer in answers {
        let round = plan.next_round();
        rounds.push(round);
        match plan.complete(round, answer) {
            Ok(false) => {}
            verdict => return (rounds, verdict),
        }
    }
    (rounds, Ok(false))
}

fn round(start: usize, len: usize, sync: bool) -> Round {
    Round { start, len, sync }
}

fn answer(write: i32, sync: Option<i32>) -> Completion {
    Completion { write, sync }
}

fn errno(result: io::Result<bool>) -> Option<i32> {
    result.err().and_then(|e| e.raw_os_error())
}

#[test]
fn a_full_write_and_its_sync_finish_in_one_round() {
    // Proves the common case is one submission holding the whole buffer and a linked sync.
    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(&mut plan, &[answer(100, Some(0))]);
    assert_eq!(rounds, [round(0, 100, true)]);
    assert!(verdict.expect("durable"));
}

#[test]
fn short_writes_resubmit_the_remainder_with_a_new_sync() {
    // Proves a short write (its linked sync cancelled) is followed by the rest and a sync.
    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(
        &mut plan,
        &[
            answer(40, Some(ECANCELED)),
            answer(25, Some(ECANCELED)),
            answer(35, Some(0)),
        ],
    );
    assert_eq!(
        rounds,
        [
            round(0, 100, true),
            round(40, 60, true),
            round(65, 35, true)
        ]
    );
    assert!(verdict.expect("durable"));
}

#[test]
fn a_short_write_whose_sync_ran_anyway_is_still_synced_after_the_rest() {
    // Proves an early successful sync (kernels that do not cancel on short writes) is not
    // taken as covering bytes written after it.
    let mut plan = WritePlan::with_max_write(10, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(&mut plan, &[answer(4, Some(0)), answer(6, Some(0))]);
    assert_eq!(rounds, [round(0, 10, true), round(4, 6, true)]);
    assert!(verdict.expect("durable"));
}

#[test]
fn negative_results_become_io_errors() {
    // Proves a failed write is reported with its errno and a failed sync is never retried,
    // even when its write was short.
    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(-libc::EIO, Some(ECANCELED))]);
    assert_eq!(errno(verdict), Some(libc::EIO));

    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(-libc::ENOSPC, Some(ECANCELED))]);
    assert_eq!(errno(verdict), Some(libc::ENOSPC));

    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(100, Some(-libc::EIO))]);
    assert_eq!(errno(verdict), Some(libc::EIO));

    let mut plan = WritePlan::with_max_write(100, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(
        &mut plan,
        &[answer(30, Some(-libc::EIO)), answer(70, Some(0))],
    );
    assert_eq!(rounds.len(), 1, "no retry after a failed sync");
    assert_eq!(errno(verdict), Some(libc::EIO));
}

#[test]
fn interrupted_writes_are_retried_a_bounded_number_of_times() {
    // Proves EINTR/EAGAIN resubmit the same range, and that endless interruptions end in an
    // error instead of a hang.
    let mut plan = WritePlan::with_max_write(50, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(
        &mut plan,
        &[
            answer(-libc::EINTR, Some(ECANCELED)),
            answer(-libc::EAGAIN, Some(ECANCELED)),
            answer(50, Some(0)),
        ],
    );
    assert_eq!(rounds, [round(0, 50, true); 3]);
    assert!(verdict.expect("durable"));

    let mut plan = WritePlan::with_max_write(50, MAX_WRITE_BYTES);
    let endless = vec![answer(-libc::EINTR, Some(ECANCELED)); MAX_RETRIES as usize + 5];
    let (rounds, verdict) = drive(&mut plan, &endless);
    assert_eq!(rounds.len(), MAX_RETRIES as usize + 1);
    assert_eq!(errno(verdict), Some(libc::EINTR));
}

#[test]
fn impossible_write_results_are_errors() {
    // Proves a zero-byte write and a write longer than submitted are errors, not loops or
    // overruns.
    let mut plan = WritePlan::with_max_write(8, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(0, Some(ECANCELED))]);
    assert_eq!(
        verdict.expect_err("zero write").kind(),
        io::ErrorKind::WriteZero
    );

    let mut plan = WritePlan::with_max_write(8, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(9, Some(0))]);
    assert!(verdict.is_err());
}

#[test]
fn long_buffers_are_written_in_rounds_and_synced_once() {
    // Proves a buffer over the write limit goes out in limit-sized writes, only the last
    // one linked to a sync.
    let mut plan = WritePlan::with_max_write(250, 100);
    let (rounds, verdict) = drive(
        &mut plan,
        &[answer(100, None), answer(60, None), answer(90, Some(0))],
    );
    assert_eq!(
        rounds,
        [
            round(0, 100, false),
            round(100, 100, false),
            round(160, 90, true)
        ]
    );
    assert!(verdict.expect("durable"));
}

#[test]
fn an_empty_write_only_syncs() {
    // Proves a zero-length buffer submits a lone fdatasync and honours its result.
    let mut plan = WritePlan::with_max_write(0, MAX_WRITE_BYTES);
    let (rounds, verdict) = drive(&mut plan, &[answer(0, Some(0))]);
    assert_eq!(rounds, [round(0, 0, true)]);
    assert!(verdict.expect("durable"));

    let mut plan = WritePlan::with_max_write(0, MAX_WRITE_BYTES);
    let (_, verdict) = drive(&mut plan, &[answer(0, Some(-libc::EIO))]);
    assert_eq!(errno(verdict), Some(libc::EIO));
}

/// Whether io_uring works here; panics if not, unless `OXCD_WAL_ALLOW_NO_URING=1`.
fn uring_available() -> bool {
    match probe() {
        Ok(()) => true,
        Err(e) if std::env::var("OXCD_WAL_ALLOW_NO_URING").as_deref() == Ok("1") => {
            eprintln!("io_uring unavailable ({e}): skipped (OXCD_WAL_ALLOW_NO_URING=1)");
            false
        }
        Err(e) => panic!(
            "io_uring is unavailable here ({e}), so its path goes untested; \
             set OXCD_WAL_ALLOW_NO_URING=1 to accept that"
        ),
    }
}

fn temp_file(dir: &tempfile::TempDir, name: &str) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.path().join(name))
        .expect("create")
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn uring_writer_writes_at_offsets_and_in_rounds() {
    // Proves the real ring writes every byte where asked, also when split into many rounds.
    if !uring_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = temp_file(&dir, "seg");
    let reader = file.try_clone().expect("clone");
    let mut writer = UringWriter::new(file, 1000).expect("ring");
    let first = bytes(1, 4096);
    let second = bytes(2, 10_007);
    writer.write_durable(&first, 0).expect("first");
    writer.write_durable(&second, 4096 + 3).expect("second");
    writer.write_durable(&[], 0).expect("empty");
    let mut back = vec![0u8; 4096 + 3 + second.len()];
    reader.read_exact_at(&mut back, 0).expect("read");
    assert_eq!(back[..4096], first[..]);
    assert_eq!(back[4096..4099], [0, 0, 0]);
    assert_eq!(back[4099..], second[..]);
    writer.set_len_durable(5000).expect("set_len");
    assert_eq!(reader.metadata().expect("metadata").len(), 5000);
}

#[test]
fn uring_writer_reports_the_kernels_errno() {
    // Proves a negative CQE result reaches the caller as that errno (EBADF: read-only file).
    if !uring_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    drop(temp_file(&dir, "seg"));
    let read_only = File::open(dir.path().join("seg")).expect("open");
    let mut writer = UringWriter::new(read_only, MAX_WRITE_BYTES).expect("ring");
    let err = writer.write_durable(b"data", 0).expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    // The ring stays usable after a failed operation.
    let err = writer.write_durable(b"more", 4).expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}
