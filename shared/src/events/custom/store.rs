//! The tenant's registered event types: tenant-scoped CRUD over `custom_event_types`. Every
//! function takes the tenant, so one tenant never sees or changes another's types; archiving
//! keeps the row (and the name taken) so events already logged stay explained.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, result::DatabaseErrorKind};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use serde_json::Value;

use super::{CustomEventError, name, schema};
use crate::db::{DbPool, schema::custom_event_types as types};

const MAX_DESCRIPTION: usize = 1000;

/// One registered type.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = types)]
pub struct CustomEventType {
    #[serde(skip)]
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub schema: Value,
    pub archived: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a tenant registers.
#[derive(Clone, Debug, Default)]
pub struct NewEventType {
    pub name: String,
    pub description: Option<String>,
    pub schema: Value,
}

/// A partial update; `None` leaves a field as it is, `Some(None)` clears the description.
#[derive(Clone, Debug, Default)]
pub struct EventTypeUpdate {
    pub description: Option<Option<String>>,
    pub schema: Option<Value>,
    /// `Some(false)` restores an archived type.
    pub archived: Option<bool>,
}

fn check_description(description: Option<&str>) -> Result<(), CustomEventError> {
    match description {
        Some(d) if d.len() > MAX_DESCRIPTION => Err(CustomEventError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        )),
        _ => Ok(()),
    }
}

fn check_schema(value: &Value) -> Result<(), CustomEventError> {
    schema::compile(value)
        .map(drop)
        .map_err(|why| CustomEventError::invalid("schema", why))
}

/// Registers a type; [`CustomEventError::Duplicate`] if the tenant has one of that name
/// (archived or not).
pub async fn create(
    db: &DbPool,
    tenant_id: &str,
    new: NewEventType,
) -> Result<CustomEventType, CustomEventError> {
    name::check_type_name(&new.name).map_err(|why| CustomEventError::invalid("name", why))?;
    check_description(new.description.as_deref())?;
    check_schema(&new.schema)?;
    let mut conn = db.get().await?;
    let inserted = diesel::insert_into(types::table)
        .values((
            types::tenant_id.eq(tenant_id),
            types::name.eq(&new.name),
            types::description.eq(&new.description),
            types::schema.eq(&new.schema),
        ))
        .returning(CustomEventType::as_returning())
        .get_result(&mut conn)
        .await;
    match inserted {
        Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CustomEventError::Duplicate(new.name))
        }
        other => Ok(other?),
    }
}

/// The tenant's types by name; archived ones too when `with_archived`.
pub async fn list(
    db: &DbPool,
    tenant_id: &str,
    with_archived: bool,
) -> Result<Vec<CustomEventType>, CustomEventError> {
    let mut conn = db.get().await?;
    let mut query = types::table
        .filter(types::tenant_id.eq(tenant_id))
        .order(types::name.asc())
        .select(CustomEventType::as_select())
        .into_boxed();
    if !with_archived {
        query = query.filter(types::archived.eq(false));
    }
    Ok(query.load(&mut conn).await?)
}

/// One of the tenant's types.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    name: &str,
) -> Result<Option<CustomEventType>, CustomEventError> {
    Ok(types::table
        .find((tenant_id, name))
        .select(CustomEventType::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(
    db: &DbPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<CustomEventType>, CustomEventError> {
    let mut conn = db.get().await?;
    find(&mut conn, tenant_id, name).await
}

/// Applies `update`; `None` when the tenant has no such type.
pub async fn update(
    db: &DbPool,
    tenant_id: &str,
    name: &str,
    update: EventTypeUpdate,
) -> Result<Option<CustomEventType>, CustomEventError> {
    if let Some(description) = &update.description {
        check_description(description.as_deref())?;
    }
    if let Some(schema) = &update.schema {
        check_schema(schema)?;
    }
    let mut conn = db.get().await?;
    let Some(mut current) = find(&mut conn, tenant_id, name).await? else {
        return Ok(None);
    };
    if let Some(description) = update.description {
        current.description = description;
    }
    if let Some(schema) = update.schema {
        current.schema = schema;
    }
    if let Some(archived) = update.archived
        && archived != current.archived
    {
        current.archived = archived;
        current.archived_at = archived.then(Utc::now);
    }
    Ok(Some(
        diesel::update(types::table.find((tenant_id, name)))
            .set((
                types::description.eq(&current.description),
                types::schema.eq(&current.schema),
                types::archived.eq(current.archived),
                types::archived_at.eq(current.archived_at),
                types::updated_at.eq(diesel::dsl::now),
            ))
            .returning(CustomEventType::as_returning())
            .get_result(&mut conn)
            .await?,
    ))
}

/// Archives a type: it can no longer be published; `None` when the tenant has no such type.
pub async fn archive(
    db: &DbPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<CustomEventType>, CustomEventError> {
    let archive = EventTypeUpdate {
        archived: Some(true),
        ..EventTypeUpdate::default()
    };
    update(db, tenant_id, name, archive).await
}
