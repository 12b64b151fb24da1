//! CSAT: after a case closes, the customer is asked to rate it from 1 to 5 (`csat.started`, with
//! the question sent as a system message); their answer — over the API, or as a reply "1"–"5"
//! on the channel — is recorded once (`csat.responded`).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::{
    Case, ConversationError, CsatSurvey, Session, Tx,
    messages::{NewOutbound, Sender},
    partial,
    state::{CsatState, StateMachine, parse_state, transition},
};
use crate::{
    db::schema::csat_surveys,
    events::{AgentType, NewEvent, Route, types},
    inboxes::new_id,
};

/// The question when the inbox has none of its own.
pub const DEFAULT_PROMPT: &str =
    "How did we do? Reply with a number from 1 (poor) to 5 (excellent).";

/// Opens the survey of a closed case and sends its question.
pub async fn start(
    tx: &mut Tx,
    case: &Case,
    session: &Session,
) -> Result<CsatSurvey, ConversationError> {
    let survey: CsatSurvey = diesel::insert_into(csat_surveys::table)
        .values((
            csat_surveys::id.eq(new_id("csa")),
            csat_surveys::tenant_id.eq(&case.tenant_id),
            csat_surveys::case_id.eq(&case.id),
            csat_surveys::session_id.eq(&session.id),
            csat_surveys::state.eq(CsatState::Sent.as_str()),
        ))
        .returning(CsatSurvey::as_returning())
        .get_result(tx.conn())
        .await?;
    let settings = super::settings::load(tx.conn(), &session.inbox_id).await?;
    let prompt = settings
        .csat_prompt
        .unwrap_or_else(|| DEFAULT_PROMPT.to_owned());
    emit(
        tx,
        types::CSAT_STARTED,
        &survey,
        session,
        json!({ "prompt": prompt }),
    )
    .await?;
    let contact = super::contacts::get(tx, &session.contact_id).await?;
    let inbox_kind = super::directory::inbox_kind(tx.conn(), &session.inbox_id).await?;
    let question = NewOutbound {
        sender: Sender::System,
        body: prompt,
        idempotency_key: None,
        payload: json!({ "csat_survey_id": survey.id }),
    };
    super::messages::store_outbound(tx, session, &contact, inbox_kind, question).await?;
    Ok(survey)
}

/// The session's survey still waiting for an answer, if any.
pub async fn pending(
    tx: &mut Tx,
    session_id: &str,
) -> Result<Option<CsatSurvey>, ConversationError> {
    Ok(csat_surveys::table
        .filter(csat_surveys::session_id.eq(session_id))
        .filter(partial::SurveyIsSent)
        .order(csat_surveys::created_at.desc())
        .select(CsatSurvey::as_select())
        .first(tx.conn())
        .await
        .optional()?)
}

/// A score of 1 to 5 and an optional comment of at most 2,000 characters.
pub fn validate(
    score: i64,
    comment: Option<&str>,
) -> Result<(i32, Option<String>), ConversationError> {
    if !(1..=5).contains(&score) {
        return Err(ConversationError::invalid(
            "score",
            "must be an integer from 1 to 5",
        ));
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(ConversationError::invalid(
            "comment",
            "must be at most 2000 characters",
        ));
    }
    Ok((score as i32, comment.map(str::to_owned)))
}

/// A customer's channel reply read as a score: "4", " 5 ", "3/5", "⭐⭐⭐⭐".
pub fn score_from_text(text: &str) -> Option<i64> {
    let text = text.trim();
    let stars = text.chars().filter(|c| *c == '⭐').count();
    if stars > 0 && text.chars().all(|c| c == '⭐' || c.is_whitespace()) {
        return (stars <= 5).then_some(stars as i64);
    }
    let head = text.strip_suffix("/5").unwrap_or(text).trim();
    head.parse::<i64>().ok().filter(|n| (1..=5).contains(n))
}

/// Records the answer to the tenant's survey `id` (once: a second answer is refused).
pub async fn respond(
    tx: &mut Tx,
    id: &str,
    score: i64,
    comment: Option<&str>,
) -> Result<CsatSurvey, ConversationError> {
    let (score, comment) = validate(score, comment)?;
    let tenant_id = tx.tenant_id().to_owned();
    let survey: CsatSurvey = csat_surveys::table
        .filter(csat_surveys::id.eq(id))
        .filter(csat_surveys::tenant_id.eq(tenant_id))
        .select(CsatSurvey::as_select())
        .for_no_key_update()
        .first(tx.conn())
        .await
        .optional()?
        .ok_or_else(|| ConversationError::not_found("csat survey", id))?;
    let from: CsatState = parse_state(&survey.state)?;
    transition(&survey.id, from, CsatState::Responded)?;
    let survey: CsatSurvey = diesel::update(csat_surveys::table.find(&survey.id))
        .set((
            csat_surveys::state.eq(CsatState::Responded.as_str()),
            csat_surveys::score.eq(Some(score)),
            csat_surveys::comment.eq(comment),
            csat_surveys::responded_at.eq(Some(chrono::Utc::now())),
        ))
        .returning(CsatSurvey::as_returning())
        .get_result(tx.conn())
        .await?;
    let session = super::sessions::get(tx, &survey.session_id).await?;
    emit(tx, types::CSAT_RESPONDED, &survey, &session, json!({})).await?;
    Ok(survey)
}

async fn emit(
    tx: &mut Tx,
    event: crate::events::EventType,
    survey: &CsatSurvey,
    session: &Session,
    extra: Value,
) -> Result<(), ConversationError> {
    let mut data = json!({ "csat": json(survey), "session": super::sessions::json(session) });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    tx.emit(NewEvent {
        event_type: event,
        aggregate_type: "csat_survey",
        aggregate_id: survey.id.clone(),
        correlation_id: session.correlation_id.clone(),
        data,
        route: Route::session(&session.id, AgentType::Live).with_case(&survey.case_id),
    })
    .await
}

pub fn json(survey: &CsatSurvey) -> Value {
    json!({
        "id": survey.id,
        "case_id": survey.case_id,
        "session_id": survey.session_id,
        "state": survey.state,
        "score": survey.score,
        "comment": survey.comment,
        "created_at": survey.created_at,
        "responded_at": survey.responded_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_channel_replies() {
        for (text, expected) in [
            ("5", Some(5)),
            (" 3 ", Some(3)),
            ("4/5", Some(4)),
            ("⭐⭐", Some(2)),
            ("0", None),
            ("6", None),
            ("great", None),
            ("5 stars", None),
        ] {
            assert_eq!(score_from_text(text), expected, "{text:?}");
        }
    }

    #[test]
    fn answers_are_validated() {
        assert!(validate(0, None).is_err());
        assert!(validate(6, None).is_err());
        assert!(validate(5, Some(&"x".repeat(2001))).is_err());
        assert_eq!(validate(4, Some("  ")).unwrap(), (4, None));
    }
}
