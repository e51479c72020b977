//! The `pipeline-export` binary itself: configuration errors, token and seed commands,
//! graceful shutdown, and flat memory while streaming.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{
    JWT_SECRET, LINK_SECRET, TestApp, database_url, error_of, free_port, peak_rss_kib,
};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-export");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "JWT_SECRET",
        "LINK_SECRET",
        "BIND_ADDR",
        "SYNC_EXPORT_MAX_ROWS",
        "LOG_FORMAT",
        "S3_BUCKET",
        "S3_ENDPOINT",
        "SMTP_URL",
    ] {
        cmd.env_remove(var);
    }
    // Files and mail of these processes stay out of the repository.
    let scratch = std::env::temp_dir().join("pe-cli-tests");
    cmd.env("STORAGE_DIR", scratch.join("exports"))
        .env("MAIL_DIR", scratch.join("mail"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn missing_settings_exit_2_with_a_clear_message() {
    let no_db = run(&["serve"], &[("JWT_SECRET", JWT_SECRET)]);
    assert_eq!(no_db.status.code(), Some(2), "{}", stderr(&no_db));
    assert!(
        stderr(&no_db).contains("DATABASE_URL"),
        "{}",
        stderr(&no_db)
    );

    let no_secret = run(
        &["serve"],
        &[
            ("DATABASE_URL", database_url()),
            ("LINK_SECRET", LINK_SECRET),
        ],
    );
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(
        stderr(&no_secret).contains("JWT_SECRET"),
        "{}",
        stderr(&no_secret)
    );

    for command in ["serve", "worker", "all"] {
        let no_link_secret = run(
            &[command],
            &[("DATABASE_URL", database_url()), ("JWT_SECRET", JWT_SECRET)],
        );
        assert_eq!(no_link_secret.status.code(), Some(2), "{command}");
        assert!(
            stderr(&no_link_secret).contains("LINK_SECRET"),
            "{}",
            stderr(&no_link_secret)
        );
    }

    let hasty = run(
        &["worker"],
        &[
            ("DATABASE_URL", database_url()),
            ("LINK_SECRET", LINK_SECRET),
            ("WORKER_HEARTBEAT", "500ms"),
        ],
    );
    assert_eq!(hasty.status.code(), Some(2));
    assert!(
        stderr(&hasty).contains("WORKER_HEARTBEAT"),
        "{}",
        stderr(&hasty)
    );

    let bad_number = run(&["serve", "--sync-export-max-rows", "lots"], &[]);
    assert_eq!(bad_number.status.code(), Some(2));

    let bad_url = run(&["migrate"], &[("DATABASE_URL", "mysql://x")]);
    assert_eq!(bad_url.status.code(), Some(2));
    assert!(stderr(&bad_url).contains("postgres://"));
}

#[test]
fn every_command_has_help_naming_its_environment_variables() {
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["serve", "--help"],
            &[
                "DATABASE_URL",
                "BIND_ADDR",
                "JWT_SECRET",
                "SYNC_EXPORT_MAX_ROWS",
                "LOG_FORMAT",
                "LINK_SECRET",
                "S3_BUCKET",
                "SMTP_URL",
            ],
        ),
        (
            &["worker", "--help"],
            &[
                "DATABASE_URL",
                "WORKER_CONCURRENCY",
                "EXPORT_MAX_ATTEMPTS",
                "EXPORT_RETENTION",
            ],
        ),
        (&["all", "--help"], &["BIND_ADDR", "WORKER_CONCURRENCY"]),
        (&["migrate", "--help"], &["DATABASE_URL"]),
        (&["token", "create", "--help"], &["--email", "--name"]),
        (&["token", "list", "--help"], &["--email"]),
        (&["token", "revoke", "--help"], &["<ID>"]),
        (&["seed", "--help"], &["--email", "--jobs"]),
    ];
    for (args, needles) in cases {
        let out = run(args, &[("JWT_SECRET", "do-not-print-me")]);
        assert!(out.status.success(), "{args:?}");
        for needle in needles {
            assert!(
                stdout(&out).contains(needle),
                "{args:?} help mentions {needle}"
            );
        }
        assert!(
            !stdout(&out).contains("do-not-print-me"),
            "secrets are hidden in help"
        );
    }
}

