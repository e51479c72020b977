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

/// Settings of the HTTP front.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

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
    pub bind_addr: SocketAddr,
    pub jwt_secret: Secret,
    pub sync_export_max_rows: Option<u64>,
    pub sync_export_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServeArgs {
    pub fn config(&self) -> Result<ServeConfig, ConfigError> {
        let database = self.database.config()?;
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
