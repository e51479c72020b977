//! Typed configuration, read once from the environment and the command line.
//!
//! Every setting is a command-line option that can also be given as an environment variable
//! (the name in capitals on each field). Secrets are wrapped in [`Secret`] so they never
//! appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// A value that must never be printed: its `Debug` and `Display` say `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A required setting is missing or unusable. The binary prints it and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when stderr is a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging options, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format. Levels are set with RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL, e.g. postgres://user:password@127.0.0.1:5432/pipeline.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Most connections the process keeps open to PostgreSQL.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

impl DatabaseArgs {
    pub fn config(&self) -> Result<DatabaseConfig, ConfigError> {
        let url = self.database_url.clone().ok_or_else(|| {
            ConfigError(
                "DATABASE_URL is not set: set it (or pass --database-url) to a PostgreSQL URL \
                 such as postgres://postgres@127.0.0.1:5432/pipeline"
                    .into(),
            )
        })?;
        if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
            return Err(ConfigError(
                "DATABASE_URL must start with postgres:// or postgresql://".into(),
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError(
                "DATABASE_MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        Ok(DatabaseConfig {
            url,
            max_connections: self.database_max_connections,
        })
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
}

/// A duration written as a number and a unit: `250ms`, `90s`, `15m`, `12h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl FromStr for DurationArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a duration such as 90s, 15m, 12h or 7d"))?;
        let unit_ms: u64 = match unit.trim() {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "unknown duration unit {other:?}; use ms, s, m, h or d"
                ));
            }
        };
        n.checked_mul(unit_ms)
            .map(|ms| DurationArg(Duration::from_millis(ms)))
            .ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            ms if ms % 86_400_000 == 0 => write!(f, "{}d", ms / 86_400_000),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// Settings shared by the front and the workers: where files go, how mail goes out, how
/// links are signed, and the limits of background exports.
#[derive(Debug, Clone, Args)]
pub struct BackgroundArgs {
    /// Key that signs emailed download links (`/d/{token}`). Changing it revokes every link.
    #[arg(long, env = "LINK_SECRET", hide_env_values = true)]
    pub link_secret: Option<Secret>,

    /// The service's public base URL, used in emailed links.
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub public_base_url: String,

    /// S3 bucket for export files. Unset: files go to STORAGE_DIR and the front serves them.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 region.
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 endpoint of an S3-compatible service (MinIO, R2, s3s-fs...); unset for AWS.
    /// Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID, ...).
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Address buckets as endpoint/bucket rather than bucket.endpoint (most S3-compatible servers).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

    /// Directory for export files when no S3 bucket is set.
    #[arg(long, env = "STORAGE_DIR", default_value = "data/exports")]
    pub storage_dir: std::path::PathBuf,

    /// SMTP server, e.g. smtp://127.0.0.1:1025, or smtp://user:pass@host:587?tls=required.
    /// Unset: emails are written as .eml files to MAIL_DIR.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// Sender of emails.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "PIPELINE <no-reply@pipeline.local>"
    )]
    pub mail_from: String,

    /// Directory for .eml files when no SMTP server is set.
    #[arg(long, env = "MAIL_DIR", default_value = "data/mail")]
    pub mail_dir: std::path::PathBuf,

    /// How long a presigned download URL stays valid.
    #[arg(long, env = "DOWNLOAD_URL_TTL", default_value = "15m")]
    pub download_url_ttl: DurationArg,

    /// How long a finished export's file is kept.
    #[arg(long, env = "EXPORT_RETENTION", default_value = "7d")]
    pub export_retention: DurationArg,

    /// Queued plus running exports one user may have at once.
    #[arg(long, env = "EXPORT_MAX_ACTIVE_PER_USER", default_value_t = 3)]
    pub export_max_active_per_user: u32,

    /// Attempts per export before it is marked failed.
    #[arg(long, env = "EXPORT_MAX_ATTEMPTS", default_value_t = 3)]
    pub export_max_attempts: u32,
}

