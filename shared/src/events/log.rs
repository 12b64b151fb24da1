//! The event log: `event_logs`, append-only, written in the caller's transaction.
//!
//! [`append`] numbers the event within its aggregate (the entity it is about: a message, a
//! session, a case…), computes its broadcast channels from the matrix, inserts it, and — when
//! it has channels — stages it in `event_outbox` for publishing after the commit. Because all of
//! this happens in the transaction that made the change, an event exists exactly when its change
//! does. Callers lock the aggregate's row first; the unique (aggregate, version) index turns a
//! race that slipped past that into an error instead of a forked history.
//!
//! A conversation transaction ([`crate::conversation::Tx`]) [`prepare`]s each event when it
//! happens (channels checked, envelope built) and writes them all with [`append_all`] just
//! before its COMMIT: one round trip for the lot instead of one per event.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::{
    Envelope, EventError, EventType, Route, channels, envelope::ENVELOPE_VERSION, outbox::StagedJob,
};
use crate::db::{keep_prepared, schema::event_logs};

/// Who is writing: the same for every event of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventContext {
    pub tenant_id: String,
    /// The job id or API request id doing the work (stored as `causation_id`).
    pub causation_id: String,
    /// `switchyard.worker`, `switchyard.api`…
    pub source: &'static str,
}

/// One event to append.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: EventType,
    /// The kind of entity the event is about (`message`, `session`, `case`…).
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    /// The conversation's correlation id (its session's), carried from the first webhook.
    pub correlation_id: String,
    pub data: Value,
    pub route: Route,
}

/// An event as appended: its envelope and the channels it is to be published on.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub seq: i64,
    pub envelope: Envelope,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: i32,
    pub causation_id: String,
    pub channels: Vec<String>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = event_logs)]
struct EventRow {
    id: String,
    tenant_id: String,
    event_type: String,
    version: String,
    source: String,
    aggregate_type: String,
    aggregate_id: String,
    aggregate_version: i32,
    correlation_id: String,
    causation_id: String,
    data: Value,
    channels: Vec<String>,
    occurred_at: DateTime<Utc>,
}

/// Appends `event` in the transaction `conn` is in.
pub async fn append(
    conn: &mut AsyncPgConnection,
    ctx: &EventContext,
    event: NewEvent,
) -> Result<RecordedEvent, EventError> {
    let channels = channels::channels_for(&ctx.tenant_id, event.event_type, &event.route)?;
    let row = Unwritten {
        event_type: event.event_type.as_str(),
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        correlation_id: event.correlation_id,
        data: event.data,
        channels,
    };
    append_row(conn, ctx, row).await
}

/// An event of a tenant's own type ([`super::custom`]), already validated against its schema.
#[derive(Clone, Debug)]
pub struct NewCustomEvent {
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub correlation_id: String,
    pub data: Value,
}

/// Appends a custom event in the transaction `conn` is in. Custom types are not in the
/// broadcast matrix: they are logged and offered to webhook subscriptions, never broadcast.
pub async fn append_custom(
    conn: &mut AsyncPgConnection,
    ctx: &EventContext,
    event: NewCustomEvent,
) -> Result<RecordedEvent, EventError> {
    let row = Unwritten {
        event_type: &event.event_type,
        aggregate_type: &event.aggregate_type,
        aggregate_id: event.aggregate_id,
        correlation_id: event.correlation_id,
        data: event.data,
        channels: Vec::new(),
    };
    append_row(conn, ctx, row).await
}

/// What [`append`] and [`append_custom`] share: an event whose channels are known.
struct Unwritten<'a> {
    event_type: &'a str,
    aggregate_type: &'a str,
    aggregate_id: String,
    correlation_id: String,
    data: Value,
    channels: Vec<String>,
}

/// The envelope of a new event of `ctx`'s tenant and source, with a fresh id.
fn new_envelope(
    ctx: &EventContext,
    event_type: &str,
    correlation_id: String,
    data: Value,
    occurred_at: DateTime<Utc>,
) -> Envelope {
    Envelope {
        id: crate::inboxes::new_id("evt"),
        event_type: event_type.to_owned(),
        version: ENVELOPE_VERSION.to_owned(),
        source: ctx.source.to_owned(),
        timestamp: super::envelope::iso8601(occurred_at),
        tenant_id: ctx.tenant_id.clone(),
        correlation_id,
        data,
    }
}

