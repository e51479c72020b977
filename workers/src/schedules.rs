//! Scheduled backups as records: schedules, their runs, and the scheduler's tick.
//!
//! A schedule makes an export at each occurrence of its cadence in its time zone. Every
//! function that takes a `user_id` scopes by it, so one user's schedule id is simply not
//! found for another.
//!
//! Exactly once per occurrence: a run row is unique per (schedule, scheduled instant), and
//! the tick writes it, queues the export and advances `next_run_at` in one transaction on
//! the schedule's locked row. Schedulers in any number of processes skip rows another holds
//! (`FOR UPDATE SKIP LOCKED`) and see the advanced `next_run_at` once it commits; a crash
//! before the commit leaves nothing behind, so the next tick runs the occurrence.
//!
//! After downtime the tick runs the newest due occurrence once and records the older ones
//! as `missed` (at most [`MAX_MISSED_RECORDED`] per catch-up).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::cadence::{Cadence, parse_timezone};
use crate::compress::Compression;
use crate::exports::{self, CreateError, CreateLimits, Created, Cursor, ExportRequest, Origin};
use crate::filters::ExportFilters;
use crate::format::{FileOptions, Format};

/// Most schedules one user may have.
pub const MAX_SCHEDULES_PER_USER: i64 = 25;
/// Most `missed` occurrences one catch-up records (the newest are kept).
pub const MAX_MISSED_RECORDED: usize = 100;
/// How long the link in a backup's email works at most. A backup its schedule keeps has no
/// expiry of its own; the link is checked against the backup's state on every use.
pub const BACKUP_LINK_DAYS: i64 = 365;
/// How long the pause link in a backup email works.
pub const PAUSE_LINK_DAYS: i64 = 365;

/// The token of a schedule's pause link (`/p/{token}`), valid [`PAUSE_LINK_DAYS`] from `now`.
pub fn pause_token(
    links: &crate::links::LinkSigner,
    schedule_id: Uuid,
    now: DateTime<Utc>,
) -> String {
    let until = now + chrono::Duration::days(PAUSE_LINK_DAYS);
    links.sign(schedule_id, until, crate::links::LinkPurpose::PauseSchedule)
}

/// What a run exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every job the filters select.
    Full,
    /// Only jobs updated since the previous successful run of the schedule began (all of
    /// them when there is none).
    Incremental,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(Mode::Full),
            "incremental" => Ok(Mode::Incremental),
            _ => Err("mode must be \"full\" or \"incremental\"".into()),
        }
    }
}

impl TryFrom<String> for Mode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a user chooses about a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: String,
    pub format: Format,
    pub compression: Compression,
    pub filters: ExportFilters,
    /// Fields and CSV options of the backups.
    pub options: FileOptions,
    pub cadence: Cadence,
    pub timezone: Tz,
    pub keep_last: i32,
    pub notify_email: bool,
    pub mode: Mode,
    pub paused: bool,
}

impl ScheduleSpec {
    /// A spec with the documented defaults: gzipped JSON of everything, UTC, keep 4, email.
    pub fn new(cadence: Cadence) -> ScheduleSpec {
        ScheduleSpec {
            name: default_name(&cadence),
            format: Format::Json,
            compression: Compression::Gzip,
            filters: ExportFilters::default(),
            options: FileOptions::default(),
            cadence,
            timezone: Tz::UTC,
            keep_last: 4,
            notify_email: true,
            mode: Mode::Full,
            paused: false,
        }
    }

    /// Checks what the types cannot; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        if !(1..=365).contains(&self.keep_last) {
            return Err(format!(
                "keep_last: must be a whole number from 1 to 365 (got {})",
                self.keep_last
            ));
        }
        self.cadence
            .validate()
            .map_err(|m| format!("cadence: {m}"))?;
        self.options.validate(self.format)?;
        self.filters
            .validate()
            .map_err(|e| format!("filters.{}", e.message))
    }
}

/// `Daily backup`, `Weekly backup`, `Monthly backup`.
pub fn default_name(cadence: &Cadence) -> String {
    match cadence {
        Cadence::Daily { .. } => "Daily backup",
        Cadence::Weekly { .. } => "Weekly backup",
        Cadence::Monthly { .. } => "Monthly backup",
    }
    .to_owned()
}

pub fn validate_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.trim().is_empty() || chars > 100 || name.chars().any(char::is_control) {
        return Err("name: must be 1 to 100 characters, without control characters".into());
    }
    Ok(())
}

