//! Reads over tenants and inboxes that the pipeline and the admin tools need besides
//! `shared::inboxes` (which owns their writes and ingress's lookups).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::ConversationError;
use crate::{
    db::schema::{inboxes, tenants},
    inboxes::InboxKind,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Queryable)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Queryable)]
pub struct InboxRow {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub name: String,
    pub page_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub waha_session: Option<String>,
    pub disabled: bool,
}

pub async fn tenants(conn: &mut AsyncPgConnection) -> Result<Vec<TenantRow>, ConversationError> {
    Ok(tenants::table
        .order(tenants::created_at.asc())
        .select((tenants::id, tenants::name, tenants::created_at))
        .load(conn)
        .await?)
}

pub async fn tenant_exists(
    conn: &mut AsyncPgConnection,
    id: &str,
) -> Result<bool, ConversationError> {
    let found: Option<String> = tenants::table
        .find(id)
        .select(tenants::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Inboxes of `tenant_id` (all when `None`), oldest first; no secrets.
pub async fn inboxes(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
) -> Result<Vec<InboxRow>, ConversationError> {
    let mut query = inboxes::table
        .order(inboxes::created_at.asc())
        .select((
            inboxes::id,
            inboxes::tenant_id,
            inboxes::kind,
            inboxes::name,
            inboxes::page_id,
            inboxes::phone_number_id,
            inboxes::waha_session,
            inboxes::disabled_at.is_not_null(),
        ))
        .into_boxed();
    if let Some(tenant) = tenant_id {
        query = query.filter(inboxes::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn).await?)
}

/// The channel of inbox `id`.
pub async fn inbox_kind(
    conn: &mut AsyncPgConnection,
    id: &str,
) -> Result<InboxKind, ConversationError> {
    let kind: Option<String> = inboxes::table
        .find(id)
        .select(inboxes::kind)
        .first(conn)
        .await
        .optional()?;
    kind.ok_or_else(|| ConversationError::not_found("inbox", id))?
        .parse()
        .map_err(|e: String| ConversationError::invalid("inbox.kind", e))
}

/// The channel of inbox `id` if it belongs to `tenant_id` (a job naming another tenant's inbox
/// is refused as not found).
pub async fn inbox_of_tenant(
    conn: &mut AsyncPgConnection,
    id: &str,
    tenant_id: &str,
) -> Result<InboxKind, ConversationError> {
    let kind: Option<String> = inboxes::table
        .find(id)
        .filter(inboxes::tenant_id.eq(tenant_id))
        .select(inboxes::kind)
        .first(conn)
        .await
        .optional()?;
    kind.ok_or_else(|| ConversationError::not_found("inbox", id))?
        .parse()
        .map_err(|e: String| ConversationError::invalid("inbox.kind", e))
}
