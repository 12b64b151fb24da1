//! [`Tx`]: one database transaction plus the events and jobs it produced.
//!
//! Operations take `&mut Tx`, write through [`Tx::conn`], and record what happened with
//! [`Tx::emit`] and [`Tx::enqueue`]: just before the COMMIT, the transaction's events are appended
//! to the event log and its jobs staged in the job outbox, all in one round trip; after it, the
//! events are published and the jobs enqueued. Dropping a `Tx` without committing rolls back: the
//! pool discards a connection returned mid-transaction.

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
    /// Events emitted and not yet appended (that happens in [`Tx::commit`]).
    events: Vec<Prepared>,
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
        Ok(Self {
            conn,
            ctx,
            effects: Effects::default(),
            events: Vec::new(),
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

    /// Records `event` in this transaction: its channels are checked now, it is appended to the
    /// log (in emit order, with the others) just before the commit and published after it.
    /// Async only for the callers' sake: it does no I/O.
    pub async fn emit(&mut self, event: NewEvent) -> Result<(), ConversationError> {
        self.events.push(log::prepare(&self.ctx, event)?);
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
        Ok(())
    }

    /// Commits; returns what is to be published and enqueued now.
    pub async fn commit(mut self) -> Result<Effects, ConversationError> {
        // The events and the staged jobs, in one round trip that also says whether the tenant
        // has subscriptions.
        let mut has_subscriptions = false;
        if !self.events.is_empty() || !self.effects.jobs.is_empty() {
            let events = std::mem::take(&mut self.events);
            // Boxed for the same reason as the staging below.
            let append: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<log::AppendedAll, _>> + Send + '_>,
            > = Box::pin(log::append_all(
                &mut self.conn,
                &self.ctx,
                events,
                &self.effects.jobs,
            ));
            let appended = append.await?;
            self.effects.events.extend(appended.events);
            has_subscriptions = appended.tenant_has_subscriptions;
        }
        // Webhook subscriptions: one `webhook.fanout` job for this transaction's events,
        // staged with them so that a committed event always reaches fan-out — unless the tenant
        // has no subscription at all (most tenants, most of the time), when the job would only
        // find nothing to do: skipping it saves an outbox row, an enqueue and a job run per
        // transaction. The check runs last before COMMIT (with the append); a subscription
        // committed after it is treated like one created after these events (it gets later
        // events, and `replay` delivers these).
        let event_ids: Vec<String> = self
            .effects
            .events
            .iter()
            .map(|e| e.envelope.id.clone())
            .collect();
        let correlation = self
            .effects
            .events
            .first()
            .map(|e| e.envelope.correlation_id.clone())
            .unwrap_or_default();
        let staged = if has_subscriptions {
            crate::webhooks::fanout_job::staged(&self.ctx.tenant_id, &correlation, event_ids)
        } else {
            None
        };
        if let Some(staged) = staged {
            // Boxed: keeps the commit future's type small (deeply nested callers overflow the
            // trait solver otherwise).
            let stage: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<(), _>> + Send + '_>,
            > = Box::pin(outbox::stage_job(
                &mut self.conn,
                &self.ctx.causation_id,
                &staged,
            ));
            stage.await?;
            self.effects.jobs.push(staged);
        }
        AnsiTransactionManager::commit_transaction(&mut *self.conn).await?;
        Ok(std::mem::take(&mut self.effects))
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
