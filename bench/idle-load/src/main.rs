//! `idle-load`: N simulated Hatchet workers on one hatchet-server, for the idle benchmark (`bench/idle.py`).
//!
//! Each worker does what the Python SDK's worker does when it has nothing to run: `Register` once, open a
//! `ListenV2` stream and keep it open (reopened after a second if it ends), and `Heartbeat` every 4 s, the next one
//! 4 s after the previous answer (hatchet_sdk/clients/dispatcher/action_listener.py: `heartbeat_delay = 4`, call
//! timeout 5 s). All workers run on one tokio runtime; by default each has its own HTTP/2 connection, as separate
//! SDK processes would. Their first heartbeats are spread evenly over the first interval, as workers started
//! independently would be.
//!
//! When an action arrives, the worker answers STARTED then COMPLETED, like a task that returns at once, and prints
//! the start latency: its own wall clock minus `t0_us` from the task's input (epoch microseconds, which the
//! orchestrator puts there just before it enqueues; one machine, one clock).
//!
//! Output on stdout, one JSON object per line:
//! - `{"event":"ready", "workers", "register_s"}` once every worker is registered and its stream is open;
//! - `{"event":"action", "worker", "task_id", "latency_ms"}` for every action received;
//! - `{"event":"summary", ...counters}` at exit.
//!
//! It runs until stdin closes, `--duration-s` passes, or SIGINT/SIGTERM.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hatchet_server::proto::dispatcher_client::DispatcherClient;
use hatchet_server::proto::{
    ActionType, AssignedAction, HeartbeatRequest, StepActionEvent, StepActionEventType,
    WorkerListenRequest, WorkerRegisterRequest,
};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
#[command(about = "N simulated idle Hatchet workers on one hatchet-server")]
struct Args {
    /// The server's gRPC address, host:port.
    #[arg(long)]
    grpc: String,
    /// An API token of the tenant (`hatchet-server token create`).
    #[arg(long, env = "HATCHET_CLIENT_TOKEN")]
    token: String,
    /// How many workers.
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// The action every worker registers (`<workflow>:<task>`, the queue name).
    #[arg(long, default_value = "idle_bench:idle")]
    action: String,
    /// Slots per worker.
    #[arg(long, default_value_t = 1)]
    slots: i32,
    /// Seconds between a heartbeat's answer and the next heartbeat (the SDK's 4).
    #[arg(long, default_value_t = 4.0)]
    heartbeat_s: f64,
    /// HTTP/2 connections shared by the workers (default: one per worker, like separate SDK processes).
    #[arg(long)]
    connections: Option<usize>,
    /// Registrations in flight at once while starting.
    #[arg(long, default_value_t = 20)]
    register_concurrency: usize,
    /// Stop after this many seconds (0: when stdin closes or on a signal).
    #[arg(long, default_value_t = 0.0)]
    duration_s: f64,
}

#[derive(Default)]
struct Counters {
    registered: AtomicU64,
    register_errors: AtomicU64,
    register_retries: AtomicU64,
    streams_opened: AtomicU64,
    stream_errors: AtomicU64,
    heartbeats_ok: AtomicU64,
    heartbeat_errors: AtomicU64,
    heartbeat_max_us: AtomicU64,
    actions: AtomicU64,
    event_errors: AtomicU64,
}

fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn authed<T>(message: T, bearer: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        bearer.parse().expect("the token is valid metadata"),
    );
    req
}

