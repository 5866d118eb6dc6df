//! Tests of [`Cluster::validate`] and [`Cluster::apply`] against the captured etcd 3.4.23
//! cluster (IDs and URLs from the run in CLUSTERING-NOTES.md).

use std::collections::BTreeSet;

use super::*;
use crate::membership::ConfChangeContext;

const N1: u64 = 0x9d34c78c823bbeab;
const N3: u64 = 0xdabefa31dd7b13d6;
const N2: u64 = 0xed1c2487a8004c64;
const LEARNER: u64 = 0x0c70cabb4bab8f48;
const N1_PEER: &str = "http://127.0.0.1:41913";
const LEARNER_PEER: &str = "http://127.0.0.1:34679";

fn member(id: u64, name: &str, peer: &str) -> Member {
    Member {
        id,
        peer_urls: vec![peer.to_string()],
        name: name.to_string(),
        ..Member::default()
    }
}

/// n1, n2, n3 started; with `learner`, also an unstarted learner.
fn captured(learner: bool) -> Cluster {
    let mut members = vec![
        member(N1, "n1", N1_PEER),
        member(N3, "n3", "http://127.0.0.1:40147"),
        member(N2, "n2", "http://127.0.0.1:53333"),
    ];
    if learner {
        members.push(Member {
            is_learner: true,
            ..member(LEARNER, "", LEARNER_PEER)
        });
    }
    Cluster::new(0xbc82edb407370eb2, members)
}

fn add(id: u64, peer: &str, is_learner: bool) -> Change {
    Change::add(Member {
        is_learner,
        ..member(id, "", peer)
    })
}

#[test]
fn captured_error_table_verdicts() {
    // Proves validate gives the internal error behind each captured `member …` failure.
    let with_learner = captured(true);
    let cases: &[(&str, Change, MembershipError)] = &[
        (
            "member remove 1234",
            Change::remove(0x1234),
            MembershipError::IdNotFound,
        ),
        (
            "member update 1234",
            Change::update(0x1234, vec!["http://127.0.0.1:1".to_string()]),
            MembershipError::IdNotFound,
        ),
        (
            "member update <n3> --peer-urls=<n1's url>",
            Change::update(N3, vec![N1_PEER.to_string()]),
            MembershipError::PeerUrlExists,
        ),
        (
            "member promote <voter>",
            Change::promote(N2),
            MembershipError::MemberNotLearner,
        ),
        (
            "member promote 1234",
            Change::promote(0x1234),
            MembershipError::IdNotFound,
        ),
        (
            "member add --learner with 1 learner",
            add(0x77, "http://127.0.0.1:5", true),
            MembershipError::TooManyLearners,
        ),
    ];
    for (command, change, error) in cases {
        assert_eq!(
            with_learner.validate(change),
            Err(error.clone()),
            "{command}"
        );
    }
}

#[test]
fn b2_table_in_order() {
    // Proves each b2 row is checked, and an earlier row wins over a later one.
    let mut cluster = captured(true);
    cluster.removed.insert(0xa38631cfccd7d000);
    let removed = 0xa38631cfccd7d000;
    let cases: &[(&str, Change, Result<(), MembershipError>)] = &[
        (
            "removed, add",
            add(removed, "http://x:1", false),
            Err(MembershipError::IdRemoved),
        ),
        (
            "removed, promote",
            Change::promote(removed),
            Err(MembershipError::IdRemoved),
        ),
        (
            "removed, remove",
            Change::remove(removed),
            Err(MembershipError::IdRemoved),
        ),
        (
            "removed, update",
            Change::update(removed, vec![]),
            Err(MembershipError::IdRemoved),
        ),
        (
            "promote unknown",
            Change::promote(0x99),
            Err(MembershipError::IdNotFound),
        ),
        (
            "promote voter",
            Change::promote(N1),
            Err(MembershipError::MemberNotLearner),
        ),
        ("promote learner", Change::promote(LEARNER), Ok(())),
        // An existing ID wins over a used URL and the learner limit.
        (
            "add existing",
            add(N1, N1_PEER, true),
            Err(MembershipError::IdExists),
        ),
        // A used URL (even a learner's) wins over the learner limit.
        (
            "add used URL",
            add(0x99, LEARNER_PEER, true),
            Err(MembershipError::PeerUrlExists),
        ),
        (
            "add learner",
            add(0x99, "http://x:1", true),
            Err(MembershipError::TooManyLearners),
        ),
        ("add voter", add(0x99, "http://x:1", false), Ok(())),
        (
            "remove unknown",
            Change::remove(0x99),
            Err(MembershipError::IdNotFound),
        ),
        ("remove learner", Change::remove(LEARNER), Ok(())),
        ("remove voter", Change::remove(N2), Ok(())),
        (
            "update unknown",
            Change::update(0x99, vec![]),
            Err(MembershipError::IdNotFound),
        ),
        (
            "update to a learner's URL",
            Change::update(N1, vec![LEARNER_PEER.to_string()]),
            Err(MembershipError::PeerUrlExists),
        ),
        (
            "update to own URL",
            Change::update(N1, vec![N1_PEER.to_string()]),
            Ok(()),
        ),
    ];
    for (what, change, verdict) in cases {
        assert_eq!(&cluster.validate(change), verdict, "{what}");
    }
    // Without a learner, a learner add passes: the limit is 1.
    assert_eq!(
        captured(false).validate(&add(0x99, "http://x:1", true)),
        Ok(())
    );
}

