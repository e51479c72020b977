//! The mail module against real services: a running maildev (SMTP in, JSON API out) and the
//! file system. maildev is required, never skipped: start it with
//! `source infra/lib.sh && ensure_maildev` (CI always does). Tests run in parallel and share
//! one maildev, so each sends to its own address and reads back only its own mail.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use pipeline_export_workers::mail::{
    Email, ExportFacts, FailureFacts, MailConfig, MailError, Mailer, export_failed_email,
    export_ready_email,
};
use serde_json::Value;
use uuid::Uuid;

const FROM: &str = "PIPELINE <no-reply@pipeline.test>";

fn smtp_url() -> String {
    std::env::var("MAILDEV_SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".to_owned())
}

fn api_url() -> String {
    std::env::var("MAILDEV_API_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:1080".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Fails the test, with how to fix it, unless maildev's API answers.
async fn require_maildev() -> reqwest::Client {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    let url = format!("{}/api/healthz", api_url());
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => client,
        outcome => panic!(
            "maildev is not reachable ({url}: {outcome:?}). Start it with \
             `source infra/lib.sh && ensure_maildev` (CI always starts it), or point \
             MAILDEV_SMTP_URL / MAILDEV_API_URL at a running one."
        ),
    }
}

fn smtp_mailer() -> Mailer {
    Mailer::from_config(&MailConfig {
        smtp_url: Some(smtp_url()),
        from: FROM.to_owned(),
        dir: std::env::temp_dir(),
    })
    .expect("SMTP mailer")
}

/// An address no other test uses, so parallel tests never read each other's mail.
fn unique_recipient(test: &str) -> String {
    format!("{test}-{}@example.test", Uuid::new_v4().simple())
}

/// Sends through maildev's SMTP port, failing with the fix when it is not listening.
async fn send_via_maildev(mailer: &Mailer, email: &Email) {
    if let Err(e) = mailer.send(email).await {
        panic!(
            "sending to maildev at {} failed: {e}. Is it running? Start it with \
             `source infra/lib.sh && ensure_maildev` (CI always starts it).",
            mailer.describe()
        );
    }
}

/// Waits up to 10 s for exactly one email to `to` and returns maildev's JSON for it.
async fn received_by(client: &reqwest::Client, to: &str) -> Value {
    received(client, to, 1).await.remove(0)
}

/// Waits up to 10 s for `count` emails to `to` and returns maildev's JSON for them.
async fn received(client: &reqwest::Client, to: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all: Value = client
            .get(format!("{}/api/email", api_url()))
            .send()
            .await
            .expect("GET /api/email")
            .json()
            .await
            .expect("maildev answers JSON");
        let mine: Vec<Value> = all
            .as_array()
            .expect("a JSON list of emails")
            .iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|to_list| to_list.iter().any(|a| a["address"] == to))
            })
            .cloned()
            .collect();
        if mine.len() == count {
            return mine;
        }
        assert!(
            mine.len() < count && Instant::now() < deadline,
            "expected {count} email(s) to {to} in maildev, found {}",
            mine.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The message as maildev received it (its decoded JSON leaves out Content-Type).
async fn raw_source(client: &reqwest::Client, mail: &Value) -> String {
    let id = mail["id"].as_str().expect("maildev gives each email an id");
    client
        .get(format!("{}/api/email/{id}/source", api_url()))
        .send()
        .await
        .expect("GET /api/email/:id/source")
        .error_for_status()
        .expect("the source of a received email")
        .text()
        .await
        .expect("the raw message")
}

fn header<'a>(mail: &'a Value, name: &str) -> &'a str {
    mail["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("header {name} missing in {}", mail["headers"]))
}

fn ready_facts(to: &str) -> ExportFacts {
    ExportFacts {
        to: to.to_owned(),
        export_id: Uuid::new_v4(),
        file_name: "pipeline-jobs-2026-03-04.csv.gz".to_owned(),
        format: "csv".to_owned(),
        compression: "gzip".to_owned(),
        row_count: 12_345,
        byte_size: 1_234_567,
        expires_at: Utc.with_ymd_and_hms(2026, 3, 11, 10, 30, 0).unwrap(),
        // Long enough to be wrapped by quoted-printable, with an `&` to be escaped in HTML.
        link: format!(
            "https://files.example.test/exports/{}/pipeline-jobs-2026-03-04.csv.gz?\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&X-Amz-Signature={}",
            Uuid::new_v4(),
            "ab12".repeat(16)
        ),
        created_at: Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap(),
        backup: None,
    }
}

