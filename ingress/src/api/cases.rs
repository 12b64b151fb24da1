//! Cases and CSAT: read a case, resolve it, close it with a disposition and a sentiment (the
//! case's remaining steps, `case.closed`, the session back to the bot, the CSAT survey out),
//! and record the customer's CSAT answer.
//!
//! `POST /api/cases/{id}/close` `{"disposition": "1–100 chars", "sentiment":
//! "positive"|"neutral"|"negative"}`; `POST /api/csat/{id}/responses` `{"score": 1–5,
//! "comment"?}`. Moves the state machine forbids are 409 with the states.

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;
use shared::conversation::{
    cases::{self, Closing},
    csat, queries, sessions,
    state::CaseState,
};

use super::{Answer, ApiError, Call, input};

pub async fn get(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?;
    input::path_id(id, "case")?;
    let mut conn = call.conn().await?;
    Ok(Answer(
        StatusCode::OK,
        queries::case(&mut conn, tenant, id).await?,
    ))
}

pub async fn resolve(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "case")?;
    let mut tx = call.begin().await?;
    let result = async {
        let session_id = cases::get(&mut tx, id).await?.session_id;
        let session = sessions::lock(&mut tx, &session_id).await?;
        let case = cases::lock(&mut tx, id).await?;
        cases::advance(&mut tx, &case, &session, CaseState::Resolved).await
    }
    .await;
    let case = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::OK,
        json!({ "case": cases::json(&case) }),
    ))
}

pub async fn close(
    call: &Call<'_>,
    id: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "case")?;
    let body = input::object(request).await?;
    let closing = Closing::new(
        &input::string(&body, "disposition")?,
        &input::string(&body, "sentiment")?,
    )?;
    let mut tx = call.begin().await?;
    let result = cases::close(&mut tx, id, &closing).await;
    let closed = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::OK,
        json!({
            "case": cases::json(&closed.case),
            "session": sessions::json(&closed.session),
            "csat": csat::json(&closed.survey),
        }),
    ))
}

pub async fn csat_response(
    call: &Call<'_>,
    id: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "csat survey")?;
    let body = input::object(request).await?;
    let score = input::integer(&body, "score")?;
    let comment = input::optional_string(&body, "comment")?;
    let mut tx = call.begin().await?;
    let result = csat::respond(&mut tx, id, score, comment.as_deref()).await;
    let survey = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::OK,
        json!({ "csat": csat::json(&survey) }),
    ))
}