#[test]
fn the_context_decides_learner_status_as_in_etcd() {
    // Proves an AddNode whose context says isLearner is counted as a learner add, as etcd does.
    let mut change = add(0x99, "http://x:1", true);
    change.kind = ConfChangeType::ConfChangeAddNode;
    assert_eq!(
        captured(true).validate(&change),
        Err(MembershipError::TooManyLearners)
    );
}

#[test]
fn missing_or_mismatched_contexts_are_refused() {
    // Proves a hand-built change without a usable context is refused, not applied or panicked.
    let cluster = captured(false);
    let mut no_context = Change::promote(N1);
    no_context.context = None;
    assert!(matches!(
        cluster.validate(&no_context),
        Err(MembershipError::BadContext { node_id: N1, .. })
    ));
    let mut mismatched = add(0x99, "http://x:1", false);
    mismatched.node_id = 0x98;
    assert!(matches!(
        cluster.validate(&mismatched),
        Err(MembershipError::BadContext { node_id: 0x98, .. })
    ));
}

#[test]
fn the_last_voter_cannot_be_removed() {
    // Proves removing the only voter is refused (raft would fail "removed all voters").
    let mut single = Cluster::new(1, [member(N1, "n1", N1_PEER)]);
    assert_eq!(
        single.validate(&Change::remove(N1)),
        Err(MembershipError::RemovesLastVoter)
    );
    single.members.insert(
        LEARNER,
        Member {
            is_learner: true,
            ..member(LEARNER, "", LEARNER_PEER)
        },
    );
    assert_eq!(
        single.validate(&Change::remove(N1)),
        Err(MembershipError::RemovesLastVoter)
    );
    assert_eq!(single.validate(&Change::remove(LEARNER)), Ok(()));
    assert_eq!(captured(false).validate(&Change::remove(N1)), Ok(()));
}

#[test]
fn after_the_update_quirk_raft_voters_decide_the_last_voter_rule() {
    // Proves a learner made a membership voter by an update cannot hide raft's last voter.
    let mut cluster = Cluster::new(1, [member(N1, "n1", N1_PEER)]);
    let learner = Member {
        is_learner: true,
        ..member(LEARNER, "", LEARNER_PEER)
    };
    for change in [
        Change::add(learner),
        Change::update(LEARNER, vec!["http://127.0.0.1:9".to_string()]),
    ] {
        cluster.validate(&change).unwrap();
        cluster.apply(&change);
    }
    assert_eq!(cluster.voter_ids(), BTreeSet::from([N1, LEARNER]));
    let remove = Change::remove(N1);
    assert_eq!(cluster.validate(&remove), Ok(()));
    assert_eq!(
        cluster.validate_with_raft_voters(&remove, &BTreeSet::from([N1])),
        Err(MembershipError::RemovesLastVoter)
    );
}

