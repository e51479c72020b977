//! The export task: snapshot → writer → compression → an upload that becomes visible only
//! when complete.
//!
//! Safe to run twice: a task whose export is no longer queued or running does nothing; the
//! object key is fixed per export, so a re-run overwrites rather than duplicates; a crashed
//! attempt's multipart upload is aborted by the next attempt; and only one attempt can move
//! the export to `succeeded` (and so enqueue its one email).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId};
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
        match produce(services, task.export_id).await {
            Ok(()) => Ok(()),
            Err(Failure::Retryable { source, .. })
                if attempt < services.settings.export_max_attempts =>
            {
                let delay = queue::backoff(services.settings.retry_base, attempt);
                tracing::warn!(
                    error = format!("{source:#}"),
                    ?delay,
                    "export attempt failed; will retry"
                );
                if let Err(e) = queue::delay_task(&services.pool, &task_id.to_string(), delay).await
                {
                    tracing::warn!(error = %e, "could not delay the retry");
                }
                Err(source.into())
            }
            Err(failure) => {
                let (code, message) = match &failure {
                    Failure::Retryable {
                        code,
                        message,
                        source,
                    } => {
                        tracing::error!(
                            error = format!("{source:#}"),
                            "export failed on its last attempt"
                        );
                        (*code, (*message).to_owned())
                    }
                    Failure::Permanent { code, message } => {
                        tracing::error!(code, message, "export failed permanently");
                        (*code, message.clone())
                    }
                };
                mark_failed(
                    &services.pool,
                    task.export_id,
                    code,
                    &message,
                    services.settings.email_max_attempts,
                )
                .await?;
                Err(AbortError::new(format!("{code}: {message}")).into())
            }
        }
    }
    .instrument(span)
    .await
}

async fn produce(services: &Services, export_id: Uuid) -> Result<(), Failure> {
    let pool = &services.pool;
    let Some(record) = exports::get_any(pool, export_id).await? else {
        tracing::info!("export no longer exists; nothing to do");
        return Ok(());
    };
    // Claims the export for this attempt; fails when it was cancelled or already finished.
    let claimed: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE exports SET status = 'running', started_at = COALESCE(started_at, now()), \
         attempts = attempts + 1, rows_done = 0, bytes_written = 0, error_code = NULL, error_message = NULL \
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING upload_id",
    )
    .bind(export_id)
    .fetch_optional(pool)
    .await?;
    let Some(previous_upload) = claimed else {
        tracing::info!(status = %record.status, "export is not active; nothing to do");
        return Ok(());
    };
    if let Some(upload_id) = previous_upload {
        // An earlier attempt died mid-upload: leave no orphaned multipart upload behind. Until
        // it is aborted no new upload starts, so an export never has more than one.
        match services
            .storage
            .abort_upload(&record.object_key, &upload_id)
            .await
        {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e.into()),
            // Refused for good (already gone, or the server will not say): nothing an attempt
            // can do; a bucket lifecycle rule for incomplete uploads is the backstop.
            Err(e) => {
                tracing::warn!(error = %e, %upload_id, "an earlier upload could not be aborted; leaving it")
            }
        }
        forget_upload(pool, export_id).await?;
    }

    record.filters.validate().map_err(|e| Failure::Permanent {
        code: "VALIDATION_ERROR",
        message: e.message,
    })?;
    let snapshot = Snapshot::open(
        pool,
        ExportQuery {
            user_id: record.user_id,
            filters: record.filters.clone(),
            fields: record.format.default_fields().to_vec(),
            limit: None,
        },
    )
    .await?;
    sqlx::query("UPDATE exports SET rows_total = $2 WHERE id = $1")
        .bind(export_id)
        .bind(i64::try_from(snapshot.exported()).unwrap_or(i64::MAX))
        .execute(pool)
        .await?;

    let meta = ObjectMeta {
        content_type: record.content_type().to_owned(),
        content_disposition: record.content_disposition(),
        content_encoding: None,
    };
    let upload = services
        .storage
        .begin_upload(&record.object_key, &meta)
        .await?;
    let mut sink = TrackedUpload {
        upload,
        pool,
        export_id,
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
    };
    let summary = match run_export(snapshot, plan, &mut sink).await {
        Ok(summary) => summary,
        Err(e) => {
            match sink.upload.abort().await {
                // Otherwise the upload id stays recorded: the next attempt or the retention
                // sweep aborts it once storage answers again.
                Ok(()) => forget_upload(pool, export_id).await?,
                Err(abort) => tracing::warn!(error = %abort, "could not abort the upload"),
            }
            if matches!(e, ExportError::Sink(SinkError::Closed)) {
                tracing::info!("export was cancelled while running; upload aborted");
                return Ok(());
            }
            return Err(e.into());
        }
    };
    let sha256 = hex::encode(sink.hasher.finalize());
    let bytes = sink.bytes;
    sink.upload.complete().await?;
    finish(services, &record, summary.rows, bytes, &sha256).await
}

