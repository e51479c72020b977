//! The export task: snapshot → writer → compression → an upload that becomes visible only
//! when complete.
//!
//! Safe to run twice, even at the same time: a task whose export is no longer queued or
//! running does nothing; each attempt claims the export with a lease and writes its own
//! object key, so an attempt that lost the export can neither overwrite nor delete the
//! winner's file; a crashed attempt's multipart upload is aborted by the next attempt, which
//! also deletes a file the crashed attempt completed but did not live to record; and only
//! the lease holder can move the export to `succeeded` (and so enqueue its one email).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, RetryAfterError, TaskId};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use super::Services;
use crate::engine::{ExportError, ExportPlan, run_export};
use crate::exports::{self, ExportRecord};
use crate::query::{ExportQuery, Snapshot};
use crate::queue::{self, EMAILS_QUEUE, EmailKind, EmailTask, ExportTask};
use crate::sink::{ByteSink, SinkError};
use crate::storage::{ObjectMeta, StorageError, Upload};

/// Why an attempt did not produce the file.
#[derive(Debug)]
pub enum Failure {
    /// Worth another attempt (database or storage trouble).
    Retryable {
        code: &'static str,
        message: &'static str,
        source: anyhow::Error,
    },
    /// No attempt can succeed; fail at once.
    Permanent { code: &'static str, message: String },
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Retryable {
            code: "DATABASE_UNAVAILABLE",
            message: "The database could not be read. Please try again later.",
            source: e.into(),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        if e.is_transient() {
            Failure::Retryable {
                code: "STORAGE_UNAVAILABLE",
                message: "The file could not be stored. Please try again later.",
                source: e.into(),
            }
        } else {
            tracing::error!(error = %e, "storage refused the export");
            Failure::Permanent {
                code: "STORAGE_ERROR",
                message: "The file could not be stored because of a storage configuration problem."
                    .into(),
            }
        }
    }
}

impl From<ExportError> for Failure {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Database(e) => e.into(),
            ExportError::Unwritable(message) => Failure::Permanent {
                code: "VALIDATION_ERROR",
                message,
            },
            ExportError::Sink(SinkError::Failed(inner)) => match inner.downcast::<StorageError>() {
                Ok(storage) => (*storage).into(),
                Err(other) => Failure::Retryable {
                    code: "STORAGE_UNAVAILABLE",
                    message: "The file could not be stored. Please try again later.",
                    source: anyhow::anyhow!(other),
                },
            },
            e => Failure::Retryable {
                code: "EXPORT_FAILED",
                message: "The export could not be completed. Please try again later.",
                source: e.into(),
            },
        }
    }
}

/// One attempt's hold on an export: the `attempts` value its claim wrote. Every later write
/// of the attempt requires it, so an attempt that lost the export to another (its worker was
/// presumed dead, then woke up) changes nothing.
#[derive(Debug, Clone, Copy)]
struct Lease {
    export_id: Uuid,
    attempt: i32,
}

/// The apalis handler.
pub async fn handle(
    task: ExportTask,
    services: Data<Arc<Services>>,
    attempt: Attempt,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    let span = tracing::info_span!("export_task", export_id = %task.export_id, attempt);
    async move {
        let services: &Services = &services;
        let pool = &services.pool;
        let task_id = task_id.to_string();
        // The task's own limit, as the front set it when it queued the task.
        let max_attempts = sqlx::query_scalar::<_, i32>("SELECT max_attempts FROM apalis.jobs WHERE id = $1")
            .bind(&task_id)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten()
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(services.settings.export_max_attempts);
        let retry_delay = queue::backoff(services.settings.retry_base, attempt);
        if attempt > max_attempts {
            // Taken over more often than allowed: every attempt took its worker down with it.
            tracing::error!("export was taken over after its last attempt; giving up");
            let message = "The export could not be completed. Please try again later.";
            return give_up(services, &task_id, task.export_id, None, "EXPORT_FAILED", message, retry_delay).await;
        }
        let (lease, failure) = match run_attempt(services, task.export_id).await {
            Ok(()) => return Ok(()),
            Err(failed) => failed,
        };
        match failure {
            Failure::Retryable { source, .. } if attempt < max_attempts => {
                tracing::warn!(error = format!("{source:#}"), delay = ?retry_delay, "export attempt failed; will retry");
                if let Err(e) = queue::delay_task(pool, &task_id, retry_delay).await {
                    tracing::warn!(error = %e, "could not delay the retry");
                }
                Err(source.into())
            }
            Failure::Retryable { code, message, source } => {
                tracing::error!(error = format!("{source:#}"), "export failed on its last attempt");
                give_up(services, &task_id, task.export_id, lease, code, message, retry_delay).await
            }
            Failure::Permanent { code, message } => {
                tracing::error!(code, message, "export failed permanently");
                give_up(services, &task_id, task.export_id, lease, code, &message, retry_delay).await
            }
        }
    }
    .instrument(span)
    .await
}

