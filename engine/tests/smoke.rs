//! Quick end-to-end checks of the engine's basic paths, run in strict mode.

use oxcd_engine::{Db, Error, Options, TxRead};

fn strict() -> Options {
    Options {
        strict: true,
        no_sync: true,
        ..Options::default()
    }
}

#[test]
fn put_get_reopen_and_many_pages() {
    // Proves keys survive commit and reopen across splits, overflow values and deletes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, strict()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(tx.root(), b"key")?;
        for i in 0..5000u32 {
            tx.put(b, &i.to_be_bytes(), &vec![i as u8; (i % 300) as usize])?;
        }
        tx.put(b, b"big", &vec![9u8; 20_000])?;
        Ok(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(tx.root(), b"key")?.unwrap();
        for i in (0..5000u32).filter(|i| i % 3 == 0) {
            tx.delete(b, &i.to_be_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    drop(db);
    let db = Db::open(&path, strict()).unwrap();
    db.check().unwrap();
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(tx.root(), b"key").unwrap().unwrap();
    for i in 0..5000u32 {
        let got = tx.get(b, &i.to_be_bytes()).unwrap();
        if i % 3 == 0 {
            assert!(got.is_none());
        } else {
            assert_eq!(got.unwrap(), vec![i as u8; (i % 300) as usize].as_slice());
        }
    }
    assert_eq!(tx.get(b, b"big").unwrap().unwrap().len(), 20_000);
    let mut c = tx.cursor(b).unwrap();
    let mut n = 0;
    let mut item = c.first().unwrap();
    while let Some(i) = item {
        n += 1;
        item = c.next().unwrap();
        if let Some(j) = item {
            assert!(j.key > i.key);
        }
    }
    assert_eq!(n, 5000 - 1667 + 1);
}

#[test]
fn nested_inline_buckets_and_errors() {
    // Proves nested and inline buckets, sequences and bbolt's error rules.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, strict()).unwrap();
    db.update(|tx| {
        let a = tx.create_bucket(tx.root(), b"a")?;
        let b = tx.create_bucket(a, b"b")?;
        tx.put(b, b"x", b"1")?;
        assert_eq!(tx.next_sequence(b)?, 1);
        assert!(matches!(
            tx.create_bucket(a, b"b"),
            Err(Error::BucketExists)
        ));
        assert!(matches!(
            tx.put(a, b"b", b"v"),
            Err(Error::IncompatibleValue)
        ));
        assert!(matches!(tx.put(b, b"", b"v"), Err(Error::KeyRequired)));
        Ok(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket_path(&[b"a", b"b"])?.unwrap();
        assert_eq!(tx.get(b, b"x")?, Some(&b"1"[..]));
        assert_eq!(tx.sequence(b)?, 1);
        tx.delete_bucket(tx.root(), b"a")?;
        Ok(())
    })
    .unwrap();
    db.check().unwrap();
    let tx = db.begin_read().unwrap();
    assert!(tx.bucket(tx.root(), b"a").unwrap().is_none());
}
