//! `oxbench`: the oxcd server load generator (etcd's `benchmark` tool counterpart).
//!
//! Not built yet: it arrives with issue 3. Until then it says so and exits with status 2, so a
//! script that calls it fails loudly instead of reporting numbers that were never measured.

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "oxbench: the server load generator is not implemented yet; it arrives with issue 3 \
         (engine micro-benchmarks: cargo bench -p oxcd-benches --bench engine)"
    );
    ExitCode::from(2)
}
