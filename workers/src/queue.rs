//! The durable queue: apalis' PostgreSQL storage (schema `apalis`). Tasks carry ids only; a
//! task reloads and re-checks what it needs when it runs.
//!
//! Tasks are inserted with plain SQL in the caller's transaction, so an export row and its
//! task commit together or not at all. apalis' insert trigger notifies listening workers
//! when the transaction commits.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use ulid::Ulid;
use uuid::Uuid;

pub const EXPORTS_QUEUE: &str = "exports";
pub const EMAILS_QUEUE: &str = "emails";

/// Produce the file of one export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportTask {
    pub export_id: Uuid,
}

/// Which email an export sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailKind {
    Ready,
    Failed,
}

impl EmailKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EmailKind::Ready => "ready",
            EmailKind::Failed => "failed",
        }
    }
}

/// Send the email that tells a user about an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailTask {
    pub export_id: Uuid,
    pub kind: EmailKind,
}

/// Creates apalis' schema (its own migrations, tracked apart from the app's).
pub async fn setup(pool: &sqlx::PgPool) -> Result<(), apalis_postgres::Error> {
    apalis_postgres::PostgresStorage::setup(pool).await
}

/// Inserts a task on `conn` (typically inside the caller's transaction). Returns the new
/// task's id, or `None` when a task with this idempotency key already exists in the queue.
pub async fn enqueue<T: Serialize>(
    conn: &mut PgConnection,
    queue: &str,
    task: &T,
    max_attempts: u32,
    idempotency_key: &str,
) -> Result<Option<String>, sqlx::Error> {
    let payload = serde_json::to_vec(task).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let id = Ulid::generate().to_string();
    sqlx::query_scalar(
        "INSERT INTO apalis.jobs (id, job_type, job, max_attempts, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (job_type, idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(queue)
    .bind(payload)
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(idempotency_key)
    .fetch_optional(conn)
    .await
}

/// Holds a task back: it is not fetched again before `delay` has passed. apalis re-fetches
/// failed tasks at once; this gives retries their backoff.
pub async fn delay_task(
    pool: &sqlx::PgPool,
    task_id: &str,
    delay: std::time::Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() + $2 * interval '1 millisecond' WHERE id = $1",
    )
    .bind(task_id)
    .bind(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX) as f64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Exponential backoff: `base`, 2×, 4×, ... capped at an hour.
pub fn backoff(base: std::time::Duration, attempt: u32) -> std::time::Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    base.saturating_mul(factor)
        .min(std::time::Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }

    #[test]
    fn payloads_are_the_json_apalis_decodes() {
        let id = Uuid::nil();
        assert_eq!(
            serde_json::to_string(&EmailTask {
                export_id: id,
                kind: EmailKind::Ready
            })
            .unwrap(),
            r#"{"export_id":"00000000-0000-0000-0000-000000000000","kind":"ready"}"#
        );
    }
}
