//! Sessions: list and read them, reply as the case's agent (`message.reply_ready`, then the
//! `deliveries` queue), and hand a bot session to the agents.
//!
//! `POST /api/sessions/{id}/replies` `{"agent_id", "text"}` with an optional `Idempotency-Key`
//! header: a repeated key returns the reply already stored (200) instead of sending it again
//! (201). `POST /api/sessions/{id}/handoff` moves a bot session to the queue (409 when it is
//! already live or closed).

use hyper::{Request, StatusCode, body::Incoming};
use serde_json::json;
use shared::conversation::{
    handoff::{self, Trigger},
    messages, queries, replies, sessions,
    state::{SessionState, StateMachine},
};

use super::{Answer, ApiError, Call, input};

pub async fn list(call: &Call<'_>, query: Option<&str>) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?;
    let pairs = input::query(query);
    let limit = input::query_number(&pairs, "limit", 50, 1..=500)?;
    let state = match pairs.iter().find(|(k, _)| k == "state") {
        None => None,
        Some((_, v)) => Some(
            SessionState::parse(v)
                .ok_or_else(|| ApiError::invalid("state", "must be one of bot, live, closed"))?,
        ),
    };
    let mut conn = call.conn().await?;
    let list = queries::sessions(&mut conn, tenant, state, limit).await?;
    Ok(Answer(StatusCode::OK, json!({ "sessions": list })))
}

pub async fn get(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?;
    input::path_id(id, "session")?;
    let mut conn = call.conn().await?;
    Ok(Answer(
        StatusCode::OK,
        queries::session(&mut conn, tenant, id, 100).await?,
    ))
}

pub async fn reply(
    call: &Call<'_>,
    id: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "session")?;
    let key = request
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    if key
        .as_deref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 200 characters",
        ));
    }
    let body = input::object(request).await?;
    let reply = replies::AgentReply {
        agent_id: input::string(&body, "agent_id")?,
        text: input::string(&body, "text")?,
        idempotency_key: key,
    };
    let mut tx = call.begin().await?;
    let result = replies::reply(&mut tx, id, &reply).await;
    let (message, created) = call.commit(tx, result).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Answer(
        status,
        json!({ "message": messages::json(&message) }),
    ))
}

pub async fn handoff(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    call.tenant()?;
    input::path_id(id, "session")?;
    let mut tx = call.begin().await?;
    let result = async {
        let session = sessions::lock(&mut tx, id).await?;
        handoff::hand_off(&mut tx, &session, Trigger::Api, None).await
    }
    .await;
    let done = call.commit(tx, result).await?;
    Ok(Answer(
        StatusCode::CREATED,
        json!({
            "session": sessions::json(&done.session),
            "case": shared::conversation::cases::json(&done.case),
            "queue_item": handoff::queue_item_json(&done.queue_item),
            "assigned_agent_id": done.assigned_agent,
        }),
    ))
}
