//! Loopback tests of whole transports: two or more [`Transport`]s on 127.0.0.1 with ports the
//! OS picks, exchanging messages and snapshots. Every wait polls with a deadline; no test
//! asserts a timing. `rpc_tests` reuses [`Node`], [`raw_dial`] and [`closed_without_data`].

use ::raft::eraftpb::{Message, MessageType};
use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{read_frame, write_frame, BatchEncoder};
use super::hello::{encode_hello, encode_reply, read_hello, read_reply, Hello, Kind};
use super::hello::{ReadHello, Reply, Status};
use super::layout::{FRAME_BATCH, FRAME_KEEPALIVE, HELLO_FIXED_SIZE};
use super::snapshot::snap_db_name;
use super::{PeerEvent, SnapshotBody, Transport, TransportConfig};

pub(super) const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// One member's transport with its received events and snap directory.
pub(super) struct Node {
    id: u64,
    pub(super) transport: Transport,
    events: Receiver<PeerEvent>,
    /// Every event received so far, in order.
    seen: Vec<PeerEvent>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Node {
    pub(super) fn start(id: u64, cluster_id: u64) -> Node {
        Node::start_on(
            id,
            cluster_id,
            TcpListener::bind("127.0.0.1:0").expect("bind"),
        )
    }

    fn start_on(id: u64, cluster_id: u64, listener: TcpListener) -> Node {
        // Transport logs show in a failing test's output.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let addr = listener.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("tempdir");
        let (tx, events) = channel();
        let cfg = TransportConfig {
            member_id: id,
            cluster_id,
            advertised_urls: vec![format!("http://{addr}")],
            snap_dir: dir.path().join("snap"),
        };
        let sink = Arc::new(move |event| {
            let _ = tx.send(event);
        });
        let transport = Transport::start(cfg, vec![listener], sink).expect("start");
        Node {
            id,
            transport,
            events,
            seen: Vec::new(),
            addr,
            dir,
        }
    }

    pub(super) fn url(&self) -> Vec<String> {
        vec![format!("http://{}", self.addr)]
    }

    fn add(&self, other: &Node) {
        self.transport.add_peer(other.id, &other.url());
    }

    /// Collects events until `done` holds for what was seen, calling `tick` between polls.
    /// False at the deadline.
    fn poll_until(&mut self, mut tick: impl FnMut(), done: impl Fn(&[PeerEvent]) -> bool) -> bool {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.seen.extend(self.events.try_iter());
            if done(&self.seen) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tick();
            if let Ok(event) = self.events.recv_timeout(POLL) {
                self.seen.push(event);
            }
        }
    }

    /// All received messages (in order) sent by `from`.
    fn received_from(&self, from: u64) -> Vec<Message> {
        received(&self.seen, from)
    }
}

