//! Mailgun's route forward: an email as a form (see `mailgun_form`), authenticated by `signature` =
//! hex HMAC-SHA256 of `timestamp` + `token` under the inbox's signing key.
//!
//! The signature does not cover the email itself, so a captured signature must not be usable
//! twice: the timestamp must be within the freshness window (default 5 minutes) and each token
//! is accepted once. The token is remembered only after the job is stored, so a delivery that got
//! a 503 is accepted when Mailgun retries it; a reused token gets 406, which stops Mailgun's
//! retries. Two requests racing with the same token can both pass the check; the Message-ID
//! dedup still stores one email once (documented in docs/ingress.md).

use hyper::{Request, body::Incoming};
use serde_json::json;
use shared::{config::Secret, inboxes::Inbox};

use super::{Ctx, Reply, email, mailgun_form::Form};
use crate::{
    State, body,
    errors::{AuthFailure, IngressError},
    intake::{self, Intake, Routing},
    jobs,
    json_fields::check_id,
    verify,
};

const SIGNATURE_FIELDS: [&str; 3] = ["timestamp", "token", "signature"];

pub async fn receive(
    state: &State,
    ctx: &Ctx,
    inbox: &Inbox,
    key: &Secret,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let (parts, incoming) = request.into_parts();
    if body::media_type(&parts.headers)
        .is_none_or(|m| m != body::FORM && m != super::mailgun_form::MULTIPART)
    {
        return Err(IngressError::UnsupportedMediaType {
            expected: "application/x-www-form-urlencoded or multipart/form-data",
        });
    }
    let limits = &state.config.limits;
    let bytes = body::read(
        &parts.headers,
        incoming,
        limits.max_body_bytes,
        limits.body_read_timeout,
    )
    .await?;
    let form = Form::read(&parts.headers, bytes).await?;
    let token = check_signature(state, key, &form)?;
    if shared::inboxes::token_used(&state.db, &inbox.id, token).await? {
        return Err(IngressError::TokenReused);
    }
    let intake = parse(inbox, ctx, &form)?;
    let outcome = intake::store(
        &state.queues,
        state.config.dedup_window,
        &ctx.correlation_id,
        intake,
    )
    .await?;
    let keep = state.config.signature_max_age * 2;
    if let Err(error) = shared::inboxes::remember_token(&state.db, &inbox.id, token, keep).await {
        // The job is stored, which is what the 200 promises; only replay protection is weaker.
        tracing::warn!(error = %error, "could not remember the mailgun token");
    }
    Ok(Reply::Accepted(outcome))
}

/// Verifies signature and freshness; returns the token.
fn check_signature<'f>(
    state: &State,
    key: &Secret,
    form: &'f Form,
) -> Result<&'f str, IngressError> {
    let [timestamp, token, signature] = SIGNATURE_FIELDS.map(|name| {
        form.get(name)
            .ok_or(IngressError::Unauthorized(AuthFailure::MissingSignature(
                "signature",
            )))
    });
    let (timestamp, token, signature) = (timestamp?, token?, signature?);
    if !verify::hmac_sha256_matches(
        key.expose().as_bytes(),
        &[timestamp.as_bytes(), token.as_bytes()],
        signature,
    ) {
        return Err(IngressError::Unauthorized(AuthFailure::BadSignature));
    }
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| IngressError::Unauthorized(AuthFailure::StaleTimestamp))?;
    let age = chrono::Utc::now()
        .timestamp()
        .saturating_sub(signed_at)
        .unsigned_abs();
    if age > state.config.signature_max_age.as_secs() {
        return Err(IngressError::Unauthorized(AuthFailure::StaleTimestamp));
    }
    check_id(token, "token")
}

fn parse(inbox: &Inbox, ctx: &Ctx, form: &Form) -> Result<Intake, IngressError> {
    if form.get("sender").is_none_or(str::is_empty) {
        return Err(IngressError::invalid("sender", "is missing"));
    }
    let message_id = match form.get("message-headers") {
        Some(headers) => header_message_id(headers)?,
        None => None,
    }
    .or_else(|| form.get("Message-Id").map(str::to_owned));
    if let Some(id) = &message_id {
        check_id(id, "Message-Id")?;
    }
    let content = form
        .fields
        .iter()
        .filter(|(k, _)| !SIGNATURE_FIELDS.contains(&k.as_str()))
        .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]);
    let key = email::dedup_key(message_id.as_deref(), content);
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
        form.to_json(),
        json!({ "provider": "mailgun" }),
    );
    Ok(Intake {
        jobs: vec![job],
        ignored: Vec::new(),
    })
}

/// The Message-Id in Mailgun's `message-headers`: a JSON list of `[name, value]` pairs.
fn header_message_id(headers: &str) -> Result<Option<String>, IngressError> {
    let pairs: Vec<(String, String)> = serde_json::from_str(headers).map_err(|_| {
        IngressError::invalid(
            "message-headers",
            "must be a JSON list of [name, value] pairs",
        )
    })?;
    Ok(pairs
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("message-id"))
        .map(|(_, value)| value))
}
