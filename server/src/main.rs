//! `oxcd`: the server binary. The etcd v3 server arrives with issue 3; until then this binary
//! says so and exits non-zero, so no script mistakes it for a running member.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("oxcd: the server arrives with issue 3; only the storage engine and oxutl exist yet");
    std::process::exit(2);
}
