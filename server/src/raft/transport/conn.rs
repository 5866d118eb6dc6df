//! Dialing and tracking connections: peer URL parsing, connecting to a peer's URLs in turn,
//! the dialer's side of the handshake, and the [`Registry`] of live connections that lets
//! [`super::Transport::stop`] and `mark_removed` cut connections owned by other threads.
//!
//! Connecting and the handshake are separate steps so a caller can make the socket reachable
//! for shutdown (register it) before the handshake's reads, which may wait up to 5 s.
//!
//! Invariant: every connection a reader or snapshot thread serves is in the registry from just
//! after its handshake until the thread lets go of it ([`Registered`] removes it on drop).

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::error::{Result, TransportError};
use super::hello::{encode_hello, read_reply, Hello, Kind, Status};
use super::layout::{CONNECT_TIMEOUT, HELLO_TIMEOUT, WRITE_TIMEOUT};
use super::lock;

/// The `host:port` of a peer URL such as `http://127.0.0.1:2380` (a trailing path is ignored).
/// Only the `http` scheme is accepted: the transport speaks plain TCP.
pub fn parse_peer_url(url: &str) -> Result<&str> {
    let bad = |why| TransportError::BadUrl {
        url: url.to_string(),
        why,
    };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(bad("the scheme must be http")),
        None => return Err(bad("no scheme")),
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(host_port),
        _ => Err(bad("expected host:port")),
    }
}

/// Connects to the first of `urls` that answers, starting at `first` and wrapping around.
/// Returns the stream and the index of the URL that worked. Each address gets
/// [`CONNECT_TIMEOUT`]; the stream has `TCP_NODELAY` and the write timeout set.
pub fn connect(urls: &[String], first: usize) -> Result<(TcpStream, usize)> {
    let mut last_error = TransportError::protocol("the peer has no URLs");
    for step in 0..urls.len() {
        let index = (first + step) % urls.len();
        match connect_url(&urls[index], None) {
            Ok(stream) => return Ok((stream, index)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Connects to one URL, trying each address it resolves to for [`CONNECT_TIMEOUT`] at most,
/// and never past `deadline` when one is given (then the error is `TimedOut`). Name
/// resolution itself is not bounded.
pub fn connect_url(url: &str, deadline: Option<Instant>) -> Result<TcpStream> {
    let host_port = parse_peer_url(url)?;
    let mut last_error = None;
    for addr in host_port.to_socket_addrs()? {
        let mut limit = CONNECT_TIMEOUT;
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TransportError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {url} timed out"),
                )));
            }
            limit = limit.min(left);
        }
        match TcpStream::connect_timeout(&addr, limit) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => TransportError::Io(e),
        None => TransportError::BadUrl {
            url: url.to_string(),
            why: "the host resolves to no address",
        },
    })
}

/// The dialer's handshake: writes `hello`, reads the reply (waiting up to [`HELLO_TIMEOUT`]).
/// Any status but OK is [`TransportError::Refused`].
pub fn handshake(stream: &TcpStream, hello: &Hello) -> Result<()> {
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    let mut writer = stream;
    writer.write_all(&encode_hello(hello)?)?;
    let reply = read_reply(&mut &*stream)?;
    if reply.status != Status::Ok {
        return Err(TransportError::Refused {
            status: reply.status,
            peer_cluster_id: reply.cluster_id,
        });
    }
    Ok(())
}

/// Connects to a listener's own address to wake its blocking `accept` (an unspecified address
/// is reached through loopback). Returns whether the connection was made.
pub fn wake_listener(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).is_ok()
}

/// What the registry knows about a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The member on the other end.
    pub peer: u64,
    pub kind: Kind,
    /// Accepted by this member (true) or dialed by it (false).
    pub inbound: bool,
}

/// Live connections, by a process-unique number, each with a handle that can shut it down.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, (ConnInfo, TcpStream)>>,
}

/// A connection's place in the [`Registry`]; dropping it removes the entry.
pub struct Registered<'a> {
    registry: &'a Registry,
    pub id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.registry.conns).remove(&self.id);
    }
}

impl Registry {
    /// Adds a connection (a duplicate of its socket is kept for shutting it down).
    pub fn register(&self, stream: &TcpStream, info: ConnInfo) -> std::io::Result<Registered<'_>> {
        let handle = stream.try_clone()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.conns).insert(id, (info, handle));
        Ok(Registered { registry: self, id })
    }

    /// Shuts down every connection `select` picks (given its id and info); their threads see
    /// an error or EOF and let go of them.
    pub fn shutdown_where(&self, select: impl Fn(u64, &ConnInfo) -> bool) {
        for (id, (info, stream)) in lock(&self.conns).iter() {
            if select(*id, info) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_parse_to_host_and_port() {
        // Proves accepted URL forms yield host:port and others are refused with a reason.
        assert_eq!(
            parse_peer_url("http://127.0.0.1:2380").expect("ok"),
            "127.0.0.1:2380"
        );
        assert_eq!(
            parse_peer_url("HTTP://node-1:2380/").expect("ok"),
            "node-1:2380"
        );
        assert_eq!(
            parse_peer_url("http://[::1]:2380").expect("ok"),
            "[::1]:2380"
        );
        for bad in [
            "https://127.0.0.1:2380",
            "127.0.0.1:2380",
            "http://127.0.0.1",
            "http://:2380",
            "http://h:99999",
        ] {
            assert!(parse_peer_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_tries_urls_in_turn() {
        // Proves connect skips a dead or malformed URL and reports which one worked.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let live = format!("http://{}", listener.local_addr().expect("addr"));
        let urls = vec!["unix:///nowhere".to_string(), live];
        let (_stream, index) = connect(&urls, 0).expect("second URL answers");
        assert_eq!(index, 1);
        assert!(connect(&[], 0).is_err());
    }
}
