//! The router: matches a request to its route, runs it, and turns the result into the answer.
//!
//! One function per route lives in a file per channel (`meta`, `waha`, `email`, `widget`) plus
//! [`crate::health`]. This module also does what every route shares: the correlation id (taken
//! from `X-Correlation-Id` or `X-Request-Id` when well-formed, else a new ULID; echoed back), the
//! request span, the `ingress_requests_total` / `ingress_rejected_total` metrics, the log line of
//! each refusal with its reason, and the error → status + JSON mapping.

pub mod email;
mod mailgun;
mod mailgun_form;
pub mod meta;
mod meta_messenger;
mod meta_whatsapp;
mod postmark;
pub mod waha;
pub mod widget;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, body::Incoming, header};
use shared::inboxes::{Inbox, InboxKind, InboxLookup};
use tracing::Instrument as _;

use crate::{State, errors::IngressError, health, metrics};

/// What a route answers when it succeeds.
pub enum Reply {
    Json(StatusCode, serde_json::Value),
    /// A webhook taken: 200 with what became of its updates (written without a JSON tree, as
    /// this is every webhook's answer).
    Accepted(crate::intake::Outcome),
    Text(StatusCode, &'static str, String),
    Empty(StatusCode),
}

/// Per-request facts every route may need.
pub struct Ctx {
    pub correlation_id: String,
    /// RFC 3339, when ingress received the request.
    pub received_at: String,
}

/// The routes, with their path parameters.
#[derive(Clone, Debug)]
enum Route {
    MetaVerify,
    MetaEvents,
    Waha(String),
    Email(String),
    Widget(String),
    WidgetPreflight,
    Healthz,
    Readyz,
    Metrics,
    WrongMethod(&'static str, &'static str),
    Unknown,
}

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let post = method == Method::POST;
        match segments.as_slice() {
            ["webhooks", "meta"] if method == Method::GET => Self::MetaVerify,
            ["webhooks", "meta"] if post => Self::MetaEvents,
            ["webhooks", "meta"] => Self::WrongMethod("/webhooks/meta", "GET, POST"),
            ["webhooks", "waha", inbox] if post => Self::Waha((*inbox).to_owned()),
            ["webhooks", "waha", _] => Self::WrongMethod("/webhooks/waha/{inbox}", "POST"),
            ["webhooks", "email", inbox] if post => Self::Email((*inbox).to_owned()),
            ["webhooks", "email", _] => Self::WrongMethod("/webhooks/email/{inbox}", "POST"),
            ["widget", inbox, "messages"] if post => Self::Widget((*inbox).to_owned()),
            ["widget", _, "messages"] if method == Method::OPTIONS => Self::WidgetPreflight,
            ["widget", _, "messages"] => Self::WrongMethod(widget::ROUTE, "POST, OPTIONS"),
            ["healthz"] => Self::Healthz,
            ["readyz"] => Self::Readyz,
            ["metrics"] => Self::Metrics,
            _ => Self::Unknown,
        }
    }

    /// The route template: the `route` label of the request metric (bounded cardinality).
    fn label(&self) -> &'static str {
        match self {
            Self::MetaVerify | Self::MetaEvents => "/webhooks/meta",
            Self::Waha(_) => "/webhooks/waha/{inbox}",
            Self::Email(_) => "/webhooks/email/{inbox}",
            Self::Widget(_) | Self::WidgetPreflight => widget::ROUTE,
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::Metrics => "/metrics",
            Self::WrongMethod(label, _) => label,
            Self::Unknown => "unknown",
        }
    }
}

