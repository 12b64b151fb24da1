//! Provisioning with an operator key — tenants, their inboxes, agents and API keys, created and
//! listed — plus what a tenant key may manage itself: its agents' list and availability.
//!
//! `POST /api/tenants {"name"}`; `POST /api/tenants/{t}/inboxes {"kind", "name", "page_id"?,
//! "phone_number_id"?, "waha_session"?, "waha_hmac_key"?, "widget_token"?, "email_provider"?,
//! "mailgun_signing_key"?, "postmark_user"?, "postmark_password"?, "outbound"?}` (`outbound`: the
//! inbox's sending credentials, see [`super::outbound`]; stored in the same transaction); `POST
//! /api/tenants/{t}/agents {"name", "email"?, "capacity"?}`; `POST /api/tenants/{t}/api-keys
//! {"name"}` (the token is in the answer, once). Inbox secrets are never listed: listings and
//! answers show `"set"` for an outbound secret that is stored.

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use shared::{
    conversation::{
        ConversationError, agents,
        api_keys::{self, Scope},
        directory,
    },
    inboxes::{self, InboxKind, NewInbox},
};

use super::{Answer, ApiError, Call, input};

pub async fn tenants(call: &Call<'_>) -> Result<Answer, ApiError> {
    call.operator()?;
    let mut conn = call.conn().await?;
    let list = directory::tenants(&mut conn).await?;
    Ok(Answer(StatusCode::OK, json!({ "tenants": list })))
}

pub async fn create_tenant(
    call: &Call<'_>,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.operator()?;
    let body = input::object(request).await?;
    let name = input::string(&body, "name")?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let id = inboxes::create_tenant(&call.api.conversations.db, name)
        .await
        .map_err(|e| ApiError::Conversation(ConversationError::Pool(e.to_string())))?;
    Ok(Answer(
        StatusCode::CREATED,
        json!({ "tenant": { "id": id, "name": name } }),
    ))
}

/// The tenant `id` must exist (an operator's typo is a 404, not a foreign-key error).
async fn known_tenant(call: &Call<'_>, id: &str) -> Result<(), ApiError> {
    input::path_id(id, "tenant")?;
    let mut conn = call.conn().await?;
    if directory::tenant_exists(&mut conn, id).await? {
        Ok(())
    } else {
        Err(ConversationError::not_found("tenant", id).into())
    }
}

pub async fn inboxes(call: &Call<'_>, tenant: &str) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    let mut conn = call.conn().await?;
    let list = directory::inboxes(&mut conn, Some(tenant)).await?;
    let ids: Vec<String> = list.iter().map(|i| i.id.clone()).collect();
    let rows = inboxes::outbound::list(&mut conn, &ids)
        .await
        .map_err(|e| ApiError::Conversation(e.into()))?;
    let list: Vec<Value> = list
        .into_iter()
        .map(|inbox| {
            let row = rows.iter().find(|r| r.inbox_id == inbox.id);
            let mut value = json!(inbox);
            value["outbound"] = super::outbound::summary(row);
            value
        })
        .collect();
    Ok(Answer(StatusCode::OK, json!({ "inboxes": list })))
}

pub async fn create_inbox(
    call: &Call<'_>,
    tenant: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    let body = input::object(request).await?;
    let inbox = new_inbox(tenant, &body)?;
    let outbound = new_outbound(&inbox, &body)?;
    let db = &call.api.conversations.db;
    let id = inboxes::create_inbox_with_outbound(db, &inbox, outbound.as_ref())
        .await
        .map_err(refused_inbox)?;
    let stored = match outbound {
        None => None,
        Some(_) => {
            let mut conn = call.conn().await?;
            inboxes::outbound::get(&mut conn, &id)
                .await
                .map_err(|e| ApiError::Conversation(e.into()))?
        }
    };
    Ok(Answer(
        StatusCode::CREATED,
        json!({ "inbox": { "id": id, "tenant_id": tenant, "kind": inbox.kind, "name": inbox.name,
                           "outbound": super::outbound::summary(stored.as_ref()) } }),
    ))
}

