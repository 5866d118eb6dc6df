//! Loopback tests of Rpc connections: a real [`Transport`] listener on 127.0.0.1 answering
//! [`fetch_members`] and [`promote_member`], and raw fake peers that answer badly or not at
//! all. Waits are bounded by deadlines; no test asserts a timing.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::membership::Member;

use super::frame::{read_frame, write_frame};
use super::hello::{encode_reply, read_hello, Hello, Kind, ReadHello, Reply, Status};
use super::layout::*;
use super::rpc::encode_answer;
use super::tests::{closed_without_data, raw_dial, Node, DEADLINE};
use super::{fetch_members, promote_member, RpcAnswer, RpcCode, RpcFailure};
use super::{RpcHandler, RpcRequest, TransportError};

/// The cluster ID every serving node here has.
const CLUSTER: u64 = 0xc1;
/// Long enough never to fire against a live local peer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// For peers that never answer: the error must come from this bound.
const SHORT: Duration = Duration::from_millis(300);

fn member(id: u64, learner: bool) -> Member {
    Member {
        id,
        peer_urls: vec![format!("http://127.0.0.1:{}", 40000 + id)],
        is_learner: learner,
        name: format!("n{id}"),
        client_urls: vec![format!("http://127.0.0.1:{}", 50000 + id)],
    }
}

fn members(learner: bool) -> Vec<Member> {
    vec![member(1, false), member(2, learner)]
}

