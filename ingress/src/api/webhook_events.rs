//! The events API (DESIGN.md §7, issue 7): `GET /api/events` (filters `type`, `entity_type`,
//! `entity_id`, `from`, `to` (RFC 3339); cursor `after` = the last `seq`; `limit`),
//! `GET /api/events/timeline?entity_type=&entity_id=` (one aggregate's history in version
//! order), `GET /api/events/stats[?from=&to=]` (counts per type and per hour, default the last
//! 24 h), `GET /api/events/schemas` (the built-in event types with JSON Schemas of the envelope,
//! then the tenant's custom types with theirs).
//! Tenant keys only; every query is filtered by the caller's tenant.

use chrono::{DateTime, Utc};
use diesel::{
    dsl::count_star,
    prelude::*,
    sql_types::{BigInt, Text, Timestamptz},
};
use diesel_async::RunQueryDsl;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{
    db::schema::event_logs as el,
    events::{RecordedEvent, custom, log, types},
};

use super::{Answer, ApiError, Call, input};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    List,
    Timeline,
    Stats,
    Schemas,
}

impl Route {
    pub(crate) fn of(method: &Method, path: &str) -> Option<Result<Self, ApiError>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let route = match segments.as_slice() {
            ["events"] if method == Method::GET => Self::List,
            ["events", "timeline"] => Self::Timeline,
            ["events", "stats"] => Self::Stats,
            ["events", "schemas"] => Self::Schemas,
            _ => return None,
        };
        if method != Method::GET {
            return Some(Err(ApiError::MethodNotAllowed("GET")));
        }
        Some(Ok(route))
    }
}

fn db_error(e: impl ToString) -> ApiError {
    ApiError::Conversation(shared::conversation::ConversationError::Pool(e.to_string()))
}

fn time(pairs: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid(name, "must be an RFC 3339 time")),
    }
}

fn text(pairs: &[(String, String)], name: &str) -> Result<Option<String>, ApiError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) if v.is_empty() || v.len() > 128 => {
            Err(ApiError::invalid(name, "must be 1 to 128 characters"))
        }
        Some((_, v)) => Ok(Some(v.clone())),
    }
}

fn event_json(e: RecordedEvent) -> Value {
    json!({
        "seq": e.seq,
        "event": e.envelope,
        "aggregate": { "type": e.aggregate_type, "id": e.aggregate_id, "version": e.aggregate_version },
        "channels": e.channels,
    })
}

pub(crate) async fn serve(
    call: &Call<'_>,
    route: Route,
    query: Option<&str>,
) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?.to_owned();
    let pairs = input::query(query);
    match route {
        Route::List => list(call, &tenant, &pairs).await,
        Route::Timeline => timeline(call, &tenant, &pairs).await,
        Route::Stats => stats(call, &tenant, &pairs).await,
        Route::Schemas => schemas(call, &tenant).await,
    }
}

