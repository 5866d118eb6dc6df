//! `oxbench watch`: how fast a server delivers watch events to many watchers, after etcd's
//! `benchmark watch`. Which key each put and watcher uses and how every event is checked is in
//! [`crate::load::watch_check`]; this module drives the network.
//!
//! Phases, each starting when the previous one is complete:
//! 1. open `conns` connections and read the current revision R;
//! 2. open `streams` Watch streams (stream `s` on connection `s % conns`), each sending the
//!    create requests of all its watchers at once, every watcher starting at revision R + 1;
//!    wait until every watcher is created (reported as watch creation time). Starting at R + 1
//!    rather than "now" means no event can slip between a create and the first put;
//! 3. the clock starts; `put_clients` clients (client `c` on connection `c % conns`) send the
//!    measured puts, claiming put numbers from one counter, optionally paced to `put_rate` a
//!    second. Each put's send time is kept under its number, so a stream task turns each event
//!    into a put-sent-to-event-received delay without keeping the events. The clock stops when
//!    the last expected event arrives: events/sec is expected events over that interval;
//! 4. one fence put per key; each stream ends once all its watchers saw their fence.
//!
//! A stream that fails or ends, a failed put, or [`STALL_TIMEOUT`] without a new event once all
//! puts are acknowledged ends the run early; the report then lists the problems and its figures
//! are not to be used. Stream tasks record into their own [`Recorder`]s, merged at the end, and
//! share only atomic counters with the rest of the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use oxcd_server::pb::etcdserverpb::kv_client::KvClient;
use oxcd_server::pb::etcdserverpb::watch_client::WatchClient;
use oxcd_server::pb::etcdserverpb::watch_request::RequestUnion;
use oxcd_server::pb::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use crate::load::report::Recorder;
use crate::load::runner::{connect, progress_bar, PRINTED_ERRORS};
use crate::load::watch_check::{
    value_of_put, Seen, WatchPlan, WatchReport, WatcherCheck, PUT_NUMBER_BYTES,
};
use crate::load::workload::KeySpec;

/// How long the run waits for a new event once every put is acknowledged, and for the fences.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long creating every watcher may take.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the run looks for a stall.
const STALL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The shape of one watch run.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub put_clients: usize,
    pub plan: WatchPlan,
    /// Puts per second over all put clients; 0 sends as fast as the clients can.
    pub put_rate: f64,
    pub key_size_bytes: usize,
    /// Every put's value: this, with the put's number over its first bytes.
    pub value: Vec<u8>,
}

impl WatchConfig {
    fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() || self.conns == 0 || self.put_clients == 0 {
            return Err("need at least one endpoint, one connection and one client".to_string());
        }
        if self.value.len() < PUT_NUMBER_BYTES {
            return Err(format!(
                "watch needs --val-size of at least {PUT_NUMBER_BYTES}: each value carries its \
                 put's number"
            ));
        }
        if !(self.put_rate >= 0.0 && self.put_rate.is_finite()) {
            return Err("--put-rate must be a non-negative number".to_string());
        }
        self.plan.validate()?;
        self.key_spec().validate()
    }

    fn key_spec(&self) -> KeySpec {
        KeySpec {
            key_size_bytes: self.key_size_bytes,
            key_space_size: self.plan.watched_keys,
            sequential: true,
        }
    }
}

/// What every task of a run shares.
struct Shared {
    plan: WatchPlan,
    /// The watched keys' bytes, by key number.
    keys: Vec<Vec<u8>>,
    value: Vec<u8>,
    /// The origin of `sent_at_ns`.
    clock: Instant,
    /// Per put number: nanoseconds from `clock` to the put's send, plus 1 (0: not sent yet).
    sent_at_ns: Vec<AtomicU64>,
    /// Per key: the sum of the revisions its measured puts were acknowledged with.
    acknowledged_revision_sum: Vec<AtomicI64>,
    next_put: AtomicU64,
    puts_done: AtomicU64,
    puts_failed: AtomicU64,
    /// Measured events received, all streams together.
    delivered: AtomicU64,
    bar: ProgressBar,
}

