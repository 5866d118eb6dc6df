//! Which "request timed out" a proposal that was not applied in time reports (etcd's
//! `parseProposeCtxErr`). Clients and operators read the difference:
//!
//! * the request started within two election timeouts before the current leader was elected:
//!   "…possibly due to previous leader failure" (the old leader took it down with it);
//! * this member leads but has not been connected to a quorum since the request started, or
//!   follows a leader it has not been connected to since then: "…possibly due to connection
//!   lost";
//! * otherwise plain "request timed out".
//!
//! Pure: the caller passes what its raft status and transport know.

use std::time::{Duration, Instant};

use super::error::ServerError;

/// What the classification looks at.
pub(super) struct TimeoutFacts<'a> {
    /// When the request started.
    pub(super) start: Instant,
    /// When this member last saw a new leader elected (`None`: never).
    pub(super) leader_elected_at: Option<Instant>,
    /// `--election-timeout`.
    pub(super) election_timeout: Duration,
    /// The leader now (0: none).
    pub(super) leader: u64,
    /// This member.
    pub(super) me: u64,
    /// The voting members.
    pub(super) voters: &'a [u64],
    /// Since when this member's transport has been connected to a peer (`None`: it is not).
    pub(super) connected_since: &'a dyn Fn(u64) -> Option<Instant>,
}

/// The error a proposal that timed out reports (module doc).
pub(super) fn classify(facts: &TimeoutFacts<'_>) -> ServerError {
    if let Some(elected) = facts.leader_elected_at {
        let previous_lost = elected.checked_sub(2 * facts.election_timeout);
        if previous_lost.is_none_or(|lost| facts.start > lost) && facts.start < elected {
            return ServerError::TimeoutDueToLeaderFail;
        }
    }
    let connected_since_start =
        |id: u64| (facts.connected_since)(id).is_some_and(|since| since <= facts.start);
    let lost = if facts.leader == 0 {
        false
    } else if facts.leader == facts.me {
        let connected = facts
            .voters
            .iter()
            .filter(|id| **id == facts.me || connected_since_start(**id))
            .count();
        connected < facts.voters.len() / 2 + 1
    } else {
        !connected_since_start(facts.leader)
    };
    if lost {
        ServerError::TimeoutDueToConnectionLost
    } else {
        ServerError::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        start: Instant,
        elected: Option<Instant>,
        leader: u64,
        connected_since: &'a dyn Fn(u64) -> Option<Instant>,
    ) -> TimeoutFacts<'a> {
        TimeoutFacts {
            start,
            leader_elected_at: elected,
            election_timeout: Duration::from_secs(1),
            leader,
            me: 1,
            voters: &[1, 2, 3],
            connected_since,
        }
    }

    #[test]
    fn timeouts_are_classified_as_etcd_classifies_them() {
        // Proves each of etcd's three timeout texts is chosen in the case etcd chooses it.
        let now = Instant::now() + Duration::from_secs(100);
        let s = Duration::from_secs(1);
        let text = |f: TimeoutFacts<'_>| classify(&f).to_string();
        let (plain, leader_fail, lost) = (
            "etcdserver: request timed out",
            "etcdserver: request timed out, possibly due to previous leader failure",
            "etcdserver: request timed out, possibly due to connection lost",
        );
        let long_connected = |_: u64| Some(now - 60 * s);
        // Started one second before a leader elected now: the old leader failed.
        assert_eq!(
            text(facts(now - s, Some(now), 2, &long_connected)),
            leader_fail
        );
        // Started long before that election: not the election's fault.
        assert_eq!(
            text(facts(now - 10 * s, Some(now), 2, &long_connected)),
            plain
        );
        // A follower not connected to its leader since the start.
        let fresh = |_: u64| Some(now);
        assert_eq!(text(facts(now - 10 * s, None, 2, &fresh)), lost);
        // A leader connected to one of its two peers: still a quorum.
        let one_peer = |id: u64| (id == 2).then_some(now - 60 * s);
        assert_eq!(text(facts(now - 10 * s, None, 1, &one_peer)), plain);
        // A leader connected to no peer: no quorum.
        let none = |_: u64| None;
        assert_eq!(text(facts(now - 10 * s, None, 1, &none)), lost);
        // No leader at all: plain timeout (etcd leaves that case open too).
        assert_eq!(text(facts(now - 10 * s, None, 0, &none)), plain);
    }
}
