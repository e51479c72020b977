use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{JWT_SECRET, NewJob, TestApp, error_of, jwt_for, jwt_with};

async fn status_with_header(app: &TestApp, header: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/api/export"));
    if let Some(h) = header {
        request = request.header("authorization", h);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn missing_or_malformed_credentials_are_401_in_the_documented_shape() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let cases = [
        None,
        Some("".to_owned()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {}", user.token)),
        Some(format!("Token {}", user.token)),
        Some("Bearer not-a-token".to_owned()),
        Some(format!("Bearer {}x", user.token)),
        Some(format!("Bearer pex_{}", "0".repeat(64))),
        Some("Bearer pex_short".to_owned()),
    ];
    for header in cases {
        let response = status_with_header(&app, header.as_deref()).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (code, message) = error_of(response, 401).await;
        assert_eq!(code, "UNAUTHORIZED", "{header:?}");
        assert!(!message.is_empty());
    }
}

#[tokio::test]
async fn bad_jwts_are_401() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let now = Utc::now().timestamp();
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let claims = json!({"sub": user.id, "exp": now + 3600}).to_string();
    let none_token = format!("{none_header}.{}.", base64url(claims.as_bytes()));
    let cases = [
        (
            "forged",
            jwt_with(json!({"sub": user.id, "exp": now + 3600}), "wrong-secret"),
        ),
        (
            "expired",
            jwt_with(json!({"sub": user.id, "exp": now - 3600}), JWT_SECRET),
        ),
        ("no exp", jwt_with(json!({"sub": user.id}), JWT_SECRET)),
        ("no sub", jwt_with(json!({"exp": now + 3600}), JWT_SECRET)),
        (
            "sub not a uuid",
            jwt_with(json!({"sub": "42", "exp": now + 3600}), JWT_SECRET),
        ),
        (
            "not yet valid",
            jwt_with(
                json!({"sub": user.id, "exp": now + 7200, "nbf": now + 3600}),
                JWT_SECRET,
            ),
        ),
        ("unknown user", jwt_for(Uuid::new_v4())),
        ("alg none", none_token),
    ];
    for (what, token) in cases {
        let response = app.export(&token, "").await;
        let (code, _) = error_of(response, 401).await;
        assert_eq!(code, "UNAUTHORIZED", "{what}");
    }
}

#[tokio::test]
async fn supabase_style_jwt_is_accepted() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    app.insert_job(&user, NewJob::default()).await;
    let body = app.export_json(&jwt_for(user.id), "").await;
    assert_eq!(body["total"], 1);
}

#[tokio::test]
async fn personal_tokens_work_until_revoked_and_record_their_use() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    assert_eq!(app.export(&user.token, "").await.status(), 200);

    let tokens = pipeline_export::auth::list_tokens(&app.pool, user.id)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(tokens[0].last_used_at.is_some());
    assert!(user.token.starts_with(&tokens[0].token_prefix));

    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE user_id = $1")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 32, "only the SHA-256 is stored");
    assert!(!String::from_utf8_lossy(&stored).contains(&user.token[4..]));

    assert!(
        pipeline_export::auth::revoke_token(&app.pool, tokens[0].id)
            .await
            .unwrap()
    );
    let (code, _) = error_of(app.export(&user.token, "").await, 401).await;
    assert_eq!(code, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_token_in_the_query_string_is_not_a_credential() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let response = app
        .client
        .get(app.url(&format!("/api/export?access_token={}", user.token)))
        .send()
        .await
        .unwrap();
    error_of(response, 401).await;
}

fn base64url(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
}