fn failure_facts(to: &str) -> FailureFacts {
    FailureFacts {
        to: to.to_owned(),
        export_id: Uuid::new_v4(),
        file_name: "pipeline-jobs-2026-03-04.json".to_owned(),
        error_code: "DATABASE_UNAVAILABLE".to_owned(),
        error_message: "The database did not answer in time <again> & \"again\".".to_owned(),
        created_at: Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap(),
        backup: None,
    }
}

#[tokio::test]
async fn ready_email_arrives_over_smtp_with_its_facts_and_link() {
    let client = require_maildev().await;
    let to = unique_recipient("ready");
    let facts = ready_facts(&to);
    let email = export_ready_email(&facts);

    send_via_maildev(&smtp_mailer(), &email).await;

    let mail = received_by(&client, &to).await;
    assert_eq!(
        mail["subject"],
        "Your PIPELINE export is ready: pipeline-jobs-2026-03-04.csv.gz"
    );
    assert_eq!(mail["from"][0]["address"], "no-reply@pipeline.test");
    assert_eq!(
        header(&mail, "message-id"),
        format!("<export-{}-ready@pipeline-export>", facts.export_id)
    );
    let source = raw_source(&client, &mail).await;
    assert!(
        source.contains("Content-Type: multipart/alternative;"),
        "{source}"
    );
    assert!(
        source.contains("Content-Type: text/plain; charset=utf-8"),
        "{source}"
    );
    assert!(
        source.contains("Content-Type: text/html; charset=utf-8"),
        "{source}"
    );

    let text = mail["text"].as_str().expect("a text part");
    assert!(text.lines().any(|l| l.trim_end() == facts.link), "{text}");
    let html = mail["html"].as_str().expect("an HTML part");
    assert!(
        html.contains(&facts.link.replace('&', "&amp;")),
        "link (escaped) missing in {html}"
    );
    for body in [text, html] {
        for fact in [
            "pipeline-jobs-2026-03-04.csv.gz",
            "12,345 jobs",
            "1.2 MB",
            "CSV, gzip-compressed",
            "Wednesday, 11 March 2026 at 10:30 UTC",
        ] {
            assert!(body.contains(fact), "{fact:?} missing in {body}");
        }
        assert!(body.contains(&facts.export_id.to_string()), "{body}");
    }
}

#[tokio::test]
async fn failed_email_arrives_over_smtp_with_reason_and_advice() {
    let client = require_maildev().await;
    let to = unique_recipient("failed");
    let facts = failure_facts(&to);

    send_via_maildev(&smtp_mailer(), &export_failed_email(&facts)).await;

    let mail = received_by(&client, &to).await;
    assert_eq!(mail["subject"], "Your PIPELINE export failed");
    assert_eq!(
        header(&mail, "message-id"),
        format!("<export-{}-failed@pipeline-export>", facts.export_id)
    );
    let text = mail["text"].as_str().expect("a text part");
    let html = mail["html"].as_str().expect("an HTML part");
    assert!(text.contains(&facts.error_message), "{text}");
    assert!(
        html.contains("The database did not answer in time &lt;again&gt; &amp; &quot;again&quot;."),
        "{html}"
    );
    for body in [text, html] {
        assert!(body.contains("DATABASE_UNAVAILABLE"), "{body}");
        assert!(body.contains("again"), "{body}");
        assert!(body.contains("contact support"), "{body}");
        assert!(body.contains(&facts.export_id.to_string()), "{body}");
    }
}

#[tokio::test]
async fn resending_keeps_the_message_id_so_duplicates_can_be_spotted() {
    let client = require_maildev().await;
    let to = unique_recipient("resend");
    let facts = ready_facts(&to);
    let mailer = smtp_mailer();
    // A retry rebuilds the email from the same facts and sends it again.
    send_via_maildev(&mailer, &export_ready_email(&facts)).await;
    send_via_maildev(&mailer, &export_ready_email(&facts)).await;

    let both = received(&client, &to, 2).await;
    let expected = format!("<export-{}-ready@pipeline-export>", facts.export_id);
    assert_eq!(header(&both[0], "message-id"), expected);
    assert_eq!(header(&both[1], "message-id"), expected);
}

