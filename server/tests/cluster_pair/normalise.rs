//! Normalisation of what etcdctl prints about one cluster, so that it can be compared with what
//! it prints about another cluster of the same shape.
//!
//! Members are named by the rank of their ID: member IDs are hashes of the peer URLs and the
//! cluster token, so the member started first may have the smallest ID on one side and the
//! largest on the other, and etcd orders `member list` (and thus `endpoint ... --cluster`) by ID.
//! The member with the k-th smallest ID is `<mk>` — its ID in decimal, in hex, or as a JSON
//! number — and its name, client address and peer address are `<name-mk>`, `<client-mk>` and
//! `<peer-mk>`. The cluster ID is `<cluster>`. A member listed out of order, under another
//! member's name or address, or a `leader` naming the wrong member thus still differs.
//!
//! Blanked, because two independent clusters legitimately differ there: raft terms, raft
//! indexes and applied indexes, db sizes, and `took` durations (when not empty). The server
//! version `endpoint status` reports becomes `<version>` only when it is the version declared
//! for that side (etcd: 3.4.23; oxcd: `oxcd_server::config::ETCD_SERVER_VERSION`). Table borders
//! and padding are collapsed, since column widths follow the length of IDs. etcdctl's
//! `{"level":"warn",...}` retry lines are dropped from stderr. Everything else — revisions,
//! hashes, error text, exit codes — is kept as printed.

use std::collections::HashMap;

use oxcd_server::pb::etcdserverpb::MemberListResponse;
use prost::Message as _;
use serde_json::Value;

/// JSON keys blanked wherever they appear (raft bookkeeping, backend file size).
const JSON_BLANKED: &[&str] = &[
    "raft_term",
    "raftTerm",
    "raftIndex",
    "raftAppliedIndex",
    "dbSize",
    "dbSizeInUse",
];

/// `-w table` columns blanked (VERSION is handled on its own).
const TABLE_BLANKED: &[&str] = &[
    "DB SIZE",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "TOOK",
];

/// `-w fields` keys blanked (`Version` is handled on its own).
const FIELDS_BLANKED: &[&str] = &[
    "RaftTerm",
    "RaftIndex",
    "RaftAppliedIndex",
    "DBSize",
    "Took",
];

/// Columns of a simple `endpoint status` row: the version, and those blanked (db size, raft
/// term, raft index, raft applied index).
const STATUS_ROW_VERSION: usize = 2;
const STATUS_ROW_BLANKED: &[usize] = &[3, 6, 7, 8];

/// Whether etcdctl prints rows in an order of its own (completion order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    Ordered,
    /// Compared sorted: the elements of a JSON array; the rows of a table below its header;
    /// `-w fields` blocks; else every line but a final `Error: ...`.
    Unordered,
}

/// What one etcdctl run printed, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    /// The exit code (`None` if etcdctl died of a signal).
    pub code: Option<i32>,
}

/// One member as the normaliser sees it.
pub struct MemberFacts {
    pub id: u64,
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
}

/// Normalises etcdctl's output about one cluster.
pub struct Normaliser {
    /// JSON numbers shown as placeholders: member IDs and the cluster ID.
    numbers: HashMap<u64, String>,
    /// (text, placeholder), longest first, replaced only as whole words.
    tokens: Vec<(String, String)>,
    /// The server version this cluster's Status is declared to report.
    version: String,
}

impl Normaliser {
    /// A normaliser for the cluster `cluster_id` of `members` (in any order), whose Status
    /// reports `version`.
    pub fn new(cluster_id: u64, members: &[MemberFacts], version: &str) -> Normaliser {
        let mut ranked: Vec<&MemberFacts> = members.iter().collect();
        ranked.sort_by_key(|m| m.id);
        let mut numbers = HashMap::from([(cluster_id, "<cluster>".to_string())]);
        let mut tokens = vec![
            (cluster_id.to_string(), "<cluster>".to_string()),
            (format!("{cluster_id:x}"), "<cluster>".to_string()),
        ];
        for (k, m) in ranked.iter().enumerate() {
            numbers.insert(m.id, format!("<m{k}>"));
            tokens.push((m.id.to_string(), format!("<m{k}>")));
            tokens.push((format!("{:x}", m.id), format!("<m{k}>")));
            tokens.push((authority(&m.client_url), format!("<client-m{k}>")));
            tokens.push((authority(&m.peer_url), format!("<peer-m{k}>")));
            tokens.push((m.name.clone(), format!("<name-m{k}>")));
        }
        tokens.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        Normaliser {
            numbers,
            tokens,
            version: version.to_string(),
        }
    }

