//! The HTTP front: routes, shared state, middleware, and serving with graceful shutdown.

mod error;
mod export;
mod exports;
mod extract;
mod health;
mod import;
mod links;
mod metrics;
pub mod openapi;
mod schedules;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

pub use self::error::ApiError;
pub use self::export::{ExportParams, accepts_gzip};
pub use self::exports::parse_filters;
use workers::clock::SharedClock;
use workers::links::LinkSigner;
use workers::metrics::Metrics;
use workers::storage::Storage;

use crate::auth::Authenticator;
use crate::config::{BackgroundConfig, ServeConfig};

/// Largest JSON request body (export and schedule requests are a few hundred bytes).
/// `POST /api/import` streams its file and has no such limit.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings of the synchronous export.
#[derive(Debug, Clone, Copy)]
pub struct ExportSettings {
    /// Cap on rows per synchronous export; `None` for no cap.
    pub max_rows: Option<u64>,
    pub timeout: Duration,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub auth: Arc<Authenticator>,
    pub export: ExportSettings,
    pub storage: Storage,
    pub links: LinkSigner,
    pub background: Arc<BackgroundConfig>,
    /// What schedules take as now (tests move it).
    pub clock: SharedClock,
    /// This process's counters; `pipeline-export all` shares them with its workers.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub async fn new(pool: PgPool, config: &ServeConfig) -> anyhow::Result<Self> {
        let storage = Storage::from_config(&config.background.storage).await?;
        Ok(AppState {
            pool,
            auth: Arc::new(Authenticator::new(&config.jwt_secret)?),
            storage,
            links: LinkSigner::new(config.background.link_secret.expose().as_bytes()),
            background: Arc::new(config.background.clone()),
            clock: workers::clock::system(),
            metrics: Arc::new(Metrics::new()),
            export: ExportSettings {
                max_rows: config.sync_export_max_rows,
                timeout: config.sync_export_timeout,
            },
        })
    }
}

/// `302 Found` to `url`: what download links answer (axum's `Redirect` offers 303 and 307).
pub(crate) fn found(url: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    match axum::http::HeaderValue::from_str(url) {
        Ok(location) => (
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => ApiError::Internal(anyhow::anyhow!("a download URL is not a valid header"))
            .into_response(),
    }
}

/// Every documented route, registered with its documentation (see [`openapi`]).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(export::export))
        .routes(routes!(exports::create, exports::list))
        .routes(routes!(exports::show, exports::remove))
        .routes(routes!(exports::download))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(
            schedules::show,
            schedules::update,
            schedules::remove
        ))
        .routes(routes!(schedules::run_now))
        .routes(routes!(schedules::runs))
        .routes(routes!(import::import))
        .routes(routes!(links::follow))
        .routes(routes!(links::pause_page, links::pause))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
}

/// The OpenAPI 3.1 document of every route [`router`] serves.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    openapi_document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
)]
async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// The path as logs show it: an emailed link's token is a credential, so `/d/{token}` and
/// `/p/{token}` appear as just that.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/d/") {
        "/d/{token}"
    } else if path.starts_with("/p/") {
        "/p/{token}"
    } else {
        path
    }
}

/// Records the export or schedule a route names (`/api/exports/{id}`,
/// `/api/export-schedules/{id}`) on the request's span, so every log line of the request
/// carries it. Only well-formed ids; whether the caller may see it is the handler's business.
async fn ids_in_logs(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::RequestExt;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str());
    let field = match route {
        Some(r) if r.starts_with("/api/exports/{id}") => Some("export_id"),
        Some(r) if r.starts_with("/api/export-schedules/{id}") => Some("schedule_id"),
        _ => None,
    };
    if let Some(field) = field
        && let Ok(params) = request
            .extract_parts::<axum::extract::RawPathParams>()
            .await
        && let Some(id) = params
            .iter()
            .find(|(name, _)| *name == "id")
            .and_then(|(_, v)| uuid::Uuid::try_parse(v).ok())
    {
        tracing::Span::current().record(field, tracing::field::display(id));
    }
    next.run(request).await
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let (api, _) = api().split_for_parts();
    // `/docs` (documented in [`openapi::ApiDoc`]), `/docs/` and the UI's assets.
    let swagger: Router<AppState> = SwaggerUi::new("/docs")
        // No online validator badge: the page must not reach out of this service.
        .config(utoipa_swagger_ui::Config::from("/openapi.json").validator_url("none"))
        .into();
    api.merge(swagger)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(ids_in_logs))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(anyhow::anyhow!(
                "a request handler panicked"
            )))
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = loggable_path(req.uri().path()),
                    request_id,
                    user_id = tracing::field::Empty,
                    export_id = tracing::field::Empty,
                    schedule_id = tracing::field::Empty,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A worker process's own small HTTP surface (`METRICS_ADDR`): `/metrics`, `/healthz` and
/// `/readyz`, for scrapers and probes. No API, no authentication, nothing per user.
pub fn worker_router(pool: PgPool, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route(
            "/readyz",
            get(
                |State((pool, _)): State<(PgPool, Arc<Metrics>)>| async move {
                    health::ready(&pool).await
                },
            ),
        )
        .route(
            "/metrics",
            get(
                |State((pool, metrics)): State<(PgPool, Arc<Metrics>)>| async move {
                    metrics::render(&pool, &metrics).await
                },
            ),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state((pool, metrics))
}

/// Serves until `shutdown` resolves (e.g. [`shutdown_signal`]), then lets in-flight requests and downloads finish for up
/// to `shutdown_grace` before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown_grace: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let mut graceful = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|stop| *stop).await;
    });
    let mut deadline = stop_rx;
    let grace_over = async move {
        let _ = deadline.wait_for(|stop| *stop).await;
        tokio::time::sleep(shutdown_grace).await;
    };
    tokio::select! {
        result = server => result?,
        () = grace_over => tracing::warn!(?shutdown_grace, "grace period over; closing the remaining connections"),
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
