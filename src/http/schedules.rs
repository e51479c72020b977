//! Scheduled backups: `POST/GET /api/export-schedules`, `GET/PATCH/DELETE
//! /api/export-schedules/{id}`, `POST /api/export-schedules/{id}/run` and
//! `GET /api/export-schedules/{id}/runs`.
//!
//! Every lookup is by (user, id): someone else's schedule, a deleted one and a malformed id
//! all get the same 404.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use workers::cadence::{Cadence, parse_timezone};
use workers::exports::Cursor;
use workers::schedules::{
    self, Mode, RunView, ScheduleError, ScheduleRecord, ScheduleSpec, default_name,
};

use super::AppState;
use super::error::ApiError;
use super::exports::{
    ApiJson, OptionsBody, create_error, create_limits, parse_compression, parse_filters,
    parse_format, parse_id,
};
use crate::auth::AuthUser;

/// A schedule's fields as a client sends them: all of them on `POST` (only `cadence` is
/// required), any of them on `PATCH`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    name: Option<String>,
    format: Option<String>,
    compression: Option<String>,
    filters: Option<serde_json::Map<String, Value>>,
    cadence: Option<Value>,
    timezone: Option<String>,
    keep_last: Option<i64>,
    notify: Option<Notify>,
    mode: Option<String>,
    paused: Option<bool>,
    fields: Option<Vec<String>>,
    bom: Option<bool>,
    delimiter: Option<String>,
    escape_formulas: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notify {
    email: bool,
}

impl ScheduleBody {
    /// The spec of a new schedule: the body over the documented defaults.
    fn into_new_spec(self) -> Result<ScheduleSpec, ApiError> {
        let cadence = self
            .cadence
            .as_ref()
            .ok_or_else(|| {
                ApiError::Validation(
                    "cadence: is required, e.g. {\"weekly\": {\"weekday\": \"monday\", \"time\": \"08:00\"}}"
                        .into(),
                )
            })
            .and_then(parse_cadence)?;
        let mut spec = ScheduleSpec::new(cadence);
        let named = self.name.is_some();
        self.apply(&mut spec)?;
        if !named {
            spec.name = default_name(&spec.cadence);
        }
        Ok(spec)
    }

    /// Applies the fields present to `spec`, validating each.
    fn apply(self, spec: &mut ScheduleSpec) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            spec.name = name.trim().to_owned();
        }
        // A new format without a compression takes that format's default compression.
        if self.format.is_some() || self.compression.is_some() {
            if self.format.is_some() {
                spec.format = parse_format(self.format.as_deref())?;
            }
            spec.compression = match self.compression.as_deref() {
                None => spec.format.default_compression(),
                given => parse_compression(given, spec.format)?,
            };
        }
        if let Some(filters) = &self.filters {
            spec.filters = parse_filters(filters)?;
        }
        if let Some(cadence) = &self.cadence {
            spec.cadence = parse_cadence(cadence)?;
        }
        if let Some(tz) = &self.timezone {
            spec.timezone =
                parse_timezone(tz).map_err(|m| ApiError::Validation(format!("timezone: {m}")))?;
        }
        if let Some(keep) = self.keep_last {
            spec.keep_last = i32::try_from(keep).unwrap_or(i32::MAX);
        }
        if let Some(notify) = self.notify {
            spec.notify_email = notify.email;
        }
        if let Some(mode) = &self.mode {
            spec.mode = mode
                .parse::<Mode>()
                .map_err(|m| ApiError::Validation(format!("mode: {m}")))?;
        }
        if let Some(paused) = self.paused {
            spec.paused = paused;
        }
        let csv_given =
            self.bom.is_some() || self.delimiter.is_some() || self.escape_formulas.is_some();
        if spec.format != workers::Format::Csv && !csv_given {
            // CSV options of a schedule that is no longer CSV are dropped, not an error.
            spec.options.csv = Default::default();
        }
        OptionsBody {
            fields: self.fields,
            bom: self.bom,
            delimiter: self.delimiter,
            escape_formulas: self.escape_formulas,
        }
        .apply(&mut spec.options, spec.format)?;
        spec.validate().map_err(ApiError::Validation)
    }
}