/// One row of `export_schedules`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScheduleRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub format: Format,
    #[sqlx(try_from = "String")]
    pub compression: Compression,
    #[sqlx(json)]
    pub filters: ExportFilters,
    #[sqlx(json)]
    pub options: FileOptions,
    #[sqlx(json)]
    pub cadence: Cadence,
    pub timezone: String,
    pub keep_last: i32,
    pub notify_email: bool,
    #[sqlx(try_from = "String")]
    pub mode: Mode,
    pub paused: bool,
    pub next_run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduleRecord {
    /// The schedule's zone (stored names were validated; UTC should one ever vanish from
    /// the zone database).
    pub fn tz(&self) -> Tz {
        parse_timezone(&self.timezone).unwrap_or(Tz::UTC)
    }

    /// The next run, or `None` while paused.
    pub fn next_run(&self) -> Option<DateTime<Utc>> {
        (!self.paused).then_some(self.next_run_at)
    }

    /// `Monday, 7 December 2026 at 08:00 (Africa/Nairobi)`.
    pub fn readable_local(&self, at: DateTime<Utc>) -> String {
        format!(
            "{} ({})",
            at.with_timezone(&self.tz())
                .format("%A, %-d %B %Y at %H:%M"),
            self.timezone
        )
    }
}

const COLUMNS: &str = "id, user_id, name, format, compression, filters, options, cadence, timezone, keep_last, \
     notify_email, mode, paused, next_run_at, created_at, updated_at";

fn select(condition: &str) -> String {
    format!("SELECT {COLUMNS} FROM export_schedules WHERE {condition}")
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("at most {MAX_SCHEDULES_PER_USER} schedules per user; delete one first")]
    TooMany,
    #[error(transparent)]
    Export(#[from] CreateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a schedule; its first run is the cadence's first occurrence after `now`.
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    spec: &ScheduleSpec,
    now: DateTime<Utc>,
) -> Result<ScheduleRecord, ScheduleError> {
    let mut tx = pool.begin().await?;
    // One user's creations run one at a time, so the count below cannot race.
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM export_schedules WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_SCHEDULES_PER_USER {
        return Err(ScheduleError::TooMany);
    }
    let record: ScheduleRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO export_schedules (id, user_id, name, format, compression, filters, cadence, \
         timezone, keep_last, notify_email, mode, paused, next_run_at, options) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(&spec.name)
    .bind(spec.format.as_str())
    .bind(spec.compression.as_str())
    .bind(sqlx::types::Json(&spec.filters))
    .bind(sqlx::types::Json(&spec.cadence))
    .bind(spec.timezone.name())
    .bind(spec.keep_last)
    .bind(spec.notify_email)
    .bind(spec.mode.as_str())
    .bind(spec.paused)
    .bind(spec.cadence.next_after(spec.timezone, now))
    .bind(sqlx::types::Json(&spec.options))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(record)
}

pub async fn get(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ScheduleRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(select("id = $1 AND user_id = $2")))
        .bind(id)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// A schedule by id alone: for workers and signed links, which carry no user.
pub async fn get_any(pool: &PgPool, id: Uuid) -> Result<Option<ScheduleRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(select("id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The user's schedules, oldest first (there are at most [`MAX_SCHEDULES_PER_USER`]).
pub async fn list(pool: &PgPool, user_id: Uuid) -> Result<Vec<ScheduleRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{} ORDER BY created_at, id",
        select("user_id = $1")
    )))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Replaces a schedule's settings with `spec` (the caller merged the changes in). The next
