//! Background export benchmark: one export of N jobs (default 1,000,000) produced by a
//! `pipeline-export worker` process into S3 (s3s-fs), as csv+gzip and json+gzip, next to
//! `psql COPY (...) TO STDOUT WITH CSV | gzip -1` of the same rows.
//!
//! `cargo bench --bench background [-- N] [FORMAT ...]` (e.g. `-- 10000 pdf xlsx`; each
//! format with its default compression). Needs PostgreSQL and s3s-fs with its credentials
//! in the environment (`source infra/lib.sh && ensure_s3`, then export S3_ENDPOINT,
//! AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as infra/test.sh does). Each scenario runs on a
//! fresh worker process, so its peak RSS (VmHWM) is the scenario's own. Wall time runs from
//! the export's creation to `succeeded`, so it includes the queue hop and the upload.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use workers::exports::{CreateLimits, Created, ExportRequest, ExportStatus};
use workers::{Compression, ExportFilters, Format};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-export");
const BUCKET: &str = "pe-bench";

fn s3_endpoint() -> String {
    std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

struct Worker(Child);

impl Worker {
    fn start(database_url: &str) -> Worker {
        Worker(
            Command::new(BIN)
                .arg("worker")
                .env("DATABASE_URL", database_url)
                .env("LINK_SECRET", "bench-link-secret-bench-link-secret")
                .env("S3_BUCKET", BUCKET)
                .env("S3_ENDPOINT", s3_endpoint())
                .env("S3_FORCE_PATH_STYLE", "true")
                .env("MAIL_DIR", std::env::temp_dir().join("pe-bench-mail"))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the release binary"),
        )
    }

    /// CPU seconds (user + system) the process has used.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    fn peak_rss_mib(&self) -> f64 {
        common::peak_rss_mib(self.0.id())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_gzip_reference(database_url: &str, user_id: uuid::Uuid) -> Option<f64> {
    let sql = format!(
        "\\copy (SELECT id, company_name, job_title, status, source, location, is_remote, job_url, \
         salary_range_min, salary_range_max, ai_match_score, notes, array_to_string(tags, '; '), \
         applied_at, interview_at, offer_at, rejected_at, created_at, updated_at FROM jobs \
         WHERE user_id = '{user_id}' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC) \
         TO STDOUT WITH CSV HEADER"
    );
    let started = Instant::now();
    let status = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            "psql \"$1\" -q -c \"$2\" | gzip -1 > /dev/null",
            "bench",
        ])
        .arg(database_url)
        .arg(sql)
        .status()
        .ok()?;
    status.success().then(|| started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // Formats named among the arguments (`-- 10000 pdf xlsx`); csv and json by default.
    let mut formats: Vec<Format> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if formats.is_empty() {
        formats = vec![Format::Csv, Format::Json];
    }
    let url = common::database_url().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    pipeline_export::db::migrate(&pool).await.unwrap();
    let storage = workers::storage::Storage::from_config(&workers::storage::StorageConfig::S3 {
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        endpoint: Some(s3_endpoint()),
        force_path_style: true,
    })
    .await
    .expect("S3 settings (see the module doc)");
    storage
        .ensure_bucket()
        .await
        .expect("s3s-fs must be running");

    let (user_id, _) = common::bench_user(&pool, n).await;

    println!(
        "{:>9}  {:<5} {:<5} {:>8} {:>10} {:>9} {:>16} {:>9} {:>12}",
        "rows",
        "fmt",
        "gzip",
        "wall s",
        "rows/s",
        "MB stored",
        "worker peak MiB",
        "worker s",
        "queue ms"
    );
    for (i, format) in formats.into_iter().enumerate() {
        let worker = Worker::start(&url);
        // Let it connect and register, so the queue time below is the queue's alone.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Differing filters keep identical-request dedupe out of repeated runs.
        let filters = ExportFilters {
            created_to: Some(chrono::Utc::now() + chrono::Duration::days(1 + i as i64)),
            ..ExportFilters::default()
        };
        let request = ExportRequest {
            format,
            compression: format.default_compression(),
            filters,
            notify_email: false,
            options: Default::default(),
            origin: None,
        };
        let started = Instant::now();
        let limits = CreateLimits {
            max_active_per_user: 100,
            max_attempts: 1,
        };
        let Created::New(record) = workers::exports::create(&pool, user_id, &request, None, limits)
            .await
            .unwrap()
        else {
            panic!("a new export");
        };
        let done = loop {
            let r = workers::exports::get_any(&pool, record.id)
                .await
                .unwrap()
                .unwrap();
            if !r.status.is_active() {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(done.status, ExportStatus::Succeeded, "{done:?}");
        println!(
            "{n:>9}  {:<5} {:<5} {wall:>8.2} {:>10.0} {:>9.1} {:>16.1} {:>9.2} {:>12}",
            format.as_str(),
            if format.default_compression() == Compression::Gzip {
                "yes"
            } else {
                "no"
            },
            n as f64 / wall,
            done.byte_size.unwrap_or(0) as f64 / 1e6,
            worker.peak_rss_mib(),
            worker.cpu_secs(),
            // From the commit of the export to the worker claiming it.
            done.started_at
                .map_or(-1, |s| (s - done.created_at).num_milliseconds())
        );
        if let Some(key) = &done.object_key {
            storage.delete(key).await.unwrap();
        }
    }
    if let Some(t) = copy_gzip_reference(&url, user_id) {
        println!(
            "{n:>9}  psql COPY ... TO STDOUT WITH CSV | gzip -1 (reference): {t:.2} s, {:.0} rows/s",
            n as f64 / t
        );
    }
}