async fn list(
    call: &Call<'_>,
    tenant: &str,
    pairs: &[(String, String)],
) -> Result<Answer, ApiError> {
    let after = input::query_number(pairs, "after", 0, 0..=i64::MAX)?;
    let limit = input::query_number(pairs, "limit", 100, 1..=1000)?;
    let mut q = el::table
        .filter(el::tenant_id.eq(tenant.to_owned()))
        .filter(el::seq.gt(after))
        .into_boxed();
    if let Some(t) = text(pairs, "type")? {
        q = q.filter(el::event_type.eq(t));
    }
    if let Some(t) = text(pairs, "entity_type")? {
        q = q.filter(el::aggregate_type.eq(t));
    }
    if let Some(t) = text(pairs, "entity_id")? {
        q = q.filter(el::aggregate_id.eq(t));
    }
    if let Some(t) = time(pairs, "from")? {
        q = q.filter(el::occurred_at.ge(t));
    }
    if let Some(t) = time(pairs, "to")? {
        q = q.filter(el::occurred_at.lt(t));
    }
    let mut conn = call.conn().await?;
    let ids: Vec<String> = q
        .order(el::seq.asc())
        .limit(limit)
        .select(el::id)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    let events = log::load(&mut conn, &ids).await.map_err(db_error)?;
    let next = if events.len() as i64 == limit {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    let events: Vec<Value> = events.into_iter().map(event_json).collect();
    Ok(Answer(
        StatusCode::OK,
        json!({ "events": events, "next_after": next }),
    ))
}

async fn timeline(
    call: &Call<'_>,
    tenant: &str,
    pairs: &[(String, String)],
) -> Result<Answer, ApiError> {
    let entity_type = text(pairs, "entity_type")?
        .ok_or_else(|| ApiError::invalid("entity_type", "is required"))?;
    let entity_id =
        text(pairs, "entity_id")?.ok_or_else(|| ApiError::invalid("entity_id", "is required"))?;
    let limit = input::query_number(pairs, "limit", 500, 1..=1000)?;
    let mut conn = call.conn().await?;
    let ids: Vec<String> = el::table
        .filter(el::tenant_id.eq(tenant))
        .filter(el::aggregate_type.eq(&entity_type))
        .filter(el::aggregate_id.eq(&entity_id))
        .order(el::aggregate_version.asc())
        .limit(limit)
        .select(el::id)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    let mut events = log::load(&mut conn, &ids).await.map_err(db_error)?;
    events.sort_by_key(|e| e.aggregate_version);
    let events: Vec<Value> = events.into_iter().map(event_json).collect();
    Ok(Answer(
        StatusCode::OK,
        json!({ "entity_type": entity_type, "entity_id": entity_id, "events": events }),
    ))
}

async fn stats(
    call: &Call<'_>,
    tenant: &str,
    pairs: &[(String, String)],
) -> Result<Answer, ApiError> {
    let to = time(pairs, "to")?.unwrap_or_else(Utc::now);
    let from = time(pairs, "from")?.unwrap_or(to - chrono::Duration::hours(24));
    if from >= to {
        return Err(ApiError::invalid("from", "must be before to"));
    }
    let mut conn = call.conn().await?;
    let base = || {
        el::table
            .filter(el::tenant_id.eq(tenant.to_owned()))
            .filter(el::occurred_at.ge(from))
            .filter(el::occurred_at.lt(to))
    };
    let per_type: Vec<(String, i64)> = base()
        .group_by(el::event_type)
        .select((el::event_type, count_star()))
        .order(el::event_type.asc())
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    let per_hour: Vec<HourCount> = diesel::sql_query(
        "SELECT date_trunc('hour', occurred_at) AS hour, type AS event_type, count(*) AS n \
         FROM event_logs WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind::<Text, _>(tenant)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(&mut conn)
    .await
    .map_err(db_error)?;
    let total: i64 = per_type.iter().map(|(_, n)| n).sum();
    let by_type: serde_json::Map<String, Value> =
        per_type.into_iter().map(|(t, n)| (t, json!(n))).collect();
    let by_hour: Vec<Value> = per_hour
        .into_iter()
        .map(|r| json!({ "hour": r.hour, "type": r.event_type, "count": r.n }))
        .collect();
    Ok(Answer(
        StatusCode::OK,
        json!({ "from": from, "to": to, "total": total, "by_type": by_type, "by_hour": by_hour }),
    ))
}

#[derive(QueryableByName)]
struct HourCount {
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The catalogue: each built-in type with the JSON Schema of its envelope (`data` is an object
/// whose fields depend on the type), then the tenant's own types (archived ones left out), whose
/// envelope schema carries their registered schema as `data`.
async fn schemas(call: &Call<'_>, tenant: &str) -> Result<Answer, ApiError> {
    let mut types: Vec<Value> = types::ALL
        .iter()
        .map(|t| {
            json!({
                "type": t.as_str(),
                "custom": false,
                "broadcast": !shared::events::channels::audiences(*t).is_empty(),
                "schema": envelope_schema(t.as_str(), json!({ "type": "object" })),
            })
        })
        .collect();
    let custom = custom::store::list(&call.api.conversations.db, tenant, false)
        .await
        .map_err(db_error)?;
    types.extend(custom.into_iter().map(|t| {
        json!({
            "type": t.name,
            "custom": true,
            "broadcast": false,
            "description": t.description,
            "schema": envelope_schema(&t.name, t.schema.clone()),
            "data_schema": t.schema,
        })
    }));
    Ok(Answer(StatusCode::OK, json!({ "event_types": types })))
}

fn envelope_schema(event_type: &str, data: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event_type,
        "type": "object",
        "required": ["id", "type", "version", "source", "timestamp", "tenant_id", "correlation_id", "data"],
        "properties": {
            "id": { "type": "string", "pattern": "^evt_" },
            "type": { "const": event_type },
            "version": { "const": "1.0" },
            "source": { "type": "string" },
            "timestamp": { "type": "string", "format": "date-time" },
            "tenant_id": { "type": "string" },
            "correlation_id": { "type": "string" },
            "data": data
        }
    })
}
