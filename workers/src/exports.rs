//! Background exports as records: the request, its lifecycle, and every query on the
//! `exports` table. Every function that takes a `user_id` scopes by it, so one user's export
//! id is simply not found for another.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::compress::Compression;
use crate::filters::ExportFilters;
use crate::format::{FileOptions, Format, file_name};
use crate::queue::{self, EXPORTS_QUEUE, ExportTask};

/// Where an export is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Succeeded once; its file has since been deleted by retention.
    Expired,
}

impl ExportStatus {
    pub const ALL: [ExportStatus; 6] = [
        ExportStatus::Queued,
        ExportStatus::Running,
        ExportStatus::Succeeded,
        ExportStatus::Failed,
        ExportStatus::Cancelled,
        ExportStatus::Expired,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Succeeded => "succeeded",
            ExportStatus::Failed => "failed",
            ExportStatus::Cancelled => "cancelled",
            ExportStatus::Expired => "expired",
        }
    }

    /// Queued or running: counts against the per-user limit and can be cancelled.
    pub const fn is_active(self) -> bool {
        matches!(self, ExportStatus::Queued | ExportStatus::Running)
    }
}

impl FromStr for ExportStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ExportStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown export status {s:?}"))
    }
}

impl TryFrom<String> for ExportStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for ExportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user asked for. Its canonical JSON identifies identical requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRequest {
    pub format: Format,
    pub compression: Compression,
    pub filters: ExportFilters,
    pub notify_email: bool,
    /// Fields and CSV options; the default (the documented file) leaves the hash as it was.
    #[serde(skip_serializing_if = "is_default_options")]
    pub options: FileOptions,
    /// Set when a schedule made the request: which schedule, for which occurrence. Part of
    /// the request's identity, so a backup is never mistaken for an identical ad-hoc export
    /// (or an earlier occurrence) that is still running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

fn is_default_options(options: &FileOptions) -> bool {
    *options == FileOptions::default()
}

/// The schedule occurrence an export is the backup of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub schedule_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
}

impl ExportRequest {
    /// SHA-256 (hex) of the canonical JSON of the request.
    pub fn hash(&self) -> String {
        // The order of values within a filter does not change what is exported.
        let mut canonical = self.clone();
        canonical.filters.status.sort_by_key(|s| s.as_str());
        canonical.filters.source.sort();
        canonical.filters.tag.sort();
        let canonical = serde_json::to_vec(&canonical).expect("a request serialises");
        hex::encode(Sha256::digest(canonical))
    }
}

/// One row of `exports`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ExportRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: ExportStatus,
    #[sqlx(try_from = "String")]
    pub format: Format,
    #[sqlx(try_from = "String")]
    pub compression: Compression,
    #[sqlx(json)]
    pub filters: ExportFilters,
    #[sqlx(json)]
    pub options: FileOptions,
    pub notify_email: bool,
    pub request_hash: String,
    pub idempotency_key: Option<String>,
    pub task_id: String,
    pub file_name: String,
    /// The stored file; set only once an attempt succeeded.
    pub object_key: Option<String>,
    pub upload_id: Option<String>,
    pub upload_key: Option<String>,
    pub rows_done: i64,
    pub rows_total: Option<i64>,
    pub bytes_written: i64,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    pub sha256: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub email_sent_at: Option<DateTime<Utc>>,
    /// The schedule this export is a backup of, while that schedule exists.
    pub schedule_id: Option<Uuid>,
}

impl ExportRecord {
    /// The stored object's Content-Type.
    pub fn content_type(&self) -> &'static str {
        match self.compression {
            Compression::Gzip => "application/gzip",
            Compression::None => self.format.content_type(),
        }
    }

    /// The stored object's Content-Disposition.
    pub fn content_disposition(&self) -> String {
        format!("attachment; filename=\"{}\"", self.file_name)
    }

    /// The stored file's key while it can be downloaded: succeeded and not past its expiry
    /// (a backup its schedule keeps has no expiry).
    pub fn downloadable_key(&self, now: DateTime<Utc>) -> Option<&str> {
        let live =
            self.status == ExportStatus::Succeeded && self.expires_at.is_none_or(|t| t > now);
        self.object_key.as_deref().filter(|_| live)
    }

    pub fn is_downloadable(&self, now: DateTime<Utc>) -> bool {
        self.downloadable_key(now).is_some()
    }
}

