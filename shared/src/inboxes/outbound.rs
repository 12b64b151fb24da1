//! The outbound side of an inbox (table `inbox_outbound`): how its replies reach the provider —
//! base URL, Graph API version, access token, SMTP account — and whether its deliveries are
//! paused because the channel broke (token revoked, account locked).
//!
//! Settings are written by the provisioning API and read by the deliveries handler's settings
//! source (shared::channels::settings); the pause is recorded by the pipeline when a delivery
//! finds the channel broken and cleared by resume (shared::channels::pause). Tokens and
//! passwords come back as [`Secret`], so no `Debug` of a row can leak them. A missing row means
//! "no stored settings" and "not paused". This module only reads and writes rows.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{
    channels::SmtpSecurity,
    config::Secret,
    db::{DbError, schema::inbox_outbound as t},
};

/// What an operator stores for an inbox. A write replaces all of it (the pause is apart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundSettings {
    /// WAHA server, or an override of the Graph API base (tests, egress proxies).
    pub api_base_url: Option<url::Url>,
    /// Graph API version for Messenger and WhatsApp Cloud, `vNN.N`.
    pub api_version: Option<String>,
    /// Messenger page token, WhatsApp Cloud token, or WAHA's X-Api-Key.
    pub access_token: Option<Secret>,
    pub smtp: Option<SmtpAccount>,
}

/// The SMTP account an email inbox replies through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpAccount {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The inbox's address, e.g. `Acme Support <support@acme.example>`.
    pub from: String,
}

/// Why and since when an inbox's deliveries are held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pause {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// One inbox's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxOutbound {
    pub inbox_id: String,
    pub settings: OutboundSettings,
    pub pause: Option<Pause>,
    /// When the settings were last written: the deliveries handler rebuilds its cached sender
    /// when this changes.
    pub updated_at: DateTime<Utc>,
}

/// A paused inbox with what an on-call needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct PausedInbox {
    #[diesel(sql_type = sql_types::Text)]
    pub inbox_id: String,
    #[diesel(sql_type = sql_types::Text)]
    pub tenant_id: String,
    #[diesel(sql_type = sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = sql_types::Text)]
    pub name: String,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub since: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Text)]
    pub reason: String,
}

pub fn security_name(security: SmtpSecurity) -> &'static str {
    match security {
        SmtpSecurity::Tls => "tls",
        SmtpSecurity::StartTls => "starttls",
        SmtpSecurity::Plain => "plain",
    }
}

pub fn parse_security(name: &str) -> Option<SmtpSecurity> {
    Some(match name {
        "tls" => SmtpSecurity::Tls,
        "starttls" => SmtpSecurity::StartTls,
        "plain" => SmtpSecurity::Plain,
        _ => return None,
    })
}

/// Whether `from` is an address a mail can be sent from (`support@x.example` or
/// `Support <support@x.example>`).
pub fn valid_from(from: &str) -> bool {
    from.parse::<lettre::message::Mailbox>().is_ok()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = t)]
struct Row {
    inbox_id: String,
    api_base_url: Option<String>,
    api_version: Option<String>,
    access_token: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<i32>,
    smtp_security: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    smtp_from: Option<String>,
    paused_at: Option<DateTime<Utc>>,
    paused_reason: Option<String>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_outbound(self) -> InboxOutbound {
        // The table's CHECKs keep port and security valid and the SMTP columns complete; a URL
        // someone broke by hand reads as unset rather than failing every delivery of the inbox.
        let smtp = match (
            self.smtp_host,
            self.smtp_port,
            self.smtp_security,
            self.smtp_from,
        ) {
            (Some(host), Some(port), Some(security), Some(from)) => Some(SmtpAccount {
                host,
                port: u16::try_from(port).unwrap_or(25),
                security: parse_security(&security).unwrap_or(SmtpSecurity::StartTls),
                username: self.smtp_username,
                password: self.smtp_password.map(Secret::new),
                from,
            }),
            _ => None,
        };
        InboxOutbound {
            inbox_id: self.inbox_id,
            settings: OutboundSettings {
                api_base_url: self.api_base_url.and_then(|u| u.parse().ok()),
                api_version: self.api_version,
                access_token: self.access_token.map(Secret::new),
                smtp,
            },
            pause: self.paused_at.map(|since| Pause {
                since,
                reason: self.paused_reason.unwrap_or_default(),
            }),
            updated_at: self.updated_at,
        }
    }
}

/// The inbox's row, if it has one.
pub async fn get(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
) -> Result<Option<InboxOutbound>, DbError> {
    let row = t::table
        .find(inbox_id)
        .select(Row::as_select())
        .first::<Row>(conn)
        .await
        .optional()?;
    Ok(row.map(Row::into_outbound))
}

/// The rows of `inbox_ids` (those that have one).
pub async fn list(
    conn: &mut AsyncPgConnection,
    inbox_ids: &[String],
) -> Result<Vec<InboxOutbound>, DbError> {
    let rows = t::table
        .filter(t::inbox_id.eq_any(inbox_ids))
        .select(Row::as_select())
        .load::<Row>(conn)
        .await?;
    Ok(rows.into_iter().map(Row::into_outbound).collect())
}

