//! The test harness: a real PostgreSQL database per test run, the real router on a random
//! port per test, and helpers that read like the story they test.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{EncodingKey, Header};
use pipeline_export::config::{BackgroundConfig, DatabaseConfig, Secret, ServeConfig};
use pipeline_export::http::{AppState, router};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use uuid::Uuid;
use workers::clock::SharedClock;
use workers::tasks::{Services, WorkerSettings};

pub const JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// The server's admin connection: `TEST_DATABASE_URL`, or the local PostgreSQL.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a database URL ends with /dbname");
    format!("{base}/{db}")
}

/// One migrated database shared by this process's tests that run no workers; created on
/// first use. Databases left by earlier runs (older than an hour) are dropped.
pub fn database_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| with_database(&admin_url(), &create_migrated_database("")))
}

/// A migrated database that nothing stays connected to, copied by [`fresh_database_url`].
fn template_database() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| create_migrated_database("_tpl"))
}

/// A database of its own, for a test whose workers must not take other tests' tasks.
pub async fn fresh_database_url() -> String {
    let template = template_database();
    let name = format!(
        "pe_test_{}_{}",
        Utc::now().timestamp(),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    with_database(&admin_url(), &name)
}

/// Creates and migrates a database on a runtime of its own; returns its name.
fn create_migrated_database(suffix: &'static str) -> String {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url())
                .await
                .expect("PostgreSQL must be running for the integration tests (see README)");
            let now = Utc::now().timestamp();
            drop_stale_databases(&admin, now).await;
            let name = format!(
                "pe_test_{now}_{}{suffix}",
                &Uuid::new_v4().simple().to_string()[..8]
            );
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&admin)
                .await
                .unwrap();
            let url = with_database(&admin_url(), &name);
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            pipeline_export::db::migrate(&pool).await.unwrap();
            pool.close().await;
            name
        })
    })
    .join()
    .unwrap()
}

async fn drop_stale_databases(admin: &PgPool, now: i64) {
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'pe_test_%'")
            .fetch_all(admin)
            .await
            .unwrap();
    for name in stale {
        let born = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        if now - born > 3600 {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(admin)
            .await;
        }
    }
}

/// The S3-compatible server of the tests (s3s-fs, started by `infra/test.sh`).
pub fn s3_endpoint() -> String {
    std::env::var("S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned())
}

/// One bucket per test process.
pub fn bucket() -> &'static str {
    static BUCKET: OnceLock<String> = OnceLock::new();
    BUCKET.get_or_init(|| {
        assert!(
            std::env::var("AWS_ACCESS_KEY_ID").is_ok(),
            "S3 credentials are not set: run the tests with infra/test.sh (it starts s3s-fs and sets them)"
        );
        let name = format!("pe-test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let storage_config = s3_config(&name);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let storage = workers::storage::Storage::from_config(&storage_config).await.unwrap();
                storage
                    .ensure_bucket()
                    .await
                    .expect("s3s-fs must be running for the integration tests (infra/test.sh starts it)");
            });
        })
        .join()
        .unwrap();
        name
    })
}

pub fn s3_config(bucket: &str) -> workers::storage::StorageConfig {
    s3_config_at(bucket, s3_endpoint())
}

/// The test bucket reached through another endpoint (e.g. a proxy that can cut the line).
pub fn s3_config_at(bucket: &str, endpoint: String) -> workers::storage::StorageConfig {
    workers::storage::StorageConfig::S3 {
        bucket: bucket.to_owned(),
        region: "us-east-1".to_owned(),
        endpoint: Some(endpoint),
        force_path_style: true,
    }
}

/// The SMTP server of the tests (maildev, started by `infra/test.sh`).
pub fn smtp_url() -> String {
    std::env::var("TEST_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".to_owned())
}

/// maildev's HTTP API.
pub fn maildev_api() -> String {
    std::env::var("MAILDEV_API_URL").unwrap_or_else(|_| "http://127.0.0.1:1080".to_owned())
}

pub const LINK_SECRET: &str = "integration-link-secret-0123456789";

