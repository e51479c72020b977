//! `pipeline-export doctor`: checks, with this process's configuration, everything the
//! service depends on, and says what works and what to fix.
//!
//! - **config**: the settings parse (`LINK_SECRET`, durations, storage and mail settings);
//!   `JWT_SECRET` missing is a warning (only `serve` needs it).
//! - **database**: PostgreSQL answers within 5 s.
//! - **migrations**: every migration this binary has is applied, and apalis's queue schema
//!   exists.
//! - **storage**: a probe object is written, read back, fetched through a presigned GET (as
//!   a browser would fetch a download), and deleted.
//! - **mail**: the SMTP server connects and answers EHLO (nothing is sent), or the mail
//!   directory takes a file.
//! - **queue**: how many tasks wait and for how long (information).
//!
//! Local fallbacks (no `S3_BUCKET`, no `SMTP_URL`) work on one machine and are warnings.
//! The probe object is deleted whatever failed. Exit code 0 when nothing failed (warnings
//! included), 1 otherwise.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use workers::sink::ByteSink;
use workers::storage::{ObjectMeta, Storage, StorageConfig};

use crate::config::{BackgroundArgs, DatabaseArgs, Secret};

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
    /// Not tried: what it needs failed.
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    /// What to do about a failure or a warning.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            outcome: Outcome::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            outcome: Outcome::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn skipped(name: &'static str, because: &str) -> Check {
        Check {
            name,
            outcome: Outcome::Skipped,
            detail: format!("needs {because}"),
            fix: None,
        }
    }
}

/// Runs every check, in order.
pub async fn run(
    database: &DatabaseArgs,
    background: &BackgroundArgs,
    jwt_secret: Option<&Secret>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = background.config();
    checks.push(match (&config, jwt_secret) {
        (Err(e), _) => Check::fail("config", e.to_string(), "set the variable it names"),
        (Ok(_), None) => Check {
            name: "config",
            outcome: Outcome::Warn,
            detail: "JWT_SECRET is not set".into(),
            fix: Some("`serve` and `all` need JWT_SECRET; workers do not".into()),
        },
        (Ok(_), Some(_)) => Check::ok("config", "settings parse; LINK_SECRET and JWT_SECRET set"),
    });

    let pool = match database.config() {
        Err(e) => {
            checks.push(Check::fail("database", e.to_string(), "set DATABASE_URL"));
            None
        }
        Ok(db) => {
            let (check, pool) = check_database(&db).await;
            checks.push(check);
            pool
        }
    };
    checks.push(match &pool {
        Some(pool) => check_migrations(pool).await,
        None => Check::skipped("migrations", "the database"),
    });
    match &config {
        Ok(config) => {
            checks.push(check_storage(&config.storage).await);
            checks.push(check_mail(&config.mail).await);
        }
        Err(_) => {
            checks.push(Check::skipped("storage", "a valid configuration"));
            checks.push(Check::skipped("mail", "a valid configuration"));
        }
    }
    checks.push(match &pool {
        Some(pool) => check_queue(pool).await,
        None => Check::skipped("queue", "the database"),
    });
    if let Some(pool) = pool {
        pool.close().await;
    }
    checks
}

/// The checks as a table, with the fix under each failure or warning.
pub fn table(checks: &[Check]) -> String {
    let mut out = format!("{:<11} {:<8} {}\n", "check", "result", "detail");
    for c in checks {
        let _ = writeln!(out, "{:<11} {:<8} {}", c.name, c.outcome.label(), c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{:<11} {:<8} fix: {fix}", "", "");
        }
    }
    out
}

