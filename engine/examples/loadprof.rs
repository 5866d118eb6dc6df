//! Times etcd's write pattern (17-byte revision keys, 256-byte values, 1,000 per commit) for
//! profiling: `cargo run --release --example loadprof PATH N [nosync]`.

use oxcd_engine::{Db, Options, TxRead};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: loadprof PATH N [nosync]")?;
    let n: u64 = args.next().ok_or("N")?.parse()?;
    let no_sync = args.next().as_deref() == Some("nosync");
    let _ = std::fs::remove_file(&path);
    let db = Db::open(
        &path,
        Options {
            no_sync,
            ..Options::default()
        },
    )?;
    let value = [7u8; 256];
    let start = Instant::now();
    let mut commit_time = std::time::Duration::ZERO;
    for chunk in 0..n / 1000 {
        let mut tx = db.begin_write()?;
        let b = tx.create_bucket_if_not_exists(tx.root(), b"key")?;
        tx.set_fill_percent(b, 0.9);
        for i in chunk * 1000..(chunk + 1) * 1000 {
            let mut k = [0u8; 17];
            k[..8].copy_from_slice(&i.to_be_bytes());
            k[8] = b'_';
            tx.put(b, &k, &value)?;
        }
        let c = Instant::now();
        tx.commit()?;
        commit_time += c.elapsed();
    }
    let el = start.elapsed();
    println!(
        "{n} puts in {:.3}s ({:.0}/s), commit {:.3}s",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64(),
        commit_time.as_secs_f64()
    );
    Ok(())
}
