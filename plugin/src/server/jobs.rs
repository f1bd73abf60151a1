//! Idempotent asynchronous jobs. Argo's agent gives a call 30 s and may send the same call again
//! (requeue, transient retries, an agent restart), so work is keyed on the call's idempotency key
//! (workflow uid, node name, attempt) and its state lives in the store:
//!
//! - `j/<key>` holds the job record (op, phase, message, outputs, start, deadline);
//! - the store lease on `j/<key>` marks the process running it, renewed while it runs.
//!
//! A call answers at once when the op allows ([`Ops::fast_path`]: input errors, results all in
//! the cache — ops are pure, so that is what the record would say); else finds the record and
//! answers from it; or takes the lease, writes a Running record and starts the op on a
//! blocking thread, then waits a little for it before answering `Running` with a requeue. Two
//! identical calls start one job (one of them gets the lease). A Running record whose lease is gone
//! belongs to a process that died: the next call takes it over and runs it again (ops are pure).
//! The template's timeout is enforced here: past the deadline the record becomes Failed. A panic in
//! an op fails its job only.

use super::ops::{Ops, Verdict};
use crate::argo::{go_duration, NodeResult, Outputs, Phase, PluginCall, Reply};
use crate::store::{now_ms, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub op: String,
    pub phase: Phase,
    pub message: String,
    pub outputs: Option<Outputs>,
    pub started_ms: u64,
    pub deadline_ms: Option<u64>,
}

impl JobRecord {
    /// The verdict of a job past its deadline.
    fn timeout_message(&self) -> String {
        let limit = self
            .deadline_ms
            .map_or(0, |d| d.saturating_sub(self.started_ms));
        format!(
            "{} exceeded the template timeout of {}; raise the template's timeout or give the step more resources",
            self.op,
            go_duration(Duration::from_millis(limit))
        )
    }

