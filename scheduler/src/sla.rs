//! SLA warnings/breaches for sessions waiting on an agent, and CSAT surveys that expire
//! unanswered: periodic sweeps relative to the run's `now` (idempotent, cumulative).
//!
//! - `sla-sweep`: every `waiting` queue item whose inbox has thresholds in `inbox_sla` and that
//!   has waited (since `queue_items.created_at`) at least `warning_secs` / `breach_secs` gets one
//!   `inbox.sla.warning` / `inbox.sla.breach` event. The `sla_notices` row that marks it is
//!   inserted in the same transaction as the event (primary key `(queue_item_id, level)`), so a
//!   re-run, a late run or two schedulers emit nothing twice.
//! - `expire-csat`: every `sent` survey older than its inbox's `csat_expiry_secs` (else the
//!   configured default) is set to `expired` and gets one `csat.expired` event, in one
//!   transaction (the state change is the mark).

use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;
use futures::{FutureExt, future::BoxFuture};
use serde_json::json;
use shared::{
    conversation::{ConversationError, Conversations},
    events::{AgentType, EventType, NewEvent, Route},
};

use crate::periodic::{PeriodicJob, RunContext};

pub use shared::events::types::{CSAT_EXPIRED, SLA_BREACH, SLA_WARNING};

/// Rows handled per sweep query; the sweep repeats until none is left.
const BATCH: i64 = 500;

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    inbox_id: String,
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    case_id: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    correlation_id: String,
    #[diesel(sql_type = BigInt)]
    threshold_secs: i64,
}

/// Emits the SLA events due at the run's `now`.
pub struct SlaSweep {
    pub conversations: Conversations,
}

impl SlaSweep {
    pub const NAME: &'static str = "sla-sweep";

    /// Emits every due event of `level` (`warning` or `breach`); returns how many.
    pub async fn sweep(&self, level: &str, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let (event, column) = match level {
            "warning" => (SLA_WARNING, "warning_secs"),
            _ => (SLA_BREACH, "breach_secs"),
        };
        let query = format!(
            "SELECT q.id, q.tenant_id, q.inbox_id, q.session_id, q.case_id, q.created_at, \
             s.correlation_id, sla.{column}::BIGINT AS threshold_secs \
             FROM queue_items q JOIN inbox_sla sla ON sla.inbox_id = q.inbox_id \
             JOIN sessions s ON s.id = q.session_id \
             WHERE q.state = 'waiting' AND sla.{column} IS NOT NULL \
             AND q.created_at + make_interval(secs => sla.{column}) <= $1 \
             AND NOT EXISTS (SELECT 1 FROM sla_notices n WHERE n.queue_item_id = q.id \
                             AND n.level = $2) \
             ORDER BY q.created_at LIMIT $3"
        );
        let mut emitted = 0;
        loop {
            let due: Vec<Waiting> = {
                let mut conn = self.conversations.db.get().await?;
                diesel::sql_query(&query)
                    .bind::<Timestamptz, _>(now)
                    .bind::<Text, _>(level)
                    .bind::<BigInt, _>(BATCH)
                    .load(&mut conn)
                    .await?
            };
            let n = due.len();
            for item in due {
                if self.emit(level, event, &item, now).await? {
                    emitted += 1;
                }
            }
            if (n as i64) < BATCH {
                return Ok(emitted);
            }
        }
    }

    /// One event and its mark in one transaction; false when someone else marked it first or
    /// the item is no longer waiting.
    async fn emit(
        &self,
        level: &str,
        event: EventType,
        item: &Waiting,
        now: DateTime<Utc>,
    ) -> Result<bool, ConversationError> {
        let causation = format!("periodic:{}:{}", Self::NAME, now.timestamp_millis());
        let mut tx = self
            .conversations
            .begin(&item.tenant_id, &causation)
            .await?;
        let result = async {
            let marked = diesel::sql_query(
                "INSERT INTO sla_notices (queue_item_id, level, emitted_at) \
                 SELECT id, $2, $3 FROM queue_items WHERE id = $1 AND state = 'waiting' \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(&item.id)
            .bind::<Text, _>(level)
            .bind::<Timestamptz, _>(now)
            .execute(tx.conn())
            .await?;
            if marked == 0 {
                return Ok(false);
            }
            let waited = (now - item.created_at).num_seconds();
            tx.emit(NewEvent {
                event_type: event,
                aggregate_type: "queue_item",
                aggregate_id: item.id.clone(),
                correlation_id: item.correlation_id.clone(),
                data: json!({
                    "inbox_id": item.inbox_id,
                    "queue_item_id": item.id,
                    "session_id": item.session_id,
                    "case_id": item.case_id,
                    "level": level,
                    "threshold_secs": item.threshold_secs,
                    "waiting_since": item.created_at,
                    "waited_secs": waited,
                }),
                route: Route::session(&item.session_id, AgentType::Live)
                    .with_app(&item.inbox_id)
                    .with_case(&item.case_id),
            })
            .await?;
            Ok(true)
        }
        .await;
        let (fired, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(fired)
    }
}

impl PeriodicJob for SlaSweep {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let warnings = self.sweep("warning", ctx.now).await?;
            let breaches = self.sweep("breach", ctx.now).await?;
            Ok(format!(
                "{warnings} SLA warnings and {breaches} SLA breaches"
            ))
        }
        .boxed()
    }
}

