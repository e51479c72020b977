//! The background side: apalis workers that produce exports and send their emails, the
//! scheduler of backups, and the retention sweep. Everything here is safe to run in several processes at once and to retry:
//! a task re-checks the export's state in the database before acting, and every final
//! transition is a conditional UPDATE that only one attempt can win.

pub mod email;
pub mod export;
pub mod retention;
pub mod scheduler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BackendExt, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;
use ulid::Ulid;

use crate::clock::SharedClock;
use crate::links::LinkSigner;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::queue::{EMAILS_QUEUE, EXPORTS_QUEUE, EmailTask, ExportTask};
use crate::storage::Storage;

/// Tunables of the workers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Base of the links in emails, e.g. `https://exports.example.com`.
    pub public_base_url: String,
    /// How long a finished file is kept (`EXPORT_RETENTION`).
    pub retention: Duration,
    /// Attempts per export before it is `failed` (`EXPORT_MAX_ATTEMPTS`).
    pub export_max_attempts: u32,
    /// Attempts per email; with the backoff they span SMTP outages of about a day.
    pub email_max_attempts: u32,
    /// First retry delay; each further retry waits twice as long (capped at an hour).
    pub retry_base: Duration,
    /// Exports (and, separately, emails) one process works on at once.
    pub concurrency: usize,
    /// How often a running export writes its progress and checks for cancellation.
    pub progress_interval: Duration,
    /// How often the retention sweep runs.
    pub retention_interval: Duration,
    /// How often the scheduler looks for due backup schedules.
    pub schedule_interval: Duration,
    /// Liveness beat of a worker; a worker silent for 3 beats is presumed dead and its tasks
    /// are taken over by another.
    pub heartbeat: Duration,
    /// On shutdown, how long running tasks may take before the process exits anyway.
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            public_base_url: "http://127.0.0.1:8080".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            export_max_attempts: 3,
            email_max_attempts: 12,
            retry_base: Duration::from_secs(5),
            concurrency: 2,
            progress_interval: Duration::from_secs(1),
            retention_interval: Duration::from_secs(60),
            schedule_interval: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// What every task can reach.
pub struct Services {
    pub pool: PgPool,
    pub storage: Storage,
    pub mailer: Mailer,
    pub links: LinkSigner,
    pub settings: WorkerSettings,
    /// What the scheduler and the emails take as now.
    pub clock: SharedClock,
    /// This process's counters (shared with the front when both run in one process).
    pub metrics: Arc<Metrics>,
}

fn storage_config(queue: &str, settings: &WorkerSettings) -> Config {
    Config::default()
        .queue(queue)
        // One task fetched at a time: a fetched-but-waiting task would stop this worker's
        // heartbeat and let another worker take it over.
        .batch_size(1)
        .heartbeat_interval(settings.heartbeat)
        .missed_heartbeats(3)
}

/// Runs the export and email workers, the scheduler and the retention sweep until
/// `shutdown` resolves, then lets running tasks finish (up to `shutdown_grace`).
///
/// The queue workers stop by themselves when their heartbeat cannot reach PostgreSQL (a
/// restart, a network cut). This process does not: it waits until the database answers
/// again and starts them anew, under a new instance name, so a database restart needs no
/// restart of the workers. Their tasks are taken over as from any worker that stopped.
pub async fn run(
    services: Arc<Services>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("workers stopping: finishing running tasks");
        let _ = stop_tx.send(true);
    });
    let retention = tokio::spawn(retention::run(services.clone(), stop_rx.clone()));
    let scheduler = tokio::spawn(scheduler::run(services.clone(), stop_rx.clone()));
    let result = loop {
        let result = run_queues(services.clone(), stop_rx.clone()).await;
        if *stop_rx.borrow() {
            break result;
        }
        match &result {
            Ok(()) => {
                tracing::warn!("queue workers stopped; restarting them once PostgreSQL answers")
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue workers failed; restarting them once PostgreSQL answers")
            }
        }
        if !wait_for_database(&services.pool, stop_rx.clone()).await {
            break Ok(());
        }
        tracing::info!("PostgreSQL answers again; restarting the queue workers");
    };
    let _ = retention.await;
    let _ = scheduler.await;
    result
}

/// Waits until PostgreSQL answers, first half a second, then backing off to 10 s between
/// tries (so workers that stop at once cannot spin). False if `stop` turned true first.
async fn wait_for_database(pool: &PgPool, mut stop: tokio::sync::watch::Receiver<bool>) -> bool {
    let mut delay = Duration::from_millis(500);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stop| *stop) => return false,
        }
        if sqlx::query("SELECT 1").execute(pool).await.is_ok() {
            return true;
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// One life of the export and email queue workers: until `stop` turns true, or until both
/// have stopped (their heartbeat lost the database).
async fn run_queues(
    services: Arc<Services>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Unique per start: a restarted worker must not inherit (and so hide) the tasks an
    // earlier life held when it stopped.
    let instance = Ulid::generate().to_string().to_lowercase();

    let exports = {
        let services = services.clone();
        let name = format!("exports-{instance}");
        move |_restarts: usize| {
            let storage = PostgresStorage::<ExportTask>::new(&services.pool)
                .with_config(storage_config(EXPORTS_QUEUE, &services.settings))
                .with_pubsub()
                .poll_with_interval(Duration::from_secs(5));
            WorkerBuilder::new(name.clone())
                .backend(storage)
                .data(services.clone())
                .concurrency(services.settings.concurrency)
                .build(export::handle)
        }
    };
    let emails = {
        let services = services.clone();
        let name = format!("emails-{instance}");
        move |_restarts: usize| {
            let storage = PostgresStorage::<EmailTask>::new(&services.pool)
                .with_config(storage_config(EMAILS_QUEUE, &services.settings))
                .with_pubsub()
                .poll_with_interval(Duration::from_secs(5));
            WorkerBuilder::new(name.clone())
                .backend(storage)
                .data(services.clone())
                .concurrency(services.settings.concurrency)
                .build(email::handle)
        }
    };

    tracing::info!(%instance, concurrency = services.settings.concurrency, "workers starting");
    let result = Monitor::new()
        .register(exports)
        .register(emails)
        .shutdown_timeout(services.settings.shutdown_grace)
        .run_with_signal(async move {
            let _ = stop.wait_for(|stop| *stop).await;
            Ok(())
        })
        .await;
    result.map_err(|e| anyhow::anyhow!("worker monitor failed: {e}"))
}
