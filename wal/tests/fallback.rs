//! The pwrite fallback end to end: a child copy of this test binary forbids itself io_uring
//! with a seccomp filter (`io_uring_setup` fails with EPERM, as in a locked-down container or
//! with `kernel.io_uring_disabled`), then proves that `IoMode::Auto` falls back to pwrite and
//! works across segment cuts and a reopen, and that `IoMode::Uring` is refused with an error
//! naming io_uring. The filter applies to the child only.

mod common;

use std::process::Command;

use common::{entry, state, METADATA};
use oxcd_wal::{probe_io_uring, Error, IoMode, SnapshotMark, Wal, WalOptions, IO_MODE_ENV};

/// Environment variable that tells the child to run.
const CHILD_ENV: &str = "OXCD_WAL_FALLBACK_CHILD";

/// Makes `io_uring_setup` fail with EPERM for this thread and the threads it starts later.
fn forbid_io_uring() {
    let stmt = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let filter = [
        // Load the system call number (offset 0 of `struct seccomp_data`).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        stmt(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            libc::SYS_io_uring_setup as u32,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `program` points to `filter`, both alive for the call; the kernel copies them.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
}

#[test]
#[ignore = "child process of auto_falls_back_to_pwrite_where_io_uring_is_forbidden"]
fn fallback_child() {
    // Proves nothing alone: the checks run under seccomp (does nothing without CHILD_ENV).
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    forbid_io_uring();
    let probe = probe_io_uring().expect_err("io_uring is forbidden");
    assert_eq!(probe.raw_os_error(), Some(libc::EPERM), "{probe}");

    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("wal");
    let auto = WalOptions {
        segment_size_bytes: 4096,
        ..WalOptions::default()
    };
    let mut wal = Wal::create(&dir, METADATA, auto.clone()).expect("create with Auto");
    assert_eq!(wal.io_mode(), IoMode::Pwrite);
    for i in 1..=100 {
        wal.save(Some(&state(i)), &[entry(i)]).expect("save");
    }
    assert!(
        wal.held_segments().len() > 3,
        "the test cut too few segments"
    );
    drop(wal);
    let (wal, read) = Wal::open(&dir, SnapshotMark::default(), auto.clone()).expect("open");
    assert_eq!(wal.io_mode(), IoMode::Pwrite);
    assert_eq!(read.entries, (1..=100).map(entry).collect::<Vec<_>>());
    drop(wal);

    let uring = WalOptions {
        io: IoMode::Uring,
        ..auto
    };
    for result in [
        Wal::open(&dir, SnapshotMark::default(), uring.clone()).map(|_| ()),
        Wal::create(&root.path().join("other"), METADATA, uring).map(|_| ()),
    ] {
        match result {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
                assert!(source.to_string().contains("io_uring"), "{source}");
            }
            other => panic!("IoMode::Uring without io_uring gave {other:?}"),
        }
    }
    println!("fallback child: all checks passed");
}

#[test]
fn auto_falls_back_to_pwrite_where_io_uring_is_forbidden() {
    // Proves Auto writes with pwrite and Uring fails cleanly when io_uring_setup gets EPERM.
    let out = Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "fallback_child",
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env_remove(IO_MODE_ENV)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("fallback child: all checks passed"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
