//! The connection pool, the app's migrations, and the user lookups the CLI needs.

use std::time::Duration;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::config::DatabaseConfig;

/// The app's schema (`migrations/`), embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Opens a pool. Connections are made on demand, so the process starts (and `/readyz`
/// reports 503) while PostgreSQL is away, and recovers when it returns.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = config
        .url
        .expose()
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    // Named in pg_stat_activity, unless the URL names it (`?application_name=...`).
    let options = match options.get_application_name() {
        Some(_) => options,
        None => options.application_name("pipeline-export"),
    };
    // An export is one long statement by design; sqlx would call every large one "slow".
    let options = options.log_slow_statements(log::LevelFilter::Off, Duration::from_secs(1));
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Applies pending migrations, the app's and the task queue's (safe to run from several processes at once: sqlx takes an
/// advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")?;
    workers::queue::setup(pool)
        .await
        .context("setting up the task queue (schema apalis)")
}

/// Normalises an email address for storage and lookup; rejects what is clearly not one.
pub fn normalize_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    anyhow::ensure!(valid, "{email:?} is not an email address");
    Ok(email)
}

/// The id of the user with this email, if any.
pub async fn find_user(pool: &PgPool, email: &str) -> anyhow::Result<Option<Uuid>> {
    let email = normalize_email(email)?;
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
        .context("looking up the user")
}

/// The id of the user with this email, created if missing; `true` when it was created.
pub async fn ensure_user(pool: &PgPool, email: &str) -> anyhow::Result<(Uuid, bool)> {
    let email = normalize_email(email)?;
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (email) VALUES ($1) ON CONFLICT (email) DO NOTHING RETURNING id",
    )
    .bind(&email)
    .fetch_optional(pool)
    .await
    .context("creating the user")?;
    if let Some(id) = created {
        return Ok((id, true));
    }
    let id = find_user(pool, &email)
        .await?
        .context("the user vanished while being created")?;
    Ok((id, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert!(normalize_email("nobody").is_err());
        assert!(normalize_email("@x").is_err());
        assert!(normalize_email("a b@x").is_err());
    }
}
