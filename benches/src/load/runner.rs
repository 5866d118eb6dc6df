//! Drives one `oxbench` run: opens the gRPC connections, runs the concurrent clients, shows
//! progress, and collects every client's [`Recorder`].
//!
//! Shape (etcd's `benchmark` tool): `conns` HTTP/2 connections, endpoints assigned to them
//! round-robin; `clients` tasks, client `i` on connection `i % conns`, each with one request in
//! flight at a time. Clients claim request numbers from one shared counter, so exactly `total`
//! requests are sent however fast each client is. The clock starts after every connection is
//! established, so connection set-up is not counted as request latency or in Requests/sec.
//! Only the first [`PRINTED_ERRORS`] failures are printed as they happen; all are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::lease_client::LeaseClient;
use oxcd_server::pb::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tonic::transport::{Channel, Endpoint};

use crate::load::report::Recorder;
use crate::load::workload::{Operation, Request, Workload};

/// How many failures are printed to stderr as they happen.
pub const PRINTED_ERRORS: u64 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TTL of each client's lease in `lease-keepalive` (etcd's tool grants 100 s).
const LEASE_TTL_SECS: i64 = 100;

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
}

/// What a run measured.
pub struct RunOutcome {
    pub recorder: Recorder,
    pub elapsed: Duration,
}

/// `127.0.0.1:2379` and `http://127.0.0.1:2379` both name the same endpoint.
pub(crate) fn endpoint_uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// Opens `conns` connections, endpoint `i % endpoints` for connection `i`. `adaptive_window`
/// sizes HTTP/2 flow-control windows from the measured bandwidth-delay product, as grpc-go (and
/// so etcd's own tool) does; `watch` uses it so its streams receive as etcd's client would.
pub(crate) async fn connect(
    endpoints: &[String],
    conns: usize,
    adaptive_window: bool,
) -> Result<Vec<Channel>, String> {
    let mut channels = Vec::with_capacity(conns);
    for i in 0..conns {
        let uri = endpoint_uri(&endpoints[i % endpoints.len()]);
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("invalid endpoint {uri}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_adaptive_window(adaptive_window);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {uri}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

pub(crate) fn progress_bar(total: u64) -> ProgressBar {
    // indicatif draws nothing when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed_precise}] {per_sec}")
    {
        bar.set_style(style);
    }
    bar
}

/// One client's connection: its KV and Lease stubs and, in `lease-keepalive`, its lease.
struct Client {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    lease_id: i64,
}

/// Sends one request and waits for its answer; a gRPC error becomes its display text.
async fn send(client: &mut Client, request: Request) -> Result<(), String> {
    let result = match request {
        Request::Put(put) => client.kv.put(put).await.map(drop),
        Request::Range(range) => client.kv.range(range).await.map(drop),
        Request::Txn(txn) => client.kv.txn(txn).await.map(drop),
        Request::KeepAlive => keep_alive_once(client).await,
    };
    result.map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// One keep-alive on a new stream (clientv3's `KeepAliveOnce`); a TTL of 0 is a failure.
async fn keep_alive_once(client: &mut Client) -> Result<(), tonic::Status> {
    let request = LeaseKeepAliveRequest {
        id: client.lease_id,
    };
    let mut responses = client
        .lease
        .lease_keep_alive(tokio_stream::once(request))
        .await?
        .into_inner();
    match responses.message().await? {
        Some(response) if response.ttl > 0 => Ok(()),
        _ => Err(tonic::Status::not_found("lease expired or revoked")),
    }
}

struct Shared {
    workload: Workload,
    total: u64,
    next_request: AtomicU64,
    failures_seen: AtomicU64,
    bar: ProgressBar,
}

async fn client_loop(shared: Arc<Shared>, mut client: Client, seed: u64) -> Recorder {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recorder = Recorder::new();
    loop {
        let index = shared.next_request.fetch_add(1, Ordering::Relaxed);
        if index >= shared.total {
            return recorder;
        }
        let request = shared.workload.request(index, &mut rng);
        let start = Instant::now();
        match send(&mut client, request).await {
            Ok(()) => recorder.success(start.elapsed()),
            Err(message) => {
                if shared.failures_seen.fetch_add(1, Ordering::Relaxed) < PRINTED_ERRORS {
                    shared
                        .bar
                        .suspend(|| eprintln!("oxbench: request failed: {message}"));
                }
                recorder.failure(message);
            }
        }
        shared.bar.inc(1);
    }
}

/// Runs the whole benchmark; errors are only those that prevent it from starting.
pub async fn run(config: &RunConfig, workload: Workload) -> Result<RunOutcome, String> {
    if config.endpoints.is_empty() || config.conns == 0 || config.clients == 0 {
        return Err("need at least one endpoint, one connection and one client".to_string());
    }
    let channels = connect(&config.endpoints, config.conns, false).await?;
    let shared = Arc::new(Shared {
        workload,
        total: config.total,
        next_request: AtomicU64::new(0),
        failures_seen: AtomicU64::new(0),
        bar: progress_bar(config.total),
    });
    let seed_base: u64 = rand::random();
    let mut clients = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        let channel = channels[i % channels.len()].clone();
        let mut lease = LeaseClient::new(channel.clone());
        let mut lease_id = 0;
        if matches!(shared.workload.operation, Operation::LeaseKeepAlive) {
            let grant = LeaseGrantRequest {
                ttl: LEASE_TTL_SECS,
                id: 0,
            };
            lease_id = lease
                .lease_grant(grant)
                .await
                .map_err(|e| format!("cannot grant a lease: {}", e.message()))?
                .into_inner()
                .id;
        }
        clients.push(Client {
            kv: KvClient::new(channel),
            lease,
            lease_id,
        });
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let seed = seed_base.wrapping_add(i as u64);
            tokio::spawn(client_loop(Arc::clone(&shared), client, seed))
        })
        .collect();
    let mut recorder = Recorder::new();
    for task in tasks {
        let client_recorder = task
            .await
            .map_err(|e| format!("a client task failed: {e}"))?;
        recorder.merge(&client_recorder);
    }
    let elapsed = start.elapsed();
    shared.bar.finish_and_clear();
    Ok(RunOutcome { recorder, elapsed })
}
