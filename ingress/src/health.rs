//! Probes and metrics: `GET /healthz` (the process answers), `GET /readyz` (Redis and Postgres
//! answer, each within a short timeout, so a load balancer stops sending webhooks we could not
//! store) and `GET /metrics` (Prometheus text of everything recorded, see [`crate::metrics`]).

use std::time::Duration;

use diesel_async::RunQueryDsl;
use hyper::StatusCode;
use serde_json::json;

use crate::{State, routes::Reply};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn healthz() -> Reply {
    Reply::Json(StatusCode::OK, json!({ "status": "ok" }))
}

pub async fn readyz(state: &State) -> Reply {
    let (redis, postgres) = tokio::join!(probe(state.queues.ping()), probe(ping_postgres(state)));
    let status = if redis.is_ok() && postgres.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let show = |r: Result<(), String>| r.map_or_else(|e| e, |()| "ok".to_owned());
    Reply::Json(
        status,
        json!({ "redis": show(redis), "postgres": show(postgres) }),
    )
}

pub fn metrics() -> Reply {
    Reply::Text(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        shared::telemetry::render_metrics(),
    )
}

async fn probe<E: std::fmt::Display>(
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        // The driver's error goes to the log only: its text may name hosts and users.
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness probe failed");
            Err("unavailable".to_owned())
        }
        Err(_) => Err("unavailable: timed out".to_owned()),
    }
}

async fn ping_postgres(state: &State) -> Result<(), shared::db::DbError> {
    let mut conn = state.db.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}