/// run is recomputed from `now` when the cadence or zone changed or the schedule resumed;
/// otherwise it stays.
pub async fn update(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    change: impl FnOnce(&ScheduleRecord) -> Result<ScheduleSpec, String>,
    now: DateTime<Utc>,
) -> Result<Option<Result<ScheduleRecord, String>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let current: Option<ScheduleRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{} FOR UPDATE",
        select("id = $1 AND user_id = $2")
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(None);
    };
    let spec = match change(&current) {
        Ok(spec) => spec,
        Err(message) => return Ok(Some(Err(message))),
    };
    let retimed = spec.cadence != current.cadence
        || spec.timezone.name() != current.timezone
        || (current.paused && !spec.paused);
    let next_run_at = if retimed {
        spec.cadence.next_after(spec.timezone, now)
    } else {
        current.next_run_at
    };
    let record: ScheduleRecord = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE export_schedules SET name = $3, format = $4, compression = $5, filters = $6, \
         cadence = $7, timezone = $8, keep_last = $9, notify_email = $10, mode = $11, paused = $12, \
         next_run_at = $13, options = $14, updated_at = now() WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(user_id)
    .bind(&spec.name)
    .bind(spec.format.as_str())
    .bind(spec.compression.as_str())
    .bind(sqlx::types::Json(&spec.filters))
    .bind(sqlx::types::Json(&spec.cadence))
    .bind(spec.timezone.name())
    .bind(spec.keep_last)
    .bind(spec.notify_email)
    .bind(spec.mode.as_str())
    .bind(spec.paused)
    .bind(next_run_at)
    .bind(sqlx::types::Json(&spec.options))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Ok(record)))
}

/// The settings of a stored schedule, to merge changes into.
pub fn spec_of(record: &ScheduleRecord) -> ScheduleSpec {
    ScheduleSpec {
        name: record.name.clone(),
        format: record.format,
        compression: record.compression,
        filters: record.filters.clone(),
        options: record.options.clone(),
        cadence: record.cadence,
        timezone: record.tz(),
        keep_last: record.keep_last,
        notify_email: record.notify_email,
        mode: record.mode,
        paused: record.paused,
    }
}

/// Pauses a schedule by id alone (the signed pause link). `None` when it no longer exists.
pub async fn pause_any(pool: &PgPool, id: Uuid) -> Result<Option<ScheduleRecord>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE export_schedules SET paused = true, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Deletes a schedule: no further runs. Its backups stay, handed over to the ordinary
/// retention (`expires_at = now + retention`). Returns whether it existed.
pub async fn delete(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    retention: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM export_schedules WHERE id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Ok(false);
    }
    release_backups(&mut tx, Some(id), retention).await?;
    sqlx::query("DELETE FROM export_schedules WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives kept backups an expiry: those of schedule `id`, or (with `None`) any whose schedule
/// is gone. Returns how many.
pub async fn release_backups(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    retention: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE exports SET expires_at = now() + $2 * interval '1 second' \
         WHERE status = 'succeeded' AND expires_at IS NULL \
         AND (CASE WHEN $1::uuid IS NULL THEN schedule_id IS NULL ELSE schedule_id = $1 END)",
    )
    .bind(id)
    .bind(retention.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// What made a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The cadence.
    Schedule,
    /// `POST /api/export-schedules/{id}/run`.
    Manual,
    /// An occurrence passed while no scheduler ran; recorded, not run.
    Missed,
}

impl Trigger {
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Missed => "missed",
        }
    }
}

/// A run as its history shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunView {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: String,
    pub export_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub export_status: Option<String>,
    pub row_count: Option<i64>,
    pub byte_size: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

impl RunView {
    /// `missed`, the export's status, or `deleted` when the user deleted the backup.
    pub fn status(&self) -> &str {
        if self.trigger == Trigger::Missed.as_str() {
            "missed"
        } else {
            self.export_status.as_deref().unwrap_or("deleted")
        }
    }
}

const RUN_VIEW: &str = "SELECT r.id, r.schedule_id, r.scheduled_for, r.trigger, r.export_id, r.since, \
     r.created_at, e.status AS export_status, e.row_count, e.byte_size, e.error_code, e.error_message \
     FROM export_schedule_runs r LEFT JOIN exports e ON e.id = r.export_id";

/// A page of a schedule's runs, newest first, and the cursor of the next page.
pub async fn runs(
    pool: &PgPool,
    user_id: Uuid,
    schedule_id: Uuid,
    after: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<RunView>, Option<Cursor>), sqlx::Error> {
    let mut runs: Vec<RunView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{RUN_VIEW} WHERE r.schedule_id = $1 AND r.user_id = $2 \
         AND ($3::timestamptz IS NULL OR (r.scheduled_for, r.id) < ($3, $4)) \
         ORDER BY r.scheduled_for DESC, r.id DESC LIMIT $5"
    )))
    .bind(schedule_id)
    .bind(user_id)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = if runs.len() as i64 > limit {
        runs.truncate(limit as usize);
        runs.last().map(|r| Cursor {
            created_at: r.scheduled_for,
            id: r.id,
        })
    } else {
        None
    };
    Ok((runs, next))
}

