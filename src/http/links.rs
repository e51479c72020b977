//! The signed links in emails.
//!
//! `GET /d/{token}` checks the signature and expiry, then the export's current state. A
//! browser (an `Accept` that names `text/html`) gets a small page first: the file's name,
//! format, size, number of jobs and when it stops being available, a Download button, and for
//! a scheduled backup its schedule, next run and a pause link. The button is
//! `/d/{token}?download`, which like any other client's request redirects to a fresh presigned
//! URL (or, with local storage, serves the file): a page left open for an hour still
//! downloads, since its button never holds a presigned URL that could have expired.
//!
//! `GET /p/{token}` shows a backup schedule and a button to pause it; the button `POST`s to
//! the same URL, which pauses it. The GET changes nothing, so mail scanners that follow
//! links cannot pause anyone's backups.
//!
//! People who click a dead link get a short HTML page saying why, never a bare error.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use workers::exports::ExportRecord;
use workers::exports::{self, ExportStatus};
use workers::links::{Link, LinkError, LinkPurpose};
use workers::mail::{count_jobs, describe_format, escape_html, human_size, readable_time};
use workers::schedules::{self, ScheduleRecord};

use super::AppState;

#[utoipa::path(
    get,
    path = "/d/{token}",
    operation_id = "follow_download_link",
    tag = "links",
    summary = "An emailed download link",
    description = "A browser (`Accept` naming `text/html`) gets a page with the file's facts and a Download button; any other client, or `?download`, a `302` to a fresh presigned URL (local storage: the file).",
    params(
        ("token" = String, Path, description = "The signed token from the email"),
        ("download" = Option<String>, Query, description = "Present: skip the page and download"),
    ),
    responses(
        (status = 200, description = "The download page; with local storage and ?download, the file itself (its own Content-Type)", content_type = "text/html"),
        (status = 302, description = "To the file", headers(("Location" = String, description = "A presigned URL"))),
        (status = 404, description = "Tampered link, or the export was deleted (a page saying what to do)", content_type = "text/html"),
        (status = 410, description = "Expired link, or the export was cancelled, failed or expired", content_type = "text/html"),
        (status = 503, description = "The database or storage does not answer (a page asking to try again)", content_type = "text/html"),
    ),
)]
pub async fn follow(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let now = Utc::now();
    let link = match state.links.verify(&token, now) {
        Ok(link) if link.purpose == LinkPurpose::Download => link,
        Ok(_) | Err(LinkError::Invalid) => return not_found(),
        Err(LinkError::Expired) => {
            return page(
                StatusCode::GONE,
                "This link has expired",
                "Download links are valid for a limited time. Request a new export from PIPELINE to get a fresh link.",
            );
        }
    };
    let record = match exports::get_any(&state.pool, link.id).await {
        Ok(Some(record)) => record,
        // A link this service signed, to an export its owner deleted.
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "This file is no longer available",
                "The export was deleted. Request a new export from PIPELINE.",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "loading an export for a download link");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment",
                "The download is temporarily unavailable.",
            );
        }
    };
    let Some(key) = record.downloadable_key(now) else {
        let reason = match record.status {
            ExportStatus::Cancelled => "This export was cancelled.",
            ExportStatus::Failed => "This export failed, so there is no file to download.",
            _ => "This export's file has been deleted after its retention period.",
        };
        return page(
            StatusCode::GONE,
            "This file is no longer available",
            &format!("{reason} Request a new export from PIPELINE."),
        );
    };
    let download = query
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "download"));
    if !download && wants_html(&headers) {
        return landing(&state, &token, &link, &record).await;
    }
    let ttl = state.background.download_url_ttl;
    match state.storage.presign_get(key, ttl).await {
        Ok(Some(url)) => return super::found(&url),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "presigning a download");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment",
                "The download is temporarily unavailable.",
            );
        }
    }
    // Local storage: this service serves the file itself.
    match state.storage.read(key).await {
        Ok(object) => {
            let mut response = Response::new(Body::from_stream(object));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(record.content_type()),
            );
            if let Ok(v) = HeaderValue::from_str(&record.content_disposition()) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            if let Some(size) = record.byte_size {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a local export file");
            page(
                StatusCode::GONE,
                "This file is no longer available",
                "Request a new export from PIPELINE.",
            )
        }
    }
}

