//! Table-driven tests of the strict reconfiguration checks, reproducing the captured etcd
//! 3.4.23 verdicts (CLUSTERING-NOTES.md (c)) and etcd's formulas at their edges.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::membership::Member;

const N1: u64 = 0x9d34c78c823bbeab;
const N2: u64 = 0xed1c2487a8004c64;
const N3: u64 = 0xdabefa31dd7b13d6;
const N4: u64 = 0xa38631cfccd7d000;
const LEARNER: u64 = 0x0c70cabb4bab8f48;
const LONG: Duration = Duration::from_secs(60);

/// A voter (`started` = has a name) or a learner (always unstarted here).
enum Kind {
    Started,
    Unstarted,
    Learner,
}

fn cluster(members: &[(u64, Kind)]) -> Cluster {
    Cluster::new(
        1,
        members.iter().map(|(id, kind)| Member {
            id: *id,
            peer_urls: vec![format!("http://127.0.0.1:{}", id % 60000)],
            is_learner: matches!(kind, Kind::Learner),
            name: match kind {
                Kind::Started => format!("m{id:x}"),
                _ => String::new(),
            },
            client_urls: Vec::new(),
        }),
    )
}

fn check(
    members: &[(u64, Kind)],
    active: &[(u64, Duration)],
    run: impl Fn(&Cluster, ActiveFor<'_>) -> Result<(), MembershipError>,
) -> Result<(), MembershipError> {
    let active: BTreeMap<u64, Duration> = active.iter().copied().collect();
    let active_for = |id: u64| active.get(&id).copied();
    run(&cluster(members), &active_for)
}

use Kind::{Learner, Started, Unstarted};

type Verdict = Result<(), MembershipError>;

/// A case: what it reproduces, the members, who is active for how long, an input, the verdict.
type Case<'a, T> = (
    &'a str,
    &'a [(u64, Kind)],
    &'a [(u64, Duration)],
    T,
    Verdict,
);

#[test]
fn captured_add_verdicts() {
    // Proves may_add_member reproduces the captured `member add` failures, and passes otherwise.
    let with_unstarted_n4 = [(N1, Started), (N2, Started), (N3, Started), (N4, Unstarted)];
    let n2_n3_up = [(N2, LONG), (N3, LONG)];
    let cases: &[Case<'_, bool>] = &[
        (
            "member add n6 (n4 unstarted, never connected)",
            &with_unstarted_n4,
            &n2_n3_up,
            false,
            Err(MembershipError::Unhealthy),
        ),
        (
            "member add n6 --learner (n4 unstarted)",
            &with_unstarted_n4,
            &n2_n3_up,
            true,
            Err(MembershipError::Unhealthy),
        ),
        (
            "member add n7 with {n1,n2 started; n6 unstarted}",
            &[(N1, Started), (N2, Started), (N4, Unstarted)],
            &[(N2, LONG), (N4, LONG)],
            false,
            Err(MembershipError::NotEnoughStartedMembers),
        ),
        (
            "member add --learner with 1 learner (refused later, at apply)",
            &[
                (N1, Started),
                (N2, Started),
                (N3, Started),
                (LEARNER, Learner),
            ],
            &n2_n3_up,
            true,
            Ok(()),
        ),
        (
            "learner add is not held to the started quorum",
            &[(N1, Started), (N2, Started), (N4, Unstarted)],
            &[(N2, LONG), (N4, LONG)],
            true,
            Ok(()),
        ),
        (
            "one-member cluster grows",
            &[(N1, Started)],
            &[],
            false,
            Ok(()),
        ),
        (
            "two members, one unstarted",
            &[(N1, Started), (N2, Unstarted)],
            &[(N2, LONG)],
            false,
            Err(MembershipError::NotEnoughStartedMembers),
        ),
        (
            "learners need no connection",
            &[(N1, Started), (N2, Started), (LEARNER, Learner)],
            &[(N2, LONG)],
            false,
            Ok(()),
        ),
    ];
    for (what, members, active, is_learner, verdict) in cases {
        let got = check(members, active, |c, a| {
            may_add_member(c, *is_learner, N1, a)
        });
        assert_eq!(&got, verdict, "{what}");
    }
}

#[test]
fn health_interval_is_strictly_more_than_five_seconds() {
    // Proves a peer connected exactly 5 s is not yet healthy and one connected longer is.
    let members = [(N1, Started), (N2, Started), (N3, Started)];
    let just = HEALTH_INTERVAL + Duration::from_nanos(1);
    let add = |a: ActiveFor<'_>, c: &Cluster| may_add_member(c, false, N1, a);
    let at = |d: Duration| check(&members, &[(N2, LONG), (N3, d)], |c, a| add(a, c));
    assert_eq!(at(HEALTH_INTERVAL), Err(MembershipError::Unhealthy));
    assert_eq!(at(just), Ok(()));
    assert!(!is_connected_since_health_interval(None));
    assert!(!is_connected_since_health_interval(Some(Duration::ZERO)));
}

