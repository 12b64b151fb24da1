//! Retention pruning of the logs: `event_logs` (EVENT_LOG_RETENTION_DAYS) and the webhook logs
//! (WEBHOOK_RETENTION_DAYS, via `shared::webhooks::logs::purge_expired`). Same shape as
//! [`crate::housekeeping::PruneFailedJobs`]: sweeps relative to the run's `now`, safe to run late
//! or twice.
//!
//! `event_logs` is append-only by design (a trigger refuses UPDATE and DELETE); the only
//! deletion it allows is retention pruning, which says so with
//! `SET LOCAL switchyard.prune_events = 'on'` inside its own transaction. Only events older than
//! the retention are deleted (their `event_outbox` rows, if any, go with them by cascade — an
//! event that old will not be published any more).

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl, scoped_futures::ScopedFutureExt};
use futures::{FutureExt, future::BoxFuture};
use shared::db::DbPool;

use crate::periodic::{PeriodicJob, RunContext};

/// Rows deleted per transaction, so locks are held briefly.
const BATCH: i64 = 5_000;

/// Deletes `event_logs` rows that occurred longer than `retention` ago.
pub struct PruneEventLogs {
    pub db: DbPool,
    pub retention: chrono::Duration,
}

impl PruneEventLogs {
    pub const NAME: &'static str = "prune-event-logs";

    /// Deletes events with `occurred_at < cutoff`; returns how many.
    ///
    /// `occurred_at` has no index (the log's hot path is appends), so the batches walk `seq`'s
    /// index, which grows with time, up to the first event that is not old enough: only the old
    /// events are read, never the rest of the log (ordering by `occurred_at` scanned and sorted
    /// the whole log once per batch). An old event appended after a newer one (writers' clocks
    /// differ) waits for a later run: retention keeps at least, never less.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        #[derive(diesel::QueryableByName)]
        struct Boundary {
            #[diesel(sql_type = Nullable<BigInt>)]
            seq: Option<i64>,
        }
        let mut conn = self.db.get().await?;
        // No event recent enough: every event is a candidate.
        let boundary =
            diesel::sql_query("SELECT MIN(seq) AS seq FROM event_logs WHERE occurred_at >= $1")
                .bind::<Timestamptz, _>(cutoff)
                .get_result::<Boundary>(&mut conn)
                .await?
                .seq
                .unwrap_or(i64::MAX);
        let mut total = 0u64;
        loop {
            let deleted = conn
                .transaction::<usize, diesel::result::Error, _>(|conn| {
                    async move {
                        diesel::sql_query("SET LOCAL switchyard.prune_events = 'on'")
                            .execute(conn)
                            .await?;
                        diesel::sql_query(
                            "DELETE FROM event_logs WHERE seq IN (SELECT seq FROM event_logs \
                             WHERE seq < $2 AND occurred_at < $1 ORDER BY seq LIMIT $3)",
                        )
                        .bind::<Timestamptz, _>(cutoff)
                        .bind::<BigInt, _>(boundary)
                        .bind::<BigInt, _>(BATCH)
                        .execute(conn)
                        .await
                    }
                    .scope_boxed()
                })
                .await?;
            total += deleted as u64;
            if (deleted as i64) < BATCH {
                return Ok(total);
            }
        }
    }
}

impl PeriodicJob for PruneEventLogs {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let cutoff = ctx.now - self.retention;
            let deleted = self.prune(cutoff).await?;
            Ok(format!(
                "pruned {deleted} events that occurred before {cutoff}"
            ))
        }
        .boxed()
    }
}

/// Deletes webhook logs (and finished deliveries) older than `retention`.
pub struct PruneWebhookLogs {
    pub db: DbPool,
    pub retention: std::time::Duration,
}

impl PruneWebhookLogs {
    pub const NAME: &'static str = "prune-webhook-logs";
}

impl PeriodicJob for PruneWebhookLogs {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let (logs, deliveries) =
                shared::webhooks::logs::purge_expired(&self.db, self.retention, ctx.now).await?;
            Ok(format!(
                "pruned {logs} webhook logs and {deliveries} webhook deliveries"
            ))
        }
        .boxed()
    }
}