async fn check_database(db: &crate::config::DatabaseConfig) -> (Check, Option<sqlx::PgPool>) {
    let started = Instant::now();
    let fix = "check DATABASE_URL, and that PostgreSQL runs and accepts this user";
    let pool = match crate::db::pool(db) {
        Ok(pool) => pool,
        Err(e) => return (Check::fail("database", format!("{e:#}"), fix), None),
    };
    let version = tokio::time::timeout(
        TIMEOUT,
        sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&pool),
    )
    .await;
    match version {
        Ok(Ok(version)) => (
            Check::ok(
                "database",
                format!(
                    "PostgreSQL {version} answered in {} ms",
                    started.elapsed().as_millis()
                ),
            ),
            Some(pool),
        ),
        Ok(Err(e)) => (Check::fail("database", e.to_string(), fix), None),
        Err(_) => (
            Check::fail(
                "database",
                format!("no answer within {} s", TIMEOUT.as_secs()),
                fix,
            ),
            None,
        ),
    }
}

async fn check_migrations(pool: &sqlx::PgPool) -> Check {
    let ours = crate::db::MIGRATOR.iter().count();
    let applied: Result<i64, _> = sqlx::query_scalar(
        "SELECT count(*) FROM _sqlx_migrations WHERE success \
         AND version = ANY($1)",
    )
    .bind(
        crate::db::MIGRATOR
            .iter()
            .map(|m| m.version)
            .collect::<Vec<i64>>(),
    )
    .fetch_one(pool)
    .await;
    let applied = match applied {
        Ok(n) => n as usize,
        // No table yet: nothing applied.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => 0,
        Err(e) => {
            return Check::fail(
                "migrations",
                e.to_string(),
                "check the database user's rights",
            );
        }
    };
    let queue: Option<String> = sqlx::query_scalar("SELECT to_regclass('apalis.jobs')::text")
        .fetch_one(pool)
        .await
        .unwrap_or(None);
    let fix = "run `pipeline-export migrate` (serve and worker also apply them at start)";
    match (applied == ours, queue.is_some()) {
        (true, true) => Check::ok(
            "migrations",
            format!("{applied} of {ours} applied; queue schema present"),
        ),
        (true, false) => Check::fail("migrations", "the apalis queue schema is missing", fix),
        (false, _) => Check::fail(
            "migrations",
            format!("{applied} of {ours} applied ({} pending)", ours - applied),
            fix,
        ),
    }
}

async fn check_storage(config: &StorageConfig) -> Check {
    let started = Instant::now();
    let place = match config {
        StorageConfig::S3 {
            bucket, endpoint, ..
        } => format!(
            "s3://{bucket}{}",
            endpoint
                .as_deref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        ),
        StorageConfig::Local { dir } => format!("directory {}", dir.display()),
    };
    let fix = match config {
        StorageConfig::S3 { .. } => {
            "check S3_ENDPOINT, S3_BUCKET (it must exist), the AWS_* credentials and their rights"
        }
        StorageConfig::Local { .. } => "check STORAGE_DIR exists and is writable by this user",
    };
    match probe_storage(config).await {
        Ok(steps) => {
            let detail = format!("{place}: {steps} in {} ms", started.elapsed().as_millis());
            match config {
                StorageConfig::S3 { .. } => Check::ok("storage", detail),
                StorageConfig::Local { .. } => Check {
                    name: "storage",
                    outcome: Outcome::Warn,
                    detail,
                    fix: Some(
                        "fine on one machine; with several, set S3_BUCKET (each machine has its own directory)"
                            .into(),
                    ),
                },
            }
        }
        Err(e) => Check::fail("storage", format!("{place}: {e}"), fix),
    }
}

