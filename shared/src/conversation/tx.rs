//! [`Tx`]: one database transaction plus the events and jobs it produced.
//!
//! Operations take `&mut Tx`, write through [`Tx::conn`], and record what happened with
//! [`Tx::emit`] and [`Tx::enqueue`]: just before the COMMIT, the transaction's events are appended
//! to the event log and its jobs staged in the job outbox, all in one round trip; after it, the
//! events are published and the jobs enqueued. Dropping a `Tx` without committing rolls back: the
//! pool discards a connection returned mid-transaction.
//!
//! A `Tx` may also carry several jobs' steps ([`Tx::switch_cause`]): each step's events and jobs
//! carry its own causation id, are written together by the one call before the COMMIT, and the
//! transaction commits once for all of them (group commit of the worker's inbound store steps,
//! worker/src/handlers/batch.rs). The steps may take turns — the batch runs a statement of every
//! step in one exchange, then the next — and still each step's events are logged together, in
//! the order it emitted them, steps in the order they first came. Such a shared transaction
//! refuses a handoff, whose tenant-wide locks could deadlock against another shared
//! transaction ([`ConversationError::NeedsOwnTransaction`]).

use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

use super::ConversationError;
use crate::{
    db::{DbConn, DbPool},
    events::{
        EventContext, NewEvent,
        log::{self, Prepared},
        outbox::{self, Effects, StagedJob},
    },
    queue::Job,
};

pub struct Tx {
    conn: DbConn,
    ctx: EventContext,
    effects: Effects,
    /// Events emitted and not yet appended (that happens in [`Tx::commit`]), each with the index
    /// of its step in `steps`.
    events: Vec<(usize, Prepared)>,
    /// The index in `steps` of the step each of `effects.jobs` was staged by (its causation id
    /// is the job outbox's origin).
    job_steps: Vec<usize>,
    /// The causation ids of this transaction's steps, in the order they first came.
    steps: Vec<String>,
    /// Whether this transaction carries more than one job's step.
    shared: bool,
    channel_prefix: String,
}

impl Tx {
    pub(super) async fn begin(
        db: &DbPool,
        ctx: EventContext,
        channel_prefix: &str,
    ) -> Result<Self, ConversationError> {
        let mut conn = db
            .get()
            .await
            .map_err(|e| ConversationError::Pool(e.to_string()))?;
        AnsiTransactionManager::begin_transaction(&mut *conn).await?;
        let steps = vec![ctx.causation_id.clone()];
        Ok(Self {
            conn,
            ctx,
            effects: Effects::default(),
            events: Vec::new(),
            job_steps: Vec::new(),
            steps,
            shared: false,
            channel_prefix: channel_prefix.to_owned(),
        })
    }

    pub fn conn(&mut self) -> &mut AsyncPgConnection {
        &mut self.conn
    }

    /// The tenant every write of this transaction belongs to.
    pub fn tenant_id(&self) -> &str {
        &self.ctx.tenant_id
    }

    /// The deployment's BROADCAST_PREFIX (for channel names that travel in jobs).
    pub fn channel_prefix(&self) -> &str {
        &self.channel_prefix
    }

    pub fn causation_id(&self) -> &str {
        &self.ctx.causation_id
    }

    /// Whether this transaction carries several jobs' steps ([`Tx::switch_cause`]).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// What follows belongs to `causation_id` — one more job's step in this same transaction,
    /// or one it carries already, taking its turn again (its events and staged jobs carry that
    /// id). From then on the transaction counts as shared: call it before the first step too.
    pub fn switch_cause(&mut self, causation_id: &str) {
        self.ctx.causation_id = causation_id.to_owned();
        if !self.steps.iter().any(|step| step == causation_id) {
            self.steps.push(causation_id.to_owned());
        }
        self.shared = true;
    }

    /// The index of the current step in `steps`.
    fn step(&self) -> usize {
        let cause = &self.ctx.causation_id;
        self.steps
            .iter()
            .position(|step| step == cause)
            .unwrap_or(0)
    }

    /// Records `event` in this transaction: its channels are checked now, it is appended to the
    /// log (in emit order, with the others) just before the commit and published after it.
    /// Async only for the callers' sake: it does no I/O.
    pub async fn emit(&mut self, event: NewEvent) -> Result<(), ConversationError> {
        let step = self.step();
        self.events.push((step, log::prepare(&self.ctx, event)?));
        Ok(())
    }

