//! A membership change as a conf change entry carries it: its kind, the node it names, and its
//! context (a JSON document), decoded into a [`Change`] and encoded back byte for byte as etcd
//! 3.4.23 writes it. Pure: no I/O.
//!
//! The contexts etcd writes (captured from a real 3.4.23 cluster's WAL, IDs from that run):
//!
//! | change | kind | context |
//! |---|---|---|
//! | bootstrap member | AddNode | `{"id":11327898369037942443,"peerURLs":["http://127.0.0.1:41913"],"name":"n1"}` |
//! | MemberAdd | AddNode | `{"id":11783160243626168320,"peerURLs":["http://127.0.0.1:44411"]}` |
//! | MemberAdd `--learner` | AddLearnerNode | `{"id":896439231623958344,"peerURLs":["http://127.0.0.1:34679"],"isLearner":true}` |
//! | MemberPromote | AddNode | `{"id":896439231623958344,"peerURLs":null,"isPromote":true}` |
//! | MemberUpdate | UpdateNode | `{"id":…,"peerURLs":[the URLs as given, unsorted]}` |
//! | MemberRemove | RemoveNode | none (empty) |
//!
//! All are Go's encoding of `membership.Member` (fields `id`, `peerURLs`, `isLearner`,
//! `name`, `clientURLs`, the last three omitted when empty), except the promote context, which
//! is `ConfigChangeContext` (the member plus `isPromote`) built with only the ID set: its nil
//! URL list encodes as `null`. [`Member`]'s serde does the same (an empty URL list encodes as
//! `null`, and `null` decodes as empty), so one type covers every context.

use serde::{Deserialize, Serialize};

use super::{Member, MembershipError};
pub use crate::raft::convert::ConfChangeType;

/// A conf change context (etcd's `membership.ConfigChangeContext`): the member the change is
/// about, and whether an AddNode promotes an existing learner rather than adding a member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeContext {
    /// The member: all of it for an add, the ID and new peer URLs for an update, only the ID
    /// for a promote.
    #[serde(flatten)]
    pub member: Member,
    /// True for a promote. Encoded only when true: etcd encodes it only in promote contexts
    /// (adds and updates encode the bare member).
    #[serde(
        rename = "isPromote",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_promote: bool,
}

impl ConfChangeContext {
    /// The context as JSON, exactly as etcd 3.4.23 writes it (see the module doc).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a conf change context always serialises")
    }

    /// Parses a context; `Err` with serde's reason if it is not one.
    pub fn from_json(bytes: &[u8]) -> Result<ConfChangeContext, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// A decoded membership conf change: what [`super::Cluster::validate`] and
/// [`super::Cluster::apply`] take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its kind.
    pub kind: ConfChangeType,
    /// The member it names (the conf change's `NodeID`).
    pub node_id: u64,
    /// Its context; `None` only for [`ConfChangeType::ConfChangeRemoveNode`], whose context etcd
    /// neither writes nor reads. For the other kinds its member ID equals `node_id`.
    pub context: Option<ConfChangeContext>,
}

impl Change {
    /// Decodes a conf change. A RemoveNode's context is ignored (etcd never reads it). Any
    /// other kind needs a context that parses and names `node_id` (etcd panics otherwise; this
    /// returns [`MembershipError::BadContext`], so the entry can be rejected deterministically).
    pub fn decode(
        kind: ConfChangeType,
        node_id: u64,
        context: &[u8],
    ) -> Result<Change, MembershipError> {
        if kind == ConfChangeType::ConfChangeRemoveNode {
            return Ok(Change::remove(node_id));
        }
        let bad = |reason: String| MembershipError::BadContext { node_id, reason };
        let context = ConfChangeContext::from_json(context).map_err(bad)?;
        if context.member.id != node_id {
            return Err(bad(format!("it names member {:x}", context.member.id)));
        }
        Ok(Change {
            kind,
            node_id,
            context: Some(context),
        })
    }

    /// The conf change adding `member` (MemberAdd, or a bootstrap entry when `member` carries
    /// its name): AddLearnerNode for a learner, else AddNode.
    pub fn add(member: Member) -> Change {
        let kind = if member.is_learner {
            ConfChangeType::ConfChangeAddLearnerNode
        } else {
            ConfChangeType::ConfChangeAddNode
        };
        Change {
            kind,
            node_id: member.id,
            context: Some(ConfChangeContext {
                member,
                is_promote: false,
            }),
        }
    }

    /// The conf change promoting learner `id` (MemberPromote).
    pub fn promote(id: u64) -> Change {
        Change {
            kind: ConfChangeType::ConfChangeAddNode,
            node_id: id,
            context: Some(ConfChangeContext {
                member: Member {
                    id,
                    ..Member::default()
                },
                is_promote: true,
            }),
        }
    }

    /// The conf change removing member `id` (MemberRemove).
    pub fn remove(id: u64) -> Change {
        Change {
            kind: ConfChangeType::ConfChangeRemoveNode,
            node_id: id,
            context: None,
        }
    }

    /// The conf change giving member `id` the peer URLs `peer_urls`, kept in the order given
    /// (MemberUpdate; etcd neither sorts nor validates them).
    pub fn update(id: u64, peer_urls: Vec<String>) -> Change {
        Change {
            kind: ConfChangeType::ConfChangeUpdateNode,
            node_id: id,
            context: Some(ConfChangeContext {
                member: Member {
                    id,
                    peer_urls,
                    ..Member::default()
                },
                is_promote: false,
            }),
        }
    }

