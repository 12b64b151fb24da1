//! Custom event types (issue 7) over shared::events::custom, tenant keys only:
//! `GET|POST /api/events/types`, `GET|PUT|DELETE /api/events/types/{name}` (DELETE archives),
//! and `POST /api/events` to publish one. Another tenant's type is "not found" (and cannot be
//! published: it is not registered for the caller).
//!
//! `POST /api/events` `{"type", "data", "entity"?: {"type", "id"}, "idempotency_key"?}` (or an
//! `Idempotency-Key` header, as for agent replies): 201 with the logged event; a repeated key
//! answers 200 with the first one. `data` that breaks the type's schema is a 422 listing every
//! violation with its JSON pointer into the body (`errors: [{pointer, message, schema_path}]`).

use hyper::{HeaderMap, Method, Request, StatusCode, body::Incoming};
use serde_json::{Map, Value, json};
use shared::{
    conversation::ConversationError,
    events::custom::{
        self, CustomEventError, Entity, EventTypeUpdate, NewEventType, Publish, store,
    },
};

use super::{Answer, ApiError, Call, input};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    List,
    Create,
    Get(String),
    Update(String),
    Archive(String),
    Publish,
}

impl Route {
    pub(crate) fn of(method: &Method, path: &str) -> Option<Result<Self, ApiError>> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let wrong = |allow: &'static str| Some(Err(ApiError::MethodNotAllowed(allow)));
        let route = match (segments.as_slice(), method.clone()) {
            (["events"], Method::POST) => Self::Publish,
            (["events"], m) if m != Method::GET => return wrong("GET, POST"),
            (["events", "types"], Method::GET) => Self::List,
            (["events", "types"], Method::POST) => Self::Create,
            (["events", "types"], _) => return wrong("GET, POST"),
            (["events", "types", n], Method::GET) => Self::Get((*n).to_owned()),
            (["events", "types", n], Method::PUT) => Self::Update((*n).to_owned()),
            (["events", "types", n], Method::DELETE) => Self::Archive((*n).to_owned()),
            (["events", "types", _], _) => return wrong("GET, PUT, DELETE"),
            _ => return None,
        };
        Some(Ok(route))
    }
}

/// shared::events::custom's errors as API errors (a schema mismatch is answered, not raised:
/// see [`mismatch`]).
fn failed(error: CustomEventError) -> ApiError {
    match error {
        CustomEventError::Invalid { field, problem } => ApiError::invalid(field, problem),
        CustomEventError::Duplicate(_) => {
            ApiError::Conversation(ConversationError::Conflict(error.to_string()))
        }
        CustomEventError::NotFound(name) => not_found(&name),
        CustomEventError::SchemaMismatch { .. } => ApiError::invalid("data", error.to_string()),
        CustomEventError::KeyReused => ApiError::invalid("idempotency_key", error.to_string()),
        CustomEventError::Event(e) => {
            ApiError::Conversation(ConversationError::Pool(e.to_string()))
        }
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::Conversation(ConversationError::not_found("event type", name))
}

/// A path name that cannot be a type is simply not found.
fn path_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= custom::name::MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
    if ok { Ok(()) } else { Err(not_found(name)) }
}

/// The 422 answers: the error body of every other refusal, plus the violations of a schema
/// mismatch.
fn mismatch(error: &CustomEventError) -> Option<Answer> {
    let body = match error {
        CustomEventError::SchemaMismatch { violations, .. } => json!({
            "error": error.to_string(),
            "code": "schema_mismatch",
            "field": "data",
            "errors": violations,
        }),
        CustomEventError::KeyReused => json!({
            "error": error.to_string(),
            "code": "idempotency_key_reused",
            "field": "idempotency_key",
        }),
        _ => return None,
    };
    Some(Answer(StatusCode::UNPROCESSABLE_ENTITY, body))
}

