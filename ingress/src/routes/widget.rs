//! `POST /widget/{inbox}/messages`: a customer's message from the web widget → the `widget` queue.
//!
//! The widget runs in customers' browsers on other origins, so this route answers CORS preflights
//! and marks every answer readable cross-origin; it authenticates with the inbox's widget token
//! as a bearer token (no cookies, so `*` is a safe origin). The body is
//! `{"visitor_id", "client_message_id", "text", "name"?, "email"?}`; `text` is 1 to 4,096
//! characters and `client_message_id` (scoped by inbox and visitor, so one visitor cannot shadow
//! another's messages) is the dedup key that makes the widget's retries safe.

use hyper::{HeaderMap, Request, body::Incoming, header};
use serde_json::{Value, json};
use shared::inboxes::{Inbox, InboxKind};

use super::{Ctx, Reply, inbox_from_path};
use crate::{
    State, body,
    errors::{AuthFailure, IngressError},
    intake::{self, Intake, Routing},
    jobs,
    json_fields::{id_at, object, optional_string_at, string_at},
    verify,
};

pub const ROUTE: &str = "/widget/{inbox}/messages";
pub const MAX_TEXT_CHARS: usize = 4096;
const MAX_NAME_BYTES: usize = 256;

pub async fn receive(
    state: &State,
    ctx: &Ctx,
    inbox_id: &str,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let inbox = inbox_from_path(state, inbox_id, InboxKind::Widget).await?;
    let (parts, incoming) = request.into_parts();
    authenticate(&inbox, &parts.headers)?;
    body::require_media_type(&parts.headers, body::JSON)?;
    let limits = &state.config.limits;
    let bytes = body::read(
        &parts.headers,
        incoming,
        limits.max_body_bytes,
        limits.body_read_timeout,
    )
    .await?;
    let intake = parse(&inbox, ctx, body::json(&bytes)?)?;
    let outcome = intake::store(
        &state.queues,
        state.config.dedup_window,
        &ctx.correlation_id,
        intake,
    )
    .await?;
    Ok(Reply::Accepted(outcome))
}

fn authenticate(inbox: &Inbox, headers: &HeaderMap) -> Result<(), IngressError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = verify::bearer_token(authorization)
        .ok_or(IngressError::Unauthorized(AuthFailure::MissingCredentials))?;
    match &inbox.widget_token {
        Some(expected) if verify::secrets_equal(token, expected.expose()) => Ok(()),
        _ => Err(IngressError::Unauthorized(AuthFailure::BadCredentials)),
    }
}

fn parse(inbox: &Inbox, ctx: &Ctx, message: Value) -> Result<Intake, IngressError> {
    object(&message, "body")?;
    let visitor = id_at(&message, "visitor_id", "")?.to_owned();
    let client_id = id_at(&message, "client_message_id", "")?.to_owned();
    let text = string_at(&message, "text", "")?;
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(IngressError::invalid(
            "text",
            format!("must be 1 to {MAX_TEXT_CHARS} characters"),
        ));
    }
    for field in ["name", "email"] {
        if optional_string_at(&message, field, "")?.is_some_and(|v| v.len() > MAX_NAME_BYTES) {
            return Err(IngressError::invalid(
                field,
                format!("must be at most {MAX_NAME_BYTES} bytes"),
            ));
        }
    }
    let routing = Routing {
        inbox,
        channel: "widget",
        received_at: &ctx.received_at,
    };
    let key = format!("message:{visitor}:{client_id}");
    let queue = jobs::queue(jobs::WIDGET_QUEUE);
    let context = json!({ "visitor_id": visitor });
    let job = routing.job(
        jobs::WIDGET_MESSAGE,
        &queue,
        &key,
        Some(&client_id),
        message,
        context,
    );
    Ok(Intake {
        jobs: vec![job],
        ignored: Vec::new(),
    })
}

/// CORS: the widget posts from customers' sites.
pub fn allow_cross_origin(headers: &mut HeaderMap) {
    use header::HeaderValue;
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-correlation-id, x-request-id"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-correlation-id, retry-after"),
    );
}