pub fn background() -> BackgroundConfig {
    BackgroundConfig {
        link_secret: Secret::new(LINK_SECRET),
        public_base_url: "http://127.0.0.1:8080".to_owned(),
        storage: s3_config(bucket()),
        mail: workers::mail::MailConfig {
            smtp_url: Some(smtp_url()),
            from: "PIPELINE <exports@pipeline.test>".to_owned(),
            dir: std::env::temp_dir().join("pe-test-mail"),
        },
        download_url_ttl: Duration::from_secs(900),
        export_retention: Duration::from_secs(7 * 24 * 3600),
        export_max_active_per_user: 3,
        export_max_attempts: 3,
    }
}

pub fn config() -> ServeConfig {
    ServeConfig {
        database: DatabaseConfig {
            url: Secret::new(database_url()),
            max_connections: 5,
        },
        background: background(),
        bind_addr: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Secret::new(JWT_SECRET),
        sync_export_max_rows: Some(10_000),
        sync_export_timeout: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(5),
    }
}

/// The app on a random port, served from this test's runtime; with workers when asked.
pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub config: ServeConfig,
    /// The clock the front and the workers' scheduler go by.
    pub clock: SharedClock,
    /// The counters the front and the in-process workers share, as in `pipeline-export all`.
    pub metrics: Arc<workers::metrics::Metrics>,
    /// Stops the in-process workers when dropped.
    _workers: Option<tokio::sync::watch::Sender<bool>>,
}

/// Worker settings for tests: quick retries and a quick takeover of a dead worker's tasks.
pub fn worker_settings(config: &ServeConfig) -> WorkerSettings {
    WorkerSettings {
        public_base_url: config.background.public_base_url.clone(),
        retention: config.background.export_retention,
        export_max_attempts: config.background.export_max_attempts,
        email_max_attempts: 5,
        retry_base: Duration::from_millis(200),
        concurrency: 2,
        progress_interval: Duration::from_millis(200),
        retention_interval: Duration::from_millis(500),
        schedule_interval: Duration::from_millis(200),
        heartbeat: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(5),
    }
}

