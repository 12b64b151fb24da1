//! Messages: what customers sent (inbound) and what the bot, agents and the system send back
//! (outbound), with their delivery status.
//!
//! Inbound messages are deduplicated by the unique (inbox, provider message id) index — the
//! authority behind ingress's Redis fast path: a redelivered message is a [`Stored::Duplicate`]
//! and produces no event. Outbound messages are stored, announced (`message.ready` for the bot
//! and the system, `message.reply_ready` for agents) and handed to the `deliveries` queue in
//! the same transaction ([`super::delivery`]).
//!
//! Delivery tracking: the deliveries handler records acceptance, refused attempts and failure
//! ([`record_sent`], [`record_attempt_error`], [`record_failed`]); provider callbacks move a
//! message on ([`apply_callback`], [`apply_watermark`]). Every move follows the one order of
//! shared::channels::status and is stamped in `message_deliveries` in the same transaction.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use super::{
    Contact, ConversationError, Message, Session, Tx, delivery,
    state::{MessageStatus, StateMachine, parse_state, transition},
};
use crate::{
    channels::status::{StatusCallback, StatusChange, Tracked, next_status},
    db::{
        keep_prepared,
        schema::{message_deliveries, messages},
    },
    events::{EventType, NewEvent, Route, types},
    inboxes::{InboxKind, new_id},
};

/// What kind of content a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    /// A button press: `payload.postback` holds the button's payload.
    Postback,
    Email,
    Media,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Postback => "postback",
            Self::Email => "email",
            Self::Media => "media",
        }
    }
}

/// An inbound message as a channel parser made it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInbound {
    pub provider_message_id: String,
    pub kind: MessageKind,
    pub body: String,
    /// Channel-specific facts worth keeping (postback payload, email subject and ids…).
    pub payload: Value,
}

/// What storing an inbound message did.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    New(Message),
    /// The provider message id was already stored: the earlier row.
    Duplicate(Message),
}

impl Stored {
    pub fn message(&self) -> &Message {
        match self {
            Self::New(m) | Self::Duplicate(m) => m,
        }
    }
}

/// Stores an inbound message in `session` unless its provider message id is already stored:
/// the new row, or `None` for a duplicate. On a live session the message needs no bot, so it is
/// stored as processed at once; so is it when the caller `answers` it in this same transaction
/// (a local bot), which saves marking it afterwards — nobody outside the transaction can tell
/// the difference. On a shared borrow of the transaction's connection, so that several
/// messages' inserts can be pipelined (worker/src/handlers/inbound.rs). Finish with
/// [`inbound_stored`], which announces a new one (`message.ready`).
pub async fn insert_inbound(
    mut conn: &AsyncPgConnection,
    session: &Session,
    new: &NewInbound,
    answers: bool,
) -> Result<Option<Message>, ConversationError> {
    let live = session.state()? == super::state::SessionState::Live;
    Ok(diesel::insert_into(messages::table)
        .values((
            messages::id.eq(new_id("msg")),
            messages::tenant_id.eq(&session.tenant_id),
            messages::inbox_id.eq(&session.inbox_id),
            messages::session_id.eq(&session.id),
            messages::direction.eq("inbound"),
            messages::sender_type.eq("customer"),
            messages::provider_message_id.eq(&new.provider_message_id),
            messages::kind.eq(new.kind.as_str()),
            messages::body.eq(&new.body),
            messages::payload.eq(&new.payload),
            messages::status.eq(MessageStatus::Stored.as_str()),
            messages::processed_at.eq((live || answers).then(chrono::Utc::now)),
        ))
        .on_conflict_do_nothing()
        .returning(Message::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?)
}

/// What [`insert_inbound`] did, told: a new message is announced (`message.ready`); for a
/// duplicate (`inserted` is `None`) the earlier row is read.
pub async fn inbound_stored(
    tx: &mut Tx,
    session: &Session,
    new: &NewInbound,
    inserted: Option<Message>,
) -> Result<Stored, ConversationError> {
    let Some(message) = inserted else {
        let earlier = messages::table
            .filter(messages::inbox_id.eq(&session.inbox_id))
            .filter(messages::provider_message_id.eq(&new.provider_message_id))
            .select(Message::as_select())
            .first(tx.conn())
            .await?;
        return Ok(Stored::Duplicate(earlier));
    };
    announce(tx, types::MESSAGE_READY, &message, session).await?;
    Ok(Stored::New(message))
}

/// Who writes an outbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    Bot,
    Agent(String),
    System,
}

