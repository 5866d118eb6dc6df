//! Cluster membership: the members a cluster has, their IDs and the cluster's ID, derived as
//! etcd derives them, and their records in the backend's `members` bucket.
//!
//! IDs (etcd's `membership.NewMember` and `RaftCluster.genID`):
//!
//! * a member's ID is the first 8 bytes, big-endian, of the SHA-1 of its sorted peer URLs
//!   concatenated, followed by the cluster token (`--initial-cluster-token`);
//! * the cluster's ID is the first 8 bytes, big-endian, of the SHA-1 of its members' IDs,
//!   sorted, each as 8 big-endian bytes.
//!
//! So a cluster bootstrapped from the same `--initial-cluster` and token has the same IDs under
//! etcd and oxcd. For `http://localhost:2380` and `etcd-cluster` (etcd's defaults) the member
//! ID is `8e9e05c52164694d` and the cluster ID `cdf818194e3a8c32`.
//!
//! Records: key = the member ID in lowercase hex without padding (Go's `types.ID.String()`),
//! value = the member as JSON (`{"id":…,"peerURLs":[…],"name":…,"clientURLs":[…]}`), as etcd
//! 3.4 writes them. The bootstrap conf change entries carry the same JSON as their context.
//! A member added at run time (MemberAdd) gets a time-based ID instead: see
//! [`added_member_id`].
//!
//! Removed members: key = the ID as above in the `members_removed` bucket, value = the 7
//! bytes `removed`. A removal deletes the `members` record and writes this one.
//!
//! Submodules: [`cluster`] (the membership as data, the apply-time verdict and effect of a
//! conf change), [`change`] (conf change contexts as etcd encodes them), [`strict`] (the
//! checks before proposing), [`error`] (why a change is refused, with etcd's texts).
//! Everything is pure except the bucket functions here ([`load`], [`save`], [`delete`],
//! [`save_removed`], [`load_removed`], [`save_applied`]), which read and write through the
//! backend.

use std::collections::BTreeSet;

use oxcd_engine::backend::{BatchTx, ConcurrentReadTx};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha1::{Digest, Sha1};

use crate::schema;

pub mod change;
pub mod cluster;
pub mod error;
pub mod strict;

pub use change::{Change, ConfChangeContext, ConfChangeType};
pub use cluster::{Applied, AttributesUpdate, Cluster, MAX_LEARNERS};
pub use error::MembershipError;

/// One member of the cluster (etcd's `membership.Member`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member ID.
    pub id: u64,
    /// URLs its peers reach it at: sorted when added, as given after an update. Empty encodes
    /// as `null` (Go's nil slice: a promote context, an update without URLs), and `null`
    /// decodes as empty.
    #[serde(
        rename = "peerURLs",
        default,
        serialize_with = "empty_as_null",
        deserialize_with = "null_as_empty"
    )]
    pub peer_urls: Vec<String>,
    /// True for a learner (non-voting) member.
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
    /// Its `--name`; empty until the member has published it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// URLs clients reach it at; empty until published.
    #[serde(
        rename = "clientURLs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub client_urls: Vec<String>,
}

/// Encodes an empty list as `null`, as Go encodes the nil slices etcd has where a list is empty.
fn empty_as_null<S: Serializer>(list: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    if list.is_empty() {
        serializer.serialize_none()
    } else {
        list.serialize(serializer)
    }
}

/// Decodes `null` as an empty list, as Go does.
fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

impl Member {
    /// A new member of a cluster named by `token` (etcd's `NewMember` without a time).
    pub fn new(name: &str, peer_urls: &[String], token: &str) -> Member {
        let mut peer_urls = peer_urls.to_vec();
        peer_urls.sort();
        Member {
            id: member_id(&peer_urls, token),
            peer_urls,
            is_learner: false,
            name: name.to_string(),
            client_urls: Vec::new(),
        }
    }

