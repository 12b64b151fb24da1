//! Fan-out: a logged event becomes one `webhook.deliver` job per matching active subscription
//! of its tenant, and a `held` delivery row for each matching inactive one (recorded, not sent,
//! so recovery can deliver it later).
//!
//! Idempotent per event: rows are keyed by (subscription, event), and a second run enqueues only
//! deliveries that were never attempted (the handler drops any duplicate job it causes).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::{
    WebhookError, Webhooks,
    deliveries::{DeliveryTask, status},
    subscriptions::{self, Subscription},
};
use crate::db::schema::webhook_deliveries as rows;

/// The fields of the event envelope (seed 004) that fan-out reads; the whole envelope is what
/// subscribers receive.
#[derive(Clone, Debug, Deserialize)]
pub struct EventEnvelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub tenant_id: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl EventEnvelope {
    pub fn parse(event: &Value) -> Result<Self, WebhookError> {
        Self::deserialize(event).map_err(|e| WebhookError::Invalid(format!("event envelope: {e}")))
    }
}

/// Which subscriptions an event went to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FanOut {
    /// Active subscriptions a delivery job was enqueued for.
    pub enqueued: Vec<String>,
    /// Inactive subscriptions the event was recorded (held) for.
    pub held: Vec<String>,
}

impl Webhooks {
    /// Records and enqueues the deliveries `event` (an envelope as JSON) owes. Call it after
    /// the event is committed to the event log.
    pub async fn fan_out(&self, event: &Value) -> Result<FanOut, WebhookError> {
        let envelope = EventEnvelope::parse(event)?;
        let body = serde_json::to_string(event).unwrap_or_default();
        let mut conn = self.db.get().await?;
        let matching: Vec<Subscription> = subscriptions::for_tenant(&mut conn, &envelope.tenant_id)
            .await?
            .into_iter()
            .filter(|s| s.wants(&envelope.event_type, &envelope.data))
            .collect();
        if matching.is_empty() {
            return Ok(FanOut::default());
        }
        let new_rows: Vec<_> = matching
            .iter()
            .map(|s| {
                (
                    rows::subscription_id.eq(s.id.clone()),
                    rows::event_id.eq(envelope.id.clone()),
                    rows::tenant_id.eq(envelope.tenant_id.clone()),
                    rows::event_type.eq(envelope.event_type.clone()),
                    rows::event_at.eq(envelope.timestamp),
                    rows::body.eq(body.clone()),
                    rows::status.eq(if s.active {
                        status::PENDING
                    } else {
                        status::HELD
                    }),
                )
            })
            .collect();
        diesel::insert_into(rows::table)
            .values(new_rows)
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await?;
        let ids: Vec<&str> = matching.iter().map(|s| s.id.as_str()).collect();
        let unattempted: Vec<String> = rows::table
            .filter(rows::event_id.eq(&envelope.id))
            .filter(rows::subscription_id.eq_any(&ids))
            .filter(rows::status.eq(status::PENDING))
            .filter(rows::attempts.eq(0))
            .select(rows::subscription_id)
            .load(&mut conn)
            .await?;
        let correlation = envelope.correlation_id.as_deref().unwrap_or(&envelope.id);
        let jobs: Vec<_> = unattempted
            .iter()
            .map(|sub| {
                DeliveryTask::first(sub, &envelope.id, 1).to_job(&envelope.tenant_id, correlation)
            })
            .collect();
        self.queues.enqueue_batch(&jobs).await?;
        Ok(FanOut {
            enqueued: unattempted,
            held: matching
                .into_iter()
                .filter(|s| !s.active)
                .map(|s| s.id)
                .collect(),
        })
    }
}