    /// Normalises one run; `member_list_protobuf` says stdout is an encoded MemberListResponse.
    pub fn run(
        &self,
        stdout: &[u8],
        stderr: &[u8],
        code: Option<i32>,
        member_list_protobuf: bool,
        rows: Rows,
    ) -> Run {
        let stdout = if member_list_protobuf {
            self.member_list_protobuf(stdout)
        } else {
            self.text(&String::from_utf8_lossy(stdout))
        };
        let stderr: String = String::from_utf8_lossy(stderr)
            .split_inclusive('\n')
            .filter(|line| !line.starts_with(r#"{"level":"warn""#))
            .collect();
        let mut run = Run {
            stdout,
            stderr: self.text(&stderr),
            code,
        };
        if rows == Rows::Unordered {
            run.stdout = sort_rows(&run.stdout);
            run.stderr = sort_rows(&run.stderr);
        }
        run
    }

    /// `member list -w protobuf` prints the encoded MemberListResponse: decoded, the raft term
    /// cleared, shown field by field; plus whether re-encoding it gives back the same bytes
    /// (field order, no unknown fields, defaults omitted).
    fn member_list_protobuf(&self, bytes: &[u8]) -> String {
        match MemberListResponse::decode(bytes) {
            Ok(mut response) => {
                let canonical = response.encode_to_vec() == bytes;
                if let Some(header) = response.header.as_mut() {
                    header.raft_term = 0;
                }
                let text = format!("{response:#?}\nre-encodes to the same bytes: {canonical}\n");
                self.replace_tokens(&text)
            }
            Err(e) => format!("undecodable MemberListResponse ({e}): {bytes:02x?}\n"),
        }
    }

    /// Normalises each line by its kind: JSON, table row or border, `-w fields` line, simple
    /// `endpoint status` row, simple `endpoint health` line, or plain text.
    pub fn text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut table_header: Option<Vec<String>> = None;
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            out.push_str(&self.line(body, &mut table_header));
            out.push_str(end);
        }
        out
    }

