//! The emailed download link in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the real front, PostgreSQL queue, worker and s3s-fs.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `infra/test.sh` installs them). Screenshots go to
//! `$CARGO_TARGET_TMPDIR/landing-page.png` and `landing-page-expired.png`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use workers::links::{LinkPurpose, LinkSigner};

use crate::helpers::{LINK_SECRET, TestApp, free_port, link_in};

/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        // The flags this machine needs: no sandbox as root, and no background connections
        // to Google, which a closed network refuses.
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=900,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
            downloads,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            response["value"].get("error").is_none(),
            "WebDriver {path}: {response}"
        );
        response["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn title(&self) -> String {
        let title = self.command(reqwest::Method::GET, "/title", None).await;
        title.as_str().unwrap().to_owned()
    }

    /// Waits (at most 10 s) for the page a click leads to: a click can return before the
    /// navigation it starts has loaded the next page.
    async fn wait_title(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let title = self.title().await;
            if title == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "title {title:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching a CSS selector.
    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self
            .command(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await;
        text.as_str().unwrap().to_owned()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let element = self.find(css).await;
        let value = self
            .command(
                reqwest::Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Waits for a finished download: Chromium writes a hidden temporary file, then
    /// `NAME.crdownload`, and renames it to `NAME` once it is complete.
    async fn downloaded(&self) -> (String, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(self.downloads.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let finished = |f: &PathBuf| {
                !f.file_name().unwrap().to_string_lossy().starts_with('.')
                    && f.extension().is_none_or(|e| e != "crdownload")
            };
            if let [file] = files.as_slice()
                && finished(file)
            {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                return (name, std::fs::read(file).unwrap());
            }
            assert!(Instant::now() < deadline, "no download: {files:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: ending the session closes Chromium; killing the driver ends the rest.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { reqwest::Client::new().delete(url).send().await })
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn download_link(app: &TestApp, id: &str, valid_for: chrono::Duration) -> String {
    let signer = LinkSigner::new(LINK_SECRET.as_bytes());
    let token = signer.sign(
        id.parse().unwrap(),
        chrono::Utc::now() + valid_for,
        LinkPurpose::Download,
    );
    app.url(&format!("/d/{token}"))
}

#[tokio::test]
async fn the_download_page_shows_the_file_and_its_button_downloads_it_in_chromium() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 12).await;
    let id = app
        .start_export_id(
            &user.token,
            json!({"format": "csv", "notify": {"email": true}}),
        )
        .await;
    let done = app.wait_finished(&user.token, &id).await;
    assert_eq!(done["status"], "succeeded");
    let file_name = done["file_name"].as_str().unwrap().to_owned();

    // The link as the email has it.
    let mails = app.wait_emails(&user.email, 1).await;
    let link = link_in(mails[0]["text"].as_str().unwrap(), "/d/");

    // What a program gets: the redirect, and through it the file.
    let hop = app.client.get(&link).send().await.unwrap();
    assert_eq!(hop.status(), 302);
    let presigned = hop.headers()["location"].to_str().unwrap().to_owned();
    let stored = reqwest::get(&presigned)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let browser = Browser::start().await;
    browser.open(&link).await;
    browser.wait_title("Your export is ready").await;
    let page = browser.text("body").await;
    for fact in [
        file_name.as_str(),
        "CSV, gzip-compressed",
        "12 jobs",
        "Available",
        "until",
    ] {
        assert!(page.contains(fact), "{fact:?} not on the page:\n{page}");
    }
    let size = done["byte_size"].as_u64().unwrap();
    assert!(page.contains(&workers::mail::human_size(size)), "{page}");
    assert_eq!(browser.text("#download").await, "Download");
    let shot = browser.screenshot("landing-page").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 5_000, "{shot:?}");

    browser.click("#download").await;
    let (name, bytes) = browser.downloaded().await;
    assert_eq!(name, file_name);
    assert_eq!(bytes, stored.to_vec(), "the browser saved the stored file");

    // A tampered link and an expired one get pages that say what to do next.
    let token = link.rsplit('/').next().unwrap();
    let last = if token.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &link[..link.len() - 1]);
    browser.open(&tampered).await;
    browser.wait_title("This link is not valid").await;
    assert!(browser.text("body").await.contains("request a new export"));
    browser
        .open(&download_link(&app, &id, chrono::Duration::seconds(-5)))
        .await;
    browser.wait_title("This link has expired").await;
    browser.screenshot("landing-page-expired").await;
    // A cancelled or deleted export's link: gone, with a page saying so.
    let deleted = app.delete_export(&user.token, &id).await;
    assert!(deleted.status().is_success());
    browser.open(&link).await;
    browser.wait_title("This file is no longer available").await;
}

#[tokio::test]
async fn a_backups_page_names_its_schedule_next_run_and_pause_link() {
    let app = TestApp::spawn_with_workers(|_| {}).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 3).await;
    let schedule = app
        .new_schedule(
            &user.token,
            json!({
                "name": "Friday backup",
                "cadence": {"weekly": {"weekday": "friday", "time": "18:00"}},
                "timezone": "Europe/Berlin",
                "notify": {"email": false},
            }),
        )
        .await;
    let schedule_id = schedule["id"].as_str().unwrap();
    assert_eq!(app.run_now(&user.token, schedule_id).await.status(), 202);
    let runs = app.wait_runs_finished(&user.token, schedule_id, 1).await;
    let export_id = runs[0]["export_id"].as_str().unwrap();

    let browser = Browser::start().await;
    browser
        .open(&download_link(&app, export_id, chrono::Duration::days(30)))
        .await;
    browser.wait_title("Your backup is ready").await;
    let page = browser.text("body").await;
    for fact in [
        "Friday backup",
        "every Friday at 18:00",
        "(Europe/Berlin)",
        "The next backup runs Friday,",
        "newest 4 backups",
        "3 jobs",
    ] {
        assert!(page.contains(fact), "{fact:?} not on the page:\n{page}");
    }
    // The pause link opens the pause page; its button pauses the schedule.
    assert!(browser.attribute("#pause", "href").await.contains("/p/"));
    browser.click("#pause").await;
    browser.wait_title("Pause these backups?").await;
    assert_eq!(
        app.get_schedule(&user.token, schedule_id).await["paused"],
        false
    );
    browser.click("button[type=submit]").await;
    browser.wait_title("Backups paused").await;
    assert_eq!(
        app.get_schedule(&user.token, schedule_id).await["paused"],
        true
    );
}

#[tokio::test]
async fn the_docs_page_renders_every_operation_offline_in_chromium() {
    let app = TestApp::spawn().await;
    let browser = Browser::start().await;
    browser.open(&app.url("/docs")).await;
    // Swagger UI renders from its scripts, served by this binary: wait for the operations.
    let deadline = Instant::now() + Duration::from_secs(20);
    let operations = loop {
        let found = browser
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": ".opblock"})),
            )
            .await;
        let n = found.as_array().map_or(0, Vec::len);
        if n >= 21 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(operations >= 21, "{operations} operations rendered");
    let page = browser.text("body").await;
    assert!(page.contains("pipeline-export"), "{page}");
    assert!(page.contains("/api/export-schedules/{id}/runs"), "{page}");
    browser.screenshot("docs-page").await;
}
