//! Cases: the support ticket a handoff opens, worked by one agent, closed with a disposition
//! and a sentiment, followed by a CSAT survey.
//!
//! created → assigned (an agent took it) → in_progress (the agent's first reply) → resolved →
//! closed. Closing a case that is assigned or in progress walks the remaining steps, each one
//! legal and recorded; closing one that has no agent yet, or is already closed, is refused.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Case, ConversationError, CsatSurvey, Session, Tx, assignment, csat, partial,
    state::{CaseState, SessionState, StateMachine, transition},
};
use crate::{
    db::schema::{agents, cases, queue_items},
    events::{AgentType, NewEvent, Route, types},
    inboxes::new_id,
};

/// The tenant's case `id`, locked.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Case, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    cases::table
        .filter(cases::id.eq(id))
        .filter(cases::tenant_id.eq(tenant_id))
        .select(Case::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("case", id))
}

/// The tenant's case `id`, read without locking.
pub async fn get(tx: &mut Tx, id: &str) -> Result<Case, ConversationError> {
    let tenant_id = tx.tenant_id().to_owned();
    cases::table
        .filter(cases::id.eq(id))
        .filter(cases::tenant_id.eq(tenant_id))
        .select(Case::as_select())
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("case", id))
}

/// The session's open case, locked, if any.
pub async fn open_for_session(
    tx: &mut Tx,
    session_id: &str,
) -> Result<Option<Case>, ConversationError> {
    Ok(cases::table
        .filter(cases::session_id.eq(session_id))
        .filter(partial::CaseIsOpen)
        .select(Case::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?)
}

/// Inserts a new case for `session` (its `case.created` is emitted by the caller, in order).
pub async fn create(tx: &mut Tx, session: &Session) -> Result<Case, ConversationError> {
    Ok(diesel::insert_into(cases::table)
        .values((
            cases::id.eq(new_id("cas")),
            cases::tenant_id.eq(&session.tenant_id),
            cases::inbox_id.eq(&session.inbox_id),
            cases::session_id.eq(&session.id),
            cases::contact_id.eq(&session.contact_id),
            cases::state.eq(CaseState::Created.as_str()),
        ))
        .returning(Case::as_returning())
        .get_result(tx.conn())
        .await?)
}

/// Records an event about `case` (every case event goes to the live agents' channel).
pub async fn emit(
    tx: &mut Tx,
    event: crate::events::EventType,
    case: &Case,
    session: &Session,
    data: Value,
) -> Result<(), ConversationError> {
    tx.emit(NewEvent {
        event_type: event,
        aggregate_type: "case",
        aggregate_id: case.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data,
        route: Route::session(&session.id, AgentType::Live).with_case(&case.id),
    })
    .await
}

/// Gives a (locked) case to `agent_id`: created → assigned.
pub async fn assign(tx: &mut Tx, case: &Case, agent_id: &str) -> Result<Case, ConversationError> {
    transition(&case.id, case.state()?, CaseState::Assigned)?;
    Ok(diesel::update(cases::table.find(&case.id))
        .set((
            cases::state.eq(CaseState::Assigned.as_str()),
            cases::agent_id.eq(agent_id),
            cases::assigned_at.eq(Some(chrono::Utc::now())),
            cases::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Case::as_returning())
        .get_result(tx.conn())
        .await?)
}

/// Moves a (locked) case one step (`in_progress` or `resolved`): `case.status_changed`.
pub async fn advance(
    tx: &mut Tx,
    case: &Case,
    session: &Session,
    to: CaseState,
) -> Result<Case, ConversationError> {
    let from = case.state()?;
    transition(&case.id, from, to)?;
    let resolved_at = (to == CaseState::Resolved).then(chrono::Utc::now);
    let updated: Case = diesel::update(cases::table.find(&case.id))
        .set((
            cases::state.eq(to.as_str()),
            cases::resolved_at.eq(resolved_at),
            cases::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Case::as_returning())
        .get_result(tx.conn())
        .await?;
    let data = json!({ "case": json(&updated), "from": from.as_str(), "to": to.as_str() });
    emit(tx, types::CASE_STATUS_CHANGED, &updated, session, data).await?;
    Ok(updated)
}

/// How a conversation felt, as the agent judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
}

impl Sentiment {
    pub fn parse(text: &str) -> Result<Self, ConversationError> {
        match text {
            "positive" => Ok(Self::Positive),
            "neutral" => Ok(Self::Neutral),
            "negative" => Ok(Self::Negative),
            _ => Err(ConversationError::invalid(
                "sentiment",
                "must be one of positive, neutral, negative",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Neutral => "neutral",
            Self::Negative => "negative",
        }
    }
}

/// The agent's verdict on a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing {
    /// What the case was about / how it ended (`refund_issued`…): 1 to 100 characters.
    pub disposition: String,
    pub sentiment: Sentiment,
}

impl Closing {
    pub fn new(disposition: &str, sentiment: &str) -> Result<Self, ConversationError> {
        let disposition = disposition.trim();
        if disposition.is_empty() || disposition.chars().count() > 100 {
            return Err(ConversationError::invalid(
                "disposition",
                "must be 1 to 100 characters",
            ));
        }
        Ok(Self {
            disposition: disposition.to_owned(),
            sentiment: Sentiment::parse(sentiment)?,
        })
    }
}

/// What closing a case did.
#[derive(Clone, Debug, PartialEq)]
pub struct Closed {
    pub case: Case,
    pub session: Session,
    pub survey: CsatSurvey,
}

/// Closes the tenant's case `id`: the remaining steps to `closed` (`case.status_changed`),
/// `case.closed`, the agent freed, the session back to the bot (`session.path_changed`), the
/// CSAT survey (`csat.started`), and the freed agent offered the next waiting session.
pub async fn close(tx: &mut Tx, id: &str, closing: &Closing) -> Result<Closed, ConversationError> {
    // Lock order everywhere: session, then case.
    let session_id = get(tx, id).await?.session_id;
    let mut session = super::sessions::lock(tx, &session_id).await?;
    let mut case = lock(tx, id).await?;
    let state = case.state()?;
    let path = state.path_to(CaseState::Closed);
    if state == CaseState::Created || path.is_empty() {
        return Err(transition(&case.id, state, CaseState::Closed)
            .unwrap_err()
            .into());
    }
    for step in &path[..path.len() - 1] {
        case = advance(tx, &case, &session, *step).await?;
    }
    transition(&case.id, case.state()?, CaseState::Closed)?;
    case = diesel::update(cases::table.find(&case.id))
        .set((
            cases::state.eq(CaseState::Closed.as_str()),
            cases::disposition.eq(&closing.disposition),
            cases::sentiment.eq(closing.sentiment.as_str()),
            cases::closed_at.eq(Some(chrono::Utc::now())),
            cases::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Case::as_returning())
        .get_result(tx.conn())
        .await?;
    let data = json!({ "case": json(&case), "session": super::sessions::json(&session) });
    emit(tx, types::CASE_CLOSED, &case, &session, data).await?;
    release(tx, &case).await?;
    if session.state()? == SessionState::Live {
        session =
            super::sessions::change_path(tx, &session, SessionState::Bot, "case_closed").await?;
    }
    let survey = csat::start(tx, &case, &session).await?;
    assignment::assign_waiting(tx).await?;
    Ok(Closed {
        case,
        session,
        survey,
    })
}

/// Ends the case's queue item and frees its agent's slot.
async fn release(tx: &mut Tx, case: &Case) -> Result<(), ConversationError> {
    let freed: Option<Option<String>> = diesel::update(
        queue_items::table
            // By session: the open item's partial index serves it (there is none on case_id).
            .filter(queue_items::session_id.eq(&case.session_id))
            .filter(queue_items::case_id.eq(&case.id))
            .filter(partial::QueueItemIsOpen),
    )
    .set((
        queue_items::state.eq("done"),
        queue_items::done_at.eq(Some(chrono::Utc::now())),
    ))
    .returning(queue_items::agent_id)
    .get_result(tx.conn())
    .await
    .optional()?;
    if let Some(Some(agent_id)) = freed {
        diesel::update(agents::table.find(agent_id))
            .set(
                agents::load.eq(diesel::dsl::sql::<diesel::sql_types::Integer>(
                    "GREATEST(load - 1, 0)",
                )),
            )
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

/// The case as events and the API show it.
pub fn json(case: &Case) -> Value {
    json!({
        "id": case.id,
        "session_id": case.session_id,
        "contact_id": case.contact_id,
        "inbox_id": case.inbox_id,
        "agent_id": case.agent_id,
        "state": case.state,
        "disposition": case.disposition,
        "sentiment": case.sentiment,
        "created_at": case.created_at,
        "closed_at": case.closed_at,
    })
}
