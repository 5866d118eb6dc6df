//! `oxbench wait-ready`: polls one endpoint until it serves, and says how long that took.
//!
//! "Serves" means what `etcdctl endpoint health` checks: a linearizable `Range` of the key
//! `health` succeeds (a permission-denied answer also counts, since it too comes from a member
//! that has a leader and applies requests). Each attempt opens a fresh connection, so a refused
//! or reset connection is simply retried [`POLL_INTERVAL`] later. An attempt may also hang when
//! the kernel accepted the connection but the server does not serve yet; it then completes as
//! soon as the server does, so hanging costs no accuracy, and [`ATTEMPT_TIMEOUT`] only bounds a
//! server that never answers. Used by `benches/compare-etcd.sh` to time restart-to-ready: the
//! clock starts when this process starts, which the script does right after spawning the server.

use std::time::{Duration, Instant};

use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::RangeRequest;
use serde_json::{json, Value};
use tonic::transport::Endpoint;
use tonic::Code;

use crate::load::runner::endpoint_uri;

/// The pause between two failed attempts; it bounds the measurement's resolution.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long one connection attempt or one request may take before it is abandoned.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of a successful wait.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    /// From the call of [`wait_ready`] to the first successful read.
    pub elapsed: Duration,
    /// Attempts made, the successful one included.
    pub attempts: u64,
}

impl Readiness {
    pub fn json(&self) -> Value {
        json!({
            "command": "wait-ready",
            "ready_secs": self.elapsed.as_secs_f64(),
            "attempts": self.attempts,
        })
    }
}

/// One attempt: connect, read `health` linearizably. `Err` carries why it failed.
async fn attempt(uri: &str) -> Result<(), String> {
    let channel = Endpoint::from_shared(uri.to_string())
        .map_err(|e| format!("invalid endpoint {uri}: {e}"))?
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {uri}: {e}"))?;
    let request = RangeRequest {
        key: b"health".to_vec(),
        ..RangeRequest::default()
    };
    match KvClient::new(channel).range(request).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::PermissionDenied => Ok(()),
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Polls `endpoint` until it serves or `timeout` passes; the error names the last failure.
pub async fn wait_ready(endpoint: &str, timeout: Duration) -> Result<Readiness, String> {
    let start = Instant::now();
    let uri = endpoint_uri(endpoint);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = timeout.saturating_sub(start.elapsed());
        let last_error = match tokio::time::timeout(remaining, attempt(&uri)).await {
            Ok(Ok(())) => {
                return Ok(Readiness {
                    elapsed: start.elapsed(),
                    attempts,
                })
            }
            Ok(Err(message)) => message,
            Err(_) => "the last attempt was still waiting for an answer".to_string(),
        };
        if start.elapsed() + POLL_INTERVAL >= timeout {
            return Err(format!(
                "{uri} not ready after {:.1} secs and {attempts} attempts: {last_error}",
                timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a closed port is reported as not ready once the deadline passes, with the cause.
    #[test]
    fn closed_port_times_out_with_the_last_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime.block_on(wait_ready(
            &format!("127.0.0.1:{port}"),
            Duration::from_millis(200),
        ));
        let message = outcome.expect_err("nothing listens on the port");
        assert!(message.contains("cannot connect"), "{message}");
    }
}
