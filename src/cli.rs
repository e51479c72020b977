//! The `pipeline-export` command line.
//!
//! Exit codes: 0 success, 1 a runtime failure (database unreachable, ...), 2 a usage or
//! configuration error (a missing required setting, a bad flag).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::{BackgroundArgs, ConfigError, DatabaseArgs, LogArgs, ServeArgs, WorkerArgs};
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
    /// Run the background workers: exports, emails, retention (applies pending migrations first).
    Worker(WorkerCommandArgs),
    /// Serve the HTTP API and run the workers in one process.
    All(AllArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create, list and revoke personal API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add N realistic jobs to a user (created if missing) and print a token to try them.
    Seed(SeedArgs),
    /// Export a user's jobs to a file or stdout, as GET /api/export would (no row cap).
    Export(Box<ExportArgs>),
    /// Create and list a user's scheduled backups.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Exit 0 if this machine's service answers `GET /healthz` with 200, else 1 (a container
    /// health check; needs no other setting).
    Healthcheck(HealthcheckArgs),
    /// Print the OpenAPI 3.1 document (the one `GET /openapi.json` serves).
    Openapi,
    /// Check the database, migrations, storage and mail with this configuration, and say
    /// what to fix; exit 1 if anything failed.
    Doctor(Box<DoctorArgs>),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The user's email address.
    #[arg(long)]
    pub email: String,
    /// json, csv, ndjson or xlsx.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Gzip the file (and add `.gz` to the default name).
    #[arg(long)]
    pub gzip: bool,
    /// A file, or `-` for stdout. Default: the endpoint's file name in the current directory.
    #[arg(long, value_name = "FILE|-")]
    pub out: Option<std::path::PathBuf>,
    /// A filter, as GET /api/export takes it: `status=interview,offer`, `tag=backend`,
    /// `created_from=2026-01-01`, ... (repeatable).
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
    /// A subset of the fields, in this order: `company_name,status,applied_at`.
    #[arg(long)]
    pub fields: Option<String>,
    /// csv: comma, semicolon or tab.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// csv: start with a UTF-8 byte order mark.
    #[arg(long)]
    pub bom: bool,
    /// csv and xlsx: neutralise cells that start with = + - @ (true by default).
    #[arg(long, value_name = "BOOL")]
    pub escape_formulas: Option<bool>,
}

impl ExportArgs {
    /// These options as GET /api/export reads them from its query string.
    fn params(&self) -> anyhow::Result<crate::http::ExportParams> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("format", &self.format);
        for filter in &self.filters {
            let (name, value) = filter
                .split_once('=')
                .ok_or_else(|| usage(format!("--filter {filter:?} must be NAME=VALUE")))?;
            if name == "format" || workers::format::FILE_OPTION_PARAMS.contains(&name) {
                return Err(usage(format!("--filter {name}: use --{name} instead")));
            }
            query.append_pair(name, value);
        }
        if let Some(fields) = &self.fields {
            query.append_pair("fields", fields);
        }
        if let Some(delimiter) = &self.delimiter {
            query.append_pair("delimiter", delimiter);
        }
        if self.bom {
            query.append_pair("bom", "true");
        }
        if let Some(escape) = self.escape_formulas {
            query.append_pair("escape_formulas", if escape { "true" } else { "false" });
        }
        crate::local_export::parse(&query.finish()).map_err(usage)
    }
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub background: BackgroundArgs,
    /// The front's JWT key (only checked for presence).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<crate::config::Secret>,
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The front's address; its port is probed on loopback when it is a wildcard address.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: std::net::SocketAddr,
    /// A worker's metrics address; probed instead of `BIND_ADDR` when set.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a backup schedule for an existing user; prints it, with its next run.
    Create(Box<ScheduleCreateArgs>),
    /// List a user's backup schedules.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("cadence").required(true).args(["daily", "weekly", "monthly"])))]