/// Validated [`BackgroundArgs`].
#[derive(Debug, Clone)]
pub struct BackgroundConfig {
    pub link_secret: Secret,
    pub public_base_url: String,
    pub storage: workers::storage::StorageConfig,
    pub mail: workers::mail::MailConfig,
    pub download_url_ttl: Duration,
    pub export_retention: Duration,
    pub export_max_active_per_user: u32,
    pub export_max_attempts: u32,
}

impl BackgroundArgs {
    pub fn config(&self) -> Result<BackgroundConfig, ConfigError> {
        let link_secret = self.link_secret.clone().ok_or_else(|| {
            ConfigError(
                "LINK_SECRET is not set: set it (or pass --link-secret) to a long random string; \
                 it signs emailed download links"
                    .into(),
            )
        })?;
        if link_secret.expose().len() < 16 {
            return Err(ConfigError(
                "LINK_SECRET must be at least 16 characters".into(),
            ));
        }
        let base = self.public_base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError(
                "PUBLIC_BASE_URL must start with http:// or https://".into(),
            ));
        }
        let storage = match &self.s3_bucket {
            Some(bucket) if !bucket.is_empty() => workers::storage::StorageConfig::S3 {
                bucket: bucket.clone(),
                region: self.s3_region.clone(),
                endpoint: self.s3_endpoint.clone().filter(|e| !e.is_empty()),
                force_path_style: self.s3_force_path_style,
            },
            _ => workers::storage::StorageConfig::Local {
                dir: self.storage_dir.clone(),
            },
        };
        let ttl = self.download_url_ttl.0;
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(7 * 24 * 3600) {
            return Err(ConfigError(
                "DOWNLOAD_URL_TTL must be between 1s and 7d (S3's limit for presigned URLs)".into(),
            ));
        }
        if self.export_max_attempts == 0 || self.export_max_active_per_user == 0 {
            return Err(ConfigError(
                "EXPORT_MAX_ATTEMPTS and EXPORT_MAX_ACTIVE_PER_USER must be at least 1".into(),
            ));
        }
        Ok(BackgroundConfig {
            link_secret,
            public_base_url: base,
            storage,
            mail: workers::mail::MailConfig {
                smtp_url: self
                    .smtp_url
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .filter(|s| !s.is_empty()),
                from: self.mail_from.clone(),
                dir: self.mail_dir.clone(),
            },
            download_url_ttl: ttl,
            export_retention: self.export_retention.0,
            export_max_active_per_user: self.export_max_active_per_user,
            export_max_attempts: self.export_max_attempts,
        })
    }
}

impl WorkerArgs {
    pub fn validate(&self) -> Result<(), ConfigError> {
        // A worker is presumed dead after three missed beats, counted in whole seconds.
        if self.worker_heartbeat.0 < Duration::from_secs(1) {
            return Err(ConfigError("WORKER_HEARTBEAT must be at least 1s".into()));
        }
        if self.worker_concurrency == 0 {
            return Err(ConfigError("WORKER_CONCURRENCY must be at least 1".into()));
        }
        for (name, value) in [
            ("RETENTION_INTERVAL", self.retention_interval.0),
            ("SCHEDULE_INTERVAL", self.schedule_interval.0),
        ] {
            if value < Duration::from_secs(1) {
                return Err(ConfigError(format!("{name} must be at least 1s")));
            }
        }
        Ok(())
    }
}