/// An outbound message to store and deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct NewOutbound {
    pub sender: Sender,
    pub body: String,
    pub idempotency_key: Option<String>,
    pub payload: Value,
}

/// Stores an outbound message, announces it and stages its `deliveries` job.
pub async fn store_outbound(
    tx: &mut Tx,
    session: &Session,
    contact: &Contact,
    inbox_kind: InboxKind,
    new: NewOutbound,
) -> Result<Message, ConversationError> {
    let message = insert_outbound(tx.conn(), session, &new).await?;
    outbound_stored(tx, session, contact, inbox_kind, &new.sender, message).await
}

/// [`store_outbound`]'s statement alone, on a shared borrow of the transaction's connection (as
/// [`insert_inbound`]). Finish with [`outbound_stored`].
pub async fn insert_outbound(
    mut conn: &AsyncPgConnection,
    session: &Session,
    new: &NewOutbound,
) -> Result<Message, ConversationError> {
    let (sender_type, agent_id) = match &new.sender {
        Sender::Bot => ("bot", None),
        Sender::System => ("system", None),
        Sender::Agent(id) => ("agent", Some(id.clone())),
    };
    Ok(diesel::insert_into(messages::table)
        .values((
            messages::id.eq(new_id("msg")),
            messages::tenant_id.eq(&session.tenant_id),
            messages::inbox_id.eq(&session.inbox_id),
            messages::session_id.eq(&session.id),
            messages::direction.eq("outbound"),
            messages::sender_type.eq(sender_type),
            messages::agent_id.eq(agent_id),
            messages::kind.eq(MessageKind::Text.as_str()),
            messages::body.eq(&new.body),
            messages::payload.eq(&new.payload),
            messages::status.eq(MessageStatus::Stored.as_str()),
            messages::idempotency_key.eq(&new.idempotency_key),
            messages::processed_at.eq(Some(chrono::Utc::now())),
        ))
        .returning(Message::as_returning())
        .get_result(&mut conn)
        .await?)
}

/// An outbound message [`insert_outbound`] stored: announced (`message.ready` for the bot and
/// the system, `message.reply_ready` for agents) and its `deliveries` job staged.
pub async fn outbound_stored(
    tx: &mut Tx,
    session: &Session,
    contact: &Contact,
    inbox_kind: InboxKind,
    sender: &Sender,
    message: Message,
) -> Result<Message, ConversationError> {
    let event = match sender {
        Sender::Bot | Sender::System => types::MESSAGE_READY,
        Sender::Agent(_) => types::MESSAGE_REPLY_READY,
    };
    announce(tx, event, &message, session).await?;
    let thread = delivery::email_thread(tx, session, inbox_kind).await?;
    let prefix = tx.channel_prefix().to_owned();
    let (job, dedup_key) = delivery::job(&message, session, contact, inbox_kind, thread, &prefix);
    tx.enqueue(job, Some(dedup_key)).await?;
    Ok(message)
}

async fn announce(
    tx: &mut Tx,
    event: EventType,
    message: &Message,
    session: &Session,
) -> Result<(), ConversationError> {
    tx.emit(NewEvent {
        event_type: event,
        aggregate_type: "message",
        aggregate_id: message.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({ "message": json(message), "session": super::sessions::json(session) }),
        route: Route::session(&session.id, session.agent_type()),
    })
    .await
}

/// The message `id` of this tenant, locked.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Message, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    messages::table
        .filter(messages::id.eq(id))
        .filter(messages::tenant_id.eq(tenant_id))
        .select(Message::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("message", id))
}

/// The agent reply stored earlier under this Idempotency-Key, if any.
pub async fn by_idempotency_key(
    tx: &mut Tx,
    key: &str,
) -> Result<Option<Message>, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    Ok(messages::table
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::idempotency_key.eq(key))
        .select(Message::as_select())
        .first(tx.conn())
        .await
        .optional()?)
}

