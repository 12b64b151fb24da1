//! `GET /api/events?after=<seq>&limit=<n>`: the caller's tenant's event log, oldest first, each
//! event in its envelope with its log position (`seq`) and the channels it was broadcast on.

use hyper::StatusCode;
use serde_json::json;
use shared::events::log;

use super::{Answer, ApiError, Call, input};

pub async fn list(call: &Call<'_>, query: Option<&str>) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?;
    let pairs = input::query(query);
    let after = input::query_number(&pairs, "after", 0, 0..=i64::MAX)?;
    let limit = input::query_number(&pairs, "limit", 100, 1..=1000)?;
    let mut conn = call.conn().await?;
    let events = log::list(&mut conn, tenant, after, limit)
        .await
        .map_err(|e| ApiError::Conversation(e.into()))?;
    let next = events.last().map(|e| e.seq);
    let events: Vec<_> = events
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "event": e.envelope,
                "aggregate": { "type": e.aggregate_type, "id": e.aggregate_id, "version": e.aggregate_version },
                "channels": e.channels,
            })
        })
        .collect();
    Ok(Answer(
        StatusCode::OK,
        json!({ "events": events, "next_after": next }),
    ))
}
