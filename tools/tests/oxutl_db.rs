//! End-to-end tests of `oxutl db ...`: each builds a data file with the engine in a temp dir,
//! runs the real binary on it and checks stdout, stderr and the exit code.

mod common;

use std::process::Command;

use common::*;
use oxcd_engine::Db;
use serde_json::Value;

#[test]
fn info_matches_the_engine_and_the_file() {
    // info (text and JSON) reports exactly what the engine's Db::info says, and the real file size.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let expected = engine_info(&path);
    let json = db_cmd("info", &path, &["--json"]);
    json.ok();
    let json = json.json();
    assert_eq!(json["page_size"], PAGE_SIZE);
    assert_eq!(json["txid"], expected.txid);
    assert_eq!(json["root_pgid"], expected.root_pgid);
    assert_eq!(json["freelist_pgid"], expected.freelist_pgid);
    assert_eq!(json["high_water_pgid"], expected.high_water_pgid);
    assert_eq!(json["free_page_count"], expected.free_page_count);
    assert_eq!(json["pending_page_count"], expected.pending_page_count);
    assert_eq!(json["size_in_use_bytes"], expected.size_in_use_bytes);
    let file_size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(json["file_size_bytes"], file_size);
    let text = db_cmd("info", &path, &[]).ok();
    assert!(text.contains("Page size:          4096 bytes"), "{text}");
    assert!(
        text.contains(&format!("Transaction id:     {}\n", expected.txid)),
        "{text}"
    );
    assert!(
        text.contains(&format!("File size:          {file_size} bytes\n")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 9, "{text}");
}

#[test]
fn stats_aggregates_buckets_by_prefix() {
    // stats sums per-bucket statistics over the buckets whose names start with the prefix.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let stats = |prefix: &str| {
        let run = db_cmd("stats", &path, &[prefix, "--json"]);
        run.ok();
        run.json()
    };
    let alpha = stats("alpha");
    assert_eq!(alpha["matched_bucket_count"], 1);
    assert_eq!(
        alpha["bucket_count"], 2,
        "alpha and its nested bucket: {alpha}"
    );
    assert_eq!(
        alpha["inline_bucket_count"], 1,
        "inner is small enough to inline: {alpha}"
    );
    assert_eq!(alpha["leaf_page_count"], 1, "{alpha}");
    let zeta = stats("zeta");
    assert_eq!(zeta["leaf_page_count"], 1);
    assert_eq!(
        zeta["leaf_overflow_page_count"], 2,
        "10000 bytes span 3 pages: {zeta}"
    );
    assert_eq!(zeta["leaf_allocated_bytes"], 3 * PAGE_SIZE);
    assert_eq!(zeta["key_count"], 1);
    assert_eq!(zeta["depth"], 1);
    let beta = stats("b");
    assert_eq!(beta["matched_bucket_count"], 1);
    assert_eq!(beta["key_count"], 199);
    assert!(beta["branch_page_count"].as_u64().unwrap() >= 1, "{beta}");
    assert_eq!(beta["depth"], 2, "{beta}");
    // No prefix: every field is the sum over the three buckets, except depth (the maximum).
    let all = stats("");
    assert_eq!(all["matched_bucket_count"], 3);
    let fields = all.as_object().expect("stats object");
    for (field, value) in fields {
        let parts = [&alpha, &beta, &zeta].map(|one| one[field].as_u64().unwrap());
        let expected = if field == "depth" {
            parts.into_iter().max().unwrap()
        } else {
            parts.into_iter().sum()
        };
        assert_eq!(value.as_u64(), Some(expected), "{field} in {all}");
    }
    let text = db_cmd("stats", &path, &[]).ok();
    assert!(text.starts_with("Buckets matched: 3\n"), "{text}");
    let keys_line = format!("  keys:                           {}\n", all["key_count"]);
    assert!(text.contains(&keys_line), "{keys_line:?} in {text}");
    let none = db_cmd("stats", &path, &["nomatch"]).ok();
    assert!(none.starts_with("Buckets matched: 0\n"), "{none}");
}

#[test]
fn stats_count_nested_buckets_like_bbolt() {
    // For a bucket holding a nested bucket, key count and depth match bbolt 1.3.6's Stats.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let run = db_cmd("stats", &path, &["alpha", "--json"]);
    run.ok();
    let alpha = run.json();
    // bbolt counts every leaf element (the "inner" entry too) plus inner's keys: 4 + 1, and
    // adds the nested bucket's depth to the parent's: 1 + 1 (measured with bbolt 1.3.6).
    assert_eq!(alpha["key_count"], 5, "{alpha}");
    assert_eq!(alpha["depth"], 2, "{alpha}");
}