async fn run_view(conn: &mut PgConnection, id: Uuid) -> Result<RunView, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{RUN_VIEW} WHERE r.id = $1")))
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Where an incremental run starts: when the newest successful run of the schedule began
/// (its first attempt's start, at or before its snapshot, so nothing falls between two
/// runs; a job changed in that instant appears in both). `None`: no successful run yet.
async fn incremental_since(
    conn: &mut PgConnection,
    schedule_id: Uuid,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT started_at FROM exports WHERE schedule_id = $1 \
         AND status IN ('succeeded', 'expired') AND started_at IS NOT NULL \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(schedule_id)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Records the run of `scheduled_for` and queues its export, in the caller's transaction.
/// Returns the run's id; `None` when that occurrence already has a run.
async fn start_run(
    tx: &mut PgConnection,
    schedule: &ScheduleRecord,
    scheduled_for: DateTime<Utc>,
    trigger: Trigger,
    limits: CreateLimits,
) -> Result<Option<Uuid>, ScheduleError> {
    let since = match schedule.mode {
        Mode::Full => None,
        Mode::Incremental => incremental_since(tx, schedule.id).await?,
    };
    let run_id = Uuid::new_v4();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO export_schedule_runs (id, schedule_id, user_id, scheduled_for, trigger, since) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (schedule_id, scheduled_for) DO NOTHING RETURNING id",
    )
    .bind(run_id)
    .bind(schedule.id)
    .bind(schedule.user_id)
    .bind(scheduled_for)
    .bind(trigger.as_str())
    .bind(since)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    let mut filters = schedule.filters.clone();
    if let Some(since) = since {
        filters.updated_since = Some(filters.updated_since.map_or(since, |own| own.max(since)));
    }
    let request = ExportRequest {
        format: schedule.format,
        compression: schedule.compression,
        filters,
        notify_email: schedule.notify_email,
        options: schedule.options.clone(),
        origin: Some(Origin {
            schedule_id: schedule.id,
            scheduled_for,
        }),
    };
    let export = match exports::create_in(tx, schedule.user_id, &request, None, limits).await? {
        Created::New(record) | Created::Replayed(record) | Created::Duplicate(record) => record,
    };
    sqlx::query("UPDATE export_schedule_runs SET export_id = $2 WHERE id = $1")
        .bind(run_id)
        .bind(export.id)
        .execute(&mut *tx)
        .await?;
    Ok(Some(run_id))
}

/// Runs a schedule now, outside its cadence (paused or not): the run and its export's
/// format. `None` when it is not the user's. The per-user limit on active exports applies.
pub async fn run_now(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
    limits: CreateLimits,
) -> Result<Option<(RunView, Format)>, ScheduleError> {
    let mut tx = pool.begin().await?;
    let schedule: Option<ScheduleRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{} FOR UPDATE",
        select("id = $1 AND user_id = $2")
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(schedule) = schedule else {
        return Ok(None);
    };
    // Two requests in the same microsecond would share an occurrence key: the later gets
    // the next microsecond.
    let mut at = now;
    loop {
        if let Some(run_id) = start_run(&mut tx, &schedule, at, Trigger::Manual, limits).await? {
            let run = run_view(&mut tx, run_id).await?;
            tx.commit().await?;
            return Ok(Some((run, schedule.format)));
        }
        at += chrono::Duration::microseconds(1);
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickSummary {
    /// Occurrences recorded as missed.
    pub missed: usize,
    /// Schedules that could not be handled this tick (logged; tried again next tick).
    pub failed: usize,
    /// The format of each run started (one per schedule that was due).
    pub formats: Vec<Format>,
}

impl TickSummary {
    /// Runs started.
    pub fn started(&self) -> usize {
        self.formats.len()
    }
}

/// Starts every due, unpaused schedule's run and advances it. Safe to call from any number
/// of processes at once; `now` is the scheduler's clock.
pub async fn tick(
    pool: &PgPool,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Result<TickSummary, sqlx::Error> {
    let mut summary = TickSummary::default();
    let mut skip: Vec<Uuid> = Vec::new();
    loop {
        let mut tx = pool.begin().await?;
        let due: Option<ScheduleRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{} ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            select("NOT paused AND next_run_at <= $1 AND id <> ALL($2)")
        )))
        .bind(now)
        .bind(&skip)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(schedule) = due else {
            return Ok(summary);
        };
        match run_due(&mut tx, &schedule, now, max_attempts).await {
            Ok(missed) => {
                tx.commit().await?;
                summary.missed += missed;
                summary.formats.push(schedule.format);
                tracing::info!(schedule_id = %schedule.id, missed, "scheduled backup queued");
            }
            Err(e) => {
                drop(tx);
                summary.failed += 1;
                skip.push(schedule.id);
                tracing::warn!(schedule_id = %schedule.id, error = %e, "could not start a scheduled backup; will retry");
            }
        }
    }
}

