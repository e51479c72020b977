//! Restore from a backup: a JSON export goes back in through `POST /api/import`, and a
//! second export equals the first but for `exported_at`.

use std::io::Write;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of};

fn without_exported_at(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"exported_at\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

impl TestApp {
    pub async fn import(&self, token: &str, query: &str, file: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/import{query}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(file)
            .send()
            .await
            .unwrap()
    }

    async fn json_file(&self, token: &str) -> Vec<u8> {
        let response = self.export(token, "format=json").await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }
}

async fn imported(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn counts(summary: &Value) -> [u64; 5] {
    ["created", "updated", "unchanged", "rejected", "reassigned"].map(|k| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    })
}

#[tokio::test]
async fn a_backup_restores_what_was_deleted_or_changed_and_nothing_else() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    // Larger than any default request body limit (about 4 MB of JSON).
    app.seed_jobs(&user, 3_000, 21).await;
    let backup = app.json_file(&user.token).await;
    assert!(backup.len() > 2 * 1024 * 1024, "{} bytes", backup.len());

    // Ten soft-deleted, ten edited, five gone for good.
    let alter = |sql: &'static str| {
        let pool = app.pool.clone();
        let id = user.id;
        async move {
            sqlx::query(sql)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected()
        }
    };
    assert_eq!(alter("UPDATE jobs SET deleted_at = now() WHERE id IN (SELECT id FROM jobs WHERE user_id = $1 ORDER BY id LIMIT 10)").await, 10);
    assert_eq!(alter("UPDATE jobs SET notes = 'changed', status = 'rejected', tags = '{}' WHERE id IN (SELECT id FROM jobs WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id DESC LIMIT 10)").await, 10);
    assert_eq!(alter("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE user_id = $1 AND deleted_at IS NULL AND notes IS DISTINCT FROM 'changed' ORDER BY created_at LIMIT 5)").await, 5);
    let altered = app.json_file(&user.token).await;
    assert_ne!(without_exported_at(&altered), without_exported_at(&backup));

    // A dry run counts and writes nothing.
    let dry = imported(
        app.import(&user.token, "?dry_run=true", backup.clone())
            .await,
    )
    .await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(counts(&dry), [5, 20, 2975, 0, 0], "{dry}");
    assert_eq!(
        without_exported_at(&app.json_file(&user.token).await),
        without_exported_at(&altered)
    );

    // The real thing, gzipped.
    let done = imported(app.import(&user.token, "", gzip(&backup)).await).await;
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["total"], 3000);
    assert_eq!(counts(&done), [5, 20, 2975, 0, 0], "{done}");
    let restored = app.json_file(&user.token).await;
    assert_eq!(without_exported_at(&restored), without_exported_at(&backup));

    // Again: nothing left to do.
    let again = imported(app.import(&user.token, "", backup).await).await;
    assert_eq!(counts(&again), [0, 0, 3000, 0, 0], "{again}");
}

#[tokio::test]
async fn another_users_ids_are_never_touched() {
    let app = TestApp::spawn().await;
    let (owner, other) = (app.create_user().await, app.create_user().await);
    app.seed_jobs(&owner, 50, 4).await;
    let file = app.json_file(&owner.token).await;

    let summary = imported(app.import(&other.token, "", file.clone()).await).await;
    assert_eq!(counts(&summary), [50, 0, 0, 0, 50], "{summary}");
    // The owner's jobs are as they were; the other user has copies under new ids.
    assert_eq!(
        without_exported_at(&app.json_file(&owner.token).await),
        without_exported_at(&file)
    );
    let theirs = app.export_json(&other.token, "format=json").await;
    let mine = app.export_json(&owner.token, "format=json").await;
    assert_eq!(theirs["total"], 50);
    let mut copy = theirs["jobs"][0].clone();
    let original = mine["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| {
            j["company_name"] == copy["company_name"] && j["created_at"] == copy["created_at"]
        })
        .unwrap()
        .clone();
    assert_ne!(copy["id"], original["id"]);
    copy["id"] = original["id"].clone();
    assert_eq!(copy, original);
}

#[tokio::test]
async fn bad_records_are_rejected_by_index_and_bad_files_write_nothing() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    app.seed_jobs(&user, 5, 8).await;
    let mut file: Value = serde_json::from_slice(&app.json_file(&user.token).await).unwrap();
    let jobs = file["jobs"].as_array_mut().unwrap();
    jobs[1]["status"] = json!("hired");
    jobs[3]["ai_match_score"] = json!(101);
    jobs[4].as_object_mut().unwrap().remove("notes");
    let mut new_job = jobs[0].clone();
    new_job["id"] = json!(uuid::Uuid::new_v4());
    jobs.push(new_job.clone());
    jobs.push(new_job);
    file["total"] = json!(7);
    let summary = imported(
        app.import(&user.token, "", serde_json::to_vec(&file).unwrap())
            .await,
    )
    .await;
    assert_eq!(counts(&summary), [0, 0, 2, 5, 0], "{summary}");
    let indexes: Vec<u64> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 3, 4, 5, 6]);
    assert!(
        summary["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("hired")
    );
    assert!(
        summary["errors"][3]["reason"]
            .as_str()
            .unwrap()
            .contains("more than once")
    );

    // A file cut short (gzipped or not) is a 400, and what came before the cut is not kept.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = $1")
        .bind(user.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let other = app.create_user().await;
    app.seed_jobs(&other, 200, 2).await;
    let big = app.json_file(&other.token).await;
    for cut in [
        big[..big.len() / 2].to_vec(),
        gzip(&big)[..gzip(&big).len() / 2].to_vec(),
    ] {
        let (code, message) = error_of(app.import(&user.token, "", cut).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(
            message.contains("complete") || message.contains("read"),
            "{message}"
        );
    }
    for (bad, says) in [
        (b"<html>".to_vec(), "not a JSON export"),
        (b"{\"total\": 1, \"jobs\": []}".to_vec(), "says it holds 1"),
        (Vec::new(), "too early"),
    ] {
        let (_, message) = error_of(app.import(&user.token, "", bad).await, 400).await;
        assert!(message.contains(says), "{message}");
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE user_id = $1")
        .bind(user.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(before, after);

    error_of(
        app.import(&user.token, "?dry_run=maybe", Vec::new()).await,
        400,
    )
    .await;
    error_of(app.import(&user.token, "?force=1", Vec::new()).await, 400).await;
    let anonymous = app
        .client
        .post(app.url("/api/import"))
        .body("{}")
        .send()
        .await
        .unwrap();
    error_of(anonymous, 401).await;
}
