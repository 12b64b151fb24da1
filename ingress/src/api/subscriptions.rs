//! `/api/events/subscriptions…`, `/api/events/test-webhook`, `/api/events/webhook-logs`:
//! outbound webhook subscriptions (DESIGN.md §6) over shared::webhooks, tenant keys only.
//! Another tenant's subscription is "not found". The signing secret is in the answer to create
//! and rotate-secret only.

use chrono::{DateTime, Utc};
use hyper::{Method, Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use shared::{
    conversation::ConversationError,
    webhooks::{
        self, NewSubscription, SubscriptionUpdate, WebhookConfig, WebhookError, Webhooks,
        logs::LogQuery, subscriptions,
    },
};

use super::{Answer, ApiError, Call, input};

/// The routes of this module; `None` for paths it does not own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    List,
    Create,
    Get(String),
    Update(String),
    Delete(String),
    Rotate(String),
    Recover(String),
    Replay(String),
    TestWebhook,
    Logs,
}

impl Route {
    pub(crate) fn of(method: &Method, path: &str) -> Option<Result<Self, ApiError>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let m = method.clone();
        let id = |s: &&str| (*s).to_owned();
        let wrong = |allow: &'static str| Some(Err(ApiError::MethodNotAllowed(allow)));
        let route = match (segments.as_slice(), m) {
            (["events", "subscriptions"], Method::GET) => Self::List,
            (["events", "subscriptions"], Method::POST) => Self::Create,
            (["events", "subscriptions"], _) => return wrong("GET, POST"),
            (["events", "subscriptions", s], Method::GET) => Self::Get(id(s)),
            (["events", "subscriptions", s], Method::PATCH) => Self::Update(id(s)),
            (["events", "subscriptions", s], Method::DELETE) => Self::Delete(id(s)),
            (["events", "subscriptions", _], _) => return wrong("GET, PATCH, DELETE"),
            (["events", "subscriptions", s, "rotate-secret"], Method::POST) => Self::Rotate(id(s)),
            (["events", "subscriptions", s, "recover"], Method::POST) => Self::Recover(id(s)),
            (["events", "subscriptions", s, "replay"], Method::POST) => Self::Replay(id(s)),
            (
                [
                    "events",
                    "subscriptions",
                    _,
                    "rotate-secret" | "recover" | "replay",
                ],
                _,
            ) => {
                return wrong("POST");
            }
            (["events", "test-webhook"], Method::POST) => Self::TestWebhook,
            (["events", "test-webhook"], _) => return wrong("POST"),
            (["events", "webhook-logs"], Method::GET) => Self::Logs,
            (["events", "webhook-logs"], _) => return wrong("GET"),
            _ => return None,
        };
        Some(Ok(route))
    }
}

/// The delivery machinery over this API's stores, configured from `WEBHOOK_*`. Built per call:
/// the endpoints that need it (rotate, recover, replay, test-webhook) are rare, and a
/// process-wide copy would keep the stores of the first `Api` it saw (tests run many).
fn hooks(call: &Call<'_>) -> Result<Webhooks, ApiError> {
    let config = WebhookConfig::from_env()
        .map_err(|e| ApiError::Conversation(ConversationError::Pool(e.to_string())))?;
    let c = &call.api.conversations;
    Webhooks::new(c.db.clone(), c.outbox.queues().clone(), config).map_err(failed)
}