/// Records the failure and ends the task. Until the failure is on record the task stays
/// queued (apalis re-fetches `RetryAfterError` tasks whatever their attempt count), so an
/// export can never be left `running` by a database outage on its last attempt.
async fn give_up(
    services: &Services,
    task_id: &str,
    export_id: Uuid,
    lease: Option<Lease>,
    code: &str,
    message: &str,
    delay: Duration,
) -> Result<(), BoxDynError> {
    let email_attempts = services.settings.email_max_attempts;
    match mark_failed(
        &services.pool,
        export_id,
        lease,
        code,
        message,
        email_attempts,
    )
    .await
    {
        Ok(failed) => {
            // Counted by the attempt that recorded it, once.
            if let Some(format) = failed {
                services.metrics.export_finished(&format, "failed", None);
            }
            remove_files_of_ended(services, export_id).await;
            Err(AbortError::new(format!("{code}: {message}")).into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not record the failure; will try again");
            // apalis does not wait out RetryAfterError's delay itself; run_at does.
            if let Err(e) = queue::delay_task(&services.pool, task_id, delay).await {
                tracing::warn!(error = %e, "could not delay the retry");
            }
            Err(RetryAfterError::new(e, delay).into())
        }
    }
}

/// Claims the export for this attempt and produces it. Returns the lease with any failure
/// (none when the claim itself failed).
async fn run_attempt(services: &Services, export_id: Uuid) -> Result<(), (Option<Lease>, Failure)> {
    let pool = &services.pool;
    let record = match exports::get_any(pool, export_id).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::info!("export no longer exists; nothing to do");
            return Ok(());
        }
        Err(e) => return Err((None, e.into())),
    };
    // Claims the export; fails when it was cancelled or already finished.
    let claimed: Option<(i32, Option<String>, Option<String>)> = sqlx::query_as(
        "UPDATE exports SET status = 'running', started_at = COALESCE(started_at, now()), \
         attempts = attempts + 1, rows_done = 0, bytes_written = 0, error_code = NULL, error_message = NULL \
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING attempts, upload_id, upload_key",
    )
    .bind(export_id)
    .fetch_optional(pool)
    .await
    .map_err(|e| (None, e.into()))?;
    let Some((attempt, upload_id, upload_key)) = claimed else {
        tracing::info!(status = %record.status, "export is not active; nothing to do");
        // Cancelled (or failed) after an attempt died holding a stored file: remove it.
        remove_files_of_ended(services, export_id).await;
        return Ok(());
    };
    let lease = Lease { export_id, attempt };
    produce(services, &record, lease, upload_id.zip(upload_key))
        .await
        .map_err(|failure| (Some(lease), failure))
}

