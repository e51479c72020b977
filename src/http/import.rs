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
