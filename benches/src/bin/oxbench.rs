//! `oxbench`: the oxcd server load generator, etcd's `benchmark` tool counterpart.
//!
//! Runs one workload (`put`, `range`, `txn-put`, `lease-keepalive`) against any etcd v3 endpoint
//! (oxcd or etcd itself) and prints etcd's summary: Total, Slowest, Fastest, Average, Stddev,
//! Requests/sec, a latency histogram and percentiles; `--json` prints the same numbers as one
//! JSON object. Flags and defaults follow etcd's tool so the same command lines work for both.
//! Exit status: 0 when every request succeeded, 1 when any failed, 2 when the run could not
//! start.
//!
//! `watch` (etcd's `benchmark watch`) creates many watchers, sends puts to the watched keys and
//! reports watch creation time, the puts, and events received per second with the delay from
//! put sent to event received; every watcher's events are checked (exactly the puts of its key,
//! in revision order), and exit status 1 says a check failed, which voids the figures.
//!
//! `wait-ready` (not in etcd's tool) polls the first endpoint until it serves a linearizable read
//! and prints how long that took; exit status 1 when `--timeout-secs` passes first.
//!
//! The parts live in `oxcd_benches::load`; this file only parses flags and prints.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use oxcd_benches::load::ready;
use oxcd_benches::load::runner::{self, RunConfig};
use oxcd_benches::load::watch::{self, WatchConfig};
use oxcd_benches::load::watch_check::WatchPlan;
use oxcd_benches::load::workload::{KeySpec, Operation, Workload};
use rand::RngCore;