#[derive(QueryableByName)]
struct Unanswered {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    case_id: String,
    #[diesel(sql_type = Text)]
    session_id: String,
    #[diesel(sql_type = Text)]
    correlation_id: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// Closes CSAT surveys unanswered past their expiry, with a `csat.expired` event each.
pub struct ExpireCsat {
    pub conversations: Conversations,
    /// For inboxes without `inbox_sla.csat_expiry_secs` (CSAT_EXPIRY_DEFAULT).
    pub default_expiry: chrono::Duration,
}

impl ExpireCsat {
    pub const NAME: &'static str = "expire-csat";

    pub async fn sweep(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let mut expired = 0;
        loop {
            let due: Vec<Unanswered> = {
                let mut conn = self.conversations.db.get().await?;
                diesel::sql_query(
                    "SELECT c.id, c.tenant_id, c.case_id, c.session_id, s.correlation_id, \
                     c.created_at FROM csat_surveys c JOIN sessions s ON s.id = c.session_id \
                     LEFT JOIN inbox_sla sla ON sla.inbox_id = s.inbox_id \
                     WHERE c.state = 'sent' AND c.created_at + make_interval(secs => \
                     COALESCE(sla.csat_expiry_secs, $2)) <= $1 ORDER BY c.created_at LIMIT $3",
                )
                .bind::<Timestamptz, _>(now)
                .bind::<BigInt, _>(self.default_expiry.num_seconds())
                .bind::<BigInt, _>(BATCH)
                .load(&mut conn)
                .await?
            };
            let n = due.len();
            for survey in due {
                if self.expire(&survey, now).await? {
                    expired += 1;
                }
            }
            if (n as i64) < BATCH {
                return Ok(expired);
            }
        }
    }

    async fn expire(
        &self,
        survey: &Unanswered,
        now: DateTime<Utc>,
    ) -> Result<bool, ConversationError> {
        let causation = format!("periodic:{}:{}", Self::NAME, now.timestamp_millis());
        let mut tx = self
            .conversations
            .begin(&survey.tenant_id, &causation)
            .await?;
        let result = async {
            let closed = diesel::sql_query(
                "UPDATE csat_surveys SET state = 'expired', expired_at = $2 \
                 WHERE id = $1 AND state = 'sent'",
            )
            .bind::<Text, _>(&survey.id)
            .bind::<Timestamptz, _>(now)
            .execute(tx.conn())
            .await?;
            if closed == 0 {
                return Ok(false);
            }
            tx.emit(NewEvent {
                event_type: CSAT_EXPIRED,
                aggregate_type: "csat_survey",
                aggregate_id: survey.id.clone(),
                correlation_id: survey.correlation_id.clone(),
                data: json!({
                    "csat": { "id": survey.id, "case_id": survey.case_id, "state": "expired" },
                    "session_id": survey.session_id,
                    "sent_at": survey.created_at,
                    "expired_at": now,
                }),
                route: Route::session(&survey.session_id, AgentType::Live)
                    .with_case(&survey.case_id),
            })
            .await?;
            Ok(true)
        }
        .await;
        let (fired, effects) = tx.finish(result).await?;
        self.conversations.settle(effects).await;
        Ok(fired)
    }
}

impl PeriodicJob for ExpireCsat {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, ctx: RunContext) -> BoxFuture<'_, anyhow::Result<String>> {
        async move {
            let n = self.sweep(ctx.now).await?;
            Ok(format!("{n} CSAT surveys expired"))
        }
        .boxed()
    }
}
