//! `oxcd`: the server binary. It reads etcd's flags, `ETCD_*` variables and config file
//! (`oxcd_server::config`), answering `--help` and `--version` as etcd does and refusing a bad
//! configuration with etcd's message and exit code. The etcd v3 server itself arrives with
//! issue 3; until then a valid configuration ends in a one-line notice and exit code 2, so no
//! script mistakes this binary for a running member.
#![forbid(unsafe_code)]

use oxcd_server::config::{self, Action};

fn main() {
    let loaded = match config::load_from_process() {
        Ok(Action::Run(loaded)) => loaded,
        Ok(Action::PrintHelp(text)) => {
            print!("{text}");
            return;
        }
        Ok(Action::PrintVersion(text)) => {
            print!("{text}");
            return;
        }
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(err.exit_code());
        }
    };
    for warning in &loaded.warnings {
        eprintln!("oxcd: warning: {warning}");
    }
    eprintln!(
        "oxcd: configuration for member {:?} (data dir {}) is valid, but the server arrives with \
         issue 3; only the storage engine and oxutl exist yet",
        loaded.config.name,
        loaded.config.data_dir.display()
    );
    std::process::exit(2);
}