    /// The JSON etcd stores and puts in conf change contexts.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a member always serialises")
    }

    /// Parses a member record; `None` if it is not one.
    pub fn from_json(bytes: &[u8]) -> Option<Member> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A member's ID from its peer URLs and the cluster token (see the module doc).
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut sorted = peer_urls.to_vec();
    sorted.sort();
    let mut hasher = Sha1::new();
    for url in &sorted {
        hasher.update(url.as_bytes());
    }
    hasher.update(token.as_bytes());
    first_u64(&hasher.finalize())
}

/// The cluster's ID from its members' IDs (see the module doc).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut sorted = member_ids.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for id in sorted {
        hasher.update(id.to_be_bytes());
    }
    first_u64(&hasher.finalize())
}

/// The ID etcd gives a member added at run time (`membership.NewMember` as MemberAdd calls it:
/// no cluster token, and the time): the first 8 bytes, big-endian, of the SHA-1 of the sorted
/// peer URLs concatenated, followed by `unix_secs` in decimal. The URLs must be as etcd
/// normalises them (`types.NewURLs`). Learners get their ID the same way.
pub fn added_member_id(peer_urls: &[String], unix_secs: u64) -> u64 {
    member_id(peer_urls, &unix_secs.to_string())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What a member publishes about itself (etcd's `membership.Attributes`), as JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// Its `--name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its `--advertise-client-urls`.
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

/// The v2 store path a member publishes its attributes to (etcd's `MemberAttributesStorePath`).
pub fn attributes_path(id: u64) -> String {
    format!("/0/members/{id:x}/attributes")
}

/// The member ID an attributes path names, if `path` is one.
pub fn parse_attributes_path(path: &str) -> Option<u64> {
    let hex = path
        .strip_prefix("/0/members/")?
        .strip_suffix("/attributes")?;
    u64::from_str_radix(hex, 16).ok()
}

/// The attributes JSON a member publishes (`{"name":…,"clientURLs":[…]}`, empty fields
/// omitted, as Go encodes them).
pub fn attributes_json(name: &str, client_urls: &[String]) -> String {
    let attributes = Attributes {
        name: name.to_string(),
        client_urls: client_urls.to_vec(),
    };
    serde_json::to_string(&attributes).expect("attributes always serialise")
}

/// The `members` bucket key of member `id` (Go's `types.ID.String()`).
pub fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// Writes `member`'s record.
pub fn save(tx: &mut BatchTx<'_>, member: &Member) -> Result<(), oxcd_engine::backend::Error> {
    tx.put(schema::MEMBERS, &member_key(member.id), &member.to_json())
}

/// Deletes member `id`'s record (a removal also calls [`save_removed`]).
pub fn delete(tx: &mut BatchTx<'_>, id: u64) -> Result<(), oxcd_engine::backend::Error> {
    tx.delete(schema::MEMBERS, &member_key(id))
}

/// The value of every `members_removed` record.
pub const REMOVED_VALUE: &[u8] = b"removed";

/// Records that member `id` was removed.
pub fn save_removed(tx: &mut BatchTx<'_>, id: u64) -> Result<(), oxcd_engine::backend::Error> {
    tx.put(schema::MEMBERS_REMOVED, &member_key(id), REMOVED_VALUE)
}

/// Every removed member ID recorded in the backend. Keys that are not hex IDs are skipped.
pub fn load_removed(tx: &ConcurrentReadTx) -> Result<BTreeSet<u64>, oxcd_engine::backend::Error> {
    let mut removed = BTreeSet::new();
    tx.for_each::<oxcd_engine::backend::Error>(schema::MEMBERS_REMOVED, |key, _value| {
        if let Some(id) = std::str::from_utf8(key)
            .ok()
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        {
            removed.insert(id);
        }
        Ok(())
    })?;
    Ok(removed)
}

/// Writes what [`Cluster::apply`] changed, as etcd does: the member's record for an add,
/// promote or update; for a removal, deletes its record and records the removal.
pub fn save_applied(
    tx: &mut BatchTx<'_>,
    applied: &Applied,
) -> Result<(), oxcd_engine::backend::Error> {
    match applied {
        Applied::Added(member) | Applied::Promoted(member) | Applied::Updated(member) => {
            save(tx, member)
        }
        Applied::Removed(member) => {
            delete(tx, member.id)?;
            save_removed(tx, member.id)
        }
    }
}

/// The membership the buckets record: every member and every removed ID.
pub fn load_cluster(
    cluster_id: u64,
    tx: &ConcurrentReadTx,
) -> Result<Cluster, oxcd_engine::backend::Error> {
    Ok(Cluster {
        removed: load_removed(tx)?,
        ..Cluster::new(cluster_id, load(tx)?)
    })
}

/// Every member recorded in the backend, by ID. Records that do not parse are skipped.
pub fn load(tx: &ConcurrentReadTx) -> Result<Vec<Member>, oxcd_engine::backend::Error> {
    let mut members = Vec::new();
    tx.for_each::<oxcd_engine::backend::Error>(schema::MEMBERS, |_key, value| {
        if let Some(member) = Member::from_json(value) {
            members.push(member);
        }
        Ok(())
    })?;
    members.sort_by_key(|m| m.id);
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcds_for_its_defaults() {
        // Proves the derivation gives the IDs real etcd 3.4 reports for its default flags.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn attributes_are_published_as_etcd_3_4_publishes_them() {
        // Proves the publish path and JSON are those captured from etcd 3.4.23's WAL.
        let id = 0xdabefa31dd7b13d6;
        assert_eq!(
            attributes_path(id),
            "/0/members/dabefa31dd7b13d6/attributes"
        );
        assert_eq!(parse_attributes_path(&attributes_path(id)), Some(id));
        assert_eq!(parse_attributes_path("/0/version"), None);
        let urls = ["http://127.0.0.1:59717".to_string()];
        assert_eq!(
            attributes_json("n3", &urls),
            r#"{"name":"n3","clientURLs":["http://127.0.0.1:59717"]}"#
        );
        assert_eq!(attributes_json("", &[]), "{}");
    }

    #[test]
    fn json_round_trips_and_omits_empty_attributes() {
        // Proves records are etcd's JSON shape and parse back.
        let mut m = Member::new("a", &["http://127.0.0.1:2380".to_string()], "t");
        let bare = String::from_utf8(
            Member {
                name: String::new(),
                ..m.clone()
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            bare,
            format!(
                "{{\"id\":{},\"peerURLs\":[\"http://127.0.0.1:2380\"]}}",
                m.id
            )
        );
        m.client_urls = vec!["http://127.0.0.1:2379".to_string()];
        assert_eq!(Member::from_json(&m.to_json()), Some(m));
    }

    #[test]
    fn added_member_ids_match_go() {
        // Proves added_member_id equals etcd 3.4.23's NewMember("", urls, "", &now) (vectors
        // printed by a Go program built against etcd's sources with go-build-offline.sh).
        let urls = |list: &[&str]| list.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                urls(&["http://127.0.0.1:44411"]),
                1_700_000_000,
                0x81c3990e00bde2d0,
            ),
            (urls(&["http://127.0.0.1:2380"]), 0, 0xb1f701c16bc51060),
            (
                urls(&["http://10.0.0.2:2380", "http://10.0.0.1:2380"]),
                1_234_567_890,
                0xd5ee80554bc7dc46,
            ),
        ];
        for (peer_urls, unix_secs, id) in cases {
            assert_eq!(added_member_id(&peer_urls, unix_secs), id, "{peer_urls:?}");
        }
    }

    #[test]
    fn bootstrap_ids_match_the_captured_cluster() {
        // Proves the captured n1 (token tok6) gets the ID real etcd gave it, 9d34c78c823bbeab.
        let n1 = Member::new("n1", &["http://127.0.0.1:41913".to_string()], "tok6");
        assert_eq!(n1.id, 0x9d34c78c823bbeab);
    }

    #[test]
    fn captured_bucket_record_round_trips_byte_for_byte() {
        // Proves the members record captured from etcd 3.4.23's db decodes and re-encodes as is.
        let captured = r#"{"id":11327898369037942443,"peerURLs":["http://127.0.0.1:41913"],"name":"n1","clientURLs":["http://127.0.0.1:59717"]}"#;
        let member = Member::from_json(captured.as_bytes()).unwrap();
        assert_eq!(member.id, 0x9d34c78c823bbeab);
        assert_eq!(String::from_utf8(member.to_json()).unwrap(), captured);
        assert_eq!(member_key(member.id), b"9d34c78c823bbeab");
    }

    #[test]
    fn null_lists_are_read_and_empty_peer_urls_written_as_go_does() {
        // Proves Go's nil-slice JSON (null) decodes as empty and an empty URL list encodes so.
        let member = Member::from_json(br#"{"id":5,"peerURLs":null,"clientURLs":null}"#).unwrap();
        assert_eq!(
            member,
            Member {
                id: 5,
                ..Member::default()
            }
        );
        assert_eq!(member.to_json(), br#"{"id":5,"peerURLs":null}"#);
        assert_eq!(Member::from_json(br#"{"id":6}"#).unwrap().id, 6);
        assert_eq!(Member::from_json(br#"{"peerURLs":[]}"#), None);
    }

    fn open_backend(dir: &std::path::Path) -> oxcd_engine::backend::Backend {
        let mut cfg = oxcd_engine::backend::BackendConfig::new(dir.join("db"));
        cfg.batch_interval = std::time::Duration::ZERO;
        cfg.options.no_sync = true;
        cfg.strict = true;
        let backend = oxcd_engine::backend::Backend::open(cfg).unwrap();
        let mut tx = backend.batch_tx().unwrap();
        tx.create_bucket(schema::MEMBERS).unwrap();
        tx.create_bucket(schema::MEMBERS_REMOVED).unwrap();
        tx.release().unwrap();
        backend
    }

    #[test]
    fn removals_are_recorded_as_etcd_records_them() {
        // Proves a removal deletes members/<id> and writes members_removed/<id> = "removed".
        let dir = tempfile::tempdir().unwrap();
        let backend = open_backend(dir.path());
        let n1 = Member::new("n1", &["http://127.0.0.1:41913".to_string()], "tok6");
        let n4 = Member {
            id: 0xa38631cfccd7d000,
            peer_urls: vec!["http://127.0.0.1:44411".to_string()],
            ..Member::default()
        };
        let mut cluster = Cluster::new(0xbc82edb407370eb2, [n1.clone()]);
        let mut tx = backend.batch_tx().unwrap();
        for change in [Change::add(n4.clone()), Change::remove(n4.id)] {
            cluster.validate(&change).unwrap();
            save_applied(&mut tx, &cluster.apply(&change)).unwrap();
        }
        save(&mut tx, &n1).unwrap();
        tx.release().unwrap();
        backend.force_commit().unwrap();

        let read = backend.read_tx().unwrap();
        assert_eq!(load(&read).unwrap(), vec![n1.clone()]);
        assert_eq!(
            read.get(schema::MEMBERS_REMOVED, b"a38631cfccd7d000")
                .unwrap(),
            Some(&b"removed"[..])
        );
        assert_eq!(load_removed(&read).unwrap(), BTreeSet::from([n4.id]));
        assert_eq!(cluster.removed, BTreeSet::from([n4.id]));

        let mut tx = backend.batch_tx().unwrap();
        delete(&mut tx, n1.id).unwrap();
        tx.put(schema::MEMBERS_REMOVED, b"not-hex", REMOVED_VALUE)
            .unwrap();
        tx.release().unwrap();
        let read = backend.read_tx().unwrap();
        assert_eq!(load(&read).unwrap(), vec![]);
        assert_eq!(load_removed(&read).unwrap(), BTreeSet::from([n4.id]));
    }
}