async fn append_row(
    conn: &mut AsyncPgConnection,
    ctx: &EventContext,
    event: Unwritten<'_>,
) -> Result<RecordedEvent, EventError> {
    let occurred_at = Utc::now();
    let envelope = new_envelope(
        ctx,
        event.event_type,
        event.correlation_id,
        event.data,
        occurred_at,
    );
    let broadcast = !event.channels.is_empty();
    let row = EventRow {
        id: envelope.id.clone(),
        tenant_id: ctx.tenant_id.clone(),
        event_type: envelope.event_type.clone(),
        version: ENVELOPE_VERSION.to_owned(),
        source: envelope.source.clone(),
        aggregate_type: event.aggregate_type.to_owned(),
        aggregate_id: event.aggregate_id,
        aggregate_version: 0,
        correlation_id: envelope.correlation_id.clone(),
        causation_id: ctx.causation_id.clone(),
        data: envelope.data.clone(),
        channels: event.channels,
        occurred_at,
    };
    let appended: Appended = insert(&row, broadcast).get_result(conn).await?;
    let row = EventRow {
        aggregate_version: appended.aggregate_version,
        ..row
    };
    let seq = appended.seq;
    Ok(RecordedEvent {
        seq,
        envelope,
        aggregate_type: row.aggregate_type,
        aggregate_id: row.aggregate_id,
        aggregate_version: row.aggregate_version,
        causation_id: row.causation_id,
        channels: row.channels,
    })
}

/// An event [`prepare`]d for [`append_all`]: envelope and channels are final, its place in the
/// log (seq, aggregate version) is not known yet.
#[derive(Clone, Debug)]
pub struct Prepared {
    envelope: Envelope,
    /// The step that emitted it (the transaction's causation id at the time).
    causation_id: String,
    aggregate_type: &'static str,
    aggregate_id: String,
    channels: Vec<String>,
    occurred_at: DateTime<Utc>,
}

/// Checks `event`'s channels against the matrix and builds its envelope, to be appended later in
/// the same transaction by [`append_all`].
pub fn prepare(ctx: &EventContext, event: NewEvent) -> Result<Prepared, EventError> {
    let channels = channels::channels_for(&ctx.tenant_id, event.event_type, &event.route)?;
    let occurred_at = Utc::now();
    Ok(Prepared {
        envelope: new_envelope(
            ctx,
            event.event_type.as_str(),
            event.correlation_id,
            event.data,
            occurred_at,
        ),
        causation_id: ctx.causation_id.clone(),
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        channels,
        occurred_at,
    })
}

/// What [`append_all`] wrote, and what it learnt on the way.
pub struct AppendedAll {
    pub events: Vec<RecordedEvent>,
    /// Whether the tenant has any webhook subscription, active or not (then the transaction
    /// stages a fan-out job for these events).
    pub tenant_has_subscriptions: bool,
}

#[derive(QueryableByName)]
struct AppendedRows {
    #[diesel(sql_type = Array<BigInt>)]
    seqs: Vec<i64>,
    #[diesel(sql_type = Array<Integer>)]
    versions: Vec<i32>,
    #[diesel(sql_type = Bool)]
    has_subscriptions: bool,
}