#[tokio::test]
async fn token_commands_create_list_and_revoke() {
    let app = TestApp::spawn().await;
    let email = format!("cli-{}@test.pipeline", uuid::Uuid::new_v4().simple());
    let env = [("DATABASE_URL", database_url())];

    let created = run(
        &["token", "create", "--email", &email, "--name", "laptop"],
        &env,
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("pex_") && token.len() == 68, "{token}");
    assert_eq!(app.export(&token, "").await.status(), 200);

    let listed = run(&["token", "list", "--email", &email], &env);
    assert!(listed.status.success());
    let line = stdout(&listed).lines().nth(1).unwrap().to_owned();
    assert!(
        line.contains("laptop") && line.contains(&token[..12]),
        "{line}"
    );
    assert!(
        !stdout(&listed).contains(&token[12..]),
        "the secret is never listed"
    );
    let id = line.split_whitespace().next().unwrap().to_owned();

    let revoked = run(&["token", "revoke", &id], &env);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    error_of(app.export(&token, "").await, 401).await;
    let again = run(&["token", "revoke", &id], &env);
    assert_eq!(again.status.code(), Some(1));

    let unknown = run(&["token", "list", "--email", "nobody@nowhere.test"], &env);
    assert_eq!(unknown.status.code(), Some(1));
}

#[tokio::test]
async fn schedule_commands_create_and_list_backups() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let env = [("DATABASE_URL", database_url())];

    let created = run(
        &[
            "schedule",
            "create",
            "--email",
            &user.email,
            "--weekly",
            "monday@08:00",
            "--timezone",
            "Africa/Nairobi",
            "--format",
            "csv",
            "--keep-last",
            "8",
            "--filter",
            "status=applied,interview",
        ],
        &env,
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let line = stdout(&created);
    assert!(
        line.contains("Weekly backup") && line.contains("every Monday at 08:00"),
        "{line}"
    );
    assert!(line.contains("at 08:00 (Africa/Nairobi)"), "{line}");
    let id = line.split_whitespace().next().unwrap().to_owned();

    // The API sees the same schedule.
    let response = app
        .client
        .get(app.url(&format!("/api/export-schedules/{id}")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let schedule: serde_json::Value = response.json().await.unwrap();
    assert_eq!(schedule["keep_last"], 8);
    assert_eq!(schedule["format"], "csv");
    assert_eq!(schedule["timezone"], "Africa/Nairobi");
    assert_eq!(
        schedule["filters"],
        serde_json::json!({"status": ["applied", "interview"]})
    );
    assert!(
        schedule["next_run_local"]
            .as_str()
            .unwrap()
            .ends_with("T08:00:00+03:00")
    );

    let listed = run(&["schedule", "list", "--email", &user.email], &env);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).starts_with(&id), "{}", stdout(&listed));

    // Bad values are usage errors (exit 2) naming the flag.
    for (args, flag) in [
        (vec!["--weekly", "someday@08:00"], "--weekly"),
        (vec!["--daily", "25:00"], "--daily"),
        (
            vec!["--daily", "06:30", "--timezone", "Mars/Olympus"],
            "--timezone",
        ),
        (
            vec!["--daily", "06:30", "--filter", "colour=red"],
            "--filter",
        ),
    ] {
        let mut all = vec!["schedule", "create", "--email", &user.email];
        all.extend(args);
        let out = run(&all, &env);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{all:?}: {}", stderr(&out));
    }
    let unknown = run(
        &[
            "schedule",
            "create",
            "--email",
            "nobody@nowhere.test",
            "--daily",
            "06:30",
        ],
        &env,
    );
    assert_eq!(unknown.status.code(), Some(1));
}