/// What a stream task tells the run as it goes.
enum Note {
    Created,
    /// Every measured event of the stream arrived, the last at this instant.
    Measured(Instant),
    /// Every watcher of the stream saw its fence.
    Fenced,
    Failed(String),
}

fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

async fn current_revision(channel: &Channel) -> Result<i64, String> {
    let request = RangeRequest {
        key: b"oxbench-watch".to_vec(),
        ..RangeRequest::default()
    };
    KvClient::new(channel.clone())
        .range(request)
        .await
        .map_err(|status| format!("cannot read the current revision: {}", status_text(status)))?
        .into_inner()
        .header
        .map(|header| header.revision)
        .ok_or_else(|| "a range response without a header".to_string())
}

/// Sends put number `index` and records its send time and acknowledged revision.
async fn put(shared: &Shared, kv: &mut KvClient<Channel>, index: u64) -> Result<Duration, String> {
    let key = shared.plan.key_of_put(index) as usize;
    let request = PutRequest {
        key: shared.keys[key].clone(),
        value: value_of_put(&shared.value, index),
        ..PutRequest::default()
    };
    let sent = Instant::now();
    let since_clock = u64::try_from((sent - shared.clock).as_nanos()).unwrap_or(u64::MAX - 1);
    shared.sent_at_ns[index as usize].store(since_clock + 1, Ordering::Release);
    let response = kv.put(request).await.map_err(status_text)?.into_inner();
    let latency = sent.elapsed();
    let revision = response
        .header
        .map(|header| header.revision)
        .ok_or_else(|| "a put response without a header".to_string())?;
    if index < shared.plan.puts {
        shared.acknowledged_revision_sum[key].fetch_add(revision, Ordering::Relaxed);
    }
    Ok(latency)
}

/// One put client; returns its latencies and when its last put was acknowledged.
async fn put_client(
    shared: Arc<Shared>,
    channel: Channel,
    start: Instant,
    put_rate: f64,
) -> (Recorder, Instant) {
    let mut kv = KvClient::new(channel);
    let mut recorder = Recorder::new();
    loop {
        let index = shared.next_put.fetch_add(1, Ordering::Relaxed);
        if index >= shared.plan.puts {
            return (recorder, Instant::now());
        }
        if put_rate > 0.0 {
            let due = start + Duration::from_secs_f64(index as f64 / put_rate);
            tokio::time::sleep_until(due.into()).await;
        }
        match put(&shared, &mut kv, index).await {
            Ok(latency) => recorder.success(latency),
            Err(message) => {
                if shared.puts_failed.fetch_add(1, Ordering::Relaxed) < PRINTED_ERRORS {
                    shared
                        .bar
                        .suspend(|| eprintln!("oxbench: put failed: {message}"));
                }
                recorder.failure(message);
            }
        }
        shared.puts_done.fetch_add(1, Ordering::Release);
    }
}

/// One stream's watchers and what they received.
struct Stream {
    checks: Vec<WatcherCheck>,
    /// Watch ID → index in `checks`, in the order the creations were answered.
    slots: HashMap<i64, usize>,
    recorder: Recorder,
    /// Responses that carried measured events (how the server batched them).
    measured_responses: u64,
    measured_owed: u64,
    fences_owed: usize,
}

impl Stream {
    fn new(checks: Vec<WatcherCheck>) -> Stream {
        Stream {
            measured_owed: checks.iter().map(WatcherCheck::expected).sum(),
            measured_responses: 0,
            fences_owed: checks.len(),
            slots: HashMap::with_capacity(checks.len()),
            recorder: Recorder::new(),
            checks,
        }
    }

