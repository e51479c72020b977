//! `POST /api/import`: restores the caller's jobs from a JSON export file (gzipped or not),
//! streamed, of any size. `?dry_run=true` checks and counts without writing. See
//! [`workers::import`] for what is created, updated, left alone and rejected.

use std::io;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use futures::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};
use workers::import::{self, ImportError, ImportSummary};

use super::AppState;
use super::error::ApiError;
use crate::auth::AuthUser;

#[tracing::instrument(name = "import", skip_all, fields(dry_run))]
#[utoipa::path(
    post,
    path = "/api/import",
    operation_id = "import_jobs",
    tag = "import",
    summary = "Restore jobs from a JSON export",
    description = "The body is a JSON export file as this service writes it, gzipped or not (any size; streamed). Jobs are upserted by id into your jobs in one transaction; ids that belong to another user get new ids.",
    request_body(
        description = "A JSON export file, plain or gzipped",
        content(
            (crate::http::openapi::ExportFile = "application/json"),
            (Vec<u8> = "application/gzip"),
        ),
    ),
    params(
        ("dry_run" = Option<bool>, Query, description = "Check and count without writing"),
    ),
    responses(
        (status = 200, description = "What was (or would be) done", body = crate::http::openapi::ImportSummary),
        (status = 400, description = "Not a JSON export; nothing was written", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<ImportSummary>, ApiError> {
    let mut dry_run = false;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (&*name, &*value) {
            ("dry_run", "true") => dry_run = true,
            ("dry_run", "false") => dry_run = false,
            ("dry_run", _) => {
                return Err(ApiError::Validation("dry_run must be true or false".into()));
            }
            (other, _) => {
                return Err(ApiError::Validation(format!(
                    "unknown query parameter {:?}; accepted: dry_run",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    tracing::Span::current().record("dry_run", dry_run);
    let stream = body.into_data_stream().map_err(io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    match import::import(&state.pool, user.id, reader, dry_run).await {
        Ok(summary) => {
            tracing::info!(
                created = summary.created,
                updated = summary.updated,
                unchanged = summary.unchanged,
                rejected = summary.rejected,
                reassigned = summary.reassigned,
                "import done"
            );
            Ok(Json(summary))
        }
        Err(ImportError::Invalid(message)) => Err(ApiError::Validation(message)),
        Err(ImportError::Database(e)) => Err(e.into()),
    }
}
