//! The apalis seam: [`StreamBackend`] feeds a worker with entries read from one queue's stream,
//! and its middleware, [`SettleLayer`], settles every job after its handler returned.
//!
//! Why a `Backend` of our own rather than apalis-core's `Persistence` helper: `Persisted` runs
//! heartbeat, acks and fetching in one state machine, so a blocking XREADGROUP holds back acks
//! and heartbeats; it turns a handler's error into a string, losing the transient / permanent /
//! retry-after verdict the retry policy needs; and one failed fetch kills the worker
//! (`State::Dead`), so a Redis restart would stop the fleet. Here the reader, the heartbeat, the
//! batched acker and the opportunistic maintenance are separate tasks, and a job's future ends
//! only after its outcome is committed in Redis (or Postgres): ack after effect.

use std::{
    collections::HashSet,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    error::BoxDynError,
    task::{Task, task_id::TaskId},
    worker::context::WorkerContext,
};
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};
use tracing::{Instrument, debug, error, info, warn};

use super::{
    Job, QueueError, RetryPolicy,
    consume::{Delivery, Settled, StreamConsumer},
    failed::{FailedJob, FailedJobs},
};
use crate::jobs::{JobError, JobRegistry};

/// How one process consumes one queue.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// Jobs run at once by this process on this queue.
    pub concurrency: usize,
    /// Most entries fetched by one XREADGROUP.
    pub batch: usize,
    /// How long one XREADGROUP blocks when the stream is empty.
    pub block: Duration,
    /// The queue's policy, with `--tries` / `--timeout` applied.
    pub policy: RetryPolicy,
    /// `--tries` given on the command line: overrides each job's own `max_attempts`.
    pub tries_override: Option<u32>,
    /// How often this worker promotes due retries and reclaims abandoned entries itself.
    pub maintenance_every: Duration,
}

impl ConsumerOptions {
    pub fn for_policy(policy: RetryPolicy) -> Self {
        Self {
            concurrency: 50,
            batch: 100,
            block: Duration::from_secs(2),
            policy,
            tries_override: None,
            maintenance_every: Duration::from_secs(1),
        }
    }

    /// Heartbeats come well inside the lease so one late beat never loses a job.
    fn heartbeat_every(&self) -> Duration {
        (self.policy.timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }
}

type AckRequest = (String, oneshot::Sender<Result<(), String>>);

/// State shared by the reader, the heartbeat, the acker and every job's settle step.
struct Shared {
    consumer: StreamConsumer,
    options: ConsumerOptions,
    failed: FailedJobs,
    in_flight: Mutex<HashSet<String>>,
    /// Entries read and not yet settled: `concurrency + batch`, so the next batch is read while
    /// the current one runs (read-ahead) but memory stays bounded.
    permits: Arc<Semaphore>,
    /// Handlers running at once: `concurrency`.
    running: Arc<Semaphore>,
    acks: mpsc::Sender<AckRequest>,
}

impl Shared {
    fn in_flight_ids(&self) -> Vec<String> {
        self.lock_in_flight().iter().cloned().collect()
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic while holding this lock cannot leave the set half-updated (single inserts and
        // removes), so a poisoned lock is still safe to use.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job is settled (or abandoned to the reclaimer): stop heartbeating it, free its slot.
    fn finish(&self, entry_id: &str) {
        if self.lock_in_flight().remove(entry_id) {
            self.permits.add_permits(1);
        }
    }

    async fn ack(&self, entry_id: String) -> Result<(), QueueError> {
        let (tx, rx) = oneshot::channel();
        let closed = || redis_error("acker stopped");
        self.acks.send((entry_id, tx)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?.map_err(|e| redis_error(&e))
    }
}

fn redis_error(message: &str) -> QueueError {
    QueueError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "queue",
        message.to_owned(),
    )))
}

/// Entries of one queue for one apalis worker.
pub struct StreamBackend {
    shared: Arc<Shared>,
    deliveries: mpsc::Receiver<Delivery>,
    stop_reading: CancellationToken,
    reader: Option<tokio::task::JoinHandle<()>>,
    closing: Option<BoxFuture<'static, ()>>,
}

impl StreamBackend {
    /// Joins the queue's group and starts the reader, heartbeat, acker and maintenance tasks.
    pub async fn start(
        consumer: StreamConsumer,
        options: ConsumerOptions,
        failed: FailedJobs,
    ) -> Self {
        if let Err(e) = consumer.ensure_group().await {
            warn!(error = %e, queue = %consumer.queue(), "queue not reachable yet; the reader keeps trying");
        }
        let (ack_tx, ack_rx) = mpsc::channel(options.concurrency.max(1) * 2);
        let (delivery_tx, delivery_rx) = mpsc::channel(options.concurrency.max(1));
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(
                options.concurrency.max(1) + options.batch.max(1),
            )),
            running: Arc::new(Semaphore::new(options.concurrency.max(1))),
            consumer,
            options,
            failed,
            in_flight: Mutex::new(HashSet::new()),
            acks: ack_tx,
        });
        let stop_reading = CancellationToken::new();
        tokio::spawn(run_acker(shared.consumer.clone(), ack_rx));
        tokio::spawn(run_heartbeat(Arc::downgrade(&shared), stop_reading.clone()));
        tokio::spawn(run_maintenance(
            Arc::downgrade(&shared),
            stop_reading.clone(),
        ));
        let reader = tokio::spawn(run_reader(
            shared.clone(),
            delivery_tx,
            stop_reading.clone(),
        ));
        Self {
            shared,
            deliveries: delivery_rx,
            stop_reading,
            reader: Some(reader),
            closing: None,
        }
    }

    /// Stops reading, waits for the read in progress, and hands back entries read but never
    /// started, so another worker takes them at once.
    fn close(&mut self) -> BoxFuture<'static, ()> {
        self.stop_reading.cancel();
        let reader = self.reader.take();
        let shared = self.shared.clone();
        let mut deliveries = std::mem::replace(&mut self.deliveries, mpsc::channel(1).1);
        async move {
            // Drain while waiting: the reader may be blocked handing a batch into the full
            // channel, and nobody else takes from it once the worker is shutting down.
            let mut unstarted = Vec::new();
            if let Some(mut reader) = reader {
                loop {
                    tokio::select! {
                        _ = &mut reader => break,
                        Some(delivery) = deliveries.recv() => unstarted.push(delivery.entry_id),
                    }
                }
            }
            while let Ok(delivery) = deliveries.try_recv() {
                unstarted.push(delivery.entry_id);
            }
            match shared.consumer.release(&unstarted).await {
                Ok(n) if n > 0 => info!(released = n, queue = %shared.consumer.queue(), "handed unstarted jobs back"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "could not hand unstarted jobs back; they will be reclaimed"),
            }
            for id in &unstarted {
                shared.finish(id);
            }
        }
        .boxed()
    }
}