    fn line(&self, line: &str, table_header: &mut Option<Vec<String>>) -> String {
        if let Ok(mut value @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(line) {
            self.json(&mut value);
            return value.to_string();
        }
        if line.starts_with('+') && line.chars().all(|c| c == '+' || c == '-') {
            return "+".to_string();
        }
        if line.starts_with('|') {
            return self.table_row(line, table_header);
        }
        if let Some((key, value)) = fields_line(line) {
            let value = if FIELDS_BLANKED.contains(&key) && !value.is_empty() {
                format!("<{key}>")
            } else if key == "Version" && value == format!("{:?}", self.version) {
                "<version>".to_string()
            } else {
                self.replace_tokens(value)
            };
            return format!("\"{key}\" : {value}");
        }
        let columns: Vec<&str> = line.splitn(10, ", ").collect();
        if columns.len() == 10 && columns[0].starts_with("http") {
            return self.status_row(&columns);
        }
        const TOOK: &str = " took = ";
        if let Some(at) = line.find(TOOK) {
            return format!("{}<took>", self.replace_tokens(&line[..at + TOOK.len()]));
        }
        self.replace_tokens(line)
    }

    /// A simple `endpoint status` row: endpoint, ID, version, db size, is leader, is learner,
    /// raft term, raft index, raft applied index, errors.
    fn status_row(&self, columns: &[&str]) -> String {
        columns
            .iter()
            .enumerate()
            .map(|(c, &text)| {
                if STATUS_ROW_BLANKED.contains(&c) {
                    "<blanked>".to_string()
                } else if c == STATUS_ROW_VERSION && text == self.version {
                    "<version>".to_string()
                } else {
                    self.replace_tokens(text)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `| a | b |` with cells trimmed; the first row of a table is its header, which names the
    /// columns to blank in the rows below it.
    fn table_row(&self, line: &str, table_header: &mut Option<Vec<String>>) -> String {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_string())
            .collect();
        let cells = match table_header {
            None => {
                *table_header = Some(cells.clone());
                cells
            }
            Some(header) => cells
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let column = header.get(c).map_or("", String::as_str);
                    if TABLE_BLANKED.contains(&column) && !cell.is_empty() {
                        format!("<{column}>")
                    } else if column == "VERSION" && *cell == self.version {
                        "<version>".to_string()
                    } else {
                        self.replace_tokens(cell)
                    }
                })
                .collect(),
        };
        format!("| {} |", cells.join(" | "))
    }

    fn json(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                // `version` is the server's version only in a StatusResponse.
                let is_status = map.contains_key("raftIndex");
                for (key, field) in map.iter_mut() {
                    let key = key.as_str();
                    let blank = JSON_BLANKED.contains(&key)
                        || (key == "took" && field.as_str().is_some_and(|t| !t.is_empty()))
                        || (is_status
                            && key == "version"
                            && field.as_str() == Some(self.version.as_str()));
                    if blank {
                        *field = Value::String(format!("<{key}>"));
                    } else {
                        self.json(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Number(n) => {
                if let Some(label) = n.as_u64().and_then(|n| self.numbers.get(&n)) {
                    *value = Value::String(label.clone());
                }
            }
            Value::String(s) => *s = self.replace_tokens(s),
            _ => {}
        }
    }

    /// Replaces every token that stands as a whole word (see [`replace_words`]).
    fn replace_tokens(&self, text: &str) -> String {
        replace_words(text, &self.tokens)
    }
}

/// Replaces each `(text, placeholder)` where `text` stands as a whole word (not next to a letter
/// or digit), in one pass, so a placeholder is never rewritten by a later pair. Earlier pairs
/// win where several match at one place.
pub fn replace_words(text: &str, labels: &[(String, String)]) -> String {
    let bytes = text.as_bytes();
    let is_word = |at: usize| bytes.get(at).is_some_and(|b| b.is_ascii_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    'scan: while at < text.len() {
        if at == 0 || !is_word(at - 1) {
            for (from, to) in labels {
                let end = at + from.len();
                if text[at..].starts_with(from.as_str()) && !is_word(end) {
                    out.push_str(to);
                    at = end;
                    continue 'scan;
                }
            }
        }
        let c = text[at..].chars().next().expect("at is on a char boundary");
        out.push(c);
        at += c.len_utf8();
    }
    out
}

/// `"Key" : value` (etcdctl's `-w fields`) split into key and value.
fn fields_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('"')?;
    let (key, value) = rest.split_once("\" :")?;
    Some((key, value.strip_prefix(' ').unwrap_or(value)))
}

/// Puts rows printed in completion order into a canonical order (see [`Rows::Unordered`]).
fn sort_rows(text: &str) -> String {
    if let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(text.trim_end()) {
        items.sort_by_key(Value::to_string);
        return format!("{}\n", Value::Array(items));
    }
    if text.starts_with('"') {
        let mut blocks: Vec<&str> = text.split_inclusive("\n\n").collect();
        blocks.sort_unstable();
        return blocks.concat();
    }
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let header = lines.iter().position(|l| l.starts_with('|'));
    let movable: Vec<usize> = (0..lines.len())
        .filter(|&i| match header {
            Some(header) => lines[i].starts_with('|') && i != header,
            None => !lines[i].starts_with("Error:"),
        })
        .collect();
    let mut moved: Vec<&str> = movable.iter().map(|&i| lines[i]).collect();
    moved.sort_unstable();
    for (&i, line) in movable.iter().zip(moved) {
        lines[i] = line;
    }
    lines.concat()
}

/// `http://127.0.0.1:2379` -> `127.0.0.1:2379` (etcdctl prints both forms).
fn authority(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_string()
}
