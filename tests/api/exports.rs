//! Background exports end to end: real PostgreSQL queue, real s3s-fs, real maildev.

use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::{TestApp, error_of, gunzip};

/// The JSON file without its `exported_at` line (the only line two snapshots differ in).
fn without_exported_at(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"exported_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn fetch(url: &str) -> reqwest::Response {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response
}

#[tokio::test]
async fn every_format_matches_the_sync_export_byte_for_byte() {
    let app = TestApp::spawn_with_workers(|c| c.background.export_max_active_per_user = 10).await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 1_500, 11).await;
    let filters =
        json!({"status": ["applied", "interview", "offer"], "created_from": "2020-01-01"});
    let sync_query = "status=applied,interview,offer&created_from=2020-01-01";

    for format in ["csv", "json", "ndjson"] {
        for compression in ["gzip", "none"] {
            let created = app
                .start_export(
                    &user.token,
                    json!({"format": format, "compression": compression, "filters": filters}),
                )
                .await;
            let id = created["id"].as_str().unwrap();
            let done = app.wait_finished(&user.token, id).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            let url = done["download_url"]
                .as_str()
                .expect("a download URL once succeeded");
            let response = fetch(url).await;
            let suffix = if compression == "gzip" { ".gz" } else { "" };
            let file_name = done["file_name"].as_str().unwrap();
            assert!(
                file_name.starts_with("pipeline-jobs-")
                    && file_name.ends_with(&format!(".{format}{suffix}"))
            );
            assert_eq!(
                response.headers()["content-disposition"],
                format!("attachment; filename=\"{file_name}\"").as_str()
            );
            let expected_type = match (format, compression) {
                (_, "gzip") => "application/gzip",
                ("csv", _) => "text/csv; charset=utf-8",
                ("json", _) => "application/json",
                _ => "application/x-ndjson",
            };
            assert_eq!(response.headers()["content-type"], expected_type);
            let stored = response.bytes().await.unwrap().to_vec();
            assert_eq!(done["byte_size"], stored.len());
            assert_eq!(done["sha256"], hex::encode(sha2::Sha256::digest(&stored)));
            let file = if compression == "gzip" {
                gunzip(&stored)
            } else {
                stored
            };

            let sync = app
                .export(
                    &user.token,
                    &format!(
                        "format={}&{sync_query}",
                        if format == "csv" { "csv" } else { "json" }
                    ),
                )
                .await
                .bytes()
                .await
                .unwrap();
            let sync_body: Value = serde_json::from_slice(&sync).unwrap_or(Value::Null);
            match format {
                "csv" => assert_eq!(file, sync.to_vec(), "csv {compression}"),
                "json" => assert_eq!(
                    without_exported_at(&file),
                    without_exported_at(&sync),
                    "json {compression}"
                ),
                _ => {
                    let lines: Vec<Value> = String::from_utf8(file)
                        .unwrap()
                        .lines()
                        .map(|l| serde_json::from_str(l).unwrap())
                        .collect();
                    assert_eq!(
                        Value::Array(lines),
                        sync_body["jobs"],
                        "ndjson {compression}"
                    );
                }
            }
            let rows = done["row_count"].as_u64().unwrap();
            assert!(
                rows > 100,
                "the filters keep a fair share of 1,500 jobs: {rows}"
            );
            assert_eq!(done["progress"]["rows_done"], rows);
            assert_eq!(done["progress"]["rows_total"], rows);
        }
    }
}