fn parse_cadence(value: &Value) -> Result<Cadence, ApiError> {
    Cadence::from_json(value).map_err(|e| ApiError::Validation(e.to_string()))
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such export schedule".into())
}

/// The schedule as the API shows it.
fn resource(s: &ScheduleRecord) -> Value {
    let next = s.next_run();
    json!({
        "id": s.id,
        "name": s.name,
        "format": s.format,
        "compression": s.compression,
        "filters": s.filters,
        "fields": s.options.fields_for(s.format),
        "csv": (s.format == workers::Format::Csv).then_some(s.options.csv),
        "cadence": s.cadence,
        "cadence_description": s.cadence.describe(),
        "timezone": s.timezone,
        "keep_last": s.keep_last,
        "notify": {"email": s.notify_email},
        "mode": s.mode,
        "paused": s.paused,
        "next_run_at": next,
        "next_run_local": next.map(|t| t.with_timezone(&s.tz()).to_rfc3339()),
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

fn run_resource(r: &RunView) -> Value {
    let error = match (&r.error_code, &r.error_message) {
        (Some(code), Some(message)) => json!({"code": code, "message": message}),
        _ => Value::Null,
    };
    json!({
        "id": r.id,
        "schedule_id": r.schedule_id,
        "scheduled_for": r.scheduled_for,
        "trigger": r.trigger,
        "status": r.status(),
        "export_id": r.export_id,
        "since": r.since,
        "rows": r.row_count,
        "bytes": r.byte_size,
        "error": error,
        "created_at": r.created_at,
    })
}

fn located(status: StatusCode, location: &str, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[tracing::instrument(name = "create_schedule", skip_all)]
#[utoipa::path(
    post,
    path = "/api/export-schedules",
    operation_id = "create_schedule",
    tag = "schedules",
    summary = "Create a backup schedule",
    description = "`cadence` is required. The first run is the cadence's first occurrence after now, in `timezone`.",
    request_body = crate::http::openapi::ScheduleInput,
    responses(
        (status = 201, description = "Created", body = crate::http::openapi::Schedule, headers(("Location" = String, description = "/api/export-schedules/{id}"))),
        (status = 400, description = "Invalid cadence, timezone, time or other field; the message names it", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 409, description = "At most 25 schedules per user", body = crate::http::openapi::ErrorBody),
        (status = 413, description = "A request body over 64 KiB", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    let spec = body.into_new_spec()?;
    let record = schedules::create(&state.pool, user.id, &spec, state.clock.now())
        .await
        .map_err(schedule_error)?;
    tracing::info!(schedule_id = %record.id, "export schedule created");
    Ok(located(
        StatusCode::CREATED,
        &format!("/api/export-schedules/{}", record.id),
        resource(&record),
    ))
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::TooMany => ApiError::Conflict(e.to_string()),
        ScheduleError::Export(e) => create_error(e),
        ScheduleError::Database(e) => e.into(),
    }
}

#[utoipa::path(
    get,
    path = "/api/export-schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    summary = "Your backup schedules, oldest first",
    responses(
        (status = 200, description = "Every schedule", body = crate::http::openapi::ScheduleList),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let records = schedules::list(&state.pool, user.id).await?;
    Ok(Json(json!({
        "schedules": records.iter().map(resource).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/api/export-schedules/{id}",
    operation_id = "get_schedule",
    tag = "schedules",
    summary = "A backup schedule",
    params(
        ("id" = Uuid, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 200, description = "The schedule", body = crate::http::openapi::Schedule),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such schedule of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = schedules::get(
        &state.pool,
        user.id,
        parse_id(&id).map_err(|_| not_found())?,
    )
    .await?
    .ok_or_else(not_found)?;
    Ok(Json(resource(&record)))
}

#[tracing::instrument(name = "update_schedule", skip_all)]
#[utoipa::path(
    patch,
    path = "/api/export-schedules/{id}",
    operation_id = "update_schedule",
    tag = "schedules",
    summary = "Change a backup schedule (any field; paused: true|false)",
    request_body = crate::http::openapi::ScheduleInput,
    params(
        ("id" = Uuid, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 200, description = "The changed schedule", body = crate::http::openapi::Schedule),
        (status = 400, description = "Invalid field; the message names it", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such schedule of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id).map_err(|_| not_found())?;
    let mut error = None;
    let outcome = schedules::update(
        &state.pool,
        user.id,
        id,
        |current| {
            let mut spec = schedules::spec_of(current);
            match body.apply(&mut spec) {
                Ok(()) => Ok(spec),
                Err(e) => {
                    let message = e.to_string();
                    error = Some(e);
                    Err(message)
                }
            }
        },
        state.clock.now(),
    )
    .await?;
    match outcome {
        None => Err(not_found()),
        Some(Ok(record)) => {
            tracing::info!(schedule_id = %id, paused = record.paused, "export schedule updated");
            Ok(Json(resource(&record)))
        }
        Some(Err(message)) => Err(error.unwrap_or(ApiError::Validation(message))),
    }
}

#[utoipa::path(
    delete,
    path = "/api/export-schedules/{id}",
    operation_id = "delete_schedule",
    tag = "schedules",
    summary = "Delete a backup schedule",
    description = "No further runs. Its backups stay and from then on follow the ad-hoc retention.",
    params(
        ("id" = Uuid, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such schedule of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id).map_err(|_| not_found())?;
    if !schedules::delete(&state.pool, user.id, id, state.background.export_retention).await? {
        return Err(not_found());
    }
    tracing::info!(schedule_id = %id, "export schedule deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[tracing::instrument(name = "run_schedule", skip_all)]
#[utoipa::path(
    post,
    path = "/api/export-schedules/{id}/run",
    operation_id = "run_schedule",
    tag = "schedules",
    summary = "Run a backup now, outside the cadence",
    params(
        ("id" = Uuid, Path, description = "The schedule's id"),
    ),
    responses(
        (status = 202, description = "The run, with its export", body = crate::http::openapi::Run, headers(("Location" = String, description = "/api/exports/{export_id}"))),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such schedule of yours", body = crate::http::openapi::ErrorBody),
        (status = 429, description = "Too many queued or running exports", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn run_now(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id).map_err(|_| not_found())?;
    let (run, format) = schedules::run_now(
        &state.pool,
        user.id,
        id,
        state.clock.now(),
        create_limits(&state),
    )
    .await
    .map_err(schedule_error)?
    .ok_or_else(not_found)?;
    tracing::info!(schedule_id = %id, export_id = ?run.export_id, "backup run started by hand");
    state.metrics.export_created(format.as_str(), "schedule");
    let location = run
        .export_id
        .map(|e| format!("/api/exports/{e}"))
        .unwrap_or_default();
    Ok(located(StatusCode::ACCEPTED, &location, run_resource(&run)))
}

#[utoipa::path(
    get,
    path = "/api/export-schedules/{id}/runs",
    operation_id = "list_schedule_runs",
    tag = "schedules",
    summary = "A schedule's run history, newest first",
    params(
        ("id" = Uuid, Path, description = "The schedule's id"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of runs", body = crate::http::openapi::RunList),
        (status = 400, description = "Invalid limit or cursor", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
        (status = 404, description = "No such schedule of yours", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn runs(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id).map_err(|_| not_found())?;
    let (mut limit, mut cursor) = (20i64, None);
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
            other => {
                return Err(ApiError::Validation(format!(
                    "unknown query parameter {:?}; accepted: limit, cursor",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    // The schedule must be the user's, even when it has no runs yet.
    schedules::get(&state.pool, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    let (runs, next) = schedules::runs(&state.pool, user.id, id, cursor, limit).await?;
    Ok(Json(json!({
        "runs": runs.iter().map(run_resource).collect::<Vec<_>>(),
        "next_cursor": next.map(|c| c.encode()),
    })))
}
