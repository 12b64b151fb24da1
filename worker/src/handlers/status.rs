//! Provider status callbacks: an outbound message was delivered, read or failed. WAHA acks and
//! WhatsApp Cloud statuses name the message by its provider id; a callback for a message we do
//! not know (not sent by this platform, or sent before its provider id was recorded) or one
//! that would move it backwards is acknowledged and ignored. Messenger's delivery and read
//! watermarks are acknowledged without effect for now (see docs/pipeline.md).

use serde_json::json;
use shared::{
    conversation::{
        messages::{self, StatusUpdate},
        state::MessageStatus,
    },
    jobs::JobError,
    queue::Job,
};

use super::Pipeline;

pub const STATUS_KINDS: [&str; 3] = ["waha.ack", "whatsapp.status", "messenger.status"];

/// The status a callback reports, if it moves anything.
fn reported(job: &Job) -> Result<Option<(String, MessageStatus)>, JobError> {
    let raw = &job.payload["raw"];
    let bad = |what: &str| JobError::Permanent(format!("invalid {} payload: {what}", job.kind));
    match job.kind.as_str() {
        "waha.ack" => {
            let id = raw["payload"]["id"]
                .as_str()
                .ok_or_else(|| bad("payload.id missing"))?;
            let ack = raw["payload"]["ack"]
                .as_i64()
                .ok_or_else(|| bad("payload.ack missing"))?;
            let status = match ack {
                -1 => Some(MessageStatus::Failed),
                2 => Some(MessageStatus::Delivered),
                3 | 4 => Some(MessageStatus::Read),
                _ => None, // PENDING and SERVER: not past `stored`
            };
            Ok(status.map(|s| (id.to_owned(), s)))
        }
        "whatsapp.status" => {
            let id = raw["id"].as_str().ok_or_else(|| bad("id missing"))?;
            let status = match raw["status"]
                .as_str()
                .ok_or_else(|| bad("status missing"))?
            {
                "delivered" => Some(MessageStatus::Delivered),
                "read" => Some(MessageStatus::Read),
                "failed" => Some(MessageStatus::Failed),
                _ => None, // sent: the provider accepted it, which `stored` already covers
            };
            Ok(status.map(|s| (id.to_owned(), s)))
        }
        _ => Ok(None),
    }
}

pub async fn handle(p: &Pipeline, job: &Job) -> Result<(), JobError> {
    let Some((provider_id, status)) = reported(job)? else {
        return Ok(());
    };
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
    let result = messages::apply_status(&mut tx, inbox_id, &provider_id, status, details).await;
    let (update, effects) = tx.finish(result).await?;
    if let StatusUpdate::Unknown = update {
        tracing::debug!(provider_id, "status for a message we do not know");
    }
    p.conversations.settle(effects).await;
    Ok(())
}
