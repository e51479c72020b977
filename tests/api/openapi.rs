//! The OpenAPI document against the running service: every documented operation is served,
//! nothing else is served on a documented path, real responses match the documented schemas
//! (with no undocumented fields), and `/docs` works from the binary alone.

use serde_json::{Value, json};

use crate::helpers::{TestApp, gunzip};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The served OpenAPI document.
pub async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// The response of the router's own fallbacks: no such route, or no such method.
async fn is_fallback(response: reqwest::Response) -> bool {
    let status = response.status().as_u16();
    if status != 404 && status != 405 {
        return false;
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["error"]["message"] == "no such route" || body["error"]["code"] == "METHOD_NOT_ALLOWED"
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{token}", "not-a-token")
}

#[tokio::test]
async fn the_document_covers_every_route_and_only_those() {
    let app = TestApp::spawn().await;
    let user = app.create_user().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The served document is the one the code generates.
    let generated = serde_json::to_value(pipeline_export::http::openapi_document()).unwrap();
    assert_eq!(doc, generated);

    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/api/export",
        "/api/exports",
        "/api/exports/{id}",
        "/api/exports/{id}/download",
        "/api/export-schedules",
        "/api/export-schedules/{id}",
        "/api/export-schedules/{id}/run",
        "/api/export-schedules/{id}/runs",
        "/api/import",
        "/d/{token}",
        "/p/{token}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(paths.contains_key(expected), "{expected} is documented");
    }
    let mut operations = 0;
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in paths {
        for method in METHODS {
            let request = app
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    app.url(&concrete(path)),
                )
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body("{}");
            let response = request.send().await.unwrap();
            let status = response.status();
            match item.get(method) {
                Some(operation) => {
                    operations += 1;
                    let id = operation["operationId"].as_str().unwrap_or_default();
                    assert!(
                        operation_ids.insert(id.to_owned()),
                        "operationId {id:?} is unique"
                    );
                    assert!(
                        !is_fallback(response).await,
                        "{method} {path} is documented but not served ({status})"
                    );
                    assert!(
                        operation["summary"].is_string(),
                        "{method} {path} has a summary"
                    );
                    assert!(
                        operation["responses"]
                            .as_object()
                            .is_some_and(|r| !r.is_empty()),
                        "{method} {path} documents its responses"
                    );
                    let secured = operation["security"][0].get("bearer").is_some();
                    assert_eq!(
                        secured,
                        path.starts_with("/api/"),
                        "{method} {path}: bearer exactly on /api"
                    );
                    for name in path.split('{').skip(1).map(|p| &p[..p.find('}').unwrap()]) {
                        let documented = operation["parameters"].as_array().is_some_and(|ps| {
                            ps.iter().any(|p| p["name"] == name && p["in"] == "path")
                        });
                        assert!(documented, "{method} {path} documents {{{name}}}");
                    }
                }
                None => {
                    assert!(
                        is_fallback(response).await,
                        "{method} {path} is served ({status}) but not documented"
                    );
                }
            }
        }
    }
    assert!(operations >= 21, "{operations} operations");
    // Off the documented paths only the fallback answers.
    let response = app
        .client
        .get(app.url("/api/undocumented"))
        .send()
        .await
        .unwrap();
    assert!(is_fallback(response).await);
}

