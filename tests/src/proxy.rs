//! A fault-injecting TCP proxy for cluster tests: put it in front of a member's peer port and
//! blackhole, delay or thin out the traffic, each direction on its own, while the test runs.
//!
//! Each accepted connection gets a connection to the target and two pump threads, one per
//! direction. A pump reads what arrives and, following the current [`Faults`] of its direction:
//! discards it (blackhole; the connection stays open, as with a network partition that drops
//! packets), holds it for the delay before forwarding it (order is kept), or discards a chunk
//! with the given probability. A chunk is what one read returned (up to 64 KiB). On loopback a
//! read usually ends where the sender's write ended, so dropping a chunk mostly drops whole
//! frames (lost messages); only a frame larger than one read spans chunks, and dropping part
//! of it breaks the framing: the peers see a corrupt frame and must reconnect. Tests that want
//! that recovery path send large values (see `server/tests/cluster_faults.rs`).
//! [`FaultProxy::reset`] closes every open connection, so peers have to dial again (through the
//! proxy, under the current faults).
//!
//! Faults change at any time and apply to data read after the change. The proxy stops when
//! dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rand::Rng;

/// How often blocked reads and the accept loop look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
const CHUNK_BYTES: usize = 64 * 1024;

/// The faults of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Discard everything.
    pub blackhole: bool,
    /// Hold every chunk this long before forwarding it.
    pub delay: Duration,
    /// Discard each chunk with this probability (0.0 to 1.0).
    pub drop_fraction: f64,
}

/// A direction through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting side to the target.
    ToTarget,
    /// From the target back to the connecting side.
    FromTarget,
}

#[derive(Default)]
struct Shared {
    to_target: Mutex<Faults>,
    from_target: Mutex<Faults>,
    stop: AtomicBool,
    /// Both ends of every open connection, for `reset`.
    open: Mutex<Vec<(TcpStream, TcpStream)>>,
}

impl Shared {
    fn faults(&self, direction: Direction) -> Faults {
        let lock = match direction {
            Direction::ToTarget => &self.to_target,
            Direction::FromTarget => &self.from_target,
        };
        *lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running proxy: connections to [`FaultProxy::addr`] are relayed to the target.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 on a port the OS picks and relays to `target`.
    pub fn start(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, target, shared))
        };
        Ok(FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the faults of one direction (from now on).
    pub fn set(&self, direction: Direction, faults: Faults) {
        let lock = match direction {
            Direction::ToTarget => &self.shared.to_target,
            Direction::FromTarget => &self.shared.from_target,
        };
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Sets the same faults in both directions (from now on).
    pub fn set_both(&self, faults: Faults) {
        self.set(Direction::ToTarget, faults);
        self.set(Direction::FromTarget, faults);
    }

    /// Blackholes both directions (`true`) or lifts every fault (`false`).
    pub fn blackhole(&self, on: bool) {
        self.set_both(Faults {
            blackhole: on,
            ..Faults::default()
        });
    }

    /// Closes every open connection; new ones are accepted as before.
    pub fn reset(&self) {
        let open = std::mem::take(&mut *self.shared.open.lock().unwrap_or_else(|p| p.into_inner()));
        for (client, server) in open {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.reset();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                if let Err(error) = relay(client, target, &shared) {
                    eprintln!("fault proxy: cannot relay to {target}: {error}");
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(error) => {
                eprintln!("fault proxy: accept failed: {error}");
                thread::sleep(POLL);
            }
        }
    }
}

/// Connects `client` to the target and starts the two pumps.
fn relay(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) -> std::io::Result<()> {
    let server = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    for stream in [&client, &server] {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
    }
    shared
        .open
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((client.try_clone()?, server.try_clone()?));
    let pumps = [
        (
            client.try_clone()?,
            server.try_clone()?,
            Direction::ToTarget,
        ),
        (server, client, Direction::FromTarget),
    ];
    for (from, to, direction) in pumps {
        let shared = Arc::clone(shared);
        thread::spawn(move || pump(from, to, direction, &shared));
    }
    Ok(())
}

/// Moves bytes one way under that direction's faults until either end closes or the proxy
/// stops; then closes both ends so the other pump ends too.
fn pump(mut from: TcpStream, mut to: TcpStream, direction: Direction, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut rng = rand::thread_rng();
    while !shared.stop.load(Ordering::SeqCst) {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => break,
        };
        let faults = shared.faults(direction);
        if faults.blackhole || rng.gen::<f64>() < faults.drop_fraction {
            continue;
        }
        if !faults.delay.is_zero() {
            thread::sleep(faults.delay);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server on a port the OS picks.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        if writer.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &FaultProxy) -> (TcpStream, std::io::BufReader<TcpStream>) {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let reader = std::io::BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    fn round_trip(stream: &mut TcpStream, reader: &mut impl BufRead, text: &str) -> Option<String> {
        stream.write_all(format!("{text}\n").as_bytes()).ok()?;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_string()),
            _ => None,
        }
    }

    #[test]
    fn relays_blackholes_per_direction_and_resets() {
        // Proves traffic passes, a blackhole in either direction stops replies, lifting it
        // restores them, and reset closes open connections while new ones still work.
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let (mut stream, mut reader) = connect(&proxy);
        assert_eq!(
            round_trip(&mut stream, &mut reader, "one").as_deref(),
            Some("one")
        );

        let hole = Faults {
            blackhole: true,
            ..Faults::default()
        };
        proxy.set(Direction::FromTarget, hole);
        assert_eq!(round_trip(&mut stream, &mut reader, "lost"), None);
        proxy.set(Direction::FromTarget, Faults::default());
        proxy.set(Direction::ToTarget, hole);
        assert_eq!(round_trip(&mut stream, &mut reader, "lost too"), None);
        proxy.blackhole(false);
        assert_eq!(
            round_trip(&mut stream, &mut reader, "two").as_deref(),
            Some("two")
        );

        proxy.reset();
        let mut buf = [0u8; 1];
        let closed = (0..40).any(|_| matches!(reader.get_mut().read(&mut buf), Ok(0) | Err(_)));
        assert!(closed, "reset closes the connection");
        let (mut stream, mut reader) = connect(&proxy);
        assert_eq!(
            round_trip(&mut stream, &mut reader, "three").as_deref(),
            Some("three")
        );
    }

    #[test]
    fn delays_and_drops() {
        // Proves a delay holds data back (without asserting its length) and a drop fraction of
        // 1.0 discards everything while 0.0 discards nothing.
        let proxy = FaultProxy::start(echo_server()).unwrap();
        let (mut stream, mut reader) = connect(&proxy);
        proxy.set(
            Direction::ToTarget,
            Faults {
                delay: Duration::from_millis(600),
                ..Faults::default()
            },
        );
        stream.write_all(b"slow\n").unwrap();
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).is_err(),
            "held past the read timeout"
        );
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "slow\n");
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();

        let drop_all = Faults {
            drop_fraction: 1.0,
            ..Faults::default()
        };
        proxy.set(Direction::ToTarget, drop_all);
        assert_eq!(round_trip(&mut stream, &mut reader, "dropped"), None);
        proxy.set(Direction::ToTarget, Faults::default());
        assert_eq!(
            round_trip(&mut stream, &mut reader, "kept").as_deref(),
            Some("kept")
        );
    }
}
