//! Background exports: `POST /api/exports`, `GET /api/exports[/{id}]`,
//! `GET /api/exports/{id}/download`, `DELETE /api/exports/{id}`.
//!
//! Every lookup is by (user, id): someone else's export, a deleted one and a malformed id all
//! get the same 404.

use axum::Json;
use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use workers::exports::{
    self, CreateError, CreateLimits, Created, Cursor, ExportRecord, ExportRequest, ExportStatus,
};
use workers::format::FileOptions;
use workers::links::LinkPurpose;
use workers::{Compression, ExportFilters, Format};

use super::AppState;
use super::error::ApiError;
use crate::auth::AuthUser;

/// A JSON body whose rejections (bad JSON, wrong content type, unknown fields) come back in
/// the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(format!(
                    "the request body is over {} KiB",
                    super::MAX_BODY_BYTES / 1024
                )))
            }
            Err(rejection) => Err(ApiError::Validation(rejection.body_text())),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    format: Option<String>,
    compression: Option<String>,
    #[serde(default)]
    filters: serde_json::Map<String, Value>,
    #[serde(default)]
    notify: Notify,
    fields: Option<Vec<String>>,
    bom: Option<bool>,
    delimiter: Option<String>,
    escape_formulas: Option<bool>,
}

/// A body's `fields` and CSV options, as the sync endpoint takes them in its query string.
#[derive(Debug, Default)]
pub struct OptionsBody {
    pub fields: Option<Vec<String>>,
    pub bom: Option<bool>,
    pub delimiter: Option<String>,
    pub escape_formulas: Option<bool>,
}

impl OptionsBody {
    /// Applies the options present to `options`, then checks them against `format`.
    pub(super) fn apply(self, options: &mut FileOptions, format: Format) -> Result<(), ApiError> {
        if let Some(fields) = &self.fields {
            options.fields = None;
            options
                .set_fields(fields.iter().map(String::as_str))
                .map_err(ApiError::Validation)?;
        }
        if let Some(bom) = self.bom {
            options.csv.bom = bom;
        }
        if let Some(delimiter) = &self.delimiter {
            options.csv.delimiter = delimiter.parse().map_err(ApiError::Validation)?;
        }
        if let Some(escape) = self.escape_formulas {
            options.csv.escape_formulas = escape;
        }
        options.validate(format).map_err(ApiError::Validation)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notify {
    #[serde(default)]
    email: bool,
}

impl CreateBody {
    /// Validates the body exactly as the sync endpoint validates its query string.
    fn into_request(self) -> Result<ExportRequest, ApiError> {
        let format = parse_format(self.format.as_deref())?;
        let mut options = FileOptions::default();
        OptionsBody {
            fields: self.fields,
            bom: self.bom,
            delimiter: self.delimiter,
            escape_formulas: self.escape_formulas,
        }
        .apply(&mut options, format)?;
        Ok(ExportRequest {
            format,
            compression: parse_compression(self.compression.as_deref(), format)?,
            filters: parse_filters(&self.filters)?,
            notify_email: self.notify.email,
            options,
            origin: None,
        })
    }
}

/// A body's `format` (JSON when absent).
pub(super) fn parse_format(format: Option<&str>) -> Result<Format, ApiError> {
    match format {
        None => Ok(Format::Json),
        Some(f) => f
            .parse()
            .map_err(|()| ApiError::Validation(Format::expected(&Format::ALL))),
    }
}

/// A body's `compression` (when absent, the format's default: gzip but for xlsx and pdf).
pub(super) fn parse_compression(
    compression: Option<&str>,
    format: Format,
) -> Result<Compression, ApiError> {
    match compression {
        None => Ok(format.default_compression()),
        Some(c) => c
            .parse()
            .map_err(|()| ApiError::Validation("compression must be \"gzip\" or \"none\"".into())),
    }
}

/// A body's `filters` object: each value a string or a list of strings, read exactly as the
/// sync endpoint reads its query parameters.
pub fn parse_filters(map: &serde_json::Map<String, Value>) -> Result<ExportFilters, ApiError> {
    let mut filters = ExportFilters::default();
    for (name, value) in map {
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        ApiError::Validation(format!(
                            "filters.{name} must be a string or a list of strings"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(ApiError::Validation(format!(
                    "filters.{name} must be a string or a list of strings"
                )));
            }
        };
        for v in values {
            let known = filters
                .accept_param(name, v)
                .map_err(|e| ApiError::Validation(format!("filters.{}", e.message)))?;
            if !known {
                return Err(ApiError::Validation(format!(
                    "unknown filter {:?}; accepted: {}",
                    name.chars().take(40).collect::<String>(),
                    ExportFilters::PARAMS.join(", ")
                )));
            }
        }
    }
    filters
        .validate()
        .map_err(|e| ApiError::Validation(format!("filters.{}", e.message)))?;
    Ok(filters)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .ok_or_else(|| {
            ApiError::Validation(
                "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
            )
        })?;
    Ok(Some(key.to_owned()))
}

pub(super) fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| not_found())
}

