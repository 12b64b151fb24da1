//! `/api/…`: the agent desk and provisioning API, authenticated with per-tenant API keys
//! (`Authorization: Bearer sy_…`, hashed in the database).
//!
//! Tenant keys act on their own tenant only — another tenant's ids are simply not found:
//! sessions (list, read, agent replies, handoff), cases (read, resolve, close with disposition and
//! sentiment), CSAT answers, agents' availability, and the tenant's events. Operator keys
//! provision tenants, inboxes, agents and keys. Every write goes through shared::conversation in
//! one transaction with its events; publishing and follow-up jobs (deliveries) happen after the
//! commit, as in the workers. The request's correlation id names the step (`causation_id`); the
//! events carry the conversation's own correlation id, the one of its first webhook.
//!
//! Answers are JSON. Errors say what is wrong: 400 (with the field), 401, 403, 404, 405, 409 (an
//! illegal state transition or a conflicting state, with the states), 413, 415, 503.
//! [`handle`] is the whole API behind one function; the ingress router sends `/api/*` here.

mod auth;
mod broadcasting;
mod call;
mod cases;
mod errors;
mod event_types;
mod events;
mod failed_jobs;
mod input;
mod outbound;
mod provisioning;
mod sessions;
mod subscriptions;
mod webhook_events;

use hyper::{Method, Request, StatusCode, body::Incoming};
use serde_json::Value;
use shared::{conversation::Conversations, db::DbPool, events::Broadcaster, queue::Queues};

pub use errors::ApiError;

/// What the API handlers share.
#[derive(Clone)]
pub struct Api {
    pub conversations: Conversations,
    /// For `/api/failed-jobs` retries (re-enqueueing).
    pub queues: Queues,
    /// Signs gateway subscriptions (`/api/broadcasting/auth`).
    pub pusher: shared::pusher::PusherApp,
}

impl Api {
    /// With `BROADCAST_PREFIX` from the environment (the workers' broadcaster, same format).
    pub fn new(db: DbPool, queues: Queues) -> Self {
        let broadcaster = Broadcaster::from_env(queues.clone());
        Self::with_broadcaster(db, queues, broadcaster)
    }

    pub fn with_broadcaster(db: DbPool, queues: Queues, broadcaster: Broadcaster) -> Self {
        Self {
            conversations: Conversations::new(db, queues.clone(), broadcaster, "switchyard.api"),
            queues,
            pusher: shared::pusher::PusherApp::from_env(),
        }
    }
}

/// Whether `path` belongs to this API.
pub fn owns(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// A successful answer: status and JSON body.
pub struct Answer(pub StatusCode, pub Value);

/// One request in: the route matched, the key checked, the endpoint run, any error explained.
/// `request_id` is the request's correlation id.
pub async fn handle(api: &Api, request_id: &str, request: Request<Incoming>) -> Answer {
    match serve(api, request_id, request).await {
        Ok(answer) => answer,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(error = %error, "api request failed");
            }
            Answer(error.status(), error.body())
        }
    }
}