#[tokio::test]
async fn seed_creates_varied_realistic_jobs_and_prints_a_curl() {
    let app = TestApp::spawn().await;
    let email = format!("seed-{}@test.pipeline", uuid::Uuid::new_v4().simple());
    let out = run(
        &["seed", "--email", &email, "--jobs", "2000"],
        &[("DATABASE_URL", database_url())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("prints the token")
        .trim()
        .to_owned();
    assert!(text.contains("curl") && text.contains(&token) && text.contains("/api/export"));

    let body = app.export_json(&token, "").await;
    assert_eq!(body["total"], 2000);
    let jobs = body["jobs"].as_array().unwrap();
    let has = |pred: &dyn Fn(&serde_json::Value) -> bool| jobs.iter().any(pred);
    for status in ["saved", "applied", "interview", "offer", "rejected"] {
        assert!(has(&|j| j["status"] == status), "{status}");
    }
    assert!(has(&|j| j["source"].is_null()));
    assert!(has(&|j| j["salary_range_min"].is_number()));
    assert!(has(&|j| j["tags"].as_array().unwrap().len() >= 2));
    assert!(has(&|j| j["notes"] == ""));
    assert!(has(&|j| j["notes"].is_null()));
    let note_has = |needle: &str| has(&|j| j["notes"].as_str().is_some_and(|n| n.contains(needle)));
    for needle in [",", "\"", "\n", "\r\n", "🎉", "面接"] {
        assert!(note_has(needle), "a note contains {needle:?}");
    }
    // Consistent histories: an offer has been applied for.
    assert!(
        jobs.iter()
            .filter(|j| j["status"] == "offer")
            .all(|j| j["applied_at"].is_string())
    );
}

/// A `pipeline-export serve` process on a free port, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = command();
        cmd.arg("serve")
            .env("DATABASE_URL", database_url())
            .env("JWT_SECRET", JWT_SECRET)
            .env("LINK_SECRET", LINK_SECRET)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Server { child, base }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn download(base: &str, token: &str, query: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/export?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn sigterm_lets_a_running_download_finish() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 40_000, 5).await;
    let mut server =
        Server::start(&[("SYNC_EXPORT_MAX_ROWS", "0"), ("SHUTDOWN_GRACE_SECS", "60")]).await;

    let mut response = reqwest::Client::new()
        .get(format!("{}/api/export?format=json", server.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let mut body = response.chunk().await.unwrap().unwrap().to_vec();
    server.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err(),
        "no new connections once shutting down"
    );
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(&body).expect("the download is complete");
    assert_eq!(parsed["total"], 40_000);
    assert_eq!(parsed["jobs"].as_array().unwrap().len(), 40_000);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after shutdown: {status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server exits once the download is done"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Streaming keeps memory flat: serving 100,000 jobs costs the server at most about 20 MiB
/// more peak memory than serving 100.
#[tokio::test]
async fn memory_stays_flat_from_100_to_100_000_rows() {
    let app = TestApp::spawn().await;
    let small = app.create_user().await;
    let large = app.create_user().await;
    app.seed_jobs(&small, 100, 6).await;
    app.seed_jobs(&large, 100_000, 7).await;
    let server = Server::start(&[("SYNC_EXPORT_MAX_ROWS", "0")]).await;
    let pid = server.child.id();

    for format in ["json", "csv"] {
        download(&server.base, &small.token, &format!("format={format}")).await;
    }
    let after_small = peak_rss_kib(pid);
    let mut sizes = Vec::new();
    for format in ["json", "csv"] {
        // Read and drop chunk by chunk: the test itself must not hold the file either.
        let mut response = reqwest::Client::new()
            .get(format!("{}/api/export?format={format}", server.base))
            .bearer_auth(&large.token)
            .send()
            .await
            .unwrap();
        let mut n = 0usize;
        while let Some(chunk) = response.chunk().await.unwrap() {
            n += chunk.len();
        }
        sizes.push(n);
    }
    let after_large = peak_rss_kib(pid);
    assert!(
        sizes.iter().all(|&n| n > 30_000_000),
        "large exports: {sizes:?}"
    );
    let growth_mib = (after_large.saturating_sub(after_small)) as f64 / 1024.0;
    assert!(
        growth_mib < 20.0,
        "peak RSS grew {growth_mib:.1} MiB (from {after_small} KiB to {after_large} KiB)"
    );
}

/// The `spans` of a JSON log line, by name.
fn span<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == name)
}

#[tokio::test]
async fn json_logs_carry_request_user_and_export_ids_and_never_a_secret() {
    use crate::helpers::{bucket, fresh_database_url, jwt_for, s3_endpoint, smtp_url};
    let url = fresh_database_url().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("pe-json-log-{port}.log"));
    let mut child = command()
        .arg("all")
        .env("DATABASE_URL", &url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("LINK_SECRET", LINK_SECRET)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("PUBLIC_BASE_URL", &base)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,tower_http=debug")
        .env("S3_BUCKET", bucket())
        .env("S3_ENDPOINT", s3_endpoint())
        .env("S3_FORCE_PATH_STYLE", "true")
        .env("SMTP_URL", smtp_url())
        .env("WORKER_HEARTBEAT", "1s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the service did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let email = format!("logs-{}@test.pipeline", uuid::Uuid::new_v4().simple());
    let created = run(
        &["token", "create", "--email", &email],
        &[("DATABASE_URL", &url)],
    );
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("pex_"), "{}", stderr(&created));
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&pool)
        .await
        .unwrap();
    let jwt = jwt_for(user_id);

    let export: serde_json::Value = client
        .post(format!("{base}/api/exports"))
        .bearer_auth(&token)
        .header("x-request-id", "log-test-create")
        .json(&serde_json::json!({"format": "csv", "notify": {"email": true}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = export["id"].as_str().unwrap().to_owned();
    let presigned = loop {
        let current: serde_json::Value = client
            .get(format!("{base}/api/exports/{id}"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if current["status"] == "succeeded" {
            break current["download_url"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "{current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A request that fails, for a line of its own: another user's (unknown) export.
    let missing = client
        .delete(format!("{base}/api/exports/{}", uuid::Uuid::new_v4()))
        .bearer_auth(&token)
        .header("x-request-id", "log-test-missing")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The email is sent (and logged) once the worker's email task ran.
    let sent = crate::helpers::wait_emails(&email, 1).await.remove(0);
    let link = crate::helpers::link_in(sent["text"].as_str().unwrap(), "/d/");
    let link_token = link.split("/d/").nth(1).unwrap().to_owned();
    // The emailed link, as a browser and as a program follow it: its token is a credential.
    for accept in ["text/html", "*/*"] {
        let followed = client
            .get(format!("{base}/d/{link_token}"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert!(followed.status().is_success() || followed.status() == 302);
    }
    let deleted = client
        .delete(format!("{base}/api/exports/{id}"))
        .bearer_auth(&token)
        .header("x-request-id", "log-test-delete")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in\n{log}"))
    };
    let queued = find("export queued");
    let request = span(queued, "request").expect("inside the request's span");
    assert_eq!(request["request_id"], "log-test-create");
    assert_eq!(request["user_id"], user_id.to_string());
    assert_eq!(queued["export_id"], id);
    let succeeded = find("export succeeded");
    assert_eq!(span(succeeded, "export_task").unwrap()["export_id"], id);
    let mailed = find("email sent");
    assert_eq!(span(mailed, "email_task").unwrap()["export_id"], id);
    // A route naming the export puts it on the request's span: every line of it carries it.
    // tower_http's debug lines carry each request's span: the link's token is redacted.
    assert!(
        lines
            .iter()
            .filter_map(|l| span(l, "request"))
            .any(|s| s["path"] == "/d/{token}"),
        "{log}"
    );
    let deleted = find("export deleted");
    let request = span(deleted, "request").unwrap();
    assert_eq!(request["request_id"], "log-test-delete");
    assert_eq!(request["export_id"], id);
    assert_eq!(request["user_id"], user_id.to_string());

    let signature = presigned
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("a presigned URL")
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let link_mac = link_token.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("JWT_SECRET", JWT_SECRET),
        ("LINK_SECRET", LINK_SECRET),
        ("the personal token", token.as_str()),
        ("the personal token's secret part", &token[12..]),
        ("the JWT", jwt.as_str()),
        ("the presigned URL's signature", signature.as_str()),
        ("the download link's MAC", link_mac.as_str()),
        ("the download link", link_token.as_str()),
        (
            "the S3 secret key",
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap().as_str(),
        ),
    ] {
        assert!(!log.contains(secret), "{what} is in the logs");
    }
}

/// Runs `args` in a pseudo-terminal (util-linux `script`), as a person at a terminal would;
/// returns everything the terminal showed.
fn run_in_terminal(args: &[&str], env: &[(&str, &str)]) -> String {
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    // `script` with the environment `command()` gives the binary.
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in command().get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    for (k, v) in env {
        script.env(k, v);
    }
    let out = script.output().expect("script (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_export_command_writes_what_the_endpoint_serves() {
    let app = TestApp::spawn_with(|c| c.sync_export_max_rows = None).await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 300, 5).await;
    let env = [("DATABASE_URL", database_url())];
    let sync = |query: &'static str| {
        let app = &app;
        let token = user.token.clone();
        async move {
            app.export(&token, query)
                .await
                .bytes()
                .await
                .unwrap()
                .to_vec()
        }
    };

    // csv to stdout: byte for byte the endpoint's; no progress bar off a terminal.
    let out = run(
        &[
            "export",
            "--email",
            &user.email,
            "--format",
            "csv",
            "--out",
            "-",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, sync("format=csv").await);
    assert!(
        stderr(&out).contains("exported 300 jobs"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("ETA"), "{}", stderr(&out));

    // Options and filters as the endpoint takes them; gzip into a named file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offers.csv.gz");
    let out = run(
        &[
            "export",
            "--email",
            &user.email,
            "--format",
            "csv",
            "--gzip",
            "--out",
            file.to_str().unwrap(),
            "--filter",
            "status=offer,interview",
            "--delimiter",
            "semicolon",
            "--bom",
            "--fields",
            "company_name,status,tags",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), file.to_str().unwrap());
    assert_eq!(
        crate::helpers::gunzip(&std::fs::read(&file).unwrap()),
        sync("format=csv&status=offer,interview&delimiter=semicolon&bom=true&fields=company_name,status,tags").await
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no partial file left"
    );

    // The default name, in the current directory; JSON equal but for `exported_at`.
    let out = command()
        .args(["export", "--email", &user.email, "--format", "json"])
        .env("DATABASE_URL", database_url())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let name = stdout(&out).trim().to_owned();
    assert!(
        name.starts_with("./pipeline-jobs-") && name.ends_with(".json"),
        "{name}"
    );
    let mut written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&name)).unwrap()).unwrap();
    let mut served: serde_json::Value = serde_json::from_slice(&sync("format=json").await).unwrap();
    written["exported_at"] = serde_json::Value::Null;
    served["exported_at"] = serde_json::Value::Null;
    assert_eq!(written, served);

    // A directory as --out: the default name inside it.
    let sub = dir.path().join("into-a-directory");
    std::fs::create_dir(&sub).unwrap();
    let out = run(
        &[
            "export",
            "--email",
            &user.email,
            "--format",
            "csv",
            "--out",
            sub.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let path = stdout(&out).trim().to_owned();
    assert!(
        path.starts_with(sub.to_str().unwrap()) && path.ends_with(".csv"),
        "{path}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), sync("format=csv").await);

    // A reader that stops early (`| head`) is a normal end, not an error.
    let piped = Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; '{BIN}' export --email '{}' --format ndjson --out - | head -c 100 >/dev/null", user.email),
        ])
        .env("DATABASE_URL", database_url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(!stderr(&piped).contains("error"), "{}", stderr(&piped));

    // Refused as the endpoint refuses, with the endpoint's message; unknown user: exit 1.
    let bad = run(&["export", "--email", &user.email, "--format", "xml"], &env);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("format must be"), "{}", stderr(&bad));
    let bad = run(
        &["export", "--email", &user.email, "--filter", "colour=red"],
        &env,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("colour"), "{}", stderr(&bad));
    let nobody = run(
        &["export", "--email", "nobody@nowhere.test", "--out", "-"],
        &env,
    );
    assert_eq!(nobody.status.code(), Some(1));
    assert!(stderr(&nobody).contains("no user"), "{}", stderr(&nobody));

    // At a terminal: a progress bar with rows, rate and ETA, and the same file.
    let file = dir.path().join("at-a-terminal.ndjson");
    let screen = run_in_terminal(
        &[
            "export",
            "--email",
            &user.email,
            "--format",
            "ndjson",
            "--out",
            file.to_str().unwrap(),
        ],
        &env,
    );
    assert!(
        screen.contains("exporting") && screen.contains("rows/s") && screen.contains("ETA"),
        "{screen}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), sync("format=ndjson").await);
}

#[test]
fn seed_shows_progress_only_at_a_terminal() {
    let email = format!(
        "seed-progress-{}@test.pipeline",
        uuid::Uuid::new_v4().simple()
    );
    let env = [("DATABASE_URL", database_url())];
    let screen = run_in_terminal(&["seed", "--email", &email, "--jobs", "2000"], &env);
    assert!(
        screen.contains("seeding") && screen.contains("/2,000 rows") && screen.contains("ETA"),
        "{screen}"
    );
    let piped = run(&["seed", "--email", &email, "--jobs", "10"], &env);
    assert!(piped.status.success());
    assert!(!stderr(&piped).contains("rows/s"), "{}", stderr(&piped));
}

/// The result column of each check in `doctor`'s table.
fn doctor_results(table: &str) -> std::collections::HashMap<String, String> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(' '))
        .map(|l| {
            let mut words = l.split_whitespace();
            (
                words.next().unwrap().to_owned(),
                words.next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn doctor_checks_the_real_services_and_names_what_is_down() {
    use crate::helpers::{bucket, s3_endpoint, smtp_url};
    // The test database is migrated by the test run.
    let _app = TestApp::spawn().await;
    let endpoint = s3_endpoint();
    let smtp = smtp_url();
    let up = [
        ("DATABASE_URL", database_url()),
        ("JWT_SECRET", JWT_SECRET),
        ("LINK_SECRET", LINK_SECRET),
        ("S3_BUCKET", bucket()),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("SMTP_URL", smtp.as_str()),
    ];
    let out = run(&["doctor"], &up);
    let table = stdout(&out);
    assert!(out.status.success(), "{table}{}", stderr(&out));
    let results = doctor_results(&table);
    for check in [
        "config",
        "database",
        "migrations",
        "storage",
        "mail",
        "queue",
    ] {
        assert_eq!(
            results.get(check).map(String::as_str),
            Some("ok"),
            "{table}"
        );
    }
    assert!(table.contains("presigned GET"), "{table}");
    assert!(table.contains("EHLO"), "{table}");
    assert!(!table.contains(JWT_SECRET) && !table.contains(LINK_SECRET));

    // Storage and SMTP stopped (nothing listens on their ports): named, with a fix, exit 1.
    let closed = |port: u16| format!("127.0.0.1:{port}");
    let dead_port = free_port();
    let dead_s3 = format!("http://{}", closed(dead_port));
    let dead_smtp = format!("smtp://{}", closed(dead_port));
    let mut down = up.to_vec();
    down.retain(|(k, _)| !matches!(*k, "S3_ENDPOINT" | "SMTP_URL" | "JWT_SECRET"));
    down.push(("S3_ENDPOINT", &dead_s3));
    down.push(("SMTP_URL", &dead_smtp));
    let out = run(&["doctor"], &down);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{table}");
    let results = doctor_results(&table);
    assert_eq!(results["database"], "ok", "{table}");
    assert_eq!(results["storage"], "FAIL", "{table}");
    assert_eq!(results["mail"], "FAIL", "{table}");
    assert_eq!(results["config"], "warn", "JWT_SECRET missing: {table}");
    assert!(table.contains("fix: check S3_ENDPOINT"), "{table}");
    assert!(table.contains("fix: check SMTP_URL"), "{table}");
    assert!(
        stderr(&out).contains("2 check(s) failed"),
        "{}",
        stderr(&out)
    );

    // Local fallbacks work on one machine: warnings, not failures; the probe leaves nothing.
    let dir = tempfile::tempdir().unwrap();
    let storage_dir = dir.path().join("exports");
    let mail_dir = dir.path().join("mail");
    let local = [
        ("DATABASE_URL", database_url()),
        ("JWT_SECRET", JWT_SECRET),
        ("LINK_SECRET", LINK_SECRET),
        ("STORAGE_DIR", storage_dir.to_str().unwrap()),
        ("MAIL_DIR", mail_dir.to_str().unwrap()),
    ];
    let out = run(&["doctor"], &local);
    let table = stdout(&out);
    assert!(out.status.success(), "{table}");
    let results = doctor_results(&table);
    assert_eq!(results["storage"], "warn", "{table}");
    assert_eq!(results["mail"], "warn", "{table}");
    assert!(
        table.contains("set S3_BUCKET") && table.contains("set SMTP_URL"),
        "{table}"
    );
    let left: Vec<_> = walk(dir.path());
    assert!(
        left.iter().all(|p| p.is_dir()),
        "no probe file left: {left:?}"
    );

    // The database stopped: what needs it is skipped, not failed twice.
    let dead_db = format!("postgres://postgres@{}/postgres", closed(dead_port));
    let mut no_db = up.to_vec();
    no_db.retain(|(k, _)| *k != "DATABASE_URL");
    no_db.push(("DATABASE_URL", &dead_db));
    let out = run(&["doctor"], &no_db);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{table}");
    let results = doctor_results(&table);
    assert_eq!(results["database"], "FAIL", "{table}");
    assert_eq!(results["migrations"], "skipped", "{table}");
    assert_eq!(results["storage"], "ok", "{table}");
}

/// Every path under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}