/// The limits `POST /api/exports` applies (and a schedule's run-now).
pub(super) fn create_limits(state: &AppState) -> CreateLimits {
    CreateLimits {
        max_active_per_user: i64::from(state.background.export_max_active_per_user),
        max_attempts: state.background.export_max_attempts,
    }
}

/// The error of a creation refused by its limits.
pub(super) fn create_error(e: CreateError) -> ApiError {
    match e {
        CreateError::IdempotencyConflict => ApiError::Conflict(
            "this Idempotency-Key was already used with a different request".into(),
        ),
        CreateError::TooManyActive { active } => ApiError::RateLimited {
            message: format!(
                "{active} exports are already queued or running; wait for one to finish"
            ),
            retry_after_secs: 30,
        },
        CreateError::Database(e) => e.into(),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such export".into())
}

/// A URL that downloads the file now: a fresh presigned URL, or (local storage) a short-lived
/// signed link served by this service.
async fn download_url(state: &AppState, record: &ExportRecord) -> Result<Option<String>, ApiError> {
    let now = Utc::now();
    let Some(key) = record.downloadable_key(now) else {
        return Ok(None);
    };
    let ttl = state.background.download_url_ttl;
    if let Some(url) =
        state.storage.presign_get(key, ttl).await.map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("presigning a download"))
        })?
    {
        return Ok(Some(url));
    }
    let until = record.expires_at.map_or(now + ttl, |e| e.min(now + ttl));
    let token = state.links.sign(record.id, until, LinkPurpose::Download);
    Ok(Some(format!(
        "{}/d/{token}",
        state.background.public_base_url
    )))
}

/// The export as the API shows it.
async fn resource(state: &AppState, record: &ExportRecord) -> Result<Value, ApiError> {
    let error = match (&record.error_code, &record.error_message) {
        (Some(code), Some(message)) => json!({"code": code, "message": message}),
        _ => Value::Null,
    };
    Ok(json!({
        "id": record.id,
        "status": record.status,
        "format": record.format,
        "compression": record.compression,
        "filters": record.filters,
        "fields": record.options.fields_for(record.format),
        "csv": (record.format == Format::Csv).then_some(record.options.csv),
        "notify": {"email": record.notify_email},
        "progress": {
            "rows_done": record.rows_done,
            "rows_total": record.rows_total,
            "bytes_written": record.bytes_written,
        },
        "row_count": record.row_count,
        "byte_size": record.byte_size,
        "sha256": record.sha256,
        "file_name": record.file_name,
        "download_url": download_url(state, record).await?,
        "expires_at": record.expires_at,
        "error": error,
        "attempts": record.attempts,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "schedule_id": record.schedule_id,
    }))
}

