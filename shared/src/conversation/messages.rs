//! Messages: what customers sent (inbound) and what the bot, agents and the system send back
//! (outbound), with their delivery status.
//!
//! Inbound messages are deduplicated by the unique (inbox, provider message id) index — the
//! authority behind ingress's Redis fast path: a redelivered message is a [`Stored::Duplicate`]
//! and produces no event. Outbound messages are stored, announced (`message.ready` for the bot
//! and the system, `message.reply_ready` for agents) and handed to the `deliveries` queue in
//! the same transaction ([`super::delivery`]).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Contact, ConversationError, Message, Session, Tx, delivery,
    state::{MessageStatus, StateMachine, parse_state, transition},
};
use crate::{
    db::schema::messages,
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

/// Stores an inbound message in `session` unless it is a duplicate; a new one is
/// `message.ready`. On a live session the message needs no bot, so it is processed at once.
pub async fn store_inbound(
    tx: &mut Tx,
    session: &Session,
    new: NewInbound,
) -> Result<Stored, ConversationError> {
    let live = session.state()? == super::state::SessionState::Live;
    let inserted: Option<Message> = diesel::insert_into(messages::table)
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
            messages::processed_at.eq(live.then(chrono::Utc::now)),
        ))
        .on_conflict_do_nothing()
        .returning(Message::as_returning())
        .get_result(tx.conn())
        .await
        .optional()?;
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
    let (sender_type, agent_id, event) = match &new.sender {
        Sender::Bot => ("bot", None, types::MESSAGE_READY),
        Sender::System => ("system", None, types::MESSAGE_READY),
        Sender::Agent(id) => ("agent", Some(id.clone()), types::MESSAGE_REPLY_READY),
    };
    let message: Message = diesel::insert_into(messages::table)
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
        .get_result(tx.conn())
        .await?;
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
    diesel::update(messages::table.find(id))
        .set(messages::processed_at.eq(Some(chrono::Utc::now())))
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// What a provider's status callback did to a message.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusUpdate {
    Applied(Box<Message>),
    /// Already at or past that status (callbacks arrive out of order and more than once).
    Stale,
    /// No outbound message has that provider id (not ours, or not sent by this platform).
    Unknown,
}

/// Moves the outbound message with `provider_message_id` in `inbox_id` to `status`; a stale
/// callback is a no-op, an illegal move (read → failed) an error.
pub async fn apply_status(
    tx: &mut Tx,
    inbox_id: &str,
    provider_message_id: &str,
    status: MessageStatus,
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
    let current: MessageStatus = parse_state(&message.status)?;
    if current == status || (current.rank() > status.rank() && status != MessageStatus::Failed) {
        return Ok(StatusUpdate::Stale);
    }
    transition(&message.id, current, status)?;
    let updated: Message = diesel::update(messages::table.find(&message.id))
        .set((
            messages::status.eq(status.as_str()),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Message::as_returning())
        .get_result(tx.conn())
        .await?;
    let session = super::sessions::get(tx, &updated.session_id).await?;
    let event = match status {
        MessageStatus::Read => types::MESSAGE_READ,
        MessageStatus::Failed => types::MESSAGE_DELIVERY_FAILED,
        _ => types::MESSAGE_DELIVERED,
    };
    tx.emit(NewEvent {
        event_type: event,
        aggregate_type: "message",
        aggregate_id: updated.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({ "message": json(&updated), "status": details }),
        route: Route::session(&session.id, session.agent_type()),
    })
    .await?;
    Ok(StatusUpdate::Applied(Box::new(updated)))
}

/// The provider accepted an outbound message: its id is recorded and the message is delivered
/// (`message.delivered`). Returns false when that was already recorded (a rerun).
pub async fn record_sent(
    tx: &mut Tx,
    id: &str,
    provider_message_id: &str,
) -> Result<bool, ConversationError> {
    let message = lock(tx, id).await?;
    let current: MessageStatus = parse_state(&message.status)?;
    if !matches!(current, MessageStatus::New | MessageStatus::Stored) {
        return Ok(false);
    }
    transition(&message.id, current, MessageStatus::Delivered)?;
    let updated: Message = diesel::update(messages::table.find(&message.id))
        .set((
            messages::status.eq(MessageStatus::Delivered.as_str()),
            messages::provider_message_id.eq(provider_message_id),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Message::as_returning())
        .get_result(tx.conn())
        .await?;
    delivery_event(
        tx,
        types::MESSAGE_DELIVERED,
        &updated,
        json!({ "source": "send" }),
    )
    .await?;
    Ok(true)
}

/// An outbound message will never be sent: failed (`message.delivery_failed` with the
/// reason). Returns false when it was already past that point.
pub async fn record_failed(tx: &mut Tx, id: &str, reason: &str) -> Result<bool, ConversationError> {
    let message = lock(tx, id).await?;
    let current: MessageStatus = parse_state(&message.status)?;
    if !current.can_become(MessageStatus::Failed) {
        return Ok(false);
    }
    let updated: Message = diesel::update(messages::table.find(&message.id))
        .set((
            messages::status.eq(MessageStatus::Failed.as_str()),
            messages::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Message::as_returning())
        .get_result(tx.conn())
        .await?;
    delivery_event(
        tx,
        types::MESSAGE_DELIVERY_FAILED,
        &updated,
        json!({ "reason": reason }),
    )
    .await?;
    Ok(true)
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
        data: json!({ "message": json(message), "status": details }),
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