async fn forget_upload(pool: &PgPool, export_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE exports SET upload_id = NULL WHERE id = $1")
        .bind(export_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks the export succeeded and, in the same transaction, queues its email.
async fn finish(
    services: &Services,
    record: &ExportRecord,
    rows: u64,
    bytes: u64,
    sha256: &str,
) -> Result<(), Failure> {
    let pool = &services.pool;
    let retention_secs = services.settings.retention.as_secs_f64();
    let mut tx = pool.begin().await?;
    let notify: Option<bool> = sqlx::query_scalar(
        "UPDATE exports SET status = 'succeeded', row_count = $2, byte_size = $3, sha256 = $4, \
         rows_done = $2, bytes_written = $3, upload_id = NULL, finished_at = now(), \
         expires_at = now() + $5 * interval '1 second' \
         WHERE id = $1 AND status = 'running' RETURNING notify_email",
    )
    .bind(record.id)
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .bind(sha256)
    .bind(retention_secs)
    .fetch_optional(&mut *tx)
    .await?;
    match notify {
        None => {
            // Cancelled (or deleted) while the upload completed: remove the file.
            tx.rollback().await?;
            tracing::info!("export was cancelled as it finished; deleting its file");
            services.storage.delete(&record.object_key).await?;
        }
        Some(notify) => {
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

/// Marks the export failed with a readable reason and queues the failure email.
async fn mark_failed(
    pool: &PgPool,
    export_id: Uuid,
    code: &str,
    message: &str,
    email_max_attempts: u32,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let notify: Option<bool> = sqlx::query_scalar(
        "UPDATE exports SET status = 'failed', error_code = $2, error_message = $3, \
         finished_at = now() WHERE id = $1 AND status IN ('queued', 'running') RETURNING notify_email",
    )
    .bind(export_id)
    .bind(code)
    .bind(message)
    .fetch_optional(&mut *tx)
    .await?;
    if notify == Some(true) {
        enqueue_email(&mut tx, export_id, EmailKind::Failed, email_max_attempts).await?;
    }
    tx.commit().await
}

/// The upload, plus what the export record needs: the object's SHA-256 and size, progress
/// written back at most once per interval, and cancellation noticed at the same pace.
struct TrackedUpload<'a> {
    upload: Upload,
    pool: &'a PgPool,
    export_id: Uuid,
    hasher: Sha256,
    bytes: u64,
    rows: u64,
    interval: Duration,
    last_progress: Instant,
    upload_id_saved: bool,
}

impl TrackedUpload<'_> {
    /// Writes progress; `Closed` when the export is no longer running (cancelled, deleted).
    async fn report(&mut self) -> Result<(), SinkError> {
        let upload_id = if self.upload_id_saved {
            None
        } else {
            self.upload.upload_id().map(str::to_owned)
        };
        let running: Option<bool> = sqlx::query_scalar(
            "UPDATE exports SET rows_done = $2, bytes_written = $3, upload_id = COALESCE($4, upload_id) \
             WHERE id = $1 AND status = 'running' RETURNING true",
        )
        .bind(self.export_id)
        .bind(i64::try_from(self.rows).unwrap_or(i64::MAX))
        .bind(i64::try_from(self.bytes).unwrap_or(i64::MAX))
        .bind(upload_id.as_deref())
        .fetch_optional(self.pool)
        .await
        .map_err(|e| SinkError::Failed(Box::new(e)))?;
        self.upload_id_saved |= upload_id.is_some();
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
        let new_upload = !self.upload_id_saved && self.upload.upload_id().is_some();
        if new_upload || self.last_progress.elapsed() >= self.interval {
            self.report().await?;
        }
        Ok(())
    }

    fn rows_written(&mut self, rows: u64) {
        self.rows = rows;
    }
}