fn new_inbox(tenant: &str, body: &Map<String, Value>) -> Result<NewInbox, ApiError> {
    let kind: InboxKind = input::string(body, "kind")?.parse().map_err(|_| {
        ApiError::invalid(
            "kind",
            "must be one of waha, messenger, whatsapp_cloud, email, widget",
        )
    })?;
    let name = input::string(body, "name")?;
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let mut inbox = NewInbox::new(tenant, kind, name.trim());
    let field = |f: &str| -> Result<Option<String>, ApiError> {
        let value = input::optional_string(body, f)?;
        if value
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.len() > 512)
        {
            return Err(ApiError::invalid(f, "must be 1 to 512 characters"));
        }
        Ok(value)
    };
    inbox.page_id = field("page_id")?;
    inbox.phone_number_id = field("phone_number_id")?;
    inbox.waha_session = field("waha_session")?;
    inbox.waha_hmac_key = field("waha_hmac_key")?;
    inbox.widget_token = field("widget_token")?;
    inbox.email_provider = field("email_provider")?;
    inbox.mailgun_signing_key = field("mailgun_signing_key")?;
    inbox.postmark_user = field("postmark_user")?;
    inbox.postmark_password = field("postmark_password")?;
    let required = match kind {
        InboxKind::Messenger => Some(("page_id", inbox.page_id.is_some())),
        InboxKind::WhatsappCloud => Some(("phone_number_id", inbox.phone_number_id.is_some())),
        InboxKind::Widget => Some(("widget_token", inbox.widget_token.is_some())),
        InboxKind::Email => Some(("email_provider", email_ok(&inbox))),
        InboxKind::Waha => None,
    };
    if let Some((field, false)) = required {
        return Err(ApiError::invalid(
            field,
            format!("is required for a {kind} inbox"),
        ));
    }
    Ok(inbox)
}

/// The optional `outbound` object, checked for the inbox's kind.
fn new_outbound(
    inbox: &NewInbox,
    body: &Map<String, Value>,
) -> Result<Option<inboxes::outbound::OutboundSettings>, ApiError> {
    match body.get("outbound") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => {
            let kind: InboxKind = inbox
                .kind
                .parse()
                .map_err(|e: String| ApiError::invalid("kind", e))?;
            super::outbound::settings(object, kind, "outbound.").map(Some)
        }
        Some(_) => Err(ApiError::invalid("outbound", "must be an object")),
    }
}

fn email_ok(inbox: &NewInbox) -> bool {
    match inbox.email_provider.as_deref() {
        Some("mailgun") => inbox.mailgun_signing_key.is_some(),
        Some("postmark") => inbox.postmark_user.is_some() && inbox.postmark_password.is_some(),
        _ => false,
    }
}

/// A page id or phone number id already routed to another inbox is a conflict.
fn refused_inbox(error: shared::db::DbError) -> ApiError {
    use diesel::result::{DatabaseErrorKind, Error};
    match error {
        shared::db::DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            ConversationError::Conflict("that provider id already belongs to another inbox".into())
                .into()
        }
        shared::db::DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::CheckViolation,
            info,
        )) => ApiError::invalid("inbox", info.message().to_owned()),
        other => ApiError::Conversation(ConversationError::Pool(other.to_string())),
    }
}

pub async fn agents(call: &Call<'_>, tenant: &str) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    list_agents(call, tenant).await
}

pub async fn own_agents(call: &Call<'_>) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?.to_owned();
    list_agents(call, &tenant).await
}

async fn list_agents(call: &Call<'_>, tenant: &str) -> Result<Answer, ApiError> {
    let mut conn = call.conn().await?;
    let list = agents::list(&mut conn, Some(tenant)).await?;
    let list: Vec<Value> = list.iter().map(agents::json).collect();
    Ok(Answer(StatusCode::OK, json!({ "agents": list })))
}

pub async fn create_agent(
    call: &Call<'_>,
    tenant: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    let body = input::object(request).await?;
    let capacity = input::optional_integer(&body, "capacity")?.unwrap_or(3);
    let new = agents::NewAgent {
        name: input::string(&body, "name")?,
        email: input::optional_string(&body, "email")?,
        capacity: i32::try_from(capacity)
            .map_err(|_| ApiError::invalid("capacity", "must be 0 to 1000"))?,
    };
    let mut tx = call.begin_for(tenant).await?;
    let result = agents::create(&mut tx, &new).await;
    let agent = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::CREATED,
        json!({ "agent": agents::json(&agent) }),
    ))
}

pub async fn availability(
    call: &Call<'_>,
    id: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "agent")?;
    let body = input::object(request).await?;
    let available = input::boolean(&body, "available")?;
    let mut tx = call.begin().await?;
    let result = agents::set_available(&mut tx, id, available).await;
    let agent = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::OK,
        json!({ "agent": agents::json(&agent) }),
    ))
}

pub async fn keys(call: &Call<'_>, tenant: &str) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    let mut conn = call.conn().await?;
    let list = api_keys::list(&mut conn, Some(tenant)).await?;
    Ok(Answer(StatusCode::OK, json!({ "api_keys": list })))
}

pub async fn create_key(
    call: &Call<'_>,
    tenant: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.operator()?;
    known_tenant(call, tenant).await?;
    let body = input::object(request).await?;
    let name = input::string(&body, "name")?;
    let mut conn = call.conn().await?;
    let scope = Scope::Tenant {
        tenant_id: tenant.to_owned(),
    };
    let created = api_keys::create(&mut conn, &scope, &name).await?;
    Ok(Answer(
        StatusCode::CREATED,
        json!({ "api_key": created.key, "token": created.token }),
    ))
}