#[test]
fn buckets_lists_top_level_names() {
    // buckets prints top-level bucket names one per line (not nested ones), or JSON.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    assert_eq!(db_cmd("buckets", &path, &[]).ok(), "alpha\nbeta\nzeta\n");
    assert_eq!(
        db_cmd("buckets", &path, &["--format", "hex"]).ok(),
        "616c706861\n62657461\n7a657461\n"
    );
    let run = db_cmd("buckets", &path, &["--json"]);
    run.ok();
    let json = run.json();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[1]["name"], "beta");
    assert_eq!(json[1]["name_hex"], "62657461");
}

#[test]
fn keys_lists_keys_in_every_format() {
    // keys prints a bucket's keys (binary ones as hex under auto), nested paths work, --json too.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    assert_eq!(
        db_cmd("keys", &path, &["alpha"]).ok(),
        "00ff\na1\na2\ninner\n"
    );
    assert_eq!(
        db_cmd("keys", &path, &["alpha", "--format", "hex"]).ok(),
        "00ff\n6131\n6132\n696e6e6572\n"
    );
    assert_eq!(
        db_cmd("keys", &path, &["alpha", "--format", "ascii"]).ok(),
        "\\x00\\xff\na1\na2\ninner\n"
    );
    let raw = db_cmd("keys", &path, &["alpha", "--format", "bytes"]);
    raw.ok();
    assert_eq!(raw.stdout, b"\x00\xff\na1\na2\ninner\n");
    assert_eq!(db_cmd("keys", &path, &["alpha", "inner"]).ok(), "deep\n");
    let hex_path = ["--parse-format", "hex", "616c706861", "696e6e6572"];
    assert_eq!(db_cmd("keys", &path, &hex_path).ok(), "deep\n");
    let beta = db_cmd("keys", &path, &["beta"]).ok();
    assert_eq!(beta.lines().count(), 199);
    assert_eq!(beta.lines().next(), Some("k0001"));
    assert_eq!(beta.lines().last(), Some("k0199"));
    let run = db_cmd("keys", &path, &["alpha", "--json"]);
    run.ok();
    let json = run.json();
    assert_eq!(json[0]["key"], "00ff");
    assert_eq!(json[0]["key_hex"], "00ff");
    assert_eq!(json[0]["is_bucket"], false);
    assert_eq!(json[3]["key"], "inner");
    assert_eq!(json[3]["is_bucket"], true);
}

#[test]
fn get_prints_values() {
    // get finds values in top-level and nested buckets, by text or hex key, in every format.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    assert_eq!(db_cmd("get", &path, &["alpha", "a1"]).ok(), "one\n");
    assert_eq!(
        db_cmd("get", &path, &["alpha", "inner", "deep"]).ok(),
        "value\n"
    );
    // --parse-format applies to every BUCKET and KEY argument; 616c706861 is "alpha".
    let binary = ["616c706861", "00ff", "--parse-format", "hex"];
    assert_eq!(db_cmd("get", &path, &binary).ok(), "ff0001\n");
    let binary_ascii = [
        "616c706861",
        "00ff",
        "--parse-format",
        "hex",
        "--format",
        "ascii",
    ];
    assert_eq!(
        db_cmd("get", &path, &binary_ascii).ok(),
        "\\xff\\x00\\x01\n"
    );
    let raw_args = [
        "616c706861",
        "00ff",
        "--parse-format",
        "hex",
        "--format",
        "bytes",
    ];
    let raw = db_cmd("get", &path, &raw_args);
    raw.ok();
    assert_eq!(
        raw.stdout,
        [0xff, 0x00, 0x01],
        "bytes: exact value, no newline"
    );
    let big = db_cmd("get", &path, &["zeta", "big", "--format", "bytes"]);
    big.ok();
    assert_eq!(big.stdout, vec![7u8; 10_000]);
    assert_eq!(
        db_cmd("get", &path, &["alpha", "a2", "--format", "hex"]).ok(),
        "74776f\n"
    );
    let nested = db_cmd("get", &path, &["alpha", "inner"]);
    assert!(
        nested.failed_naming(&path).contains("nested bucket"),
        "{}",
        nested.stderr
    );
}

