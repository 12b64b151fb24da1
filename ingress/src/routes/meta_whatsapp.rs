//! WhatsApp Cloud API updates (`object: whatsapp_business_account`) → `whatsapp-messages`.
//!
//! Per `entry[].changes[]` with `field: messages`, routed by `value.metadata.phone_number_id`:
//! each `value.messages[]` → `whatsapp.message` (dedup on the wamid), each `value.statuses[]` →
//! `whatsapp.status` (dedup on wamid + status, since one message reports sent, delivered, read).
//! `context` carries what Meta puts around the messages: metadata and the sender's `contacts`
//! profile (the only place the customer's name appears). Other fields are ignored.

use serde_json::{Value, json};
use shared::inboxes::InboxLookup;

use super::Ctx;
use crate::{
    State,
    errors::IngressError,
    intake::{Intake, Routing},
    jobs,
    json_fields::{array_at, id_at, id_or_number_at, index, join, object, object_at, string_at},
};

pub async fn parse(state: &State, ctx: &Ctx, entries: &[Value]) -> Result<Intake, IngressError> {
    let mut intake = Intake::default();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        object(entry, &path)?;
        for (k, change) in array_at(entry, "changes", &path)?.iter().enumerate() {
            change_jobs(
                state,
                ctx,
                entry,
                change,
                &index(&path, "changes", k),
                &mut intake,
            )
            .await?;
        }
    }
    Ok(intake)
}

async fn change_jobs(
    state: &State,
    ctx: &Ctx,
    entry: &Value,
    change: &Value,
    path: &str,
    intake: &mut Intake,
) -> Result<(), IngressError> {
    object(change, path)?;
    if string_at(change, "field", path)? != "messages" {
        intake.ignore("unhandled_field");
        return Ok(());
    }
    let value = object_at(change, "value", path)?;
    let path = join(path, "value");
    let metadata = object_at(value, "metadata", &path)?;
    let phone = id_or_number_at(metadata, "phone_number_id", &join(&path, "metadata"))?;
    let messages = array_at(value, "messages", &path)?;
    let statuses = array_at(value, "statuses", &path)?;
    if messages.is_empty() && statuses.is_empty() {
        intake.ignore("unhandled_event");
        return Ok(());
    }
    let Some(inbox) = state
        .inboxes
        .get(InboxLookup::WhatsappPhoneNumber(phone))
        .await?
    else {
        (0..messages.len() + statuses.len()).for_each(|_| intake.ignore("unknown_phone_number"));
        return Ok(());
    };
    let routing = Routing {
        inbox: &inbox,
        channel: "whatsapp_cloud",
        received_at: &ctx.received_at,
    };
    let context = json!({
        "entry_id": entry.get("id"),
        "messaging_product": value.get("messaging_product"),
        "metadata": metadata,
        "contacts": value.get("contacts"),
    });
    let queue = jobs::queue(jobs::WHATSAPP_QUEUE);
    for (m, message) in messages.iter().enumerate() {
        let path = index(&path, "messages", m);
        object(message, &path)?;
        let id = id_at(message, "id", &path)?;
        id_at(message, "from", &path)?;
        let key = format!("message:{id}");
        intake.jobs.push(routing.job(
            jobs::WHATSAPP_MESSAGE,
            &queue,
            &key,
            Some(id),
            message.clone(),
            context.clone(),
        ));
    }
    for (s, status) in statuses.iter().enumerate() {
        let path = index(&path, "statuses", s);
        object(status, &path)?;
        let id = id_at(status, "id", &path)?;
        let state_name = id_at(status, "status", &path)?;
        let key = format!("status:{id}:{state_name}");
        intake.jobs.push(routing.job(
            jobs::WHATSAPP_STATUS,
            &queue,
            &key,
            Some(id),
            status.clone(),
            context.clone(),
        ));
    }
    Ok(())
}