/// A user with a personal token.
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::spawn_with_clock(workers::clock::system(), adjust).await
    }

    /// The app going by `clock` (a [`workers::clock::ManualClock`] lets a test move time).
    pub async fn spawn_with_clock(
        clock: SharedClock,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        // TEST_LOG=debug (any RUST_LOG filter) shows the app's logs in failing tests' output.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let mut config = config();
        adjust(&mut config);
        let pool = pipeline_export::db::pool(&config.database).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        config.background.public_base_url = base.clone();
        let mut state = AppState::new(pool.clone(), &config).await.unwrap();
        state.clock = clock.clone();
        let metrics = state.metrics.clone();
        tokio::spawn(async move {
            axum::serve(listener, router(state)).await.unwrap();
        });
        TestApp {
            base,
            pool,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            config,
            clock,
            metrics,
            _workers: None,
        }
    }

    /// The app plus export and email workers running in this test's runtime, on a database of
    /// its own (workers take every task of their queue).
    pub async fn spawn_with_workers(adjust: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::spawn_with_workers_and_clock(workers::clock::system(), adjust).await
    }

    /// [`Self::spawn_with_workers`] going by `clock`, scheduler included.
    pub async fn spawn_with_workers_and_clock(
        clock: SharedClock,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        let mut app = Self::spawn_alone_with_clock(clock, adjust).await;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let services = app.services(app.pool.clone()).await;
        tokio::spawn(workers::tasks::run(services, async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }));
        app._workers = Some(stop_tx);
        app
    }

    /// The app on a database of its own, without workers (a test drives the scheduler).
    pub async fn spawn_alone_with_clock(
        clock: SharedClock,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        let url = fresh_database_url().await;
        Self::spawn_with_clock(clock, |c| {
            c.database.url = Secret::new(url);
            adjust(c);
        })
        .await
    }

    /// What workers of this app use, on `pool` (a second pool stands for a second process).
    pub async fn services(&self, pool: PgPool) -> Arc<Services> {
        Arc::new(Services {
            pool,
            storage: self.storage().await,
            mailer: workers::mail::Mailer::from_config(&self.config.background.mail).unwrap(),
            links: workers::links::LinkSigner::new(LINK_SECRET.as_bytes()),
            settings: worker_settings(&self.config),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        })
    }

    pub async fn storage(&self) -> workers::storage::Storage {
        workers::storage::Storage::from_config(&self.config.background.storage)
            .await
            .unwrap()
    }

    /// `POST /api/exports` with a JSON body and an optional Idempotency-Key.
    pub async fn create_export(
        &self,
        token: &str,
        body: serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/exports"))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    /// Creates an export and returns its resource, asserting `202 Accepted`.
    pub async fn start_export(&self, token: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self.create_export(token, body, None).await;
        assert_eq!(response.status(), 202);
        response.json().await.unwrap()
    }

    /// [`Self::start_export`], for the new export's id.
    pub async fn start_export_id(&self, token: &str, body: serde_json::Value) -> String {
        let created = self.start_export(token, body).await;
        created["id"].as_str().unwrap().to_owned()
    }

    pub async fn get_export(&self, token: &str, id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/exports/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/exports?{query}`, asserting success.
    /// `GET /api/exports?{query}`, whatever it answers.
    pub async fn exports_page(&self, token: &str, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/exports?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn list_exports(&self, token: &str, query: &str) -> serde_json::Value {
        let response = self.exports_page(token, query).await;
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.unwrap()
    }

    pub async fn delete_export(&self, token: &str, id: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/exports/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The files stored for an export, over all its attempts' keys.
    pub async fn stored_files(&self, id: &str) -> Vec<String> {
        let record = workers::exports::get_any(&self.pool, id.parse().unwrap())
            .await
            .unwrap()
            .expect("the export exists");
        let storage = self.storage().await;
        let mut found = Vec::new();
        for attempt in 1..=record.attempts + 1 {
            let key = workers::exports::attempt_object_key(&record, attempt);
            if storage.exists(&key).await.unwrap() {
                found.push(key);
            }
        }
        found
    }

    /// Polls the export until `done` holds for it (at most a minute).
    pub async fn wait_export(
        &self,
        token: &str,
        id: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let response = self.get_export(token, id).await;
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.unwrap();
            if done(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export did not get there: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the export has finished one way or another.
    pub async fn wait_finished(&self, token: &str, id: &str) -> serde_json::Value {
        self.wait_export(token, id, |e| {
            !matches!(e["status"].as_str(), Some("queued") | Some("running"))
        })
        .await
    }

    /// Emails maildev holds for `to`.
    pub async fn emails_to(&self, to: &str) -> Vec<serde_json::Value> {
        emails_to(to).await
    }

    /// Waits until `n` emails for `to` have arrived (at most a minute) and returns them.
    pub async fn wait_emails(&self, to: &str, n: usize) -> Vec<serde_json::Value> {
        wait_emails(to, n).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create_user(&self) -> TestUser {
        let email = format!("user-{}@test.pipeline", Uuid::new_v4().simple());
        let (id, _) = pipeline_export::db::ensure_user(&self.pool, &email)
            .await
            .unwrap();
        let (_, token) = pipeline_export::auth::create_token(&self.pool, id, "test")
            .await
            .unwrap();
        TestUser { id, email, token }
    }

    /// Adds `jobs` generated jobs to the user's (what `pipeline-export seed` makes), from a
    /// fixed random seed so runs repeat.
    pub async fn seed_jobs(&self, user: &TestUser, jobs: u64, rng_seed: u64) {
        pipeline_export::seed::seed(&self.pool, &user.email, jobs, false, rng_seed)
            .await
            .unwrap();
    }

    pub async fn insert_job(&self, user: &TestUser, job: NewJob) -> Uuid {
        sqlx::query_scalar(
            "INSERT INTO jobs (user_id, company_name, job_title, status, source, location, \
             is_remote, job_url, job_description, salary_range_min, salary_range_max, \
             ai_match_score, ai_reasoning, ai_parsed_data, notes, tags, applied_at, interview_at, \
             offer_at, rejected_at, scraped_at, created_at, updated_at, last_synced_at, deleted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, COALESCE($22, now()), COALESCE($23, now()), $24, $25) RETURNING id",
        )
        .bind(user.id)
        .bind(job.company_name)
        .bind(job.job_title)
        .bind(job.status)
        .bind(job.source)
        .bind(job.location)
        .bind(job.is_remote)
        .bind(job.job_url)
        .bind(job.job_description)
        .bind(job.salary_range_min)
        .bind(job.salary_range_max)
        .bind(job.ai_match_score)
        .bind(job.ai_reasoning)
        .bind(job.ai_parsed_data)
        .bind(job.notes)
        .bind(job.tags)
        .bind(job.applied_at)
        .bind(job.interview_at)
        .bind(job.offer_at)
        .bind(job.rejected_at)
        .bind(job.scraped_at)
        .bind(job.created_at)
        .bind(job.updated_at)
        .bind(job.last_synced_at)
        .bind(job.deleted_at)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// `n` plain jobs created one second apart, newest last; returns their ids oldest first.
    pub async fn insert_jobs(&self, user: &TestUser, n: usize) -> Vec<Uuid> {
        let start = at("2026-01-01T00:00:00Z");
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(
                self.insert_job(
                    user,
                    NewJob {
                        company_name: format!("Company {i}"),
                        created_at: Some(start + chrono::Duration::seconds(i as i64)),
                        ..NewJob::default()
                    },
                )
                .await,
            );
        }
        ids
    }

    /// `GET /api/export?{query}` with the user's token.
    pub async fn export(&self, token: &str, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/export?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// A JSON export's parsed body, asserting success.
    pub async fn export_json(&self, token: &str, query: &str) -> serde_json::Value {
        let response = self.export(token, query).await;
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.unwrap()
    }

    /// The ids in a JSON export, in file order.
    pub async fn exported_ids(&self, token: &str, query: &str) -> Vec<Uuid> {
        let body = self.export_json(token, query).await;
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

/// A job to insert; unspecified fields are NULL or the column default.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub company_name: String,
    pub job_title: String,
    pub status: String,
    pub source: Option<String>,
    pub location: Option<String>,
    pub is_remote: bool,
    pub job_url: Option<String>,
    pub job_description: Option<String>,
    pub salary_range_min: Option<i32>,
    pub salary_range_max: Option<i32>,
    pub ai_match_score: Option<i32>,
    pub ai_reasoning: Option<String>,
    pub ai_parsed_data: Option<serde_json::Value>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub applied_at: Option<DateTime<Utc>>,
    pub interview_at: Option<DateTime<Utc>>,
    pub offer_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub scraped_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Default for NewJob {
    fn default() -> Self {
        NewJob {
            company_name: "Acme Corp".into(),
            job_title: "Engineer".into(),
            status: "saved".into(),
            source: None,
            location: None,
            is_remote: false,
            job_url: None,
            job_description: None,
            salary_range_min: None,
            salary_range_max: None,
            ai_match_score: None,
            ai_reasoning: None,
            ai_parsed_data: None,
            notes: None,
            tags: Vec::new(),
            applied_at: None,
            interview_at: None,
            offer_at: None,
            rejected_at: None,
            scraped_at: None,
            created_at: None,
            updated_at: None,
            last_synced_at: None,
            deleted_at: None,
        }
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An HS256 JWT over `claims`, signed with `secret`.
pub fn jwt_with(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A valid JWT for `user_id`, as Supabase-style auth issues them.
pub fn jwt_for(user_id: Uuid) -> String {
    jwt_with(
        serde_json::json!({
            "sub": user_id,
            "exp": Utc::now().timestamp() + 3600,
            "aud": "authenticated",
            "role": "authenticated",
        }),
        JWT_SECRET,
    )
}

/// Asserts the documented error shape and returns (code, message).
pub async fn error_of(response: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "errors are JSON"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_object().expect("an error object");
    assert_eq!(error.len(), 2, "error has exactly code and message: {body}");
    (
        error["code"].as_str().unwrap().to_owned(),
        error["message"].as_str().unwrap().to_owned(),
    )
}

/// The peak resident set size of a process, from /proc.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A port nothing listens on right now (for a process to bind, or to stand for a stopped
/// service).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The emails maildev holds for `to`.
pub async fn emails_to(to: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::get(format!("{}/api/email", maildev_api()))
        .await
        .expect("maildev must be running (infra/test.sh starts it)")
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|to_list| to_list.iter().any(|t| t["address"] == to))
        })
        .collect()
}

/// Waits until `n` emails for `to` have arrived (at most a minute) and returns them.
pub async fn wait_emails(to: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mails = emails_to(to).await;
        if mails.len() >= n {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} emails to {to} did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The first link in an email's text that contains `marker` (`/d/`, `/p/`), without the
/// punctuation that may follow it.
pub fn link_in(text: &str, marker: &str) -> String {
    text.split_whitespace()
        .find(|w| w.contains(marker))
        .unwrap_or_else(|| panic!("no {marker} link in {text}"))
        .trim_end_matches(['.', ')', '>'])
        .to_owned()
}
