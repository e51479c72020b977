//! What a process counts, for `GET /metrics` (Prometheus's text exposition, OpenMetrics
//! flavour).
//!
//! One [`Metrics`] per process, shared by the front and the workers when they run together
//! (`pipeline-export all`). Counters and histograms are this process's own since it started;
//! the queue gauges are read from PostgreSQL at each scrape ([`Metrics::observe_queues`]), so
//! every process reports the same, cluster-wide figures for them.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sqlx::PgPool;

use crate::queue::{EMAILS_QUEUE, EXPORTS_QUEUE};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CreatedLabels {
    pub format: String,
    /// `api` or `schedule`.
    pub origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub format: String,
    /// `succeeded` or `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FormatLabels {
    pub format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowsLabels {
    pub format: String,
    /// `sync` (`GET /api/export`) or `background`.
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// `ready` or `failed`.
    pub kind: String,
    /// `sent`, `retried` (this attempt failed, another follows) or `failed` (gave up).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route's pattern (`/api/exports/{id}`), never the raw path, so ids do not make
    /// series; `unmatched` for requests no route took.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds() -> Histogram {
    // 5 ms to about 22 minutes.
    Histogram::new(exponential_buckets(0.005, 2.0, 19))
}

fn bytes() -> Histogram {
    // 1 kB to about 275 GB.
    Histogram::new(exponential_buckets(1_000.0, 4.0, 15))
}

/// The process's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    pub exports_created: Family<CreatedLabels, Counter>,
    pub exports_finished: Family<FinishedLabels, Counter>,
    pub export_duration: HistogramFamily<FormatLabels>,
    pub export_size: HistogramFamily<FormatLabels>,
    pub rows_exported: Family<RowsLabels, Counter>,
    pub emails: Family<EmailLabels, Counter>,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub queue_oldest_age: Family<QueueLabels, FloatGauge>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub sync_exports_in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            exports_created: Family::default(),
            exports_finished: Family::default(),
            export_duration: Family::new_with_constructor(seconds),
            export_size: Family::new_with_constructor(bytes),
            rows_exported: Family::default(),
            emails: Family::default(),
            queue_depth: Family::default(),
            queue_oldest_age: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds),
            sync_exports_in_flight: Gauge::default(),
            registry: Registry::with_prefix("pipeline_export"),
        };
        let registry = &mut m.registry;
        registry.register(
            "exports_created",
            "Background exports created, by format and origin (api or schedule)",
            m.exports_created.clone(),
        );
        registry.register(
            "exports_finished",
            "Background exports finished, by format and outcome",
            m.exports_finished.clone(),
        );
        registry.register_with_unit(
            "export_duration",
            "Time a successful export attempt took, from claim to the stored file",
            Unit::Seconds,
            m.export_duration.clone(),
        );
        registry.register_with_unit(
            "export_size",
            "Size of stored export files",
            Unit::Bytes,
            m.export_size.clone(),
        );
        registry.register(
            "rows_exported",
            "Jobs written to export files, by format and path (sync or background)",
            m.rows_exported.clone(),
        );
        registry.register(
            "emails",
            "Email attempts, by kind (ready or failed) and outcome (sent, retried, failed)",
            m.emails.clone(),
        );
        registry.register(
            "queue_depth",
            "Tasks waiting in a queue (ready or delayed), read from the database",
            m.queue_depth.clone(),
        );
        registry.register_with_unit(
            "queue_oldest_age",
            "How long the oldest task that could run has waited, read from the database",
            Unit::Seconds,
            m.queue_oldest_age.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by method, route and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency to the response head, by method and route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "sync_exports_in_flight",
            "GET /api/export downloads streaming now",
            m.sync_exports_in_flight.clone(),
        );
        m
    }

    pub fn export_created(&self, format: &str, origin: &str) {
        self.exports_created
            .get_or_create(&CreatedLabels {
                format: format.to_owned(),
                origin: origin.to_owned(),
            })
            .inc();
    }

    /// A background export that ended: its outcome, and for a success its time, size and rows.
    pub fn export_finished(&self, format: &str, outcome: &str, done: Option<(Duration, u64, u64)>) {
        self.exports_finished
            .get_or_create(&FinishedLabels {
                format: format.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some((took, size, rows)) = done {
            let labels = FormatLabels {
                format: format.to_owned(),
            };
            self.export_duration
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
            self.export_size.get_or_create(&labels).observe(size as f64);
            self.rows(format, "background", rows);
        }
    }

    pub fn rows(&self, format: &str, path: &str, rows: u64) {
        self.rows_exported
            .get_or_create(&RowsLabels {
                format: format.to_owned(),
                path: path.to_owned(),
            })
            .inc_by(rows);
    }

    pub fn email(&self, kind: &str, outcome: &str) {
        self.emails
            .get_or_create(&EmailLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Sets the queue gauges from [`queue_stats`].
    pub async fn observe_queues(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        for stat in queue_stats(pool).await? {
            let labels = QueueLabels {
                queue: stat.queue.to_owned(),
            };
            self.queue_depth.get_or_create(&labels).set(stat.depth);
            self.queue_oldest_age
                .get_or_create(&labels)
                .set(stat.oldest_age_secs);
        }
        Ok(())
    }

    /// The text exposition of everything above.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One queue's backlog.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStat {
    pub queue: &'static str,
    /// Tasks waiting, ready or delayed (a retry's backoff).
    pub depth: i64,
    /// How long the oldest task that could run has waited; 0 when none.
    pub oldest_age_secs: f64,
}

/// The exports and emails queues' backlog, from `apalis.jobs`, in one query.
pub async fn queue_stats(pool: &PgPool) -> Result<Vec<QueueStat>, sqlx::Error> {
    let queues = [EXPORTS_QUEUE, EMAILS_QUEUE];
    let rows: Vec<(String, i64, Option<f64>)> = sqlx::query_as(
        "SELECT q.name, count(*) FILTER (WHERE j.waiting), \
                EXTRACT(EPOCH FROM now() - min(j.run_at) FILTER (WHERE j.waiting AND j.run_at <= now()))::float8 \
         FROM unnest($1::text[]) AS q(name) \
         LEFT JOIN (SELECT job_type, run_at, (status IN ('Pending', 'Queued') \
                        OR (status = 'Failed' AND attempts < max_attempts)) AS waiting \
                    FROM apalis.jobs WHERE job_type = ANY($1)) j ON j.job_type = q.name \
         GROUP BY q.name",
    )
    .bind(&queues[..])
    .fetch_all(pool)
    .await?;
    Ok(queues
        .into_iter()
        .map(|queue| {
            let (depth, oldest) = rows
                .iter()
                .find(|(name, ..)| name == queue)
                .map_or((0, None), |(_, depth, oldest)| (*depth, *oldest));
            QueueStat {
                queue,
                depth,
                oldest_age_secs: oldest.unwrap_or(0.0).max(0.0),
            }
        })
        .collect())
}

/// Counts one streaming sync export while it lives.
pub struct InFlight(Gauge);

impl InFlight {
    pub fn new(metrics: &Metrics) -> InFlight {
        metrics.sync_exports_in_flight.inc();
        InFlight(metrics.sync_exports_in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