#[tokio::test]
async fn dir_backend_writes_one_parseable_eml_with_both_parts() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("outbox");
    let mailer = Mailer::from_config(&MailConfig {
        smtp_url: None,
        from: FROM.to_owned(),
        dir: dir.clone(),
    })
    .expect("dir mailer");
    assert_eq!(mailer.describe(), format!("directory {}", dir.display()));
    assert!(dir.is_dir(), "the directory is created");

    let facts = ready_facts("user@example.test");
    mailer
        .send(&export_ready_email(&facts))
        .await
        .expect("written");

    let files = list(&dir);
    assert_eq!(files.len(), 1, "one file and no leftovers: {files:?}");
    let name = &files[0];
    assert!(name.ends_with(&format!(
        "-export-{}-ready_pipeline-export.eml",
        facts.export_id
    )));
    assert!(name.starts_with("20"), "{name}");

    let raw = std::fs::read(dir.join(name)).expect("read the .eml");
    let message = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a parseable RFC 5322 message");
    assert_eq!(
        message.subject(),
        Some("Your PIPELINE export is ready: pipeline-jobs-2026-03-04.csv.gz")
    );
    assert_eq!(
        message.message_id(),
        Some(format!("export-{}-ready@pipeline-export", facts.export_id).as_str())
    );
    assert_eq!(
        message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("no-reply@pipeline.test")
    );
    assert_eq!(
        message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("user@example.test")
    );
    assert!(message.date().is_some(), "a Date header");
    assert!(
        message
            .header_raw("Content-Type")
            .is_some_and(|v| v.trim_start().starts_with("multipart/alternative")),
        "{:?}",
        message.header_raw("Content-Type")
    );
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    let text = message.body_text(0).expect("text part");
    let html = message.body_html(0).expect("html part");
    assert!(text.lines().any(|l| l.trim_end() == facts.link), "{text}");
    assert!(!text.contains("<html"), "the text part is plain: {text}");
    assert!(html.contains(&facts.link.replace('&', "&amp;")), "{html}");
    assert!(html.contains("12,345 jobs") && text.contains("12,345 jobs"));
}

#[tokio::test]
async fn dir_backend_refuses_a_bad_recipient_without_writing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mailer = Mailer::from_config(&MailConfig {
        smtp_url: Some("   ".to_owned()), // blank counts as unset
        from: FROM.to_owned(),
        dir: tmp.path().to_owned(),
    })
    .expect("dir mailer");
    let err = mailer
        .send(&export_ready_email(&ready_facts("not an address")))
        .await
        .expect_err("a bad recipient");
    assert!(matches!(err, MailError::Address(_)), "{err:?}");
    assert!(!err.is_transient());
    assert!(list(tmp.path()).is_empty());
}

#[tokio::test]
async fn unreachable_smtp_server_is_a_quick_transient_error() {
    let mailer = Mailer::from_config(&MailConfig {
        smtp_url: Some("smtp://127.0.0.1:1".to_owned()),
        from: FROM.to_owned(),
        dir: std::env::temp_dir(),
    })
    .expect("mailer");
    let started = Instant::now();
    let err = mailer
        .send(&export_failed_email(&failure_facts("user@example.test")))
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, MailError::Transient(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_recipient_over_smtp_is_an_address_error() {
    let mailer = smtp_mailer();
    for to in [
        "not an address",
        "",
        "a@b\r\nBcc: attacker@example.test",
        "@example.test",
    ] {
        let email = Email {
            to: to.to_owned(),
            ..export_ready_email(&ready_facts("user@example.test"))
        };
        let err = mailer.send(&email).await.expect_err("a bad recipient");
        assert!(matches!(err, MailError::Address(_)), "{to:?}: {err:?}");
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn bad_configuration_is_a_config_error() {
    let dir = std::env::temp_dir();
    let bad_from = MailConfig {
        smtp_url: None,
        from: "not a mailbox".to_owned(),
        dir: dir.clone(),
    };
    assert!(matches!(
        Mailer::from_config(&bad_from),
        Err(MailError::Config(_))
    ));
    for url in [
        "ftp://mail.example.test",
        "smtp://",
        "not a url",
        "smtp://h?tls=maybe",
    ] {
        let cfg = MailConfig {
            smtp_url: Some(url.to_owned()),
            from: FROM.to_owned(),
            dir: dir.clone(),
        };
        assert!(
            matches!(Mailer::from_config(&cfg), Err(MailError::Config(_))),
            "{url}"
        );
    }
}

#[tokio::test]
async fn describe_never_shows_credentials() {
    for (url, shown) in [
        ("smtp://127.0.0.1:1025", "smtp://127.0.0.1:1025"),
        (
            "smtp://user:s3cret@mail.example.test:587?tls=required",
            "smtp://mail.example.test:587?tls=required",
        ),
        (
            "smtps://user:s3cret@mail.example.test:465",
            "smtps://mail.example.test:465",
        ),
    ] {
        let mailer = Mailer::from_config(&MailConfig {
            smtp_url: Some(url.to_owned()),
            from: FROM.to_owned(),
            dir: std::env::temp_dir(),
        })
        .expect("mailer");
        assert_eq!(mailer.describe(), shown);
        assert!(!format!("{mailer:?}").contains("s3cret"));
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
