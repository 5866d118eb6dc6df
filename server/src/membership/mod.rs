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
//! Pure except for [`load`] and [`save`], which read and write through the backend.

use oxcd_engine::backend::{BatchTx, ConcurrentReadTx};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::schema;

/// One member of the cluster (etcd's `membership.Member`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member ID.
    pub id: u64,
    /// URLs its peers reach it at, sorted.
    #[serde(rename = "peerURLs", default)]
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
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
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

fn first_u64(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The `members` bucket key of member `id` (Go's `types.ID.String()`).
pub fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// Writes `member`'s record.
pub fn save(tx: &mut BatchTx<'_>, member: &Member) -> Result<(), oxcd_engine::backend::Error> {
    tx.put(schema::MEMBERS, &member_key(member.id), &member.to_json())
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
}
