//! `/api/failed-jobs` with an operator key: the on-call CLI's `worker failed …` over HTTP, calling
//! the same library functions (`shared::queue::failed`).
//!
//! - `GET /api/failed-jobs?queue=&kind=&since=<RFC 3339>&limit=<1..1000, 50>&cursor=<from
//!   next_cursor>`: newest first, `{"failed_jobs": [...], "total": n, "next_cursor": "…"|null}`.
//! - `GET /api/failed-jobs/{id}`: one failed job (payload, full error, attempts, correlation id).
//! - `POST /api/failed-jobs/retry` `{"ids": [...]}` or `{"all": true, "queue"?, "kind"?,
//!   "since"?}`, plus `"dry_run"?`: the retry summary (`selected`, `retried`, `by_queue`,
//!   `skipped`, `not_found`, `vanished`). 200, or 404 when every id given was unknown.
//! - `POST /api/failed-jobs/forget` `{"ids": [...]}` and `DELETE /api/failed-jobs/{id}`:
//!   `{"forgotten": [...], "not_found": [...]}`; 404 when nothing was forgotten.
//!
//! Ids are job ids (26-character ULIDs) or `entry-<stream id>`; anything else is a 400.

use chrono::{DateTime, Utc};
use hyper::{Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use shared::{
    conversation::ConversationError,
    queue::{
        JobId, QueueName,
        failed::{FailedFilter, FailedJobs, RetrySelection},
    },
};

use super::{Answer, ApiError, Call, input};

/// Ids per request for retry and forget by ids.
const MAX_IDS: usize = 1_000;

fn store(call: &Call<'_>) -> FailedJobs {
    FailedJobs::new(call.api.conversations.db.clone())
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Conversation(ConversationError::Pool(e.to_string()))
}

/// A failed job's id: a job id or `entry-<ms>-<seq>`.
fn valid_id(text: &str) -> bool {
    let entry = text
        .strip_prefix("entry-")
        .and_then(|id| id.split_once('-'))
        .is_some_and(|(ms, seq)| {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
        });
    entry || JobId::parse(text).is_some()
}

fn check_id(id: &str, field: &str) -> Result<(), ApiError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{id:?} is not a failed-job id (a 26-character job id, or entry-<stream id>)"),
        ))
    }
}

fn queue_filter(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(q) => QueueName::new(&q)
            .map(|q| Some(q.as_str().to_owned()))
            .map_err(|e| ApiError::invalid("queue", e.to_string())),
    }
}

fn since_filter(value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value {
        None => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time")),
    }
}

fn filter(
    queue: Option<String>,
    kind: Option<String>,
    since: Option<String>,
) -> Result<FailedFilter, ApiError> {
    let mut filter = FailedFilter::default();
    if let Some(q) = queue_filter(queue)? {
        filter = filter.queue(q);
    }
    if let Some(k) = kind.filter(|k| !k.is_empty()) {
        filter = filter.kind(k);
    }
    if let Some(s) = since_filter(since)? {
        filter = filter.since(s);
    }
    Ok(filter)
}

pub async fn list(call: &Call<'_>, query: Option<&str>) -> Result<Answer, ApiError> {
    call.operator()?;
    let pairs = input::query(query);
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let filter = filter(param("queue"), param("kind"), param("since"))?;
    let limit = input::query_number(&pairs, "limit", 50, 1..=1000)?;
    let offset = input::query_number(&pairs, "cursor", 0, 0..=i64::MAX)?;
    let failed = store(call);
    let rows = failed
        .search(&filter, limit, offset)
        .await
        .map_err(unavailable)?;
    let total = failed.count_matching(&filter).await.map_err(unavailable)?;
    let next = offset + rows.len() as i64;
    let next_cursor = (next < total).then(|| next.to_string());
    Ok(Answer(
        StatusCode::OK,
        json!({ "failed_jobs": rows, "total": total, "next_cursor": next_cursor }),
    ))
}

