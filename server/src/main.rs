//! `oxcd`: the server binary. It reads etcd's flags, `ETCD_*` variables and config file
//! (`oxcd_server::config`), answering `--help` and `--version` as etcd does and refusing a bad
//! configuration with etcd's message and exit code; then it starts the member
//! (`oxcd_server::etcdserver`), publishes its name and client URLs through raft (which needs a
//! leader and applies only after the log before it), logs etcd's milestone lines, and serves
//! clients until SIGTERM or SIGINT.
#![forbid(unsafe_code)]

use std::time::Duration;

use oxcd_server::config::{self, Action, Config, LogLevel};
use oxcd_server::{api, etcdserver};

/// mimalloc instead of glibc's malloc: request buffers are allocated on the API threads and
/// freed on the raft thread (and back), a pattern under which glibc's per-thread arenas spend
/// much of the server's CPU time consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let loaded = match config::load_from_process() {
        Ok(Action::Run(loaded)) => loaded,
        Ok(Action::PrintHelp(text)) | Ok(Action::PrintVersion(text)) => {
            print!("{text}");
            return;
        }
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(err.exit_code());
        }
    };
    init_logging(loaded.config.log_level);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Err(message) = run(&loaded.config) {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}

fn init_logging(level: LogLevel) {
    let max = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(max)
        .with_target(false)
        .with_ansi(false)
        .init();
}

fn run(cfg: &Config) -> Result<(), String> {
    let addrs = cfg.client_bind_addrs().map_err(|e| e.to_string())?;
    tracing::info!(
        name = %cfg.name,
        data_dir = %cfg.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "starting oxcd"
    );
    let started = etcdserver::start(cfg).map_err(|e| e.to_string())?;
    let server = started.server.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("oxcd-api")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (raft_done_tx, raft_done_rx) = tokio::sync::oneshot::channel();
    let raft_thread = started.raft_thread;
    std::thread::spawn(move || {
        let result = raft_thread.join().unwrap_or_else(|_| {
            Err(etcdserver::ServerError::Internal(
                "raft thread panicked".into(),
            ))
        });
        let _ = raft_done_tx.send(result);
    });
    let result = runtime.block_on(async move {
        let mut raft_done = raft_done_rx;
        tokio::select! {
            () = publish(&server, cfg) => {}
            ended = &mut raft_done => return raft_end_outcome(ended),
        }
        tracing::info!(
            "enabled capabilities for version {}",
            oxcd_server::config::ETCD_API_VERSION
        );
        tokio::spawn(etcdserver::compactor::run(server.clone(), cfg.auto_compaction));
        tokio::spawn(api::lease::run_expiry(server.clone()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Option<Result<(), String>>>();
        let watcher = tokio::spawn(async move {
            let outcome = tokio::select! {
                signal = shutdown_signal() => { tracing::info!("received {signal}, shutting down"); None }
                ended = &mut raft_done => Some(raft_end_outcome(ended)),
            };
            let _ = stop_tx.send(outcome.clone());
            (outcome, raft_done)
        });
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        api::serve::serve(&server, &addrs, shutdown)
            .await
            .map_err(|e| format!("cannot serve clients: {e}"))?;
        let (outcome, raft_done) = watcher.await.map_err(|e| e.to_string())?;
        if let Some(ended) = outcome {
            return ended;
        }
        server.stop();
        match raft_done.await {
            Ok(Ok(())) => Ok(()),
            ended => raft_end_outcome(ended),
        }
    });
    started.server.store().close();
    started
        .server
        .store()
        .backend()
        .close()
        .map_err(|e| format!("closing the backend: {e}"))?;
    if result.is_ok() {
        tracing::info!("stopped");
    }
    // Everything durable is closed. Freeing the in-memory index (a million keys take a
    // noticeable fraction of a second) and the runtime's tasks buys nothing at exit.
    runtime.shutdown_background();
    std::mem::forget(started.server);
    result
}

type RaftEnd = Result<Result<(), etcdserver::ServerError>, tokio::sync::oneshot::error::RecvError>;

/// What the raft loop ending by itself means for the process: a member removed from the
/// cluster stops cleanly (exit 0, etcd's texts); anything else is fatal.
fn raft_end_outcome(ended: RaftEnd) -> Result<(), String> {
    match ended {
        Ok(Err(etcdserver::ServerError::MemberRemoved)) => {
            tracing::info!("the data-dir used by this member must be removed.");
            Ok(())
        }
        Ok(Ok(())) => Err("the raft loop stopped".to_string()),
        Ok(Err(e)) => Err(format!("the raft loop failed: {e}")),
        Err(_) => Err("the raft loop went away".to_string()),
    }
}

/// Records this member's name and client URLs in the cluster through raft, retrying until it
/// is applied (etcd's `publish`); etcd serves clients only after that.
async fn publish(server: &etcdserver::EtcdServer, cfg: &Config) {
    let client_urls: Vec<String> = cfg
        .advertise_client_urls
        .iter()
        .map(|u| u.to_string())
        .collect();
    loop {
        match server.publish(&cfg.name, &client_urls).await {
            Ok(()) => break,
            // No leader yet: raft refused the proposal at once.
            Err(etcdserver::ServerError::NoLeader) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => tracing::warn!(%e, "failed to publish local member to cluster through raft"),
        }
    }
    // etcd 3.5's wording (scripts wait on it) with 3.4's attribute text.
    tracing::info!(
        local_member_id = format!("{:x}", server.member_id()),
        local_member_attributes = format!(
            "{{Name:{} ClientURLs:[{}]}}",
            cfg.name,
            client_urls.join(" ")
        ),
        cluster_id = format!("{:x}", server.cluster_id()),
        "published local member to cluster through raft"
    );
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return "nothing";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