/// A validator for `#/components/schemas/{name}` in which no object may have a property the
/// document does not name.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    fn closed(schema: &mut Value) {
        match schema {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(closed);
            }
            Value::Array(items) => items.iter_mut().for_each(closed),
            _ => {}
        }
    }
    let mut root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"].clone(),
    });
    closed(&mut root["components"]);
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_matches(doc: &Value, name: &str, instance: &Value) {
    let validator = validator(doc, name);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{instance:#}");
}

#[tokio::test]
async fn responses_match_their_documented_schemas() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let doc = document(&app).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 4).await;

    let file = app.export_json(&user.token, "format=json").await;
    assert_matches(&doc, "ExportFile", &file);
    let subset = app
        .export_json(&user.token, "format=json&fields=status,company_name")
        .await;
    assert_matches(&doc, "ExportFile", &subset);

    for body in [
        json!({"format": "csv", "delimiter": "semicolon", "notify": {"email": true}}),
        json!({"format": "pdf"}),
        json!({"format": "ndjson", "fields": ["company_name", "status"], "filters": {"status": "applied"}}),
    ] {
        let created = app.start_export(&user.token, body).await;
        assert_matches(&doc, "Export", &created);
        let id = created["id"].as_str().unwrap();
        let done = app.wait_finished(&user.token, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_matches(&doc, "Export", &done);
    }
    assert_matches(
        &doc,
        "ExportList",
        &app.list_exports(&user.token, "limit=2").await,
    );
    // The check can fail: an undocumented field, a wrong enum value, a wrong type, a
    // missing field.
    let export = app.list_exports(&user.token, "limit=1").await["exports"][0].clone();
    let check = validator(&doc, "Export");
    assert!(check.is_valid(&export));
    for (name, broken) in [
        ("extra field", json!({"surprise": 1})),
        ("bad status", json!({"status": "done"})),
        ("bad progress", json!({"progress": {"rows_done": "many"}})),
    ] {
        let mut bad = export.clone();
        for (k, v) in broken.as_object().unwrap() {
            bad[k] = v.clone();
        }
        assert!(!check.is_valid(&bad), "{name} is caught");
    }
    let mut missing = export.clone();
    missing.as_object_mut().unwrap().remove("file_name");
    assert!(!check.is_valid(&missing), "a missing field is caught");

    let schedule = app
        .new_schedule(
            &user.token,
            json!({"cadence": {"monthly": {"day": 31, "time": "07:00"}}, "timezone": "Europe/Berlin",
                   "format": "csv", "mode": "incremental"}),
        )
        .await;
    assert_matches(&doc, "Schedule", &schedule);
    let id = schedule["id"].as_str().unwrap();
    let run: Value = app.run_now(&user.token, id).await.json().await.unwrap();
    assert_matches(&doc, "Run", &run);
    let runs = app.wait_runs_finished(&user.token, id, 1).await;
    let page: Value = app
        .schedule_request(
            reqwest::Method::GET,
            &user.token,
            &format!("/{id}/runs"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["runs"].as_array().unwrap().len(), runs.len());
    assert_matches(&doc, "RunList", &page);
    let paused = app
        .schedule_request(
            reqwest::Method::PATCH,
            &user.token,
            &format!("/{id}"),
            Some(json!({"paused": true})),
        )
        .await;
    assert_matches(&doc, "Schedule", &paused.json().await.unwrap());
    let list: Value = app
        .schedule_request(reqwest::Method::GET, &user.token, "", None)
        .await
        .json()
        .await
        .unwrap();
    assert_matches(&doc, "ScheduleList", &list);

    let backup = app
        .client
        .get(app.url("/api/export?format=json"))
        .bearer_auth(&user.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let summary = app
        .import(&user.token, "?dry_run=true", backup.to_vec())
        .await;
    assert_eq!(summary.status(), 200);
    let summary: Value = summary.json().await.unwrap();
    assert_eq!(summary["total"], 4, "{summary}");
    assert_matches(&doc, "ImportSummary", &summary);
    assert!(gunzip(&backup).starts_with(b"{"));

    // Errors, whichever route and status.
    for response in [
        app.client
            .get(app.url("/api/export?format=xml"))
            .bearer_auth(&user.token)
            .send()
            .await,
        app.client.get(app.url("/api/exports")).send().await,
        app.client
            .get(app.url("/api/exports/00000000-0000-4000-8000-000000000000"))
            .bearer_auth(&user.token)
            .send()
            .await,
        app.client
            .post(app.url("/api/export"))
            .bearer_auth(&user.token)
            .send()
            .await,
    ] {
        let response = response.unwrap();
        assert!(response.status().is_client_error());
        assert_matches(&doc, "ErrorBody", &response.json().await.unwrap());
    }
    // A failed export: a report of more jobs than a report may hold.
    let many = app.create_user().await;
    app.seed_jobs(&many, 10_001, 1).await;
    let created = app
        .start_export(&many.token, json!({"format": "pdf"}))
        .await;
    let failed = app
        .wait_finished(&many.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_matches(&doc, "Export", &failed);

    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_matches(&doc, "Health", &ready);
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let hop = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(hop.status(), 303);
    assert_eq!(hop.headers()["location"], "/docs/");
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet the page loads is served by this service, not a CDN.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert!(!assets.is_empty(), "{html}");
    for asset in assets {
        assert!(!asset.contains("://"), "{asset} is fetched from elsewhere");
        let url = app.url(&format!("/docs/{}", asset.trim_start_matches("./")));
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(response.bytes().await.unwrap().len() > 100, "{url}");
    }
    // The page's configuration points at this service's document.
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    // No online validator badge either.
    assert!(init.contains("validatorUrl"), "{init}");
    assert!(!init.contains("validator.swagger.io"), "{init}");
}
