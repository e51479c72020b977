//! Trying to reach another user's data, and bad input on every surface: each attempt gets a
//! 4xx in the documented shape, never a 500, and never anything of someone else's.

use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, TestApp, error_of, jwt_with};

/// Every documented operation with an `{id}`, as (method, path template).
async fn operations_with_an_id(app: &TestApp) -> Vec<(String, String)> {
    let doc = crate::openapi::document(app).await;
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains("{id}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn another_users_ids_answer_exactly_like_ids_that_do_not_exist_on_every_route() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let owner = app.create_user().await;
    let intruder = app.create_user().await;
    app.insert_jobs(&owner, 3).await;
    let export = app
        .start_export(&owner.token, json!({"format": "csv"}))
        .await;
    let export_id = export["id"].as_str().unwrap().to_owned();
    app.wait_finished(&owner.token, &export_id).await;
    let schedule = app
        .new_schedule(
            &owner.token,
            json!({"cadence": {"daily": {"time": "06:00"}}}),
        )
        .await;
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();

    let ops = operations_with_an_id(&app).await;
    assert!(ops.len() >= 8, "{ops:?}");
    let body = json!({"paused": true, "format": "csv"});
    let answer = |method: String, path: String| {
        let app = &app;
        let token = intruder.token.clone();
        let body = body.clone();
        async move {
            let response = app
                .client
                .request(method.parse().unwrap(), app.url(&path))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    };
    for (method, template) in &ops {
        let real = if template.starts_with("/api/exports") {
            &export_id
        } else {
            &schedule_id
        };
        let theirs = answer(method.clone(), template.replace("{id}", real)).await;
        let nobodys = answer(
            method.clone(),
            template.replace("{id}", &uuid::Uuid::new_v4().to_string()),
        )
        .await;
        assert_eq!(theirs.0, 404, "{method} {template}: {theirs:?}");
        assert_eq!(
            theirs, nobodys,
            "{method} {template}: the same answer either way"
        );
        let error: Value = serde_json::from_str(&theirs.1).unwrap();
        assert_eq!(error["error"]["code"], "NOT_FOUND");
    }
    // Lists show nothing of the owner's; the owner's things are untouched.
    assert_eq!(
        app.list_exports(&intruder.token, "").await["exports"],
        json!([])
    );
    let schedules: Value = app
        .schedule_request(reqwest::Method::GET, &intruder.token, "", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(schedules["schedules"], json!([]));
    assert_eq!(app.get_export(&owner.token, &export_id).await.status(), 200);
    let kept = app.get_schedule(&owner.token, &schedule_id).await;
    assert_eq!(kept["paused"], false);
    assert_eq!(
        kept["format"], "json",
        "the intruder's PATCH changed nothing"
    );
}

#[tokio::test]
async fn algorithm_confusion_is_401() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let claims = json!({"sub": user.id, "exp": chrono::Utc::now().timestamp() + 3600});
    // A valid HS256 token re-headed as RS256, HS512 or ES256 (the "HS/RS confusion" family):
    // the signature is an HMAC under the right secret, but only HS256 is accepted.
    let good = jwt_with(claims, JWT_SECRET);
    let (_, rest) = good.split_once('.').unwrap();
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    for alg in ["RS256", "HS512", "ES256", "PS256", "HS384"] {
        let header = b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let token = format!("{header}.{rest}");
        let (code, _) = error_of(app.export(&token, "").await, 401).await;
        assert_eq!(code, "UNAUTHORIZED", "{alg}");
    }
}

/// Strings that break a query built by concatenation.
const INJECTIONS: [&str; 6] = [
    "' OR '1'='1",
    "applied'; DROP TABLE jobs; --",
    "\") OR 1=1 --",
    "1; SELECT pg_sleep(5)",
    "%' UNION SELECT id, email FROM users --",
    "\\'; DELETE FROM users; --",
];

#[tokio::test]
async fn injection_attempts_in_filters_and_fields_are_inert() {
    let app = TestApp::spawn().await;
    let owner = app.create_user().await;
    let other = app.create_user().await;
    app.insert_jobs(&owner, 2).await;
    app.insert_jobs(&other, 5).await;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for attack in INJECTIONS {
        for param in [
            "status",
            "source",
            "tag",
            "created_from",
            "created_to",
            "updated_since",
            "fields",
            "format",
            "delimiter",
            "bom",
            "escape_formulas",
        ] {
            let response = app
                .export(
                    &owner.token,
                    &format!("format=json&{param}={}", enc(attack)),
                )
                .await;
            let status = response.status().as_u16();
            match status {
                // Text filters compare as values: a match for nothing, or for the owner's only.
                200 => {
                    let body: Value = response.json().await.unwrap();
                    assert!(
                        body["total"].as_u64().unwrap() <= 2,
                        "{param}={attack}: {body}"
                    );
                }
                400 => {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(
                        body["error"]["code"], "VALIDATION_ERROR",
                        "{param}={attack}"
                    );
                }
                _ => panic!("{param}={attack}: {status}"),
            }
        }
        // The same in a background export's body, and as a filter name.
        let response = app
            .client
            .post(app.url("/api/exports"))
            .bearer_auth(&owner.token)
            .json(&json!({"filters": {"source": attack, attack: "x"}, "fields": [attack]}))
            .send()
            .await
            .unwrap();
        error_of(response, 400).await;
    }
    // Everything is still there.
    let all = app.export_json(&other.token, "format=json").await;
    assert_eq!(all["total"], 5);
}

#[tokio::test]
async fn header_injection_never_reaches_a_header() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    // A schedule's name goes into email subjects: no control characters.
    for name in [
        "Weekly\r\nBcc: attacker@example.com",
        "Weekly\nX-Injected: 1",
        "a\u{0}b",
    ] {
        let response = app
            .create_schedule(
                &user.token,
                json!({"name": name, "cadence": {"daily": {"time": "06:00"}}}),
            )
            .await;
        let (code, message) = error_of(response, 400).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(message.contains("name"), "{message}");
    }
    // The file name is the service's own: nothing of the request reaches Content-Disposition.
    let response = app
        .export(
            &user.token,
            "format=csv&fields=company_name%0D%0AX-Injected:%201",
        )
        .await;
    assert!(response.headers().get("x-injected").is_none());
    error_of(response, 400).await;
}

#[tokio::test]
async fn oversized_deep_and_huge_inputs_are_4xx_in_the_documented_shape() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let post = |path: &'static str, body: String| {
        let app = &app;
        let token = user.token.clone();
        async move {
            app.client
                .post(app.url(path))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    // A body far beyond what any request needs.
    let big = format!(
        r#"{{"format": "csv", "fields": ["{}"]}}"#,
        "a".repeat(3 << 20)
    );
    let (code, message) = error_of(post("/api/exports", big.clone()).await, 413).await;
    assert_eq!(code, "PAYLOAD_TOO_LARGE", "{message}");
    error_of(post("/api/export-schedules", big).await, 413).await;
    // Deeply nested JSON.
    let deep = format!(
        r#"{{"format": "csv", "filters": {{"source": {}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    error_of(post("/api/exports", deep).await, 400).await;
    // Huge numbers and pages.
    for query in [
        "limit=100000000000000000000000",
        "limit=-1",
        "limit=1e9",
        "cursor=AAAA",
    ] {
        error_of(app.exports_page(&user.token, query).await, 400).await;
    }
    let huge_keep = json!({"cadence": {"daily": {"time": "06:00"}}, "keep_last": 1e300});
    error_of(
        post("/api/export-schedules", huge_keep.to_string()).await,
        400,
    )
    .await;
    // A long query string and a long path.
    let long = format!("format=csv&tag={}", "x".repeat(60_000));
    let status = app.export(&user.token, &long).await.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    let response = app
        .client
        .get(app.url(&format!("/api/exports/{}", "9".repeat(10_000))))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    error_of(response, 404).await;
}
