use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{NewJob, TestApp, at};

const JSON_FIELDS: [&str; 22] = [
    "id",
    "company_name",
    "job_title",
    "status",
    "source",
    "location",
    "is_remote",
    "job_url",
    "job_description",
    "salary_range_min",
    "salary_range_max",
    "ai_match_score",
    "ai_reasoning",
    "notes",
    "tags",
    "applied_at",
    "interview_at",
    "offer_at",
    "rejected_at",
    "scraped_at",
    "created_at",
    "updated_at",
];

const CSV_HEADER: &str = "id,company_name,job_title,status,source,location,is_remote,job_url,salary_range_min,salary_range_max,ai_match_score,notes,tags,applied_at,interview_at,offer_at,rejected_at,created_at,updated_at";

fn full_job() -> NewJob {
    NewJob {
        company_name: "Acme Corp".into(),
        job_title: "Senior Backend Engineer".into(),
        status: "interview".into(),
        source: Some("linkedin".into()),
        location: Some("San Francisco, CA".into()),
        is_remote: true,
        job_url: Some("https://acme.com/careers/123".into()),
        job_description: Some("Build scalable APIs...".into()),
        salary_range_min: Some(180_000),
        salary_range_max: Some(250_000),
        ai_match_score: Some(87),
        ai_reasoning: Some("Strong match".into()),
        ai_parsed_data: Some(json!({"internal": "AI-PARSED-MARKER"})),
        notes: Some("Met recruiter at tech conference".into()),
        tags: vec!["high-priority".into(), "backend".into()],
        applied_at: Some(at("2026-03-01T10:30:00Z")),
        interview_at: Some(at("2026-03-10T14:00:00.123456Z")),
        scraped_at: Some(at("2026-02-27T08:00:00.5Z")),
        created_at: Some(at("2026-02-28T15:00:00Z")),
        updated_at: Some(at("2026-03-04T09:00:00Z")),
        last_synced_at: Some(at("2026-03-04T09:30:00Z")),
        ..NewJob::default()
    }
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn json_export_follows_the_contract() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let id = app.insert_job(&user, full_job()).await;

    let response = app.export(&user.token, "format=json").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"pipeline-jobs-{}.json\"", today()).as_str()
    );
    assert!(headers.get("content-encoding").is_none());
    assert!(headers.get("x-export-truncated").is_none());
    let text = response.text().await.unwrap();

    // Envelope keys in order, then the job's 22 keys in documented order.
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('"'))
        .filter_map(|l| l.split_once("\": ").map(|(k, _)| k))
        .collect();
    assert_eq!(&keys[..3], ["exported_at", "total", "jobs"]);
    assert_eq!(&keys[3..], JSON_FIELDS);

    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["total"], 1);
    let exported_at = body["exported_at"].as_str().unwrap();
    assert!(exported_at.ends_with('Z'));
    let age = Utc::now() - at(exported_at);
    assert!(
        age.num_seconds().abs() < 60,
        "exported_at is now: {exported_at}"
    );

    let expected = json!({
        "id": id,
        "company_name": "Acme Corp",
        "job_title": "Senior Backend Engineer",
        "status": "interview",
        "source": "linkedin",
        "location": "San Francisco, CA",
        "is_remote": true,
        "job_url": "https://acme.com/careers/123",
        "job_description": "Build scalable APIs...",
        "salary_range_min": 180000,
        "salary_range_max": 250000,
        "ai_match_score": 87,
        "ai_reasoning": "Strong match",
        "notes": "Met recruiter at tech conference",
        "tags": ["high-priority", "backend"],
        "applied_at": "2026-03-01T10:30:00Z",
        "interview_at": "2026-03-10T14:00:00.123456Z",
        "offer_at": null,
        "rejected_at": null,
        "scraped_at": "2026-02-27T08:00:00.500Z",
        "created_at": "2026-02-28T15:00:00Z",
        "updated_at": "2026-03-04T09:00:00Z"
    });
    assert_eq!(body["jobs"][0], expected);
    for internal in [
        "user_id",
        "ai_parsed_data",
        "last_synced_at",
        "deleted_at",
        "AI-PARSED-MARKER",
    ] {
        assert!(!text.contains(internal), "{internal} leaked");
    }
}

#[tokio::test]
async fn csv_export_follows_the_contract() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let id = app.insert_job(&user, full_job()).await;

    let response = app.export(&user.token, "format=csv").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"pipeline-jobs-{}.csv\"", today()).as_str()
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        format!(
            "{CSV_HEADER}\r\n{id},Acme Corp,Senior Backend Engineer,interview,linkedin,\"San Francisco, CA\",true,\
             https://acme.com/careers/123,180000,250000,87,Met recruiter at tech conference,high-priority; backend,\
             2026-03-01T10:30:00Z,2026-03-10T14:00:00.123456Z,,,2026-02-28T15:00:00Z,2026-03-04T09:00:00Z\r\n"
        )
    );
    for excluded in [
        "Build scalable APIs",
        "Strong match",
        "AI-PARSED-MARKER",
        "2026-02-27",
        user.id.to_string().as_str(),
    ] {
        assert!(!text.contains(excluded), "{excluded} is not a CSV column");
    }
}