    /// Creates the watchers, then reads events until every watcher saw its fence.
    async fn serve(
        &mut self,
        shared: &Shared,
        channel: Channel,
        start_revision: i64,
        notes: &mpsc::UnboundedSender<Note>,
    ) -> Result<(), String> {
        // Every create request is queued before the call: the server answers the call's
        // headers only with its first response.
        let (requests, queued) = mpsc::channel(self.checks.len());
        for check in &self.checks {
            let create = WatchCreateRequest {
                key: shared.keys[check.key as usize].clone(),
                start_revision,
                ..WatchCreateRequest::default()
            };
            let request = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            };
            if requests.try_send(request).is_err() {
                return Err("the create request queue is full".to_string());
            }
        }
        let mut responses = WatchClient::new(channel)
            .watch(ReceiverStream::new(queued))
            .await
            .map_err(status_text)?
            .into_inner();
        while self.slots.len() < self.checks.len() {
            let response = next_response(&mut responses).await?;
            if !response.created || response.canceled {
                return Err(format!(
                    "watch {} answered {} while watchers were being created",
                    response.watch_id,
                    describe(&response)
                ));
            }
            let slot = self.slots.len();
            if self.slots.insert(response.watch_id, slot).is_some() {
                return Err(format!("watch ID {} created twice", response.watch_id));
            }
        }
        let _ = notes.send(Note::Created);
        while self.fences_owed > 0 {
            let response = next_response(&mut responses).await?;
            self.receive(shared, &response, notes)?;
        }
        let _ = notes.send(Note::Fenced);
        // Closing the request side ends the stream; not before the last fence.
        drop(requests);
        Ok(())
    }

    fn receive(
        &mut self,
        shared: &Shared,
        response: &WatchResponse,
        notes: &mpsc::UnboundedSender<Note>,
    ) -> Result<(), String> {
        let received_at = Instant::now();
        if response.canceled || response.compact_revision != 0 || response.created {
            return Err(format!(
                "watch {} answered {}",
                response.watch_id,
                describe(response)
            ));
        }
        if response.events.is_empty() {
            return Ok(());
        }
        let Some(&slot) = self.slots.get(&response.watch_id) else {
            return Err(format!("events for unknown watch ID {}", response.watch_id));
        };
        let since_clock = u64::try_from((received_at - shared.clock).as_nanos()).unwrap_or(0);
        let check = &mut self.checks[slot];
        let key = &shared.keys[check.key as usize];
        let mut measured = 0;
        for event in &response.events {
            let had_fence = check.fence_seen();
            match check.observe(&shared.plan, key, event) {
                Seen::Measured { put } => {
                    measured += 1;
                    let sent = shared.sent_at_ns[put as usize].load(Ordering::Acquire);
                    if sent > 0 {
                        let delay_ns = since_clock.saturating_sub(sent - 1);
                        self.recorder.success(Duration::from_nanos(delay_ns));
                    }
                }
                Seen::Fence if !had_fence => self.fences_owed -= 1,
                Seen::Fence | Seen::Invalid => {}
            }
        }
        if measured > 0 {
            self.measured_responses += 1;
            shared.delivered.fetch_add(measured, Ordering::Relaxed);
            shared.bar.inc(measured);
            let owed_before = self.measured_owed;
            self.measured_owed = self.measured_owed.saturating_sub(measured);
            if owed_before > 0 && self.measured_owed == 0 {
                let _ = notes.send(Note::Measured(received_at));
            }
        }
        Ok(())
    }
}

async fn next_response(responses: &mut Streaming<WatchResponse>) -> Result<WatchResponse, String> {
    match responses.message().await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err("the server ended the watch stream".to_string()),
        Err(status) => Err(format!("watch stream failed: {}", status_text(status))),
    }
}

fn describe(response: &WatchResponse) -> String {
    format!(
        "created={} canceled={} compact_revision={} reason={:?} events={}",
        response.created,
        response.canceled,
        response.compact_revision,
        response.cancel_reason,
        response.events.len()
    )
}

/// Runs one stream until it is done, fails, or the run stops it; returns its watchers' checks
/// and its delays.
async fn stream_task(
    shared: Arc<Shared>,
    mut stream: Stream,
    channel: Channel,
    start_revision: i64,
    notes: mpsc::UnboundedSender<Note>,
    mut stop: watch::Receiver<bool>,
) -> Stream {
    let outcome = tokio::select! {
        outcome = stream.serve(&shared, channel, start_revision, &notes) => outcome,
        _ = stop.wait_for(|stop| *stop) => Ok(()),
    };
    if let Err(message) = outcome {
        let _ = notes.send(Note::Failed(message));
    }
    stream
}

