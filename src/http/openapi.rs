//! The OpenAPI 3.1 document of the HTTP API, and the schemas it names.
//!
//! Operations are declared on their handlers (`#[utoipa::path]`) and registered with the
//! router through utoipa-axum's `routes!`, so a route cannot be served without being
//! documented, nor documented without being served. The handlers build their JSON by hand;
//! the types below only describe it, and `tests/api/openapi.rs` checks real responses
//! against them.

#![allow(dead_code)] // Schema-only types: described, never built.

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pipeline-export",
        description = "Exports of PIPELINE job-application data: a synchronous file download \
            (`GET /api/export`), background exports of any size in several formats with \
            download links and emails, scheduled backups, and restore from a JSON export.\n\n\
            Every `/api` route needs `Authorization: Bearer <token>`: an HS256 JWT whose `sub` \
            is the user's id, or a personal token (`pex_...`). Every error is \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`. Another user's export or \
            schedule is a `404`, exactly like one that does not exist.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(docs),
    modifiers(&BearerAuth),
    tags(
        (name = "export", description = "The documented synchronous export"),
        (name = "exports", description = "Background exports: queue, poll, download, cancel"),
        (name = "schedules", description = "Scheduled backups"),
        (name = "import", description = "Restore a JSON export"),
        (name = "links", description = "Signed links in emails (HTML pages for people)"),
        (name = "operations", description = "Probes, metrics and this document"),
    ),
)]
pub struct ApiDoc;

/// The interactive docs page: Swagger UI, vendored into the binary (so it works offline),
/// served by `utoipa-swagger-ui` at `/docs/`; `/docs` sends there.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "operations",
    summary = "Interactive API docs (Swagger UI, served from the binary)",
    responses((status = 303, description = "To /docs/, the Swagger UI page", headers(("Location" = String)))),
)]
fn docs() {}

/// The `bearer` security scheme the `/api` operations name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "An HS256 JWT signed with JWT_SECRET (`sub` = the user's id), or a personal token \
             from `pipeline-export token create` (`pex_` + 64 hex digits)."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every error.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "VALIDATION_ERROR", "message": "format must be \"json\" or \"csv\""}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// What went wrong, for people; names the parameter or field at fault.
    pub message: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Gone,
    PayloadTooLarge,
    RateLimited,
    InternalError,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum JobStatus {
    Saved,
    Applied,
    Interview,
    Offer,
    Rejected,
}

/// One job, as the JSON export and `ndjson` lines have it. Every documented field is present
/// unless `fields` asked for a subset, which then comes in the requested order.
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "123e4567-e89b-12d3-a456-426614174000", "company_name": "Acme Corp",
    "job_title": "Senior Backend Engineer", "status": "interview", "source": "linkedin",
    "location": "San Francisco, CA", "is_remote": true,
    "job_url": "https://acme.com/careers/senior-backend-engineer",
    "job_description": "Build scalable APIs...", "salary_range_min": 180000,
    "salary_range_max": 250000, "ai_match_score": 87, "ai_reasoning": "Strong match",
    "notes": "Met recruiter at tech conference", "tags": ["high-priority", "backend"],
    "applied_at": "2026-03-01T10:30:00Z", "interview_at": "2026-03-10T14:00:00Z",
    "offer_at": null, "rejected_at": null, "scraped_at": null,
    "created_at": "2026-02-28T15:00:00Z", "updated_at": "2026-03-04T09:00:00Z"
}))]
pub struct Job {
    #[schema(required = false)]
    pub id: Uuid,
    #[schema(required = false)]
    pub company_name: String,
    #[schema(required = false)]
    pub job_title: String,
    #[schema(required = false)]
    pub status: JobStatus,
    #[schema(required = false)]
    pub source: Option<String>,
    #[schema(required = false)]
    pub location: Option<String>,
    #[schema(required = false)]
    pub is_remote: bool,
    #[schema(required = false)]
    pub job_url: Option<String>,
    #[schema(required = false)]
    pub job_description: Option<String>,
    #[schema(required = false)]
    pub salary_range_min: Option<i64>,
    #[schema(required = false)]
    pub salary_range_max: Option<i64>,
    #[schema(required = false)]
    pub ai_match_score: Option<i64>,
    #[schema(required = false)]
    pub ai_reasoning: Option<String>,
    #[schema(required = false)]
    pub notes: Option<String>,
    #[schema(required = false)]
    pub tags: Vec<String>,
    #[schema(required = false)]
    pub applied_at: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub interview_at: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub offer_at: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub rejected_at: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub scraped_at: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub created_at: DateTime<Utc>,
    #[schema(required = false)]
    pub updated_at: DateTime<Utc>,
}

