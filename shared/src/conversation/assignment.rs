//! Assignment: waiting sessions go to available agents, round robin, within each agent's
//! capacity.
//!
//! One assigner per tenant at a time (a transaction-scoped advisory lock), so the oldest
//! waiting item always goes next and no agent is ever given more than its capacity. The next
//! agent is the available one with room that was assigned longest ago (never-assigned first).
//! Runs after every handoff and whenever an agent frees up (case closed, back available), in
//! the transaction that caused it; with no agent free, items simply wait.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::json;

use super::{
    Agent, ConversationError, QueueItem, Tx, cases, partial,
    state::{QueueItemState, StateMachine, transition},
};
use crate::{
    db::schema::{agents, queue_items},
    events::{AgentType, NewEvent, Route, types},
};

/// One assignment made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub queue_item_id: String,
    pub case_id: String,
    pub session_id: String,
    pub agent_id: String,
}

/// Most assignments made in one call (the rest wait for the next trigger).
const MAX_PER_CALL: usize = 100;

/// Assigns waiting items of the transaction's tenant while agents have room.
pub async fn assign_waiting(tx: &mut Tx) -> Result<Vec<Assignment>, ConversationError> {
    if tx.is_shared() {
        return Err(ConversationError::NeedsOwnTransaction);
    }
    let tenant_id = tx.tenant_id().to_owned();
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(format!("assign:{tenant_id}"))
        .execute(tx.conn())
        .await?;
    let mut made = Vec::new();
    while made.len() < MAX_PER_CALL {
        let Some(item) = oldest_waiting(tx, &tenant_id).await? else {
            break;
        };
        let Some(agent) = next_agent(tx, &tenant_id).await? else {
            break;
        };
        made.push(assign(tx, &item, &agent).await?);
    }
    Ok(made)
}

async fn oldest_waiting(
    tx: &mut Tx,
    tenant_id: &str,
) -> Result<Option<QueueItem>, ConversationError> {
    Ok(queue_items::table
        .filter(queue_items::tenant_id.eq(tenant_id))
        .filter(partial::QueueItemIsWaiting)
        .order((queue_items::created_at.asc(), queue_items::id.asc()))
        .select(QueueItem::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?)
}

/// The available agent with room that was assigned longest ago, locked and charged one slot.
async fn next_agent(tx: &mut Tx, tenant_id: &str) -> Result<Option<Agent>, ConversationError> {
    let candidate: Option<String> = agents::table
        .filter(agents::tenant_id.eq(tenant_id))
        .filter(agents::available.eq(true))
        .filter(agents::load.lt(agents::capacity))
        .order((
            agents::last_assigned_at.asc().nulls_first(),
            agents::id.asc(),
        ))
        .select(agents::id)
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?;
    let Some(id) = candidate else {
        return Ok(None);
    };
    Ok(Some(
        diesel::update(agents::table.find(id))
            .set((
                agents::load.eq(agents::load + 1),
                agents::last_assigned_at.eq(Some(chrono::Utc::now())),
            ))
            .returning(Agent::as_returning())
            .get_result(tx.conn())
            .await?,
    ))
}

async fn assign(
    tx: &mut Tx,
    item: &QueueItem,
    agent: &Agent,
) -> Result<Assignment, ConversationError> {
    let from: QueueItemState = super::state::parse_state(&item.state)?;
    transition(&item.id, from, QueueItemState::Assigned)?;
    let item: QueueItem = diesel::update(queue_items::table.find(&item.id))
        .set((
            queue_items::state.eq(QueueItemState::Assigned.as_str()),
            queue_items::agent_id.eq(&agent.id),
            queue_items::assigned_at.eq(Some(chrono::Utc::now())),
        ))
        .returning(QueueItem::as_returning())
        .get_result(tx.conn())
        .await?;
    let case = cases::lock(tx, &item.case_id).await?;
    let case = cases::assign(tx, &case, &agent.id).await?;
    let session = super::sessions::get(tx, &item.session_id).await?;
    tx.emit(NewEvent {
        event_type: types::AGENT_ASSIGNED,
        aggregate_type: "queue_item",
        aggregate_id: item.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data: json!({
            "agent": super::agents::json(agent),
            "queue_item": super::handoff::queue_item_json(&item),
            "case": cases::json(&case),
            "session": super::sessions::json(&session),
        }),
        route: Route::session(&session.id, AgentType::Live)
            .with_app(&session.inbox_id)
            .with_case(&case.id),
    })
    .await?;
    Ok(Assignment {
        queue_item_id: item.id,
        case_id: case.id,
        session_id: session.id,
        agent_id: agent.id.clone(),
    })
}