    fn node(&self) -> NodeResult {
        NodeResult {
            phase: self.phase,
            message: self.message.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The `requeue` of non-terminal replies.
    pub requeue: Duration,
    /// How long a call waits for a job it started (or finds running here) before answering Running.
    pub inline_wait: Duration,
    /// Lease lifetime of a running job; renewed every third of it.
    pub lease_ttl: Duration,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            requeue: Duration::from_secs(10),
            inline_wait: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
pub struct Jobs {
    store: Arc<dyn Store>,
    ops: Arc<Ops>,
    owner: String,
    options: JobOptions,
    /// Jobs running in this process, by key.
    running: Mutex<HashMap<String, RunningJob>>,
    pub metrics: Arc<super::metrics::Metrics>,
}

#[derive(Debug)]
struct RunningJob {
    done: watch::Receiver<bool>,
    cancel: crate::cancel::Cancel,
    /// Set when the cancel came from a shutdown (the job is left for another server).
    shutdown: Arc<std::sync::atomic::AtomicBool>,
}

/// What the blocking half of a call decided.
enum Step {
    Reply(Reply),
    /// A job runs here: wait for it a little, then answer from the record.
    Wait(watch::Receiver<bool>),
}

/// Why a call could not be answered: the store (503, Argo retries).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl From<StoreError> for Unavailable {
    fn from(e: StoreError) -> Self {
        Unavailable(format!("the store is unavailable, retry later: {e}"))
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Jobs {
    pub fn new(
        store: Arc<dyn Store>,
        ops: Arc<Ops>,
        options: JobOptions,
        metrics: Arc<super::metrics::Metrics>,
    ) -> Arc<Jobs> {
        let nonce: u64 = rand::random();
        Arc::new(Jobs {
            store,
            ops,
            owner: format!("plugin:{}:{nonce:016x}", std::process::id()),
            options,
            running: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Renews the leases of this process's running jobs until the runtime stops.
    pub fn spawn_lease_renewal(self: &Arc<Self>) {
        let jobs = Arc::downgrade(self);
        let period = self.options.lease_ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(jobs) = jobs.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || {
                    let keys: Vec<String> = match jobs.running.lock() {
                        Ok(r) => r.keys().cloned().collect(),
                        Err(_) => return,
                    };
                    for key in keys {
                        if let Err(e) =
                            jobs.store
                                .renew_lease(&key, &jobs.owner, jobs.options.lease_ttl)
                        {
                            tracing::warn!(%key, error = %e, "could not renew a job lease");
                        }
                    }
                })
                .await;
            }
        });
    }

    /// Answers one call addressed to us.
    pub async fn handle(self: &Arc<Self>, call: PluginCall) -> Result<Reply, Unavailable> {
        let key = format!("{}{}", crate::store::keys::JOB, call.idempotency_key());
        let handle = tokio::runtime::Handle::current();
        let (jobs, k) = (self.clone(), key.clone());
        let step = tokio::task::spawn_blocking(move || jobs.decide(&k, call, &handle))
            .await
            .map_err(|e| Unavailable(format!("internal error: {e}")))??;
        match step {
            Step::Reply(reply) => Ok(reply),
            Step::Wait(mut done) => {
                let _ = tokio::time::timeout(self.options.inline_wait, done.wait_for(|d| *d)).await;
                let jobs = self.clone();
                let record = tokio::task::spawn_blocking(move || jobs.read(&key))
                    .await
                    .map_err(|e| Unavailable(format!("internal error: {e}")))??;
                Ok(match record {
                    Some(r) => self.reply_for(&r),
                    None => Reply::waiting(Phase::Running, "starting".into(), self.options.requeue),
                })
            }
        }
    }

    fn read(&self, key: &str) -> Result<Option<JobRecord>, StoreError> {
        let Some(bytes) = self.store.get(key)? else {
            return Ok(None);
        };
        // A damaged record is as good as none: the job runs again (ops are pure).
        Ok(self
            .ops
            .cache
            .sealer()
            .open(&bytes, key)
            .ok()
            .and_then(|o| serde_json::from_slice(o.value).ok()))
    }

    fn write(&self, key: &str, record: &JobRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record)
            .map_err(|e| StoreError::Encode(format!("the job record ({e})")))?;
        self.store
            .put(key, &self.ops.cache.sealer().seal(key, b"", &value))
    }

    fn reply_for(&self, record: &JobRecord) -> Reply {
        if record.phase.is_terminal() {
            return Reply::terminal(record.node());
        }
        let elapsed = now_ms().saturating_sub(record.started_ms) / 1000;
        Reply::waiting(
            record.phase,
            format!("{} running for {elapsed} s", record.op),
            self.options.requeue,
        )
    }

    fn decide(
        self: &Arc<Self>,
        key: &str,
        call: PluginCall,
        rt: &tokio::runtime::Handle,
    ) -> Result<Step, Unavailable> {
        // Ops are pure, so what the fast path can answer (input errors, results all in the cache)
        // is what the job's record would say: it goes first and saves a store read.
        match self.ops.fast_path(&call.body) {
            Some(Ok(outputs)) => {
                return Ok(Step::Reply(Reply::terminal(NodeResult {
                    phase: Phase::Succeeded,
                    message: String::new(),
                    outputs: Some(outputs),
                })))
            }
            Some(Err(e)) => match e.verdict() {
                Verdict::Failed(message) => return Ok(Step::Reply(Reply::failed(message))),
                Verdict::Retry(e) => return Err(e.into()),
                Verdict::Stopped => {}
            },
            None => {}
        }
        if let Some(record) = self.read(key)? {
            return self.poll(key, call, record, rt);
        }
        self.claim_and_start(key, call, None, rt)
    }

    fn poll(
        self: &Arc<Self>,
        key: &str,
        call: PluginCall,
        record: JobRecord,
        rt: &tokio::runtime::Handle,
    ) -> Result<Step, Unavailable> {
        if record.phase.is_terminal() {
            return Ok(Step::Reply(Reply::terminal(record.node())));
        }
        if let Some(deadline) = record.deadline_ms {
            if now_ms() > deadline {
                let failed = JobRecord {
                    phase: Phase::Failed,
                    message: record.timeout_message(),
                    outputs: None,
                    ..record
                };
                self.write(key, &failed)?;
                self.cancel_job(key);
                return Ok(Step::Reply(Reply::terminal(failed.node())));
            }
        }
        let done = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(key).map(|job| job.done.clone()));
        if let Some(done) = done {
            return Ok(Step::Wait(done));
        }
        if !self.store.lease_held(key)? {
            tracing::info!(%key, op = %record.op, "taking over a job whose process is gone");
            return self.claim_and_start(key, call, Some(record), rt);
        }
        Ok(Step::Reply(self.reply_for(&record)))
    }

    fn claim_and_start(
        self: &Arc<Self>,
        key: &str,
        call: PluginCall,
        previous: Option<JobRecord>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Step, Unavailable> {
        // One owner per job start: leases are re-entrant for their owner, and two calls in this
        // process must not both get one.
        let owner = format!("{}:{:016x}", self.owner, rand::random::<u64>());
        if !self.store.try_lease(key, &owner, self.options.lease_ttl)? {
            return Ok(Step::Reply(Reply::waiting(
                Phase::Running,
                "started by another call".into(),
                self.options.requeue,
            )));
        }
        // It may have finished between our read and our lease.
        if let Some(record) = self.read(key)? {
            if record.phase.is_terminal() {
                self.store.release_lease(key, &owner)?;
                return Ok(Step::Reply(Reply::terminal(record.node())));
            }
        }
        let op = call.op().unwrap_or_default().to_string();
        let started_ms = previous.as_ref().map_or_else(now_ms, |p| p.started_ms);
        let record = JobRecord {
            op: op.clone(),
            phase: Phase::Running,
            message: format!("{op} started"),
            outputs: None,
            started_ms,
            deadline_ms: previous.and_then(|p| p.deadline_ms).or_else(|| {
                call.timeout.map(|t| {
                    started_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                })
            }),
        };
        self.write(key, &record)?;
        let (tx, rx) = watch::channel(false);
        let cancel = crate::cancel::Cancel::new();
        let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                key.to_string(),
                RunningJob {
                    done: rx.clone(),
                    cancel: cancel.clone(),
                    shutdown: shutdown.clone(),
                },
            );
        }
        if let Some(deadline) = record.deadline_ms {
            // Past its deadline the job stops computing, whether or not anyone polls.
            let (jobs, key) = (Arc::downgrade(self), key.to_string());
            let wait = Duration::from_millis(deadline.saturating_sub(now_ms()));
            rt.spawn(async move {
                tokio::time::sleep(wait).await;
                if let Some(jobs) = jobs.upgrade() {
                    jobs.cancel_job(&key);
                }
            });
        }
        self.metrics.jobs_running.inc();
        let (jobs, key) = (self.clone(), key.to_string());
        rt.spawn_blocking(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                jobs.ops.execute(&call.body, &cancel)
            }));
            let end = match outcome {
                Ok(Ok(outputs)) => Some((Phase::Succeeded, String::new(), Some(outputs))),
                Ok(Err(e)) => match e.verdict() {
                    Verdict::Failed(message) => Some((Phase::Failed, message, None)),
                    // Neither is the job's answer: the record stays Running, the lease is released,
                    // and the next call runs the job again (a store that failed may be back; a
                    // shutdown leaves the job to another server). A deadline's verdict is written
                    // by the poll.
                    Verdict::Retry(e) => {
                        tracing::warn!(%key, %op, error = %e, "the store failed during a job; the next call retries it");
                        None
                    }
                    Verdict::Stopped => (!shutdown.load(std::sync::atomic::Ordering::Acquire))
                        .then(|| (Phase::Failed, record.timeout_message(), None)),
                },
                Err(payload) => {
                    let text = panic_text(payload.as_ref());
                    tracing::error!(%key, %op, panic = %text, "an op panicked; its job fails, the server goes on");
                    Some((Phase::Failed, format!("internal error in {op}: {text}"), None))
                }
            };
            match end {
                Some((phase, message, outputs)) => jobs.finish(&key, &owner, record, phase, message, outputs),
                None => {
                    let _ = jobs.store.release_lease(&key, &owner);
                }
            }
            jobs.metrics.jobs_running.dec();
            if let Ok(mut running) = jobs.running.lock() {
                running.remove(&key);
            }
            let _ = tx.send(true);
        });
        Ok(Step::Wait(rx))
    }

    /// Raises the cancel flag of the job `key` if it runs here.
    fn cancel_job(&self, key: &str) {
        if let Some(job) = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(key).map(|j| j.cancel.clone()))
        {
            job.cancel();
        }
    }

    /// Stops every job running here (the server is stopping): they end without a verdict, their
    /// leases are released, and another server's next call takes them over.
    pub fn cancel_all_for_shutdown(&self) -> usize {
        let Ok(running) = self.running.lock() else {
            return 0;
        };
        for job in running.values() {
            job.shutdown
                .store(true, std::sync::atomic::Ordering::Release);
            job.cancel.cancel();
        }
        running.len()
    }

    /// Waits until no job runs here, at most `limit`.
    pub async fn wait_idle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.running.lock().map(|r| r.is_empty()).unwrap_or(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes the job's end, unless a timeout verdict got there first.
    fn finish(
        &self,
        key: &str,
        owner: &str,
        record: JobRecord,
        phase: Phase,
        message: String,
        outputs: Option<Outputs>,
    ) {
        let current = self.read(key).ok().flatten();
        if current.is_some_and(|c| c.phase.is_terminal()) {
            let _ = self.store.release_lease(key, owner);
            return;
        }
        let done = JobRecord {
            phase,
            message,
            outputs,
            ..record
        };
        // The result must not be lost: retry the write a few times before giving up the lease
        // (then the next call runs the job again).
        for attempt in 0..5 {
            match self.write(key, &done) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(%key, error = %e, attempt, "could not record a job's end");
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                }
            }
        }
        let _ = self.store.release_lease(key, owner);
    }
}