    /// The context bytes the conf change entry carries: empty for a RemoveNode.
    pub fn context_bytes(&self) -> Vec<u8> {
        self.context
            .as_ref()
            .map(ConfChangeContext::to_json)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    fn text(change: &Change) -> String {
        String::from_utf8(change.context_bytes()).unwrap()
    }

    #[test]
    fn contexts_are_the_captured_bytes() {
        // Proves each change encodes the context bytes captured from etcd 3.4.23's WAL.
        let mut bootstrap = Member::new("n1", &urls(&["http://127.0.0.1:41913"]), "tok6");
        assert_eq!(bootstrap.id, 11327898369037942443);
        assert_eq!(
            text(&Change::add(bootstrap.clone())),
            r#"{"id":11327898369037942443,"peerURLs":["http://127.0.0.1:41913"],"name":"n1"}"#
        );
        bootstrap.name.clear();
        bootstrap.id = 11783160243626168320;
        bootstrap.peer_urls = urls(&["http://127.0.0.1:44411"]);
        assert_eq!(
            text(&Change::add(bootstrap)),
            r#"{"id":11783160243626168320,"peerURLs":["http://127.0.0.1:44411"]}"#
        );
        let learner = Member {
            id: 896439231623958344,
            peer_urls: urls(&["http://127.0.0.1:34679"]),
            is_learner: true,
            ..Member::default()
        };
        let add_learner = Change::add(learner);
        assert_eq!(add_learner.kind, ConfChangeType::ConfChangeAddLearnerNode);
        assert_eq!(
            text(&add_learner),
            r#"{"id":896439231623958344,"peerURLs":["http://127.0.0.1:34679"],"isLearner":true}"#
        );
        let promote = Change::promote(896439231623958344);
        assert_eq!(promote.kind, ConfChangeType::ConfChangeAddNode);
        assert_eq!(
            text(&promote),
            r#"{"id":896439231623958344,"peerURLs":null,"isPromote":true}"#
        );
        let remove = Change::remove(0x1234);
        assert_eq!(
            (remove.kind, remove.context_bytes()),
            (ConfChangeType::ConfChangeRemoveNode, vec![])
        );
    }

    #[test]
    fn update_contexts_keep_the_given_order_as_go_does() {
        // Proves update contexts match Go's json.Marshal of the Member etcd builds (run offline).
        let update = Change::update(896439231623958344, urls(&["http://b:2", "http://a:1"]));
        assert_eq!(
            text(&update),
            r#"{"id":896439231623958344,"peerURLs":["http://b:2","http://a:1"]}"#
        );
        // A request without URLs leaves Go's slice nil.
        assert_eq!(
            text(&Change::update(5, vec![])),
            r#"{"id":5,"peerURLs":null}"#
        );
    }

    #[test]
    fn every_field_encodes_in_gos_order() {
        // Proves the field order and omitempty rules of Go's ConfigChangeContext (Go-produced).
        let context = ConfChangeContext {
            member: Member {
                id: 7,
                peer_urls: urls(&["http://a:1"]),
                is_learner: true,
                name: "x".to_string(),
                client_urls: urls(&["http://c:3"]),
            },
            is_promote: true,
        };
        assert_eq!(
            String::from_utf8(context.to_json()).unwrap(),
            r#"{"id":7,"peerURLs":["http://a:1"],"isLearner":true,"name":"x","clientURLs":["http://c:3"],"isPromote":true}"#
        );
    }

    #[test]
    fn captured_contexts_decode_and_re_encode_unchanged() {
        // Proves decoding then encoding is the identity on every captured context.
        let cases = [
            (
                ConfChangeType::ConfChangeAddNode,
                11327898369037942443,
                r#"{"id":11327898369037942443,"peerURLs":["http://127.0.0.1:41913"],"name":"n1"}"#,
            ),
            (
                ConfChangeType::ConfChangeAddLearnerNode,
                896439231623958344,
                r#"{"id":896439231623958344,"peerURLs":["http://127.0.0.1:34679"],"isLearner":true}"#,
            ),
            (
                ConfChangeType::ConfChangeAddNode,
                896439231623958344,
                r#"{"id":896439231623958344,"peerURLs":null,"isPromote":true}"#,
            ),
            (
                ConfChangeType::ConfChangeUpdateNode,
                9,
                r#"{"id":9,"peerURLs":["http://b:2","http://a:1"]}"#,
            ),
        ];
        for (kind, node_id, json) in cases {
            let change = Change::decode(kind, node_id, json.as_bytes()).unwrap();
            assert_eq!(text(&change), json);
        }
        let promote = Change::decode(
            ConfChangeType::ConfChangeAddNode,
            5,
            br#"{"id":5,"peerURLs":null,"isPromote":true}"#,
        )
        .unwrap();
        assert!(promote.context.as_ref().is_some_and(|c| c.is_promote));
        assert!(promote.context.unwrap().member.peer_urls.is_empty());
    }

    #[test]
    fn bad_contexts_are_errors_and_removes_ignore_theirs() {
        // Proves a context that does not parse or names another member is refused, not a panic.
        let garbage = Change::decode(ConfChangeType::ConfChangeAddNode, 0x12, b"{nope");
        assert!(
            matches!(
                garbage,
                Err(MembershipError::BadContext { node_id: 0x12, .. })
            ),
            "{garbage:?}"
        );
        let other = Change::decode(ConfChangeType::ConfChangeUpdateNode, 0x12, br#"{"id":19}"#);
        assert_eq!(
            other.unwrap_err().to_string(),
            "membership: bad conf change context for member 12: it names member 13"
        );
        let remove = Change::decode(ConfChangeType::ConfChangeRemoveNode, 0x12, b"junk").unwrap();
        assert_eq!(remove, Change::remove(0x12));
    }
}