#[test]
fn apply_effects() {
    // Proves each kind changes the membership as etcd's apply does and reports it.
    let mut cluster = captured(false);
    let learner = Member {
        is_learner: true,
        ..member(LEARNER, "", LEARNER_PEER)
    };
    let steps = [
        (
            Change::add(learner.clone()),
            Applied::Added(learner.clone()),
        ),
        (
            Change::promote(LEARNER),
            Applied::Promoted(Member {
                is_learner: false,
                ..learner.clone()
            }),
        ),
        (
            Change::update(
                LEARNER,
                vec!["http://b:2".to_string(), "http://a:1".to_string()],
            ),
            Applied::Updated(Member {
                peer_urls: vec!["http://b:2".to_string(), "http://a:1".to_string()],
                is_learner: false,
                ..learner.clone()
            }),
        ),
        (
            Change::remove(N2),
            Applied::Removed(member(N2, "n2", "http://127.0.0.1:53333")),
        ),
    ];
    for (change, expected) in steps {
        cluster.validate(&change).unwrap();
        assert_eq!(cluster.apply(&change), expected);
        let id = expected.member().id;
        match expected {
            Applied::Removed(_) => assert_eq!(cluster.member(id), None),
            ref kept => assert_eq!(cluster.member(id), Some(kept.member())),
        }
    }
    assert_eq!(cluster.removed, BTreeSet::from([N2]));
    assert_eq!(
        cluster.validate(&Change::remove(N2)),
        Err(MembershipError::IdRemoved)
    );
    let readd = add(N2, "http://127.0.0.1:53333", false);
    assert_eq!(cluster.validate(&readd), Err(MembershipError::IdRemoved));
}

#[test]
fn updating_a_learner_makes_it_a_voter_in_the_membership() {
    // Proves the etcd 3.4.23 quirk: an update replaces isLearner with false.
    let mut cluster = captured(true);
    let change = Change::update(LEARNER, vec!["http://127.0.0.1:9".to_string()]);
    cluster.validate(&change).unwrap();
    let Applied::Updated(updated) = cluster.apply(&change) else {
        panic!("not an update");
    };
    assert!(!updated.is_learner);
    assert_eq!(cluster.learner_count(), 0);
    assert_eq!(
        cluster.validate(&Change::promote(LEARNER)),
        Err(MembershipError::MemberNotLearner)
    );
}

#[test]
fn bootstrap_adds_keep_the_name() {
    // Proves a bootstrap conf change (context with the name) records a started member.
    let mut cluster = Cluster::default();
    let n1 = Member::new("n1", &[N1_PEER.to_string()], "tok6");
    let change = Change::decode(
        ConfChangeType::ConfChangeAddNode,
        N1,
        br#"{"id":11327898369037942443,"peerURLs":["http://127.0.0.1:41913"],"name":"n1"}"#,
    )
    .unwrap();
    cluster.validate(&change).unwrap();
    assert_eq!(cluster.apply(&change), Applied::Added(n1.clone()));
    assert_eq!(cluster.member(N1), Some(&n1));
    let context = ConfChangeContext {
        member: n1,
        is_promote: false,
    };
    assert_eq!(change.context, Some(context));
}

#[test]
fn attributes_update_members_and_skip_removed_ones() {
    // Proves a publish updates a member, is skipped for a removed one and reported if unknown.
    let mut cluster = captured(false);
    cluster.removed.insert(0x42);
    let attributes = Attributes {
        name: "n9".to_string(),
        client_urls: vec!["http://127.0.0.1:2379".to_string()],
    };
    let AttributesUpdate::Updated(updated) = cluster.set_attributes(N2, attributes.clone()) else {
        panic!("not updated");
    };
    assert_eq!(
        (updated.name.as_str(), &updated.client_urls),
        ("n9", &attributes.client_urls)
    );
    assert_eq!(cluster.member(N2), Some(&updated));
    assert_eq!(
        cluster.set_attributes(0x42, attributes.clone()),
        AttributesUpdate::SkippedRemoved
    );
    assert_eq!(
        cluster.set_attributes(0x43, attributes),
        AttributesUpdate::UnknownMember
    );
}

#[test]
fn cluster_serialises_and_reads_back() {
    // Proves the cluster survives a JSON round trip (e.g. inside raft snapshot data).
    let mut cluster = captured(true);
    cluster.removed.insert(0xa38631cfccd7d000);
    let json = serde_json::to_vec(&cluster).unwrap();
    assert_eq!(serde_json::from_slice::<Cluster>(&json).unwrap(), cluster);
}
