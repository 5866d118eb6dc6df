//! The peer listeners before the transport runs. They are bound first thing at start-up (so a
//! port in use fails at once), but the transport starts only once the member has bootstrapped,
//! opened its backend and rebuilt its index. Until then a peer's connection would sit in the
//! listen backlog until the peer's own timeout: members started together would each wait out
//! the others' "already bootstrapped" checks (1 s per peer), and a restart with a large index
//! would leave its peers' dials hanging for their hello timeout.
//!
//! [`EarlyCloser`] accepts those connections and closes them at once, so a peer's check skips
//! this member and its writer retries after its backoff. It polls (the listeners are
//! non-blocking while it runs) so that stopping it never depends on waking a blocked
//! `accept`; [`EarlyCloser::stop`] puts the listeners back in blocking mode for the transport.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often an idle early listener looks for connections and for the stop.
const POLL: Duration = Duration::from_millis(5);

/// Closes every connection to some listeners until stopped. See the module doc.
pub struct EarlyCloser {
    stop: Arc<AtomicBool>,
    listeners: Vec<TcpListener>,
    threads: Vec<JoinHandle<()>>,
}

impl EarlyCloser {
    /// Starts closing connections to `listeners` (clones of them are kept; the caller keeps
    /// the originals for the transport).
    pub fn start(listeners: &[TcpListener]) -> std::io::Result<EarlyCloser> {
        let mut closer = EarlyCloser {
            stop: Arc::new(AtomicBool::new(false)),
            listeners: Vec::new(),
            threads: Vec::new(),
        };
        for listener in listeners {
            // On failure `closer` drops, which stops the threads already started.
            let listener = listener.try_clone()?;
            listener.set_nonblocking(true)?;
            let thread_listener = listener.try_clone()?;
            closer.listeners.push(listener);
            let stop = Arc::clone(&closer.stop);
            let thread = std::thread::Builder::new()
                .name("oxcd-peer-early".into())
                .spawn(move || close_until_stopped(&thread_listener, &stop))?;
            closer.threads.push(thread);
        }
        Ok(closer)
    }

    /// Stops closing connections and waits until no thread accepts any more; the listeners
    /// are blocking again. Connections arriving from now on wait for the transport.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for EarlyCloser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        for listener in &self.listeners {
            if let Err(e) = listener.set_nonblocking(false) {
                // The transport's accept loop would then spin on WouldBlock: say why.
                tracing::error!(%e, "cannot make a peer listener blocking again");
            }
        }
    }
}

fn close_until_stopped(listener: &TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, addr)) => {
                tracing::debug!(%addr, "closed a peer connection: this member is starting");
                drop(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::debug!(%e, "accepting a peer connection during start-up failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;
    use std::time::Instant;

    #[test]
    fn connections_are_closed_until_stop_then_left_for_the_transport() {
        // Proves a connection made while the closer runs ends at once (EOF, not a wait), and
        // once stopped the listener is blocking and its connections are left to be accepted.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let closer = EarlyCloser::start(std::slice::from_ref(&listener)).expect("start");
        let mut early = TcpStream::connect(addr).expect("connect");
        early
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = Instant::now();
        let mut buf = [0u8; 1];
        let read = early.read(&mut buf);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(started.elapsed() < Duration::from_secs(4));

        closer.stop();
        let mut later = TcpStream::connect(addr).expect("connect");
        let (mut accepted, _) = listener.accept().expect("a blocking accept gets it");
        std::io::Write::write_all(&mut accepted, b"x").expect("write");
        later.read_exact(&mut buf).expect("still open");
        assert_eq!(&buf, b"x");
    }
}