#[test]
fn pages_table_covers_the_file() {
    // pages lists every page up to the high water mark with bbolt's table layout.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let info = engine_info(&path);
    let text = db_cmd("pages", &path, &[]).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ID       TYPE       ITEMS  OVRFLW");
    assert_eq!(lines[1], "======== ========== ====== ======");
    assert!(lines[2].starts_with("0        meta       "), "{text}");
    assert!(lines[3].starts_with("1        meta       "), "{text}");
    let pages = pages_json(&path);
    assert_eq!(pages.len(), lines.len() - 2, "one JSON row per table row");
    // Rows tile the file: each starts where the previous one's overflow run ended.
    let mut next_id = 0;
    for row in &pages {
        assert_eq!(row["id"], next_id, "{row}");
        next_id += 1 + row["overflow"].as_u64().unwrap();
    }
    assert_eq!(next_id, info.high_water_pgid);
    for kind in ["meta", "freelist", "branch", "leaf", "free"] {
        assert!(
            !ids_of_type(&pages, kind).is_empty(),
            "no {kind} page in {text}"
        );
    }
    let overflowing: Vec<&Value> = pages.iter().filter(|row| row["overflow"] == 2).collect();
    assert_eq!(overflowing.len(), 1, "zeta's leaf: {text}");
    let big_id = overflowing[0]["id"].as_u64().unwrap();
    let row = format!("{:<8} {:<10} {:<6} {:<6}", big_id, "leaf", 1, 2);
    assert!(lines.contains(&row.as_str()), "{row:?} in {text}");
    let free = ids_of_type(&pages, "free");
    let free_row = format!("{:<8} {:<10} {:<6} {:<6}", free[0], "free", "", "");
    assert!(lines.contains(&free_row.as_str()), "{free_row:?} in {text}");
}

#[test]
fn page_decodes_every_page_type() {
    // page decodes meta fields, freelist ids, branch children and leaf keys/values from disk.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let info = engine_info(&path);
    let meta_text = db_cmd("page", &path, &["0"]).ok();
    assert!(meta_text.contains("Type:           meta"), "{meta_text}");
    assert!(
        meta_text.contains("Magic:           0xed0cdaed\n"),
        "{meta_text}"
    );
    assert!(meta_text.contains("Page size:       4096\n"), "{meta_text}");
    let metas = [page_json(&path, 0), page_json(&path, 1)];
    for meta in &metas {
        assert_eq!(meta["meta"]["checksum_ok"], true, "{meta}");
        assert_eq!(meta["meta"]["version"], 2);
    }
    let current = metas
        .iter()
        .max_by_key(|m| m["meta"]["txid"].as_u64())
        .unwrap();
    assert_eq!(current["meta"]["txid"], info.txid);
    assert_eq!(current["meta"]["root_pgid"], info.root_pgid);
    assert_eq!(current["meta"]["high_water_pgid"], info.high_water_pgid);

    let freelist = page_json(&path, info.freelist_pgid);
    assert_eq!(freelist["type"], "freelist");
    let free_ids = freelist["free_ids"].as_array().expect("free ids");
    assert_eq!(
        free_ids.len() as u64,
        info.free_page_count + info.pending_page_count
    );

    let pages = pages_json(&path);
    let branch_id = ids_of_type(&pages, "branch")[0];
    let branch = page_json(&path, branch_id);
    let children = branch["branch"].as_array().expect("branch elements");
    assert!(children.len() >= 2, "{branch}");
    for child in children {
        assert!(
            child["child_pgid"].as_u64().unwrap() < info.high_water_pgid,
            "{child}"
        );
    }
    let leaves = ids_of_type(&pages, "leaf");
    let decoded: Vec<Value> = leaves.iter().map(|id| page_json(&path, *id)).collect();
    let alpha = decoded
        .iter()
        .find(|p| p["leaf"][0]["key_hex"] == "00ff")
        .expect("alpha leaf");
    let elements = alpha["leaf"].as_array().unwrap();
    assert_eq!(elements[1]["key"], "a1");
    assert_eq!(elements[1]["value"], "one");
    assert_eq!(elements[3]["key"], "inner");
    assert_eq!(elements[3]["flags"], 1);
    assert_eq!(elements[3]["bucket"]["root_pgid"], 0, "inline bucket");
    assert_eq!(elements[3]["bucket"]["inline_items"], 1);
    let big = decoded
        .iter()
        .find(|p| p["leaf"][0]["key"] == "big")
        .expect("zeta leaf");
    assert_eq!(big["overflow"], 2);
    assert_eq!(big["size_bytes"], 3 * PAGE_SIZE);
    assert_eq!(big["leaf"][0]["value_hex"].as_str().unwrap().len(), 20_000);
    let alpha_id = alpha["id"].as_u64().unwrap().to_string();
    let text = db_cmd("page", &path, &[&alpha_id]).ok();
    assert!(text.contains("[1] flags=0x0 key=a1 value=one\n"), "{text}");
    assert!(
        text.contains("[3] flags=0x1 key=inner bucket: root=0 sequence=0 inline"),
        "{text}"
    );
    let beyond = db_cmd("page", &path, &[&info.high_water_pgid.to_string()]);
    assert!(
        beyond.failed_naming(&path).contains("does not exist"),
        "{}",
        beyond.stderr
    );
}