async fn serve(
    api: &Api,
    request_id: &str,
    request: Request<Incoming>,
) -> Result<Answer, ApiError> {
    // Webhook subscriptions and the events API (issue 7): their own routers.
    if let Some(route) = subscriptions::Route::of(request.method(), request.uri().path()) {
        let route = route?;
        let call = Call::authenticate(api, request_id, request.headers()).await?;
        return Box::pin(subscriptions::serve(&call, route, request)).await;
    }
    if let Some(route) = event_types::Route::of(request.method(), request.uri().path()) {
        let route = route?;
        let call = Call::authenticate(api, request_id, request.headers()).await?;
        return Box::pin(event_types::serve(&call, route, request)).await;
    }
    if let Some(route) = webhook_events::Route::of(request.method(), request.uri().path()) {
        let route = route?;
        let call = Call::authenticate(api, request_id, request.headers()).await?;
        return Box::pin(webhook_events::serve(&call, route, request.uri().query())).await;
    }
    // An inbox's outbound credentials and delivery resume (issue 5): its own router.
    if let Some(route) = outbound::Route::of(request.method(), request.uri().path()) {
        let route = route?;
        let call = Call::authenticate(api, request_id, request.headers()).await?;
        return Box::pin(outbound::serve(&call, route, request)).await;
    }
    let endpoint = Endpoint::of(request.method(), request.uri().path())?;
    let call = Call::authenticate(api, request_id, request.headers()).await?;
    use Endpoint::*;
    match endpoint {
        Sessions => sessions::list(&call, request.uri().query()).await,
        Session(id) => sessions::get(&call, &id).await,
        Reply(id) => sessions::reply(&call, &id, request).await,
        Handoff(id) => sessions::handoff(&call, &id).await,
        Case(id) => cases::get(&call, &id).await,
        ResolveCase(id) => cases::resolve(&call, &id).await,
        CloseCase(id) => cases::close(&call, &id, request).await,
        CsatResponse(id) => cases::csat_response(&call, &id, request).await,
        Events => events::list(&call, request.uri().query()).await,
        Agents => provisioning::own_agents(&call).await,
        AgentAvailability(id) => provisioning::availability(&call, &id, request).await,
        Tenants => provisioning::tenants(&call).await,
        CreateTenant => provisioning::create_tenant(&call, request).await,
        TenantInboxes(t) => provisioning::inboxes(&call, &t).await,
        CreateInbox(t) => provisioning::create_inbox(&call, &t, request).await,
        TenantAgents(t) => provisioning::agents(&call, &t).await,
        CreateAgent(t) => provisioning::create_agent(&call, &t, request).await,
        TenantKeys(t) => provisioning::keys(&call, &t).await,
        CreateKey(t) => provisioning::create_key(&call, &t, request).await,
        FailedJobs => failed_jobs::list(&call, request.uri().query()).await,
        FailedJob(id) => failed_jobs::show(&call, &id).await,
        ForgetFailedJob(id) => failed_jobs::forget_one(&call, &id).await,
        RetryFailedJobs => failed_jobs::retry(&call, request).await,
        ForgetFailedJobs => failed_jobs::forget(&call, request).await,
        BroadcastingAuth => broadcasting::auth(&call, request).await,
    }
}

/// One authenticated call.
pub(crate) struct Call<'a> {
    pub api: &'a Api,
    pub request_id: &'a str,
    pub principal: shared::conversation::api_keys::Principal,
}

impl<'a> Call<'a> {
    /// The call of whoever the request's key names (401 without a valid key).
    async fn authenticate(
        api: &'a Api,
        request_id: &'a str,
        headers: &hyper::HeaderMap,
    ) -> Result<Self, ApiError> {
        let principal = auth::authenticate(api, headers).await?;
        Ok(Self {
            api,
            request_id,
            principal,
        })
    }
}

/// The endpoints, with their path parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    Sessions,
    Session(String),
    Reply(String),
    Handoff(String),
    Case(String),
    ResolveCase(String),
    CloseCase(String),
    CsatResponse(String),
    Events,
    Agents,
    AgentAvailability(String),
    Tenants,
    CreateTenant,
    TenantInboxes(String),
    CreateInbox(String),
    TenantAgents(String),
    CreateAgent(String),
    TenantKeys(String),
    CreateKey(String),
    FailedJobs,
    FailedJob(String),
    ForgetFailedJob(String),
    RetryFailedJobs,
    ForgetFailedJobs,
    BroadcastingAuth,
}

