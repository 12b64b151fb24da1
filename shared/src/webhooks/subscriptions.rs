//! The subscriptions store: tenant-scoped CRUD over `event_subscriptions`, secret generation and
//! rotation. The HTTP layer (`/api/events/subscriptions`) calls these; every function takes the
//! tenant, so one tenant can never read or change another's subscriptions.
//!
//! The signing secret is returned once, by [`create`] and [`rotate_secret`]; a [`Subscription`]
//! serialises without it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use serde_json::Value;

use super::{WebhookError, client::check_url, matching, schedule, signing};
use crate::db::{DbPool, schema::event_subscriptions as subs};

/// One subscription as stored.
#[derive(Clone, Queryable, Selectable, Serialize, PartialEq)]
#[diesel(table_name = subs)]
pub struct Subscription {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub filters: Value,
    #[serde(skip)]
    pub secret: String,
    #[serde(skip)]
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub consecutive_failures: i32,
    pub failure_streak_started_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub retry_schedule_secs: Option<Vec<i32>>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("active", &self.active)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The secrets that sign a message at `now`: the current one, and the previous one while
    /// its overlap window lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }

    /// Does this subscription want `event_type` with this `data`?
    pub fn wants(&self, event_type: &str, data: &Value) -> bool {
        matching::type_matches(&self.event_types, event_type)
            && matching::filters_match(&self.filters, data)
    }

    pub fn schedule(&self) -> Vec<Duration> {
        schedule::effective(self.retry_schedule_secs.as_deref())
    }
}

/// What a tenant submits to create a subscription.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct NewSubscription {
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub filters: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    /// Delays in seconds; `None` for the default 1, 5, 15 minutes.
    #[serde(default)]
    pub retry_schedule_secs: Option<Vec<i32>>,
    /// Defaults to true.
    #[serde(default)]
    pub active: Option<bool>,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears a nullable one.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct SubscriptionUpdate {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub filters: Option<Value>,
    pub description: Option<Option<String>>,
    pub retry_schedule_secs: Option<Option<Vec<i32>>>,
    pub active: Option<bool>,
}

/// A new subscription and its secret, shown this once.
#[derive(Clone, Debug)]
pub struct Created {
    pub subscription: Subscription,
    pub secret: String,
}

fn new_id() -> String {
    format!("sub_{}", ulid::Ulid::new())
}

fn invalid(reason: impl Into<String>) -> WebhookError {
    WebhookError::Invalid(reason.into())
}

fn validate(
    url: Option<&str>,
    types: Option<&[String]>,
    filters: Option<&Value>,
    retry: Option<&[i32]>,
) -> Result<(), WebhookError> {
    if let Some(url) = url {
        check_url(url).map_err(invalid)?;
    }
    if let Some(types) = types {
        matching::validate_event_types(types).map_err(invalid)?;
    }
    if let Some(filters) = filters {
        matching::validate_filters(filters).map_err(invalid)?;
    }
    if let Some(retry) = retry {
        schedule::validate(retry).map_err(invalid)?;
    }
    Ok(())
}

pub async fn create(
    db: &DbPool,
    tenant_id: &str,
    new: NewSubscription,
) -> Result<Created, WebhookError> {
    let filters = new
        .filters
        .unwrap_or_else(|| Value::Object(Default::default()));
    let retry = new.retry_schedule_secs.as_deref();
    validate(
        Some(&new.url),
        Some(&new.event_types),
        Some(&filters),
        retry,
    )?;
    let secret = signing::generate_secret();
    let mut conn = db.get().await?;
    let subscription = diesel::insert_into(subs::table)
        .values((
            subs::id.eq(new_id()),
            subs::tenant_id.eq(tenant_id),
            subs::url.eq(&new.url),
            subs::event_types.eq(&new.event_types),
            subs::filters.eq(&filters),
            subs::secret.eq(&secret),
            subs::active.eq(new.active.unwrap_or(true)),
            subs::retry_schedule_secs.eq(&new.retry_schedule_secs),
            subs::description.eq(&new.description),
        ))
        .returning(Subscription::as_returning())
        .get_result(&mut conn)
        .await?;
    Ok(Created {
        subscription,
        secret,
    })
}