/// Answers one request; never fails (every error becomes its answer).
pub async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if crate::api::owns(request.uri().path()) {
        return serve_api(&state, request).await;
    }
    let route = Route::of(request.method(), request.uri().path());
    let ctx = Ctx {
        correlation_id: correlation_id(request.headers()),
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let span = tracing::info_span!(
        "request",
        route = route.label(),
        correlation_id = ctx.correlation_id.as_str()
    );
    async move {
        let result = dispatch(&state, &ctx, route.clone(), request).await;
        let mut response = respond(&state, &route, result);
        if let Ok(value) = header::HeaderValue::from_str(&ctx.correlation_id) {
            response.headers_mut().insert("x-correlation-id", value);
        }
        if matches!(route, Route::Widget(_) | Route::WidgetPreflight) {
            widget::allow_cross_origin(response.headers_mut());
        }
        metrics::request(route.label(), response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

/// `/api/*`: answered by [`crate::api::handle`] as JSON, with the correlation id echoed.
async fn serve_api(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let correlation_id = correlation_id(request.headers());
    let span = tracing::info_span!("request", route = "/api", correlation_id = %correlation_id);
    async move {
        // Type-erased: the API's future is deep enough to overflow the server's `Send` check.
        let answer: std::pin::Pin<
            Box<dyn std::future::Future<Output = crate::api::Answer> + Send + '_>,
        > = Box::pin(crate::api::handle(&state.api, &correlation_id, request));
        let crate::api::Answer(status, body) = answer.await;
        let mut response = response(status, "application/json", body.to_string());
        if let Ok(value) = header::HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert("x-correlation-id", value);
        }
        metrics::request("/api", response.status().as_u16());
        response
    }
    .instrument(span)
    .await
}

async fn dispatch(
    state: &State,
    ctx: &Ctx,
    route: Route,
    request: Request<Incoming>,
) -> Result<Reply, IngressError> {
    match route {
        Route::MetaVerify => meta::verify_subscription(state, &request),
        Route::MetaEvents => meta::receive(state, ctx, request).await,
        Route::Waha(inbox) => waha::receive(state, ctx, &inbox, request).await,
        Route::Email(inbox) => email::receive(state, ctx, &inbox, request).await,
        Route::Widget(inbox) => widget::receive(state, ctx, &inbox, request).await,
        Route::WidgetPreflight => Ok(Reply::Empty(StatusCode::NO_CONTENT)),
        Route::Healthz => Ok(health::healthz()),
        Route::Readyz => Ok(health::readyz(state).await),
        Route::Metrics => Ok(health::metrics()),
        Route::WrongMethod(_, allow) => Err(IngressError::MethodNotAllowed { allow }),
        Route::Unknown => Err(IngressError::UnknownRoute),
    }
}

fn respond(
    state: &State,
    route: &Route,
    result: Result<Reply, IngressError>,
) -> Response<Full<Bytes>> {
    match result {
        Ok(Reply::Json(status, body)) => response(status, "application/json", body.to_string()),
        Ok(Reply::Accepted(outcome)) => {
            let body = serde_json::to_string(&outcome).unwrap_or_default();
            response(StatusCode::OK, "application/json", body)
        }
        Ok(Reply::Text(status, content_type, body)) => response(status, content_type, body),
        Ok(Reply::Empty(status)) => response(status, "text/plain", String::new()),
        Err(error) => refusal(state, route, &error),
    }
}

fn refusal(state: &State, route: &Route, error: &IngressError) -> Response<Full<Bytes>> {
    let status = error.status();
    let reason = error.reason();
    if status.is_server_error() {
        tracing::warn!(status = status.as_u16(), reason, error = %error, "request refused");
    } else {
        tracing::info!(status = status.as_u16(), reason, error = %error, "request refused");
    }
    metrics::rejected(reason);
    let mut response = response(status, "application/json", error.body().to_string());
    let headers = response.headers_mut();
    match error {
        IngressError::Unavailable { .. } => {
            headers.insert(
                header::RETRY_AFTER,
                state.config.retry_after.as_secs().max(1).into(),
            );
        }
        IngressError::TooLarge { .. } => {
            // What the client sent beyond the limit was (at most partly) read: start afresh.
            headers.insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        IngressError::MethodNotAllowed { allow } => {
            headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        IngressError::Unauthorized(_) if matches!(route, Route::Email(_)) => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"switchyard\""),
            );
        }
        _ => {}
    }
    response
}

fn response(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// The caller's correlation id when it is a sane token, else a new one.
fn correlation_id(headers: &HeaderMap) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:=@,;".contains(c);
    ["x-correlation-id", "x-request-id"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::trim)
        .find(|id| !id.is_empty() && id.len() <= 128 && id.chars().all(allowed))
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::new().to_string())
}

/// The enabled inbox of `kind` named by our own URL; anything else is a 404.
pub async fn inbox_from_path(
    state: &State,
    id: &str,
    kind: InboxKind,
) -> Result<Arc<Inbox>, IngressError> {
    let well_formed = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(IngressError::UnknownInbox);
    }
    match state.inboxes.get(InboxLookup::Id(id.to_owned())).await? {
        Some(inbox) if inbox.kind == kind => Ok(inbox),
        _ => Err(IngressError::UnknownInbox),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_templates() {
        let post = Method::POST;
        assert!(matches!(
            Route::of(&post, "/webhooks/meta"),
            Route::MetaEvents
        ));
        assert!(matches!(
            Route::of(&Method::GET, "/webhooks/meta/"),
            Route::MetaVerify
        ));
        assert!(
            matches!(Route::of(&post, "/webhooks/waha/inb_1"), Route::Waha(id) if id == "inb_1")
        );
        assert!(matches!(
            Route::of(&Method::GET, "/webhooks/waha/inb_1"),
            Route::WrongMethod(..)
        ));
        assert!(
            matches!(Route::of(&post, "/widget/inb_2/messages"), Route::Widget(id) if id == "inb_2")
        );
        assert!(matches!(
            Route::of(&Method::OPTIONS, "/widget/inb_2/messages"),
            Route::WidgetPreflight
        ));
        assert!(matches!(
            Route::of(&post, "/webhooks/waha/a/b"),
            Route::Unknown
        ));
    }

    #[test]
    fn correlation_ids_are_taken_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(correlation_id(&headers), "abc-123");
        headers.insert("x-correlation-id", "corr:1".parse().unwrap());
        assert_eq!(correlation_id(&headers), "corr:1");
        headers.insert("x-correlation-id", "bad id".parse().unwrap());
        assert_eq!(correlation_id(&headers), "abc-123");
        assert_eq!(correlation_id(&HeaderMap::new()).len(), 26);
    }
}