fn emit(line: &Value) {
    println!("{line}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let n = args.workers;
    let conns = args.connections.unwrap_or(n).clamp(1, n.max(1));
    let url = format!("http://{}", args.grpc);
    let mut channels = Vec::with_capacity(conns);
    for _ in 0..conns {
        channels.push(
            Endpoint::from_shared(url.clone())?
                .connect_timeout(Duration::from_secs(10))
                .connect_lazy(),
        );
    }
    let bearer = Arc::new(format!("bearer {}", args.token));
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(
        args.register_concurrency.max(1),
    ));
    let heartbeat = Duration::from_secs_f64(args.heartbeat_s);
    let mut ready_rx = Vec::with_capacity(n);
    for i in 0..n {
        let (ready_tx, rx) = tokio::sync::oneshot::channel::<bool>();
        ready_rx.push(rx);
        let w = Sim {
            index: i,
            client: DispatcherClient::new(channels[i % conns].clone()),
            bearer: bearer.clone(),
            action: args.action.clone(),
            slots: args.slots,
            counters: counters.clone(),
            first_beat: heartbeat.mul_f64(i as f64 / n as f64),
            heartbeat,
        };
        tokio::spawn(w.run(gate.clone(), ready_tx));
    }
    let mut ok = 0usize;
    for rx in ready_rx {
        if rx.await.unwrap_or(false) {
            ok += 1;
        }
    }
    emit(&json!({"event": "ready", "workers": ok, "requested": n,
                 "register_s": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0}));

    let stdin_closed = async {
        let mut buf = [0u8; 256];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(k) if k > 0) {}
    };
    let deadline = async {
        if args.duration_s > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(args.duration_s)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = stdin_closed => {}
        () = deadline => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let c = &counters;
    emit(&json!({
        "event": "summary",
        "workers": n,
        "connections": conns,
        "registered": c.registered.load(Ordering::Relaxed),
        "register_errors": c.register_errors.load(Ordering::Relaxed),
        "register_retries": c.register_retries.load(Ordering::Relaxed),
        "streams_opened": c.streams_opened.load(Ordering::Relaxed),
        "stream_errors": c.stream_errors.load(Ordering::Relaxed),
        "heartbeats_ok": c.heartbeats_ok.load(Ordering::Relaxed),
        "heartbeat_errors": c.heartbeat_errors.load(Ordering::Relaxed),
        "heartbeat_max_ms": c.heartbeat_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        "actions": c.actions.load(Ordering::Relaxed),
        "event_errors": c.event_errors.load(Ordering::Relaxed),
        "seconds": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    }));
    Ok(())
}

/// One simulated worker.
struct Sim {
    index: usize,
    client: DispatcherClient<Channel>,
    bearer: Arc<String>,
    action: String,
    slots: i32,
    counters: Arc<Counters>,
    first_beat: Duration,
    heartbeat: Duration,
}

