//! The PDF report, read back with poppler's `pdftotext` and `pdfinfo` (infra/test.sh
//! installs them) and compared with the database; its first page is rendered with
//! `pdftoppm` into the test output for a person to look at.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{NewJob, TestApp, TestUser, at, error_of, gunzip};

/// Company names in scripts the report must draw: DejaVu's own and a CJK fallback.
const NAMES: [&str; 6] = [
    "Яндекс",
    "Ελληνική Εταιρεία",
    "שטראוס",
    // No lam-alef here: pdftotext reverses the letters inside that ligature when it turns
    // right-to-left text back into reading order, though the page shows it right.
    "شركة النور",
    "東京株式会社",
    "Crème Brûlée SARL",
];

async fn user_with_report_jobs(app: &TestApp) -> TestUser {
    let user = app.create_user().await;
    app.seed_jobs(&user, 90, 11).await;
    for (i, name) in NAMES.iter().enumerate() {
        app.insert_job(
            &user,
            NewJob {
                company_name: (*name).to_owned(),
                job_title: "Инженер / エンジニア".to_owned(),
                status: ["interview", "offer", "applied"][i % 3].to_owned(),
                location: Some("Zürich".to_owned()),
                applied_at: Some(at("2026-03-02T09:00:00Z")),
                salary_range_min: Some(90_000),
                salary_range_max: Some(120_000),
                ..NewJob::default()
            },
        )
        .await;
    }
    user
}

/// Runs a poppler tool on `pdf` and returns what it printed.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(&path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} must be installed (infra/test.sh installs poppler-utils): {e}")
        });
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pages_of(pdf: &[u8]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdfinfo").arg(&path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo prints Pages:")
}

/// Renders page one to a PNG in the test output folder and returns its path.
fn render_first_page(pdf: &[u8], name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let pdf_path = dir.join(format!("{name}.pdf"));
    std::fs::write(&pdf_path, pdf).unwrap();
    let prefix = dir.join(name);
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf_path)
        .arg(&prefix)
        .status()
        .unwrap();
    assert!(status.success());
    prefix.with_extension("png")
}