/// The due schedule's catch-up: missed occurrences recorded, the newest one run, the next
/// run set. Returns how many were recorded as missed.
async fn run_due(
    tx: &mut PgConnection,
    schedule: &ScheduleRecord,
    now: DateTime<Utc>,
    max_attempts: u32,
) -> Result<usize, ScheduleError> {
    let tz = schedule.tz();
    let due = schedule
        .cadence
        .due(tz, schedule.next_run_at, now, MAX_MISSED_RECORDED + 1);
    let mut missed = 0;
    if let Some((latest, older)) = due.split_last() {
        for at in older {
            let recorded = sqlx::query(
                "INSERT INTO export_schedule_runs (id, schedule_id, user_id, scheduled_for, trigger) \
                 VALUES ($1, $2, $3, $4, 'missed') ON CONFLICT (schedule_id, scheduled_for) DO NOTHING",
            )
            .bind(Uuid::new_v4())
            .bind(schedule.id)
            .bind(schedule.user_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            missed += recorded.rows_affected() as usize;
        }
        // The cadence sets the pace, so the per-user limit on active exports does not apply.
        let limits = CreateLimits {
            max_active_per_user: i64::MAX,
            max_attempts,
        };
        start_run(tx, schedule, *latest, Trigger::Schedule, limits).await?;
    }
    sqlx::query("UPDATE export_schedules SET next_run_at = $2 WHERE id = $1")
        .bind(schedule.id)
        .bind(schedule.cadence.next_after(tz, now))
        .execute(&mut *tx)
        .await?;
    Ok(missed)
}

/// Backups of schedules beyond their `keep_last` (newest first), of one schedule or of all:
/// `(export id, object key)`, at most `batch`.
pub async fn backups_beyond_keep(
    conn: &mut PgConnection,
    schedule_id: Option<Uuid>,
    batch: i64,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.id, e.object_key FROM exports e JOIN ( \
           SELECT e.id, s.keep_last, \
                  row_number() OVER (PARTITION BY e.schedule_id ORDER BY e.created_at DESC, e.id DESC) AS rank \
           FROM exports e JOIN export_schedules s ON s.id = e.schedule_id \
           WHERE e.status = 'succeeded' AND ($1::uuid IS NULL OR e.schedule_id = $1) \
         ) ranked ON ranked.id = e.id \
         WHERE ranked.rank > ranked.keep_last AND e.status = 'succeeded' AND e.object_key IS NOT NULL \
         LIMIT $2 FOR UPDATE OF e SKIP LOCKED",
    )
    .bind(schedule_id)
    .bind(batch)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let spec = ScheduleSpec::new(Cadence::Daily {
            time: "06:30".parse().unwrap(),
        });
        assert_eq!(spec.name, "Daily backup");
        assert_eq!(
            (spec.format, spec.compression),
            (Format::Json, Compression::Gzip)
        );
        assert_eq!(
            (spec.keep_last, spec.notify_email, spec.mode),
            (4, true, Mode::Full)
        );
        assert_eq!(spec.timezone, Tz::UTC);
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn validation_names_the_field() {
        let base = ScheduleSpec::new(Cadence::Daily {
            time: "06:30".parse().unwrap(),
        });
        let mut spec = base.clone();
        spec.keep_last = 0;
        assert!(spec.validate().unwrap_err().starts_with("keep_last"));
        let mut spec = base.clone();
        spec.name = "a\nb".into();
        assert!(spec.validate().unwrap_err().starts_with("name"));
        let mut spec = base;
        spec.name = "x".repeat(101);
        assert!(spec.validate().unwrap_err().starts_with("name"));
    }

    #[test]
    fn modes_parse() {
        assert_eq!("incremental".parse::<Mode>(), Ok(Mode::Incremental));
        assert!("partial".parse::<Mode>().is_err());
    }
}