fn with_location(status: StatusCode, record: &ExportRecord, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/exports/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[tracing::instrument(name = "create_export", skip_all)]
#[utoipa::path(
    post,
    path = "/api/exports",
    operation_id = "create_export",
    tag = "exports",
    summary = "Queue a background export",
    description = "Any size, any format (pdf up to 10,000 jobs). Poll the returned resource or follow `Location`. With `Idempotency-Key`, a retried request returns the first export (`200`); an identical request while one is queued or running also returns it.",
    request_body = crate::http::openapi::CreateExport,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried POST safe: the same key returns the same export"),
    ),
    responses(
        (status = 202, description = "Queued", body = crate::http::openapi::Export, headers(("Location" = String, description = "/api/exports/{id}"))),
        (status = 200, description = "The same request was made before (idempotency key, or identical and still active)", body = crate::http::openapi::Export),
        (status = 400, description = "Invalid body; the message names the field", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "Idempotency-Key reused with a different request", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A request body over 64 KiB", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "Too many queued or running exports", body = crate::http::openapi::ErrorBody, headers(("Retry-After" = u64, description = "Seconds"))),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = body.into_request()?;
    let limits = create_limits(&state);
    match exports::create(&state.pool, user.id, &request, key.as_deref(), limits).await {
        Ok(Created::New(record)) => {
            tracing::info!(export_id = %record.id, "export queued");
            state.metrics.export_created(record.format.as_str(), "api");
            let body = resource(&state, &record).await?;
            Ok(with_location(StatusCode::ACCEPTED, &record, body))
        }
        Ok(Created::Replayed(record) | Created::Duplicate(record)) => {
            let body = resource(&state, &record).await?;
            Ok(with_location(StatusCode::OK, &record, body))
        }
        Err(e) => Err(create_error(e)),
    }
}

#[utoipa::path(
    get,
    path = "/api/exports/{id}",
    operation_id = "get_export",
    tag = "exports",
    summary = "An export: status, progress, file and download URL",
    params(
        ("id" = Uuid, Path, description = "The export's id"),
    ),
    responses(
        (status = 200, description = "The export", body = crate::http::openapi::Export),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such export of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = exports::get(&state.pool, user.id, parse_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(resource(&state, &record).await?))
}

#[utoipa::path(
    get,
    path = "/api/exports",
    operation_id = "list_exports",
    tag = "exports",
    summary = "Your exports, newest first",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("status" = Option<String>, Query, description = "queued, running, succeeded, failed, cancelled or expired"),
    ),
    responses(
        (status = 200, description = "A page of exports", body = crate::http::openapi::ExportList),
        (status = 400, description = "Invalid limit, cursor or status", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (mut limit, mut cursor, mut status) = (20i64, None, None);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::Validation("limit must be a whole number from 1 to 100".into())
                    })?;
            }
            "cursor" => {
                cursor = Some(Cursor::decode(&value).ok_or_else(|| {
                    ApiError::Validation("cursor is not one this API returned".into())
                })?);
            }
            "status" => {
                status = Some(value.parse::<ExportStatus>().map_err(|_| {
                    ApiError::Validation(
                        "status must be one of queued, running, succeeded, failed, cancelled, expired".into(),
                    )
                })?);
            }
            other => {
                return Err(ApiError::Validation(format!(
                    "unknown query parameter {:?}; accepted: limit, cursor, status",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    let (records, next) = exports::list(&state.pool, user.id, status, cursor, limit).await?;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        items.push(resource(&state, record).await?);
    }
    Ok(Json(json!({
        "exports": items,
        "next_cursor": next.map(|c| c.encode()),
    })))
}

#[utoipa::path(
    get,
    path = "/api/exports/{id}/download",
    operation_id = "download_export",
    tag = "exports",
    summary = "Download the file",
    description = "A `302` to a fresh presigned URL (fetch it without the Authorization header). With local storage the front serves the file itself (`200`).",
    params(
        ("id" = Uuid, Path, description = "The export's id"),
    ),
    responses(
        (status = 302, description = "To the file", headers(("Location" = String, description = "A presigned URL"))),
        (status = 200, description = "The file itself (local storage), with the export's Content-Type (e.g. application/gzip, text/csv) and Content-Disposition", content((Vec<u8> = "application/octet-stream"))),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such export of yours", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "No file yet (queued, running, failed, cancelled)", body = crate::http::openapi::ErrorBody),
        (status = 410, description = "The file has expired", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = exports::get(&state.pool, user.id, parse_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    match download_url(&state, &record).await? {
        Some(url) => Ok(super::found(&url)),
        None if record.status == ExportStatus::Succeeded
            || record.status == ExportStatus::Expired =>
        {
            Err(ApiError::Gone("this export's file has expired".into()))
        }
        None => Err(ApiError::Conflict(format!(
            "this export has no file to download (status: {})",
            record.status
        ))),
    }
}

#[utoipa::path(
    delete,
    path = "/api/exports/{id}",
    operation_id = "delete_export",
    tag = "exports",
    summary = "Cancel a queued or running export, or delete a finished one",
    description = "A queued or running export is cancelled (`200` with it; the worker stops and aborts its upload). A finished one is deleted with its file (`204`); its links stop working.",
    params(
        ("id" = Uuid, Path, description = "The export's id"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = crate::http::openapi::Export),
        (status = 204, description = "Deleted, file included"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such export of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    if let Some(record) = exports::cancel(&state.pool, user.id, id).await? {
        tracing::info!(export_id = %id, "export cancelled");
        return Ok(Json(resource(&state, &record).await?).into_response());
    }
    let mut tx = state.pool.begin().await?;
    let record = exports::lock_finished(&mut tx, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    // The file goes first: if that fails nothing changed and the client can retry.
    if let (Some(upload_id), Some(upload_key)) = (&record.upload_id, &record.upload_key) {
        state
            .storage
            .abort_upload(upload_key, upload_id)
            .await
            .map_err(|e| {
                ApiError::Internal(anyhow::Error::new(e).context("aborting an export's upload"))
            })?;
    }
    // Its file, and any an attempt stored before its worker died (named by nothing else).
    for key in exports::all_object_keys(&record) {
        state.storage.delete(&key).await.map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("deleting an export's file"))
        })?;
    }
    exports::delete_locked(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(export_id = %id, "export deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
