//! Tenants and inboxes: the channel accounts a webhook belongs to, and the secrets that verify it.
//!
//! Ingress looks inboxes up here (by id from its own URL, or by the provider's page id /
//! phone_number_id for Meta) and the conversation pipeline will find its tenant and channel the
//! same way. Secrets come back wrapped in [`Secret`] so that no `Debug` of an inbox can leak them.
//! This module only reads and writes rows; caching and verification belong to the callers.
//! [`outbound`] holds the sending side: outbound credentials and the delivery pause.

pub mod outbound;

use std::{fmt, str::FromStr};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::{
    config::Secret,
    db::{DbError, DbPool, schema},
};

/// The channel an inbox speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InboxKind {
    Waha,
    Messenger,
    WhatsappCloud,
    Email,
    Widget,
}

impl InboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waha => "waha",
            Self::Messenger => "messenger",
            Self::WhatsappCloud => "whatsapp_cloud",
            Self::Email => "email",
            Self::Widget => "widget",
        }
    }
}

impl fmt::Display for InboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InboxKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "waha" => Self::Waha,
            "messenger" => Self::Messenger,
            "whatsapp_cloud" => Self::WhatsappCloud,
            "email" => Self::Email,
            "widget" => Self::Widget,
            other => return Err(format!("unknown inbox kind {other:?}")),
        })
    }
}

/// How an email inbox receives mail, and so how its webhooks are authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailAuth {
    /// Mailgun route forward: HMAC-SHA256 of timestamp + token with this signing key.
    Mailgun { signing_key: Secret },
    /// Postmark inbound: HTTP basic auth put in the webhook URL.
    Postmark { user: String, password: Secret },
}

/// One inbox as ingress and the workers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbox {
    pub id: String,
    pub tenant_id: String,
    pub kind: InboxKind,
    pub name: String,
    pub page_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub waha_session: Option<String>,
    pub waha_hmac_key: Option<Secret>,
    pub widget_token: Option<Secret>,
    pub email: Option<EmailAuth>,
}

/// A stable id with a type prefix, e.g. `inb_01JD…`: sortable, and safe in URLs, keys and
/// broadcast channel names.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = schema::inboxes)]
struct InboxRow {
    id: String,
    tenant_id: String,
    kind: String,
    name: String,
    page_id: Option<String>,
    phone_number_id: Option<String>,
    waha_session: Option<String>,
    email_provider: Option<String>,
    waha_hmac_key: Option<String>,
    widget_token: Option<String>,
    mailgun_signing_key: Option<String>,
    postmark_user: Option<String>,
    postmark_password: Option<String>,
}

impl InboxRow {
    /// `None` for a row whose kind this build does not know (a newer release wrote it).
    fn into_inbox(self) -> Option<Inbox> {
        let email = match self.email_provider.as_deref() {
            Some("mailgun") => self.mailgun_signing_key.map(|k| EmailAuth::Mailgun {
                signing_key: Secret::new(k),
            }),
            Some("postmark") => match (self.postmark_user, self.postmark_password) {
                (Some(user), Some(password)) => Some(EmailAuth::Postmark {
                    user,
                    password: Secret::new(password),
                }),
                _ => None,
            },
            _ => None,
        };
        Some(Inbox {
            kind: self.kind.parse().ok()?,
            id: self.id,
            tenant_id: self.tenant_id,
            name: self.name,
            page_id: self.page_id,
            phone_number_id: self.phone_number_id,
            waha_session: self.waha_session,
            waha_hmac_key: self.waha_hmac_key.map(Secret::new),
            widget_token: self.widget_token.map(Secret::new),
            email,
        })
    }
}

/// Which column a lookup matches on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InboxLookup {
    Id(String),
    MessengerPage(String),
    WhatsappPhoneNumber(String),
}

/// The enabled inbox that `lookup` names, if any.
pub async fn find(pool: &DbPool, lookup: &InboxLookup) -> Result<Option<Inbox>, DbError> {
    use schema::inboxes::dsl;
    let mut conn = pool.get().await?;
    let query = dsl::inboxes
        .filter(dsl::disabled_at.is_null())
        .select(InboxRow::as_select())
        .into_boxed();
    let query = match lookup {
        InboxLookup::Id(id) => query.filter(dsl::id.eq(id.clone())),
        InboxLookup::MessengerPage(page) => query
            .filter(dsl::kind.eq("messenger"))
            .filter(dsl::page_id.eq(page.clone())),
        InboxLookup::WhatsappPhoneNumber(phone) => query
            .filter(dsl::kind.eq("whatsapp_cloud"))
            .filter(dsl::phone_number_id.eq(phone.clone())),
    };
    let row = query.first::<InboxRow>(&mut conn).await.optional()?;
    Ok(row.and_then(InboxRow::into_inbox))
}