fn received(events: &[PeerEvent], from: u64) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Messages(ms) => Some(ms.iter().filter(|m| m.from == from).cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn heartbeat(from: u64, to: u64, commit: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.commit = commit;
    m
}

fn wait_active(a: &Node, b: &Node) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while a.transport.active_since(b.id).is_none() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

fn has_unreachable(events: &[PeerEvent], id: u64) -> bool {
    events.contains(&PeerEvent::Unreachable(id))
}

#[test]
fn thousands_of_messages_arrive_in_order_both_ways() {
    // Proves two transports deliver every message, in send order, in both directions.
    const COUNT: u64 = 3000;
    let mut a = Node::start(1, 0xc1);
    let mut b = Node::start(2, 0xc1);
    a.add(&b);
    b.add(&a);
    assert!(wait_active(&a, &b) && wait_active(&b, &a));
    for start in (0..COUNT).step_by(100) {
        a.transport
            .send((start..start + 100).map(|i| heartbeat(1, 2, i)).collect());
        b.transport
            .send((start..start + 100).map(|i| heartbeat(2, 1, i)).collect());
    }
    assert!(b.poll_until(|| {}, |seen| received(seen, 1).len() as u64 >= COUNT));
    assert!(a.poll_until(|| {}, |seen| received(seen, 2).len() as u64 >= COUNT));
    for (node, from) in [(&a, 2), (&b, 1)] {
        let commits: Vec<u64> = node.received_from(from).iter().map(|m| m.commit).collect();
        assert_eq!(commits, (0..COUNT).collect::<Vec<_>>());
        assert!(!has_unreachable(&node.seen, from));
    }
}

#[test]
fn cluster_id_mismatch_delivers_nothing_and_both_sides_live_on() {
    // Proves a peer of another cluster is refused without delivery or an active connection,
    // that the receiver keeps serving its own cluster, and that the sender keeps retrying
    // until the right member listens on that port.
    let mut a = Node::start(1, 0xaaaa);
    let b = Node::start(2, 0xbbbb);
    a.add(&b);
    let ta = a.transport.clone();
    assert!(a.poll_until(|| a_send(&ta, 2), |seen| has_unreachable(seen, 2)));
    assert_eq!(a.transport.active_since(2), None);

    // B still serves members of its own cluster.
    let mut b = b;
    let c = Node::start(3, 0xbbbb);
    c.add(&b);
    assert!(b.poll_until(
        || c.transport.send(vec![heartbeat(3, 2, 7)]),
        |seen| !received(seen, 3).is_empty()
    ));
    assert!(b.received_from(1).is_empty());

    // A still retries: member 2 of A's cluster on B's port gets A's messages.
    let port = b.addr;
    b.transport.stop();
    drop(b);
    let mut d = Node::start_on(2, 0xaaaa, bind_retrying(port));
    assert!(d.poll_until(|| a_send(&ta, 2), |seen| !received(seen, 1).is_empty()));
    assert!(a.transport.active_since(2).is_some());
}

fn a_send(transport: &Transport, to: u64) {
    transport.send(vec![heartbeat(1, to, 1)]);
}

fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() >= deadline => panic!("cannot bind {addr}: {e}"),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[test]
fn a_removed_sender_is_told_so() {
    // Proves marking a connected peer removed cuts it off, drops its messages, and makes it
    // emit Removed.
    let mut a = Node::start(1, 0xc1);
    let mut b = Node::start(2, 0xc1);
    a.add(&b);
    a_send(&a.transport, 2);
    assert!(b.poll_until(|| {}, |seen| !received(seen, 1).is_empty()));
    b.transport.mark_removed(1);
    let ta = a.transport.clone();
    assert!(a.poll_until(|| a_send(&ta, 2), |seen| seen.contains(&PeerEvent::Removed)));
    assert_eq!(a.transport.active_since(2), None);
    b.seen.extend(b.events.try_iter());
    assert_eq!(
        b.received_from(1).len(),
        1,
        "messages from a removed member were delivered"
    );
}

#[test]
fn a_down_peer_is_unreachable_until_it_listens() {
    // Proves sends to a peer that is not listening report Unreachable, and the writer connects
    // and delivers once the peer starts.
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let mut a = Node::start(1, 0xc1);
    a.transport.add_peer(2, &[format!("http://{port}")]);
    let ta = a.transport.clone();
    assert!(a.poll_until(|| a_send(&ta, 2), |seen| has_unreachable(seen, 2)));
    assert_eq!(a.transport.active_since(2), None);

    let mut b = Node::start_on(2, 0xc1, bind_retrying(port));
    assert!(b.poll_until(|| a_send(&ta, 2), |seen| !received(seen, 1).is_empty()));
    assert!(a.transport.active_since(2).is_some());
}

fn snapshot_message(index: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = 1;
    m.to = 2;
    m.term = 3;
    let snap = m.mut_snapshot();
    snap.data = b"members".to_vec().into();
    snap.mut_metadata().index = index;
    snap.mut_metadata().term = 3;
    m
}

fn snapshot_status(events: &[PeerEvent]) -> Option<bool> {
    events.iter().find_map(|e| match e {
        PeerEvent::SnapshotStatus { to: 2, ok } => Some(*ok),
        _ => None,
    })
}

fn leftover_tmp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn snapshots_arrive_as_snap_db_files_and_bad_sizes_are_refused() {
    // Proves a 3 MiB snapshot is saved as <index>.snap.db with its exact bytes and its
    // MsgSnapshot delivered, while bodies shorter or longer than announced are refused and
    // leave no file, and a MsgSnapshot passed to send fails at once.
    let mut a = Node::start(1, 0xc1);
    let mut b = Node::start(2, 0xc1);
    a.add(&b);
    let db: Vec<u8> = (0..(3u32 << 20) + 123)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let snap_dir = b.dir.path().join("snap");

    let message = snapshot_message(0x1234);
    a.transport.send_snapshot(
        message.clone(),
        SnapshotBody {
            size: db.len() as u64,
            reader: Box::new(Cursor::new(db.clone())),
        },
    );
    assert!(a.poll_until(|| {}, |seen| snapshot_status(seen).is_some()));
    assert_eq!(snapshot_status(&a.seen), Some(true));
    assert!(b.poll_until(
        || {},
        |seen| seen.contains(&PeerEvent::Messages(vec![message.clone()]))
    ));
    let saved = std::fs::read(snap_dir.join(snap_db_name(0x1234))).expect("snap.db");
    assert!(saved == db, "saved snapshot differs from the sent body");
    assert_eq!(snap_db_name(0x1234), "0000000000001234.snap.db");

    for (index, announced) in [(0x2000, db.len() as u64 + 1), (0x2001, db.len() as u64 - 1)] {
        a.seen.clear();
        a.transport.send_snapshot(
            snapshot_message(index),
            SnapshotBody {
                size: announced,
                reader: Box::new(Cursor::new(db.clone())),
            },
        );
        assert!(a.poll_until(|| {}, |seen| snapshot_status(seen).is_some()));
        assert_eq!(snapshot_status(&a.seen), Some(false));
        assert!(has_unreachable(&a.seen, 2));
        assert!(!snap_dir.join(snap_db_name(index)).exists());
    }
    assert_eq!(leftover_tmp_files(&snap_dir), Vec::<String>::new());
    assert_eq!(
        received(&b.seen, 1),
        vec![message],
        "a refused snapshot was delivered"
    );

    a.seen.clear();
    a.transport.send(vec![snapshot_message(0x3000)]);
    assert!(a.poll_until(|| {}, |seen| snapshot_status(seen) == Some(false)));
}

#[test]
fn a_restarted_peer_gets_messages_again() {
    // Proves the writer notices a lost connection, reconnects to the restarted peer on the same
    // port, and delivers again with a new active_since.
    let a = Node::start(1, 0xc1);
    let mut b = Node::start(2, 0xc1);
    a.add(&b);
    let ta = a.transport.clone();
    assert!(b.poll_until(|| a_send(&ta, 2), |seen| !received(seen, 1).is_empty()));
    let first_up = a.transport.active_since(2).expect("connected");
    let port = b.addr;
    drop(b);
    let mut b = Node::start_on(2, 0xc1, bind_retrying(port));
    assert!(b.poll_until(|| a_send(&ta, 2), |seen| !received(seen, 1).is_empty()));
    assert!(a.transport.active_since(2).expect("reconnected") > first_up);
}

/// A raw connection to `node` that has sent `hello`.
pub(super) fn raw_dial(node: &Node, hello: &Hello) -> TcpStream {
    let stream = TcpStream::connect(node.addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    (&stream)
        .write_all(&encode_hello(hello).expect("fits"))
        .expect("hello");
    stream
}

fn raw_hello(to_id: u64, cluster_id: u64) -> Hello {
    Hello {
        kind: Kind::Messages,
        cluster_id,
        from_id: 9,
        to_id,
        from_urls: "http://127.0.0.1:1".into(),
    }
}

/// Whether the other side closed `stream` (EOF or reset) before sending anything more; false
/// when data arrives or the read times out.
pub(super) fn closed_without_data(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn the_receiver_answers_or_closes_bad_handshakes_and_frames() {
    // Proves the receiver's checks on raw connections: a wrong target or version is answered
    // with its status, bad magic and a corrupt frame close the connection, and nothing of
    // those connections is delivered while a well-formed one is.
    let mut b = Node::start(2, 0xc1);

    let wrong_to = raw_dial(&b, &raw_hello(5, 0xc1));
    let reply = read_reply(&mut &wrong_to).expect("reply");
    assert_eq!((reply.status, reply.cluster_id), (Status::ToMismatch, 0xc1));
    assert!(closed_without_data(&wrong_to));

    let mut v1 = encode_hello(&raw_hello(2, 0xc1)).expect("fits");
    v1[9] = 1;
    let old = TcpStream::connect(b.addr).expect("connect");
    old.set_read_timeout(Some(DEADLINE)).expect("timeout");
    (&old).write_all(&v1).expect("hello");
    assert_eq!(
        read_reply(&mut &old).expect("reply").status,
        Status::VersionMismatch
    );
    assert!(closed_without_data(&old));

    let bad_magic = TcpStream::connect(b.addr).expect("connect");
    bad_magic.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut http = b"GET / HTTP/1.1\r\n\r\n".to_vec();
    http.resize(HELLO_FIXED_SIZE, 0);
    (&bad_magic).write_all(&http).expect("write");
    assert!(closed_without_data(&bad_magic));

    let corrupt = raw_dial(&b, &raw_hello(2, 0xc1));
    assert_eq!(read_reply(&mut &corrupt).expect("reply").status, Status::Ok);
    let mut batch = BatchEncoder::default();
    batch.push(&heartbeat(9, 2, 1)).expect("encodes");
    let mut frame = Vec::new();
    write_frame(&mut frame, FRAME_BATCH, batch.payload()).expect("fits");
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    (&corrupt).write_all(&frame).expect("write");
    assert!(closed_without_data(&corrupt));

    let good = raw_dial(&b, &raw_hello(2, 0xc1));
    assert_eq!(read_reply(&mut &good).expect("reply").status, Status::Ok);
    batch.clear();
    batch.push(&heartbeat(9, 2, 2)).expect("encodes");
    let mut out = &good;
    write_frame(&mut out, FRAME_KEEPALIVE, &[]).expect("keepalive");
    write_frame(&mut out, FRAME_BATCH, batch.payload()).expect("batch");
    assert!(b.poll_until(|| {}, |seen| !received(seen, 9).is_empty()));
    let commits: Vec<u64> = b.received_from(9).iter().map(|m| m.commit).collect();
    assert_eq!(commits, vec![2]);
}

#[test]
fn a_garbled_frame_head_closes_the_connection_while_bytes_still_trickle_in() {
    // Proves a frame whose length was garbled (still under the limit) is refused at once by its
    // head CRC: the receiver closes the connection although bytes keep arriving, as heartbeats
    // would, instead of waiting for megabytes that never come.
    let b = Node::start(2, 0xc1);
    let conn = raw_dial(&b, &raw_hello(2, 0xc1));
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    assert_eq!(read_reply(&mut &conn).expect("reply").status, Status::Ok);
    let mut frame = Vec::new();
    write_frame(&mut frame, FRAME_KEEPALIVE, &[]).expect("fits");
    // len 32 MiB + 1: under the limit, and a payload deadline (69 s) beyond this test's read
    // timeout, so only the head CRC (which no longer matches) can close the connection in time.
    frame[0] = 0x02;
    (&conn).write_all(&frame).expect("write");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let (conn, stop) = (conn.try_clone().expect("clone"), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if (&conn).write_all(&[0]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let closed = closed_without_data(&conn);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    trickle.join().expect("trickle thread");
    assert!(closed, "the receiver kept the connection open");
}

#[test]
fn idle_connections_carry_keepalives_and_silent_ones_are_dropped() {
    // Proves an idle writer sends keepalive frames, and a receiver drops an inbound connection
    // on which nothing arrives within its read timeout.
    let raw_peer = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = Node::start(1, 0xc1);
    a.transport.add_peer(
        2,
        &[format!("http://{}", raw_peer.local_addr().expect("addr"))],
    );
    let (conn, _) = raw_peer.accept().expect("writer dials");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut reader = std::io::BufReader::new(&conn);
    let ReadHello::Hello(hello) = read_hello(&mut reader).expect("hello") else {
        panic!("a hello of our version expected");
    };
    assert_eq!(
        (hello.kind, hello.from_id, hello.to_id),
        (Kind::Messages, 1, 2)
    );
    (&conn)
        .write_all(&encode_reply(Reply {
            status: Status::Ok,
            cluster_id: 0xc1,
        }))
        .expect("reply");
    let frame = read_frame(&mut reader).expect("a frame while idle");
    assert_eq!(
        (frame.frame_type(), frame.payload()),
        (FRAME_KEEPALIVE, &[][..])
    );

    let b = Node::start(2, 0xc1);
    let silent = raw_dial(&b, &raw_hello(2, 0xc1));
    assert_eq!(read_reply(&mut &silent).expect("reply").status, Status::Ok);
    assert!(closed_without_data(&silent));
}
