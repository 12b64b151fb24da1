//! `GET|POST /webhooks/meta`: Meta's webhooks for Messenger (`object: page` → queue `facebook`)
//! and the WhatsApp Cloud API (`object: whatsapp_business_account` → `whatsapp-messages`).
//!
//! One Meta app per deployment: `META_VERIFY_TOKEN` answers the subscription handshake and
//! `META_APP_SECRET` verifies `X-Hub-Signature-256` over the raw bytes before anything is parsed.
//! The inbox is found per entry by page id or phone_number_id; updates for pages or numbers we do
//! not serve, echoes and event types we do not handle are acknowledged (200) but not enqueued,
//! because a refused Meta webhook is retried for days. One POST may carry up to 1,000 updates:
//! the parsers in `meta_messenger` / `meta_whatsapp` build every job before any is stored.

use std::collections::HashMap;

use hyper::{Request, StatusCode, body::Incoming};

use super::{Ctx, Reply, meta_messenger, meta_whatsapp};
use crate::{
    State, body,
    errors::IngressError,
    intake::{self, Intake},
    json_fields, verify,
};

/// The subscription handshake: echo `hub.challenge` when `hub.verify_token` is ours.
pub fn verify_subscription(
    state: &State,
    request: &Request<Incoming>,
) -> Result<Reply, IngressError> {
    let expected = state
        .config
        .meta
        .verify_token
        .as_ref()
        .ok_or(IngressError::NotConfigured("meta"))?;
    let query = request.uri().query().unwrap_or_default();
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &'static str| {
        params
            .get(name)
            .ok_or_else(|| IngressError::invalid(name, "is missing"))
    };
    if param("hub.mode")? != "subscribe" {
        return Err(IngressError::invalid("hub.mode", "must be subscribe"));
    }
    let token = params
        .get("hub.verify_token")
        .ok_or(IngressError::WrongVerifyToken)?;
    if !verify::secrets_equal(token, expected.expose()) {
        return Err(IngressError::WrongVerifyToken);
    }
    Ok(Reply::Text(
        StatusCode::OK,
        "text/plain",
        param("hub.challenge")?.clone(),
    ))
}

/// A signed batch of updates.
pub async fn receive(
    state: &State,
    ctx: &Ctx,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let secret = state
        .config
        .meta
        .app_secret
        .as_ref()
        .ok_or(IngressError::NotConfigured("meta"))?;
    let (parts, incoming) = request.into_parts();
    body::require_media_type(&parts.headers, body::JSON)?;
    let limits = &state.config.limits;
    let bytes = body::read(
        &parts.headers,
        incoming,
        limits.max_body_bytes,
        limits.body_read_timeout,
    )
    .await?;
    let signature = parts
        .headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    verify::meta_signature(secret.expose(), &bytes, signature)
        .map_err(IngressError::Unauthorized)?;
    let update = body::json(&bytes)?;
    let intake = parse(state, ctx, &update).await?;
    let outcome = intake::store(
        &state.queues,
        state.config.dedup_window,
        &ctx.correlation_id,
        intake,
    )
    .await?;
    Ok(Reply::Accepted(outcome))
}

async fn parse(
    state: &State,
    ctx: &Ctx,
    update: &serde_json::Value,
) -> Result<Intake, IngressError> {
    json_fields::object(update, "body")?;
    let object = json_fields::string_at(update, "object", "")?;
    if update.get("entry").is_none() {
        return Err(IngressError::invalid("entry", "is missing"));
    }
    let entries = json_fields::array_at(update, "entry", "")?;
    match object {
        "page" => meta_messenger::parse(state, ctx, entries).await,
        "whatsapp_business_account" => meta_whatsapp::parse(state, ctx, entries).await,
        _ => {
            let mut intake = Intake::default();
            intake.ignore("unhandled_object");
            Ok(intake)
        }
    }
}