pub async fn show(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    call.operator()?;
    check_id(id, "id")?;
    match store(call).find(id).await.map_err(unavailable)? {
        Some(job) => Ok(Answer(StatusCode::OK, json!({ "failed_job": job }))),
        None => Err(ConversationError::not_found("failed job", id).into()),
    }
}

/// `"ids"`: a non-empty array of valid ids.
fn ids(body: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let Some(Value::Array(items)) = body.get("ids") else {
        return Err(ApiError::invalid(
            "ids",
            "must be an array of failed-job ids",
        ));
    };
    if items.is_empty() || items.len() > MAX_IDS {
        return Err(ApiError::invalid(
            "ids",
            format!("must hold 1 to {MAX_IDS} ids"),
        ));
    }
    items
        .iter()
        .map(|v| {
            let id = v
                .as_str()
                .ok_or_else(|| ApiError::invalid("ids", "must hold strings"))?;
            check_id(id, "ids")?;
            Ok(id.to_owned())
        })
        .collect()
}

fn optional_bool(body: &Map<String, Value>, field: &str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(_) => input::boolean(body, field),
    }
}

pub async fn retry(call: &Call<'_>, request: Request<Incoming>) -> Result<Answer, ApiError> {
    call.operator()?;
    let body = input::object(request).await?;
    let dry_run = optional_bool(&body, "dry_run")?;
    let all = optional_bool(&body, "all")?;
    let has_filters = ["queue", "kind", "since"]
        .iter()
        .any(|f| !matches!(body.get(*f), None | Some(Value::Null)));
    let selection = match (body.contains_key("ids"), all) {
        (true, true) => return Err(ApiError::invalid("ids", "give ids or all, not both")),
        (true, false) if has_filters => {
            return Err(ApiError::invalid(
                "ids",
                "filters (queue, kind, since) go with all, not with ids",
            ));
        }
        (true, false) => RetrySelection::Ids(ids(&body)?),
        (false, true) => RetrySelection::Matching(filter(
            input::optional_string(&body, "queue")?,
            input::optional_string(&body, "kind")?,
            input::optional_string(&body, "since")?,
        )?),
        (false, false) => {
            return Err(ApiError::invalid(
                "ids",
                "is required (or \"all\": true with optional filters)",
            ));
        }
    };
    let summary = store(call)
        .retry(&call.api.queues, &selection, dry_run, &|_| {})
        .await
        .map_err(unavailable)?;
    let status = if matches!(selection, RetrySelection::Ids(_))
        && summary.not_found.len() as u64 == summary.selected
    {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut answer = json!({ "retry": summary });
    if status == StatusCode::NOT_FOUND {
        answer["error"] = json!("no failed job with the ids given");
        answer["code"] = json!("not_found");
    }
    Ok(Answer(status, answer))
}

async fn forget_ids(call: &Call<'_>, ids: Vec<String>) -> Result<Answer, ApiError> {
    let summary = store(call).forget_many(&ids).await.map_err(unavailable)?;
    if summary.forgotten.is_empty() {
        let mut body = json!({ "error": "no failed job with the ids given", "code": "not_found", "field": "ids" });
        body["forget"] = json!(summary);
        return Ok(Answer(StatusCode::NOT_FOUND, body));
    }
    Ok(Answer(StatusCode::OK, json!({ "forget": summary })))
}

pub async fn forget(call: &Call<'_>, request: Request<Incoming>) -> Result<Answer, ApiError> {
    call.operator()?;
    let body = input::object(request).await?;
    forget_ids(call, ids(&body)?).await
}

pub async fn forget_one(call: &Call<'_>, id: &str) -> Result<Answer, ApiError> {
    call.operator()?;
    check_id(id, "id")?;
    forget_ids(call, vec![id.to_owned()]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_job_ids_or_entries() {
        assert!(valid_id("01JD7ZQ4X8T5V9M2N6B3C1K0RA"));
        assert!(valid_id("entry-1700000000000-0"));
        for bad in ["", "nope", "entry-", "entry-12", "entry-a-b", "01JD7ZQ4X8"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
