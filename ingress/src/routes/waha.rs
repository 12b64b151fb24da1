//! `POST /webhooks/waha/{inbox}`: WAHA (self-hosted WhatsApp HTTP API) events → `whatsapp-messages`.
//!
//! When the inbox has an HMAC key, `X-Webhook-Hmac` (hex HMAC-SHA512 of the raw body) is
//! required. `message` → `waha.message` (dedup on `payload.id`); `message.ack` → `waha.ack`
//! (dedup on id + ack level, since acks only move forward). `fromMe` messages and the
//! `message.any` feed are echoes of our own sends, events of another session than the inbox's are
//! not ours, and other event types are not handled: all acknowledged, none enqueued.

use hyper::{HeaderMap, Request, body::Incoming};
use serde_json::{Value, json, value::RawValue};
use shared::inboxes::{Inbox, InboxKind};

use super::{Ctx, Reply, inbox_from_path};
use crate::{
    State, body,
    errors::{AuthFailure, IngressError},
    intake::{self, Intake, Raw, Routing},
    jobs,
    json_fields::{flag_at, id_at, integer_at, object, object_at, optional_string_at, string_at},
    sparse_json::{self, Want},
    verify,
};

pub async fn receive(
    state: &State,
    ctx: &Ctx,
    inbox_id: &str,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    let inbox = inbox_from_path(state, inbox_id, InboxKind::Waha).await?;
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
    check_signature(&inbox, &parts.headers, &bytes)?;
    let event = sparse_json::parse(&bytes, &READ_FIELDS)?;
    let intake = parse(&inbox, ctx, &event, || sparse_json::verbatim(&bytes))?;
    let outcome = intake::store(
        &state.queues,
        state.config.dedup_window,
        &ctx.correlation_id,
        intake,
    )
    .await?;
    Ok(Reply::Accepted(outcome))
}

fn check_signature(inbox: &Inbox, headers: &HeaderMap, bytes: &[u8]) -> Result<(), IngressError> {
    let Some(key) = &inbox.waha_hmac_key else {
        return Ok(());
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-webhook-hmac-algorithm").is_some_and(|alg| !alg.eq_ignore_ascii_case("sha512")) {
        return Err(IngressError::Unauthorized(
            AuthFailure::UnsupportedAlgorithm,
        ));
    }
    let signature = header("x-webhook-hmac").ok_or(IngressError::Unauthorized(
        AuthFailure::MissingSignature("X-Webhook-Hmac"),
    ))?;
    if verify::hmac_sha512_matches(key.expose().as_bytes(), bytes, signature) {
        Ok(())
    } else {
        Err(IngressError::Unauthorized(AuthFailure::BadSignature))
    }
}

/// The fields [`parse`] reads; the rest of the event is passed on verbatim, never parsed into a
/// tree.
const READ_FIELDS: Want = Want::Fields(&[
    ("event", Want::Whole),
    ("session", Want::Whole),
    (
        "payload",
        Want::Fields(&[
            ("id", Want::Whole),
            ("fromMe", Want::Whole),
            ("ack", Want::Whole),
        ]),
    ),
]);

/// `event` holds the fields of [`READ_FIELDS`]; `raw` gives the whole event for the job.
fn parse(
    inbox: &Inbox,
    ctx: &Ctx,
    event: &Value,
    raw: impl FnOnce() -> Result<Box<RawValue>, IngressError>,
) -> Result<Intake, IngressError> {
    object(event, "body")?;
    let name = string_at(event, "event", "")?;
    let mut intake = Intake::default();
    let session = optional_string_at(event, "session", "")?;
    if let (Some(expected), Some(session)) = (&inbox.waha_session, session)
        && expected != session
    {
        intake.ignore("unknown_session");
        return Ok(intake);
    }
    let (kind, key, id) = match name {
        "message" => {
            let payload = object_at(event, "payload", "")?;
            if flag_at(payload, "fromMe", "payload")? {
                intake.ignore("echo");
                return Ok(intake);
            }
            let id = id_at(payload, "id", "payload")?;
            (jobs::WAHA_MESSAGE, format!("message:{id}"), id.to_owned())
        }
        "message.ack" => {
            let payload = object_at(event, "payload", "")?;
            let id = id_at(payload, "id", "payload")?;
            let ack = integer_at(payload, "ack", "payload")?;
            (jobs::WAHA_ACK, format!("ack:{id}:{ack}"), id.to_owned())
        }
        "message.any" => {
            intake.ignore("echo");
            return Ok(intake);
        }
        _ => {
            intake.ignore("unhandled_event");
            return Ok(intake);
        }
    };
    let routing = Routing {
        inbox,
        channel: "waha",
        received_at: &ctx.received_at,
    };
    let context = json!({ "session": session, "event": name });
    let queue = jobs::queue(jobs::WHATSAPP_QUEUE);
    intake.jobs.push(routing.job(
        kind,
        &queue,
        &key,
        Some(&id),
        Raw::Verbatim(raw()?),
        context,
    ));
    Ok(intake)
}
