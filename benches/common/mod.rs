//! What the benchmarks share: the benchmark database, a seeded user, and reading a process's
//! peak RSS. Each benchmark uses a part of it.
#![allow(dead_code)]

use sqlx::postgres::PgPoolOptions;

fn admin_url() -> String {
    std::env::var("BENCH_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `BENCH_DATABASE_URL`, or the local server's `pipeline_export_bench` (created if missing).
pub async fn database_url() -> String {
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        return url;
    }
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url())
        .await
        .unwrap();
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'pipeline_export_bench')",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    if !exists {
        sqlx::query("CREATE DATABASE pipeline_export_bench")
            .execute(&admin)
            .await
            .unwrap();
    }
    let (base, _) = admin_url()
        .rsplit_once('/')
        .map(|(b, d)| (b.to_owned(), d.to_owned()))
        .unwrap();
    format!("{base}/pipeline_export_bench")
}

/// Peak resident set size (VmHWM) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// A user with exactly `n` jobs, and a fresh token for it.
pub async fn bench_user(pool: &sqlx::PgPool, n: u64) -> (uuid::Uuid, String) {
    let email = format!("bench-{n}@pipeline.bench");
    let (id, _) = pipeline_export::db::ensure_user(pool, &email)
        .await
        .unwrap();
    let have: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    if have as u64 != n {
        eprintln!("seeding {n} jobs...");
        pipeline_export::seed::seed(pool, &email, n, true, n)
            .await
            .unwrap();
        sqlx::query("VACUUM ANALYZE jobs")
            .execute(pool)
            .await
            .unwrap();
    }
    let (_, token) = pipeline_export::auth::create_token(pool, id, "bench")
        .await
        .unwrap();
    (id, token)
}