async fn produce(
    services: &Services,
    record: &ExportRecord,
    lease: Lease,
    previous_upload: Option<(String, String)>,
) -> Result<(), Failure> {
    let started = Instant::now();
    let pool = &services.pool;
    if let Some((upload_id, key)) = previous_upload {
        // An earlier attempt died mid-upload: leave no orphaned multipart upload behind. Until
        // it is aborted no new upload starts, so an export never has more than one.
        match services.storage.abort_upload(&key, &upload_id).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e.into()),
            // Refused for good (already gone, or the server will not say): nothing an attempt
            // can do; a bucket lifecycle rule for incomplete uploads is the backstop.
            Err(e) => {
                tracing::warn!(error = %e, %upload_id, "an earlier upload could not be aborted; leaving it")
            }
        }
        forget_upload(pool, lease).await?;
    }
    // An earlier attempt that died after its object became visible (the upload completed,
    // the success not yet recorded) left a whole file under its own key, which nothing
    // points to: remove it, so that an export has exactly one object. Deleting a missing
    // key is fine, and an earlier attempt still alive can no longer record its file (the
    // lease is this attempt's), so it deletes what it stores itself.
    remove_earlier_files(services, record, lease.attempt).await?;

    record.filters.validate().map_err(|e| Failure::Permanent {
        code: "VALIDATION_ERROR",
        message: e.message,
    })?;
    let snapshot = Snapshot::open(
        pool,
        ExportQuery {
            user_id: record.user_id,
            filters: record.filters.clone(),
            fields: record.options.fields_for(record.format),
            limit: None,
        },
    )
    .await?;
    sqlx::query("UPDATE exports SET rows_total = $2 WHERE id = $1 AND attempts = $3")
        .bind(lease.export_id)
        .bind(i64::try_from(snapshot.exported()).unwrap_or(i64::MAX))
        .bind(lease.attempt)
        .execute(pool)
        .await?;

    let key = exports::attempt_object_key(record, lease.attempt);
    let meta = ObjectMeta {
        content_type: record.content_type().to_owned(),
        content_disposition: record.content_disposition(),
        content_encoding: None,
    };
    let upload = services.storage.begin_upload(&key, &meta).await?;
    let mut sink = TrackedUpload {
        upload,
        pool,
        lease,
        hasher: Sha256::new(),
        bytes: 0,
        rows: 0,
        interval: services.settings.progress_interval,
        last_progress: Instant::now(),
        upload_id_saved: false,
    };
    let plan = ExportPlan {
        format: record.format,
        compression: record.compression,
        csv: record.options.csv,
    };
    let summary = match run_export(snapshot, plan, &mut sink).await {
        Ok(summary) => summary,
        Err(e) => {
            match sink.upload.abort().await {
                // Otherwise the upload id stays recorded: the next attempt or the retention
                // sweep aborts it once storage answers again.
                Ok(()) => forget_upload(pool, lease).await?,
                Err(abort) => tracing::warn!(error = %abort, "could not abort the upload"),
            }
            if matches!(e, ExportError::Sink(SinkError::Closed)) {
                tracing::info!("export was cancelled or taken over while running; upload aborted");
                return Ok(());
            }
            return Err(e.into());
        }
    };
    let sha256 = hex::encode(sink.hasher.finalize());
    let bytes = sink.bytes;
    sink.upload.complete().await?;
    let file = StoredFile {
        key: &key,
        rows: summary.rows,
        bytes,
        sha256: &sha256,
    };
    finish(services, record, lease, &file, started).await
}

/// Deletes the files attempts before `attempt` may have stored (see [`produce`]).
async fn remove_earlier_files(
    services: &Services,
    record: &ExportRecord,
    attempt: i32,
) -> Result<(), StorageError> {
    let keys = (1..attempt).map(|earlier| exports::attempt_object_key(record, earlier));
    delete_files(services, keys).await
}

/// An export that ended without a file (failed or cancelled) keeps none: an attempt may have
/// stored one before its worker died. Only once that end is on record, after which no
/// attempt can record a success; best effort, a file left behind is logged.
async fn remove_files_of_ended(services: &Services, export_id: Uuid) {
    use exports::ExportStatus::{Cancelled, Failed};
    let record = match exports::get_any(&services.pool, export_id).await {
        Ok(Some(record)) if matches!(record.status, Failed | Cancelled) => record,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the ended export to remove its files");
            return;
        }
    };
    if let Err(e) = delete_files(services, exports::all_object_keys(&record)).await {
        tracing::warn!(error = %e, "could not remove an ended export's files");
    }
}