/// A new inbox: what an admin API (or a test) provides.
#[derive(Clone, Debug, Default, Insertable)]
#[diesel(table_name = schema::inboxes)]
pub struct NewInbox {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub name: String,
    pub page_id: Option<String>,
    pub phone_number_id: Option<String>,
    pub waha_session: Option<String>,
    pub email_provider: Option<String>,
    pub waha_hmac_key: Option<String>,
    pub widget_token: Option<String>,
    pub mailgun_signing_key: Option<String>,
    pub postmark_user: Option<String>,
    pub postmark_password: Option<String>,
}

impl NewInbox {
    /// An inbox of `kind` for `tenant_id` with a fresh id; set the provider fields after.
    pub fn new(tenant_id: &str, kind: InboxKind, name: &str) -> Self {
        Self {
            id: new_id("inb"),
            tenant_id: tenant_id.to_owned(),
            kind: kind.as_str().to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }
}

/// Creates a tenant; returns its id.
pub async fn create_tenant(pool: &DbPool, name: &str) -> Result<String, DbError> {
    use schema::tenants::dsl;
    let id = new_id("ten");
    let mut conn = pool.get().await?;
    diesel::insert_into(dsl::tenants)
        .values((dsl::id.eq(&id), dsl::name.eq(name)))
        .execute(&mut conn)
        .await?;
    Ok(id)
}

/// Creates an inbox; returns its id.
pub async fn create_inbox(pool: &DbPool, inbox: &NewInbox) -> Result<String, DbError> {
    let mut conn = pool.get().await?;
    insert_inbox(&mut conn, inbox).await
}

/// Creates an inbox and, when given, its outbound settings, in one transaction; returns its id.
pub async fn create_inbox_with_outbound(
    pool: &DbPool,
    inbox: &NewInbox,
    settings: Option<&outbound::OutboundSettings>,
) -> Result<String, DbError> {
    use diesel_async::{AsyncConnection, scoped_futures::ScopedFutureExt};
    let mut conn = pool.get().await?;
    conn.transaction::<_, DbError, _>(|conn| {
        async move {
            let id = insert_inbox(conn, inbox).await?;
            if let Some(settings) = settings {
                outbound::put(conn, &id, settings).await?;
            }
            Ok(id)
        }
        .scope_boxed()
    })
    .await
}

/// Creates an inbox on `conn`; returns its id.
pub async fn insert_inbox(
    conn: &mut diesel_async::AsyncPgConnection,
    inbox: &NewInbox,
) -> Result<String, DbError> {
    diesel::insert_into(schema::inboxes::table)
        .values(inbox)
        .execute(conn)
        .await?;
    Ok(inbox.id.clone())
}

/// Disables an inbox: from then on it is treated as unknown.
pub async fn disable_inbox(pool: &DbPool, id: &str) -> Result<(), DbError> {
    use schema::inboxes::dsl;
    let mut conn = pool.get().await?;
    diesel::update(dsl::inboxes.filter(dsl::id.eq(id)))
        .set(dsl::disabled_at.eq(diesel::dsl::now))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Whether `token` was already accepted for this inbox (one-time webhook tokens).
pub async fn token_used(pool: &DbPool, inbox_id: &str, token: &str) -> Result<bool, DbError> {
    use schema::inbox_replay_tokens::dsl;
    let mut conn = pool.get().await?;
    let found = dsl::inbox_replay_tokens
        .filter(dsl::inbox_id.eq(inbox_id))
        .filter(dsl::token.eq(token))
        .select(dsl::used_at)
        .first::<chrono::DateTime<chrono::Utc>>(&mut conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Remembers `token` as used, and forgets tokens older than `keep` (past the signature's
/// freshness window they can no longer be replayed anyway).
pub async fn remember_token(
    pool: &DbPool,
    inbox_id: &str,
    token: &str,
    keep: std::time::Duration,
) -> Result<(), DbError> {
    use schema::inbox_replay_tokens::dsl;
    let mut conn = pool.get().await?;
    diesel::insert_into(dsl::inbox_replay_tokens)
        .values((dsl::inbox_id.eq(inbox_id), dsl::token.eq(token)))
        .on_conflict_do_nothing()
        .execute(&mut conn)
        .await?;
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::hours(1));
    diesel::delete(dsl::inbox_replay_tokens.filter(dsl::used_at.lt(cutoff)))
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_kinds_are_refused() {
        for kind in [
            InboxKind::Waha,
            InboxKind::Messenger,
            InboxKind::WhatsappCloud,
            InboxKind::Email,
            InboxKind::Widget,
        ] {
            assert_eq!(kind.as_str().parse::<InboxKind>(), Ok(kind));
        }
        assert!("sms".parse::<InboxKind>().is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let inbox = Inbox {
            id: new_id("inb"),
            tenant_id: new_id("ten"),
            kind: InboxKind::Email,
            name: "support".into(),
            page_id: None,
            phone_number_id: None,
            waha_session: None,
            waha_hmac_key: Some(Secret::new("hmac-secret-1")),
            widget_token: Some(Secret::new("widget-secret-2")),
            email: Some(EmailAuth::Postmark {
                user: "pm".into(),
                password: Secret::new("pm-secret-3"),
            }),
        };
        let printed = format!("{inbox:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