    /// Stages `job` in this transaction (written to the job outbox with the events, just before
    /// the commit); it is enqueued after the commit (unless a job with the same `dedup_key` was
    /// enqueued recently). Async only for the callers' sake: it does no I/O.
    pub async fn enqueue(
        &mut self,
        job: Job,
        dedup_key: Option<String>,
    ) -> Result<(), ConversationError> {
        self.effects.jobs.push(StagedJob { job, dedup_key });
        self.job_steps.push(self.step());
        Ok(())
    }

    /// Commits; returns what is to be published and enqueued now.
    pub async fn commit(mut self) -> Result<Effects, ConversationError> {
        // The events and the staged jobs of every step, in one round trip that also says
        // whether the tenant has subscriptions.
        let mut has_subscriptions = false;
        if !self.events.is_empty() || !self.effects.jobs.is_empty() {
            let events = self.events_by_step();
            let job_origins = self.jobs_by_step();
            // Boxed for the same reason as the staging below.
            let append: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<log::AppendedAll, _>> + Send + '_>,
            > = Box::pin(log::append_all(
                &mut self.conn,
                &self.ctx,
                events,
                &self.effects.jobs,
                &job_origins,
            ));
            let appended = append.await?;
            self.effects.events.extend(appended.events);
            has_subscriptions = appended.tenant_has_subscriptions;
        }
        // Webhook subscriptions: one `webhook.fanout` job per step's events, staged with them so
        // that a committed event always reaches fan-out — unless the tenant has no subscription
        // at all (most tenants, most of the time), when the job would only find nothing to do:
        // skipping it saves an outbox row, an enqueue and a job run per transaction. The check
        // runs last before COMMIT (with the append); a subscription committed after it is
        // treated like one created after these events (it gets later events, and `replay`
        // delivers these).
        if has_subscriptions {
            for (causation_id, event_ids, correlation) in self.steps_events() {
                let Some(staged) = crate::webhooks::fanout_job::staged(
                    &self.ctx.tenant_id,
                    &correlation,
                    event_ids,
                ) else {
                    continue;
                };
                // Boxed: keeps the commit future's type small (deeply nested callers overflow
                // the trait solver otherwise).
                let stage: std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<(), _>> + Send + '_>,
                > = Box::pin(outbox::stage_job(&mut self.conn, &causation_id, &staged));
                stage.await?;
                self.effects.jobs.push(staged);
            }
        }
        AnsiTransactionManager::commit_transaction(&mut *self.conn).await?;
        Ok(std::mem::take(&mut self.effects))
    }

    /// The emitted events, each step's together (a stable sort: each step's in emit order).
    fn events_by_step(&mut self) -> Vec<Prepared> {
        let mut events = std::mem::take(&mut self.events);
        events.sort_by_key(|(step, _)| *step);
        events.into_iter().map(|(_, event)| event).collect()
    }

    /// Puts the staged jobs in step order too (stably); returns their origins, aligned.
    fn jobs_by_step(&mut self) -> Vec<String> {
        let mut staged: Vec<_> = std::mem::take(&mut self.job_steps)
            .into_iter()
            .zip(std::mem::take(&mut self.effects.jobs))
            .collect();
        staged.sort_by_key(|(step, _)| *step);
        let (steps, jobs): (Vec<usize>, Vec<_>) = staged.into_iter().unzip();
        self.effects.jobs = jobs;
        steps
            .into_iter()
            .map(|step| self.steps[step].clone())
            .collect()
    }

    /// The recorded events by step, in order: (causation id, event ids, the first event's
    /// correlation id).
    fn steps_events(&self) -> Vec<(String, Vec<String>, String)> {
        let mut steps: Vec<(String, Vec<String>, String)> = Vec::new();
        for event in &self.effects.events {
            match steps.last_mut() {
                Some((cause, ids, _)) if *cause == event.causation_id => {
                    ids.push(event.envelope.id.clone())
                }
                _ => steps.push((
                    event.causation_id.clone(),
                    vec![event.envelope.id.clone()],
                    event.envelope.correlation_id.clone(),
                )),
            }
        }
        steps
    }

    pub async fn rollback(mut self) -> Result<(), ConversationError> {
        AnsiTransactionManager::rollback_transaction(&mut *self.conn).await?;
        Ok(())
    }

    /// Commits on `Ok`, rolls back on `Err`.
    pub async fn finish<T>(
        self,
        result: Result<T, ConversationError>,
    ) -> Result<(T, Effects), ConversationError> {
        match result {
            Ok(value) => Ok((value, self.commit().await?)),
            Err(error) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed; the connection is dropped");
                }
                Err(error)
            }
        }
    }
}