/// Settings of the background workers only.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Exports (and, separately, emails) one worker process works on at once.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,

    /// First retry delay of a failed export or email; each retry waits twice as long.
    #[arg(long, env = "RETRY_BASE_DELAY", default_value = "5s")]
    pub retry_base_delay: DurationArg,

    /// Worker liveness beat. A worker silent for three beats (killed, frozen) is presumed dead
    /// and another worker takes over its tasks.
    #[arg(long, env = "WORKER_HEARTBEAT", default_value = "10s")]
    pub worker_heartbeat: DurationArg,

    /// How often expired export files are deleted.
    #[arg(long, env = "RETENTION_INTERVAL", default_value = "1m")]
    pub retention_interval: DurationArg,

    /// How often the scheduler looks for due backup schedules (a backup starts at most this
    /// long after its time).
    #[arg(long, env = "SCHEDULE_INTERVAL", default_value = "1m")]
    pub schedule_interval: DurationArg,

    /// Font files (TrueType/OpenType, `:`-separated) that PDF reports fall back to for
    /// characters DejaVu Sans lacks (Chinese, Japanese, Korean). Unset: the first common
    /// system CJK font found (Noto Sans CJK, Droid Sans Fallback, WenQuanYi Zen Hei).
    #[arg(long, env = "PDF_FALLBACK_FONTS", value_delimiter = ':')]
    pub pdf_fallback_fonts: Vec<std::path::PathBuf>,

    /// Where a worker process serves `/metrics`, `/healthz` and `/readyz` (e.g.
    /// `0.0.0.0:9464`). Unset: no listener. `all` serves them on `BIND_ADDR` anyway.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Settings of the HTTP front.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub background: BackgroundArgs,

    /// Address and port to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,

    /// Key that signs accepted HS256 JWTs (e.g. a Supabase project's JWT secret).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Most jobs one synchronous export returns; 0 means no limit. A cut export says so
    /// in its X-Export-Truncated and X-Total-Count headers.
    #[arg(long, env = "SYNC_EXPORT_MAX_ROWS", default_value_t = 10_000)]
    pub sync_export_max_rows: u64,

    /// Longest a synchronous export may stream, in seconds; past it the transfer is broken
    /// off (visibly incomplete) and the database snapshot released.
    #[arg(long, env = "SYNC_EXPORT_TIMEOUT_SECS", default_value_t = 600)]
    pub sync_export_timeout_secs: u64,

    /// On SIGTERM or Ctrl-C, how long in-flight requests and downloads may take to finish,
    /// in seconds, before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// Validated settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database: DatabaseConfig,
    pub background: BackgroundConfig,
    pub bind_addr: SocketAddr,
    pub jwt_secret: Secret,
    pub sync_export_max_rows: Option<u64>,
    pub sync_export_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServeArgs {
    pub fn config(&self) -> Result<ServeConfig, ConfigError> {
        let database = self.database.config()?;
        let background = self.background.config()?;
        let jwt_secret = self.jwt_secret.clone().ok_or_else(|| {
            ConfigError(
                "JWT_SECRET is not set: set it (or pass --jwt-secret) to the key that signs \
                 your users' HS256 tokens"
                    .into(),
            )
        })?;
        if jwt_secret.expose().is_empty() {
            return Err(ConfigError("JWT_SECRET must not be empty".into()));
        }
        if self.sync_export_timeout_secs == 0 {
            return Err(ConfigError(
                "SYNC_EXPORT_TIMEOUT_SECS must be at least 1".into(),
            ));
        }
        Ok(ServeConfig {
            database,
            background,
            bind_addr: self.bind_addr,
            jwt_secret,
            sync_export_max_rows: (self.sync_export_max_rows > 0)
                .then_some(self.sync_export_max_rows),
            sync_export_timeout: Duration::from_secs(self.sync_export_timeout_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<DurationArg>().map(|d| d.0);
        assert_eq!(d("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(d("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("90"), Ok(Duration::from_secs(90)));
        assert!(d("soon").is_err());
        assert!(d("5y").is_err());
        assert_eq!(DurationArg(Duration::from_secs(900)).to_string(), "15m");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        let db = DatabaseConfig {
            url: Secret::new("postgres://u:hunter2@h/db"),
            max_connections: 1,
        };
        assert!(!format!("{db:?}").contains("hunter2"));
    }
}
