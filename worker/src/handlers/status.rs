//! Provider status callbacks: an outbound message was sent, delivered, read or failed.
//!
//! WAHA acks and WhatsApp Cloud statuses name one message by its provider id; Messenger's
//! delivery and read watermarks cover every outbound message of the contact (the PSID in
//! `sender.id`) the provider accepted at or before the watermark, and a delivery may list mids.
//! What a callback does is decided by shared::channels::status (forward only; `failed` only
//! before delivery), so late, duplicate and out-of-order callbacks change nothing. A callback
//! about a message we do not know (not sent by this platform, or arriving before its provider
//! id was recorded) is acknowledged, logged and counted — a retry could not make it known.

use serde_json::json;
use shared::{
    channels::StatusCallback,
    conversation::messages::{self, StatusUpdate},
    jobs::JobError,
    queue::Job,
};

use super::Pipeline;

pub const STATUS_KINDS: [&str; 3] = ["waha.ack", "whatsapp.status", "messenger.status"];

/// Whom a callback is about.
enum Target {
    /// One message, by its provider id.
    Message(String),
    /// Every message of a contact (its external id) up to a watermark.
    Contact(String),
}

/// The callback a job carries and whom it is about.
fn parse(job: &Job) -> Result<(Target, StatusCallback), JobError> {
    let raw = &job.payload["raw"];
    let bad = |what: &str| JobError::Permanent(format!("invalid {} payload: {what}", job.kind));
    match job.kind.as_str() {
        "waha.ack" => {
            if raw["payload"]["id"].as_str().is_none() {
                return Err(bad("payload.id missing"));
            }
            let (id, callback) =
                StatusCallback::from_waha_ack(raw).ok_or_else(|| bad("payload.ack missing"))?;
            Ok((Target::Message(id), callback))
        }
        "whatsapp.status" => {
            if raw["id"].as_str().is_none() {
                return Err(bad("id missing"));
            }
            let (id, callback) =
                StatusCallback::from_whatsapp(raw).ok_or_else(|| bad("status missing"))?;
            Ok((Target::Message(id), callback))
        }
        "messenger.status" => {
            let psid = raw["sender"]["id"]
                .as_str()
                .ok_or_else(|| bad("sender.id missing"))?;
            let callback = StatusCallback::from_messenger(raw)
                .ok_or_else(|| bad("delivery or read watermark missing"))?;
            Ok((Target::Contact(psid.to_owned()), callback))
        }
        other => Err(JobError::Permanent(format!("not a status kind: {other}"))),
    }
}

pub async fn handle(p: &Pipeline, job: &Job) -> Result<(), JobError> {
    let (target, callback) = parse(job)?;
    let (Some(tenant_id), Some(inbox_id)) = (
        job.payload["tenant_id"].as_str(),
        job.payload["inbox_id"].as_str(),
    ) else {
        return Err(JobError::Permanent(format!(
            "invalid {} payload: routing missing",
            job.kind
        )));
    };
    let mut tx = p
        .conversations
        .begin(tenant_id, &job.id.to_string())
        .await?;
    let details = json!({ "kind": job.kind, "raw": job.payload["raw"] });
    let result = match &target {
        Target::Message(id) => {
            messages::apply_callback(&mut tx, inbox_id, id, &callback, details).await
        }
        Target::Contact(psid) => {
            messages::apply_watermark(&mut tx, inbox_id, psid, &callback, details)
                .await
                .map(|moved| match moved.len() {
                    0 => StatusUpdate::Stale,
                    _ => StatusUpdate::Applied(Box::new(moved[moved.len() - 1].clone())),
                })
        }
    };
    let (update, effects) = tx.finish(result).await?;
    let outcome = match &update {
        StatusUpdate::Applied(_) => "applied",
        StatusUpdate::Stale => "stale",
        StatusUpdate::Unknown => "unknown",
    };
    metrics::counter!("switchyard_status_callbacks_total", "kind" => job.kind.clone(), "outcome" => outcome)
        .increment(1);
    if let (StatusUpdate::Unknown, Target::Message(id)) = (&update, &target) {
        tracing::info!(job_id = %job.id, kind = %job.kind, inbox_id, provider_message_id = %id, "status callback for a message we do not know: acknowledged");
    }
    p.conversations.settle(effects).await;
    Ok(())
}