#[tokio::test]
async fn an_export_goes_from_queued_to_succeeded() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 3).await;

    let response = app
        .create_export(&user.token, json!({"format": "csv"}), None)
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/exports/{}", created["id"].as_str().unwrap())
    );
    assert!(matches!(created["status"].as_str(), Some("queued")));
    assert_eq!(created["compression"], "gzip", "gzip is the default");
    assert_eq!(created["format"], "csv");
    assert_eq!(created["download_url"], Value::Null);
    assert_eq!(created["error"], Value::Null);
    for key in [
        "progress",
        "row_count",
        "byte_size",
        "sha256",
        "file_name",
        "expires_at",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "filters",
    ] {
        assert!(created.get(key).is_some(), "{key} is part of the resource");
    }

    let done = app
        .wait_finished(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["row_count"], 3);
    assert_eq!(done["attempts"], 1);
    for key in ["started_at", "finished_at", "expires_at"] {
        assert!(done[key].is_string(), "{key} set: {done}");
    }
    // The link is minted on each request (SigV4 dates have one-second resolution).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again: Value = app
        .get_export(&user.token, done["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(again["download_url"], done["download_url"]);
    // /download redirects to a fresh presigned URL.
    let redirect = app
        .client
        .get(app.url(&format!(
            "/api/exports/{}/download",
            done["id"].as_str().unwrap()
        )))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    let to = redirect.headers()["location"].to_str().unwrap();
    assert!(to.contains("X-Amz-Signature"), "{to}");
    let csv = gunzip(&fetch(to).await.bytes().await.unwrap());
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 4);
}

