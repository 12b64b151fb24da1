//! Group commit for the inbound store step: several jobs' steps in one transaction.
//!
//! Why: a follow-up's step is three statements and the append of its events, and the
//! transaction around them (BEGIN, COMMIT and its WAL flush) costs Postgres about as much again.
//! The step's statements under `pgbench` on two cores (`scripts/pgbench-store-steps`): 1.17–1.39
//! ms of Postgres CPU per message one per transaction, 0.66–0.79 with four per transaction and
//! one events' append for them (BENCHMARKS.md, "Group commit").
//!
//! How: at most `transactions` store transactions run at once. A step waits in a queue; the job
//! that gets a free transaction takes up to `max_steps` waiting steps of one tenant (oldest
//! first), orders them by customer — so shared transactions take customers' row locks in the
//! same order — and runs them in one transaction, taking turns statement by statement so that
//! all their conversations are found or opened in one pipelined exchange, then all their
//! messages stored, then all the bot's replies (`inbound::store_in`: six round trips for a
//! batch of messages the bot simply answers, however many), each step under its own job id as
//! causation (`Tx::switch_cause`; all their events and staged jobs are written by one call
//! before the COMMIT, each step's together). One COMMIT; then the events are published and the jobs enqueued (`settle`); only then does each job get
//! its result, so nothing is acked before it is committed and sent. If a step fails — a handoff
//! included, which takes tenant-wide locks and so wants a transaction of its own — or the COMMIT
//! does, everything is rolled back and every step runs again alone, as without batching, each
//! job getting its own outcome. With nothing else waiting a step runs alone at once, so at low
//! load batching adds no wait.
//!
//! Each step's conversation call takes all its customer's locks before the next step's starts
//! (`sessions::of_senders`), so shared transactions take them in the batch's order whether a
//! customer is new, returning or in a conversation. Should two still wait on each other,
//! Postgres aborts one after `deadlock_timeout`, and its steps run alone (the fallback above).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, PoisonError},
};

