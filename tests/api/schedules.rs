//! Scheduled backups: the API, the scheduler under a clock the tests move, and whole backups
//! through the real queue, s3s-fs and maildev.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use workers::clock::ManualClock;

use crate::helpers::{TestApp, TestUser, at, error_of, gunzip, link_in};

impl TestApp {
    pub async fn create_schedule(&self, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/export-schedules"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a schedule, asserting `201 Created`.
    pub async fn new_schedule(&self, token: &str, body: Value) -> Value {
        let response = self.create_schedule(token, body).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let schedule: Value = response.json().await.unwrap();
        assert_eq!(
            location,
            format!("/api/export-schedules/{}", schedule["id"].as_str().unwrap())
        );
        schedule
    }

    pub async fn schedule_request(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(&format!("/api/export-schedules{path}")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    pub async fn patch_schedule(&self, token: &str, id: &str, body: Value) -> reqwest::Response {
        self.schedule_request(reqwest::Method::PATCH, token, &format!("/{id}"), Some(body))
            .await
    }

    pub async fn get_schedule(&self, token: &str, id: &str) -> Value {
        let response = self
            .schedule_request(reqwest::Method::GET, token, &format!("/{id}"), None)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// A schedule's run history, newest first.
    pub async fn runs(&self, token: &str, id: &str) -> Vec<Value> {
        let response = self
            .schedule_request(
                reqwest::Method::GET,
                token,
                &format!("/{id}/runs?limit=100"),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["runs"].as_array().unwrap().clone()
    }

    pub async fn run_now(&self, token: &str, id: &str) -> reqwest::Response {
        self.schedule_request(reqwest::Method::POST, token, &format!("/{id}/run"), None)
            .await
    }

    /// Waits until the schedule has `n` runs whose exports finished; returns the history.
    pub async fn wait_runs_finished(&self, token: &str, id: &str, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let runs = self.runs(token, id).await;
            let finished = runs
                .iter()
                .filter(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
                .count();
            if runs.len() >= n && finished == runs.len() {
                return runs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "runs did not finish: {runs:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    at(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
}

#[tokio::test]
async fn create_read_update_delete_with_defaults_and_next_runs_in_the_time_zone() {
    // Thursday 2026-03-05 12:00 UTC.
    let clock = ManualClock::new(at("2026-03-05T12:00:00Z"));
    let app = TestApp::spawn_with_clock(clock.clone(), |_| {}).await;
    let user = app.create_user().await;

    let created = app
        .new_schedule(
            &user.token,
            json!({
                "cadence": {"weekly": {"weekday": "monday", "time": "08:00"}},
                "timezone": "Africa/Nairobi",
            }),
        )
        .await;
    // Monday 08:00 in Nairobi (UTC+3).
    assert_eq!(time(&created["next_run_at"]), at("2026-03-09T05:00:00Z"));
    assert_eq!(created["next_run_local"], "2026-03-09T08:00:00+03:00");
    assert_eq!(created["name"], "Weekly backup");
    assert_eq!(created["format"], "json");
    assert_eq!(created["compression"], "gzip");
    assert_eq!(created["keep_last"], 4);
    assert_eq!(created["notify"], json!({"email": true}));
    assert_eq!(created["mode"], "full");
    assert_eq!(created["paused"], false);
    assert_eq!(
        created["cadence"],
        json!({"weekly": {"weekday": "monday", "time": "08:00"}})
    );
    assert_eq!(created["cadence_description"], "every Monday at 08:00");
    let id = created["id"].as_str().unwrap();

    let utc_default = app
        .new_schedule(
            &user.token,
            json!({"name": "Month end", "cadence": {"monthly": {"day": 31, "time": "07:00"}},
                   "format": "csv", "compression": "none", "keep_last": 12,
                   "notify": {"email": false}, "mode": "incremental",
                   "filters": {"status": ["offer", "interview"]}}),
        )
        .await;
    assert_eq!(utc_default["timezone"], "UTC");
    assert_eq!(
        time(&utc_default["next_run_at"]),
        at("2026-03-31T07:00:00Z")
    );
    assert_eq!(
        utc_default["filters"],
        json!({"status": ["offer", "interview"]})
    );

    let listed: Value = app
        .schedule_request(reqwest::Method::GET, &user.token, "", None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Weekly backup", "Month end"]);
    assert_eq!(app.get_schedule(&user.token, id).await, created);

    // Pausing hides the next run; resuming a week later counts from then.
    let paused: Value = app
        .patch_schedule(&user.token, id, json!({"paused": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_run_at"], Value::Null);
    clock.set(at("2026-03-20T12:00:00Z"));
    let resumed: Value = app
        .patch_schedule(&user.token, id, json!({"paused": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(time(&resumed["next_run_at"]), at("2026-03-23T05:00:00Z"));

    // A new cadence and zone: the next run follows them. Other fields are untouched.
    let changed: Value = app
        .patch_schedule(
            &user.token,
            id,
            json!({"cadence": {"daily": {"time": "06:30"}}, "timezone": "America/New_York",
                   "name": "Every morning", "keep_last": 7}),
        )
        .await
        .json()
        .await
        .unwrap();
    // 06:30 EDT (UTC-4) on Saturday 2026-03-21.
    assert_eq!(time(&changed["next_run_at"]), at("2026-03-21T10:30:00Z"));
    assert_eq!(changed["name"], "Every morning");
    assert_eq!(changed["keep_last"], 7);
    assert_eq!(changed["format"], "json");

    // A bad change is refused whole.
    let (code, message) = error_of(
        app.patch_schedule(
            &user.token,
            id,
            json!({"name": "x", "timezone": "Nowhere/Land"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.starts_with("timezone:"), "{message}");
    assert_eq!(app.get_schedule(&user.token, id).await, changed);

    let deleted = app
        .schedule_request(
            reqwest::Method::DELETE,
            &user.token,
            &format!("/{id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    let gone = app
        .schedule_request(reqwest::Method::GET, &user.token, &format!("/{id}"), None)
        .await;
    error_of(gone, 404).await;
}

#[tokio::test]
async fn invalid_cadence_time_timezone_and_fields_are_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let weekly = json!({"weekly": {"weekday": "monday", "time": "08:00"}});
    let cases = [
        (json!({}), "cadence"),
        (json!({"cadence": {"hourly": {"time": "08:00"}}}), "cadence"),
        (json!({"cadence": "weekly"}), "cadence"),
        (
            json!({"cadence": {"weekly": {"weekday": "monday", "time": "25:00"}}}),
            "cadence.weekly.time",
        ),
        (
            json!({"cadence": {"weekly": {"weekday": "monday", "time": "8:00"}}}),
            "cadence.weekly.time",
        ),
        (
            json!({"cadence": {"daily": {"time": 800}}}),
            "cadence.daily.time",
        ),
        (
            json!({"cadence": {"weekly": {"weekday": "funday", "time": "08:00"}}}),
            "cadence.weekly.weekday",
        ),
        (
            json!({"cadence": {"monthly": {"day": 32, "time": "07:00"}}}),
            "cadence.monthly.day",
        ),
        (
            json!({"cadence": {"monthly": {"day": 0, "time": "07:00"}}}),
            "cadence.monthly.day",
        ),
        (
            json!({"cadence": {"daily": {"time": "06:30", "tz": "UTC"}}}),
            "cadence.daily.tz",
        ),
        (
            json!({"cadence": weekly, "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (json!({"cadence": weekly, "timezone": ""}), "timezone"),
        (json!({"cadence": weekly, "keep_last": 0}), "keep_last"),
        (json!({"cadence": weekly, "keep_last": 366}), "keep_last"),
        (json!({"cadence": weekly, "keep_last": "four"}), "keep_last"),
        (json!({"cadence": weekly, "mode": "partial"}), "mode"),
        (json!({"cadence": weekly, "name": ""}), "name"),
        (json!({"cadence": weekly, "name": "a\nb"}), "name"),
        (json!({"cadence": weekly, "format": "xml"}), "format"),
        (
            json!({"cadence": weekly, "filters": {"status": "hired"}}),
            "filters.status",
        ),
        (json!({"cadence": weekly, "when": "soon"}), "when"),
    ];
    for (body, field) in cases {
        let (code, message) =
            error_of(app.create_schedule(&user.token, body.clone()).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR", "{body}");
        assert!(
            message.contains(field),
            "{body}: {message:?} should name {field}"
        );
    }
    let listed: Value = app
        .schedule_request(reqwest::Method::GET, &user.token, "", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["schedules"], json!([]), "nothing was created");
}

#[tokio::test]
async fn another_users_schedule_is_404_everywhere() {
    let app = TestApp::spawn().await;
    let (owner, other) = (app.create_user().await, app.create_user().await);
    let schedule = app
        .new_schedule(
            &owner.token,
            json!({"cadence": {"daily": {"time": "06:30"}}}),
        )
        .await;
    let id = schedule["id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    use reqwest::Method;
    for target in [id, unknown.as_str(), "not-a-uuid"] {
        for (method, path, body) in [
            (Method::GET, format!("/{target}"), None),
            (
                Method::PATCH,
                format!("/{target}"),
                Some(json!({"paused": true})),
            ),
            (Method::DELETE, format!("/{target}"), None),
            (Method::POST, format!("/{target}/run"), None),
            (Method::GET, format!("/{target}/runs"), None),
        ] {
            let response = app
                .schedule_request(method.clone(), &other.token, &path, body)
                .await;
            let (code, message) = error_of(response, 404).await;
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("NOT_FOUND", "no such export schedule"),
                "{method} {path}"
            );
        }
    }
    let listed: Value = app
        .schedule_request(Method::GET, &other.token, "", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["schedules"], json!([]));
    // Untouched for its owner.
    assert_eq!(app.get_schedule(&owner.token, id).await, schedule);
    let unauthenticated = app
        .client
        .get(app.url("/api/export-schedules"))
        .send()
        .await
        .unwrap();
    error_of(unauthenticated, 401).await;
}

#[tokio::test]
async fn a_user_has_at_most_25_schedules() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    for _ in 0..25 {
        app.new_schedule(
            &user.token,
            json!({"cadence": {"daily": {"time": "06:30"}}}),
        )
        .await;
    }
    let (code, message) = error_of(
        app.create_schedule(
            &user.token,
            json!({"cadence": {"daily": {"time": "06:30"}}}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("25"), "{message}");
}

/// A user and a daily 06:00 UTC schedule on an app driven by `clock`, without workers.
async fn daily_schedule(app: &TestApp, body: Value) -> (TestUser, String) {
    let user = app.create_user().await;
    let mut request = json!({"cadence": {"daily": {"time": "06:00"}}});
    request
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    let schedule = app.new_schedule(&user.token, request).await;
    (user, schedule["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn after_downtime_one_catch_up_run_and_the_missed_ones_recorded() {
    let clock = ManualClock::new(at("2026-03-01T00:00:00Z"));
    let app = TestApp::spawn_alone_with_clock(clock.clone(), |_| {}).await;
    let (user, id) = daily_schedule(&app, json!({})).await;
    let services = app.services(app.pool.clone()).await;

    // Not due yet: nothing happens.
    clock.set(at("2026-03-01T05:59:59Z"));
    let summary = workers::tasks::scheduler::tick(&services).await.unwrap();
    assert_eq!(summary.started(), 0);
    assert!(app.runs(&user.token, &id).await.is_empty());

    // The scheduler was down from before the 1st's run until the 4th at noon.
    clock.set(at("2026-03-04T12:00:00Z"));
    let summary = workers::tasks::scheduler::tick(&services).await.unwrap();
    assert_eq!((summary.started(), summary.missed), (1, 3));
    let runs = app.runs(&user.token, &id).await;
    let seen: Vec<(&str, &str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["scheduled_for"].as_str().unwrap(),
                r["trigger"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("2026-03-04T06:00:00Z", "schedule", "queued"),
            ("2026-03-03T06:00:00Z", "missed", "missed"),
            ("2026-03-02T06:00:00Z", "missed", "missed"),
            ("2026-03-01T06:00:00Z", "missed", "missed"),
        ]
    );
    let export_id = runs[0]["export_id"].as_str().unwrap();
    let export: Value = app
        .get_export(&user.token, export_id)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["schedule_id"], id.as_str());
    assert!(runs[1..].iter().all(|r| r["export_id"].is_null()));
    assert_eq!(
        time(&app.get_schedule(&user.token, &id).await["next_run_at"]),
        at("2026-03-05T06:00:00Z")
    );

    // Ticking again in the same minute changes nothing.
    let summary = workers::tasks::scheduler::tick(&services).await.unwrap();
    assert_eq!(summary, Default::default());
    assert_eq!(app.runs(&user.token, &id).await.len(), 4);
}

#[tokio::test]
async fn two_schedulers_ticking_together_start_each_occurrence_once() {
    let clock = ManualClock::new(at("2026-03-01T00:00:00Z"));
    let app = TestApp::spawn_alone_with_clock(clock.clone(), |_| {}).await;
    let mut schedules = Vec::new();
    for _ in 0..6 {
        schedules.push(daily_schedule(&app, json!({})).await);
    }
    // Two processes: each its own pool.
    let first = app.services(app.pool.clone()).await;
    let second_pool = pipeline_export::db::pool(&app.config.database).unwrap();
    let second = app.services(second_pool).await;

    for day in 1..=5 {
        clock.set(at(&format!("2026-03-0{day}T06:00:00Z")));
        let (a, b) = tokio::join!(
            workers::tasks::scheduler::tick(&first),
            workers::tasks::scheduler::tick(&second)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.started() + b.started(),
            schedules.len(),
            "day {day}: {a:?} {b:?}"
        );
        assert_eq!(a.missed + b.missed, 0);
    }
    for (user, id) in &schedules {
        let runs = app.runs(&user.token, id).await;
        assert_eq!(runs.len(), 5, "one run per occurrence: {runs:?}");
        assert!(runs.iter().all(|r| r["trigger"] == "schedule"));
    }
    let exports: i64 =
        sqlx::query_scalar("SELECT count(*) FROM exports WHERE schedule_id IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let tasks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'exports'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((exports, tasks), (30, 30));
}

#[tokio::test]
async fn paused_schedules_do_not_run_but_run_now_does() {
    let clock = ManualClock::new(at("2026-03-01T00:00:00Z"));
    let app = TestApp::spawn_alone_with_clock(clock.clone(), |c| {
        c.background.export_max_active_per_user = 2;
    })
    .await;
    let (user, id) = daily_schedule(&app, json!({"paused": true})).await;
    let services = app.services(app.pool.clone()).await;
    assert_eq!(
        app.get_schedule(&user.token, &id).await["next_run_at"],
        Value::Null
    );

    clock.set(at("2026-03-03T12:00:00Z"));
    let summary = workers::tasks::scheduler::tick(&services).await.unwrap();
    assert_eq!(summary.started(), 0);
    assert!(app.runs(&user.token, &id).await.is_empty());

    // Run now, paused or not.
    let response = app.run_now(&user.token, &id).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["status"], "queued");
    assert_eq!(time(&run["scheduled_for"]), at("2026-03-03T12:00:00Z"));
    assert_eq!(
        location,
        format!("/api/exports/{}", run["export_id"].as_str().unwrap())
    );

    // Twice in the same instant: two runs all the same.
    assert_eq!(app.run_now(&user.token, &id).await.status(), 202);
    // The per-user limit on active exports applies to runs by hand.
    let (code, _) = error_of(app.run_now(&user.token, &id).await, 429).await;
    assert_eq!(code, "RATE_LIMITED");
    assert_eq!(app.runs(&user.token, &id).await.len(), 2);

    // Resumed: the next run counts from now; the paused days are not "missed".
    let resumed: Value = app
        .patch_schedule(&user.token, &id, json!({"paused": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(time(&resumed["next_run_at"]), at("2026-03-04T06:00:00Z"));
    clock.set(at("2026-03-04T06:00:30Z"));
    let summary = workers::tasks::scheduler::tick(&services).await.unwrap();
    assert_eq!((summary.started(), summary.missed), (1, 0));
    let runs = app.runs(&user.token, &id).await;
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["trigger"], "schedule");
}

#[tokio::test]
async fn backups_run_on_time_email_their_links_keep_the_newest_and_pause_by_link() {
    // After the 1st's 06:00 in Berlin, so the first run is the 2nd's.
    let clock = ManualClock::new(at("2026-03-01T06:00:00Z"));
    let app = TestApp::spawn_with_workers_and_clock(clock.clone(), |_| {}).await;
    let (user, id) = daily_schedule(
        &app,
        json!({"name": "Morning backup", "format": "csv", "keep_last": 2,
               "timezone": "Europe/Berlin"}),
    )
    .await;
    app.seed_jobs(&user, 40, 3).await;
    let storage = app.storage().await;

    // Three mornings (06:00 in Berlin is 05:00Z in March before the change).
    let mut exports = Vec::new();
    for (n, day) in ["2026-03-02", "2026-03-03", "2026-03-04"]
        .iter()
        .enumerate()
    {
        clock.set(at(&format!("{day}T05:00:10Z")));
        let runs = app.wait_runs_finished(&user.token, &id, n + 1).await;
        assert_eq!(runs.len(), n + 1, "{runs:?}");
        assert_eq!(runs[0]["scheduled_for"], format!("{day}T05:00:00Z"));
        assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
        assert_eq!(runs[0]["rows"], 40);
        exports.push(runs[0]["export_id"].as_str().unwrap().to_owned());
        // Each backup is emailed once; wait for it before the next morning.
        app.wait_emails(&user.email, n + 1).await;
    }

    // keep_last 2: the oldest backup's file is gone from the bucket, the two newest stay.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let oldest: Value = app
            .get_export(&user.token, &exports[0])
            .await
            .json()
            .await
            .unwrap();
        if oldest["status"] == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not pruned: {oldest}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = app.runs(&user.token, &id).await;
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "expired"]);
    let record = |id: &str| workers::exports::get_any(&app.pool, id.parse().unwrap());
    let oldest = record(&exports[0]).await.unwrap().unwrap();
    assert!(
        oldest.object_key.is_none() || {
            let key = oldest.object_key.clone().unwrap();
            !storage.exists(&key).await.unwrap()
        }
    );
    for kept in &exports[1..] {
        let kept = record(kept).await.unwrap().unwrap();
        assert!(
            storage
                .exists(kept.object_key.as_deref().unwrap())
                .await
                .unwrap()
        );
        assert_eq!(
            kept.expires_at, None,
            "kept by the schedule, not by EXPORT_RETENTION"
        );
    }
    // The file in the bucket is the user's CSV, byte for byte what the sync endpoint gives.
    let newest = record(&exports[2]).await.unwrap().unwrap();
    let bytes = gunzip(&storage_bytes(&storage, newest.object_key.as_deref().unwrap()).await);
    let sync = app
        .export(&user.token, "format=csv")
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes, sync.to_vec());

    // The newest email names the schedule and the next run, and links to the file and to a
    // pause page.
    let mails = app.wait_emails(&user.email, 3).await;
    assert_eq!(mails.len(), 3, "one email per backup");
    let mail = mails
        .iter()
        .find(|m| {
            m["text"]
                .as_str()
                .unwrap()
                .contains("Thursday, 5 March 2026 at 06:00 (Europe/Berlin)")
        })
        .expect("the third backup's email names the next run in the schedule's zone");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.contains("Morning backup") && subject.contains(&newest.file_name),
        "{subject}"
    );
    let text = mail["text"].as_str().unwrap();
    let download = link_in(text, "/d/");
    let response = app.client.get(&download).send().await.unwrap();
    assert_eq!(response.status(), 302, "{download}");
    let pause = link_in(text, "/p/");
    assert!(pause.starts_with(&app.base), "{pause}");

    // Opening the pause link changes nothing; its button does.
    let page = app.client.get(&pause).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Pause backups") && html.contains("Morning backup"),
        "{html}"
    );
    assert_eq!(app.get_schedule(&user.token, &id).await["paused"], false);
    let paused = app.client.post(&pause).send().await.unwrap();
    assert_eq!(paused.status(), 200);
    assert!(paused.text().await.unwrap().contains("paused"));
    assert_eq!(app.get_schedule(&user.token, &id).await["paused"], true);
    // A tampered pause link pauses nothing; a download token is not a pause token.
    let last = if pause.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &pause[..pause.len() - 1]);
    assert_eq!(
        app.client.post(&tampered).send().await.unwrap().status(),
        404
    );
    let download_token = download.rsplit('/').next().unwrap();
    let wrong = app.url(&format!("/p/{download_token}"));
    assert_eq!(app.client.post(&wrong).send().await.unwrap().status(), 404);

    // Paused: the next morning passes without a backup.
    clock.set(at("2026-03-05T05:00:10Z"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.runs(&user.token, &id).await.len(), 3);

    // Deleting the schedule hands its backups to the ordinary retention.
    let deleted = app
        .schedule_request(
            reqwest::Method::DELETE,
            &user.token,
            &format!("/{id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    for kept in &exports[1..] {
        let kept = record(kept).await.unwrap().unwrap();
        assert_eq!(kept.schedule_id, None);
        assert_eq!(kept.status, workers::exports::ExportStatus::Succeeded);
        assert!(kept.expires_at.is_some(), "now expires as any export does");
    }
    // The pause link of a deleted schedule says so.
    let page = app.client.get(&pause).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("no longer exists"));
}

async fn storage_bytes(storage: &workers::storage::Storage, key: &str) -> Vec<u8> {
    use futures::TryStreamExt;
    let object = storage.read(key).await.unwrap();
    object
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn incremental_backups_hold_only_the_jobs_changed_since_the_last_one() {
    let clock = ManualClock::new(at("2026-03-01T00:00:00Z"));
    let app = TestApp::spawn_with_workers_and_clock(clock, |_| {}).await;
    let (user, id) = daily_schedule(
        &app,
        json!({"mode": "incremental", "format": "ndjson", "compression": "none",
               "notify": {"email": false}}),
    )
    .await;
    app.seed_jobs(&user, 30, 5).await;

    // The first run has nothing before it: every job.
    assert_eq!(app.run_now(&user.token, &id).await.status(), 202);
    let runs = app.wait_runs_finished(&user.token, &id, 1).await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(runs[0]["rows"], 30);
    assert_eq!(runs[0]["since"], Value::Null);

    // Three jobs change; the next run holds exactly those.
    let changed: Vec<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET notes = 'followed up', updated_at = now() WHERE id IN \
         (SELECT id FROM jobs WHERE user_id = $1 ORDER BY id LIMIT 3) RETURNING id",
    )
    .bind(user.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(changed.len(), 3);
    assert_eq!(app.run_now(&user.token, &id).await.status(), 202);
    let runs = app.wait_runs_finished(&user.token, &id, 2).await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(runs[0]["rows"], 3);
    assert!(runs[0]["since"].is_string());
    let export: Value = app
        .get_export(&user.token, runs[0]["export_id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["filters"]["updated_since"], runs[0]["since"]);
    let body = reqwest::get(export["download_url"].as_str().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut ids: Vec<uuid::Uuid> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort();
    let mut expected = changed.clone();
    expected.sort();
    assert_eq!(ids, expected);

    // Nothing changed since: an empty (but complete) backup.
    assert_eq!(app.run_now(&user.token, &id).await.status(), 202);
    let runs = app.wait_runs_finished(&user.token, &id, 3).await;
    assert_eq!(
        (runs[0]["status"].as_str(), runs[0]["rows"].as_i64()),
        (Some("succeeded"), Some(0))
    );
}
