//! API keys: bearer tokens for the `/api` endpoints, stored hashed.
//!
//! A token is `sy_` + 43 characters of base64url (256 random bits); only its SHA-256 is kept
//! (a slow password hash buys nothing for a token that cannot be guessed), plus a short prefix
//! to recognise it in listings. Tenant keys act on their tenant only; operator keys provision
//! tenants, inboxes, agents and keys. A token is shown once, when created.

use base64::Engine as _;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ConversationError;
use crate::{db::schema::api_keys, inboxes::new_id};

/// What a key may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    /// Agent actions and reads within one tenant.
    Tenant { tenant_id: String },
    /// Provisioning across tenants.
    Operator,
}

/// A key as listed (never its token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: Option<String>,
    pub scope: String,
    pub name: String,
    pub token_prefix: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A key just created: the only time its token is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: String,
}

/// Who is calling, once their token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub scope: Scope,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a key with a fresh token.
pub async fn create(
    conn: &mut AsyncPgConnection,
    scope: &Scope,
    name: &str,
) -> Result<CreatedKey, ConversationError> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ConversationError::invalid(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!(
        "sy_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let (scope_name, tenant_id) = match scope {
        Scope::Tenant { tenant_id } => ("tenant", Some(tenant_id.clone())),
        Scope::Operator => ("operator", None),
    };
    let key: ApiKey = diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(new_id("key")),
            api_keys::tenant_id.eq(tenant_id),
            api_keys::scope.eq(scope_name),
            api_keys::name.eq(name.trim()),
            api_keys::token_prefix.eq(&token[..10]),
            api_keys::token_hash.eq(hash(&token)),
        ))
        .returning(ApiKey::as_returning())
        .get_result(conn)
        .await?;
    Ok(CreatedKey { key, token })
}

/// The principal of `token`, if it is a live key.
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    token: &str,
) -> Result<Option<Principal>, ConversationError> {
    if !token.starts_with("sy_") || token.len() > 128 {
        return Ok(None);
    }
    let found: Option<(String, Option<String>, String)> = api_keys::table
        .filter(api_keys::token_hash.eq(hash(token)))
        .filter(api_keys::revoked_at.is_null())
        .select((api_keys::id, api_keys::tenant_id, api_keys::scope))
        .first(conn)
        .await
        .optional()?;
    Ok(found.and_then(|(key_id, tenant_id, scope)| {
        let scope = match (scope.as_str(), tenant_id) {
            ("tenant", Some(tenant_id)) => Scope::Tenant { tenant_id },
            ("operator", None) => Scope::Operator,
            _ => return None,
        };
        Some(Principal { key_id, scope })
    }))
}

/// Keys of `tenant_id` (all keys when `None`), oldest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
) -> Result<Vec<ApiKey>, ConversationError> {
    let mut query = api_keys::table
        .order(api_keys::created_at.asc())
        .select(ApiKey::as_select())
        .into_boxed();
    if let Some(tenant) = tenant_id {
        query = query.filter(api_keys::tenant_id.eq(tenant.to_owned()));
    }
    Ok(query.load(conn).await?)
}

/// Revokes a key: its token stops working at once.
pub async fn revoke(conn: &mut AsyncPgConnection, id: &str) -> Result<bool, ConversationError> {
    let n = diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(chrono::Utc::now())))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