/// Promote of 2 succeeds; 3, 4, 5 and anything else fail with each code in turn.
fn failure_for(id: u64) -> RpcFailure {
    match id {
        3 => RpcFailure::new(RpcCode::NotFound, "membership: ID not found"),
        4 => RpcFailure::new(
            RpcCode::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
        5 => RpcFailure::new(RpcCode::Timeout, "etcdserver: request timed out"),
        _ => RpcFailure::new(RpcCode::Other, "etcdserver: unhealthy cluster"),
    }
}

/// A node of [`CLUSTER`] answering as [`failure_for`] says; each call reports the thread it
/// ran on (its name, and whether it is inside a tokio runtime) to `threads`.
fn serving(id: u64, threads: Sender<(Option<String>, bool)>) -> Node {
    let node = Node::start(id, CLUSTER);
    let threads = Mutex::new(threads);
    let handler: RpcHandler = Arc::new(move |request| {
        let current = std::thread::current();
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        let _ = super::lock(&threads).send((current.name().map(str::to_string), in_runtime));
        match request {
            RpcRequest::Members => Ok(RpcAnswer::Members {
                cluster_id: CLUSTER,
                members: members(true),
            }),
            RpcRequest::PromoteMember(2) => Ok(RpcAnswer::Members {
                cluster_id: CLUSTER,
                members: members(false),
            }),
            RpcRequest::PromoteMember(other) => Err(failure_for(other)),
        }
    });
    node.transport.set_rpc_handler(handler);
    node
}

/// A URL nothing listens on.
fn dead_url() -> String {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", probe.local_addr().expect("addr"))
}

#[test]
fn members_are_fetched_with_unknown_or_matching_cluster_id() {
    // Proves a joining member (IDs unknown) and a member of the cluster both get the cluster
    // ID and members, and the handler runs on the connection's std thread, outside tokio.
    let (tx, threads) = channel();
    let node = serving(1, tx);
    for (from, cluster_id) in [(0, 0), (9, CLUSTER), (0, CLUSTER), (9, 0)] {
        let got = fetch_members(&node.url(), from, cluster_id, TIMEOUT).expect("members");
        assert_eq!(got, (CLUSTER, members(true)));
    }
    let seen: Vec<_> = threads.try_iter().collect();
    assert_eq!(seen.len(), 4);
    for (name, in_runtime) in seen {
        assert_eq!(name.as_deref(), Some("oxcd-peer-read"));
        assert!(!in_runtime, "the handler ran inside a tokio runtime");
    }
}

#[test]
fn a_mismatching_cluster_id_or_removed_sender_is_refused() {
    // Proves a non-zero foreign cluster ID is refused with the peer's cluster ID, a removed
    // sender is refused, and neither reaches the handler.
    let (tx, threads) = channel();
    let node = serving(1, tx);
    let err = fetch_members(&node.url(), 0, 0xbad, TIMEOUT).expect_err("foreign cluster");
    assert!(
        matches!(
            err,
            TransportError::Refused {
                status: Status::ClusterIdMismatch,
                peer_cluster_id: CLUSTER
            }
        ),
        "{err}"
    );
    let err = promote_member(&node.url(), 9, 0xbad, 2, TIMEOUT).expect_err("foreign cluster");
    assert!(
        matches!(
            err,
            TransportError::Refused {
                status: Status::ClusterIdMismatch,
                ..
            }
        ),
        "{err}"
    );
    node.transport.mark_removed(9);
    let err = fetch_members(&node.url(), 9, CLUSTER, TIMEOUT).expect_err("removed");
    assert!(
        matches!(
            err,
            TransportError::Refused {
                status: Status::SenderRemoved,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(threads.try_iter().count(), 0);
    assert!(fetch_members(&node.url(), 0, CLUSTER, TIMEOUT).is_ok());
}

#[test]
fn promote_answers_members_or_each_failure_code() {
    // Proves a promote returns the membership after it, and every failure code and message
    // comes back as TransportError::PeerFailed exactly as the handler answered.
    let (tx, _threads) = channel();
    let node = serving(1, tx);
    let after = promote_member(&node.url(), 9, CLUSTER, 2, TIMEOUT).expect("promoted");
    assert_eq!(after, members(false));
    for id in [3, 4, 5, 6] {
        match promote_member(&node.url(), 0, 0, id, TIMEOUT) {
            Err(TransportError::PeerFailed(failure)) => assert_eq!(failure, failure_for(id)),
            other => panic!("promote {id}: {other:?}"),
        }
    }
}

#[test]
fn without_a_handler_requests_are_answered_not_ready() {
    // Proves a transport with no handler answers Other "not ready" to both requests.
    let node = Node::start(1, CLUSTER);
    let not_ready = RpcFailure::new(RpcCode::Other, "not ready");
    match fetch_members(&node.url(), 0, 0, TIMEOUT) {
        Err(TransportError::PeerFailed(failure)) => assert_eq!(failure, not_ready),
        other => panic!("{other:?}"),
    }
    match promote_member(&node.url(), 0, 0, 2, TIMEOUT) {
        Err(TransportError::PeerFailed(failure)) => assert_eq!(failure, not_ready),
        other => panic!("{other:?}"),
    }
}

/// A fake peer on its own thread: serves one connection, answering the hello with `status`,
/// then (if OK) reading the request frame and writing `answer` raw before closing.
fn fake_peer(status: u8, answer: Vec<u8>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let thread = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("the client dials");
        conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let Ok(ReadHello::Hello(hello)) = read_hello(&mut &conn) else {
            panic!("a version-1 hello expected");
        };
        assert_eq!((hello.kind, hello.to_id), (Kind::Rpc, UNKNOWN_ID));
        let mut reply = encode_reply(Reply {
            status: Status::Ok,
            cluster_id: CLUSTER,
        });
        reply[REPLY_STATUS_OFFSET] = status;
        (&conn).write_all(&reply).expect("reply");
        if status == 0 {
            read_frame(&mut &conn).expect("the request frame");
            let _ = (&conn).write_all(&answer);
        }
    });
    (url, thread)
}

fn frame(frame_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, frame_type, payload).expect("fits");
    out
}

#[test]
fn broken_answers_are_errors_not_panics() {
    // Proves truncated, corrupt, oversize, foreign and undecodable answers, an unknown hello
    // status and a close without an answer each yield an error naming the problem.
    let (frame_type, payload) = encode_answer(&Ok(RpcAnswer::Members {
        cluster_id: CLUSTER,
        members: members(true),
    }));
    let good = frame(frame_type, &payload);
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().expect("crc") ^= 0x01;
    let mut bad_head = good.clone();
    bad_head[..4].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut oversize = u32::MAX.to_be_bytes().to_vec();
    oversize.push(FRAME_RPC_MEMBERS_ANSWER);
    let head_crc = crc32c::crc32c(&oversize);
    oversize.extend_from_slice(&head_crc.to_be_bytes());
    let bad_json = frame(FRAME_RPC_MEMBERS_ANSWER, b"\0\0\0\0\0\0\0\x01[{\"id\":");
    let cases: Vec<(u8, Vec<u8>, &str)> = vec![
        (0, good[..good.len() / 2].to_vec(), "fill whole buffer"),
        (0, bad_crc, "checksum"),
        (0, bad_head, "frame head checksum"),
        (0, oversize, "frame length"),
        (0, bad_json, "JSON"),
        (0, frame(FRAME_RPC_FAILURE, &[0x7f]), "failure code"),
        (0, frame(FRAME_KEEPALIVE, &[]), "not an Rpc answer"),
        (0, Vec::new(), "fill whole buffer"),
        (0x42, Vec::new(), "unknown reply status"),
    ];
    for (status, answer, what) in cases {
        let (url, peer) = fake_peer(status, answer);
        let err = fetch_members(&[url], 0, 0, TIMEOUT).expect_err(what);
        assert!(
            err.to_string().contains(what),
            "{err} should mention {what}"
        );
        peer.join().expect("fake peer");
    }
    let (url, peer) = fake_peer(0, good[..good.len() - 1].to_vec());
    let err = promote_member(&[url], 0, 0, 2, TIMEOUT).expect_err("truncated");
    assert!(!matches!(err, TransportError::PeerFailed(_)), "{err}");
    peer.join().expect("fake peer");
}

#[test]
fn the_receiver_closes_a_broken_request_unanswered() {
    // Proves an Rpc connection whose request is of another type, the wrong size or corrupt is
    // closed without an answer, while the next well-formed one is answered.
    let (tx, threads) = channel();
    let node = serving(1, tx);
    let hello = Hello {
        kind: Kind::Rpc,
        cluster_id: 0,
        from_id: 0,
        to_id: 0,
        from_urls: String::new(),
    };
    let mut corrupt = frame(FRAME_RPC_MEMBERS, &[]);
    corrupt[4] = FRAME_RPC_PROMOTE;
    for request in [
        frame(FRAME_KEEPALIVE, &[]),
        frame(FRAME_RPC_PROMOTE, &[0; 4]),
        frame(FRAME_RPC_MEMBERS_ANSWER, &[0; 8]),
        corrupt,
    ] {
        let conn = raw_dial(&node, &hello);
        let reply = super::hello::read_reply(&mut &conn).expect("reply");
        assert_eq!(reply.status, Status::Ok);
        (&conn).write_all(&request).expect("request");
        assert!(closed_without_data(&conn));
    }
    let wrong_to = raw_dial(&node, &Hello { to_id: 5, ..hello });
    let reply = super::hello::read_reply(&mut &wrong_to).expect("reply");
    assert_eq!(reply.status, Status::ToMismatch);
    assert_eq!(threads.try_iter().count(), 0);
    assert!(fetch_members(&node.url(), 0, 0, TIMEOUT).is_ok());
}

#[test]
fn unreachable_and_silent_peers_fail_within_the_timeout() {
    // Proves a dead port fails, a peer that accepts but never answers fails with TimedOut
    // from the caller's bound, a bad URL is refused, and no URL at all is an error.
    let err = fetch_members(&[dead_url()], 0, 0, SHORT).expect_err("dead");
    assert!(matches!(err, TransportError::Io(_)), "{err}");

    // The kernel completes connections into the backlog; nothing ever reads them.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_urls = vec![format!("http://{}", silent.local_addr().expect("addr"))];
    let err = fetch_members(&silent_urls, 0, 0, SHORT).expect_err("silent");
    match &err {
        TransportError::Io(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        other => panic!("{other}"),
    }
    let err = promote_member(&silent_urls, 0, 0, 2, SHORT).expect_err("silent");
    assert!(
        matches!(&err, TransportError::Io(e)
            if e.kind() == std::io::ErrorKind::TimedOut),
        "{err}"
    );

    let err = fetch_members(&["https://127.0.0.1:1".into()], 0, 0, SHORT).expect_err("https");
    assert!(matches!(err, TransportError::BadUrl { .. }), "{err}");
    assert!(matches!(
        fetch_members(&[], 0, 0, SHORT),
        Err(TransportError::NoPeerUrls)
    ));
    assert!(matches!(
        promote_member(&[], 0, 0, 2, SHORT),
        Err(TransportError::NoPeerUrls)
    ));
}

#[test]
fn later_urls_are_tried_when_earlier_ones_fail() {
    // Proves dead, silent, malformed and not-ready URLs are skipped by a members fetch, a
    // promote skips unreachable URLs but stops at the first answer, even a failure.
    let (tx, _threads) = channel();
    let live = serving(1, tx);
    let not_ready = Node::start(2, CLUSTER);
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut urls = vec![
        dead_url(),
        format!("http://{}", silent.local_addr().expect("addr")),
        "127.0.0.1:2380".to_string(),
    ];
    urls.extend(not_ready.url());
    urls.extend(live.url());
    // Long enough for the live peer on a loaded machine; the silent one uses all of it.
    let per_url = Duration::from_secs(2);
    let got = fetch_members(&urls, 0, 0, per_url).expect("the live URL answers");
    assert_eq!(got, (CLUSTER, members(true)));

    let mut promote_urls = vec![dead_url()];
    promote_urls.extend(live.url());
    let after = promote_member(&promote_urls, 0, 0, 2, TIMEOUT).expect("promoted");
    assert_eq!(after, members(false));

    let mut first_answers = not_ready.url();
    first_answers.extend(live.url());
    match promote_member(&first_answers, 0, 0, 2, TIMEOUT) {
        Err(TransportError::PeerFailed(failure)) => assert_eq!(failure.code, RpcCode::Other),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_transport_does_not_answer_a_running_handler() {
    // Proves a request whose handler is still running when the transport stops gets no
    // answer: the client sees an error, not the handler's late result.
    let node = Node::start(1, CLUSTER);
    let (entered_tx, entered) = channel();
    let (release, released) = channel::<()>();
    let (entered_tx, released) = (Mutex::new(entered_tx), Mutex::new(released));
    let handler: RpcHandler = Arc::new(move |_| {
        let _ = super::lock(&entered_tx).send(());
        let _ = super::lock(&released).recv_timeout(DEADLINE);
        Ok(RpcAnswer::Members {
            cluster_id: CLUSTER,
            members: members(true),
        })
    });
    node.transport.set_rpc_handler(handler);
    let urls = node.url();
    let client = std::thread::spawn(move || fetch_members(&urls, 0, 0, DEADLINE));
    entered.recv_timeout(DEADLINE).expect("the handler runs");
    node.transport.stop();
    release.send(()).expect("handler waiting");
    let result = client.join().expect("client thread");
    assert!(result.is_err(), "{result:?}");
}