/// Stores `settings` for the inbox, replacing what was there (the pause is kept), and moves
/// `updated_at` on so every worker's cached sender is rebuilt on its next send.
pub async fn put(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
    settings: &OutboundSettings,
) -> Result<InboxOutbound, DbError> {
    let smtp = settings.smtp.as_ref();
    let values = (
        t::api_base_url.eq(settings.api_base_url.as_ref().map(url::Url::to_string)),
        t::api_version.eq(settings.api_version.clone()),
        t::access_token.eq(settings
            .access_token
            .as_ref()
            .map(|s| s.expose().to_owned())),
        t::smtp_host.eq(smtp.map(|s| s.host.clone())),
        t::smtp_port.eq(smtp.map(|s| i32::from(s.port))),
        t::smtp_security.eq(smtp.map(|s| security_name(s.security))),
        t::smtp_username.eq(smtp.and_then(|s| s.username.clone())),
        t::smtp_password.eq(smtp.and_then(|s| s.password.as_ref().map(|p| p.expose().to_owned()))),
        t::smtp_from.eq(smtp.map(|s| s.from.clone())),
        t::updated_at.eq(diesel::dsl::now),
    );
    let row = diesel::insert_into(t::table)
        .values((t::inbox_id.eq(inbox_id), values.clone()))
        .on_conflict(t::inbox_id)
        .do_update()
        .set(values)
        .returning(Row::as_returning())
        .get_result::<Row>(conn)
        .await?;
    Ok(row.into_outbound())
}

/// What the deliveries handler checks before every send: when the settings last changed, and
/// the pause. `None` without a row.
pub async fn revision(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
) -> Result<Option<(DateTime<Utc>, Option<Pause>)>, DbError> {
    type Revision = (DateTime<Utc>, Option<DateTime<Utc>>, Option<String>);
    let row: Option<Revision> = t::table
        .find(inbox_id)
        .select((t::updated_at, t::paused_at, t::paused_reason))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(updated_at, paused_at, reason)| {
        let pause = paused_at.map(|since| Pause {
            since,
            reason: reason.unwrap_or_default(),
        });
        (updated_at, pause)
    }))
}

/// Records that the inbox's deliveries are paused. An inbox already paused keeps the time and
/// reason of its first pause (the one the on-call was alerted about).
pub async fn record_pause(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
    reason: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO inbox_outbound (inbox_id, paused_at, paused_reason) VALUES ($1, now(), $2)
         ON CONFLICT (inbox_id) DO UPDATE SET
           paused_reason = CASE WHEN inbox_outbound.paused_at IS NULL
                                THEN EXCLUDED.paused_reason ELSE inbox_outbound.paused_reason END,
           paused_at = COALESCE(inbox_outbound.paused_at, EXCLUDED.paused_at)",
    )
    .bind::<sql_types::Text, _>(inbox_id)
    .bind::<sql_types::Text, _>(reason)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Cleared {
    #[diesel(sql_type = sql_types::Timestamptz)]
    paused_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    paused_reason: Option<String>,
}

/// Clears the inbox's pause; returns the pause it cleared, `None` when it was not paused.
pub async fn clear_pause(
    conn: &mut AsyncPgConnection,
    inbox_id: &str,
) -> Result<Option<Pause>, DbError> {
    let cleared: Option<Cleared> = diesel::sql_query(
        "UPDATE inbox_outbound o SET paused_at = NULL, paused_reason = NULL
         FROM (SELECT inbox_id, paused_at, paused_reason FROM inbox_outbound
               WHERE inbox_id = $1 AND paused_at IS NOT NULL FOR UPDATE) old
         WHERE o.inbox_id = old.inbox_id
         RETURNING old.paused_at, old.paused_reason",
    )
    .bind::<sql_types::Text, _>(inbox_id)
    .get_result(conn)
    .await
    .optional()?;
    Ok(cleared.map(|c| Pause {
        since: c.paused_at,
        reason: c.paused_reason.unwrap_or_default(),
    }))
}

/// Every paused inbox, longest paused first.
pub async fn paused(conn: &mut AsyncPgConnection) -> Result<Vec<PausedInbox>, DbError> {
    Ok(diesel::sql_query(
        "SELECT o.inbox_id, i.tenant_id, i.kind, i.name, o.paused_at AS since,
                COALESCE(o.paused_reason, '') AS reason
         FROM inbox_outbound o JOIN inboxes i ON i.id = o.inbox_id
         WHERE o.paused_at IS NOT NULL
         ORDER BY o.paused_at, o.inbox_id",
    )
    .load(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_names_round_trip() {
        for s in [
            SmtpSecurity::Tls,
            SmtpSecurity::StartTls,
            SmtpSecurity::Plain,
        ] {
            assert_eq!(parse_security(security_name(s)), Some(s));
        }
        assert_eq!(parse_security("ssl"), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let settings = OutboundSettings {
            api_base_url: None,
            api_version: Some("v21.0".into()),
            access_token: Some(Secret::new("token-secret-1")),
            smtp: Some(SmtpAccount {
                host: "smtp.example".into(),
                port: 587,
                security: SmtpSecurity::StartTls,
                username: Some("support".into()),
                password: Some(Secret::new("smtp-secret-2")),
                from: "support@example.com".into(),
            }),
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
