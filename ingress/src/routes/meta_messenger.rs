//! Messenger updates (`object: page`) → jobs on the `facebook` queue.
//!
//! Per `entry[].messaging[]` event: `message` → `messenger.message` (dedup on `mid`; `is_echo`
//! are our own sends and are ignored), `postback` → `messenger.postback` (dedup on its `mid`, or
//! sender + timestamp for old payloads without one), `delivery` / `read` → `messenger.status`
//! (dedup on sender + watermark, as the watermark covers every earlier message). Anything else
//! (reactions, optins, standby…) is acknowledged and ignored.

use serde_json::{Value, json};
use shared::{inboxes::InboxLookup, queue::QueueName};

use super::Ctx;
use crate::{
    State,
    errors::IngressError,
    intake::{Intake, Routing},
    jobs,
    json_fields::{
        array_at, flag_at, id_at, id_or_number_at, index, integer_at, join, object, object_at,
    },
};

pub async fn parse(state: &State, ctx: &Ctx, entries: &[Value]) -> Result<Intake, IngressError> {
    let queue = jobs::queue(jobs::FACEBOOK_QUEUE);
    let mut intake = Intake::default();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("entry[{i}]");
        object(entry, &path)?;
        let page_id = id_or_number_at(entry, "id", &path)?;
        let events = array_at(entry, "messaging", &path)?;
        if events.is_empty() {
            intake.ignore("unhandled_field");
            continue;
        }
        let Some(inbox) = state
            .inboxes
            .get(InboxLookup::MessengerPage(page_id.clone()))
            .await?
        else {
            events.iter().for_each(|_| intake.ignore("unknown_page"));
            continue;
        };
        let routing = Routing {
            inbox: &inbox,
            channel: "messenger",
            received_at: &ctx.received_at,
        };
        let context = json!({ "entry_id": page_id, "entry_time": entry.get("time") });
        for (j, event) in events.iter().enumerate() {
            event_job(
                &routing,
                &queue,
                event,
                &index(&path, "messaging", j),
                &context,
                &mut intake,
            )?;
        }
    }
    Ok(intake)
}

fn event_job(
    routing: &Routing<'_>,
    queue: &QueueName,
    event: &Value,
    path: &str,
    context: &Value,
    intake: &mut Intake,
) -> Result<(), IngressError> {
    object(event, path)?;
    let sender = id_or_number_at(
        object_at(event, "sender", path)?,
        "id",
        &join(path, "sender"),
    )?;
    let job = |kind, key: String, mid: Option<&str>| {
        routing.job(kind, queue, &key, mid, event.clone(), context.clone())
    };
    if let Some(message) = event.get("message") {
        let path = join(path, "message");
        object(message, &path)?;
        if flag_at(message, "is_echo", &path)? {
            intake.ignore("echo");
            return Ok(());
        }
        let mid = id_at(message, "mid", &path)?;
        intake.jobs.push(job(
            jobs::MESSENGER_MESSAGE,
            format!("message:{mid}"),
            Some(mid),
        ));
    } else if let Some(postback) = event.get("postback") {
        let path_postback = join(path, "postback");
        object(postback, &path_postback)?;
        let (key, mid) = match postback.get("mid") {
            Some(_) => {
                let mid = id_at(postback, "mid", &path_postback)?;
                (format!("postback:{mid}"), Some(mid))
            }
            None => (
                format!(
                    "postback:{sender}:{}",
                    integer_at(event, "timestamp", path)?
                ),
                None,
            ),
        };
        intake.jobs.push(job(jobs::MESSENGER_POSTBACK, key, mid));
    } else if let Some((name, status)) = ["delivery", "read"]
        .into_iter()
        .find_map(|n| Some((n, event.get(n)?)))
    {
        let watermark = integer_at(status, "watermark", &join(path, name))?;
        intake.jobs.push(job(
            jobs::MESSENGER_STATUS,
            format!("{name}:{sender}:{watermark}"),
            None,
        ));
    } else {
        intake.ignore("unhandled_event");
    }
    Ok(())
}
