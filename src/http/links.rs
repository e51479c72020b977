//! `GET /d/{token}`: the link in emails. It checks the signature and expiry, then the
//! export's current state, and redirects to a fresh presigned URL (or, with local storage,
//! serves the file). People who click a dead link get a short HTML page saying why, never a
//! bare error.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use workers::exports::{self, ExportStatus};
use workers::links::LinkError;
use workers::mail::escape_html;

use super::AppState;

pub async fn follow(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = Utc::now();
    let link = match state.links.verify(&token, now) {
        Ok(link) => link,
        Err(LinkError::Expired) => {
            return page(
                StatusCode::GONE,
                "This link has expired",
                "Download links are valid for a limited time. Request a new export from PIPELINE to get a fresh link.",
            );
        }
        Err(LinkError::Invalid) => return not_found(),
    };
    let record = match exports::get_any(&state.pool, link.export_id).await {
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

fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "Check that you copied the whole link from the email, or request a new export from PIPELINE.",
    )
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem; color: #222\">\
         <h1 style=\"font-size: 1.4rem\">{title}</h1><p>{message}</p>\
         <p style=\"color: #777; font-size: .9rem\">PIPELINE export</p></body></html>",
        title = escape_html(title),
        message = escape_html(message),
    );
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
