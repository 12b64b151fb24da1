//! Publishing an event of a tenant's own type: validated against the type's schema, appended
//! to the event log (the same envelope as built-in events), and staged for webhook fan-out in
//! the same transaction — the `webhook.fanout` job goes through `job_outbox` exactly as the
//! pipeline's events do, so a committed event always reaches its subscriptions.
//!
//! An Idempotency-Key makes a retried publish return the event logged the first time: the key
//! is written in the event's transaction, and a second transaction with the same key waits on
//! the first's unique-index entry, then rolls its own event back and answers with the first.
//! A retry must be the same request: a key reused for another type, entity or data is refused
//! ([`CustomEventError::KeyReused`]) rather than answered with an event the caller did not ask
//! for (the IETF Idempotency-Key draft's 422).

use diesel::{prelude::*, sql_types::Text};
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, scoped_futures::ScopedFutureExt,
};
use serde_json::Value;

use super::{CustomEventError, name, schema, store};
use crate::{
    db::{DbPool, schema::custom_event_publications as keys},
    events::{
        EventContext, EventType, RecordedEvent,
        log::{self, NewCustomEvent},
        outbox::{self, Effects},
    },
};

/// Written in every custom event's envelope `source`.
pub const SOURCE: &str = "switchyard.api";
/// The aggregate of an event published without an entity: the event itself.
pub const DEFAULT_ENTITY: &str = "custom_event";
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The entity an event is about (its aggregate in the log and `/api/events/timeline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub entity_type: String,
    pub id: String,
}

/// One publish request.
#[derive(Clone, Debug)]
pub struct Publish {
    pub event_type: String,
    pub data: Value,
    pub entity: Option<Entity>,
    pub idempotency_key: Option<String>,
    /// The request's correlation id, carried in the envelope.
    pub correlation_id: String,
    /// The step that published it (`req:<request id>`), stored as `causation_id`.
    pub causation_id: String,
}

/// The event as logged, and what is still to be sent after the commit.
#[derive(Debug)]
pub struct Published {
    pub event: RecordedEvent,
    /// True when the Idempotency-Key matched an earlier publish: `event` is that one's.
    pub replayed: bool,
    /// The staged fan-out job; hand it to [`crate::events::Outbox::settle`].
    pub effects: Effects,
}

/// Checks the request's shape (not yet the schema): type name, entity, key.
fn check_request(publish: &Publish) -> Result<(), CustomEventError> {
    if EventType::parse(&publish.event_type).is_some() {
        return Err(CustomEventError::invalid(
            "type",
            format!(
                "{} is a built-in event type: only Switchyard publishes it",
                publish.event_type
            ),
        ));
    }
    if let Some(entity) = &publish.entity {
        name::check_entity(&entity.entity_type, &entity.id)
            .map_err(|why| CustomEventError::invalid("entity", why))?;
    }
    if let Some(key) = &publish.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(CustomEventError::invalid(
            "idempotency_key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    if !publish.data.is_object() {
        return Err(CustomEventError::invalid("data", "must be a JSON object"));
    }
    Ok(())
}

/// Validates and logs `publish` for `tenant_id`. The caller settles the returned effects.
pub async fn publish(
    db: &DbPool,
    tenant_id: &str,
    publish: Publish,
) -> Result<Published, CustomEventError> {
    check_request(&publish)?;
    let mut conn = db.get().await?;
    if let Some(key) = &publish.idempotency_key
        && let Some(event) = earlier(&mut conn, tenant_id, key).await?
    {
        return replay(event, &publish);
    }
    let registered = store::find(&mut conn, tenant_id, &publish.event_type)
        .await?
        .ok_or_else(|| {
            CustomEventError::invalid(
                "type",
                format!(
                    "{} is not a registered event type (register it with POST /api/events/types)",
                    publish.event_type
                ),
            )
        })?;
    if registered.archived {
        return Err(CustomEventError::invalid(
            "type",
            format!(
                "{} is archived and can no longer be published",
                registered.name
            ),
        ));
    }
    // A stored schema was valid when stored; one that no longer compiles is our problem.
    let validator = schema::compile(&registered.schema).map_err(|why| {
        CustomEventError::invalid(
            "type",
            format!("the schema of {} is unusable: {why}", registered.name),
        )
    })?;
    let violations = schema::violations(&validator, &publish.data);
    drop(validator);
    if !violations.is_empty() {
        metrics::counter!("switchyard_custom_events_total", "outcome" => "invalid").increment(1);
        return Err(CustomEventError::SchemaMismatch {
            event_type: registered.name,
            violations,
        });
    }
    let ctx = EventContext {
        tenant_id: tenant_id.to_owned(),
        causation_id: publish.causation_id.clone(),
        source: SOURCE,
    };
    let outcome = conn
        .transaction::<_, TxError, _>(|conn| append(conn, &ctx, &publish).scope_boxed())
        .await;
    match outcome {
        Ok(published) => {
            metrics::counter!("switchyard_custom_events_total", "outcome" => "logged").increment(1);
            tracing::info!(
                tenant_id,
                event_id = %published.event.envelope.id,
                event_type = %published.event.envelope.event_type,
                correlation_id = %publish.correlation_id,
                "custom event logged"
            );
            Ok(published)
        }
        Err(TxError::Replay(event_id)) => {
            let event = log::load(&mut conn, &[event_id])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    CustomEventError::invalid("idempotency_key", "names an event that was pruned")
                })?;
            replay(event, &publish)
        }
        Err(TxError::Failed(error)) => Err(error),
    }
}

/// The answer to a retry: the event its key logged, if `publish` asks for that same event.
fn replay(event: RecordedEvent, publish: &Publish) -> Result<Published, CustomEventError> {
    let same_entity = match &publish.entity {
        Some(entity) => {
            event.aggregate_type == entity.entity_type && event.aggregate_id == entity.id
        }
        None => event.aggregate_type == DEFAULT_ENTITY,
    };
    let same = event.envelope.event_type == publish.event_type
        && same_entity
        && same_json(&event.envelope.data, &publish.data);
    if !same {
        return Err(CustomEventError::KeyReused);
    }
    Ok(Published {
        event,
        replayed: true,
        effects: Effects::default(),
    })
}

/// JSON equality as Postgres's `jsonb` keeps it: numbers by value (the log gives back `1000` for
/// a request's `1e3`, and `12.5` for `12.50`), objects regardless of key order.
fn same_json(logged: &Value, sent: &Value) -> bool {
    match (logged, sent) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i128(), b.as_i128()) {
            (Some(a), Some(b)) => a == b,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| same_json(a, b)))
        }
        (a, b) => a == b,
    }
}

/// Inside the transaction: lock the entity, append, claim the key, stage the fan-out.
async fn append(
    conn: &mut AsyncPgConnection,
    ctx: &EventContext,
    publish: &Publish,
) -> Result<Published, TxError> {
    let (aggregate_type, aggregate_id) = match &publish.entity {
        Some(entity) => {
            // The pipeline locks an aggregate's row before appending; a tenant's entity has no
            // row, so an advisory lock keeps two publishes from racing for the same version.
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<Text, _>(format!(
                    "event_aggregate:{}:{}",
                    entity.entity_type, entity.id
                ))
                .execute(conn)
                .await?;
            (entity.entity_type.clone(), entity.id.clone())
        }
        // Each entity-less event is its own aggregate (version 1): nothing to race for.
        None => (
            DEFAULT_ENTITY.to_owned(),
            format!("cev_{}", ulid::Ulid::new()),
        ),
    };
    let event = NewCustomEvent {
        event_type: publish.event_type.clone(),
        aggregate_type,
        aggregate_id,
        correlation_id: publish.correlation_id.clone(),
        data: publish.data.clone(),
    };
    let recorded = log::append_custom(conn, ctx, event)
        .await
        .map_err(|e| TxError::Failed(e.into()))?;
    if let Some(key) = &publish.idempotency_key {
        let claimed = diesel::insert_into(keys::table)
            .values((
                keys::tenant_id.eq(&ctx.tenant_id),
                keys::idempotency_key.eq(key),
                keys::event_id.eq(&recorded.envelope.id),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if claimed == 0 {
            let first: String = keys::table
                .find((&ctx.tenant_id, key))
                .select(keys::event_id)
                .first(conn)
                .await?;
            return Err(TxError::Replay(first));
        }
    }
    let mut effects = Effects::default();
    let staged = crate::webhooks::fanout_job::staged(
        &ctx.tenant_id,
        &recorded.envelope.correlation_id,
        vec![recorded.envelope.id.clone()],
    );
    if let Some(staged) = staged {
        outbox::stage_job(conn, &ctx.causation_id, &staged)
            .await
            .map_err(|e| TxError::Failed(e.into()))?;
        effects.jobs.push(staged);
    }
    effects.events.push(recorded.clone());
    Ok(Published {
        event: recorded,
        replayed: false,
        effects,
    })
}

/// The event an earlier publish with `key` logged, if any.
async fn earlier(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    key: &str,
) -> Result<Option<RecordedEvent>, CustomEventError> {
    let id: Option<String> = keys::table
        .find((tenant_id, key))
        .select(keys::event_id)
        .first(conn)
        .await
        .optional()?;
    match id {
        Some(id) => Ok(log::load(conn, &[id]).await?.into_iter().next()),
        None => Ok(None),
    }
}

/// How the transaction ends when it does not commit.
enum TxError {
    /// Another publish holds the key: roll back ours, answer with that one's event.
    Replay(String),
    Failed(CustomEventError),
}

impl From<diesel::result::Error> for TxError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failed(error.into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::same_json;

    #[test]
    fn a_retry_is_the_same_json_as_jsonb_gives_it_back() {
        let logged = json!({ "order": { "amount": 1000, "items": [1, 2.5] }, "note": "x" });
        let sent: serde_json::Value =
            serde_json::from_str(r#"{"note":"x","order":{"items":[1,2.50],"amount":1e3}}"#)
                .unwrap();
        assert!(same_json(&logged, &sent));
        assert!(!same_json(
            &logged,
            &json!({ "order": { "amount": 1001, "items": [1, 2.5] }, "note": "x" })
        ));
        assert!(!same_json(
            &logged,
            &json!({ "order": { "amount": 1000, "items": [2.5, 1] }, "note": "x" })
        ));
        assert!(!same_json(
            &logged,
            &json!({ "order": { "amount": 1000, "items": [1, 2.5] } })
        ));
        assert!(!same_json(&json!({ "n": "1" }), &json!({ "n": 1 })));
        assert!(same_json(
            &json!({ "n": u64::MAX }),
            &json!({ "n": u64::MAX })
        ));
        assert!(!same_json(
            &json!({ "n": u64::MAX }),
            &json!({ "n": u64::MAX - 1 })
        ));
    }
}
