//! How fast the scheduler starts due backups: N weekly schedules (10 per user) all due at
//! once, started by one scheduler, then the next week's by two schedulers ticking together,
//! then an idle tick. Each start records the run, creates the export and its queue task, and
//! advances the schedule, in one transaction.
//!
//! `cargo bench --bench scheduler` (10,000 schedules) or `-- 50000`.

mod common;

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use workers::schedules;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn cleanup(pool: &sqlx::PgPool) {
    for sql in [
        "DELETE FROM apalis.jobs WHERE id IN (SELECT task_id FROM exports e \
         JOIN users u ON u.id = e.user_id WHERE u.email LIKE 'sched-bench-%')",
        "DELETE FROM exports WHERE user_id IN (SELECT id FROM users WHERE email LIKE 'sched-bench-%')",
        "DELETE FROM users WHERE email LIKE 'sched-bench-%'",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let url = common::database_url().await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    pipeline_export::db::migrate(&pool).await.unwrap();
    cleanup(&pool).await;

    let users = (n + 9) / 10;
    sqlx::query(
        "INSERT INTO users (email) SELECT 'sched-bench-' || g || '@pipeline.bench' \
         FROM generate_series(1, $1) g",
    )
    .bind(users)
    .execute(&pool)
    .await
    .unwrap();
    // Weekly, Monday 08:00 UTC, first due 2026-01-05 08:00Z.
    sqlx::query(
        "INSERT INTO export_schedules (id, user_id, name, format, compression, cadence, timezone, \
         keep_last, notify_email, mode, next_run_at) \
         SELECT gen_random_uuid(), u.id, 'Weekly backup', 'json', 'gzip', \
                '{\"weekly\": {\"weekday\": \"monday\", \"time\": \"08:00\"}}', 'UTC', 4, true, 'full', \
                '2026-01-05T08:00:00Z' \
         FROM users u CROSS JOIN generate_series(1, 10) k \
         WHERE u.email LIKE 'sched-bench-%' LIMIT $1",
    )
    .bind(n)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    println!("{n} weekly schedules over {users} users, all due at once");

    let started = Instant::now();
    let one = schedules::tick(&pool, at("2026-01-05T08:00:30Z"), 3)
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(one.started() as i64, n);
    println!(
        "one scheduler:   {:>6} started in {secs:.2} s ({:.0} schedules/s)",
        one.started(),
        one.started() as f64 / secs
    );

    let second = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let now = at("2026-01-12T08:00:30Z");
    let started = Instant::now();
    let (a, b) = tokio::join!(
        schedules::tick(&pool, now, 3),
        schedules::tick(&second, now, 3)
    );
    let secs = started.elapsed().as_secs_f64();
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.started() + b.started()) as i64,
        n,
        "each occurrence once"
    );
    println!(
        "two schedulers:  {:>6} started in {secs:.2} s ({:.0} schedules/s; split {} + {})",
        a.started() + b.started(),
        (a.started() + b.started()) as f64 / secs,
        a.started(),
        b.started()
    );

    let started = Instant::now();
    let idle = schedules::tick(&pool, now, 3).await.unwrap();
    assert_eq!(idle.started(), 0);
    println!(
        "idle tick:       nothing due among {n} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM export_schedule_runs r JOIN users u ON u.id = r.user_id \
         WHERE u.email LIKE 'sched-bench-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(runs, 2 * n);
    cleanup(&pool).await;
}