/// Waits until every stream received its measured events; returns when the last one did.
async fn wait_measured(
    shared: &Shared,
    notes: &mut mpsc::UnboundedReceiver<Note>,
    streams: u64,
) -> Result<Instant, String> {
    let mut measured = 0;
    let mut last = shared.clock;
    let mut ticks = tokio::time::interval(STALL_CHECK_INTERVAL);
    let mut last_delivered = 0;
    let mut last_progress = Instant::now();
    loop {
        tokio::select! {
            note = notes.recv() => match note {
                Some(Note::Measured(at)) => {
                    measured += 1;
                    last = last.max(at);
                    if measured == streams {
                        return Ok(last);
                    }
                }
                Some(Note::Failed(message)) => return Err(message),
                Some(Note::Created | Note::Fenced) => {}
                None => return Err("every stream ended early".to_string()),
            },
            _ = ticks.tick() => {
                let delivered = shared.delivered.load(Ordering::Relaxed);
                let puts_done = shared.puts_done.load(Ordering::Acquire) == shared.plan.puts;
                if delivered != last_delivered || !puts_done {
                    last_delivered = delivered;
                    last_progress = Instant::now();
                }
                let failed = shared.puts_failed.load(Ordering::Relaxed);
                if puts_done && failed > 0 {
                    return Err(format!("{failed} puts failed, so which events are due is unknown"));
                }
                if last_progress.elapsed() >= STALL_TIMEOUT {
                    return Err(format!(
                        "no new event for {} secs after the last put was acknowledged; {delivered} \
                         of {} events received",
                        STALL_TIMEOUT.as_secs(),
                        shared.plan.expected_events()
                    ));
                }
            }
        }
    }
}

/// Waits for `count` notes of kind `Created` (or `Fenced`) until `timeout`.
async fn wait_for_notes(
    notes: &mut mpsc::UnboundedReceiver<Note>,
    count: u64,
    fenced: bool,
    timeout: Duration,
) -> Result<(), String> {
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while seen < count {
        match tokio::time::timeout_at(deadline, notes.recv()).await {
            Ok(Some(Note::Created)) if !fenced => seen += 1,
            Ok(Some(Note::Fenced)) if fenced => seen += 1,
            Ok(Some(Note::Failed(message))) => return Err(message),
            Ok(Some(_)) => {}
            Ok(None) => return Err("every stream ended early".to_string()),
            Err(_) => {
                let what = if fenced {
                    "saw its fence"
                } else {
                    "was created"
                };
                return Err(format!(
                    "only {seen} of {count} streams {what} within {} secs",
                    timeout.as_secs()
                ));
            }
        }
    }
    Ok(())
}

impl Shared {
    fn new(config: &WatchConfig) -> Shared {
        let plan = config.plan;
        let key_spec = config.key_spec();
        Shared {
            plan,
            keys: (0..plan.watched_keys).map(|k| key_spec.key(k)).collect(),
            value: config.value.clone(),
            clock: Instant::now(),
            sent_at_ns: (0..plan.puts + plan.watched_keys)
                .map(|_| AtomicU64::new(0))
                .collect(),
            acknowledged_revision_sum: (0..plan.watched_keys).map(|_| AtomicI64::new(0)).collect(),
            next_put: AtomicU64::new(0),
            puts_done: AtomicU64::new(0),
            puts_failed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            bar: progress_bar(plan.expected_events()),
        }
    }
}

