//! The client listeners: on every `--listen-client-urls` address, etcd's gRPC services and the
//! HTTP endpoints `/health` and `/version` share one port, as in etcd (HTTP/2 for gRPC,
//! HTTP/1.1 for the endpoints).
//!
//! Services not built yet (Auth) are not routed: a call to them
//! gets gRPC's UNIMPLEMENTED, and the README's compatibility table says so.
//!
//! Every connection reads through [`AuthorityFix`], which lets etcdctl 3.4's
//! `:authority: http://host:port` through (see `authority.rs`).
//!
//! Message size: etcd lets grpc-go receive `--max-request-bytes` plus 512 KiB of framing and
//! answers a request between the two limits "etcdserver: request is too large". tonic's own
//! limit is set well above that so the KV service can answer a larger message with grpc-go's
//! status text instead of tonic's (`kv.rs`).

use std::future::Future;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt as _;
use tonic::service::Routes;
use tonic::transport::Server;

use super::authority::AuthorityFix;
use super::cluster::ClusterService;
use super::election::ElectionService;
use super::errors::{EtcdError, GRPC_OVERHEAD_BYTES};
use super::kv::KvService;
use super::lease::LeaseService;
use super::lock::LockService;
use super::maintenance::{server_version, MaintenanceService};
use super::watch::WatchService;
use crate::config::BindAddr;
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;

/// tonic's receive limit is this many times etcd's, so oversized messages reach the service.
const TONIC_LIMIT_FACTOR: usize = 4;

/// How long a stop waits for client connections to close by themselves.
const GRACEFUL_STOP: std::time::Duration = std::time::Duration::from_secs(2);

/// Every route of the client port.
pub fn routes(server: &EtcdServer) -> Routes {
    let max_request = server.limits().max_request_bytes + GRPC_OVERHEAD_BYTES;
    let recv_limit = (max_request as usize).saturating_mul(TONIC_LIMIT_FACTOR);
    let http = axum::Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .fallback(unknown_service)
        .with_state(server.clone());
    let routes = Routes::from(http)
        .add_service(
            KvServer::new(KvService::new(server.clone()))
                .max_decoding_message_size(recv_limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            MaintenanceServer::new(MaintenanceService::new(server.clone()))
                .max_decoding_message_size(recv_limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::new(WatchService::new(server.clone()))
                .max_decoding_message_size(recv_limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            LeaseServer::new(LeaseService::new(server.clone()))
                .max_decoding_message_size(recv_limit),
        )
        .add_service(
            ClusterServer::new(ClusterService::new(server.clone()))
                .max_decoding_message_size(recv_limit),
        )
        .add_service(
            LockServer::new(LockService::new(server.clone())).max_decoding_message_size(recv_limit),
        )
        .add_service(
            ElectionServer::new(ElectionService::new(server.clone()))
                .max_decoding_message_size(recv_limit),
        );
    let gated = routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            learner_gate,
        ));
    Routes::from(gated)
}

/// The gRPC methods a learner serves (etcd's `isRPCSupportedForLearner`); Range only when
/// serializable, which the KV service checks.
const LEARNER_METHODS: [&str; 2] = ["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

/// etcd's learner interceptor: on a learner, every other gRPC call, streaming ones included,
/// is refused with "etcdserver: rpc not supported for learner". HTTP endpoints are served.
async fn learner_gate(
    State(server): State<EtcdServer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc && server.is_learner() && !LEARNER_METHODS.contains(&request.uri().path()) {
        return tonic::Status::from(EtcdError::NotSupportedForLearner).into_http();
    }
    next.run(request).await
}

/// Binds every address first (so a bad address fails the start), then serves them all until
/// `shutdown` completes.
pub async fn serve(
    server: &EtcdServer,
    addrs: &[BindAddr],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for addr in addrs {
        let routes = routes(server);
        let mut stop = stop_rx.clone();
        let signal = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let task = match addr {
            BindAddr::Tcp(socket) => {
                let listener = tokio::net::TcpListener::bind(socket).await?;
                // tonic ignores its own TCP settings for a caller's listener: set them here.
                let incoming = TcpListenerStream::new(listener).map(|connection| {
                    connection.and_then(|stream| {
                        stream.set_nodelay(true)?;
                        Ok(AuthorityFix::new(stream))
                    })
                });
                spawn_listener(routes, incoming, signal)
            }
            BindAddr::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let listener = tokio::net::UnixListener::bind(path)?;
                let incoming = UnixListenerStream::new(listener).map(|c| c.map(AuthorityFix::new));
                spawn_listener(routes, incoming, signal)
            }
        };
        tasks.push(task);
    }
    tracing::info!("ready to serve client requests");
    shutdown.await;
    let _ = stop_tx.send(true);
    // Graceful shutdown waits for every open connection to close; an idle client may never
    // close its own. Like etcd, give requests in flight a moment, then drop what is left.
    let deadline = tokio::time::Instant::now() + GRACEFUL_STOP;
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(%e, "client listener failed"),
            Ok(Err(e)) => tracing::warn!(%e, "client listener task failed"),
            Err(_) => {
                tracing::info!("closing client connections still open");
                task.abort();
            }
        }
    }
    Ok(())
}

/// What grpc-go answers a call to a service it does not serve: UNIMPLEMENTED, "unknown
/// service <name>" (a gRPC status in the headers of an HTTP 200 response).
async fn unknown_service(uri: axum::http::Uri) -> impl axum::response::IntoResponse {
    let service = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let message = format!("unknown service {service}");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/grpc".to_string()),
            (
                header::HeaderName::from_static("grpc-status"),
                "12".to_string(),
            ),
            (header::HeaderName::from_static("grpc-message"), message),
        ],
    )
}

/// Serves `routes` on the connections of one listener until `signal`.
fn spawn_listener<I, IO>(
    routes: Routes,
    incoming: I,
    signal: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>>
where
    I: tokio_stream::Stream<Item = std::io::Result<IO>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    let mut builder = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(None);
    let router = builder.add_routes(routes);
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal))
}

/// etcd's `/health`: healthy with a leader and no alarm.
async fn health(
    State(server): State<EtcdServer>,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    let healthy = server.leader() != 0 && server.alarms().is_empty();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"health\":\"{healthy}\"}}"),
    )
}

/// etcd's `/version`, plus oxcd's own version.
async fn version() -> ([(header::HeaderName, &'static str); 1], String) {
    let etcd = server_version();
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            "{{\"etcdserver\":\"{etcd}\",\"etcdcluster\":\"{etcd}\",\"oxcd\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
    )
}