pub struct ScheduleCreateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The user's email address.
    #[arg(long)]
    pub email: String,
    /// Every day at a time: `06:30`.
    #[arg(long, value_name = "HH:MM")]
    pub daily: Option<String>,
    /// Every week on a day at a time: `monday@08:00`.
    #[arg(long, value_name = "WEEKDAY@HH:MM")]
    pub weekly: Option<String>,
    /// Every month on a day (29 to 31 mean the month's last day when it is shorter): `1@07:00`.
    #[arg(long, value_name = "DAY@HH:MM")]
    pub monthly: Option<String>,
    /// IANA time zone the time is in.
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// A name for the schedule (default: "Weekly backup" and the like).
    #[arg(long)]
    pub name: Option<String>,
    /// json, csv, ndjson, xlsx or pdf (a report).
    #[arg(long, default_value = "json")]
    pub format: String,
    /// gzip or none (default: gzip, but none for xlsx and pdf).
    #[arg(long)]
    pub compression: Option<String>,
    /// How many successful backups to keep.
    #[arg(long, default_value_t = 4)]
    pub keep_last: i32,
    /// full, or incremental (jobs changed since the previous successful backup).
    #[arg(long, default_value = "full")]
    pub mode: String,
    /// Do not email each backup's link.
    #[arg(long)]
    pub no_email: bool,
    /// A filter, as the API takes it: `status=applied,interview`, `tag=remote`, ... (repeatable).
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkerCommandArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub background: BackgroundArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// On SIGTERM or Ctrl-C, how long running exports may take to finish.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub worker: WorkerArgs,
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
        Command::Serve(args) => {
            let config = args.config()?;
            let pool = db::pool(&config.database)?;
            db::migrate(&pool).await?;
            serve(config, pool.clone(), http::shutdown_signal(), None).await?;
            pool.close().await;
            Ok(())
        }
        Command::Worker(args) => {
            let database = args.database.config()?;
            let background = args.background.config()?;
            args.worker.validate()?;
            let pool = db::pool(&database)?;
            db::migrate(&pool).await?;
            let grace = std::time::Duration::from_secs(args.shutdown_grace_secs);
            let metrics = std::sync::Arc::new(workers::metrics::Metrics::new());
            serve_worker_metrics(&args.worker, &pool, &metrics).await?;
            let services =
                services(pool.clone(), &background, &args.worker, grace, metrics).await?;
            workers::tasks::run(services, http::shutdown_signal()).await?;
            pool.close().await;
            Ok(())
        }
        Command::All(args) => {
            let config = args.serve.config()?;
            args.worker.validate()?;
            let pool = db::pool(&config.database)?;
            db::migrate(&pool).await?;
            // The workers get a pool of their own: slow downloads holding the front's
            // connections must not starve the workers' heartbeats.
            let worker_pool = db::pool(&config.database)?;
            // One set of counters: the front's /metrics shows the workers' too (and
            // METRICS_ADDR, when set, serves them as a worker's would).
            let metrics = std::sync::Arc::new(workers::metrics::Metrics::new());
            serve_worker_metrics(&args.worker, &worker_pool, &metrics).await?;
            let services = services(
                worker_pool.clone(),
                &config.background,
                &args.worker,
                config.shutdown_grace,
                metrics.clone(),
            )
            .await?;
            // One signal stops both halves.
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                http::shutdown_signal().await;
                let _ = stop_tx.send(true);
            });
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let (front, back) = tokio::join!(
                serve(
                    config,
                    pool.clone(),
                    stopped(stop_rx.clone()),
                    Some(metrics)
                ),
                workers::tasks::run(services, stopped(stop_rx)),
            );
            pool.close().await;
            worker_pool.close().await;
            front.and(back)
        }
        Command::Migrate(args) => {
            let pool = db::pool(&args.config()?)?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Seed(args) => seed(args).await,
        Command::Export(args) => export(*args).await,
        Command::Schedule(cmd) => schedule(cmd).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Doctor(args) => {
            let checks =
                crate::doctor::run(&args.database, &args.background, args.jwt_secret.as_ref())
                    .await;
            print!("{}", crate::doctor::table(&checks));
            let failed = checks
                .iter()
                .filter(|c| c.outcome == crate::doctor::Outcome::Fail)
                .count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", http::openapi_document().to_pretty_json()?);
            Ok(())
        }
    }
}

