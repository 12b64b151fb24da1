//! What an attempt means, committed in one transaction: the `webhook_logs` row, the
//! subscription's failure streak (reset by any 2xx; ten failures in a row, or one 410 Gone,
//! disable it and hold its pending deliveries), the delivery's new state, and — when the
//! schedule allows — the next attempt, enqueued before the commit so it can never be lost (a
//! crash in between at worst repeats an attempt, which receivers dedupe by `webhook-id`).
//!
//! Lock order is subscription row, then delivery row, everywhere.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, scoped_futures::ScopedFutureExt,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    WebhookError, Webhooks,
    client::{AttemptResult, Verdict},
    deliver::Outcome,
    deliveries::{self, DeliveryRow, DeliveryTask, status},
    fanout_job, schedule,
    subscriptions::Subscription,
};
use crate::{
    db::{
        keep_prepared,
        schema::{event_subscriptions as subs, webhook_deliveries as rows, webhook_logs as logs},
    },
    events::{EventContext, EventError, NewEvent, Route, log, outbox, types},
};

/// A subscription was just disabled. Its `subscription.disabled` event is already in the event
/// log — appended in the transaction that disabled it, with its broadcast and its fan-out
/// staged in the outbox — so the event cannot be lost whatever happens after the commit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubscriptionDisabled {
    pub subscription_id: String,
    pub tenant_id: String,
    pub url: String,
    pub reason: String,
    pub consecutive_failures: i32,
    pub disabled_at: DateTime<Utc>,
    /// The id of the logged `subscription.disabled` event (not part of its `data`).
    #[serde(skip)]
    pub event_id: String,
}

impl SubscriptionDisabled {
    pub const EVENT_TYPE: &'static str = "subscription.disabled";

    /// The event's `data`.
    pub fn data(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The `causation_id` of the event and the `origin` of its staged fan-out job: what
    /// [`crate::events::Outbox::flush_origin`] sends right after the commit.
    pub fn origin(&self) -> String {
        disabled_origin(&self.subscription_id)
    }
}

/// See [`SubscriptionDisabled::origin`].
pub fn disabled_origin(subscription_id: &str) -> String {
    format!("webhook:{subscription_id}")
}

/// The subscription's streak after this attempt.
struct Streak {
    failures: i32,
    started: Option<DateTime<Utc>>,
    disable: Option<String>,
}

fn streak_after(
    sub: &Subscription,
    verdict: Verdict,
    threshold: i32,
    now: DateTime<Utc>,
) -> Streak {
    if verdict == Verdict::Delivered {
        return Streak {
            failures: 0,
            started: None,
            disable: None,
        };
    }
    let failures = sub.consecutive_failures + 1;
    let reason = match verdict {
        Verdict::Gone => Some("the endpoint answered 410 Gone".to_owned()),
        _ if failures >= threshold => Some(format!("{failures} consecutive failed attempts")),
        _ => None,
    };
    Streak {
        failures,
        started: sub.failure_streak_started_at.or(Some(now)),
        disable: reason.filter(|_| sub.active),
    }
}

/// Everything the delivery half of the transaction needs to know about the attempt.
struct Attempted<'a> {
    task: &'a DeliveryTask,
    row: &'a DeliveryRow,
    result: &'a AttemptResult,
    ended: DateTime<Utc>,
    /// The delay before the next attempt, if the schedule has one.
    delay: Option<std::time::Duration>,
    correlation_id: &'a str,
}

impl Webhooks {
    pub(crate) async fn record(
        &self,
        task: &DeliveryTask,
        sub: &Subscription,
        row: &DeliveryRow,
        result: &AttemptResult,
        correlation_id: &str,
    ) -> Result<Outcome, WebhookError> {
        let ended = self.clock.now();
        let delay = schedule::next_delay(
            &sub.schedule(),
            task.retry,
            result.retry_after,
            &mut rand::rng(),
        );
        let attempted = Attempted {
            task,
            row,
            result,
            ended,
            delay,
            correlation_id,
        };
        let mut conn = self.db.get().await?;
        conn.transaction::<_, WebhookError, _>(|conn| {
            async move {
                // The subscription's row lock comes first: the log row's foreign key takes a
                // share lock on it, and two attempts that each held that share lock while
                // waiting to lock the row for update deadlocked.
                let Some(locked) = lock_subscription(conn, &sub.id).await? else {
                    return Ok(Outcome::Skipped("subscription deleted"));
                };
                insert_log(conn, sub, row, task.attempt, result, ended).await?;
                let streak =
                    streak_after(&locked, result.verdict(), self.config.disable_after, ended);
                let inactive = update_subscription(conn, &locked, &streak, ended).await?;
                match streak.disable.clone() {
                    Some(reason) => disable(conn, &locked, &streak, reason, &attempted).await,
                    None => self.settle_attempt(conn, &attempted, inactive).await,
                }
            }
            .scope_boxed()
        })
        .await
    }