/// Marks an inbound message as handled by the pipeline (bot answered, handoff done…).
pub async fn mark_processed(tx: &mut Tx, id: &str) -> Result<(), ConversationError> {
    keep_prepared(
        diesel::update(messages::table.find(id))
            .set(messages::processed_at.eq(Some(chrono::Utc::now()))),
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// What a provider's status callback did to a message.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusUpdate {
    Applied(Box<Message>),
    /// Already at or past that status (callbacks arrive out of order and more than once), or a
    /// `failed` after delivery.
    Stale,
    /// No outbound message has that provider id (not ours, or not sent by this platform).
    Unknown,
}

/// Applies a callback naming one message (WhatsApp Cloud status, WAHA ack) to the outbound
/// message with `provider_message_id` in `inbox_id`. Never moves it backwards
/// (shared::channels::status::next_status); a real move is stored and announced.
pub async fn apply_callback(
    tx: &mut Tx,
    inbox_id: &str,
    provider_message_id: &str,
    callback: &StatusCallback,
    details: Value,
) -> Result<StatusUpdate, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    let Some(message) = messages::table
        .filter(messages::inbox_id.eq(inbox_id))
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::provider_message_id.eq(provider_message_id))
        .filter(messages::direction.eq("outbound"))
        .select(Message::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?
    else {
        return Ok(StatusUpdate::Unknown);
    };
    let sent_at: Option<chrono::DateTime<chrono::Utc>> = message_deliveries::table
        .find(&message.id)
        .select(message_deliveries::sent_at)
        .first(tx.conn())
        .await
        .optional()?
        .flatten();
    match apply_to(tx, &message, sent_at, callback, &details).await? {
        Some(updated) => Ok(StatusUpdate::Applied(Box::new(updated))),
        None => Ok(StatusUpdate::Stale),
    }
}

/// Applies a Messenger delivery or read watermark: it covers every outbound message of the
/// contact `contact_external_id` (the PSID) in `inbox_id` that the provider accepted at or before
/// it (or whose mid it lists). Returns the messages it moved, oldest first.
pub async fn apply_watermark(
    tx: &mut Tx,
    inbox_id: &str,
    contact_external_id: &str,
    callback: &StatusCallback,
    details: Value,
) -> Result<Vec<Message>, ConversationError> {
    use crate::db::schema::{contacts, sessions};
    let tenant_id = tx.tenant_id().to_owned();
    let sessions_of_contact: Vec<String> = sessions::table
        .inner_join(contacts::table.on(contacts::id.eq(sessions::contact_id)))
        .filter(sessions::tenant_id.eq(&tenant_id))
        .filter(contacts::inbox_id.eq(inbox_id))
        .filter(contacts::external_id.eq(contact_external_id))
        .select(sessions::id)
        .load(tx.conn())
        .await?;
    // Only messages a watermark can still move; the index on (session_id, sent_at) serves it.
    let forward = [
        MessageStatus::Stored.as_str(),
        MessageStatus::Sent.as_str(),
        MessageStatus::Delivered.as_str(),
    ];
    let candidates: Vec<(Message, Option<chrono::DateTime<chrono::Utc>>)> = messages::table
        .inner_join(message_deliveries::table)
        .filter(messages::tenant_id.eq(tenant_id))
        .filter(messages::inbox_id.eq(inbox_id))
        .filter(messages::direction.eq("outbound"))
        .filter(messages::status.eq_any(forward))
        .filter(message_deliveries::session_id.eq_any(sessions_of_contact))
        .filter(message_deliveries::sent_at.is_not_null())
        .order((message_deliveries::sent_at.asc(), messages::id.asc()))
        .select((Message::as_select(), message_deliveries::sent_at))
        .for_no_key_update()
        .load(tx.conn())
        .await?;
    let mut moved = Vec::new();
    for (message, sent_at) in candidates {
        if let Some(updated) = apply_to(tx, &message, sent_at, callback, &details).await? {
            moved.push(updated);
        }
    }
    Ok(moved)
}