/// Spawns one task per stream, watcher `w` on stream `w % streams`.
fn spawn_streams(
    shared: &Arc<Shared>,
    channels: &[Channel],
    start_revision: i64,
    notes: &mpsc::UnboundedSender<Note>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<Stream>> {
    let plan = shared.plan;
    (0..plan.streams)
        .map(|s| {
            let checks = (s..plan.watchers)
                .step_by(plan.streams as usize)
                .map(|watcher| WatcherCheck::new(&plan, watcher))
                .collect();
            tokio::spawn(stream_task(
                Arc::clone(shared),
                Stream::new(checks),
                channels[s as usize % channels.len()].clone(),
                start_revision,
                notes.clone(),
                stopped.clone(),
            ))
        })
        .collect()
}

/// What the put phase measured.
struct PutPhase {
    /// When the last expected event arrived, or why they did not all arrive.
    measured: Result<Instant, String>,
    recorder: Recorder,
    /// When the last put was acknowledged.
    end: Instant,
}

/// Sends the measured puts from `start` on and waits until their events arrived (or not).
async fn put_phase(
    shared: &Arc<Shared>,
    config: &WatchConfig,
    channels: &[Channel],
    notes: &mut mpsc::UnboundedReceiver<Note>,
    start: Instant,
) -> Result<PutPhase, String> {
    let clients: Vec<_> = (0..config.put_clients)
        .map(|c| {
            let channel = channels[c % channels.len()].clone();
            tokio::spawn(put_client(
                Arc::clone(shared),
                channel,
                start,
                config.put_rate,
            ))
        })
        .collect();
    let measured = wait_measured(shared, notes, shared.plan.streams).await;
    if measured.is_err() {
        // No new puts; the ones in flight finish.
        shared.next_put.store(shared.plan.puts, Ordering::Relaxed);
    }
    let mut recorder = Recorder::new();
    let mut end = start;
    for client in clients {
        let (client_recorder, done) = client
            .await
            .map_err(|e| format!("a put client task failed: {e}"))?;
        recorder.merge(&client_recorder);
        end = end.max(done);
    }
    Ok(PutPhase {
        measured,
        recorder,
        end,
    })
}

/// Puts each key's fence and waits until every watcher saw its own; returns what went wrong.
async fn fence(
    shared: &Shared,
    channel: Channel,
    notes: &mut mpsc::UnboundedReceiver<Note>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut kv = KvClient::new(channel);
    for key in 0..shared.plan.watched_keys {
        if let Err(message) = put(shared, &mut kv, shared.plan.fence_of_key(key)).await {
            problems.push(format!("fence put of key {key} failed: {message}"));
        }
    }
    if let Err(problem) = wait_for_notes(notes, shared.plan.streams, true, STALL_TIMEOUT).await {
        problems.push(problem);
    }
    problems
}

/// Runs the benchmark. `Err` means it could not start (connections, revision, watch creation);
/// problems found once the puts began are in the report.
pub async fn run(config: &WatchConfig) -> Result<WatchReport, String> {
    config.validate()?;
    let plan = config.plan;
    let channels = connect(&config.endpoints, config.conns, true).await?;
    let start_revision = current_revision(&channels[0]).await? + 1;
    let shared = Arc::new(Shared::new(config));
    let (notes_sender, mut notes) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);

    let creation_start = Instant::now();
    let streams = spawn_streams(&shared, &channels, start_revision, &notes_sender, &stopped);
    wait_for_notes(&mut notes, plan.streams, false, CREATE_TIMEOUT).await?;
    let creation = creation_start.elapsed();

    shared.bar.reset_elapsed();
    let start = Instant::now();
    let puts = put_phase(&shared, config, &channels, &mut notes, start).await?;
    let (end, mut problems) = match puts.measured {
        Ok(end) => (end, fence(&shared, channels[0].clone(), &mut notes).await),
        Err(problem) => (Instant::now(), vec![problem]),
    };
    let _ = stop.send(true);
    let mut events = Recorder::new();
    let mut responses = 0;
    for stream in streams {
        let stream = stream
            .await
            .map_err(|e| format!("a watch stream task failed: {e}"))?;
        events.merge(&stream.recorder);
        responses += stream.measured_responses;
        for check in &stream.checks {
            let sum = shared.acknowledged_revision_sum[check.key as usize].load(Ordering::Relaxed);
            problems.extend(check.verdict(i128::from(sum)));
        }
    }
    shared.bar.finish_and_clear();
    Ok(WatchReport {
        plan,
        conns: config.conns,
        put_clients: config.put_clients,
        creation,
        events: events.summarize("watch", end - start),
        responses,
        puts: puts.recorder.summarize("put", puts.end - start),
        problems,
    })
}
