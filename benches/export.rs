//! Sync export benchmark: rows/s and the server's peak RSS, by format and size.
//!
//! `cargo bench --bench export` (optionally `-- 10000 100000 1000000`). It needs PostgreSQL
//! (`BENCH_DATABASE_URL`, default the local server's `pipeline_export_bench` database, created
//! if missing), seeds one user per size once, and runs the release binary as the server with
//! the cap off. Each scenario gets a fresh server process, so its peak RSS (VmHWM) is its own;
//! the baseline is a fresh server that served a 100-row export.
//!
//! For reference it also times PostgreSQL's own `COPY (SELECT <the CSV columns>) TO STDOUT
//! WITH CSV` of the same rows through psql, when psql is installed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-export");
const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const RUNS: usize = 3;

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(database_url: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", SECRET)
            .env("LINK_SECRET", "bench-link-secret-bench-link-secret")
            .env("STORAGE_DIR", std::env::temp_dir().join("pe-bench-exports"))
            .env("MAIL_DIR", std::env::temp_dir().join("pe-bench-mail"))
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("SYNC_EXPORT_MAX_ROWS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the release binary");
        // Owned by `Server` at once, so it is killed and reaped whatever happens next.
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(format!("{}/readyz", server.base)).await
                && r.status() == 200
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    }

    fn peak_rss_mib(&self) -> f64 {
        common::peak_rss_mib(self.child.id())
    }

    /// Downloads one export, dropping chunks as they come; returns (seconds, bytes).
    async fn export(&self, token: &str, format: &str, gzip: bool) -> (f64, usize) {
        let client = reqwest::Client::new();
        let mut request = client
            .get(format!("{}/api/export?format={format}", self.base))
            .bearer_auth(token);
        if gzip {
            request = request.header("accept-encoding", "gzip");
        }
        let started = Instant::now();
        let mut response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            bytes += chunk.len();
        }
        (started.elapsed().as_secs_f64(), bytes)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_reference(database_url: &str, user_id: uuid::Uuid) -> Option<f64> {
    let sql = format!(
        "\\copy (SELECT id, company_name, job_title, status, source, location, is_remote, job_url, \
         salary_range_min, salary_range_max, ai_match_score, notes, array_to_string(tags, '; '), \
         applied_at, interview_at, offer_at, rejected_at, created_at, updated_at FROM jobs \
         WHERE user_id = '{user_id}' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC) \
         TO '/dev/null' WITH CSV HEADER"
    );
    let started = Instant::now();
    let status = Command::new("psql")
        .arg(database_url)
        .args(["-q", "-c", &sql])
        .status()
        .ok()?;
    status.success().then(|| started.elapsed().as_secs_f64())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let url = common::database_url().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    pipeline_export::db::migrate(&pool).await.unwrap();

    let (_, small_token) = common::bench_user(&pool, 100).await;
    let baseline = {
        let server = Server::start(&url).await;
        for format in ["json", "csv"] {
            server.export(&small_token, format, false).await;
        }
        server.peak_rss_mib()
    };
    println!(
        "baseline: fresh server after a 100-row json and csv export, peak RSS {baseline:.1} MiB"
    );
    println!(
        "{:>9}  {:<5} {:<5} {:>9} {:>11} {:>9} {:>13} {:>12}",
        "rows", "fmt", "gzip", "median s", "rows/s", "MB out", "peak RSS MiB", "over 100-row"
    );
    for &n in &sizes {
        let (user_id, token) = common::bench_user(&pool, n).await;
        for (format, gzip) in [
            ("csv", false),
            ("csv", true),
            ("json", false),
            ("json", true),
        ] {
            let server = Server::start(&url).await;
            let mut times = Vec::new();
            let mut bytes = 0;
            for _ in 0..RUNS {
                let (t, b) = server.export(&token, format, gzip).await;
                times.push(t);
                bytes = b;
            }
            let t = median(times);
            let rss = server.peak_rss_mib();
            println!(
                "{n:>9}  {format:<5} {:<5} {t:>9.3} {:>11.0} {:>9.1} {rss:>13.1} {:>12.1}",
                if gzip { "yes" } else { "no" },
                n as f64 / t,
                bytes as f64 / 1e6,
                rss - baseline
            );
        }
        if let Some(t) = copy_reference(&url, user_id) {
            println!(
                "{n:>9}  psql COPY ... TO STDOUT WITH CSV (reference): {t:.3} s, {:.0} rows/s",
                n as f64 / t
            );
        }
    }
}
