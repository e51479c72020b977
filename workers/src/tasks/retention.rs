//! Retention: files of exports past `expires_at` are deleted and the exports marked
//! `expired`; backups beyond their schedule's `keep_last` likewise; backups whose schedule
//! was deleted get the ordinary expiry; multipart uploads that a finished export could not abort (storage was down)
//! are aborted. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of worker
//! processes can sweep at once without doing the same work twice.

use std::sync::Arc;

use uuid::Uuid;

use super::Services;

/// Deletes up to `batch` expired files; returns how many exports were marked expired.
pub async fn sweep(services: &Services, batch: i64) -> anyhow::Result<usize> {
    let mut tx = services.pool.begin().await?;
    let due: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, object_key FROM exports WHERE status = 'succeeded' AND expires_at <= now() \
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut expired = Vec::with_capacity(due.len());
    for (id, key) in due {
        match services.storage.delete(&key).await {
            Ok(()) => expired.push(id),
            Err(e) => {
                tracing::warn!(export_id = %id, error = %e, "could not delete an expired file; will retry")
            }
        }
    }
    sqlx::query("UPDATE exports SET status = 'expired' WHERE id = ANY($1)")
        .bind(&expired)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(expired.len())
}

/// Deletes the files of up to `batch` backups beyond their schedule's `keep_last` (of one
/// schedule, or of all) and marks them `expired`; returns how many.
pub async fn prune_backups(
    services: &Services,
    schedule_id: Option<Uuid>,
    batch: i64,
) -> anyhow::Result<usize> {
    let mut tx = services.pool.begin().await?;
    let due = crate::schedules::backups_beyond_keep(&mut tx, schedule_id, batch).await?;
    let mut pruned = Vec::with_capacity(due.len());
    for (id, key) in due {
        match services.storage.delete(&key).await {
            Ok(()) => pruned.push(id),
            Err(e) => {
                tracing::warn!(export_id = %id, error = %e, "could not delete an old backup; will retry")
            }
        }
    }
    sqlx::query("UPDATE exports SET status = 'expired', expires_at = now() WHERE id = ANY($1)")
        .bind(&pruned)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if !pruned.is_empty() {
        tracing::info!(
            pruned = pruned.len(),
            "retention: deleted backups beyond their schedule's keep_last"
        );
    }
    Ok(pruned.len())
}

/// Gives backups whose schedule is gone the ordinary expiry. Deleting a schedule does this
/// for its own backups; this catches any the deletion raced with (a backup finishing at
/// that moment).
pub async fn release_orphaned_backups(services: &Services) -> anyhow::Result<u64> {
    let mut conn = services.pool.acquire().await?;
    Ok(crate::schedules::release_backups(&mut conn, None, services.settings.retention).await?)
}

/// Aborts up to `batch` uploads left behind by finished exports; returns how many.
pub async fn abort_leftover_uploads(services: &Services, batch: i64) -> anyhow::Result<usize> {
    let mut tx = services.pool.begin().await?;
    let left: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, upload_key, upload_id FROM exports \
         WHERE upload_id IS NOT NULL AND upload_key IS NOT NULL AND status NOT IN ('queued', 'running') \
         LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut aborted = Vec::with_capacity(left.len());
    for (id, key, upload_id) in left {
        match services.storage.abort_upload(&key, &upload_id).await {
            Ok(()) => aborted.push(id),
            Err(e) if !e.is_transient() => {
                tracing::warn!(export_id = %id, error = %e, "a leftover upload cannot be aborted; leaving it");
                aborted.push(id);
            }
            Err(e) => {
                tracing::warn!(export_id = %id, error = %e, "could not abort a leftover upload; will retry")
            }
        }
    }
    sqlx::query("UPDATE exports SET upload_id = NULL, upload_key = NULL WHERE id = ANY($1)")
        .bind(&aborted)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(aborted.len())
}

/// Deletes up to `batch` files that attempts of cancelled exports completed but could not
/// delete (recorded as an `upload_key` without an `upload_id`); returns how many.
pub async fn delete_stray_files(services: &Services, batch: i64) -> anyhow::Result<usize> {
    let mut tx = services.pool.begin().await?;
    let stray: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, upload_key FROM exports \
         WHERE upload_key IS NOT NULL AND upload_id IS NULL AND status NOT IN ('queued', 'running', 'succeeded') \
         LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let mut deleted = Vec::with_capacity(stray.len());
    for (id, key) in stray {
        match services.storage.delete(&key).await {
            Ok(()) => deleted.push(id),
            Err(e) => {
                tracing::warn!(export_id = %id, error = %e, "could not delete a stray file; will retry")
            }
        }
    }
    sqlx::query("UPDATE exports SET upload_key = NULL WHERE id = ANY($1)")
        .bind(&deleted)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.len())
}

/// Deletes finished queue tasks older than the retention period, so `apalis.jobs` does not
/// grow forever; the export rows keep the history users see.
pub async fn prune_tasks(services: &Services) -> anyhow::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM apalis.jobs WHERE job_type IN ('exports', 'emails') \
         AND status IN ('Done', 'Killed') AND done_at < now() - $1 * interval '1 second'",
    )
    .bind(services.settings.retention.as_secs_f64())
    .execute(&services.pool)
    .await?;
    Ok(done.rows_affected())
}

/// Sweeps every `retention_interval` until `stop` turns true.
pub async fn run(services: Arc<Services>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(services.settings.retention_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if let Err(e) = prune_tasks(&services).await {
            tracing::warn!(error = format!("{e:#}"), "pruning finished tasks failed");
        }
        match delete_stray_files(&services, 100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "retention: deleted stray files of cancelled exports"
            ),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "deleting stray files failed"),
        }
        match abort_leftover_uploads(&services, 100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(aborted = n, "retention: aborted leftover uploads"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "aborting leftover uploads failed"),
        }
        match release_orphaned_backups(&services).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                released = n,
                "retention: backups of deleted schedules now expire as usual"
            ),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "releasing backups of deleted schedules failed"
            ),
        }
        if let Err(e) = prune_backups(&services, None, 100).await {
            tracing::warn!(error = format!("{e:#}"), "pruning old backups failed");
        }
        loop {
            match sweep(&services, 100).await {
                Ok(0) => break,
                Ok(n) => tracing::info!(expired = n, "retention: deleted expired export files"),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "retention sweep failed");
                    break;
                }
            }
        }
    }
}