/// `GET /healthz` over plain HTTP/1.1, within five seconds.
async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = args.metrics_addr.unwrap_or(args.bind_addr);
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(5), probe)
        .await
        .map_err(|_| anyhow::anyhow!("{addr} did not answer within 5 s"))?
        .with_context(|| format!("GET http://{addr}/healthz"))?;
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    if status == "200" {
        println!("healthy: http://{addr}/healthz answered 200");
        Ok(())
    } else {
        anyhow::bail!("http://{addr}/healthz answered {status}")
    }
}

/// With `METRICS_ADDR`, serves `/metrics`, `/healthz` and `/readyz` there in the background.
async fn serve_worker_metrics(
    worker: &WorkerArgs,
    pool: &sqlx::PgPool,
    metrics: &std::sync::Arc<workers::metrics::Metrics>,
) -> anyhow::Result<()> {
    let Some(addr) = worker.metrics_addr else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("METRICS_ADDR: cannot listen on {addr}"))?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    let app = http::worker_router(pool.clone(), metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    ConfigError(message.into()).into()
}

impl ScheduleCreateArgs {
    fn spec(&self) -> anyhow::Result<workers::schedules::ScheduleSpec> {
        use workers::cadence::Cadence;
        let cadence = match (&self.daily, &self.weekly, &self.monthly) {
            (Some(v), _, _) => Cadence::from_cli("daily", v),
            (_, Some(v), _) => Cadence::from_cli("weekly", v),
            (_, _, Some(v)) => Cadence::from_cli("monthly", v),
            _ => return Err(usage("one of --daily, --weekly or --monthly is required")),
        }
        .map_err(|e| usage(e.to_string()))?;
        let mut spec = workers::schedules::ScheduleSpec::new(cadence);
        if let Some(name) = &self.name {
            spec.name = name.trim().to_owned();
        }
        spec.timezone = workers::cadence::parse_timezone(&self.timezone)
            .map_err(|m| usage(format!("--timezone: {m}")))?;
        spec.format = self
            .format
            .parse()
            .map_err(|()| usage(workers::Format::expected(&workers::Format::ALL)))?;
        spec.compression = match &self.compression {
            None => spec.format.default_compression(),
            Some(c) => c
                .parse()
                .map_err(|()| usage("--compression must be gzip or none"))?,
        };
        spec.keep_last = self.keep_last;
        spec.mode = self.mode.parse().map_err(|m| usage(format!("--{m}")))?;
        spec.notify_email = !self.no_email;
        for filter in &self.filters {
            let (name, value) = filter
                .split_once('=')
                .ok_or_else(|| usage(format!("--filter {filter:?} must be NAME=VALUE")))?;
            let known = spec
                .filters
                .accept_param(name, value)
                .map_err(|e| usage(format!("--filter {}", e.message)))?;
            if !known {
                return Err(usage(format!(
                    "--filter {name:?} is not a filter; accepted: {}",
                    workers::ExportFilters::PARAMS.join(", ")
                )));
            }
        }
        spec.validate().map_err(usage)?;
        Ok(spec)
    }
}

async fn schedule(cmd: ScheduleCommand) -> anyhow::Result<()> {
    let print = |s: &workers::schedules::ScheduleRecord| {
        let next = s.next_run().map_or("paused".to_owned(), |t| {
            format!(
                "{} = {}",
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                s.readable_local(t)
            )
        });
        println!(
            "{}  {:<20}  {} {}, {}, keep {}, {}  next: {next}",
            s.id,
            s.name,
            s.format,
            s.compression.as_str(),
            s.cadence.describe(),
            s.keep_last,
            s.mode,
        );
    };
    match cmd {
        ScheduleCommand::Create(args) => {
            let spec = args.spec()?;
            let pool = db::pool(&args.database.config()?)?;
            let user_id = db::find_user(&pool, &args.email)
                .await?
                .with_context(|| format!("no user with email {}", args.email))?;
            let record = workers::schedules::create(&pool, user_id, &spec, chrono::Utc::now())
                .await
                .map_err(|e| match e {
                    workers::schedules::ScheduleError::TooMany => usage(e.to_string()),
                    e => anyhow::Error::new(e),
                })?;
            print(&record);
        }
        ScheduleCommand::List { database, email } => {
            let pool = db::pool(&database.config()?)?;
            let user_id = db::find_user(&pool, &email)
                .await?
                .with_context(|| format!("no user with email {email}"))?;
            for record in workers::schedules::list(&pool, user_id).await? {
                print(&record);
            }
        }
    }
    Ok(())
}

