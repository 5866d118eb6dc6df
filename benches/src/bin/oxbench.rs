//! `oxbench`: the oxcd server load generator, etcd's `benchmark` tool counterpart.
//!
//! Runs one workload (`put`, `range`, `txn-put`) against any etcd v3 endpoint (oxcd or etcd
//! itself) and prints etcd's summary: Total, Slowest, Fastest, Average, Stddev, Requests/sec, a
//! latency histogram and percentiles; `--json` prints the same numbers as one JSON object. Flags
//! and defaults follow etcd's tool so the same command lines work for both. Exit status: 0 when
//! every request succeeded, 1 when any failed, 2 when the run could not start.
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
use oxcd_benches::load::workload::{KeySpec, Operation, Workload};
use rand::RngCore;

#[derive(Parser, Debug)]
#[command(
    name = "oxbench",
    about = "A low-level benchmark tool for etcd v3 servers (oxcd, etcd)"
)]
struct Cli {
    /// gRPC endpoints, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Total number of concurrent requests in flight.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10000)]
    total: u64,
    /// Key size in bytes (put, txn-put).
    #[arg(long, global = true, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes (put, txn-put).
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
        Command::WaitReady { .. } => return Err("wait-ready sends no workload".to_string()),
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

/// mimalloc, as the server uses: the load generator's own allocation costs come out of the CPU
/// the two share on one machine, so a cheaper client measures the servers more sharply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::WaitReady { timeout_secs } = cli.command {
        return wait_ready(&cli, timeout_secs);
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