pub(crate) async fn serve(
    call: &Call<'_>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    let tenant = call.tenant()?.to_owned();
    let db = &call.api.conversations.db;
    match route {
        Route::List => {
            let pairs = input::query(request.uri().query());
            let archived = pairs.iter().any(|(k, v)| k == "archived" && v == "true");
            let list = store::list(db, &tenant, archived).await.map_err(failed)?;
            Ok(Answer(StatusCode::OK, json!({ "event_types": list })))
        }
        Route::Create => {
            let body = input::object(request).await?;
            let new = NewEventType {
                name: input::string(&body, "name")?,
                description: input::optional_string(&body, "description")?,
                schema: body
                    .get("schema")
                    .cloned()
                    .ok_or_else(|| ApiError::invalid("schema", "is required"))?,
            };
            let created = store::create(db, &tenant, new).await.map_err(failed)?;
            Ok(Answer(StatusCode::CREATED, json!(created)))
        }
        Route::Get(name) => {
            path_name(&name)?;
            let found = store::get(db, &tenant, &name).await.map_err(failed)?;
            Ok(Answer(
                StatusCode::OK,
                json!(found.ok_or_else(|| not_found(&name))?),
            ))
        }
        Route::Update(name) => {
            path_name(&name)?;
            let body = input::object(request).await?;
            let update = EventTypeUpdate {
                description: match body.get("description") {
                    None => None,
                    Some(_) => Some(input::optional_string(&body, "description")?),
                },
                schema: body.get("schema").filter(|s| !s.is_null()).cloned(),
                archived: match body.get("archived") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(input::boolean(&body, "archived")?),
                },
            };
            let updated = store::update(db, &tenant, &name, update)
                .await
                .map_err(failed)?;
            Ok(Answer(
                StatusCode::OK,
                json!(updated.ok_or_else(|| not_found(&name))?),
            ))
        }
        Route::Archive(name) => {
            path_name(&name)?;
            let archived = store::archive(db, &tenant, &name).await.map_err(failed)?;
            Ok(Answer(
                StatusCode::OK,
                json!(archived.ok_or_else(|| not_found(&name))?),
            ))
        }
        Route::Publish => publish(call, &tenant, request).await,
    }
}

async fn publish(
    call: &Call<'_>,
    tenant: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    let header_key = idempotency_header(request.headers())?;
    let body = input::object(request).await?;
    let body_key = input::optional_string(&body, "idempotency_key")?;
    let idempotency_key = match (header_key, body_key) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                "idempotency_key",
                "differs from the Idempotency-Key header",
            ));
        }
        (h, b) => h.or(b),
    };
    let request = Publish {
        event_type: input::string(&body, "type")?,
        data: body
            .get("data")
            .cloned()
            .ok_or_else(|| ApiError::invalid("data", "is required"))?,
        entity: entity(&body)?,
        idempotency_key,
        correlation_id: call.request_id.to_owned(),
        causation_id: format!("req:{}", call.request_id),
    };
    let published =
        match custom::publish::publish(&call.api.conversations.db, tenant, request).await {
            Ok(published) => published,
            Err(error) => return mismatch(&error).ok_or_else(|| failed(error)),
        };
    call.api.conversations.settle(published.effects).await;
    let status = if published.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let e = published.event;
    Ok(Answer(
        status,
        json!({
            "seq": e.seq,
            "event": e.envelope,
            "aggregate": { "type": e.aggregate_type, "id": e.aggregate_id, "version": e.aggregate_version },
            "channels": e.channels,
            "replayed": published.replayed,
        }),
    ))
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))
}

fn entity(body: &Map<String, Value>) -> Result<Option<Entity>, ApiError> {
    match body.get("entity") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(entity)) => {
            let field = |name: &str| match entity.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    "entity",
                    format!("{name} must be a string"),
                )),
            };
            Ok(Some(Entity {
                entity_type: field("type")?,
                id: field("id")?,
            }))
        }
        Some(_) => Err(ApiError::invalid(
            "entity",
            "must be an object {\"type\", \"id\"}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_paths_and_methods() {
        let of = |m: Method, p: &str| Route::of(&m, p).map(|r| r.map_err(|e| e.to_string()));
        assert_eq!(of(Method::POST, "/api/events"), Some(Ok(Route::Publish)));
        assert_eq!(
            of(Method::GET, "/api/events"),
            None,
            "listing is the events API's"
        );
        assert!(matches!(of(Method::PUT, "/api/events"), Some(Err(_))));
        assert_eq!(of(Method::GET, "/api/events/types/"), Some(Ok(Route::List)));
        assert_eq!(
            of(Method::PUT, "/api/events/types/order.created"),
            Some(Ok(Route::Update("order.created".into())))
        );
        assert_eq!(
            of(Method::DELETE, "/api/events/types/order.created"),
            Some(Ok(Route::Archive("order.created".into())))
        );
        assert!(matches!(
            of(Method::PATCH, "/api/events/types/x.y"),
            Some(Err(_))
        ));
        assert_eq!(of(Method::GET, "/api/events/schemas"), None);
    }
}
