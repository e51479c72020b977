//! The email task: tells a user their export is ready (with a signed link) or failed.
//!
//! Its own task with its own retries, so an SMTP outage neither fails nor repeats the export.
//! A run claims the sending (`email_claimed_at`, with its attempt number) before it talks to
//! SMTP and records `email_sent_at` once the server accepted the message, so neither a retry
//! nor a second concurrent run sends again. A worker that dies holding the claim does not
//! lose the email: the queue hands the task to another worker as a later attempt, which
//! takes the claim over (a claim also lapses after five minutes). A crash between the
//! server's acceptance and the record can still send one duplicate; the message's
//! deterministic Message-ID lets mail systems spot it.

use std::sync::Arc;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId};
use chrono::Utc;
use tracing::Instrument;

use super::Services;
use crate::exports;
use crate::links::LinkPurpose;
use crate::mail::{
    BackupFacts, ExportFacts, FailureFacts, export_failed_email, export_ready_email,
};
use crate::queue::{self, EmailKind, EmailTask};
use crate::schedules;

/// The apalis handler.
pub async fn handle(
    task: EmailTask,
    services: Data<Arc<Services>>,
    attempt: Attempt,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX);
    let span = tracing::info_span!("email_task", export_id = %task.export_id, kind = task.kind.as_str(), attempt);
    async move {
        let services: &Services = &services;
        match deliver(services, &task, attempt).await {
            Ok(()) => Ok(()),
            Err(Undelivered::Retry(e)) if attempt < services.settings.email_max_attempts => {
                let delay = queue::backoff(services.settings.retry_base, attempt);
                tracing::warn!(error = %e, ?delay, "email not sent; will retry");
                services.metrics.email(task.kind.as_str(), "retried");
                if let Err(e) = queue::delay_task(&services.pool, &task_id.to_string(), delay).await
                {
                    tracing::warn!(error = %e, "could not delay the retry");
                }
                Err(e)
            }
            Err(Undelivered::Retry(e) | Undelivered::GiveUp(e)) => {
                tracing::error!(error = %e, "email could not be sent; giving up");
                services.metrics.email(task.kind.as_str(), "failed");
                Err(AbortError::new(e).into())
            }
        }
    }
    .instrument(span)
    .await
}

enum Undelivered {
    /// Worth another attempt (SMTP or database trouble).
    Retry(BoxDynError),
    /// No attempt can deliver it (a refused address, a permanent SMTP error).
    GiveUp(BoxDynError),
}

impl From<sqlx::Error> for Undelivered {
    fn from(e: sqlx::Error) -> Self {
        Undelivered::Retry(e.into())
    }
}

async fn deliver(services: &Services, task: &EmailTask, attempt: u32) -> Result<(), Undelivered> {
    let pool = &services.pool;
    let Some(record) = exports::get_any(pool, task.export_id).await? else {
        tracing::info!("export no longer exists; no email");
        return Ok(());
    };
    let to: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(record.user_id)
        .fetch_one(pool)
        .await?;
    let base = services.settings.public_base_url.trim_end_matches('/');
    let now = services.clock.now();
    let backup = match record.schedule_id {
        None => None,
        Some(id) => schedules::get_any(pool, id).await?.map(|s| {
            let token = schedules::pause_token(&services.links, s.id, now);
            BackupFacts {
                schedule_name: s.name.clone(),
                cadence: format!("{} ({})", s.cadence.describe(), s.timezone),
                next_run: s.next_run().map(|at| s.readable_local(at)),
                keep_last: s.keep_last,
                pause_link: format!("{base}/p/{token}"),
            }
        }),
    };
    let email = match task.kind {
        EmailKind::Ready => {
            if !record.is_downloadable(Utc::now()) {
                tracing::info!(status = %record.status, "export is no longer downloadable; no email");
                return Ok(());
            }
            // A backup its schedule keeps has no expiry: its link is bounded instead, and
            // checked against the backup's state on every use.
            let expires_at = record.expires_at.unwrap_or_else(|| {
                Utc::now() + chrono::Duration::days(schedules::BACKUP_LINK_DAYS)
            });
            let token = services
                .links
                .sign(record.id, expires_at, LinkPurpose::Download);
            export_ready_email(&ExportFacts {
                to,
                export_id: record.id,
                file_name: record.file_name.clone(),
                format: record.format.as_str().to_owned(),
                compression: record.compression.as_str().to_owned(),
                row_count: record.row_count.unwrap_or(0).max(0) as u64,
                byte_size: record.byte_size.unwrap_or(0).max(0) as u64,
                expires_at,
                link: format!("{base}/d/{token}"),
                created_at: record.created_at,
                backup,
            })
        }
        EmailKind::Failed => export_failed_email(&FailureFacts {
            to,
            export_id: record.id,
            file_name: record.file_name.clone(),
            error_code: record
                .error_code
                .clone()
                .unwrap_or_else(|| "EXPORT_FAILED".into()),
            error_message: record
                .error_message
                .clone()
                .unwrap_or_else(|| "The export could not be completed.".into()),
            created_at: record.created_at,
            backup,
        }),
    };
    // Claims the sending. A concurrent run of the same attempt finds the claim and sends
    // nothing; a later attempt (the holder stopped beating and the queue gave the task to
    // another worker) takes it over, as does anyone once it is five minutes old.
    let claimed = sqlx::query(
        "UPDATE exports SET email_claimed_at = now(), email_claim_attempt = $2 \
         WHERE id = $1 AND email_sent_at IS NULL \
         AND (email_claimed_at IS NULL OR email_claim_attempt IS NULL OR email_claim_attempt < $2 \
              OR email_claimed_at < now() - interval '5 minutes')",
    )
    .bind(record.id)
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 0 {
        tracing::info!("email already sent or being sent");
        return Ok(());
    }
    match services.mailer.send(&email).await {
        Ok(()) => {
            // Counted once on record: a failed UPDATE retries, and the claim keeps the
            // retry from sending again.
            sqlx::query("UPDATE exports SET email_sent_at = now() WHERE id = $1")
                .bind(record.id)
                .execute(pool)
                .await?;
            services.metrics.email(task.kind.as_str(), "sent");
            tracing::info!("email sent");
            Ok(())
        }
        Err(e) => {
            // Not sent: let the next attempt claim it.
            sqlx::query("UPDATE exports SET email_claimed_at = NULL WHERE id = $1")
                .bind(record.id)
                .execute(pool)
                .await?;
            if e.is_transient() {
                Err(Undelivered::Retry(e.into()))
            } else {
                Err(Undelivered::GiveUp(e.into()))
            }
        }
    }
}