#[tokio::test]
async fn csv_escapes_every_special_case_and_parses_back() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let notes = [
        Some("plain"),
        Some("comma, inside"),
        Some("a \"quoted\" word"),
        Some("line one\nline two"),
        Some("windows\r\nline"),
        Some("日本語のメモ, Кириллица"),
        Some("emoji 🚀🎉 and ü"),
        Some(""),
        None,
        Some("\"starts with a quote"),
    ];
    for (i, note) in notes.iter().enumerate() {
        app.insert_job(
            &user,
            NewJob {
                company_name: format!("Company, {i}"),
                notes: note.map(str::to_owned),
                tags: vec!["a,b".into(), "c \"d\"".into()],
                created_at: Some(at("2026-01-01T00:00:00Z") + chrono::Duration::seconds(i as i64)),
                ..NewJob::default()
            },
        )
        .await;
    }
    let text = app
        .export(&user.token, "format=csv")
        .await
        .text()
        .await
        .unwrap();

    // Raw form: NULL is an empty unquoted cell, the empty string a quoted one.
    assert!(
        text.contains(",\"\",\"a,b; c \"\"d\"\"\","),
        "empty string is \"\""
    );
    assert!(text.contains(",,\"a,b; c \"\"d\"\"\","), "NULL is empty");
    assert!(text.contains("\"line one\nline two\""));
    assert!(text.contains("\"windows\r\nline\""));

    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader
            .headers()
            .unwrap()
            .iter()
            .collect::<Vec<_>>()
            .join(","),
        CSV_HEADER
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), notes.len());
    // Newest first: the last inserted comes first.
    for (record, (i, note)) in records.iter().zip(notes.iter().enumerate().rev()) {
        assert_eq!(&record[1], format!("Company, {i}"));
        assert_eq!(&record[11], note.unwrap_or(""));
        assert_eq!(&record[12], "a,b; c \"d\"");
        assert_eq!(record.len(), 19);
    }
}

#[tokio::test]
async fn users_see_only_their_own_live_jobs() {
    let app = TestApp::spawn().await;
    let alice = app.create_user().await;
    let bob = app.create_user().await;
    let a1 = app
        .insert_job(
            &alice,
            NewJob {
                notes: Some("alice-1".into()),
                ..NewJob::default()
            },
        )
        .await;
    app.insert_job(
        &alice,
        NewJob {
            notes: Some("alice-deleted".into()),
            deleted_at: Some(Utc::now()),
            ..NewJob::default()
        },
    )
    .await;
    let b1 = app
        .insert_job(
            &bob,
            NewJob {
                notes: Some("bob-1".into()),
                ..NewJob::default()
            },
        )
        .await;

    assert_eq!(app.exported_ids(&alice.token, "").await, [a1]);
    assert_eq!(app.exported_ids(&bob.token, "").await, [b1]);
    for (user, foreign) in [(&alice, "bob-1"), (&bob, "alice-")] {
        for format in ["json", "csv"] {
            let text = app
                .export(&user.token, &format!("format={format}"))
                .await
                .text()
                .await
                .unwrap();
            assert!(
                !text.contains(foreign),
                "{format} of {} shows {foreign}",
                user.email
            );
        }
    }
    let csv = app
        .export(&alice.token, "format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(!csv.contains("alice-deleted"));
    assert_eq!(app.export_json(&alice.token, "").await["total"], 1);
}

#[tokio::test]
async fn newest_first_with_ties_broken_by_id() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let ids = app.insert_jobs(&user, 5).await;
    let same = at("2026-06-01T00:00:00Z");
    let mut tied = Vec::new();
    for _ in 0..3 {
        tied.push(
            app.insert_job(
                &user,
                NewJob {
                    created_at: Some(same),
                    ..NewJob::default()
                },
            )
            .await,
        );
    }
    tied.sort();
    tied.reverse();
    let mut expected = tied;
    expected.extend(ids.iter().rev());
    assert_eq!(app.exported_ids(&user.token, "").await, expected);
}

#[tokio::test]
async fn empty_exports_are_well_formed() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let json = app.export(&user.token, "").await.text().await.unwrap();
    let body: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(body["total"], 0);
    assert_eq!(body["jobs"], json!([]));
    let csv = app
        .export(&user.token, "format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv, format!("{CSV_HEADER}\r\n"));
}

#[tokio::test]
async fn format_must_be_json_or_csv() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    for query in [
        "format=xml",
        "format=",
        "format=JSON",
        "format=csv&format=json",
    ] {
        let (code, message) =
            crate::helpers::error_of(app.export(&user.token, query).await, 400).await;
        assert_eq!(code, "VALIDATION_ERROR", "{query}");
        assert!(message.contains("format"), "{query}: {message}");
    }
    let (_, message) =
        crate::helpers::error_of(app.export(&user.token, "format=xml").await, 400).await;
    assert_eq!(message, "format must be \"json\" or \"csv\"");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let app = TestApp::spawn().await;
    let (code, _) = crate::helpers::error_of(
        app.client.get(app.url("/api/nope")).send().await.unwrap(),
        404,
    )
    .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = crate::helpers::error_of(
        app.client
            .post(app.url("/api/export"))
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    assert_eq!(code, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["database"],
        "ok"
    );
}

#[tokio::test]
async fn database_trouble_is_a_clean_500() {
    // A database that does not exist on a port where nothing listens.
    let app = TestApp::spawn_with(|c| {
        c.database.url =
            pipeline_export::config::Secret::new("postgres://postgres@127.0.0.1:9/none");
    })
    .await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["status"],
        "unavailable"
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let token = crate::helpers::jwt_for(uuid::Uuid::new_v4());
    let response = app.export(&token, "").await;
    assert!(response.headers().contains_key("x-request-id"));
    let (code, message) = crate::helpers::error_of(response, 500).await;
    assert_eq!(code, "INTERNAL_ERROR");
    for internal in ["sqlx", "connect", "127.0.0.1", "refused", "postgres"] {
        assert!(!message.to_lowercase().contains(internal), "{message}");
    }
}