/// The JSON export file.
#[derive(ToSchema)]
pub struct ExportFile {
    pub exported_at: DateTime<Utc>,
    /// Jobs in the file.
    pub total: u64,
    pub jobs: Vec<Job>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Ndjson,
    Xlsx,
    Pdf,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Delimiter {
    Comma,
    Semicolon,
    Tab,
}

/// A filter value: one string, or a list (any of them matches).
#[derive(ToSchema)]
#[schema(as = FilterValue)]
pub enum FilterValue {
    One(String),
    Any(Vec<String>),
}

/// Which jobs: every filter given must match. `status`: saved, applied, interview, offer,
/// rejected; `source`, `tag`: exact, case-insensitive; `created_from`, `created_to`,
/// `updated_since`: RFC 3339 instants or `YYYY-MM-DD` (UTC midnight).
#[derive(ToSchema)]
#[schema(example = json!({"status": ["interview", "offer"], "created_from": "2026-01-01"}))]
pub struct FiltersInput {
    pub status: Option<FilterValue>,
    pub source: Option<FilterValue>,
    pub tag: Option<FilterValue>,
    pub created_from: Option<String>,
    pub created_to: Option<String>,
    pub updated_since: Option<String>,
}

/// The filters an export or schedule uses, normalised.
#[derive(ToSchema)]
pub struct Filters {
    pub status: Option<Vec<JobStatus>>,
    pub source: Option<Vec<String>>,
    pub tag: Option<Vec<String>>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub updated_since: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct Notify {
    /// Email the download link (or the failure) to the user's address.
    pub email: bool,
}

/// CSV options in effect (csv exports only).
#[derive(ToSchema)]
pub struct CsvOptions {
    pub delimiter: Delimiter,
    /// A UTF-8 byte order mark first (Excel then reads non-Latin text right).
    pub bom: bool,
    /// Text cells starting with `=`, `+`, `-`, `@`, tab or CR get a leading `'`.
    pub escape_formulas: bool,
}

/// `POST /api/exports`.
#[derive(ToSchema)]
#[schema(example = json!({"format": "csv", "filters": {"status": ["interview", "offer"]}, "notify": {"email": true}}))]
pub struct CreateExport {
    /// Default `json`.
    pub format: Option<Format>,
    /// Default `gzip` for json, csv and ndjson; `none` for xlsx and pdf.
    pub compression: Option<Compression>,
    pub filters: Option<FiltersInput>,
    /// Default `{"email": false}`.
    pub notify: Option<Notify>,
    /// A subset of the documented fields, in this order (not for pdf).
    pub fields: Option<Vec<String>>,
    pub bom: Option<bool>,
    pub delimiter: Option<Delimiter>,
    pub escape_formulas: Option<bool>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ExportStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

/// Why an export or a backup run failed.
#[derive(ToSchema)]
pub struct ExportErrorDetail {
    /// `VALIDATION_ERROR` (e.g. over a format's row limit), `EXPORT_FAILED`,
    /// `DATABASE_UNAVAILABLE`, `STORAGE_UNAVAILABLE` or `STORAGE_ERROR`.
    #[schema(example = "STORAGE_UNAVAILABLE")]
    pub code: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct Progress {
    pub rows_done: i64,
    /// Known once the export's snapshot is open.
    pub rows_total: Option<i64>,
    pub bytes_written: i64,
}

/// A background export.
#[derive(ToSchema)]
pub struct Export {
    pub id: Uuid,
    pub status: ExportStatus,
    pub format: Format,
    pub compression: Compression,
    pub filters: Filters,
    /// The fields written, in order (for pdf, those the report reads).
    pub fields: Vec<String>,
    pub csv: Option<CsvOptions>,
    pub notify: Notify,
    pub progress: Progress,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    /// Hex SHA-256 of the stored file.
    pub sha256: Option<String>,
    #[schema(example = "pipeline-jobs-2026-03-04.csv.gz")]
    pub file_name: String,
    /// A fresh presigned URL while the file can be downloaded, else `null`.
    pub download_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub error: Option<ExportErrorDetail>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The schedule this export is a backup of.
    pub schedule_id: Option<Uuid>,
}

#[derive(ToSchema)]
pub struct ExportList {
    /// Newest first.
    pub exports: Vec<Export>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct TimeOnly {
    #[schema(example = "06:30", pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub time: String,
}

#[derive(ToSchema)]
pub struct WeeklyAt {
    #[schema(example = "monday")]
    pub weekday: String,
    #[schema(example = "08:00")]
    pub time: String,
}

#[derive(ToSchema)]
pub struct MonthlyAt {
    /// 1 to 31; 29 to 31 mean the month's last day when it is shorter.
    #[schema(minimum = 1, maximum = 31)]
    pub day: u8,
    #[schema(example = "07:00")]
    pub time: String,
}

/// When a backup runs, in the schedule's time zone.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Cadence {
    Daily(TimeOnly),
    Weekly(WeeklyAt),
    Monthly(MonthlyAt),
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Mode {
    /// Every job the filters match.
    Full,
    /// Only jobs updated since the previous successful run.
    Incremental,
}

/// `POST /api/export-schedules` (`cadence` required) and `PATCH` (any field).
#[derive(ToSchema)]
#[schema(example = json!({"name": "Monday backup", "cadence": {"weekly": {"weekday": "monday", "time": "08:00"}}, "timezone": "Africa/Nairobi", "format": "json"}))]
pub struct ScheduleInput {
    pub name: Option<String>,
    pub cadence: Option<Cadence>,
    /// IANA time zone; default `UTC`.
    pub timezone: Option<String>,
    pub format: Option<Format>,
    pub compression: Option<Compression>,
    pub filters: Option<FiltersInput>,
    /// Successful backups kept, 1 to 365; default 4.
    pub keep_last: Option<i64>,
    pub notify: Option<Notify>,
    pub mode: Option<Mode>,
    pub paused: Option<bool>,
    pub fields: Option<Vec<String>>,
    pub bom: Option<bool>,
    pub delimiter: Option<Delimiter>,
    pub escape_formulas: Option<bool>,
}

/// A backup schedule.
#[derive(ToSchema)]
pub struct Schedule {
    pub id: Uuid,
    pub name: String,
    pub format: Format,
    pub compression: Compression,
    pub filters: Filters,
    pub fields: Option<Vec<String>>,
    pub csv: Option<CsvOptions>,
    pub cadence: Cadence,
    #[schema(example = "every Monday at 08:00")]
    pub cadence_description: String,
    pub timezone: String,
    pub keep_last: i32,
    pub notify: Notify,
    pub mode: Mode,
    pub paused: bool,
    /// `null` while paused.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The same instant in the schedule's zone (RFC 3339 with offset).
    pub next_run_local: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct ScheduleList {
    /// Oldest first.
    pub schedules: Vec<Schedule>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
    Missed,
}

/// One occurrence of a schedule.
#[derive(ToSchema)]
pub struct Run {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    /// `missed`, `deleted`, or the export's status.
    pub status: String,
    pub export_id: Option<Uuid>,
    /// Incremental runs: jobs updated after this instant.
    pub since: Option<DateTime<Utc>>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub error: Option<ExportErrorDetail>,
    pub created_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<Run>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct Rejection {
    /// The job's position in the file's `jobs` array, from 0.
    pub index: u64,
    pub id: Option<Uuid>,
    pub reason: String,
}

/// What an import did (or, for a dry run, would do).
#[derive(ToSchema)]
pub struct ImportSummary {
    pub dry_run: bool,
    pub total: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Of `created`: jobs whose id belonged to another user, created with a new id.
    pub reassigned: u64,
    /// The first rejections.
    pub errors: Vec<Rejection>,
}

#[derive(ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// `/readyz`: `{"database": "ok" | "unreachable"}`.
    #[schema(value_type = Option<Object>)]
    pub checks: Option<Value>,
}