async fn download(done: &Value) -> Vec<u8> {
    let response = reqwest::get(done["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// The figures the report must show, counted in SQL with the report's definitions.
async fn expected(app: &TestApp, user: &TestUser) -> (i64, Vec<(String, i64)>, i64, i64, i64) {
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM jobs WHERE user_id = $1 AND deleted_at IS NULL GROUP BY status",
    )
    .bind(user.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let (total, applications, interviewed, offers): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), \
                count(*) FILTER (WHERE applied_at IS NOT NULL OR status <> 'saved'), \
                count(*) FILTER (WHERE interview_at IS NOT NULL OR status IN ('interview', 'offer')), \
                count(*) FILTER (WHERE offer_at IS NOT NULL OR status = 'offer') \
         FROM jobs WHERE user_id = $1 AND deleted_at IS NULL",
    )
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (total, by_status, applications, interviewed, offers)
}

fn percent(part: i64, whole: i64) -> String {
    format!("{}%", (part * 100 + whole / 2) / whole)
}

#[tokio::test]
async fn a_pdf_report_shows_the_totals_rates_and_every_job_in_any_script() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = user_with_report_jobs(&app).await;
    let created = app
        .start_export(&user.token, json!({"format": "pdf"}))
        .await;
    let done = app
        .wait_finished(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // A report is not gzipped unless asked: it is compressed inside already.
    assert_eq!(done["compression"], "none");
    let name = done["file_name"].as_str().unwrap();
    assert!(
        name.starts_with("pipeline-jobs-") && name.ends_with(".pdf"),
        "{name}"
    );
    let response = reqwest::get(done["download_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap().to_vec();
    assert!(pdf.starts_with(b"%PDF-"));
    // Rendered first, so that a failing assertion below still leaves the picture.
    let png = render_first_page(&pdf, "report-first-page");
    println!("first page of the report: {}", png.display());
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);

    let (total, by_status, applications, interviewed, offers) = expected(&app, &user).await;
    assert_eq!(total, 96);
    assert_eq!(done["row_count"], total);
    // One summary page, then 48 jobs a page.
    assert_eq!(pages_of(&pdf), 1 + (total as u64).div_ceil(48));

    let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8"], &pdf);
    let first = text.split('\u{c}').next().unwrap();
    assert!(first.contains("Job search report"), "{first}");
    assert!(first.contains(&format!("{total} jobs")), "{first}");
    for heading in [
        "By status",
        "By source",
        "Applications per week",
        "Salary ranges",
    ] {
        assert!(first.contains(heading), "{heading} in {first}");
    }
    // Each status's line has its count right after the bar.
    for (status, n) in &by_status {
        let line = first
            .lines()
            .find(|l| l.split_whitespace().next() == Some(status.as_str()))
            .unwrap_or_else(|| panic!("a line for {status} in {first}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(n.to_string().as_str()),
            "{line}"
        );
    }
    let rates = first
        .lines()
        .find(|l| l.contains("Applications") && l.contains("Interview rate"))
        .expect("the headline figures");
    let figures = first
        .lines()
        .skip_while(|l| !std::ptr::eq(*l, rates))
        .skip(1)
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned();
    for value in [
        total.to_string(),
        applications.to_string(),
        percent(interviewed, applications),
        percent(offers, applications),
    ] {
        assert!(
            figures.split_whitespace().any(|w| w == value),
            "{value} among the figures {figures:?}"
        );
    }
    assert!(first.contains(&format!("{interviewed} of {applications} applications")));
    assert!(first.contains("Page 1 of"));

    // The table lists every job; non-Latin names come out as they went in.
    // pdftotext wraps right-to-left runs in embedding marks.
    let table: String = text
        .split('\u{c}')
        .skip(1)
        .collect::<String>()
        .replace(['\u{202b}', '\u{202c}'], "");
    for name in NAMES {
        assert!(table.contains(name), "{name} in the table");
    }
    let companies: Vec<String> = sqlx::query_scalar(
        "SELECT company_name FROM jobs WHERE user_id = $1 AND length(company_name) < 20",
    )
    .bind(user.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for company in companies.iter().take(20) {
        assert!(table.contains(company.as_str()), "{company} in the table");
    }
}

#[tokio::test]
async fn a_gzipped_report_and_a_scheduled_one_are_the_same_kind_of_file() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = user_with_report_jobs(&app).await;
    let created = app
        .start_export(
            &user.token,
            json!({"format": "pdf", "compression": "gzip", "filters": {"status": "offer"}}),
        )
        .await;
    let done = app
        .wait_finished(&user.token, created["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["file_name"].as_str().unwrap().ends_with(".pdf.gz"));
    let pdf = gunzip(&download(&done).await);
    let text = poppler("pdftotext", &["-layout"], &pdf);
    assert!(text.contains("Filters: status offer"), "{text}");
    assert!(text.contains("Offer rate"));

    // A backup schedule may send a report; its compression follows the format.
    let response = app
        .client
        .post(app.url("/api/export-schedules"))
        .bearer_auth(&user.token)
        .json(&json!({"cadence": {"weekly": {"weekday": "monday", "time": "08:00"}}, "format": "pdf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let schedule: Value = response.json().await.unwrap();
    assert_eq!(schedule["format"], "pdf");
    assert_eq!(schedule["compression"], "none");
}

#[tokio::test]
async fn reports_are_refused_where_they_cannot_be_made() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;

    // The sync endpoint streams; a report is built whole, so it is background only.
    let (code, message) = error_of(app.export(&user.token, "format=pdf").await, 400).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.contains("POST /api/exports"), "{message}");

    // A report's layout is fixed.
    let response = app
        .create_export(
            &user.token,
            json!({"format": "pdf", "fields": ["company_name"]}),
            None,
        )
        .await;
    let (code, message) = error_of(response, 400).await;
    assert_eq!(code, "VALIDATION_ERROR");
    assert!(message.starts_with("fields:"), "{message}");

    // Past the documented cap: a clear failure, no file.
    app.seed_jobs(&user, 10_001, 3).await;
    let created = app
        .start_export(&user.token, json!({"format": "pdf"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let done = app.wait_finished(&user.token, id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "VALIDATION_ERROR");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("10,000") && message.contains("10001"),
        "{message}"
    );
    assert!(app.stored_files(id).await.is_empty());
}