#[tokio::test]
async fn bad_requests_are_rejected_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let cases = [
        (json!({"format": "xml"}), "format"),
        (json!({"compression": "zip"}), "compression"),
        (json!({"filters": {"status": "hired"}}), "status"),
        (
            json!({"filters": {"created_from": "yesterday"}}),
            "created_from",
        ),
        (json!({"filters": {"user_id": "x"}}), "user_id"),
        (json!({"filters": {"tag": 5}}), "tag"),
        (json!({"notify": {"sms": true}}), "sms"),
        (json!({"format": "csv", "extra": 1}), "extra"),
    ];
    for (body, needle) in cases {
        let (code, message) = error_of(
            app.create_export(&user.token, body.clone(), None).await,
            400,
        )
        .await;
        assert_eq!(code, "VALIDATION_ERROR", "{body}");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let not_json = app
        .client
        .post(app.url("/api/exports"))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    error_of(not_json, 400).await;
    let long_key = "k".repeat(256);
    error_of(
        app.create_export(&user.token, json!({}), Some(&long_key))
            .await,
        400,
    )
    .await;
    let unauthenticated = app
        .client
        .post(app.url("/api/exports"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    error_of(unauthenticated, 401).await;
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let body = json!({"format": "csv", "filters": {"status": "offer"}});
    let first = app
        .create_export(&user.token, body.clone(), Some("key-1"))
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let replay = app
        .create_export(&user.token, body.clone(), Some("key-1"))
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], first["id"]);
    let (code, _) = error_of(
        app.create_export(&user.token, json!({"format": "json"}), Some("key-1"))
            .await,
        409,
    )
    .await;
    assert_eq!(code, "CONFLICT");
    // Keys are per user.
    let other = app.create_user().await;
    assert_eq!(
        app.create_export(&other.token, body, Some("key-1"))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn an_identical_active_request_returns_the_running_export() {
    let app = TestApp::spawn().await; // no workers: exports stay queued
    let user = app.create_user().await;
    let body = json!({"format": "ndjson", "compression": "none", "filters": {"tag": ["a", "b"]}});
    let first: Value = app
        .create_export(&user.token, body.clone(), None)
        .await
        .json()
        .await
        .unwrap();
    let second = app.create_export(&user.token, body, None).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.json::<Value>().await.unwrap()["id"], first["id"]);
    let different = app
        .create_export(&user.token, json!({"format": "ndjson"}), None)
        .await;
    assert_eq!(different.status(), 202);
}

#[tokio::test]
async fn the_per_user_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn().await; // no workers: exports stay queued
    let user = app.create_user().await;
    for format in ["json", "csv", "ndjson"] {
        assert_eq!(
            app.create_export(&user.token, json!({"format": format}), None)
                .await
                .status(),
            202
        );
    }
    let response = app
        .create_export(
            &user.token,
            json!({"format": "json", "compression": "none"}),
            None,
        )
        .await;
    assert!(response.headers().contains_key("retry-after"));
    let (code, _) = error_of(response, 429).await;
    assert_eq!(code, "RATE_LIMITED");
    // Another user is not affected.
    let other = app.create_user().await;
    assert_eq!(
        app.create_export(&other.token, json!({}), None)
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn the_row_and_its_task_are_written_together() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let created: Value = app
        .create_export(&user.token, json!({}), None)
        .await
        .json()
        .await
        .unwrap();
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let (task_id, queue_payload): (String, Vec<u8>) = sqlx::query_as(
        "SELECT j.id, j.job FROM exports e JOIN apalis.jobs j ON j.id = e.task_id WHERE e.id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(task_id.len(), 26, "a ULID");
    let payload: Value = serde_json::from_slice(&queue_payload).unwrap();
    assert_eq!(payload, json!({"export_id": id}));
}

#[tokio::test]
async fn another_users_export_is_404_on_every_route() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let owner = app.create_user().await;
    let intruder = app.create_user().await;
    app.insert_jobs(&owner, 2).await;
    let id = app
        .start_export_id(&owner.token, json!({"compression": "none"}))
        .await;
    app.wait_finished(&owner.token, &id).await;

    let missing = uuid::Uuid::new_v4().to_string();
    for target in [id.as_str(), missing.as_str(), "not-a-uuid"] {
        let requests = [
            app.client.get(app.url(&format!("/api/exports/{target}"))),
            app.client
                .get(app.url(&format!("/api/exports/{target}/download"))),
            app.client
                .delete(app.url(&format!("/api/exports/{target}"))),
        ];
        for request in requests {
            let (code, message) = error_of(
                request.bearer_auth(&intruder.token).send().await.unwrap(),
                404,
            )
            .await;
            assert_eq!(
                (code.as_str(), message.as_str()),
                ("NOT_FOUND", "no such export")
            );
        }
    }
    let list = app.list_exports(&intruder.token, "").await;
    assert_eq!(list["exports"], json!([]));
    // The owner still has it.
    assert_eq!(app.get_export(&owner.token, &id).await.status(), 200);
}

#[tokio::test]
async fn listing_pages_newest_first_and_filters_by_status() {
    let app = TestApp::spawn_with(|c| c.background.export_max_active_per_user = 10).await;
    let user = app.create_user().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let created: Value = app
            .create_export(
                &user.token,
                json!({"filters": {"tag": format!("t{i}")}}),
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = app.url("/api/exports?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app
            .client
            .get(url)
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["exports"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let cancelled = app.delete_export(&user.token, &ids[0]).await;
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );
    let only = app.list_exports(&user.token, "status=cancelled").await;
    assert_eq!(only["exports"].as_array().unwrap().len(), 1);
    for query in [
        "limit=0",
        "limit=101",
        "cursor=garbage",
        "status=done",
        "page=2",
    ] {
        error_of(app.exports_page(&user.token, query).await, 400).await;
    }
}

#[tokio::test]
async fn cancelling_a_running_export_aborts_its_upload() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 150_000, 12).await;
    let id = app
        .start_export_id(
            &user.token,
            json!({"format": "json", "compression": "none"}),
        )
        .await;
    app.wait_export(&user.token, &id, |e| {
        e["status"] == "running" && e["progress"]["rows_done"].as_u64() > Some(0)
    })
    .await;
    let cancelled = app.delete_export(&user.token, &id).await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["status"],
        "cancelled"
    );

    // The worker notices within a few seconds, aborts its upload and ends the task.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (task_status, upload): (String, Option<String>) = sqlx::query_as(
            "SELECT j.status, e.upload_id FROM apalis.jobs j JOIN exports e ON e.task_id = j.id \
             WHERE e.id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if task_status == "Done" && upload.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not stop (task {task_status}, upload {upload:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        app.stored_files(&id).await.is_empty(),
        "no object for a cancelled export"
    );
    let done = app.wait_finished(&user.token, &id).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["download_url"], Value::Null);
}

#[tokio::test]
async fn deleting_a_finished_export_removes_its_file() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 5).await;
    let id = app.start_export_id(&user.token, json!({})).await;
    let done = app.wait_finished(&user.token, &id).await;
    let url = done["download_url"].as_str().unwrap().to_owned();
    fetch(&url).await;

    let deleted = app.delete_export(&user.token, &id).await;
    assert_eq!(deleted.status(), 204);
    error_of(app.get_export(&user.token, &id).await, 404).await;
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        404,
        "the object is gone"
    );
}