impl Backend for StreamBackend {
    type Task = Task<Delivery>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.deliveries.poll_recv(cx).map(|next| {
            next.map(|delivery| {
                let id = TaskId::from_string(delivery.entry_id.clone());
                Ok(Task::new(delivery).into_builder().task_id(id).build())
            })
        })
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closing.is_none() {
            self.closing = Some(self.close());
        }
        match self.closing.as_mut() {
            Some(closing) => closing.poll_unpin(cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl BackendConfig for StreamBackend {
    type Args = Delivery;
    type Id = String;
    type Kind = Ephemeral;
    type Config = ConsumerOptions;
    type Layer = SettleLayer;

    fn config(&self) -> &Self::Config {
        &self.shared.options
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        SettleLayer {
            shared: self.shared.clone(),
        }
    }
}

/// Reads while there are free slots; never busy-polls (XREADGROUP BLOCK), never gives up on
/// Redis (reconnects with backoff), and never reads more than it can start.
async fn run_reader(
    shared: Arc<Shared>,
    deliveries: mpsc::Sender<Delivery>,
    stop: CancellationToken,
) {
    let consumer = &shared.consumer;
    let options = &shared.options;
    let mut conn = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let slots = tokio::select! {
            permit = shared.permits.clone().acquire_many_owned(1) => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        slots.forget();
        let extra = shared
            .permits
            .available_permits()
            .min(options.batch.saturating_sub(1));
        if let Ok(p) = shared.permits.try_acquire_many(extra as u32) {
            p.forget();
        }
        let wanted = extra + 1;
        if stop.is_cancelled() {
            shared.permits.add_permits(wanted);
            return;
        }
        let result = match conn.as_mut() {
            Some(c) => consumer.read(c, wanted, options.block).await,
            None => match connect(consumer, options.block).await {
                Ok(c) => {
                    conn = Some(c);
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                shared.permits.add_permits(wanted - batch.len());
                {
                    let mut in_flight = shared.lock_in_flight();
                    in_flight.extend(batch.iter().map(|d| d.entry_id.clone()));
                }
                metrics::counter!("switchyard_stream_reads_total", "queue" => consumer.queue().to_string()).increment(1);
                for delivery in batch {
                    if deliveries.send(delivery).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                shared.permits.add_permits(wanted);
                if let Some(broken) = conn.take() {
                    super::readers::discard(broken);
                }
                warn!(error = %e, queue = %consumer.queue(), retry_in = ?backoff, "cannot read from the queue");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A fresh reader connection; re-creates the group too, since a Redis that restarted without
/// persistence has forgotten it.
async fn connect(
    consumer: &StreamConsumer,
    block: Duration,
) -> Result<super::readers::ReaderConn, QueueError> {
    let conn = consumer.reader_connection(block).await?;
    consumer.ensure_group().await?;
    Ok(conn)
}

async fn run_heartbeat(shared: std::sync::Weak<Shared>, stop: CancellationToken) {
    let every = match shared.upgrade() {
        Some(s) => s.options.heartbeat_every(),
        None => return,
    };
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => {}
        }
        // Keep beating while jobs drain after `stop`; end when the backend is gone.
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ids = shared.in_flight_ids();
        if stop.is_cancelled() && ids.is_empty() {
            return;
        }
        if let Err(e) = shared.consumer.heartbeat(&ids).await {
            warn!(error = %e, in_flight = ids.len(), "heartbeat failed");
        }
        if stop.is_cancelled() {
            drop(shared);
            tokio::time::sleep(every).await;
        }
    }
}

/// Workers promote due retries and reclaim abandoned entries themselves, so a fleet without a
/// scheduler still makes progress; the scripts are atomic, so doing it from many places is safe.
async fn run_maintenance(shared: std::sync::Weak<Shared>, stop: CancellationToken) {
    let every = match shared.upgrade() {
        Some(s) => s.options.maintenance_every,
        None => return,
    };
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let queue = shared.consumer.queue();
        match shared
            .consumer
            .queues()
            .maintain(queue, shared.options.policy.timeout, 10)
            .await
        {
            Ok((promoted, reclaimed)) if promoted + reclaimed > 0 => {
                debug!(%queue, promoted, reclaimed, "maintenance moved jobs");
            }
            Ok(_) => {}
            Err(e) => debug!(%queue, error = %e, "maintenance failed; will try again"),
        }
    }
}

/// Batches acks: one script call settles every job that finished since the last call.
async fn run_acker(consumer: StreamConsumer, mut requests: mpsc::Receiver<AckRequest>) {
    const MOST: usize = 1000;
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let result = backon::Retryable::retry(
            || consumer.settle(&ids, Settled::Processed),
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_times(3),
        )
        .await;
        let reply = result.map(|_| ()).map_err(|e| e.to_string());
        for (_, tx) in batch {
            let _ = tx.send(reply.clone());
        }
    }
}

/// The backend's middleware: decides each job's fate from its handler's result and commits it
/// before the job counts as done.
#[derive(Clone)]
pub struct SettleLayer {
    shared: Arc<Shared>,
}

impl<S> Layer<S> for SettleLayer {
    type Service = SettleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SettleService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct SettleService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Task<Delivery>> for SettleService<S>
where
    S: Service<Task<Delivery>, Response = ()>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = ();
    type Error = QueueError;
    type Future = BoxFuture<'static, Result<(), QueueError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner stack's readiness (its concurrency limit) is the only back-pressure; an
        // inner error surfaces per job instead.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, task: Task<Delivery>) -> Self::Future {
        let shared = self.shared.clone();
        let delivery = task.args.clone();
        let verdict = screen(&shared, &delivery);
        let run = verdict.is_none().then(|| self.inner.call(task));
        let work = async move {
            let entry_id = delivery.entry_id.clone();
            let result = match (delivery.body, verdict) {
                (Err(bad), _) => fail_undecodable(&shared, &entry_id, &bad).await,
                (Ok(job), Some(reason)) => fail(&shared, &entry_id, &job, &reason).await,
                (Ok(job), None) => {
                    let span = job_span(&job, &entry_id);
                    let outcome = run_handler(&shared, run).instrument(span.clone()).await;
                    settle(&shared, &entry_id, &job, outcome)
                        .instrument(span)
                        .await
                }
            };
            shared.finish(&entry_id);
            if let Err(e) = &result {
                error!(error = %e, entry_id, "could not settle job; it stays pending and will be reclaimed");
            }
            result
        };
        // apalis polls every job future inside the worker's one stream task; spawning lets the
        // runtime spread handlers and settling over all cores. The job still counts as in
        // flight (for graceful shutdown) until this future, which awaits the task, completes.
        async move {
            tokio::spawn(work)
                .await
                .unwrap_or_else(|e| Err(redis_error(&format!("job task ended abnormally: {e}"))))
        }
        .boxed()
    }
}

/// Jobs that must not run: undecodable envelopes and poison messages.
fn screen(shared: &Shared, delivery: &Delivery) -> Option<String> {
    let job = delivery.body.as_ref().ok()?;
    let max = shared
        .options
        .tries_override
        .unwrap_or(job.max_attempts)
        .max(1);
    (delivery.reclaims >= max).then(|| {
        format!(
            "poison message: abandoned {} times by workers that died while running it",
            delivery.reclaims
        )
    })
}

fn job_span(job: &Job, entry_id: &str) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %job.id,
        queue = %job.queue,
        kind = %job.kind,
        attempt = job.attempt,
        correlation_id = %job.correlation_id,
        tenant_id = job.tenant_id.as_deref().unwrap_or(""),
        entry_id,
    )
}

/// Runs the handler stack under the queue's timeout, once a concurrency slot is free; a panic or
/// a timeout is a transient error.
async fn run_handler<F, E>(shared: &Shared, run: Option<F>) -> (Result<(), JobError>, Duration)
where
    F: std::future::Future<Output = Result<(), E>>,
    E: Into<BoxDynError>,
{
    // The semaphore is never closed, so acquiring only fails if it were; run anyway then.
    let _slot = shared.running.acquire().await;
    let started = Instant::now();
    let Some(run) = run else {
        return (Err(JobError::permanent("job was not run")), Duration::ZERO);
    };
    let timeout = shared.options.policy.timeout;
    let outcome = match tokio::time::timeout(timeout, AssertUnwindSafe(run).catch_unwind()).await {
        Err(_) => Err(JobError::Transient(format!("timed out after {timeout:?}"))),
        Ok(Err(panic)) => Err(JobError::Transient(format!(
            "handler panicked: {}",
            panic_message(&panic)
        ))),
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(classify(e.into())),
    };
    (outcome, started.elapsed())
}

fn classify(error: BoxDynError) -> JobError {
    match error.downcast::<JobError>() {
        Ok(job_error) => *job_error,
        Err(other) => JobError::Transient(other.to_string()),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

async fn settle(
    shared: &Shared,
    entry_id: &str,
    job: &Job,
    (outcome, took): (Result<(), JobError>, Duration),
) -> Result<(), QueueError> {
    let labels = [("queue", job.queue.to_string()), ("kind", job.kind.clone())];
    metrics::histogram!("switchyard_job_duration_seconds", &labels).record(took.as_secs_f64());
    let max = shared
        .options
        .tries_override
        .unwrap_or(job.max_attempts)
        .max(1);
    match outcome {
        Ok(()) => {
            shared.ack(entry_id.to_owned()).await?;
            count(job, "processed");
            Ok(())
        }
        Err(e @ JobError::Permanent(_)) => give_up(shared, entry_id, job, &e.to_string()).await,
        Err(e) if job.attempt >= max => {
            let reason = format!("{e} (gave up after {} attempts)", job.attempt);
            give_up(shared, entry_id, job, &reason).await
        }
        Err(e) => retry(shared, entry_id, job, e).await,
    }
}

async fn retry(
    shared: &Shared,
    entry_id: &str,
    job: &Job,
    error: JobError,
) -> Result<(), QueueError> {
    let mut delay = shared
        .options
        .policy
        .delay_after(job.attempt, &mut rand::rng());
    if let JobError::RetryAfter { after, .. } = &error {
        delay = delay.max(*after).min(Duration::from_secs(3600));
    }
    let due_ms = chrono::Utc::now().timestamp_millis() + delay.as_millis() as i64;
    let next = job.next_attempt(&error.to_string());
    let moved = shared.consumer.retry_later(entry_id, &next, due_ms).await?;
    if moved {
        warn!(error = %error, next_attempt = next.attempt, retry_in = ?delay, "job failed; retry scheduled");
        count(job, "retried");
    } else {
        warn!("job was reclaimed while it ran; its other copy decides its fate");
    }
    Ok(())
}

/// A job that failed for good goes to failed jobs. Those live in Postgres, so when the job
/// failed because Postgres is away, the row cannot be written either: then the job waits in
/// `delayed` (same attempt, so its next failure tries the row again) and runs again once its
/// backoff is over, instead of staying pending until its lease runs out (two minutes for the
/// channel queues) — after a short Postgres outage messages flow again within seconds.
async fn give_up(
    shared: &Shared,
    entry_id: &str,
    job: &Job,
    reason: &str,
) -> Result<(), QueueError> {
    let error = match fail(shared, entry_id, job, reason).await {
        Err(QueueError::Database(error)) => error,
        other => return other,
    };
    let delay = shared
        .options
        .policy
        .delay_after(job.attempt, &mut rand::rng())
        .max(Duration::from_secs(1));
    let due_ms = chrono::Utc::now().timestamp_millis() + delay.as_millis() as i64;
    let again = Job {
        last_error: Some(reason.to_owned()),
        ..job.clone()
    };
    if shared
        .consumer
        .retry_later(entry_id, &again, due_ms)
        .await?
    {
        warn!(error = %error, retry_in = ?delay, reason, "job failed for good but failed jobs cannot take it now; it runs again later");
        count(job, "retried");
    }
    Ok(())
}

/// Row first, ack second (invariant 3): a crash in between re-runs an idempotent insert.
async fn fail(shared: &Shared, entry_id: &str, job: &Job, reason: &str) -> Result<(), QueueError> {
    let max = shared.options.tries_override.unwrap_or(job.max_attempts);
    let mut failed_job = job.clone();
    failed_job.max_attempts = max;
    shared
        .failed
        .record(&FailedJob::from_job(&failed_job, reason))
        .await?;
    shared
        .consumer
        .settle(&[entry_id.to_owned()], Settled::Failed)
        .await?;
    error!(reason, "job failed for good; moved to failed jobs");
    count(job, "failed");
    report_to_sentry(job, reason);
    Ok(())
}

async fn fail_undecodable(
    shared: &Shared,
    entry_id: &str,
    bad: &super::consume::BadEnvelope,
) -> Result<(), QueueError> {
    let queue = shared.consumer.queue().to_string();
    shared
        .failed
        .record(&FailedJob::from_bad_envelope(&queue, entry_id, bad))
        .await?;
    shared
        .consumer
        .settle(&[entry_id.to_owned()], Settled::Failed)
        .await?;
    error!(entry_id, queue, reason = %bad.reason, "undecodable job moved to failed jobs");
    metrics::counter!("switchyard_jobs_total", "queue" => queue, "kind" => "(undecodable)", "outcome" => "failed").increment(1);
    Ok(())
}

fn count(job: &Job, outcome: &'static str) {
    metrics::counter!(
        "switchyard_jobs_total",
        "queue" => job.queue.to_string(),
        "kind" => job.kind.clone(),
        "outcome" => outcome
    )
    .increment(1);
}

fn report_to_sentry(job: &Job, reason: &str) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("queue", job.queue.as_str());
            scope.set_tag("kind", &job.kind);
            scope.set_tag("job_id", job.id.to_string());
            scope.set_tag("correlation_id", &job.correlation_id);
            scope.set_extra("attempts", job.attempt.into());
        },
        || {
            sentry::capture_message(
                &format!("job {} ({}) failed: {reason}", job.id, job.kind),
                sentry::Level::Error,
            )
        },
    );
}

/// Runs one apalis worker on `consumer`'s queue until `stop` is cancelled and its in-flight jobs
/// are settled. The backend's semaphore bounds concurrency, so no extra limit layer is needed.
pub async fn run_worker(
    consumer: StreamConsumer,
    options: ConsumerOptions,
    failed: FailedJobs,
    registry: JobRegistry,
    stop: CancellationToken,
) -> Result<(), apalis_core::error::WorkerError> {
    let name = format!("{}@{}", consumer.queue(), consumer.name());
    let backend = StreamBackend::start(consumer, options, failed).await;
    let worker = apalis_core::worker::builder::WorkerBuilder::new(name.as_str())
        .backend(backend)
        .build(Dispatch::new(registry));
    worker
        .run_until(async move {
            stop.cancelled().await;
            Ok::<(), std::io::Error>(())
        })
        .await
}

/// The innermost service: runs the handler registered for the job's kind.
#[derive(Clone)]
pub struct Dispatch {
    registry: Arc<JobRegistry>,
}

impl Dispatch {
    pub fn new(registry: JobRegistry) -> Self {
        Self {
            registry: Arc::new(registry),
        }
    }
}

impl Service<Task<Delivery>> for Dispatch {
    type Response = ();
    type Error = JobError;
    type Future = BoxFuture<'static, Result<(), JobError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Delivery>) -> Self::Future {
        match task.args.body {
            Ok(job) => self.registry.dispatch(job),
            Err(bad) => async move { Err(JobError::Permanent(bad.reason)) }.boxed(),
        }
    }
}