const COLUMNS: &str = "id, user_id, status, format, compression, filters, options, notify_email, request_hash, \
     idempotency_key, task_id, file_name, object_key, upload_id, upload_key, rows_done, rows_total, bytes_written, \
     row_count, byte_size, sha256, error_code, error_message, attempts, created_at, started_at, \
     finished_at, expires_at, email_sent_at, schedule_id";

fn select(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM exports WHERE {condition}")
}

/// The file name of an export created at `at`: `pipeline-jobs-YYYY-MM-DD.csv.gz`.
pub fn export_file_name(at: DateTime<Utc>, format: Format, compression: Compression) -> String {
    format!("{}{}", file_name(at, format), compression.suffix())
}

/// Where one attempt writes its file: `exports/{user}/{export}/{attempt}/{file}`. Each attempt
/// has its own key, so an attempt that lost its export to another (a worker presumed dead
/// that was only frozen) can neither overwrite nor delete the winner's file. The winner's key
/// becomes the export's `object_key`.
pub fn attempt_object_key(record: &ExportRecord, attempt: i32) -> String {
    format!(
        "exports/{}/{}/{attempt}/{}",
        record.user_id, record.id, record.file_name
    )
}

/// Every key the export's attempts so far may have written, and its `object_key`: what
/// deleting the export, or ending it without a file, must remove (an attempt whose worker
/// died after storing its file, before recording it, leaves a file only its key names).
pub fn all_object_keys(record: &ExportRecord) -> Vec<String> {
    let mut keys: Vec<String> = (1..=record.attempts)
        .map(|attempt| attempt_object_key(record, attempt))
        .collect();
    if let Some(key) = &record.object_key
        && !keys.contains(key)
    {
        keys.push(key.clone());
    }
    keys
}

