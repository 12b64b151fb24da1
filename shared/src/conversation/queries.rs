//! Reads for the agent desk (the `/api` GET endpoints): a tenant's sessions, one session with
//! its contact, open case and messages, a case with its survey. Always scoped by tenant, so
//! another tenant's ids are not found.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use super::{
    Case, Contact, ConversationError, CsatSurvey, Message, Session, cases, csat, messages, partial,
    sessions,
    state::{SessionState, StateMachine},
};
use crate::db::schema::{
    cases as cases_t, contacts, csat_surveys, messages as messages_t, sessions as sessions_t,
};

/// The tenant's sessions, newest first, optionally in one state.
pub async fn sessions(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    state: Option<SessionState>,
    limit: i64,
) -> Result<Vec<Value>, ConversationError> {
    let mut query = sessions_t::table
        .filter(sessions_t::tenant_id.eq(tenant_id.to_owned()))
        .order(sessions_t::created_at.desc())
        .limit(limit)
        .select(Session::as_select())
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(sessions_t::state.eq(state.as_str()));
    }
    let rows: Vec<Session> = query.load(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for session in rows {
        let case = open_case(conn, &session.id).await?;
        let mut value = sessions::json(&session);
        value["open_case"] = case.as_ref().map(cases::json).unwrap_or(Value::Null);
        out.push(value);
    }
    Ok(out)
}

async fn open_case(
    conn: &mut AsyncPgConnection,
    session_id: &str,
) -> Result<Option<Case>, ConversationError> {
    Ok(cases_t::table
        .filter(cases_t::session_id.eq(session_id))
        .filter(partial::CaseIsOpen)
        .select(Case::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One session of the tenant: itself, its contact, open case and last `limit` messages.
pub async fn session(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    id: &str,
    limit: i64,
) -> Result<Value, ConversationError> {
    let session: Session = sessions_t::table
        .filter(sessions_t::id.eq(id))
        .filter(sessions_t::tenant_id.eq(tenant_id))
        .select(Session::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("session", id))?;
    let contact: Contact = contacts::table
        .find(&session.contact_id)
        .select(Contact::as_select())
        .first(conn)
        .await?;
    let mut recent: Vec<Message> = messages_t::table
        .filter(messages_t::session_id.eq(&session.id))
        .order(messages_t::created_at.desc())
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
        .await?;
    recent.reverse();
    let case = open_case(conn, &session.id).await?;
    Ok(json!({
        "session": sessions::json(&session),
        "correlation_id": session.correlation_id,
        "contact": sessions::contact_json(&contact),
        "open_case": case.as_ref().map(cases::json),
        "messages": recent.iter().map(messages::json).collect::<Vec<_>>(),
    }))
}

/// One case of the tenant, with its CSAT survey if it has one.
pub async fn case(
    conn: &mut AsyncPgConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Value, ConversationError> {
    let case: Case = cases_t::table
        .filter(cases_t::id.eq(id))
        .filter(cases_t::tenant_id.eq(tenant_id))
        .select(Case::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("case", id))?;
    let survey: Option<CsatSurvey> = csat_surveys::table
        .filter(csat_surveys::case_id.eq(&case.id))
        .select(CsatSurvey::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(json!({ "case": cases::json(&case), "csat": survey.as_ref().map(csat::json) }))
}
