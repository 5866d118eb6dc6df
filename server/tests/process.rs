//! The `oxcd` process as an operator sees it: etcd's milestone log lines, HTTP `/health` and
//! `/version` on the client port, UNIMPLEMENTED for services not built yet, auto compaction,
//! and a clean stop on SIGTERM (even with an idle client connection open) followed by a restart with the data intact.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use oxcd_tests::etcd::{poll_until, Flavor};
use oxcd_tests::Etcd;

fn oxcd(extra: &[&str]) -> Etcd {
    Etcd::start_with_args(
        Flavor::Binary(Path::new(env!("CARGO_BIN_EXE_oxcd")).to_path_buf()),
        extra,
    )
    .expect("oxcd starts")
}

/// A plain HTTP/1.1 GET on the client port: (status line, body).
fn http_get(client_url: &str, path: &str) -> (String, String) {
    let addr = client_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn log_text(member: &Etcd) -> String {
    std::fs::read_to_string(member.data_dir().parent().unwrap().join("server.log"))
        .unwrap_or_default()
}

#[test]
fn logs_milestones_serves_http_endpoints_and_restarts_after_sigterm() {
    // Proves the log lines scripts wait on, /health and /version, grpc-go's answer for an
    // unknown service, and that SIGTERM stops cleanly with the data kept.
    let mut member = oxcd(&[]);
    let log = log_text(&member);
    for phrase in [
        "published local member to cluster",
        "enabled capabilities for version",
        "ready to serve client requests",
    ] {
        assert!(log.contains(phrase), "log lacks {phrase:?}:\n{log}");
    }
    let (status, body) = http_get(member.client_url(), "/health");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), r#"{"health":"true"}"#);
    let (status, body) = http_get(member.client_url(), "/version");
    assert!(status.contains("200"), "{status}");
    let version: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(version["etcdserver"], "3.5.0");
    assert_eq!(version["etcdcluster"], "3.5.0");
    assert_eq!(version["oxcd"], env!("CARGO_PKG_VERSION"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(member.client_url().to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        oxcd_server::pb::etcdserverpb::auth_client::AuthClient::new(channel)
            .auth_status(oxcd_server::pb::etcdserverpb::AuthStatusRequest::default())
            .await
            .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), "unknown service etcdserverpb.Auth");

    member.ctl(&["put", "kept", "yes"]).unwrap();
    // An idle HTTP/2 client that never closes its connection must not hold up the stop.
    let mut idle = TcpStream::connect(member.client_url().trim_start_matches("http://")).unwrap();
    idle.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    member.restart().unwrap();
    drop(idle);
    assert!(log_text(&member).contains("received SIGTERM"));
    assert_eq!(
        member.ctl(&["get", "kept", "--print-value-only"]).unwrap(),
        "yes\n"
    );
    member.stop().unwrap();
}

#[test]
fn periodic_auto_compaction_compacts_old_revisions() {
    // Proves --auto-compaction-mode=periodic compacts revisions older than the retention.
    let mut member = oxcd(&[
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1s",
    ]);
    member.ctl(&["put", "k", "1"]).unwrap();
    member.ctl(&["put", "k", "2"]).unwrap();
    poll_until(Duration::from_secs(30), "auto compaction", || {
        let out = member.ctl(&["get", "k", "--rev=2"]);
        Ok(out
            .err()
            .filter(|e| {
                e.to_string()
                    .contains("required revision has been compacted")
            })
            .map(|_| ()))
    })
    .unwrap();
    assert!(log_text(&member).contains("finished auto-compaction"));
    member.stop().unwrap();
}