/// Deletes `keys` (a missing one is fine). Storage that is down stops it with the error (an
/// attempt could not upload either); a refusal is logged and leaves that file, rather than
/// failing every attempt over a file nobody can reach.
async fn delete_files(
    services: &Services,
    keys: impl IntoIterator<Item = String>,
) -> Result<(), StorageError> {
    for key in keys {
        match services.storage.delete(&key).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => tracing::warn!(error = %e, %key, "could not delete an attempt's file"),
        }
    }
    Ok(())
}

/// The file an attempt stored.
struct StoredFile<'a> {
    key: &'a str,
    rows: u64,
    bytes: u64,
    sha256: &'a str,
}

async fn forget_upload(pool: &PgPool, lease: Lease) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE exports SET upload_id = NULL, upload_key = NULL WHERE id = $1 AND attempts = $2",
    )
    .bind(lease.export_id)
    .bind(lease.attempt)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks the export succeeded with this attempt's file and, in the same transaction, queues
/// its email. A backup its schedule keeps gets no expiry; once it is recorded, the
/// schedule's backups beyond its `keep_last` are deleted.
async fn finish(
    services: &Services,
    record: &ExportRecord,
    lease: Lease,
    file: &StoredFile<'_>,
    started: Instant,
) -> Result<(), Failure> {
    let StoredFile {
        key,
        rows,
        bytes,
        sha256,
    } = *file;
    let pool = &services.pool;
    let retention_secs = services.settings.retention.as_secs_f64();
    let mut tx = pool.begin().await?;
    let finished: Option<(bool, Option<Uuid>)> = sqlx::query_as(
        "UPDATE exports SET status = 'succeeded', object_key = $6, row_count = $2, byte_size = $3, \
         sha256 = $4, rows_done = $2, bytes_written = $3, upload_id = NULL, upload_key = NULL, \
         finished_at = now(), \
         expires_at = CASE WHEN schedule_id IS NULL THEN now() + $5 * interval '1 second' END \
         WHERE id = $1 AND status = 'running' AND attempts = $7 RETURNING notify_email, schedule_id",
    )
    .bind(record.id)
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .bind(sha256)
    .bind(retention_secs)
    .bind(key)
    .bind(lease.attempt)
    .fetch_optional(&mut *tx)
    .await?;
    match finished {
        None => {
            // Cancelled, deleted or taken over while the upload completed: this attempt's
            // file is nobody's; remove it.
            tx.rollback().await?;
            tracing::info!("export is no longer this attempt's; deleting its file");
            if let Err(e) = services.storage.delete(key).await {
                // Leave the key for the retention sweep rather than a file nobody knows of.
                tracing::warn!(error = %e, "could not delete the file; the retention sweep will");
                sqlx::query(
                    "UPDATE exports SET upload_key = $2 \
                     WHERE id = $1 AND attempts = $3 AND upload_id IS NULL AND status <> 'succeeded'",
                )
                .bind(record.id)
                .bind(key)
                .bind(lease.attempt)
                .execute(pool)
                .await?;
            }
        }
        Some((notify, schedule_id)) => {
            if notify {
                enqueue_email(
                    &mut tx,
                    record.id,
                    EmailKind::Ready,
                    services.settings.email_max_attempts,
                )
                .await?;
            }
            tx.commit().await?;
            tracing::info!(rows, bytes, "export succeeded");
            services.metrics.export_finished(
                record.format.as_str(),
                "succeeded",
                Some((started.elapsed(), bytes, rows)),
            );
            if let Some(schedule_id) = schedule_id {
                // Best effort: the retention sweep prunes whatever this leaves.
                if let Err(e) =
                    super::retention::prune_backups(services, Some(schedule_id), 100).await
                {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not prune older backups; the retention sweep will"
                    );
                }
            }
        }
    }
    Ok(())
}