/// Whether the client reads HTML (a browser), rather than following a redirect (curl, a
/// download manager, a mail scanner that wants the file).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// The page a browser sees first: what the file is, and a button that downloads it.
async fn landing(state: &AppState, token: &str, link: &Link, record: &ExportRecord) -> Response {
    let schedule = match record.schedule_id {
        None => None,
        Some(id) => match schedules::get_any(&state.pool, id).await {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!(error = %e, "loading a backup's schedule for its download page");
                return unavailable();
            }
        },
    };
    // The file stays until the earlier of the link's and the export's expiry; a backup its
    // schedule keeps has no expiry of its own.
    let until = record
        .expires_at
        .map_or(link.expires_at, |t| t.min(link.expires_at));
    let mut facts = vec![
        ("File", escape_html(&record.file_name)),
        (
            "Format",
            escape_html(&describe_format(
                record.format.as_str(),
                record.compression.as_str(),
            )),
        ),
    ];
    if let Some(size) = record.byte_size {
        facts.push(("Size", human_size(size.max(0) as u64)));
    }
    if let Some(rows) = record.row_count {
        facts.push(("Jobs", count_jobs(rows.max(0) as u64)));
    }
    if let Some(at) = record.finished_at {
        facts.push(("Made", readable_time(at)));
    }
    let available = match (&schedule, record.expires_at) {
        (Some(s), None) => format!(
            "while it is among the newest {} backups of this schedule (this link works until {})",
            s.keep_last,
            readable_time(until)
        ),
        _ => format!("until {}", readable_time(until)),
    };
    facts.push(("Available", escape_html(&available)));
    let rows: String = facts
        .iter()
        .map(|(name, value)| format!("<tr><th scope=\"row\">{name}</th><td>{value}</td></tr>"))
        .collect();
    let mut content = format!(
        "<table class=\"facts\">{rows}</table>\
         <p><a id=\"download\" class=\"button\" href=\"/d/{token}?download\">Download</a></p>",
        token = escape_html(token),
    );
    let title = match &schedule {
        None => "Your export is ready",
        Some(s) => {
            let name = escape_html(&s.name);
            let cadence = escape_html(&format!("{} ({})", s.cadence.describe(), s.timezone));
            content.push_str(&format!(
                "<h2>Backup schedule</h2><p id=\"schedule\">This is a backup made by your schedule <strong>{name}</strong>, which runs {cadence}.</p>"
            ));
            match s.next_run() {
                Some(next) => {
                    let pause = schedules::pause_token(&state.links, s.id, state.clock.now());
                    content.push_str(&format!(
                        "<p>The next backup runs {next}.</p>\
                         <p><a id=\"pause\" href=\"/p/{pause}\">Pause these backups</a></p>",
                        next = escape_html(&s.readable_local(next)),
                        pause = escape_html(&pause),
                    ));
                }
                None => content.push_str(
                    "<p>The schedule is paused: no further backups run until you resume it in PIPELINE.</p>",
                ),
            }
            "Your backup is ready"
        }
    };
    page_html(StatusCode::OK, title, &content)
}

/// The schedule a pause link names, or the page to show instead.
async fn pause_link(state: &AppState, token: &str) -> Result<(Link, ScheduleRecord), Response> {
    let link = match state.links.verify(token, Utc::now()) {
        Ok(link) if link.purpose == LinkPurpose::PauseSchedule => link,
        Ok(_) | Err(LinkError::Invalid) => return Err(not_found()),
        Err(LinkError::Expired) => {
            return Err(page(
                StatusCode::GONE,
                "This link has expired",
                "Pause your backups from PIPELINE's settings, or use the link in a more recent backup email.",
            ));
        }
    };
    match schedules::get_any(&state.pool, link.id).await {
        Ok(Some(schedule)) => Ok((link, schedule)),
        Ok(None) => Err(page(
            StatusCode::NOT_FOUND,
            "This backup schedule no longer exists",
            "It was deleted, so no further backups will run. There is nothing to pause.",
        )),
        Err(e) => {
            tracing::error!(error = %e, "loading a schedule for a pause link");
            Err(unavailable())
        }
    }
}