#[test]
fn check_passes_on_a_healthy_file() {
    // check prints OK and exits 0 on a file the engine wrote in strict mode.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    assert_eq!(db_cmd("check", &path, &[]).ok(), "OK\n");
}

#[test]
fn check_lists_problems_and_exits_1() {
    // A freelist that also claims a page the tree uses makes check print problems and exit 1.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let info = engine_info(&path);
    let leaf = ids_of_type(&pages_json(&path), "leaf")[0];
    let freelist = page_json(&path, info.freelist_pgid);
    let mut ids: Vec<u64> = freelist["free_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    ids.push(leaf);
    ids.sort_unstable();
    // Rewrite the freelist page in place: header count, then the sorted ids.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = (info.freelist_pgid * u64::from(PAGE_SIZE)) as usize;
    let count = u16::try_from(ids.len()).unwrap();
    bytes[page + 10..page + 12].copy_from_slice(&count.to_le_bytes());
    for (index, id) in ids.iter().enumerate() {
        let at = page + 16 + index * 8;
        bytes[at..at + 8].copy_from_slice(&id.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let run = db_cmd("check", &path, &[]);
    let stderr = run.failed_naming(&path);
    assert!(stderr.contains("check found"), "{stderr}");
    let problems = run.text();
    assert!(!problems.is_empty() && problems != "OK\n", "{problems}");
    assert!(
        problems.contains(&leaf.to_string()),
        "page {leaf} named in {problems}"
    );
}

#[test]
fn read_commands_leave_the_file_unchanged() {
    // Every command except compact opens read-only: the file's bytes are identical afterwards.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let before = std::fs::read(&path).unwrap();
    for (command, rest) in [
        ("info", vec![]),
        ("stats", vec![]),
        ("buckets", vec![]),
        ("keys", vec!["alpha"]),
        ("get", vec!["alpha", "a1"]),
        ("pages", vec![]),
        ("page", vec!["2"]),
        ("check", vec![]),
    ] {
        db_cmd(command, &path, &rest).ok();
    }
    assert!(std::fs::read(&path).unwrap() == before, "file changed");
}

#[test]
fn corrupt_file_is_one_line_error() {
    // Flipped magic in both meta pages (or an empty file) fails every command in one line, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    for meta_page in 0..2usize {
        let magic = meta_page * PAGE_SIZE as usize + 16;
        for byte in &mut bytes[magic..magic + 4] {
            *byte ^= 0xff;
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    db_cmd("info", &empty, &[]).failed_naming(&empty);
    for (command, rest) in [
        ("info", vec![]),
        ("check", vec![]),
        ("keys", vec!["alpha"]),
        ("pages", vec![]),
    ] {
        let run = db_cmd(command, &path, &rest);
        run.failed_naming(&path);
        assert!(run.stdout.is_empty(), "{command} printed {:?}", run.text());
    }
}

#[test]
fn missing_file_is_one_line_error_and_not_created() {
    // A missing data file is reported in one line with exit 1, and is never created.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    for command in ["info", "buckets", "check", "pages"] {
        let run = db_cmd(command, &path, &[]);
        assert!(
            run.failed_naming(&path).contains("no such file"),
            "{}",
            run.stderr
        );
    }
    let out = dir.path().join("out.db");
    let run = db_cmd("compact", &path, &["-o", out.to_str().unwrap()]);
    run.failed_naming(&path);
    assert!(!path.exists(), "the source was created");
    assert!(!out.exists(), "the output was left behind");
}

#[test]
fn missing_bucket_or_key_is_one_line_error() {
    // Missing buckets (top-level or nested) and missing keys fail with exit 1 and name them.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    let run = db_cmd("keys", &path, &["nope"]);
    assert!(
        run.failed_naming(&path).contains("bucket not found: nope"),
        "{}",
        run.stderr
    );
    let run = db_cmd("keys", &path, &["alpha", "missing"]);
    assert!(
        run.failed_naming(&path).contains("alpha/missing"),
        "{}",
        run.stderr
    );
    let run = db_cmd("keys", &path, &["alpha", "a1"]);
    assert!(
        run.failed_naming(&path).contains("bucket not found"),
        "a key is not a bucket"
    );
    let run = db_cmd("get", &path, &["nope", "a1"]);
    assert!(
        run.failed_naming(&path).contains("bucket not found"),
        "{}",
        run.stderr
    );
    let run = db_cmd("get", &path, &["alpha", "zz"]);
    assert!(
        run.failed_naming(&path).contains("key not found"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("zz"), "{}", run.stderr);
    let run = db_cmd("get", &path, &["616c706861", "0g", "--parse-format", "hex"]);
    assert!(
        run.failed_naming(&path).contains("not hex"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    // Malformed command lines are clap usage errors: exit code 2, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let path = sample_db(dir.path());
    for args in [
        vec!["db"],
        vec!["db", "info"],
        vec!["db", "nosuch", "x"],
        vec!["db", "get", path.to_str().unwrap(), "alpha"],
        vec![
            "db",
            "keys",
            path.to_str().unwrap(),
            "alpha",
            "--format",
            "octal",
        ],
        vec!["db", "page", path.to_str().unwrap(), "minus-one"],
        vec!["db", "compact", path.to_str().unwrap()],
    ] {
        let run = oxutl(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    let out = dir.path().join("o.db");
    let run = db_cmd(
        "compact",
        &path,
        &["-o", out.to_str().unwrap(), "--fill-percent", "2"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!out.exists());
}

#[test]
fn compact_shrinks_and_preserves_contents() {
    // compact writes a smaller file with equal contents (sequences included) that passes check.
    let dir = tempfile::tempdir().unwrap();
    let path = mostly_deleted_db(dir.path());
    let out = dir.path().join("compacted.db");
    let summary = db_cmd("compact", &path, &["-o", out.to_str().unwrap()]).ok();
    let before = std::fs::metadata(&path).unwrap().len();
    let after = std::fs::metadata(&out).unwrap().len();
    assert!(after < before, "{after} < {before}");
    assert_eq!(summary.lines().count(), 1, "{summary}");
    assert!(summary.contains(&format!("{before} bytes")), "{summary}");
    assert!(summary.contains(&format!("{after} bytes")), "{summary}");
    let contents = dump(&path);
    assert_eq!(
        contents.len(),
        100 + 1 + 2 + 1,
        "sanity: keys, 'key', 'meta', 'nested', ci"
    );
    assert_eq!(dump(&out), contents);
    {
        let _guard = exclusive();
        let compacted = Db::open(&out, read_options()).unwrap();
        assert_eq!(compacted.page_size(), PAGE_SIZE);
        compacted.check().expect("engine check of the output");
    }
    assert_eq!(db_cmd("check", &out, &[]).ok(), "OK\n");
}

#[test]
fn compact_options_and_refusals() {
    // Fill percent and small transactions still copy everything; an existing output is refused.
    let dir = tempfile::tempdir().unwrap();
    let path = mostly_deleted_db(dir.path());
    let out = dir.path().join("packed.db");
    let args = [
        "-o",
        out.to_str().unwrap(),
        "--fill-percent",
        "1.0",
        "--tx-max-size",
        "4096",
    ];
    db_cmd("compact", &path, &args).ok();
    assert_eq!(dump(&out), dump(&path));
    assert_eq!(db_cmd("check", &out, &[]).ok(), "OK\n");
    let existing = std::fs::read(&out).unwrap();
    let again = db_cmd("compact", &path, &["-o", out.to_str().unwrap()]);
    assert!(
        again.failed_naming(&out).contains("already exists"),
        "{}",
        again.stderr
    );
    assert!(
        std::fs::read(&out).unwrap() == existing,
        "existing output was modified"
    );
}

#[test]
fn oxctl_is_not_built_yet() {
    // oxctl exists, says when the client CLI arrives, and exits 2.
    let output = run_child(&mut Command::new(env!("CARGO_BIN_EXE_oxctl")));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("issue 3"));
}
