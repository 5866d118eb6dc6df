//! Times random point gets over a database written by `loadprof`, for profiling:
//! `cargo run --release --example getprof PATH N`.

use oxcd_engine::{Db, Options, TxRead};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: getprof PATH N")?;
    let n: u64 = args.next().ok_or("N")?.parse()?;
    let db = Db::open(
        &path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )?;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut found = 0u64;
    let start = Instant::now();
    for _ in 0..1000 {
        let tx = db.begin_read()?;
        let b = tx.bucket(tx.root(), b"key")?.ok_or("no key bucket")?;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut k = [0u8; 17];
            k[..8].copy_from_slice(&(x % n).to_be_bytes());
            k[8] = b'_';
            found += tx.get(b, &k)?.is_some() as u64;
        }
    }
    let el = start.elapsed();
    println!("{found} found, {:.0} gets/s", 1e6 / el.as_secs_f64());
    Ok(())
}