/// shared::webhooks' errors as API errors: Invalid → 400, Conflict → 409, else 503.
fn failed(error: WebhookError) -> ApiError {
    match error {
        WebhookError::Invalid(problem) => {
            let field = [
                "url",
                "event_types",
                "filters",
                "retry_schedule_secs",
                "description",
            ]
            .into_iter()
            .find(|f| problem.contains(f))
            .unwrap_or("body");
            ApiError::invalid(field, problem)
        }
        WebhookError::Conflict(m) => ApiError::Conversation(ConversationError::Conflict(m)),
        other => ApiError::Conversation(ConversationError::Pool(other.to_string())),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::Conversation(ConversationError::not_found("subscription", id))
}

pub(crate) async fn serve(
    call: &Call<'_>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?.to_owned();
    let db = &call.api.conversations.db;
    use Route::*;
    match route {
        List => {
            let subs = subscriptions::list(db, &tenant).await.map_err(failed)?;
            Ok(Answer(StatusCode::OK, json!({ "subscriptions": subs })))
        }
        Create => {
            let body = input::object(request).await?;
            let new = new_subscription(&body)?;
            let created = subscriptions::create(db, &tenant, new)
                .await
                .map_err(failed)?;
            let mut answer = json!(created.subscription);
            answer["secret"] = json!(created.secret);
            Ok(Answer(StatusCode::CREATED, answer))
        }
        Get(id) => {
            input::path_id(&id, "subscription")?;
            let sub = subscriptions::get(db, &tenant, &id).await.map_err(failed)?;
            Ok(Answer(
                StatusCode::OK,
                json!(sub.ok_or_else(|| not_found(&id))?),
            ))
        }
        Update(id) => {
            input::path_id(&id, "subscription")?;
            let body = input::object(request).await?;
            let update = subscription_update(&body)?;
            let sub = subscriptions::update(db, &tenant, &id, update)
                .await
                .map_err(failed)?;
            Ok(Answer(
                StatusCode::OK,
                json!(sub.ok_or_else(|| not_found(&id))?),
            ))
        }
        Delete(id) => {
            input::path_id(&id, "subscription")?;
            if subscriptions::delete(db, &tenant, &id)
                .await
                .map_err(failed)?
            {
                Ok(Answer(StatusCode::OK, json!({ "deleted": id })))
            } else {
                Err(not_found(&id))
            }
        }
        Rotate(id) => {
            input::path_id(&id, "subscription")?;
            let overlap = hooks(call)?.config().rotation_overlap;
            let secret = subscriptions::rotate_secret(db, &tenant, &id, overlap, Utc::now())
                .await
                .map_err(failed)?
                .ok_or_else(|| not_found(&id))?;
            Ok(Answer(
                StatusCode::OK,
                json!({ "id": id, "secret": secret, "previous_secret_valid_secs": overlap.as_secs() }),
            ))
        }
        Replay(id) => {
            input::path_id(&id, "subscription")?;
            let body = optional_object(request).await?;
            let since = since(&body)?.ok_or_else(|| ApiError::invalid("since", "is required"))?;
            let replayed = hooks(call)?
                .replay(&tenant, &id, since)
                .await
                .map_err(failed)?
                .ok_or_else(|| not_found(&id))?;
            Ok(Answer(
                StatusCode::ACCEPTED,
                json!({ "since": replayed.since, "event_ids": replayed.event_ids }),
            ))
        }
        Recover(id) => {
            input::path_id(&id, "subscription")?;
            let body = optional_object(request).await?;
            let since = since(&body)?;
            let recovered = hooks(call)?
                .recover(&tenant, &id, since)
                .await
                .map_err(failed)?
                .ok_or_else(|| not_found(&id))?;
            Ok(Answer(
                StatusCode::ACCEPTED,
                json!({
                    "subscription": recovered.subscription,
                    "since": recovered.since,
                    "event_ids": recovered.event_ids,
                }),
            ))
        }
        TestWebhook => {
            let body = input::object(request).await?;
            let url = input::string(&body, "url")?;
            let event_type = input::optional_string(&body, "event_type")?
                .unwrap_or_else(|| "message.ready".to_owned());
            let secret = input::optional_string(&body, "secret")?;
            let event = json!({
                "id": format!("evt_test_{}", ulid::Ulid::new()),
                "type": event_type,
                "version": "1.0",
                "source": "switchyard.api",
                "timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "tenant_id": tenant,
                "correlation_id": call.request_id,
                "data": body.get("data").cloned().unwrap_or_else(|| json!({ "test": true })),
            });
            let result = hooks(call)?
                .test_webhook(&url, &event, secret.as_deref())
                .await;
            Ok(Answer(StatusCode::OK, json!(result)))
        }
        Logs => {
            let pairs = input::query(request.uri().query());
            let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let query = LogQuery {
                subscription_id: get("subscription_id"),
                event_id: get("event_id"),
                before: get("before"),
                limit: input::query_number(&pairs, "limit", 50, 1..=500)?,
            };
            let logs = webhooks::logs::list(db, &tenant, &query)
                .await
                .map_err(failed)?;
            let next = if logs.len() as i64 == query.limit {
                logs.last().map(|l| json!(l.id))
            } else {
                None
            };
            Ok(Answer(
                StatusCode::OK,
                json!({ "logs": logs, "next_before": next }),
            ))
        }
    }
}

/// A JSON object body, or an empty one when there is no body at all.
async fn optional_object(request: Request<Incoming>) -> Result<Map<String, Value>, ApiError> {
    let empty = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .is_some_and(|v| v == "0")
        || (request.headers().get(hyper::header::CONTENT_TYPE).is_none()
            && request
                .headers()
                .get(hyper::header::TRANSFER_ENCODING)
                .is_none());
    if empty {
        return Ok(Map::new());
    }
    input::object(request).await
}

fn since(body: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match input::optional_string(body, "since")? {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time")),
    }
}

fn string_list(body: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, "must be a list of strings")),
        Some(_) => Err(ApiError::invalid(field, "must be a list of strings")),
    }
}

fn schedule(body: &Map<String, Value>) -> Result<Option<Option<Vec<i32>>>, ApiError> {
    const FIELD: &str = "retry_schedule_secs";
    match body.get(FIELD) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(preset)) => webhooks::schedule::preset(preset)
            .map(|s| Some(Some(s.to_vec())))
            .ok_or_else(|| ApiError::invalid(FIELD, "unknown preset (default, long)")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
            .collect::<Option<Vec<_>>>()
            .map(|s| Some(Some(s)))
            .ok_or_else(|| ApiError::invalid(FIELD, "must be a list of seconds")),
        Some(_) => Err(ApiError::invalid(
            FIELD,
            "must be a list of seconds or a preset",
        )),
    }
}

fn filters(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match body.get("filters") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::invalid("filters", "must be a JSON object")),
    }
}

fn active(body: &Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match body.get("active") {
        None | Some(Value::Null) => Ok(None),
        _ => input::boolean(body, "active").map(Some),
    }
}

fn new_subscription(body: &Map<String, Value>) -> Result<NewSubscription, ApiError> {
    Ok(NewSubscription {
        url: input::string(body, "url")?,
        event_types: string_list(body, "event_types")?
            .ok_or_else(|| ApiError::invalid("event_types", "is required (names or \"*\")"))?,
        filters: filters(body)?,
        description: input::optional_string(body, "description")?,
        retry_schedule_secs: schedule(body)?.flatten(),
        active: active(body)?,
    })
}

fn subscription_update(body: &Map<String, Value>) -> Result<SubscriptionUpdate, ApiError> {
    Ok(SubscriptionUpdate {
        url: input::optional_string(body, "url")?,
        event_types: string_list(body, "event_types")?,
        filters: filters(body)?,
        description: match body.get("description") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => Some(input::optional_string(body, "description")?),
        },
        retry_schedule_secs: schedule(body)?,
        active: active(body)?,
    })
}