    /// The delivery's new state: delivered, held, failed for good, or pending with the next
    /// attempt enqueued (before the commit, so it cannot be lost).
    async fn settle_attempt(
        &self,
        conn: &mut AsyncPgConnection,
        a: &Attempted<'_>,
        inactive: bool,
    ) -> Result<Outcome, WebhookError> {
        let attempt = a.task.attempt;
        let Some(current) = deliveries::lock(conn, &a.row.subscription_id, &a.row.event_id).await?
        else {
            return Ok(Outcome::Skipped("delivery deleted"));
        };
        if current.attempts >= attempt || current.status == status::DELIVERED {
            return Ok(Outcome::Skipped("attempt recorded by another copy"));
        }
        if a.result.verdict() == Verdict::Delivered {
            settle_delivery(conn, a, status::DELIVERED, None).await?;
            let status = a.result.status.unwrap_or(200);
            return Ok(Outcome::Delivered { attempt, status });
        }
        if inactive || current.status == status::HELD {
            settle_delivery(conn, a, status::HELD, None).await?;
            return Ok(Outcome::HeldAfterFailure { attempt });
        }
        let Some(delay) = a.delay else {
            settle_delivery(conn, a, status::FAILED, None).await?;
            return Ok(Outcome::Exhausted { attempt });
        };
        let due = a.ended + chrono::Duration::from_std(delay).unwrap_or_default();
        let next = a.task.next();
        let job = next.to_job(&a.row.tenant_id, a.correlation_id);
        self.queues.enqueue_at(&job, due.timestamp_millis()).await?;
        settle_delivery(conn, a, status::PENDING, Some(due)).await?;
        Ok(Outcome::RetryScheduled {
            attempt,
            next_attempt: next.attempt,
            due,
        })
    }
}

/// This attempt disabled the subscription: hold everything it still owed (this event too).
async fn disable(
    conn: &mut AsyncPgConnection,
    sub: &Subscription,
    streak: &Streak,
    reason: String,
    a: &Attempted<'_>,
) -> Result<Outcome, WebhookError> {
    deliveries::hold_all(conn, &sub.id).await?;
    settle_delivery(conn, a, status::HELD, None).await?;
    let mut disabled = SubscriptionDisabled {
        subscription_id: sub.id.clone(),
        tenant_id: sub.tenant_id.clone(),
        url: sub.url.clone(),
        reason,
        consecutive_failures: streak.failures,
        disabled_at: a.ended,
        event_id: String::new(),
    };
    disabled.event_id = log_disabled(conn, &disabled).await?;
    Ok(Outcome::Disabled(disabled))
}

/// Appends `subscription.disabled` (aggregate `subscription`) in the disabling transaction: the
/// log stages its broadcast on the tenant's `messages` channel in `event_outbox`, and its
/// `webhook.fanout` job is staged in `job_outbox`, both under [`SubscriptionDisabled::origin`].
/// After the commit the hook (or, failing that, the outbox relay) sends them: at least once.
async fn log_disabled(
    conn: &mut AsyncPgConnection,
    disabled: &SubscriptionDisabled,
) -> Result<String, WebhookError> {
    let ctx = EventContext {
        tenant_id: disabled.tenant_id.clone(),
        causation_id: disabled.origin(),
        source: "switchyard.worker",
    };
    let event = NewEvent {
        event_type: types::SUBSCRIPTION_DISABLED,
        aggregate_type: "subscription",
        aggregate_id: disabled.subscription_id.clone(),
        correlation_id: disabled.subscription_id.clone(),
        data: disabled.data(),
        route: Route::default(),
    };
    let recorded = log::append(conn, &ctx, event).await.map_err(event_error)?;
    let event_id = recorded.envelope.id;
    if let Some(job) = fanout_job::staged(
        &ctx.tenant_id,
        &disabled.subscription_id,
        vec![event_id.clone()],
    ) {
        outbox::stage_job(conn, &ctx.causation_id, &job)
            .await
            .map_err(event_error)?;
    }
    Ok(event_id)
}

fn event_error(error: EventError) -> WebhookError {
    match error {
        EventError::Database(e) => e.into(),
        // A channel name the matrix cannot build from this tenant id: refuse the transaction
        // rather than disable without the event.
        other => WebhookError::Conflict(format!("subscription.disabled not logged: {other}")),
    }
}