/// The callback applied to one locked message: the move, or `None` when it moves nothing.
async fn apply_to(
    tx: &mut Tx,
    message: &Message,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    callback: &StatusCallback,
    details: &Value,
) -> Result<Option<Message>, ConversationError> {
    let current: MessageStatus = parse_state(&message.status)?;
    let tracked = Tracked {
        status: current,
        provider_message_id: message.provider_message_id.as_deref(),
        sent_at_ms: sent_at.map(|t| t.timestamp_millis()),
    };
    let StatusChange::To(next) = next_status(tracked, callback) else {
        return Ok(None);
    };
    let reason = callback.failure_reason();
    let mut details = details.clone();
    if let (Some(reason), Some(object)) = (&reason, details.as_object_mut()) {
        object.insert("reason".into(), reason.as_str().into());
    }
    move_to(tx, message, current, next, reason.as_deref(), details)
        .await
        .map(Some)
}

/// Stores a forward move (checked against the one order of shared::channels::status), stamps
/// when it happened in `message_deliveries` and emits its catalog event: `message.delivered`,
/// `message.read` or `message.delivery_failed`; `sent` has no event of its own.
async fn move_to(
    tx: &mut Tx,
    message: &Message,
    current: MessageStatus,
    next: MessageStatus,
    error: Option<&str>,
    details: Value,
) -> Result<Message, ConversationError> {
    transition(&message.id, current, next)?;
    let updated: Message = keep_prepared(
        diesel::update(messages::table.find(&message.id))
            .set((
                messages::status.eq(next.as_str()),
                messages::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Message::as_returning()),
    )
    .get_result(tx.conn())
    .await?;
    deliveries::stamp(tx, &updated, next, error).await?;
    let event = match next {
        MessageStatus::Delivered => Some(types::MESSAGE_DELIVERED),
        MessageStatus::Read => Some(types::MESSAGE_READ),
        MessageStatus::Failed => Some(types::MESSAGE_DELIVERY_FAILED),
        MessageStatus::New | MessageStatus::Stored | MessageStatus::Sent => None,
    };
    if let Some(event) = event {
        delivery_event(tx, event, &updated, details).await?;
    }
    Ok(updated)
}

/// The provider accepted an outbound message: its id is recorded, the attempt counted and the
/// message moves to `accepted` — `sent`, or `delivered` where acceptance is delivery (the
/// widget), which is announced (`message.delivered`). Returns false when that was already
/// recorded (a rerun).
pub async fn record_sent(
    tx: &mut Tx,
    id: &str,
    provider_message_id: &str,
    accepted: MessageStatus,
) -> Result<bool, ConversationError> {
    let message = lock(tx, id).await?;
    let current: MessageStatus = parse_state(&message.status)?;
    if !matches!(current, MessageStatus::New | MessageStatus::Stored) {
        return Ok(false);
    }
    keep_prepared(
        diesel::update(messages::table.find(&message.id))
            .set(messages::provider_message_id.eq(provider_message_id)),
    )
    .execute(tx.conn())
    .await?;
    deliveries::attempted(tx, &message, None).await?;
    if accepted == MessageStatus::Delivered {
        // Acceptance is delivery: it was sent at the same moment.
        deliveries::stamp(tx, &message, MessageStatus::Sent, None).await?;
    }
    let mut message = message;
    message.provider_message_id = Some(provider_message_id.to_owned());
    move_to(
        tx,
        &message,
        current,
        accepted,
        None,
        json!({ "source": "send" }),
    )
    .await?;
    Ok(true)
}

/// An attempt to send the message was refused (it will be retried, fail or wait for its inbox):
/// counted, with the provider's error kept as `last_error`.
pub async fn record_attempt_error(
    tx: &mut Tx,
    id: &str,
    error: &str,
) -> Result<(), ConversationError> {
    let message = lock(tx, id).await?;
    deliveries::attempted(tx, &message, Some(error)).await
}

/// An outbound message will never be sent: failed (`message.delivery_failed` with the
/// reason, kept as `last_error`). Returns false when it was already past that point.
pub async fn record_failed(tx: &mut Tx, id: &str, reason: &str) -> Result<bool, ConversationError> {
    let message = lock(tx, id).await?;
    let current: MessageStatus = parse_state(&message.status)?;
    if !current.can_become(MessageStatus::Failed) {
        return Ok(false);
    }
    move_to(
        tx,
        &message,
        current,
        MessageStatus::Failed,
        Some(reason),
        json!({ "reason": reason }),
    )
    .await?;
    Ok(true)
}

/// `message_deliveries`: one row per outbound message once a delivery touched it.
mod deliveries {
    use diesel::sql_types::{Bool, Integer, Nullable, Text};
    use diesel_async::RunQueryDsl;

    use super::{ConversationError, Message, MessageStatus, Tx};

    /// Counts one attempt; keeps `error` as the last error (a success keeps the earlier one).
    pub async fn attempted(
        tx: &mut Tx,
        message: &Message,
        error: Option<&str>,
    ) -> Result<(), ConversationError> {
        upsert(tx, message, 1, None, error).await
    }

    /// When the message reached `status` (the first time: a timestamp is never moved).
    pub async fn stamp(
        tx: &mut Tx,
        message: &Message,
        status: MessageStatus,
        error: Option<&str>,
    ) -> Result<(), ConversationError> {
        upsert(tx, message, 0, Some(status), error).await
    }

    async fn upsert(
        tx: &mut Tx,
        message: &Message,
        attempts: i32,
        reached: Option<MessageStatus>,
        error: Option<&str>,
    ) -> Result<(), ConversationError> {
        let at = |s: MessageStatus| reached == Some(s);
        diesel::sql_query(
            "INSERT INTO message_deliveries AS d \
                 (message_id, session_id, attempts, sent_at, delivered_at, read_at, failed_at, \
                  last_error, updated_at) \
             VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, CASE WHEN $5 THEN now() END, \
                     CASE WHEN $6 THEN now() END, CASE WHEN $7 THEN now() END, $8, now()) \
             ON CONFLICT (message_id) DO UPDATE SET \
                 attempts = d.attempts + EXCLUDED.attempts, \
                 sent_at = COALESCE(d.sent_at, EXCLUDED.sent_at), \
                 delivered_at = COALESCE(d.delivered_at, EXCLUDED.delivered_at), \
                 read_at = COALESCE(d.read_at, EXCLUDED.read_at), \
                 failed_at = COALESCE(d.failed_at, EXCLUDED.failed_at), \
                 last_error = COALESCE(EXCLUDED.last_error, d.last_error), \
                 updated_at = now()",
        )
        .bind::<Text, _>(&message.id)
        .bind::<Text, _>(&message.session_id)
        .bind::<Integer, _>(attempts)
        .bind::<Bool, _>(at(MessageStatus::Sent))
        .bind::<Bool, _>(at(MessageStatus::Delivered))
        .bind::<Bool, _>(at(MessageStatus::Read))
        .bind::<Bool, _>(at(MessageStatus::Failed))
        .bind::<Nullable<Text>, _>(error)
        .execute(tx.conn())
        .await?;
        Ok(())
    }
}

async fn delivery_event(
    tx: &mut Tx,
    event: EventType,
    message: &Message,
    details: Value,
) -> Result<(), ConversationError> {
    let session = super::sessions::get(tx, &message.session_id).await?;
    tx.emit(NewEvent {
        event_type: event,
        aggregate_type: "message",
        aggregate_id: message.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({
            "message": json(message),
            "session": super::sessions::json(&session),
            "status": details,
        }),
        route: Route::session(&session.id, session.agent_type()),
    })
    .await
}

/// The message as events and the API show it.
pub fn json(message: &Message) -> Value {
    json!({
        "id": message.id,
        "session_id": message.session_id,
        "inbox_id": message.inbox_id,
        "direction": message.direction,
        "sender_type": message.sender_type,
        "agent_id": message.agent_id,
        "provider_message_id": message.provider_message_id,
        "kind": message.kind,
        "body": message.body,
        "payload": message.payload,
        "status": message.status,
        "created_at": message.created_at,
    })
}