/// How a creation request was settled.
#[derive(Debug)]
pub enum Created {
    /// A new export was queued.
    New(ExportRecord),
    /// The Idempotency-Key was seen before with the same request: the original export.
    Replayed(ExportRecord),
    /// An identical request is still queued or running: that export.
    Duplicate(ExportRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("too many exports in progress ({active} queued or running)")]
    TooManyActive { active: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Limits that apply when creating an export.
#[derive(Debug, Clone, Copy)]
pub struct CreateLimits {
    pub max_active_per_user: i64,
    pub max_attempts: u32,
}

/// Creates an export and its queue task in one transaction, after checking the
/// Idempotency-Key, identical active requests, and the per-user limit.
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    request: &ExportRequest,
    idempotency_key: Option<&str>,
    limits: CreateLimits,
) -> Result<Created, CreateError> {
    let mut tx = pool.begin().await?;
    let created = create_in(&mut tx, user_id, request, idempotency_key, limits).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create`] inside the caller's transaction (the scheduler records the run and advances
/// the schedule in the same one). Nothing is committed here.
pub async fn create_in(
    tx: &mut PgConnection,
    user_id: Uuid,
    request: &ExportRequest,
    idempotency_key: Option<&str>,
    limits: CreateLimits,
) -> Result<Created, CreateError> {
    let hash = request.hash();
    // One user's creations run one at a time, so the checks below cannot race each other.
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;

    if let Some(key) = idempotency_key {
        let seen: Option<ExportRecord> = sqlx::query_as(sqlx::AssertSqlSafe(select(
            "user_id = $1 AND idempotency_key = $2",
        )))
        .bind(user_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(seen) = seen {
            return if seen.request_hash == hash {
                Ok(Created::Replayed(seen))
            } else {
                Err(CreateError::IdempotencyConflict)
            };
        }
    }

    let active: Option<ExportRecord> = sqlx::query_as(sqlx::AssertSqlSafe(select(
        "user_id = $1 AND request_hash = $2 AND status IN ('queued', 'running')",
    )))
    .bind(user_id)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(active) = active {
        return Ok(Created::Duplicate(active));
    }

    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM exports WHERE user_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(user_id)
    .fetch_one(&mut *tx)
    .await?;
    if count >= limits.max_active_per_user {
        return Err(CreateError::TooManyActive { active: count });
    }

    let id = Uuid::new_v4();
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    let name = export_file_name(now, request.format, request.compression);
    let task_id = queue::enqueue(
        &mut *tx,
        EXPORTS_QUEUE,
        &ExportTask { export_id: id },
        limits.max_attempts,
        &format!("export:{id}"),
    )
    .await?
    .ok_or_else(|| sqlx::Error::Protocol("a new export's task id already exists".into()))?;
    let record: ExportRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO exports (id, user_id, format, compression, filters, notify_email, request_hash, \
         idempotency_key, task_id, file_name, created_at, schedule_id, options) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(user_id)
    .bind(request.format.as_str())
    .bind(request.compression.as_str())
    .bind(sqlx::types::Json(&request.filters))
    .bind(request.notify_email)
    .bind(&hash)
    .bind(idempotency_key)
    .bind(task_id)
    .bind(&name)
    .bind(now)
    .bind(request.origin.map(|o| o.schedule_id))
    .bind(sqlx::types::Json(&request.options))
    .fetch_one(&mut *tx)
    .await?;
    Ok(Created::New(record))
}

/// The user's export, if it exists.
pub async fn get(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ExportRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(select("id = $1 AND user_id = $2")))
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// An export by id alone: for workers and signed links, which carry no user.
pub async fn get_any(pool: &PgPool, id: Uuid) -> Result<Option<ExportRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(select("id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A position in the newest-first list of a user's exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn after(record: &ExportRecord) -> Cursor {
        Cursor {
            created_at: record.created_at,
            id: record.id,
        }
    }

    /// An opaque, URL-safe form.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (micros, id) = s.split_once('.')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// A page of the user's exports, newest first, and the cursor of the next page.
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    status: Option<ExportStatus>,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<ExportRecord>, Option<Cursor>), sqlx::Error> {
    let mut records: Vec<ExportRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{} ORDER BY created_at DESC, id DESC LIMIT $5",
        select(
            "user_id = $1 AND ($2::text IS NULL OR status = $2) \
             AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))"
        )
    )))
    .bind(user_id)
    .bind(status.map(ExportStatus::as_str))
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(Cursor::after)
    } else {
        None
    };
    Ok((records, next))
}

/// Cancels a queued or running export. `None` when it is not the user's or not active.
pub async fn cancel(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ExportRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE exports SET status = 'cancelled', finished_at = now() \
         WHERE id = $1 AND user_id = $2 AND status IN ('queued', 'running') RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

/// Locks a finished export for deletion; the caller deletes its object, then
/// [`delete_locked`], then commits.
pub async fn lock_finished(
    tx: &mut Transaction<'static, Postgres>,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ExportRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{} FOR UPDATE",
        select("id = $1 AND user_id = $2 AND status NOT IN ('queued', 'running')")
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn delete_locked(
    tx: &mut Transaction<'static, Postgres>,
    id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM exports WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::Status;

    fn request() -> ExportRequest {
        ExportRequest {
            format: Format::Csv,
            compression: Compression::Gzip,
            filters: ExportFilters::default(),
            notify_email: false,
            options: FileOptions::default(),
            origin: None,
        }
    }

    #[test]
    fn identical_requests_hash_alike_and_any_difference_shows() {
        assert_eq!(request().hash(), request().hash());
        let mut other = request();
        other.filters.status = vec![Status::Offer];
        assert_ne!(request().hash(), other.hash());
        let mut other = request();
        other.notify_email = true;
        assert_ne!(request().hash(), other.hash());
        let (mut a, mut b) = (request(), request());
        a.filters.tag = vec!["x".into(), "y".into()];
        b.filters.tag = vec!["y".into(), "x".into()];
        assert_eq!(a.hash(), b.hash(), "value order does not matter");
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let origin = |scheduled_for| Origin {
            schedule_id: Uuid::nil(),
            scheduled_for,
        };
        let (mut a, mut b) = (request(), request());
        a.origin = Some(origin(at));
        b.origin = Some(origin(at + chrono::Duration::days(7)));
        assert_ne!(
            a.hash(),
            request().hash(),
            "a backup is not an ad-hoc export"
        );
        assert_ne!(a.hash(), b.hash(), "nor another occurrence's backup");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "x",
            "1.2",
            "abc.00000000000000000000000000000000",
            "1'; --.x",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_keys() {
        let at = DateTime::parse_from_rfc3339("2026-03-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            export_file_name(at, Format::Csv, Compression::Gzip),
            "pipeline-jobs-2026-03-04.csv.gz"
        );
        assert_eq!(
            export_file_name(at, Format::Ndjson, Compression::None),
            "pipeline-jobs-2026-03-04.ndjson"
        );
    }
}