/// Write, read back, presigned GET (S3), delete; returns the steps done. The probe is
/// deleted whatever failed (best effort when the write itself did not succeed).
async fn probe_storage(config: &StorageConfig) -> Result<&'static str, String> {
    let storage = Storage::from_config(config)
        .await
        .map_err(|e| e.to_string())?;
    let key = format!(
        "doctor/probe-{}.txt",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let body = format!("pipeline-export doctor probe {key}");
    let result = match tokio::time::timeout(TIMEOUT, write_probe(&storage, &key, &body)).await {
        Ok(Ok(())) => {
            match tokio::time::timeout(TIMEOUT * 2, read_probe(&storage, &key, &body)).await {
                Ok(done) => done,
                Err(_) => Err(format!(
                    "read or presigned GET: no answer within {} s",
                    TIMEOUT.as_secs() * 2
                )),
            }
        }
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!("write: no answer within {} s", TIMEOUT.as_secs())),
    };
    let deleted = tokio::time::timeout(TIMEOUT, storage.delete(&key)).await;
    if let StorageConfig::Local { dir } = config {
        // begin_upload made it; gone again once empty.
        let _ = tokio::fs::remove_dir(dir.join("doctor")).await;
    }
    let steps = result?;
    match deleted {
        Ok(Ok(())) => Ok(steps),
        Ok(Err(e)) => Err(format!("delete: {e}")),
        Err(_) => Err(format!("delete: no answer within {} s", TIMEOUT.as_secs())),
    }
}

async fn write_probe(storage: &Storage, key: &str, body: &str) -> Result<(), String> {
    let meta = ObjectMeta {
        content_type: "text/plain".into(),
        content_disposition: "attachment; filename=\"probe.txt\"".into(),
        content_encoding: None,
    };
    let mut upload = storage
        .begin_upload(key, &meta)
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = upload.send(Bytes::from(body.to_owned())).await {
        let _ = upload.abort().await;
        return Err(e.to_string());
    }
    upload.complete().await.map_err(|e| e.to_string())
}

async fn read_probe(storage: &Storage, key: &str, body: &str) -> Result<&'static str, String> {
    let read = read_all(storage, key)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if read != body.as_bytes() {
        return Err("read: the object came back different".to_owned());
    }
    let presigned = storage
        .presign_get(key, Duration::from_secs(60))
        .await
        .map_err(|e| format!("presign: {e}"))?;
    let Some(url) = presigned else {
        return Ok("write, read, delete (the front serves local files itself)");
    };
    let response = reqwest::Client::new()
        .get(&url)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("presigned GET: {e}"))?;
    let status = response.status();
    let fetched = response
        .bytes()
        .await
        .map_err(|e| format!("presigned GET: {e}"))?;
    if !status.is_success() || fetched != body.as_bytes() {
        return Err(format!(
            "presigned GET answered {status}: browsers could not download exports"
        ));
    }
    Ok("write, read, presigned GET, delete")
}

async fn read_all(storage: &Storage, key: &str) -> Result<Vec<u8>, String> {
    use futures::TryStreamExt;
    let stream = storage.read(key).await.map_err(|e| e.to_string())?;
    let chunks: Vec<Bytes> = stream.try_collect().await.map_err(|e| e.to_string())?;
    Ok(chunks.concat())
}

async fn check_mail(config: &workers::mail::MailConfig) -> Check {
    let started = Instant::now();
    let mailer = match workers::mail::Mailer::from_config(config) {
        Ok(m) => m,
        Err(e) => return Check::fail("mail", e.to_string(), "check SMTP_URL and MAIL_FROM"),
    };
    let place = mailer.describe();
    let smtp = config
        .smtp_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    match mailer.probe().await {
        Ok(()) if smtp => Check::ok(
            "mail",
            format!(
                "{place}: connected, EHLO answered in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Ok(()) => Check {
            name: "mail",
            outcome: Outcome::Warn,
            detail: format!("{place}: writable; emails are .eml files, nobody receives them"),
            fix: Some("set SMTP_URL so users get their links".into()),
        },
        Err(e) => Check::fail(
            "mail",
            format!("{place}: {e}"),
            "check SMTP_URL (host, port, TLS, credentials) and that the server runs",
        ),
    }
}

async fn check_queue(pool: &sqlx::PgPool) -> Check {
    match workers::metrics::queue_stats(pool).await {
        Ok(stats) => Check::ok(
            "queue",
            stats
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} waiting (oldest {:.0} s)",
                        s.queue, s.depth, s.oldest_age_secs
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => Check::fail("queue", e.to_string(), "run `pipeline-export migrate`"),
    }
}
