//! The signed links in emails.
//!
//! `GET /d/{token}` checks the signature and expiry, then the export's current state, and
//! redirects to a fresh presigned URL (or, with local storage, serves the file).
//!
//! `GET /p/{token}` shows a backup schedule and a button to pause it; the button `POST`s to
//! the same URL, which pauses it. The GET changes nothing, so mail scanners that follow
//! links cannot pause anyone's backups.
//!
//! People who click a dead link get a short HTML page saying why, never a bare error.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use workers::exports::{self, ExportStatus};
use workers::links::{Link, LinkError, LinkPurpose};
use workers::mail::escape_html;
use workers::schedules::{self, ScheduleRecord};

use super::AppState;

pub async fn follow(State(state): State<AppState>, Path(token): Path<String>) -> Response {
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
        Ok(None) => return not_found(),
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
             <form method=\"post\"><button type=\"submit\" style=\"padding:.6rem 1.2rem;font-size:1rem;\
             background:#1f6feb;color:#fff;border:0;border-radius:6px;cursor:pointer\">Pause backups</button></form>\
             <p style=\"color:#555\">Backups already made stay available. You can resume the schedule in PIPELINE at any time.</p>",
            cadence = escape_html(&schedule.cadence.describe()),
            tz = escape_html(&schedule.timezone),
            next = escape_html(&next),
        ),
    )
}

/// `POST /p/{token}`: pauses the schedule.
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

/// A small page around `content`, which the caller has escaped.
fn page_html(status: StatusCode, title: &str, content: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #222\">\
         <h1 style=\"font-size: 1.4rem\">{title}</h1>{content}\
         <p style=\"color: #777; font-size: .9rem\">PIPELINE export</p></body></html>",
        title = escape_html(title),
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