async fn enqueue_email(
    tx: &mut sqlx::PgConnection,
    export_id: Uuid,
    kind: EmailKind,
    max_attempts: u32,
) -> Result<(), sqlx::Error> {
    queue::enqueue(
        tx,
        EMAILS_QUEUE,
        &EmailTask { export_id, kind },
        max_attempts,
        &format!("email:{export_id}:{}", kind.as_str()),
    )
    .await?;
    Ok(())
}

/// Marks the export failed with a readable reason and queues the failure email. With a
/// lease, only if this attempt still holds the export.
async fn mark_failed(
    pool: &PgPool,
    export_id: Uuid,
    lease: Option<Lease>,
    code: &str,
    message: &str,
    email_max_attempts: u32,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let failed: Option<(bool, String)> = sqlx::query_as(
        "UPDATE exports SET status = 'failed', error_code = $2, error_message = $3, \
         finished_at = now() WHERE id = $1 AND status IN ('queued', 'running') \
         AND ($4::int IS NULL OR attempts = $4) RETURNING notify_email, format",
    )
    .bind(export_id)
    .bind(code)
    .bind(message)
    .bind(lease.map(|l| l.attempt))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((true, _)) = failed {
        enqueue_email(&mut tx, export_id, EmailKind::Failed, email_max_attempts).await?;
    }
    tx.commit().await?;
    Ok(failed.map(|(_, format)| format))
}

/// The upload, plus what the export record needs: the object's SHA-256 and size, progress
/// written back at most once per interval, and cancellation noticed at the same pace.
struct TrackedUpload<'a> {
    upload: Upload,
    pool: &'a PgPool,
    lease: Lease,
    hasher: Sha256,
    bytes: u64,
    rows: u64,
    interval: Duration,
    last_progress: Instant,
    upload_id_saved: bool,
}

impl TrackedUpload<'_> {
    /// Records a newly started multipart upload (whatever the export's status, so even a
    /// cancelled export's upload can be aborted later); `Closed` if the lease was lost.
    async fn save_upload_id(&mut self) -> Result<(), SinkError> {
        let Some(upload_id) = self.upload.upload_id().map(str::to_owned) else {
            return Ok(());
        };
        let saved = sqlx::query(
            "UPDATE exports SET upload_id = $2, upload_key = $3 WHERE id = $1 AND attempts = $4",
        )
        .bind(self.lease.export_id)
        .bind(&upload_id)
        .bind(self.upload.key())
        .bind(self.lease.attempt)
        .execute(self.pool)
        .await
        .map_err(|e| SinkError::Failed(Box::new(e)))?;
        self.upload_id_saved = true;
        match saved.rows_affected() {
            0 => Err(SinkError::Closed),
            _ => Ok(()),
        }
    }

    /// Writes progress; `Closed` when the export is no longer this attempt's to produce
    /// (cancelled, deleted, or taken over).
    async fn report(&mut self) -> Result<(), SinkError> {
        let running: Option<bool> = sqlx::query_scalar(
            "UPDATE exports SET rows_done = $2, bytes_written = $3 \
             WHERE id = $1 AND status = 'running' AND attempts = $4 RETURNING true",
        )
        .bind(self.lease.export_id)
        .bind(i64::try_from(self.rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(self.bytes).unwrap_or(i64::MAX))
        .bind(self.lease.attempt)
        .fetch_optional(self.pool)
        .await
        .map_err(|e| SinkError::Failed(Box::new(e)))?;
        self.last_progress = Instant::now();
        match running {
            Some(_) => Ok(()),
            None => Err(SinkError::Closed),
        }
    }
}

impl ByteSink for TrackedUpload<'_> {
    async fn send(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        self.hasher.update(&chunk);
        self.bytes += chunk.len() as u64;
        self.upload.send(chunk).await?;
        // A new multipart upload is recorded at once, so a crash cannot orphan it.
        if !self.upload_id_saved && self.upload.upload_id().is_some() {
            self.save_upload_id().await?;
        }
        if self.last_progress.elapsed() >= self.interval {
            self.report().await?;
        }
        Ok(())
    }

    fn rows_written(&mut self, rows: u64) {
        self.rows = rows;
    }
}