use shared::{
    bot::InboxBot,
    conversation::{ConversationError, Tx},
    events::outbox::Effects,
    jobs::JobError,
    queue::Job,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::{Pipeline, inbound, inbound::Landed, parse::Inbound};

/// Handles `jobs` as their handler does, except that their store steps run in one shared
/// transaction, as when they queue up together (or each alone, if that one fails). For tests.
pub async fn handle_together(p: &Pipeline, jobs: &[Job]) -> Vec<Result<(), JobError>> {
    let mut outcomes: Vec<Option<Result<(), JobError>>> = jobs.iter().map(|_| None).collect();
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        match inbound::step(p, job).await {
            Ok(step) => {
                let (done, answer) = oneshot::channel();
                answers.push((index, step.inbound.clone(), answer));
                batch.push(Waiting { step, done });
            }
            Err(error) => outcomes[index] = Some(Err(error)),
        }
    }
    if !batch.is_empty() {
        run(p, batch, None).await;
    }
    for (index, inbound, answer) in answers {
        let outcome = match answer.await.unwrap_or_else(|_| lost()) {
            Ok(landed) => inbound::after_store(p, &jobs[index], &inbound, landed).await,
            Err(error) => Err(error),
        };
        outcomes[index] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every job answered"))
        .collect()
}

/// One job's store step.
pub struct StoreStep {
    /// `store_step`, with the job's id and correlation id: each of the step's turns in a
    /// transaction runs in it.
    pub span: tracing::Span,
    pub job: Job,
    pub inbound: Arc<Inbound>,
    /// The inbox's bot when it needs no I/O: it answers in the same transaction.
    pub local_bot: Option<InboxBot>,
}

impl StoreStep {
    /// The order in which shared transactions take customers' locks.
    pub(super) fn lock_order(&self) -> (&str, &str) {
        (&self.inbound.inbox_id, &self.inbound.contact.external_id)
    }
}

struct Waiting {
    step: StoreStep,
    done: oneshot::Sender<Result<Landed, JobError>>,
}

/// Runs store steps, several to a transaction when they queue up.
pub struct StoreBatcher {
    waiting: Mutex<VecDeque<Waiting>>,
    transactions: Arc<Semaphore>,
    max_steps: usize,
}

impl StoreBatcher {
    /// At most `transactions` store transactions at once, each of at most `max_steps` steps
    /// (1: every step alone, no queue).
    pub fn new(transactions: usize, max_steps: usize) -> Self {
        Self {
            waiting: Mutex::new(VecDeque::new()),
            transactions: Arc::new(Semaphore::new(transactions.max(1))),
            max_steps: max_steps.max(1),
        }
    }

    pub async fn store(&self, p: &Pipeline, step: StoreStep) -> Result<Landed, JobError> {
        if self.max_steps == 1 {
            return inbound::store_alone(p, &step).await;
        }
        let (done, mut result) = oneshot::channel();
        self.queue().push_back(Waiting { step, done });
        loop {
            tokio::select! {
                biased;
                outcome = &mut result => return outcome.unwrap_or_else(|_| lost()),
                permit = self.transactions.clone().acquire_owned() => {
                    let permit = permit.expect("the semaphore is never closed");
                    let batch = self.take();
                    if batch.is_empty() {
                        // Another job's transaction took this step; it answers.
                        drop(permit);
                        return result.await.unwrap_or_else(|_| lost());
                    }
                    // Spawned: were this job cancelled (a timeout), the others' steps go on.
                    let p = p.clone();
                    let _ = tokio::spawn(async move { run(&p, batch, Some(permit)).await }).await;
                }
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest waiting step and up to `max_steps - 1` more of its tenant.
    fn take(&self) -> Vec<Waiting> {
        let mut queue = self.queue();
        let Some(first) = queue.pop_front() else {
            return Vec::new();
        };
        let mut batch = vec![first];
        let mut index = 0;
        while batch.len() < self.max_steps && index < queue.len() {
            if queue[index].step.inbound.tenant_id == batch[0].step.inbound.tenant_id {
                batch.extend(queue.remove(index));
            } else {
                index += 1;
            }
        }
        batch
    }
}

fn lost() -> Result<Landed, JobError> {
    Err(JobError::Transient(
        "the store step's transaction ended without an answer".into(),
    ))
}

/// Runs `batch` in one transaction, or each step alone if that fails; answers every step.
/// `permit` (the batcher's transaction slot) is given back as soon as the transaction ended,
/// before publishing: the next transaction need not wait for Redis.
async fn run(p: &Pipeline, mut batch: Vec<Waiting>, permit: Option<OwnedSemaphorePermit>) {
    // Every shared transaction takes customers' locks in this one order (stable: a customer's
    // own messages keep their arrival order).
    batch.sort_by(|a, b| a.step.lock_order().cmp(&b.step.lock_order()));
    metrics::histogram!("switchyard_store_batch_steps").record(batch.len() as f64);
    let steps: Vec<&StoreStep> = batch.iter().map(|w| &w.step).collect();
    let outcome = together(p, &steps).await;
    drop(permit);
    match outcome {
        // Alone already: its outcome is its own.
        Err(fallback) if batch.len() == 1 => {
            if let Some(waiting) = batch.into_iter().next() {
                let _ = waiting.done.send(Err(fallback.error.into()));
            }
        }
        Ok((landed, effects)) => {
            p.conversations.settle(effects).await;
            for (waiting, landed) in batch.into_iter().zip(landed) {
                let _ = waiting.done.send(Ok(landed));
            }
        }
        Err(fallback) => {
            let reason = fallback.reason();
            metrics::counter!("switchyard_store_batch_fallbacks_total", "reason" => reason)
                .increment(1);
            tracing::debug!(
                steps = batch.len(),
                reason,
                error = %fallback.error,
                "shared store transaction rolled back; each step runs alone"
            );
            futures::future::join_all(batch.into_iter().map(|waiting| async move {
                let outcome = inbound::store_alone(p, &waiting.step).await;
                let _ = waiting.done.send(outcome);
            }))
            .await;
        }
    }
}

/// Why a shared transaction was given up.
struct Fallback {
    error: ConversationError,
    at_commit: bool,
}

impl Fallback {
    fn reason(&self) -> &'static str {
        match (&self.error, self.at_commit) {
            (ConversationError::NeedsOwnTransaction, _) => "handoff",
            (_, true) => "commit",
            (_, false) => "step",
        }
    }
}

/// All of `steps` in one transaction: what each landed, and what to send after the commit.
async fn together(p: &Pipeline, steps: &[&StoreStep]) -> Result<(Vec<Landed>, Effects), Fallback> {
    let first = steps.first().expect("a batch has a step");
    let mut tx = p
        .conversations
        .begin(&first.inbound.tenant_id, &first.job.id.to_string())
        .await
        .map_err(|error| Fallback {
            error,
            at_commit: false,
        })?;
    // Shared from the first step on when there are several (so that none hands off).
    let landed = match inbound::store_in(p, &mut tx, steps, steps.len() > 1).await {
        Ok(landed) => landed,
        Err(error) => return Err(abandon(tx, error).await),
    };
    let effects = tx.commit().await.map_err(|error| Fallback {
        error,
        at_commit: true,
    })?;
    Ok((landed, effects))
}

/// Rolls the shared transaction back after `error` in one of its steps.
async fn abandon(tx: Tx, error: ConversationError) -> Fallback {
    if let Err(rollback) = tx.rollback().await {
        tracing::warn!(error = %rollback, "rollback failed; the connection is dropped");
    }
    Fallback {
        error,
        at_commit: false,
    }
}
