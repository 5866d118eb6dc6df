//! Writes a sample database (for poking at with bbolt tools): `cargo run --example mkdb PATH`.

use oxcd_engine::{Db, Options, TxRead};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: mkdb PATH")?;
    let db = Db::open(
        &path,
        Options {
            strict: true,
            ..Options::default()
        },
    )?;
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(tx.root(), b"key")?;
        tx.set_fill_percent(b, 0.9);
        for i in 0..20_000u64 {
            let mut k = i.to_be_bytes().to_vec();
            k.push(b'_');
            k.extend_from_slice(&0u64.to_be_bytes());
            tx.put(b, &k, &[7u8; 256])?;
        }
        let m = tx.create_bucket_if_not_exists(tx.root(), b"meta")?;
        tx.put(m, b"consistent_index", &5u64.to_be_bytes())?;
        let n = tx.create_bucket_if_not_exists(m, b"nested")?;
        tx.put(n, b"big", &vec![1u8; 30_000])?;
        Ok(())
    })?;
    db.update(|tx| {
        let b = tx.bucket(tx.root(), b"key")?.unwrap();
        for i in (0..20_000u64).step_by(3) {
            let mut k = i.to_be_bytes().to_vec();
            k.push(b'_');
            k.extend_from_slice(&0u64.to_be_bytes());
            tx.delete(b, &k)?;
        }
        Ok(())
    })?;
    println!("{:?}", db.info()?);
    Ok(())
}