impl Sim {
    async fn run(
        mut self,
        gate: Arc<tokio::sync::Semaphore>,
        ready: tokio::sync::oneshot::Sender<bool>,
    ) {
        let permit = gate.acquire_owned().await.expect("never closed");
        // Like the SDK, a failed Register is tried again (5 attempts, 1 s apart).
        let mut attempt = 0;
        let registered = loop {
            attempt += 1;
            match self.register().await {
                Err(status) if attempt < 5 => {
                    eprintln!(
                        "worker {}: Register (attempt {attempt}): {status}",
                        self.index
                    );
                    self.counters
                        .register_retries
                        .fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                other => break other,
            }
        };
        let worker_id = match registered {
            Ok(id) => id,
            Err(status) => {
                self.counters
                    .register_errors
                    .fetch_add(1, Ordering::Relaxed);
                eprintln!("worker {}: Register: {status}", self.index);
                let _ = ready.send(false);
                return;
            }
        };
        self.counters.registered.fetch_add(1, Ordering::Relaxed);
        let stream = self.listen(&worker_id).await;
        drop(permit);
        let _ = ready.send(stream.is_some());
        tokio::spawn(heartbeats(
            self.client.clone(),
            self.bearer.clone(),
            worker_id.clone(),
            self.counters.clone(),
            self.first_beat,
            self.heartbeat,
        ));
        let mut stream = stream;
        loop {
            if let Some(mut s) = stream.take() {
                loop {
                    match s.message().await {
                        Ok(Some(action)) => self.handle(&worker_id, action).await,
                        Ok(None) => break,
                        Err(_) => {
                            self.counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            stream = self.listen(&worker_id).await;
        }
    }

    async fn register(&mut self) -> Result<String, tonic::Status> {
        let req = WorkerRegisterRequest {
            worker_name: format!("idle-{}", self.index),
            actions: vec![self.action.clone()],
            services: vec!["default".into()],
            slot_config: HashMap::from([("default".to_owned(), self.slots)]),
            ..Default::default()
        };
        Ok(self
            .client
            .register(authed(req, &self.bearer))
            .await?
            .into_inner()
            .worker_id)
    }

    async fn listen(&mut self, worker_id: &str) -> Option<tonic::Streaming<AssignedAction>> {
        let req = WorkerListenRequest {
            worker_id: worker_id.to_owned(),
        };
        match self.client.listen_v2(authed(req, &self.bearer)).await {
            Ok(resp) => {
                self.counters.streams_opened.fetch_add(1, Ordering::Relaxed);
                Some(resp.into_inner())
            }
            Err(status) => {
                self.counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("worker {}: ListenV2: {status}", self.index);
                None
            }
        }
    }

    async fn handle(&mut self, worker_id: &str, action: AssignedAction) {
        if action.action_type != ActionType::StartStepRun as i32 {
            return;
        }
        let now = epoch_us();
        self.counters.actions.fetch_add(1, Ordering::Relaxed);
        let t0 = serde_json::from_str::<Value>(&action.action_payload)
            .ok()
            .and_then(|p| p.pointer("/input/t0_us").and_then(Value::as_u64));
        emit(&json!({
            "event": "action",
            "worker": self.index,
            "task_id": action.task_run_external_id,
            "latency_ms": t0.map(|t0| now.saturating_sub(t0) as f64 / 1000.0),
        }));
        for kind in [
            StepActionEventType::StepEventTypeStarted,
            StepActionEventType::StepEventTypeCompleted,
        ] {
            let event = StepActionEvent {
                worker_id: worker_id.to_owned(),
                job_id: action.job_id.clone(),
                job_run_id: action.job_run_id.clone(),
                task_id: action.task_id.clone(),
                task_run_external_id: action.task_run_external_id.clone(),
                action_id: action.action_id.clone(),
                event_timestamp: Some(hatchet_timestamp()),
                event_type: kind as i32,
                event_payload: if kind == StepActionEventType::StepEventTypeCompleted {
                    "{}".into()
                } else {
                    String::new()
                },
                retry_count: Some(action.retry_count),
                ..Default::default()
            };
            if self
                .client
                .send_step_action_event(authed(event, &self.bearer))
                .await
                .is_err()
            {
                self.counters.event_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn hatchet_timestamp() -> prost_types::Timestamp {
    let us = epoch_us();
    prost_types::Timestamp {
        seconds: (us / 1_000_000) as i64,
        nanos: ((us % 1_000_000) * 1000) as i32,
    }
}

/// The SDK's heartbeat loop: a call (5 s timeout), then the interval, again.
async fn heartbeats(
    mut client: DispatcherClient<Channel>,
    bearer: Arc<String>,
    worker_id: String,
    counters: Arc<Counters>,
    first: Duration,
    every: Duration,
) {
    tokio::time::sleep(first).await;
    loop {
        let req = HeartbeatRequest {
            worker_id: worker_id.clone(),
            heartbeat_at: Some(hatchet_timestamp()),
        };
        let t = Instant::now();
        match tokio::time::timeout(
            Duration::from_secs(5),
            client.heartbeat(authed(req, &bearer)),
        )
        .await
        {
            Ok(Ok(_)) => {
                counters.heartbeats_ok.fetch_add(1, Ordering::Relaxed);
                counters
                    .heartbeat_max_us
                    .fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            _ => {
                counters.heartbeat_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(every).await;
    }
}
