//! Rpc connections (FORMAT.md "Rpc connection"): one request, one answer, then the connection
//! closes. They stand in for etcd's peer HTTP endpoints `GET /members` (a member joining with
//! `--initial-cluster-state existing`, and the "already been bootstrapped" check) and
//! `POST /members/promote/<id>` (a follower forwarding MemberPromote to the leader).
//!
//! * Codecs: [`encode_request`], [`decode_request`], [`encode_answer`], [`decode_answer`]; pure
//!   functions of frame type and payload, validating everything they read.
//! * Server side: [`serve`] runs on the inbound connection's reader thread (a plain std thread
//!   the listener spawned, never a tokio runtime thread), reads the request, calls the
//!   [`RpcHandler`] set with [`super::Transport::set_rpc_handler`] on that same thread, and
//!   writes its answer. The handler may block (for a promote, up to etcd's request timeout);
//!   only this one connection waits meanwhile.
//! * Client side: [`fetch_members`] and [`promote_member`] need no [`super::Transport`], so a
//!   member can call them before it has one. Each URL gets one attempt, bounded as a whole
//!   (connect, hello, request, answer) by the caller's timeout.
//!
//! Invariant: after [`super::Transport::stop`] the server side writes no answer, even when a
//! handler that was running returns later.

use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::membership::Member;

use super::conn::connect_url;
use super::error::{Result, TransportError};
use super::frame::{read_frame, write_frame};
use super::hello::{encode_hello, read_reply, Hello, Kind, Status};
use super::layout::*;
use super::{read, Hex, Inner};

/// What one member asks of another on an Rpc connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcRequest {
    /// The cluster's ID and members (etcd's `GET /members`).
    Members,
    /// Promote this learner (etcd's `POST /members/promote/<id>`); only the leader can.
    PromoteMember(u64),
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcAnswer {
    /// The cluster ID and its members; for a promote, the membership right after the promote.
    Members {
        cluster_id: u64,
        members: Vec<Member>,
    },
}

/// Why a request failed, as the peer classified it (FORMAT.md "Failure codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcCode {
    /// etcd's 404: no such member.
    NotFound,
    /// etcd's 412: not a learner, or a learner not in sync with the leader.
    FailedPrecondition,
    /// etcd's 408: the change was not applied within the request timeout.
    Timeout,
    /// Anything else, including "not ready" (no handler set yet).
    Other,
}

impl RpcCode {
    fn to_wire(self) -> u8 {
        match self {
            RpcCode::NotFound => RPC_CODE_NOT_FOUND,
            RpcCode::FailedPrecondition => RPC_CODE_FAILED_PRECONDITION,
            RpcCode::Timeout => RPC_CODE_TIMEOUT,
            RpcCode::Other => RPC_CODE_OTHER,
        }
    }