/// Appends `events` in the transaction `conn` is in, in their order, each under the causation id
/// it was emitted with, with the outbox rows of the broadcast ones, and stages `jobs` in the job
/// outbox, each under its origin (`job_origins`, aligned) — one round trip (the
/// `transaction_effects_append_steps` function of migration 000020, whose inner plans Postgres
/// keeps), however many jobs' steps the transaction carries.
pub async fn append_all(
    conn: &mut AsyncPgConnection,
    ctx: &EventContext,
    events: Vec<Prepared>,
    jobs: &[StagedJob],
    job_origins: &[String],
) -> Result<AppendedAll, EventError> {
    let column = |f: fn(&Prepared) -> String| events.iter().map(f).collect::<Vec<_>>();
    let ids = column(|e| e.envelope.id.clone());
    let causation_ids = column(|e| e.causation_id.clone());
    let types = column(|e| e.envelope.event_type.clone());
    let aggregate_types = column(|e| e.aggregate_type.to_owned());
    let aggregate_ids = column(|e| e.aggregate_id.clone());
    let correlation_ids = column(|e| e.envelope.correlation_id.clone());
    let data: Vec<Value> = events.iter().map(|e| e.envelope.data.clone()).collect();
    // Channel names hold no spaces (Pusher's alphabet), so one text per event carries them.
    let channels = column(|e| e.channels.join(" "));
    let job_ids: Vec<String> = jobs.iter().map(|j| j.job.id.to_string()).collect();
    let job_json: Vec<Value> = jobs
        .iter()
        .map(|j| serde_json::to_value(&j.job).unwrap_or_default())
        .collect();
    let dedup_keys: Vec<Option<&str>> = jobs.iter().map(|j| j.dedup_key.as_deref()).collect();
    let occurred_at: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    // Kept prepared: diesel never keeps a `sql_query` prepared, and this one was parsed and
    // planned on every transaction.
    let appended: AppendedRows = keep_prepared(
        diesel::sql_query(
            "SELECT appended_seqs AS seqs, appended_versions AS versions, has_subscriptions \
             FROM transaction_effects_append_steps($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16)",
        )
        .bind::<Text, _>(&ctx.tenant_id)
        .bind::<Text, _>(ENVELOPE_VERSION)
        .bind::<Text, _>(ctx.source)
        .bind::<Array<Text>, _>(&causation_ids)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<Text>, _>(&types)
        .bind::<Array<Text>, _>(&aggregate_types)
        .bind::<Array<Text>, _>(&aggregate_ids)
        .bind::<Array<Text>, _>(&correlation_ids)
        .bind::<Array<Jsonb>, _>(&data)
        .bind::<Array<Text>, _>(&channels)
        .bind::<Array<Timestamptz>, _>(&occurred_at)
        .bind::<Array<Text>, _>(&job_ids)
        .bind::<Array<Jsonb>, _>(&job_json)
        .bind::<Array<Nullable<Text>>, _>(&dedup_keys)
        .bind::<Array<Text>, _>(job_origins),
    )
    .get_result(conn)
    .await?;
    let recorded = events
        .into_iter()
        .zip(appended.seqs)
        .zip(appended.versions)
        .map(|((event, seq), aggregate_version)| RecordedEvent {
            seq,
            envelope: event.envelope,
            aggregate_type: event.aggregate_type.to_owned(),
            aggregate_id: event.aggregate_id,
            aggregate_version,
            causation_id: event.causation_id,
            channels: event.channels,
        })
        .collect();
    Ok(AppendedAll {
        events: recorded,
        tenant_has_subscriptions: appended.has_subscriptions,
    })
}

#[derive(QueryableByName)]
struct Appended {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Integer)]
    aggregate_version: i32,
}

/// One round trip: the next version of the aggregate, the event, and its outbox row when it is
/// broadcast (in the `event_log_append` function).
fn insert(
    row: &EventRow,
    broadcast: bool,
) -> impl diesel_async::methods::LoadQuery<'static, AsyncPgConnection, Appended> + Send + use<> {
    // A function (migration 000010_event_log_functions) so that Postgres keeps the plan.
    diesel::sql_query(
        "SELECT appended_seq AS seq, appended_version AS aggregate_version \
         FROM event_log_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind::<Text, _>(row.id.clone())
    .bind::<Text, _>(row.tenant_id.clone())
    .bind::<Text, _>(row.event_type.clone())
    .bind::<Text, _>(row.version.clone())
    .bind::<Text, _>(row.source.clone())
    .bind::<Text, _>(row.aggregate_type.clone())
    .bind::<Text, _>(row.aggregate_id.clone())
    .bind::<Text, _>(row.correlation_id.clone())
    .bind::<Text, _>(row.causation_id.clone())
    .bind::<Jsonb, _>(row.data.clone())
    .bind::<Array<Text>, _>(row.channels.clone())
    .bind::<Timestamptz, _>(row.occurred_at)
    .bind::<Bool, _>(broadcast)
}

/// Reads events back by id, in log order (for the relay).
pub async fn load(
    conn: &mut AsyncPgConnection,
    ids: &[String],
) -> Result<Vec<RecordedEvent>, EventError> {
    let rows: Vec<(i64, EventRow)> = event_logs::table
        .filter(event_logs::id.eq_any(ids))
        .order(event_logs::seq.asc())
        .select((event_logs::seq, EventRow::as_select()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, row)| row.into_recorded(seq))
        .collect())
}

/// A tenant's events after `after_seq`, oldest first (timelines, tests, the events API).
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, EventError> {
    let rows: Vec<(i64, EventRow)> = event_logs::table
        .filter(event_logs::tenant_id.eq(tenant_id))
        .filter(event_logs::seq.gt(after_seq))
        .order(event_logs::seq.asc())
        .limit(limit)
        .select((event_logs::seq, EventRow::as_select()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, row)| row.into_recorded(seq))
        .collect())
}

impl EventRow {
    fn into_recorded(self, seq: i64) -> RecordedEvent {
        RecordedEvent {
            seq,
            envelope: Envelope {
                id: self.id,
                event_type: self.event_type,
                version: self.version,
                source: self.source,
                timestamp: super::envelope::iso8601(self.occurred_at),
                tenant_id: self.tenant_id,
                correlation_id: self.correlation_id,
                data: self.data,
            },
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            aggregate_version: self.aggregate_version,
            causation_id: self.causation_id,
            channels: self.channels,
        }
    }
}
