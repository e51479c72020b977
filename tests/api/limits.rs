use std::time::Duration;

use crate::helpers::{TestApp, error_of, gunzip};

#[tokio::test]
async fn the_cap_cuts_the_export_and_says_so() {
    let app = TestApp::spawn_with(|c| c.sync_export_max_rows = Some(3)).await;
    let user = app.create_user().await;
    let ids = app.insert_jobs(&user, 5).await;

    let response = app.export(&user.token, "").await;
    assert_eq!(response.headers()["x-export-truncated"], "true");
    assert_eq!(response.headers()["x-total-count"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["total"], 3, "total is the number of jobs in the file");
    let newest: Vec<String> = ids.iter().rev().take(3).map(|i| i.to_string()).collect();
    let got: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, newest);

    let csv = app.export(&user.token, "format=csv").await;
    assert_eq!(csv.headers()["x-export-truncated"], "true");
    assert_eq!(
        csv.text().await.unwrap().matches("\r\n").count(),
        4,
        "header and 3 rows"
    );

    // Filtered down to within the cap: complete, no truncation header.
    let filtered = app
        .export(&user.token, "created_from=2026-01-01T00:00:03Z")
        .await;
    assert!(filtered.headers().get("x-export-truncated").is_none());
    assert_eq!(filtered.headers()["x-total-count"], "2");
}

#[tokio::test]
async fn exactly_at_the_cap_is_not_truncated() {
    let app = TestApp::spawn_with(|c| c.sync_export_max_rows = Some(3)).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 3).await;
    let response = app.export(&user.token, "").await;
    assert!(response.headers().get("x-export-truncated").is_none());
    assert_eq!(response.headers()["x-total-count"], "3");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["total"],
        3
    );
}

#[tokio::test]
async fn cap_zero_means_no_cap() {
    let app = TestApp::spawn_with(|c| c.sync_export_max_rows = None).await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 10_050, 1).await;
    let response = app.export(&user.token, "format=csv").await;
    assert!(response.headers().get("x-export-truncated").is_none());
    let text = response.text().await.unwrap();
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count(),
        10_050
    );
}

#[test]
fn the_documented_cap_is_the_default() {
    use clap::Parser;
    let cli = pipeline_export::cli::Cli::try_parse_from(["pipeline-export", "serve"]).unwrap();
    let pipeline_export::cli::Command::Serve(args) = cli.command else {
        panic!("serve")
    };
    assert_eq!(args.sync_export_max_rows, 10_000);
}

#[tokio::test]
async fn gzip_when_the_client_accepts_it() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 300, 2).await;

    for format in ["csv", "json"] {
        let plain = app.export(&user.token, &format!("format={format}")).await;
        assert!(plain.headers().get("content-encoding").is_none());
        let plain = plain.bytes().await.unwrap();

        let gz = app
            .client
            .get(app.url(&format!("/api/export?format={format}")))
            .bearer_auth(&user.token)
            .header("accept-encoding", "br, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.status(), 200);
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert_eq!(gz.headers()["vary"], "Accept-Encoding");
        let name = gz.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(name.ends_with(&format!(".{format}\"")), "{name}");
        let compressed = gz.bytes().await.unwrap();
        assert!(
            compressed.len() * 2 < plain.len(),
            "gzip shrinks the file: {} -> {}",
            plain.len(),
            compressed.len()
        );
        let unpacked = gunzip(&compressed);
        if format == "csv" {
            assert_eq!(unpacked, plain);
        } else {
            // Equal but for the export instant.
            let strip = |b: &[u8]| -> String {
                String::from_utf8(b.to_vec())
                    .unwrap()
                    .lines()
                    .skip(2)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(&unpacked), strip(&plain));
        }
    }

    let refused = app
        .client
        .get(app.url("/api/export"))
        .bearer_auth(&user.token)
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
    serde_json::from_slice::<serde_json::Value>(&refused.bytes().await.unwrap()).unwrap();
}

/// Reads a streaming body to its end; `Err` when the transfer was broken off.
async fn read_all(
    mut response: reqwest::Response,
    pause_after_first: Duration,
) -> Result<usize, reqwest::Error> {
    let mut n = 0;
    let mut first = true;
    while let Some(chunk) = response.chunk().await? {
        n += chunk.len();
        if first {
            first = false;
            tokio::time::sleep(pause_after_first).await;
        }
    }
    Ok(n)
}

#[tokio::test]
async fn a_database_failure_mid_stream_breaks_the_transfer() {
    let name = format!("pe-kill-{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::spawn_with(|c| {
        c.sync_export_max_rows = None;
        let url = format!("{}?application_name={name}", c.database.url.expose());
        c.database.url = pipeline_export::config::Secret::new(url);
    })
    .await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 60_000, 3).await;

    let response = app.export(&user.token, "format=json").await;
    assert_eq!(response.status(), 200);
    // The client is slow; meanwhile the export's backend is killed.
    let pool = app.pool.clone();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
             AND query LIKE 'SELECT id, company_name%'",
        )
        .bind(name)
        .fetch_all(&pool)
        .await
        .unwrap();
        killed.len()
    });
    let result = read_all(response, Duration::from_millis(800)).await;
    assert_eq!(killer.await.unwrap(), 1, "the export's query was running");
    assert!(
        result.is_err(),
        "a cut export must not end like a complete file: {result:?}"
    );
}

#[tokio::test]
async fn the_time_limit_breaks_the_transfer() {
    let app = TestApp::spawn_with(|c| {
        c.sync_export_max_rows = None;
        c.sync_export_timeout = Duration::from_secs(1);
    })
    .await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 60_000, 4).await;
    let response = app
        .client
        .get(app.url("/api/export?format=csv"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result = read_all(response, Duration::from_secs(2)).await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn bad_parameters_are_rejected_before_any_byte_is_sent() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let (code, _) = error_of(app.export(&user.token, "format=csv&status=nope").await, 400).await;
    assert_eq!(code, "VALIDATION_ERROR");
}