#[derive(Parser, Debug)]
#[command(
    name = "oxbench",
    about = "A low-level benchmark tool for etcd v3 servers (oxcd, etcd)"
)]
struct Cli {
    /// gRPC endpoints, comma separated; connection i goes to endpoint i % N (round-robin).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// Total number of gRPC connections (watch: streams and put clients share them).
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Total number of concurrent requests in flight (watch: concurrent put clients).
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Total number of requests (not used by watch: see its --put-total).
    #[arg(long, global = true, default_value_t = 10000)]
    total: u64,
    /// Key size in bytes (put, txn-put, watch).
    #[arg(long, global = true, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes (put, txn-put, watch; watch needs at least 8).
    #[arg(long, global = true, default_value_t = 8)]
    val_size: usize,
    /// Use sequential keys instead of random ones (put; txn-put is always sequential).
    #[arg(long, global = true)]
    sequential_keys: bool,
    /// Number of distinct keys written (put, txn-put).
    #[arg(long, global = true, default_value_t = 1)]
    key_space_size: u64,
    /// Print the summary as one JSON object instead of etcd's text report.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmark put.
    Put,
    /// Benchmark range: KEY alone reads one key, KEY END reads [KEY, END).
    Range {
        key: String,
        end: Option<String>,
        /// Linearizable (l) or serializable (s).
        #[arg(long, value_enum, default_value_t = Consistency::L)]
        consistency: Consistency,
    },
    /// Benchmark txn with puts only (no compares).
    TxnPut {
        /// Number of puts per txn.
        #[arg(long, default_value_t = 1)]
        txn_ops: u64,
    },
    /// Benchmark lease keep-alive: each client grants a lease, then each request is one
    /// keep-alive of it on a new stream (etcd's `benchmark lease-keepalive`).
    LeaseKeepalive,
    /// Benchmark watch: events delivered per second to many watchers of a few keys while puts
    /// write those keys (etcd's `benchmark watch`); every watcher's events are checked.
    Watch {
        /// Number of watchers.
        #[arg(long, default_value_t = 1000)]
        watchers: u64,
        /// Number of Watch streams the watchers are spread over (watcher w on stream w % S).
        #[arg(long, default_value_t = 100)]
        streams: u64,
        /// Number of distinct watched keys (watcher w watches key w % K; put i writes i % K).
        #[arg(long, default_value_t = 1)]
        watched_key_total: u64,
        /// Number of puts to the watched keys.
        #[arg(long, visible_alias = "puts", default_value_t = 10000)]
        put_total: u64,
        /// Puts per second over all clients; 0 sends them as fast as the clients can.
        #[arg(long, default_value_t = 0.0)]
        put_rate: f64,
    },
    /// Wait until the first endpoint serves a linearizable read; print how long it took.
    WaitReady {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout_secs: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Consistency {
    L,
    S,
}

fn workload(cli: &Cli) -> Result<Workload, String> {
    let operation = match &cli.command {
        Command::Put => Operation::Put,
        Command::Range {
            key,
            end,
            consistency,
        } => Operation::Range {
            key: key.clone().into_bytes(),
            range_end: end.clone().unwrap_or_default().into_bytes(),
            serializable: *consistency == Consistency::S,
        },
        Command::TxnPut { txn_ops } if *txn_ops == 0 => {
            return Err("--txn-ops must be at least 1".to_string())
        }
        Command::TxnPut { txn_ops } => Operation::TxnPut {
            ops_per_txn: *txn_ops,
        },
        Command::LeaseKeepalive => Operation::LeaseKeepAlive,
        Command::WaitReady { .. } | Command::Watch { .. } => {
            return Err("wait-ready and watch have their own drivers".to_string())
        }
    };
    let keys = KeySpec {
        key_size_bytes: cli.key_size,
        key_space_size: cli.key_space_size,
        sequential: cli.sequential_keys,
    };
    keys.validate()?;
    let mut value = vec![0u8; cli.val_size];
    rand::thread_rng().fill_bytes(&mut value);
    Ok(Workload {
        operation,
        keys,
        value,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("oxbench: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

fn wait_ready(cli: &Cli, timeout_secs: f64) -> ExitCode {
    let Ok(timeout) = Duration::try_from_secs_f64(timeout_secs) else {
        eprintln!("oxbench: --timeout-secs must be a non-negative number of seconds");
        return ExitCode::from(2);
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(ready::wait_ready(&cli.endpoints[0], timeout)) {
        Ok(readiness) if cli.json => println!("{}", readiness.json()),
        Ok(readiness) => println!(
            "ready after {:.4} secs ({} attempts)",
            readiness.elapsed.as_secs_f64(),
            readiness.attempts
        ),
        Err(message) => {
            eprintln!("oxbench: {message}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn watch(cli: &Cli) -> ExitCode {
    let Command::Watch {
        watchers,
        streams,
        watched_key_total,
        put_total,
        put_rate,
    } = cli.command
    else {
        return ExitCode::from(2);
    };
    let mut value = vec![0u8; cli.val_size];
    rand::thread_rng().fill_bytes(&mut value);
    let config = WatchConfig {
        endpoints: cli.endpoints.clone(),
        conns: cli.conns,
        put_clients: cli.clients,
        plan: WatchPlan {
            watchers,
            streams,
            watched_keys: watched_key_total,
            puts: put_total,
        },
        put_rate,
        key_size_bytes: cli.key_size,
        value,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let report = match runtime.block_on(watch::run(&config)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("oxbench: {message}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    if !report.verified() {
        eprintln!(
            "oxbench: watch check failed ({} problems), the figures are void; first: {}",
            report.problems.len(),
            report.problems[0]
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// mimalloc, as the server uses: the load generator's own allocation costs come out of the CPU
/// the two share on one machine, so a cheaper client measures the servers more sharply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::WaitReady { timeout_secs } = cli.command {
        return wait_ready(&cli, timeout_secs);
    }
    if let Command::Watch { .. } = cli.command {
        return watch(&cli);
    }
    let workload = match workload(&cli) {
        Ok(workload) => workload,
        Err(message) => {
            eprintln!("oxbench: {message}");
            return ExitCode::from(2);
        }
    };
    let config = RunConfig {
        endpoints: cli.endpoints.clone(),
        conns: cli.conns,
        clients: cli.clients,
        total: cli.total,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let command = workload.operation.name();
    let outcome = match runtime.block_on(runner::run(&config, workload)) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("oxbench: {message}");
            return ExitCode::from(2);
        }
    };
    let summary = outcome.recorder.summarize(command, outcome.elapsed);
    if cli.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
    }
    if summary.failed > 0 {
        eprintln!(
            "oxbench: {} of {} requests failed",
            summary.failed, cli.total
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
