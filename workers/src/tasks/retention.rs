//! Retention: files of exports past `expires_at` are deleted and the exports marked
//! `expired`. Rows are claimed with `FOR UPDATE SKIP LOCKED`, so any number of worker
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
    sqlx::query("UPDATE exports SET status = 'expired', upload_id = NULL WHERE id = ANY($1)")
        .bind(&expired)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(expired.len())
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
