//! An inbox's outbound side, with an operator key: its credentials, and resuming its paused
//! deliveries.
//!
//! `GET /api/inboxes/{id}/outbound`; `PUT /api/inboxes/{id}/outbound {"api_base_url"?,
//! "api_version"?, "access_token"?, "smtp_host"?, "smtp_port"?, "smtp_security"?,
//! "smtp_username"?, "smtp_password"?, "smtp_from"?}` replaces what is stored (the pause is
//! kept); `POST /api/inboxes/{id}/deliveries/resume` clears a pause and releases the held
//! deliveries (409 when the inbox is not paused). The same object is accepted as `outbound`
//! when an inbox is created (provisioning). Answers show which secrets are set (`"set"`), never
//! their values.
//!
//! Which fields apply depends on the inbox's kind: WAHA takes a base URL and its X-Api-Key as
//! `access_token` (both optional: the deployment's `WAHA_BASE_URL` is the fallback); Messenger
//! and WhatsApp Cloud need `access_token` and may override the Graph base and version; email
//! needs the SMTP account; the widget takes nothing.

use hyper::{Method, Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use shared::{
    channels::pause::{self, ResumeError},
    config::Secret,
    conversation::{ConversationError, directory},
    inboxes::{
        InboxKind,
        outbound::{self, InboxOutbound, OutboundSettings, SmtpAccount},
    },
};

use super::{Answer, ApiError, Call, input};

/// The routes of this module, with the inbox id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Show(String),
    Put(String),
    Resume(String),
}