    fn from_wire(value: u8) -> Option<RpcCode> {
        Some(match value {
            RPC_CODE_NOT_FOUND => RpcCode::NotFound,
            RPC_CODE_FAILED_PRECONDITION => RpcCode::FailedPrecondition,
            RPC_CODE_TIMEOUT => RpcCode::Timeout,
            RPC_CODE_OTHER => RpcCode::Other,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// A failure answer: its code and the peer's message (etcd's error text, for the client).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcFailure {
    pub code: RpcCode,
    pub message: String,
}

impl RpcFailure {
    pub fn new(code: RpcCode, message: impl Into<String>) -> RpcFailure {
        RpcFailure {
            code,
            message: message.into(),
        }
    }
}

/// Answers Rpc requests. Called on the inbound connection's own std thread (not a tokio
/// runtime thread), one call per connection, possibly several at once; it may block, and a
/// handler that needs async code should `block_on` a runtime handle it captured (there is no
/// runtime context on this thread). Must not panic: a panic ends the connection unanswered.
pub type RpcHandler =
    Arc<dyn Fn(RpcRequest) -> std::result::Result<RpcAnswer, RpcFailure> + Send + Sync>;

/// A request as a frame type and payload.
pub fn encode_request(request: RpcRequest) -> (u8, Vec<u8>) {
    match request {
        RpcRequest::Members => (FRAME_RPC_MEMBERS, Vec::new()),
        RpcRequest::PromoteMember(id) => (FRAME_RPC_PROMOTE, id.to_be_bytes().to_vec()),
    }
}

/// Decodes a request frame; another type or a payload of the wrong size is a protocol error.
pub fn decode_request(frame_type: u8, payload: &[u8]) -> Result<RpcRequest> {
    match (frame_type, payload.len()) {
        (FRAME_RPC_MEMBERS, 0) => Ok(RpcRequest::Members),
        (FRAME_RPC_PROMOTE, RPC_PROMOTE_SIZE) => {
            let mut id = [0u8; RPC_PROMOTE_SIZE];
            id.copy_from_slice(payload);
            Ok(RpcRequest::PromoteMember(u64::from_be_bytes(id)))
        }
        (other, len) => Err(TransportError::protocol(format!(
            "frame type {other} with {len} payload bytes is not an Rpc request"
        ))),
    }
}

/// An answer as a frame type and payload. The members are written as `Member::to_json` writes
/// each one, in a JSON array.
pub fn encode_answer(answer: &std::result::Result<RpcAnswer, RpcFailure>) -> (u8, Vec<u8>) {
    match answer {
        Ok(RpcAnswer::Members {
            cluster_id,
            members,
        }) => {
            let mut payload = cluster_id.to_be_bytes().to_vec();
            serde_json::to_writer(&mut payload, members).expect("members always serialise");
            (FRAME_RPC_MEMBERS_ANSWER, payload)
        }
        Err(failure) => {
            let mut payload = Vec::with_capacity(RPC_CODE_SIZE + failure.message.len());
            payload.push(failure.code.to_wire());
            payload.extend_from_slice(failure.message.as_bytes());
            (FRAME_RPC_FAILURE, payload)
        }
    }
}

/// Decodes an answer frame: the outer error is a broken answer (protocol error), the inner
/// one a failure the peer answered.
pub fn decode_answer(
    frame_type: u8,
    payload: &[u8],
) -> Result<std::result::Result<RpcAnswer, RpcFailure>> {
    match frame_type {
        FRAME_RPC_MEMBERS_ANSWER => {
            if payload.len() < RPC_CLUSTER_ID_SIZE {
                return Err(TransportError::protocol(format!(
                    "members answer of {} bytes has no cluster ID",
                    payload.len()
                )));
            }
            let (id, json) = payload.split_at(RPC_CLUSTER_ID_SIZE);
            let mut cluster_id = [0u8; RPC_CLUSTER_ID_SIZE];
            cluster_id.copy_from_slice(id);
            let members: Vec<Member> = serde_json::from_slice(json).map_err(|e| {
                TransportError::protocol(format!("members answer is not a JSON member array: {e}"))
            })?;
            Ok(Ok(RpcAnswer::Members {
                cluster_id: u64::from_be_bytes(cluster_id),
                members,
            }))
        }
        FRAME_RPC_FAILURE => {
            let Some((&code, text)) = payload.split_first() else {
                return Err(TransportError::protocol("failure answer without a code"));
            };
            let code = RpcCode::from_wire(code).ok_or_else(|| {
                TransportError::protocol(format!("unknown Rpc failure code {code}"))
            })?;
            let message = std::str::from_utf8(text)
                .map_err(|_| TransportError::protocol("Rpc failure message is not UTF-8"))?;
            Ok(Err(RpcFailure::new(code, message)))
        }
        other => Err(TransportError::protocol(format!(
            "frame type {other} ({} bytes) is not an Rpc answer",
            payload.len()
        ))),
    }
}

/// Serves one Rpc connection after its handshake: reads the request, asks the handler (on
/// this thread) and writes the answer. A broken request closes the connection unanswered.
pub fn serve(inner: &Inner, hello: &Hello, stream: &TcpStream, reader: &mut BufReader<&TcpStream>) {
    let from = Hex(hello.from_id);
    if let Err(e) = stream.set_read_timeout(Some(RPC_REQUEST_TIMEOUT)) {
        tracing::debug!(%from, %e, "cannot set a read timeout; closing");
        return;
    }
    let request = match read_frame(reader).and_then(|f| decode_request(f.frame_type(), f.payload()))
    {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(%from, error = %e, "Rpc connection closed without a request");
            return;
        }
    };
    let handler = read(&inner.rpc_handler).clone();
    let answer = match handler {
        Some(handler) => handler(request),
        None => Err(RpcFailure::new(RpcCode::Other, "not ready")),
    };
    if inner.is_stopped() {
        return;
    }
    match &answer {
        Ok(_) => tracing::debug!(%from, ?request, "answered an Rpc request"),
        Err(failure) => tracing::info!(%from, ?request, %failure, "Rpc request failed"),
    }
    let (frame_type, payload) = encode_answer(&answer);
    let mut out = BufWriter::new(stream);
    if let Err(e) =
        write_frame(&mut out, frame_type, &payload).and_then(|()| out.flush().map_err(Into::into))
    {
        tracing::warn!(%from, ?request, error = %e, "cannot answer an Rpc request");
    }
}

/// Asks the peer at `peer_urls` (tried in order; any error, a failure answer included, moves
/// on to the next URL) for the cluster's ID and members. `from` and `cluster_id` go in the
/// hello; 0 means unknown. Each URL gets `timeout` for the whole exchange. The members are as
/// the first peer that answered has them; an empty list is returned as is. All URLs failing
/// returns the last one's error ([`TransportError::NoPeerUrls`] for none).
pub fn fetch_members(
    peer_urls: &[String],
    from: u64,
    cluster_id: u64,
    timeout: Duration,
) -> Result<(u64, Vec<Member>)> {
    let hello = rpc_hello(from, cluster_id);
    let mut last_error = TransportError::NoPeerUrls;
    for url in peer_urls {
        match call(url, &hello, RpcRequest::Members, timeout) {
            Ok(Ok(RpcAnswer::Members {
                cluster_id,
                members,
            })) => return Ok((cluster_id, members)),
            Ok(Err(failure)) => last_error = TransportError::PeerFailed(failure),
            Err(e) => last_error = e,
        }
        tracing::debug!(%url, error = %last_error, "cannot fetch the members from a peer");
    }
    Err(last_error)
}

/// Asks the member at `peer_urls` (the leader's URLs) to promote learner `member_id`, and
/// returns the membership after the promote. The first answer decides, failure or not; only
/// an unreachable URL or a broken exchange moves on to the next. A failure answer comes back
/// as [`TransportError::PeerFailed`]. Each URL gets `timeout` for
/// the whole exchange, which includes the leader's wait for the promote to apply. Retrying on
/// a Timeout or Other answer, as etcd does until its request timeout, is the caller's choice.
pub fn promote_member(
    peer_urls: &[String],
    from: u64,
    cluster_id: u64,
    member_id: u64,
    timeout: Duration,
) -> Result<Vec<Member>> {
    let hello = rpc_hello(from, cluster_id);
    let request = RpcRequest::PromoteMember(member_id);
    let mut last_error = TransportError::NoPeerUrls;
    for url in peer_urls {
        match call(url, &hello, request, timeout) {
            Ok(Ok(RpcAnswer::Members { members, .. })) => return Ok(members),
            Ok(Err(failure)) => return Err(TransportError::PeerFailed(failure)),
            Err(e) => {
                tracing::debug!(%url, error = %e, "cannot forward a promote to a peer");
                last_error = e;
            }
        }
    }
    Err(last_error)
}

/// The hello of a dialer that may not know its cluster or whom it reaches.
fn rpc_hello(from: u64, cluster_id: u64) -> Hello {
    Hello {
        kind: Kind::Rpc,
        cluster_id,
        from_id: from,
        to_id: UNKNOWN_ID,
        from_urls: String::new(),
    }
}

/// One exchange with one URL, all of it before `timeout` from now.
fn call(
    url: &str,
    hello: &Hello,
    request: RpcRequest,
    timeout: Duration,
) -> Result<std::result::Result<RpcAnswer, RpcFailure>> {
    let deadline = Instant::now() + timeout;
    let stream = connect_url(url, Some(deadline))?;
    let mut io = Bounded {
        stream: &stream,
        deadline,
        timeout,
    };
    io.write_all(&encode_hello(hello)?)?;
    let reply = read_reply(&mut io)?;
    if reply.status != Status::Ok {
        return Err(TransportError::Refused {
            status: reply.status,
            peer_cluster_id: reply.cluster_id,
        });
    }
    let (frame_type, payload) = encode_request(request);
    let mut frame = Vec::with_capacity(FRAME_OVERHEAD + payload.len());
    write_frame(&mut frame, frame_type, &payload)?;
    io.write_all(&frame)?;
    let answer = read_frame(&mut io)?;
    decode_answer(answer.frame_type(), answer.payload())
}

/// A socket whose every read and write ends by `deadline`: each call gets the time left as its
/// timeout, so a peer that trickles bytes cannot stretch the exchange.
struct Bounded<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    /// The whole budget, for the error text.
    timeout: Duration,
}

impl Bounded<'_> {
    fn timed_out(&self) -> std::io::Error {
        std::io::Error::new(
            ErrorKind::TimedOut,
            format!("no answer within {:?}", self.timeout),
        )
    }

