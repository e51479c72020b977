//! `GET /metrics`, and the middleware that counts HTTP requests.
//!
//! Unauthenticated, like `/healthz`: it carries counts and durations only, never a user,
//! an id or a token. Restrict it at the network level where that matters.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use workers::metrics::Metrics;

use super::AppState;

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Text exposition (OpenMetrics). Counts and durations only: no user, id or token.",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    render(&state.pool, &state.metrics).await
}

/// The exposition, with the queue gauges read just now (left as last read if the database
/// does not answer: the scrape still shows the process's own counters).
pub async fn render(pool: &PgPool, metrics: &Metrics) -> Response {
    if let Err(e) = metrics.observe_queues(pool).await {
        tracing::warn!(error = %e, "reading queue depth for /metrics");
    }
    let mut response = (StatusCode::OK, metrics.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Counts each request by method, route pattern and status, and times it to its response
/// head (a download's streaming time is not in it).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // A fixed set: clients choose the method, and every label value is a series kept forever.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