impl Route {
    /// `None` when the path is not this module's; a wrong method is an error.
    pub(crate) fn of(method: &Method, path: &str) -> Option<Result<Self, ApiError>> {
        let rest = path.trim_end_matches('/').strip_prefix("/api/inboxes/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| s.to_owned();
        Some(match segments.as_slice() {
            [inbox, "outbound"] if method == Method::GET => Ok(Self::Show(id(inbox))),
            [inbox, "outbound"] if method == Method::PUT => Ok(Self::Put(id(inbox))),
            [_, "outbound"] => Err(ApiError::MethodNotAllowed("GET, PUT")),
            [inbox, "deliveries", "resume"] if method == Method::POST => {
                Ok(Self::Resume(id(inbox)))
            }
            [_, "deliveries", "resume"] => Err(ApiError::MethodNotAllowed("POST")),
            _ => return None,
        })
    }
}

pub(crate) async fn serve(
    call: &Call<'_>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.operator()?;
    match route {
        Route::Show(id) => show(call, &id).await,
        Route::Put(id) => put(call, &id, request).await,
        Route::Resume(id) => resume(call, &id).await,
    }
}

async fn show(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    kind_of(call, id).await?;
    let mut conn = call.conn().await?;
    let row = outbound::get(&mut conn, id).await.map_err(db)?;
    Ok(Answer(
        StatusCode::OK,
        json!({ "inbox_id": id, "outbound": summary(row.as_ref()) }),
    ))
}

async fn put(call: &Call<'_>, id: &str, request: Request<Incoming>) -> Result<Answer, ApiError> {
    let kind = kind_of(call, id).await?;
    let body = input::object(request).await?;
    let settings = settings(&body, kind, "")?;
    let mut conn = call.conn().await?;
    let row = outbound::put(&mut conn, id, &settings).await.map_err(db)?;
    drop(conn);
    // Deliveries held because the inbox had no settings go out now, not at their next recheck.
    // A paused inbox keeps them until an operator resumes it (new credentials alone do not
    // prove the channel works again).
    let released = if row.pause.is_none() {
        pause::release(&call.api.queues, id)
            .await
            .map_err(|e| ApiError::Conversation(ConversationError::Pool(e.to_string())))?
    } else {
        0
    };
    tracing::info!(inbox_id = id, released, "outbound settings replaced");
    Ok(Answer(
        StatusCode::OK,
        json!({ "inbox_id": id, "outbound": summary(Some(&row)), "released": released }),
    ))
}

async fn resume(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    input::path_id(id, "inbox")?;
    let api = call.api;
    let resumed = pause::resume(&api.conversations.db, &api.queues, id)
        .await
        .map_err(|e| match e {
            ResumeError::UnknownInbox(id) => ConversationError::not_found("inbox", id).into(),
            ResumeError::NotPaused(_) => ConversationError::Conflict(e.to_string()).into(),
            other => ApiError::Conversation(ConversationError::Pool(other.to_string())),
        })?;
    Ok(Answer(StatusCode::OK, json!({ "resumed": resumed })))
}

/// The inbox's kind; an unknown inbox is a 404.
async fn kind_of(call: &Call<'_>, id: &str) -> Result<InboxKind, ApiError> {
    input::path_id(id, "inbox")?;
    let mut conn = call.conn().await?;
    Ok(directory::inbox_kind(&mut conn, id).await?)
}

fn db(error: shared::db::DbError) -> ApiError {
    ApiError::Conversation(error.into())
}

/// What an answer shows of stored settings: values, except secrets, which are `"set"` or null.
pub(crate) fn summary(row: Option<&InboxOutbound>) -> Value {
    let Some(row) = row else {
        return json!({ "access_token": null, "smtp_password": null, "paused": null });
    };
    let s = &row.settings;
    let set = |secret: Option<&Secret>| secret.map(|_| "set");
    let smtp = s.smtp.as_ref();
    json!({
        "api_base_url": s.api_base_url.as_ref().map(url::Url::as_str),
        "api_version": s.api_version,
        "access_token": set(s.access_token.as_ref()),
        "smtp_host": smtp.map(|m| &m.host),
        "smtp_port": smtp.map(|m| m.port),
        "smtp_security": smtp.map(|m| outbound::security_name(m.security)),
        "smtp_username": smtp.and_then(|m| m.username.as_ref()),
        "smtp_password": set(smtp.and_then(|m| m.password.as_ref())),
        "smtp_from": smtp.map(|m| &m.from),
        "paused": row.pause.as_ref().map(|p| json!({ "since": p.since, "reason": p.reason })),
        "updated_at": row.updated_at,
    })
}

const FIELDS: [&str; 9] = [
    "api_base_url",
    "api_version",
    "access_token",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "smtp_from",
];

/// The fields a kind of inbox takes.
fn applies(kind: InboxKind, field: &str) -> bool {
    match kind {
        InboxKind::Waha => matches!(field, "api_base_url" | "access_token"),
        InboxKind::Messenger | InboxKind::WhatsappCloud => {
            matches!(field, "api_base_url" | "api_version" | "access_token")
        }
        InboxKind::Email => field.starts_with("smtp_"),
        InboxKind::Widget => false,
    }
}

/// Parses and checks an outbound object for an inbox of `kind`; errors name the field with
/// `prefix` in front (`outbound.` inside an inbox).
pub(crate) fn settings(
    body: &Map<String, Value>,
    kind: InboxKind,
    prefix: &str,
) -> Result<OutboundSettings, ApiError> {
    let name = |f: &str| format!("{prefix}{f}");
    for (field, value) in body {
        if !FIELDS.contains(&field.as_str()) {
            return Err(ApiError::invalid(name(field), "is not an outbound setting"));
        }
        if !value.is_null() && !applies(kind, field) {
            return Err(ApiError::invalid(
                name(field),
                format!("does not apply to a {kind} inbox"),
            ));
        }
    }
    let text = |f: &str| -> Result<Option<String>, ApiError> {
        let value =
            input::optional_string(body, f).map_err(|_| invalid(&name(f), "must be a string"))?;
        match value {
            Some(v) if v.trim().is_empty() || v.len() > 4096 => {
                Err(invalid(&name(f), "must be 1 to 4096 characters"))
            }
            other => Ok(other),
        }
    };
    let settings = OutboundSettings {
        api_base_url: text("api_base_url")?
            .map(|u| {
                base_url(&u).ok_or_else(|| invalid(&name("api_base_url"), "must be an http(s) URL"))
            })
            .transpose()?,
        api_version: text("api_version")?
            .map(|v| {
                graph_version(&v)
                    .then_some(v)
                    .ok_or_else(|| invalid(&name("api_version"), "must look like v21.0"))
            })
            .transpose()?,
        access_token: text("access_token")?.map(Secret::new),
        smtp: smtp(body, prefix, &text)?,
    };
    let required = match kind {
        InboxKind::Messenger | InboxKind::WhatsappCloud => {
            Some(("access_token", settings.access_token.is_some()))
        }
        InboxKind::Email => Some(("smtp_host", settings.smtp.is_some())),
        InboxKind::Waha | InboxKind::Widget => None,
    };
    if let Some((field, false)) = required {
        return Err(invalid(
            &name(field),
            &format!("is required for a {kind} inbox"),
        ));
    }
    Ok(settings)
}

/// The SMTP account, when any SMTP field is given: host, port, security and from are then
/// required, and username and password go together.
fn smtp(
    body: &Map<String, Value>,
    prefix: &str,
    text: &dyn Fn(&str) -> Result<Option<String>, ApiError>,
) -> Result<Option<SmtpAccount>, ApiError> {
    let name = |f: &str| format!("{prefix}{f}");
    let given = FIELDS
        .iter()
        .any(|f| f.starts_with("smtp_") && body.get(*f).is_some_and(|v| !v.is_null()));
    if !given {
        return Ok(None);
    }
    let required = |f: &str| -> Result<String, ApiError> {
        text(f)?.ok_or_else(|| invalid(&name(f), "is required with SMTP settings"))
    };
    let host = required("smtp_host")?;
    let port = input::optional_integer(body, "smtp_port")
        .map_err(|_| invalid(&name("smtp_port"), "must be an integer"))?
        .ok_or_else(|| invalid(&name("smtp_port"), "is required with SMTP settings"))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(&name("smtp_port"), "must be 1 to 65535"))?;
    let security = outbound::parse_security(&required("smtp_security")?).ok_or_else(|| {
        invalid(
            &name("smtp_security"),
            "must be one of tls, starttls, plain",
        )
    })?;
    let from = required("smtp_from")?;
    if !outbound::valid_from(&from) {
        return Err(invalid(
            &name("smtp_from"),
            "must be an address like Support <support@example.com>",
        ));
    }
    let username = text("smtp_username")?;
    let password = text("smtp_password")?;
    match (&username, &password) {
        (Some(_), None) => {
            return Err(invalid(
                &name("smtp_password"),
                "is required with smtp_username",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                &name("smtp_username"),
                "is required with smtp_password",
            ));
        }
        _ => {}
    }
    Ok(Some(SmtpAccount {
        host,
        port,
        security,
        username,
        password: password.map(Secret::new),
        from,
    }))
}

fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::invalid(field, problem)
}

/// An absolute http(s) URL with a host and nothing after the path.
fn base_url(text: &str) -> Option<url::Url> {
    let url: url::Url = text.parse().ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.query().is_none()
        && url.fragment().is_none();
    ok.then_some(url)
}

/// `vNN.N`, as the Graph API names its versions.
fn graph_version(text: &str) -> bool {
    let Some((major, minor)) = text.strip_prefix('v').and_then(|v| v.split_once('.')) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn field_of(result: Result<OutboundSettings, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn versions_and_urls_are_checked() {
        assert!(graph_version("v21.0") && graph_version("v9.12"));
        for bad in ["21.0", "v21", "v21.", "vx.0", "v21.0.1", ""] {
            assert!(!graph_version(bad), "{bad}");
        }
        assert!(base_url("http://127.0.0.1:3000").is_some());
        for bad in ["ftp://x", "not a url", "http://x/?a=1", "/relative"] {
            assert!(base_url(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bad_bodies_name_their_field() {
        let k = InboxKind::Messenger;
        let cases = [
            (
                json!({"access_token": "t", "api_version": "21"}),
                k,
                "api_version",
            ),
            (
                json!({"access_token": "t", "api_base_url": "nope"}),
                k,
                "api_base_url",
            ),
            (json!({"access_token": "t", "tokenn": "x"}), k, "tokenn"),
            (json!({}), k, "access_token"),
            (json!({"access_token": 7}), k, "access_token"),
            (json!({"smtp_host": "h"}), k, "smtp_host"),
            (
                json!({"smtp_host": "h", "smtp_port": 25, "smtp_security": "plain"}),
                InboxKind::Email,
                "smtp_from",
            ),
            (
                json!({"smtp_host": "h", "smtp_port": 0, "smtp_security": "plain", "smtp_from": "a@b.c"}),
                InboxKind::Email,
                "smtp_port",
            ),
            (
                json!({"smtp_host": "h", "smtp_port": 25, "smtp_security": "ssl", "smtp_from": "a@b.c"}),
                InboxKind::Email,
                "smtp_security",
            ),
            (
                json!({"smtp_host": "h", "smtp_port": 25, "smtp_security": "tls", "smtp_from": "nobody"}),
                InboxKind::Email,
                "smtp_from",
            ),
            (
                json!({"smtp_host": "h", "smtp_port": 25, "smtp_security": "tls", "smtp_from": "a@b.c", "smtp_username": "u"}),
                InboxKind::Email,
                "smtp_password",
            ),
            (
                json!({"access_token": "t"}),
                InboxKind::Widget,
                "access_token",
            ),
        ];
        for (body, kind, field) in cases {
            assert_eq!(
                field_of(settings(&object(body.clone()), kind, "")),
                field,
                "{body}"
            );
        }
        assert_eq!(
            field_of(settings(&object(json!({"x": 1})), k, "outbound.")),
            "outbound.x"
        );
    }

    #[test]
    fn summaries_show_that_secrets_are_set_not_what_they_are() {
        let parsed = settings(
            &object(
                json!({"smtp_host": "smtp.example", "smtp_port": 587, "smtp_security": "starttls",
                           "smtp_from": "Support <s@example.com>", "smtp_username": "s",
                           "smtp_password": "pw-secret"}),
            ),
            InboxKind::Email,
            "",
        )
        .unwrap();
        let row = InboxOutbound {
            inbox_id: "inb_1".into(),
            settings: parsed,
            pause: None,
            updated_at: chrono::Utc::now(),
        };
        let shown = summary(Some(&row));
        assert_eq!(shown["smtp_password"], "set");
        assert_eq!(shown["smtp_port"], 587);
        assert!(!shown.to_string().contains("pw-secret"));
    }
}