    fn time_left(&self) -> std::io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.timed_out())
        } else {
            Ok(left)
        }
    }

    /// A socket timeout shows as `WouldBlock` on Unix; both become the same `TimedOut` error.
    fn explain(&self, e: std::io::Error) -> std::io::Error {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => self.timed_out(),
            _ => e,
        }
    }
}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.set_read_timeout(Some(self.time_left()?))?;
        (&*self.stream).read(buf).map_err(|e| self.explain(e))
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.stream.set_write_timeout(Some(self.time_left()?))?;
        (&*self.stream).write(buf).map_err(|e| self.explain(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, learner: bool) -> Member {
        Member {
            id,
            peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + id)],
            is_learner: learner,
            name: name.to_string(),
            client_urls: if name.is_empty() {
                Vec::new()
            } else {
                vec![format!("http://127.0.0.1:{}", 2379 + id)]
            },
        }
    }

    #[test]
    fn requests_round_trip_and_match_the_worked_example() {
        // Proves both requests decode to what was encoded, the promote frame has the bytes
        // FORMAT.md shows, and wrong types or sizes are refused.
        for request in [
            RpcRequest::Members,
            RpcRequest::PromoteMember(0x8e9e05c52164694d),
        ] {
            let (t, p) = encode_request(request);
            assert_eq!(decode_request(t, &p).expect("decodes"), request);
        }
        let (t, p) = encode_request(RpcRequest::PromoteMember(0x8e9e05c52164694d));
        let mut wire = Vec::new();
        write_frame(&mut wire, t, &p).expect("fits");
        let body = [0x15, 0x8e, 0x9e, 0x05, 0xc5, 0x21, 0x64, 0x69, 0x4d];
        let mut expected = vec![0, 0, 0, 9, 0x15];
        expected.extend_from_slice(&crc32c::crc32c(&expected).to_be_bytes());
        expected.extend_from_slice(&body[1..]);
        expected.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        assert_eq!(wire, expected);
        assert_eq!(wire.len(), 21);

        assert!(decode_request(FRAME_RPC_MEMBERS, &[0]).is_err());
        assert!(decode_request(FRAME_RPC_PROMOTE, &[0; 7]).is_err());
        assert!(decode_request(FRAME_RPC_PROMOTE, &[0; 9]).is_err());
        assert!(decode_request(FRAME_RPC_MEMBERS_ANSWER, &[]).is_err());
        assert!(decode_request(FRAME_KEEPALIVE, &[]).is_err());
    }

    #[test]
    fn answers_round_trip_with_etcd_member_json() {
        // Proves members answers (empty, learner, unpublished) and every failure code decode to
        // what was encoded, and the JSON is Member::to_json's, in an array.
        let members = vec![
            member(1, "n1", false),
            member(2, "", true),
            member(u64::MAX, "n3", false),
        ];
        let answer = Ok(RpcAnswer::Members {
            cluster_id: 0xcdf818194e3a8c32,
            members: members.clone(),
        });
        let (t, p) = encode_answer(&answer);
        assert_eq!(t, FRAME_RPC_MEMBERS_ANSWER);
        assert_eq!(&p[..8], &0xcdf818194e3a8c32u64.to_be_bytes());
        let json = std::str::from_utf8(&p[8..]).expect("UTF-8");
        assert!(json.starts_with(r#"[{"id":1,"peerURLs":["http://127.0.0.1:2381"],"name":"n1""#));
        assert!(json.contains(r#"{"id":2,"peerURLs":["http://127.0.0.1:2382"],"isLearner":true}"#));
        assert!(json.contains(r#""id":18446744073709551615"#));
        assert_eq!(decode_answer(t, &p).expect("decodes"), answer);

        let empty = Ok(RpcAnswer::Members {
            cluster_id: 7,
            members: Vec::new(),
        });
        let (t, p) = encode_answer(&empty);
        assert_eq!(&p[8..], b"[]");
        assert_eq!(decode_answer(t, &p).expect("decodes"), empty);

        for code in [
            RpcCode::NotFound,
            RpcCode::FailedPrecondition,
            RpcCode::Timeout,
            RpcCode::Other,
        ] {
            let failure = Err(RpcFailure::new(code, "membership: ID not found"));
            let (t, p) = encode_answer(&failure);
            assert_eq!((t, p[0]), (FRAME_RPC_FAILURE, code.to_wire()));
            assert_eq!(decode_answer(t, &p).expect("decodes"), failure);
        }
        let no_text = Err(RpcFailure::new(RpcCode::Timeout, ""));
        let (t, p) = encode_answer(&no_text);
        assert_eq!(decode_answer(t, &p).expect("decodes"), no_text);
    }

    #[test]
    fn malformed_answers_are_errors_naming_what_is_wrong() {
        // Proves short payloads, bad JSON, unknown codes, non-UTF-8 text and foreign frame
        // types are protocol errors that say which part was bad.
        let cid = 5u64.to_be_bytes();
        let with_json = |json: &str| [&cid[..], json.as_bytes()].concat();
        let cases: Vec<(u8, Vec<u8>, &str)> = vec![
            (FRAME_RPC_MEMBERS_ANSWER, vec![0; 7], "no cluster ID"),
            (FRAME_RPC_MEMBERS_ANSWER, cid.to_vec(), "JSON"),
            (FRAME_RPC_MEMBERS_ANSWER, with_json("[{\"id\":1"), "JSON"),
            (FRAME_RPC_MEMBERS_ANSWER, with_json("{\"id\":1}"), "JSON"),
            (FRAME_RPC_MEMBERS_ANSWER, with_json("[{\"id\":-1}]"), "JSON"),
            (FRAME_RPC_MEMBERS_ANSWER, with_json("[1,2]"), "JSON"),
            (FRAME_RPC_FAILURE, vec![], "without a code"),
            (FRAME_RPC_FAILURE, vec![0, b'x'], "code 0"),
            (FRAME_RPC_FAILURE, vec![9], "code 9"),
            (FRAME_RPC_FAILURE, vec![RPC_CODE_OTHER, 0xff, 0xfe], "UTF-8"),
            (FRAME_RPC_PROMOTE, vec![0; 8], "not an Rpc answer"),
        ];
        for (t, p, what) in cases {
            let err = decode_answer(t, &p).expect_err(what);
            assert!(matches!(err, TransportError::Protocol(_)), "{err}");
            assert!(
                err.to_string().contains(what),
                "{err} should mention {what}"
            );
        }
    }
}