async fn insert_log(
    conn: &mut AsyncPgConnection,
    sub: &Subscription,
    row: &DeliveryRow,
    attempt: i32,
    result: &AttemptResult,
    at: DateTime<Utc>,
) -> Result<(), diesel::result::Error> {
    diesel::insert_into(logs::table)
        .values((
            logs::id.eq(format!("whl_{}", ulid::Ulid::new())),
            logs::subscription_id.eq(&sub.id),
            logs::tenant_id.eq(&row.tenant_id),
            logs::event_id.eq(&row.event_id),
            logs::event_type.eq(&row.event_type),
            logs::attempt.eq(attempt),
            logs::url.eq(&sub.url),
            logs::request_headers.eq(&result.request_headers),
            logs::status.eq(result.status.map(i32::from)),
            logs::response_excerpt.eq(&result.response_excerpt),
            logs::duration_ms.eq(i32::try_from(result.duration.as_millis()).unwrap_or(i32::MAX)),
            logs::error.eq(result.failure()),
            logs::created_at.eq(at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

async fn lock_subscription(
    conn: &mut AsyncPgConnection,
    id: &str,
) -> Result<Option<Subscription>, diesel::result::Error> {
    subs::table
        .find(id)
        .for_update()
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()
}

/// Writes the streak; returns whether the subscription is (now or already) inactive.
async fn update_subscription(
    conn: &mut AsyncPgConnection,
    sub: &Subscription,
    streak: &Streak,
    now: DateTime<Utc>,
) -> Result<bool, diesel::result::Error> {
    let disabling = streak.disable.is_some();
    // Once per delivery attempt: kept prepared (diesel never keeps an UPDATE prepared).
    keep_prepared(diesel::update(subs::table.find(&sub.id)).set((
        subs::consecutive_failures.eq(streak.failures),
        subs::failure_streak_started_at.eq(streak.started),
        subs::active.eq(sub.active && !disabling),
        subs::disabled_at.eq(if disabling {
            Some(now)
        } else {
            sub.disabled_at
        }),
        subs::updated_at.eq(now),
    )))
    .execute(conn)
    .await?;
    Ok(!sub.active || disabling)
}

/// Writes the attempt onto the delivery row. A delivered row keeps its status whatever a
/// late duplicate reports.
async fn settle_delivery(
    conn: &mut AsyncPgConnection,
    a: &Attempted<'_>,
    new_status: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Result<(), diesel::result::Error> {
    let delivered = (new_status == status::DELIVERED).then_some(a.ended);
    let attempts = diesel::dsl::sql::<diesel::sql_types::Integer>("GREATEST(attempts, ")
        .bind::<diesel::sql_types::Integer, _>(a.task.attempt)
        .sql(")");
    // Once per delivery attempt: kept prepared (diesel never keeps an UPDATE prepared).
    keep_prepared(
        diesel::update(
            rows::table
                .find((&a.task.subscription_id, &a.task.event_id))
                .filter(rows::status.ne(status::DELIVERED)),
        )
        .set((
            rows::status.eq(new_status),
            rows::attempts.eq(attempts),
            rows::last_attempt_at.eq(Some(a.ended)),
            rows::last_error.eq(a.result.failure()),
            rows::next_attempt_at.eq(next_attempt_at),
            rows::delivered_at.eq(delivered),
        )),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Used by the tests of this module's pure part.
#[cfg(test)]
fn sample(active: bool, failures: i32) -> Subscription {
    use serde_json::json;
    let now = Utc::now();
    Subscription {
        id: "sub_1".into(),
        tenant_id: "t".into(),
        url: "https://example.com".into(),
        event_types: vec!["*".into()],
        filters: json!({}),
        secret: String::new(),
        previous_secret: None,
        previous_secret_expires_at: None,
        active,
        consecutive_failures: failures,
        failure_streak_started_at: (failures > 0).then_some(now),
        disabled_at: None,
        retry_schedule_secs: None,
        description: None,
        created_at: now,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_failure_in_a_row_disables_and_any_success_resets() {
        let now = Utc::now();
        let s = streak_after(&sample(true, 8), Verdict::Failed, 10, now);
        assert_eq!((s.failures, s.disable.is_some()), (9, false));
        let s = streak_after(&sample(true, 9), Verdict::Failed, 10, now);
        assert_eq!((s.failures, s.disable.is_some()), (10, true));
        let s = streak_after(&sample(true, 9), Verdict::Delivered, 10, now);
        assert_eq!((s.failures, s.started, s.disable), (0, None, None));
        let s = streak_after(&sample(true, 0), Verdict::Gone, 10, now);
        assert!(s.disable.is_some(), "410 disables at once");
        assert_eq!(s.started, Some(now));
        let s = streak_after(&sample(false, 12), Verdict::Failed, 10, now);
        assert!(
            s.disable.is_none(),
            "an inactive subscription is not disabled twice"
        );
    }
}
