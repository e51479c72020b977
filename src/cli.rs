//! The `pipeline-export` command line.
//!
//! Exit codes: 0 success, 1 a runtime failure (database unreachable, ...), 2 a usage or
//! configuration error (a missing required setting, a bad flag).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::{ConfigError, DatabaseArgs, LogArgs, ServeArgs};
use crate::{auth, db, http, seed, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "pipeline-export",
    version,
    about = "Exports PIPELINE job-application data as JSON or CSV."
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (applies pending migrations first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create, list and revoke personal API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add N realistic jobs to a user (created if missing) and print a token to try them.
    Seed(SeedArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a user (the user is created if missing). The token is shown once.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The user's email address.
        #[arg(long, env = "TOKEN_EMAIL")]
        email: String,
        /// A name to recognise the token by.
        #[arg(long, env = "TOKEN_NAME", default_value = "cli")]
        name: String,
    },
    /// List a user's tokens (never the secrets).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long, env = "TOKEN_EMAIL")]
        email: String,
    },
    /// Revoke a token by its id; requests with it get 401 from then on.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The token's id, as `token list` shows it.
        #[arg(env = "TOKEN_ID")]
        id: Uuid,
    },
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The user's email address (created if missing).
    #[arg(long, env = "SEED_EMAIL", default_value = "demo@pipeline.local")]
    pub email: String,
    /// How many jobs to add.
    #[arg(long, env = "SEED_JOBS", default_value_t = 1_000)]
    pub jobs: u64,
    /// Delete the user's existing jobs first.
    #[arg(long, env = "SEED_REPLACE")]
    pub replace: bool,
    /// Seed of the generator: the same seed gives the same data.
    #[arg(long, env = "SEED_RNG", default_value_t = 42)]
    pub rng_seed: u64,
    /// Base URL printed in the example curl command.
    #[arg(long, env = "PUBLIC_BASE_URL", default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<ConfigError>() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let pool = db::pool(&args.config()?)?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Seed(args) => seed(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let pool = db::pool(&config.database)?;
    db::migrate(&pool).await?;
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let app = http::router(http::AppState::new(pool.clone(), &config)?);
    http::serve(listener, app, config.shutdown_grace).await?;
    pool.close().await;
    Ok(())
}

async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            database,
            email,
            name,
        } => {
            let pool = db::pool(&database.config()?)?;
            let (user_id, created) = db::ensure_user(&pool, &email).await?;
            if created {
                eprintln!("created user {email} ({user_id})");
            }
            let (id, token) = auth::create_token(&pool, user_id, &name).await?;
            eprintln!("token {id} created for {email}; it is shown only once:");
            println!("{token}");
        }
        TokenCommand::List { database, email } => {
            let pool = db::pool(&database.config()?)?;
            let user_id = db::find_user(&pool, &email)
                .await?
                .with_context(|| format!("no user with email {email}"))?;
            let tokens = auth::list_tokens(&pool, user_id).await?;
            println!(
                "{:<36}  {:<12}  {:<20}  {:<20}  {:<20}  NAME",
                "ID", "PREFIX", "CREATED", "LAST USED", "REVOKED"
            );
            let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                })
            };
            for t in tokens {
                println!(
                    "{:<36}  {:<12}  {:<20}  {:<20}  {:<20}  {}",
                    t.id,
                    t.token_prefix,
                    fmt(Some(t.created_at)),
                    fmt(t.last_used_at),
                    fmt(t.revoked_at),
                    t.name
                );
            }
        }
        TokenCommand::Revoke { database, id } => {
            let pool = db::pool(&database.config()?)?;
            anyhow::ensure!(
                auth::revoke_token(&pool, id).await?,
                "no active token with id {id}"
            );
            println!("token {id} revoked");
        }
    }
    Ok(())
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = db::pool(&args.database.config()?)?;
    db::migrate(&pool).await?;
    let started = std::time::Instant::now();
    let report = seed::seed(&pool, &args.email, args.jobs, args.replace, args.rng_seed).await?;
    let elapsed = started.elapsed();
    let (_, token) = auth::create_token(&pool, report.user_id, "seed").await?;
    eprintln!(
        "{} user {} ({}): added {} jobs in {:.1} s",
        if report.created_user {
            "created"
        } else {
            "updated"
        },
        args.email,
        report.user_id,
        report.jobs,
        elapsed.as_secs_f64()
    );
    println!("token: {token}");
    println!(
        "try:   curl -sS -OJ -H 'Authorization: Bearer {token}' '{}/api/export?format=csv'",
        args.base_url.trim_end_matches('/')
    );
    Ok(())
}
