//! Liveness and readiness probes.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::AppState;

/// The process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the process serves",
    responses(
        (status = 200, description = "Up", body = crate::http::openapi::Health, example = json!({"status": "ok"})),
    ),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The service can do its work: PostgreSQL answers within two seconds. 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: PostgreSQL answers within 2 s",
    responses(
        (status = 200, description = "Ready", body = crate::http::openapi::Health, example = json!({"status": "ok", "checks": {"database": "ok"}})),
        (status = 503, description = "The database does not answer", body = crate::http::openapi::Health, example = json!({"status": "unavailable", "checks": {"database": "unreachable"}})),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    ready(&state.pool).await
}

pub async fn ready(pool: &PgPool) -> (StatusCode, Json<Value>) {
    let probe = sqlx::query("SELECT 1").execute(pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "checks": {"database": "ok"}})),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            unavailable()
        }
        Err(_) => {
            tracing::warn!("readiness: database did not answer within 2 s");
            unavailable()
        }
    }
}

fn unavailable() -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "checks": {"database": "unreachable"}})),
    )
}