#[tokio::test]
async fn the_email_link_downloads_the_file_and_bad_links_get_a_page() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 7).await;
    let id = app
        .start_export_id(
            &user.token,
            json!({"format": "csv", "notify": {"email": true}}),
        )
        .await;
    let done = app.wait_finished(&user.token, &id).await;
    assert_eq!(done["status"], "succeeded");

    let mails = app.wait_emails(&user.email, 1).await;
    let mail = &mails[0];
    let file_name = done["file_name"].as_str().unwrap();
    assert!(
        mail["subject"].as_str().unwrap().contains(file_name),
        "{}",
        mail["subject"]
    );
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(file_name) && text.contains('7'), "{text}");
    assert!(mail["html"].as_str().unwrap().contains("/d/"));
    let link = crate::helpers::link_in(text, "/d/");
    assert!(link.starts_with(&app.base), "{link}");

    let hop = app.client.get(&link).send().await.unwrap();
    assert_eq!(hop.status(), 302);
    let presigned = hop.headers()["location"].to_str().unwrap();
    let file = gunzip(&fetch(presigned).await.bytes().await.unwrap());
    assert_eq!(String::from_utf8(file).unwrap().lines().count(), 8);

    // Tampered: one changed character anywhere in the token.
    let token = link.rsplit('/').next().unwrap();
    let mut tampered = token.to_owned().into_bytes();
    tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    let page = app
        .client
        .get(app.url(&format!("/d/{tampered}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("not valid"));

    // Expired.
    let signer = workers::links::LinkSigner::new(crate::helpers::LINK_SECRET.as_bytes());
    let expired = signer.sign(
        id.parse().unwrap(),
        chrono::Utc::now() - chrono::Duration::seconds(5),
        workers::links::LinkPurpose::Download,
    );
    let page = app
        .client
        .get(app.url(&format!("/d/{expired}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));

    // Deleted export: the link is revoked.
    app.client
        .delete(app.url(&format!("/api/exports/{id}")))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 404);
    // Exactly one email.
    assert_eq!(app.emails_to(&user.email).await.len(), 1);
}

#[tokio::test]
async fn retention_deletes_expired_files() {
    let app = TestApp::spawn_with_workers(|c| {
        c.background.export_retention = std::time::Duration::from_secs(1)
    })
    .await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 2).await;
    let id = app.start_export_id(&user.token, json!({})).await;
    let done = app.wait_finished(&user.token, &id).await;
    assert_eq!(done["status"], "succeeded");
    let key: String = sqlx::query_scalar(
        "SELECT object_key FROM exports WHERE id = $1::uuid AND object_key IS NOT NULL",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let expired = app
        .wait_export(&user.token, &id, |e| e["status"] == "expired")
        .await;
    assert_eq!(expired["download_url"], Value::Null);
    assert!(!app.storage().await.exists(&key).await.unwrap());
    let (code, _) = error_of(
        app.client
            .get(app.url(&format!("/api/exports/{id}/download")))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap(),
        410,
    )
    .await;
    assert_eq!(code, "GONE");
}

#[tokio::test]
async fn retention_deletes_a_stray_file_recorded_for_a_cancelled_export() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    let id = app.start_export_id(&user.token, json!({})).await;
    app.wait_finished(&user.token, &id).await;
    // As an attempt leaves it when storage refused to delete its file after a cancellation.
    let record = workers::exports::get_any(&app.pool, id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let stray = workers::exports::attempt_object_key(&record, 7);
    let storage = app.storage().await;
    let meta = workers::storage::ObjectMeta {
        content_type: "application/gzip".into(),
        content_disposition: "attachment".into(),
        content_encoding: None,
    };
    let mut upload = storage.begin_upload(&stray, &meta).await.unwrap();
    workers::sink::ByteSink::send(&mut upload, bytes::Bytes::from_static(b"personal data"))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    sqlx::query("UPDATE exports SET status = 'cancelled', upload_key = $2 WHERE id = $1::uuid")
        .bind(&id)
        .bind(&stray)
        .execute(&app.pool)
        .await
        .unwrap();

    // The sweep deletes the file, then clears the record in its transaction's commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT upload_key FROM exports WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if recorded.is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stray file was not swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !storage.exists(&stray).await.unwrap(),
        "the stray file is deleted"
    );
}