pub async fn get(
    db: &DbPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Subscription>, WebhookError> {
    let mut conn = db.get().await?;
    Ok(subs::table
        .filter(subs::id.eq(id).and(subs::tenant_id.eq(tenant_id)))
        .select(Subscription::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// The tenant's subscriptions, oldest first.
pub async fn list(db: &DbPool, tenant_id: &str) -> Result<Vec<Subscription>, WebhookError> {
    let mut conn = db.get().await?;
    Ok(subs::table
        .filter(subs::tenant_id.eq(tenant_id))
        .order(subs::id.asc())
        .select(Subscription::as_select())
        .load(&mut conn)
        .await?)
}

/// Applies `update`; `None` when the tenant has no such subscription. Setting `active` to true
/// here re-enables without re-sending held events; [`super::recover`] does both.
pub async fn update(
    db: &DbPool,
    tenant_id: &str,
    id: &str,
    update: SubscriptionUpdate,
) -> Result<Option<Subscription>, WebhookError> {
    let retry = update.retry_schedule_secs.clone().flatten();
    validate(
        update.url.as_deref(),
        update.event_types.as_deref(),
        update.filters.as_ref(),
        retry.as_deref(),
    )?;
    let Some(mut current) = get(db, tenant_id, id).await? else {
        return Ok(None);
    };
    if let Some(url) = update.url {
        current.url = url;
    }
    if let Some(types) = update.event_types {
        current.event_types = types;
    }
    if let Some(filters) = update.filters {
        current.filters = filters;
    }
    if let Some(description) = update.description {
        current.description = description;
    }
    if let Some(retry) = update.retry_schedule_secs {
        current.retry_schedule_secs = retry;
    }
    let reenabled = update.active == Some(true) && !current.active;
    if let Some(active) = update.active {
        current.active = active;
    }
    let mut conn = db.get().await?;
    let mut changes =
        diesel::update(subs::table.filter(subs::id.eq(id).and(subs::tenant_id.eq(tenant_id))))
            .set((
                subs::url.eq(&current.url),
                subs::event_types.eq(&current.event_types),
                subs::filters.eq(&current.filters),
                subs::description.eq(&current.description),
                subs::retry_schedule_secs.eq(&current.retry_schedule_secs),
                subs::active.eq(current.active),
                subs::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Subscription::as_returning())
            .get_result(&mut conn)
            .await
            .optional()?;
    if reenabled && let Some(sub) = changes.as_mut() {
        *sub = reset_failures(&mut conn, id).await?;
    }
    Ok(changes)
}

/// A fresh start: no failure streak, not disabled.
pub(crate) async fn reset_failures(
    conn: &mut diesel_async::AsyncPgConnection,
    id: &str,
) -> Result<Subscription, diesel::result::Error> {
    diesel::update(subs::table.find(id))
        .set((
            subs::active.eq(true),
            subs::consecutive_failures.eq(0),
            subs::failure_streak_started_at.eq(None::<DateTime<Utc>>),
            subs::disabled_at.eq(None::<DateTime<Utc>>),
            subs::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await
}

/// Deletes the subscription with its deliveries and logs; false when there was none.
pub async fn delete(db: &DbPool, tenant_id: &str, id: &str) -> Result<bool, WebhookError> {
    let mut conn = db.get().await?;
    let n = diesel::delete(subs::table.filter(subs::id.eq(id).and(subs::tenant_id.eq(tenant_id))))
        .execute(&mut conn)
        .await?;
    Ok(n == 1)
}

/// Replaces the secret; the old one keeps signing until `now + overlap`, so receivers can
/// switch without dropping a delivery. Returns the new secret (shown once).
pub async fn rotate_secret(
    db: &DbPool,
    tenant_id: &str,
    id: &str,
    overlap: Duration,
    now: DateTime<Utc>,
) -> Result<Option<String>, WebhookError> {
    let Some(current) = get(db, tenant_id, id).await? else {
        return Ok(None);
    };
    let secret = signing::generate_secret();
    let until = now + chrono::Duration::from_std(overlap).map_err(|e| invalid(e.to_string()))?;
    let mut conn = db.get().await?;
    let n =
        diesel::update(subs::table.filter(subs::id.eq(id).and(subs::secret.eq(&current.secret))))
            .set((
                subs::secret.eq(&secret),
                subs::previous_secret.eq(Some(&current.secret)),
                subs::previous_secret_expires_at.eq(Some(until)),
                subs::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
    if n == 0 {
        return Err(WebhookError::Conflict(
            "the secret was rotated concurrently".into(),
        ));
    }
    Ok(Some(secret))
}

/// Every subscription of a tenant (active or not), for fan-out.
pub(crate) async fn for_tenant(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant_id: &str,
) -> Result<Vec<Subscription>, diesel::result::Error> {
    subs::table
        .filter(subs::tenant_id.eq(tenant_id))
        .select(Subscription::as_select())
        .load(conn)
        .await
}

/// The tenant's subscription, row-locked for the rest of the transaction; `None` when the tenant
/// has no such subscription (another tenant's id included).
pub(super) async fn lock_for_tenant(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<Subscription>, WebhookError> {
    Ok(subs::table
        .filter(subs::id.eq(id).and(subs::tenant_id.eq(tenant_id)))
        .for_update()
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()?)
}