async fn serve(
    config: crate::config::ServeConfig,
    pool: sqlx::PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    metrics: Option<std::sync::Arc<workers::metrics::Metrics>>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let mut state = http::AppState::new(pool, &config).await?;
    if let Some(metrics) = metrics {
        state.metrics = metrics;
    }
    let app = http::router(state);
    http::serve(listener, app, config.shutdown_grace, shutdown).await
}

/// What the workers need, from configuration.
async fn services(
    pool: sqlx::PgPool,
    background: &crate::config::BackgroundConfig,
    worker: &WorkerArgs,
    shutdown_grace: std::time::Duration,
    metrics: std::sync::Arc<workers::metrics::Metrics>,
) -> anyhow::Result<std::sync::Arc<workers::tasks::Services>> {
    if !worker.pdf_fallback_fonts.is_empty() {
        workers::format::pdf::use_fallback_fonts(&worker.pdf_fallback_fonts)
            .map_err(|e| anyhow::anyhow!("PDF_FALLBACK_FONTS: {e}"))?;
    }
    let storage = workers::storage::Storage::from_config(&background.storage)
        .await
        .context("configuring storage")?;
    let mailer =
        workers::mail::Mailer::from_config(&background.mail).context("configuring email")?;
    tracing::info!(mail = %mailer.describe(), "mail configured");
    Ok(std::sync::Arc::new(workers::tasks::Services {
        pool,
        storage,
        mailer,
        links: workers::links::LinkSigner::new(background.link_secret.expose().as_bytes()),
        clock: workers::clock::system(),
        metrics,
        settings: workers::tasks::WorkerSettings {
            public_base_url: background.public_base_url.clone(),
            retention: background.export_retention,
            export_max_attempts: background.export_max_attempts,
            concurrency: worker.worker_concurrency,
            retry_base: worker.retry_base_delay.0,
            heartbeat: worker.worker_heartbeat.0,
            retention_interval: worker.retention_interval.0,
            schedule_interval: worker.schedule_interval.0,
            shutdown_grace,
            ..workers::tasks::WorkerSettings::default()
        },
    }))
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

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let params = args.params()?;
    let pool = db::pool(&args.database.config()?)?;
    let user_id = db::find_user(&pool, &args.email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {}", args.email))?;
    let output = match args.out {
        Some(p) if p.as_os_str() == "-" => crate::local_export::Output::Stdout,
        Some(p) => crate::local_export::Output::File(p),
        None => crate::local_export::Output::DefaultName(".".into()),
    };
    let written = crate::local_export::run(
        &pool,
        crate::local_export::LocalExport {
            user_id,
            params,
            gzip: args.gzip,
            output,
        },
    )
    .await?;
    let Some(written) = written else {
        // stdout's reader had enough (`| head`): a normal end for a Unix tool.
        return Ok(());
    };
    let to = written
        .path
        .as_ref()
        .map_or("stdout".to_owned(), |p| p.display().to_string());
    eprintln!(
        "exported {} jobs ({} bytes) to {to} in {:.1} s",
        written.rows, written.bytes, written.seconds
    );
    if let Some(path) = written.path {
        println!("{}", path.display());
    }
    pool.close().await;
    Ok(())
}

async fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let pool = db::pool(&args.database.config()?)?;
    db::migrate(&pool).await?;
    let started = std::time::Instant::now();
    let bar = crate::progress::rows(args.jobs, "seeding");
    let report = seed::seed_with_progress(
        &pool,
        &args.email,
        args.jobs,
        args.replace,
        args.rng_seed,
        |rows| bar.set_position(rows),
    )
    .await;
    bar.finish_and_clear();
    let report = report?;
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
