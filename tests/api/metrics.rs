//! `GET /metrics` after real work: a sync download, a background export with its email, a
//! queued export no worker takes.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::TestApp;

/// The exposition's samples: `name{labels}` → value.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    scrape_at(&app.client, &app.url("/metrics")).await
}

/// The samples of the OpenMetrics exposition at `url` (the front's or a worker's).
pub(crate) async fn scrape_at(client: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {:#?}", sorted(samples)))
}

fn sorted(samples: &HashMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut all: Vec<_> = samples.iter().collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    all
}

#[tokio::test]
async fn exports_emails_requests_and_queues_are_counted() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 9).await;

    let sync = app.export(&user.token, "format=csv").await;
    assert_eq!(sync.status(), 200);
    sync.bytes().await.unwrap();
    let created = app
        .start_export(
            &user.token,
            json!({"format": "ndjson", "notify": {"email": true}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let done = app.wait_finished(&user.token, id).await;
    assert_eq!(done["status"], "succeeded");
    app.wait_emails(&user.email, 1).await;
    let missing = app.client.get(app.url("/no/such/route")).send().await;
    assert_eq!(missing.unwrap().status(), 404);
    // Methods are the client's choice: any unusual one is counted as `other`, so no client
    // can add series at will.
    for method in ["BREW", "WHEN"] {
        let odd = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(odd, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }

    // The email's counter moves just after the message is accepted: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let samples = loop {
        let samples = scrape(&app).await;
        let sent = r#"pipeline_export_emails_total{kind="ready",outcome="sent"}"#;
        if samples.contains_key(sent) || std::time::Instant::now() > deadline {
            break samples;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let s = |series: &str| sample(&samples, series);
    assert_eq!(
        s(r#"pipeline_export_exports_created_total{format="ndjson",origin="api"}"#),
        1.0
    );
    assert_eq!(
        s(r#"pipeline_export_exports_finished_total{format="ndjson",outcome="succeeded"}"#),
        1.0
    );
    assert_eq!(
        s(r#"pipeline_export_export_duration_seconds_count{format="ndjson"}"#),
        1.0
    );
    assert!(s(r#"pipeline_export_export_duration_seconds_sum{format="ndjson"}"#) > 0.0);
    assert_eq!(
        s(r#"pipeline_export_export_size_bytes_sum{format="ndjson"}"#),
        done["byte_size"].as_f64().unwrap()
    );
    assert_eq!(
        s(r#"pipeline_export_rows_exported_total{format="ndjson",path="background"}"#),
        9.0
    );
    assert_eq!(
        s(r#"pipeline_export_rows_exported_total{format="csv",path="sync"}"#),
        9.0
    );
    assert_eq!(
        s(r#"pipeline_export_emails_total{kind="ready",outcome="sent"}"#),
        1.0
    );
    assert_eq!(
        s(r#"pipeline_export_http_requests_total{method="GET",route="/api/export",status="200"}"#),
        1.0
    );
    assert_eq!(
        s(
            r#"pipeline_export_http_requests_total{method="POST",route="/api/exports",status="202"}"#
        ),
        1.0
    );
    // Polling: one series for every id, by the route's pattern.
    assert!(
        s(
            r#"pipeline_export_http_requests_total{method="GET",route="/api/exports/{id}",status="200"}"#
        ) >= 1.0
    );
    assert_eq!(
        s(r#"pipeline_export_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert!(
        s(
            r#"pipeline_export_http_request_duration_seconds_count{method="GET",route="/api/export"}"#
        ) >= 1.0
    );
    assert_eq!(
        s(r#"pipeline_export_http_requests_total{method="other",route="/healthz",status="405"}"#),
        2.0
    );
    assert!(!samples.keys().any(|k| k.contains("BREW")));
    assert_eq!(s("pipeline_export_sync_exports_in_flight"), 0.0);
    assert_eq!(s(r#"pipeline_export_queue_depth{queue="exports"}"#), 0.0);
    assert!(
        !samples.keys().any(|k| k.contains(id)),
        "no export id in a series name"
    );
}

#[tokio::test]
async fn a_waiting_export_shows_in_the_queue_depth_and_age() {
    // No workers: the export stays queued.
    let app = TestApp::spawn_alone_with_clock(workers::clock::system(), |_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 2).await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, r#"pipeline_export_queue_depth{queue="exports"}"#),
        0.0
    );
    app.start_export(&user.token, json!({"format": "csv"}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = scrape(&app).await;
    assert_eq!(
        sample(&after, r#"pipeline_export_queue_depth{queue="exports"}"#),
        1.0
    );
    assert!(
        sample(
            &after,
            r#"pipeline_export_queue_oldest_age_seconds{queue="exports"}"#
        ) >= 1.0
    );
    assert_eq!(
        sample(&after, r#"pipeline_export_queue_depth{queue="emails"}"#),
        0.0
    );
}
