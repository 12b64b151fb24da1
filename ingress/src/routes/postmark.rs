//! Postmark's inbound webhook: the email as JSON, authenticated by HTTP basic auth that the
//! operator puts in the webhook URL (`https://user:password@host/webhooks/email/{inbox}`).
//! The Message-ID comes from the `Headers` list; Postmark's own `MessageID` is the fallback.

use hyper::{Request, body::Incoming};
use serde_json::{Value, json};
use shared::{config::Secret, inboxes::Inbox};

use super::{Ctx, Reply, email};
use crate::{
    State, body,
    errors::{AuthFailure, IngressError},
    intake::{self, Intake, Routing},
    jobs,
    json_fields::{array_at, check_id, object, optional_string_at, string_at},
    verify,
};

pub async fn receive(
    state: &State,
    ctx: &Ctx,
    inbox: &Inbox,
    (user, password): (&String, &Secret),
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let (parts, incoming) = request.into_parts();
    let authorization = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (given_user, given_password) = verify::basic_credentials(authorization)
        .ok_or(IngressError::Unauthorized(AuthFailure::MissingCredentials))?;
    // Both comparisons run whatever the first one says: no early exit to time.
    let user_ok = verify::secrets_equal(&given_user, user);
    let password_ok = verify::secrets_equal(&given_password, password.expose());
    if !(user_ok & password_ok) {
        return Err(IngressError::Unauthorized(AuthFailure::BadCredentials));
    }
    body::require_media_type(&parts.headers, body::JSON)?;
    let limits = &state.config.limits;
    let bytes = body::read(
        &parts.headers,
        incoming,
        limits.max_body_bytes,
        limits.body_read_timeout,
    )
    .await?;
    let email = body::json(&bytes)?;
    let intake = parse(inbox, ctx, email, &bytes)?;
    let outcome = intake::store(
        &state.queues,
        state.config.dedup_window,
        &ctx.correlation_id,
        intake,
    )
    .await?;
    Ok(Reply::Accepted(outcome))
}

fn parse(inbox: &Inbox, ctx: &Ctx, email: Value, bytes: &[u8]) -> Result<Intake, IngressError> {
    object(&email, "body")?;
    string_at(&email, "From", "")?;
    let mut message_id = None;
    for (i, header) in array_at(&email, "Headers", "")?.iter().enumerate() {
        let path = format!("Headers[{i}]");
        object(header, &path)?;
        if string_at(header, "Name", &path)?.eq_ignore_ascii_case("message-id") {
            message_id = optional_string_at(header, "Value", &path)?.map(str::to_owned);
        }
    }
    let message_id = match message_id {
        Some(id) => Some(id),
        None => optional_string_at(&email, "MessageID", "")?.map(str::to_owned),
    };
    if let Some(id) = &message_id {
        check_id(id, "Message-ID")?;
    }
    let key = email::dedup_key(message_id.as_deref(), [bytes]);
    let routing = Routing {
        inbox,
        channel: "email",
        received_at: &ctx.received_at,
    };
    let job = routing.job(
        jobs::EMAIL_MESSAGE,
        &jobs::queue(jobs::EMAIL_QUEUE),
        &key,
        message_id.as_deref(),
        email,
        json!({ "provider": "postmark" }),
    );
    Ok(Intake {
        jobs: vec![job],
        ignored: Vec::new(),
    })
}