impl Endpoint {
    fn of(method: &Method, path: &str) -> Result<Self, ApiError> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let (get, post) = (method == Method::GET, method == Method::POST);
        let id = |s: &&str| (*s).to_owned();
        let wrong = |allow: &'static str| Err(ApiError::MethodNotAllowed(allow));
        Ok(match segments.as_slice() {
            ["broadcasting", "auth"] if post => Self::BroadcastingAuth,
            ["broadcasting", "auth"] => return wrong("POST"),
            ["sessions"] if get => Self::Sessions,
            ["sessions"] => return wrong("GET"),
            ["sessions", s] if get => Self::Session(id(s)),
            ["sessions", _] => return wrong("GET"),
            ["sessions", s, "replies"] if post => Self::Reply(id(s)),
            ["sessions", s, "handoff"] if post => Self::Handoff(id(s)),
            ["sessions", _, "replies" | "handoff"] => return wrong("POST"),
            ["cases", c] if get => Self::Case(id(c)),
            ["cases", _] => return wrong("GET"),
            ["cases", c, "resolve"] if post => Self::ResolveCase(id(c)),
            ["cases", c, "close"] if post => Self::CloseCase(id(c)),
            ["cases", _, "resolve" | "close"] => return wrong("POST"),
            ["csat", c, "responses"] if post => Self::CsatResponse(id(c)),
            ["csat", _, "responses"] => return wrong("POST"),
            ["events"] if get => Self::Events,
            ["events"] => return wrong("GET"),
            ["agents"] if get => Self::Agents,
            ["agents"] => return wrong("GET"),
            ["agents", a, "availability"] if post => Self::AgentAvailability(id(a)),
            ["agents", _, "availability"] => return wrong("POST"),
            ["tenants"] if get => Self::Tenants,
            ["tenants"] if post => Self::CreateTenant,
            ["tenants"] => return wrong("GET, POST"),
            ["tenants", t, "inboxes"] if get => Self::TenantInboxes(id(t)),
            ["tenants", t, "inboxes"] if post => Self::CreateInbox(id(t)),
            ["tenants", t, "agents"] if get => Self::TenantAgents(id(t)),
            ["tenants", t, "agents"] if post => Self::CreateAgent(id(t)),
            ["tenants", t, "api-keys"] if get => Self::TenantKeys(id(t)),
            ["tenants", t, "api-keys"] if post => Self::CreateKey(id(t)),
            ["tenants", _, "inboxes" | "agents" | "api-keys"] => return wrong("GET, POST"),
            ["failed-jobs"] if get => Self::FailedJobs,
            ["failed-jobs"] => return wrong("GET"),
            ["failed-jobs", "retry"] if post => Self::RetryFailedJobs,
            ["failed-jobs", "forget"] if post => Self::ForgetFailedJobs,
            ["failed-jobs", "retry" | "forget"] => return wrong("POST"),
            ["failed-jobs", j] if get => Self::FailedJob(id(j)),
            ["failed-jobs", j] if method == Method::DELETE => Self::ForgetFailedJob(id(j)),
            ["failed-jobs", _] => return wrong("GET, DELETE"),
            _ => return Err(ApiError::UnknownRoute),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_their_paths_and_methods() {
        let (get, post) = (Method::GET, Method::POST);
        assert_eq!(
            Endpoint::of(&get, "/api/sessions").unwrap(),
            Endpoint::Sessions
        );
        assert_eq!(
            Endpoint::of(&post, "/api/sessions/ses_1/replies/").unwrap(),
            Endpoint::Reply("ses_1".into())
        );
        assert_eq!(
            Endpoint::of(&post, "/api/cases/cas_1/close").unwrap(),
            Endpoint::CloseCase("cas_1".into())
        );
        assert_eq!(
            Endpoint::of(&post, "/api/tenants/ten_1/api-keys").unwrap(),
            Endpoint::CreateKey("ten_1".into())
        );
        assert!(matches!(
            Endpoint::of(&get, "/api/cases/cas_1/close"),
            Err(ApiError::MethodNotAllowed("POST"))
        ));
        assert!(matches!(
            Endpoint::of(&get, "/api/nope"),
            Err(ApiError::UnknownRoute)
        ));
        assert!(owns("/api/sessions") && owns("/api") && !owns("/apis") && !owns("/webhooks/meta"));
    }
}