/// `GET /p/{token}`: what the schedule is, and a button that pauses it.
#[utoipa::path(
    get,
    path = "/p/{token}",
    operation_id = "show_pause_page",
    tag = "links",
    summary = "An emailed pause link: the schedule and a Pause button",
    description = "Changes nothing (mail scanners follow links); the button POSTs to the same URL.",
    params(
        ("token" = String, Path, description = "The signed token from the email"),
    ),
    responses(
        (status = 200, description = "The pause page", content_type = "text/html"),
        (status = 404, description = "Tampered link, or the schedule was deleted", content_type = "text/html"),
        (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 503, description = "The database does not answer (a page asking to try again)", content_type = "text/html"),
    ),
)]
pub async fn pause_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (_, schedule) = match pause_link(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let name = escape_html(&schedule.name);
    if schedule.paused {
        return page_html(
            StatusCode::OK,
            "These backups are already paused",
            &format!(
                "<p>The backup schedule <strong>{name}</strong> is paused: no further backups run until you resume it in PIPELINE.</p>"
            ),
        );
    }
    let next = schedule
        .next_run()
        .map(|at| schedule.readable_local(at))
        .unwrap_or_default();
    page_html(
        StatusCode::OK,
        "Pause these backups?",
        &format!(
            "<p>The backup schedule <strong>{name}</strong> runs {cadence} ({tz}). The next backup runs {next}.</p>\
             <form method=\"post\"><button type=\"submit\">Pause backups</button></form>\
             <p style=\"color:#555\">Backups already made stay available. You can resume the schedule in PIPELINE at any time.</p>",
            cadence = escape_html(&schedule.cadence.describe()),
            tz = escape_html(&schedule.timezone),
            next = escape_html(&next),
        ),
    )
}

/// `POST /p/{token}`: pauses the schedule.
#[utoipa::path(
    post,
    path = "/p/{token}",
    operation_id = "pause_schedule",
    tag = "links",
    summary = "Pause the schedule of a pause link",
    params(
        ("token" = String, Path, description = "The signed token from the email"),
    ),
    responses(
        (status = 200, description = "Paused", content_type = "text/html"),
        (status = 404, description = "Tampered link, or the schedule was deleted", content_type = "text/html"),
        (status = 410, description = "Expired link", content_type = "text/html"),
        (status = 503, description = "The database does not answer (a page asking to try again)", content_type = "text/html"),
    ),
)]
pub async fn pause(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let (link, _) = match pause_link(&state, &token).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match schedules::pause_any(&state.pool, link.id).await {
        Ok(Some(schedule)) => {
            tracing::info!(schedule_id = %schedule.id, "export schedule paused by its email link");
            page_html(
                StatusCode::OK,
                "Backups paused",
                &format!(
                    "<p>The backup schedule <strong>{}</strong> is paused: no further backups run until you resume it in PIPELINE.</p>",
                    escape_html(&schedule.name)
                ),
            )
        }
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            "This backup schedule no longer exists",
            "It was deleted, so no further backups will run. There is nothing to pause.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "pausing a schedule from its link");
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "The service is temporarily unavailable.",
    )
}

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "Check that you copied the whole link from the email, or request a new export from PIPELINE.",
    )
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    page_html(status, title, &format!("<p>{}</p>", escape_html(message)))
}

/// The pages' look: small, readable, no external assets.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222;line-height:1.45}\
h1{font-size:1.4rem}h2{font-size:1.05rem;margin-top:2rem}\
table.facts{border-collapse:collapse;margin:1rem 0;width:100%}\
table.facts th{text-align:left;font-weight:600;color:#555;padding:.35rem 1rem .35rem 0;vertical-align:top;white-space:nowrap}\
table.facts td{padding:.35rem 0;overflow-wrap:anywhere}\
a.button,button{display:inline-block;padding:.6rem 1.3rem;font-size:1rem;background:#1f6feb;color:#fff;border:0;border-radius:6px;cursor:pointer;text-decoration:none}\
a.button:hover,button:hover{background:#1a5fd0}\
footer{color:#777;font-size:.9rem;margin-top:2.5rem}";

/// A small page around `content`, which the caller has escaped.
fn page_html(status: StatusCode, title: &str, content: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><h1>{title}</h1>{content}<footer>PIPELINE export</footer></body></html>",
        title = escape_html(title),
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
