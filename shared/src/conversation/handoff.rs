//! Handoff: a session leaves the bot for a human agent.
//!
//! In one transaction, in the order DESIGN.md §4 tells it: the customer's request
//! (`message.postback`, when a button or intent asked for it), a queue item
//! (`queue_item.created`), the session on the live path (`session.path_changed`), a case
//! (`case.created`), and, if an agent has room, the assignment (`agent.assigned`). A session
//! that is already live, or closed, cannot be handed off (the session state machine says so).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Case, ConversationError, Message, QueueItem, Session, Tx, assignment, cases,
    state::{SessionState, transition},
};
use crate::{
    db::schema::queue_items,
    events::{AgentType, NewEvent, Route, types},
    inboxes::new_id,
};

/// Why the session is handed off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A "connect agent" button: its payload.
    Postback(String),
    /// The bot recognised a handoff intent.
    Intent(String),
    /// This many unrecognised messages in a row.
    Unrecognised(i32),
    /// An operator or agent asked over the API.
    Api,
    /// The inbox has no bot: every conversation goes to the agents.
    BotOff,
}

impl Trigger {
    fn describe(&self) -> Value {
        match self {
            Self::Postback(payload) => json!({ "kind": "postback", "payload": payload }),
            Self::Intent(name) => json!({ "kind": "intent", "intent": name }),
            Self::Unrecognised(n) => json!({ "kind": "unrecognised", "count": n }),
            Self::Api => json!({ "kind": "api" }),
            Self::BotOff => json!({ "kind": "bot_off" }),
        }
    }

    /// Whether the customer asked (recorded as `message.postback`).
    fn is_request(&self) -> bool {
        matches!(self, Self::Postback(_) | Self::Intent(_))
    }
}

/// What a handoff made.
#[derive(Clone, Debug, PartialEq)]
pub struct Handoff {
    pub session: Session,
    pub case: Case,
    pub queue_item: QueueItem,
    pub assigned_agent: Option<String>,
}

/// Hands the (locked) `session` to the agents' queue.
pub async fn hand_off(
    tx: &mut Tx,
    session: &Session,
    trigger: Trigger,
    message: Option<&Message>,
) -> Result<Handoff, ConversationError> {
    // Assignment locks the tenant and its agents: with several customers' locks held as well,
    // two shared transactions could wait on each other.
    if tx.is_shared() {
        return Err(ConversationError::NeedsOwnTransaction);
    }
    transition(&session.id, session.state()?, SessionState::Live)?;
    if trigger.is_request()
        && let Some(message) = message
    {
        tx.emit(NewEvent {
            event_type: types::MESSAGE_POSTBACK,
            aggregate_type: "message",
            aggregate_id: message.id.clone(),
            correlation_id: session.correlation_id.clone(),
            data: json!({
                "message": super::messages::json(message),
                "trigger": trigger.describe(),
            }),
            route: Route::session(&session.id, session.agent_type()),
        })
        .await?;
    }
    let case = cases::create(tx, session).await?;
    let item: QueueItem = diesel::insert_into(queue_items::table)
        .values((
            queue_items::id.eq(new_id("qit")),
            queue_items::tenant_id.eq(&session.tenant_id),
            queue_items::inbox_id.eq(&session.inbox_id),
            queue_items::session_id.eq(&session.id),
            queue_items::case_id.eq(&case.id),
            queue_items::state.eq("waiting"),
        ))
        .returning(QueueItem::as_returning())
        .get_result(tx.conn())
        .await?;
    tx.emit(NewEvent {
        event_type: types::QUEUE_ITEM_CREATED,
        aggregate_type: "queue_item",
        aggregate_id: item.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({
            "queue_item": queue_item_json(&item),
            "session": super::sessions::json(session),
            "trigger": trigger.describe(),
        }),
        route: Route::session(&session.id, AgentType::Live).with_app(&session.inbox_id),
    })
    .await?;
    let live = super::sessions::change_path(tx, session, SessionState::Live, "handoff").await?;
    let data = json!({ "case": cases::json(&case), "session": super::sessions::json(&live) });
    cases::emit(tx, types::CASE_CREATED, &case, &live, data).await?;
    let assigned = assignment::assign_waiting(tx).await?;
    let assigned_agent = assigned
        .into_iter()
        .find(|a| a.queue_item_id == item.id)
        .map(|a| a.agent_id);
    Ok(Handoff {
        session: live,
        case,
        queue_item: item,
        assigned_agent,
    })
}

pub fn queue_item_json(item: &QueueItem) -> Value {
    json!({
        "id": item.id,
        "session_id": item.session_id,
        "case_id": item.case_id,
        "inbox_id": item.inbox_id,
        "state": item.state,
        "agent_id": item.agent_id,
        "created_at": item.created_at,
    })
}
