//! Auto compaction (etcd's `compactor` package), run as a task on the API runtime. Both modes
//! compact through raft, as a client's Compact would, so every member compacts at the same
//! revision.
//!
//! * Revision mode (`--auto-compaction-mode=revision`, retention N): every 5 minutes, compact
//!   to the current revision minus N, if that moved since the last compaction.
//! * Periodic mode (retention D): sample the current revision every tenth of the compaction
//!   period (D, at most one hour, as etcd 3.4 uses); every period, compact to the newest
//!   sample at least D old, so about D of history stays readable.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::server::EtcdServer;
use crate::config::AutoCompaction;
use crate::pb::etcdserverpb::{CompactionRequest, InternalRaftRequest};

/// etcd's revision-mode check interval.
const REVISION_MODE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd 3.4 compacts at least hourly in periodic mode, whatever the retention.
const MAX_PERIOD: Duration = Duration::from_secs(60 * 60);

/// Runs auto compaction as configured until the server stops; returns at once when disabled.
pub async fn run(server: EtcdServer, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Disabled => {}
        AutoCompaction::Revision(keep) => revision_mode(server, keep).await,
        AutoCompaction::Periodic(retention) => periodic_mode(server, retention).await,
    }
}

async fn revision_mode(server: EtcdServer, keep: u64) {
    let mut last = 0;
    let mut ticker = tokio::time::interval(REVISION_MODE_INTERVAL);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Ok(current) = server.store().rev() else {
            return;
        };
        let target = current - i64::try_from(keep).unwrap_or(i64::MAX);
        if target <= 0 || target == last {
            continue;
        }
        if compact(&server, target).await {
            last = target;
        }
    }
}

async fn periodic_mode(server: EtcdServer, retention: Duration) {
    let period = retention.min(MAX_PERIOD).max(Duration::from_secs(1));
    let sample_every = (period / 10).max(Duration::from_millis(100));
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut next_compaction = Instant::now() + period;
    let mut last = 0;
    let mut ticker = tokio::time::interval(sample_every);
    loop {
        ticker.tick().await;
        let Ok(current) = server.store().rev() else {
            return;
        };
        let now = Instant::now();
        samples.push_back((now, current));
        if now < next_compaction {
            continue;
        }
        next_compaction = now + period;
        // The newest sample at least `retention` old; drop the ones before it.
        let Some(position) = samples
            .iter()
            .rposition(|(taken, _)| now.duration_since(*taken) >= retention)
        else {
            continue;
        };
        let target = samples[position].1;
        samples.drain(..position);
        if target > last && compact(&server, target).await {
            last = target;
        }
    }
}

/// Proposes a compaction at `revision`; true if it took effect or was already done.
async fn compact(server: &EtcdServer, revision: i64) -> bool {
    tracing::info!(revision, "starting auto-compaction");
    let request = InternalRaftRequest {
        compaction: Some(CompactionRequest {
            revision,
            physical: false,
        }),
        ..InternalRaftRequest::default()
    };
    match server.propose(request).await {
        Ok(_) => {
            tracing::info!(revision, "finished auto-compaction");
            true
        }
        Err(e) => {
            tracing::warn!(revision, %e, "auto-compaction failed");
            e.to_string().contains("compacted")
        }
    }
}