#[test]
fn captured_and_formula_remove_verdicts() {
    // Proves may_remove_member reproduces the captured failure and each step of etcd's order.
    let three = [(N1, Started), (N2, Started), (N3, Started)];
    let all_up = [(N2, LONG), (N3, LONG)];
    let cases: &[Case<'_, u64>] = &[
        (
            "member remove <n2> with {n1,n2; n6 unstarted}",
            &[(N1, Started), (N2, Started), (N4, Unstarted)],
            &[(N2, LONG)],
            N2,
            Err(MembershipError::NotEnoughStartedMembers),
        ),
        (
            "a learner is always removable",
            &[
                (N1, Started),
                (N2, Unstarted),
                (N4, Unstarted),
                (LEARNER, Learner),
            ],
            &[],
            LEARNER,
            Ok(()),
        ),
        (
            "a healthy three-member cluster",
            &three,
            &all_up,
            N2,
            Ok(()),
        ),
        ("removing self", &three, &all_up, N1, Ok(())),
        (
            "a target never connected here is down: allowed",
            &three,
            &[(N2, LONG)],
            N3,
            Ok(()),
        ),
        (
            "another voter down breaks the active quorum",
            &three,
            &[(N2, LONG)],
            N2,
            Err(MembershipError::Unhealthy),
        ),
        (
            "a target connected for less than 5 s still counts as up",
            &three,
            &[(N2, LONG), (N3, Duration::from_secs(1))],
            N3,
            Err(MembershipError::Unhealthy),
        ),
        (
            "an unknown ID passes (refused at apply)",
            &three,
            &all_up,
            0x1234,
            Ok(()),
        ),
        (
            "the last voter: no started quorum without it",
            &[(N1, Started)],
            &[],
            N1,
            Err(MembershipError::NotEnoughStartedMembers),
        ),
    ];
    for (what, members, active, target, verdict) in cases {
        let got = check(members, active, |c, a| may_remove_member(c, *target, N1, a));
        assert_eq!(&got, verdict, "{what}");
    }
}

#[test]
fn promote_counts_the_learner_as_started() {
    // Proves IsReadyToPromoteMember's arithmetic: the learner joins both counts.
    let cases: &[(&[(u64, Kind)], Verdict)] = &[
        (&[(N1, Started), (LEARNER, Learner)], Ok(())),
        (
            &[(N1, Started), (N2, Unstarted), (LEARNER, Learner)],
            Ok(()),
        ),
        (
            &[
                (N1, Started),
                (N2, Unstarted),
                (N3, Unstarted),
                (LEARNER, Learner),
            ],
            Err(MembershipError::NotEnoughStartedMembers),
        ),
    ];
    for (members, verdict) in cases {
        assert_eq!(&may_promote_member(&cluster(members), LEARNER), verdict);
    }
}

#[test]
fn learner_readiness_matches_gos_float64() {
    // Proves is_learner_ready equals Go's `float64(l) < float64(lead)*0.9` (vectors printed
    // by a Go program run offline), including where float64 rounding differs from exact math.
    let cases: &[(u64, u64, bool)] = &[
        (9, 10, true),
        (8, 10, false),
        (0, 0, true),
        (0, 1, false),
        (89, 100, false),
        (90, 100, true),
        (899, 1000, false),
        (900, 1000, true),
        (81, 90, true),
        (80, 90, false),
        (27, 30, true),
        (63, 70, true),
        (9007199254740993, 10008000000000000, false),
        (u64::MAX, u64::MAX, true),
        // Exactly, these two are below 90 %; in float64 they are not.
        (16602069666338596453, u64::MAX, true),
        (9007199254740992, 10007999171934436, true),
        (16602069666338595500, u64::MAX, false),
        (16602069666338594815, u64::MAX, false),
    ];
    for &(learner, leader, ready) in cases {
        assert_eq!(
            is_learner_ready(learner, leader),
            ready,
            "{learner} vs {leader}"
        );
    }
}

#[test]
fn learner_check_passes_unknown_ids() {
    // Proves a learner not in raft's progress passes (apply refuses it) and a lagging one fails.
    assert_eq!(check_learner_ready(None, 100), Ok(()));
    assert_eq!(check_learner_ready(Some(95), 100), Ok(()));
    // Captured: promoting a learner that never started (match 0).
    assert_eq!(
        check_learner_ready(Some(0), 12),
        Err(MembershipError::LearnerNotReady)
    );
}
