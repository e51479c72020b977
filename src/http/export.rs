//! `GET /api/export`: the documented synchronous export, streamed.
//!
//! The handler opens a database snapshot and counts the rows before it answers, so a database
//! failure is still a clean `500` in the error shape. Past that point the status line is sent
//! and rows stream from the snapshot through the shared engine into the body; if anything
//! fails mid-stream the transfer is broken off (no final chunk), so a client can never
//! mistake a partial file for a complete one.

use std::io;
use workers::metrics::InFlight;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use tracing::Instrument;
use workers::engine::{ExportError, ExportPlan, run_export};
use workers::format::{FILE_OPTION_PARAMS, FileOptions, file_name};
use workers::sink::{ChannelSink, SinkError};
use workers::{Compression, ExportFilters, ExportQuery, Format, Snapshot};

use super::AppState;
use super::error::ApiError;
use crate::auth::AuthUser;

/// Chunks (of about 64 KiB) buffered between the export and a slow client.
const BODY_CHUNKS_IN_FLIGHT: usize = 8;

/// The query parameters of `GET /api/export`.
#[derive(Debug, PartialEq)]
pub struct ExportParams {
    pub format: Format,
    pub filters: ExportFilters,
    /// `fields`, and for CSV `bom`, `delimiter`, `escape_formulas`.
    pub options: FileOptions,
}

impl ExportParams {
    /// Parses the raw query string. Unknown, repeated or invalid parameters are errors that
    /// name the parameter.
    ///
    /// Every format the engine writes is accepted (`ndjson` beyond the documented two); an
    /// unknown one gets the documented message, which names the documented two.
    pub fn parse(query: Option<&str>) -> Result<ExportParams, ApiError> {
        let mut format = None;
        let mut filters = ExportFilters::default();
        let mut options = FileOptions::default();
        let mut seen_options: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if name == "format" {
                if format.is_some() {
                    return Err(ApiError::Validation("format may be given only once".into()));
                }
                let parsed = value
                    .parse::<Format>()
                    .map_err(|()| ApiError::Validation(Format::expected(&Format::SYNC)))?;
                if !parsed.streams() {
                    return Err(ApiError::Validation(format!(
                        "format={parsed} is built whole before it is sent: request it with \
                         POST /api/exports (a background export), or use json, csv, ndjson or xlsx here"
                    )));
                }
                format = Some(parsed);
            } else if FILE_OPTION_PARAMS.contains(&&*name) {
                // `fields` may repeat (its values add up); the switches may not.
                if name != "fields" && seen_options.iter().any(|n| *n == name) {
                    return Err(ApiError::Validation(format!(
                        "{name} may be given only once"
                    )));
                }
                seen_options.push(name.to_string());
                options
                    .accept_param(&name, &value)
                    .map_err(ApiError::Validation)?;
            } else if !filters
                .accept_param(&name, &value)
                .map_err(|e| ApiError::Validation(e.message))?
            {
                return Err(ApiError::Validation(format!(
                    "unknown query parameter {:?}; accepted: format, {}, {}",
                    name.chars().take(40).collect::<String>(),
                    FILE_OPTION_PARAMS.join(", "),
                    ExportFilters::PARAMS.join(", ")
                )));
            }
        }
        filters
            .validate()
            .map_err(|e| ApiError::Validation(e.message))?;
        let format = format.unwrap_or(Format::Json);
        options.validate(format).map_err(ApiError::Validation)?;
        Ok(ExportParams {
            format,
            filters,
            options,
        })
    }
}

/// True when the client accepts a gzip-encoded body (`Accept-Encoding: gzip`, `x-gzip` or
/// `*`, with a non-zero q-value).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if coding == "*" {
                any = Some(q);
            }
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

#[tracing::instrument(name = "sync_export", skip_all, fields(format, gzip))]
#[utoipa::path(
    get,
    path = "/api/export",
    operation_id = "export_jobs",
    tag = "export",
    summary = "Download your jobs as a file",
    description = "The documented export: streamed, at most `SYNC_EXPORT_MAX_ROWS` jobs (then `X-Export-Truncated: true`), gzip when `Accept-Encoding` allows it. A failure mid-stream breaks the transfer off (no final chunk), never a short file that looks complete. For pdf or larger files use `POST /api/exports`.",
    params(
        ("format" = Option<String>, Query, description = "json (default), csv, ndjson or xlsx", example = "csv"),
        ("fields" = Option<String>, Query, description = "Comma-separated subset of the documented fields, in this order", example = "company_name,status,applied_at"),
        ("delimiter" = Option<String>, Query, description = "csv: comma (default), semicolon or tab"),
        ("bom" = Option<bool>, Query, description = "csv: start with a UTF-8 byte order mark (default false)"),
        ("escape_formulas" = Option<bool>, Query, description = "csv and xlsx: neutralise cells starting with = + - @ tab or CR (default true)"),
        ("status" = Option<String>, Query, description = "Comma-separated statuses: saved, applied, interview, offer, rejected", example = "interview,offer"),
        ("source" = Option<String>, Query, description = "Comma-separated sources (case-insensitive)"),
        ("tag" = Option<String>, Query, description = "Comma-separated tags; a job with any of them matches"),
        ("created_from" = Option<String>, Query, description = "RFC 3339 instant or YYYY-MM-DD (UTC midnight), inclusive", example = "2026-01-01"),
        ("created_to" = Option<String>, Query, description = "RFC 3339 instant or YYYY-MM-DD, exclusive"),
        ("updated_since" = Option<String>, Query, description = "Jobs updated at or after this instant"),
    ),
    responses(
        (status = 200, description = "The file, as an attachment", content(
            (crate::http::openapi::ExportFile = "application/json"),
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ), headers(
            ("Content-Disposition" = String, description = "attachment; filename=\"pipeline-jobs-YYYY-MM-DD.json\""),
            ("X-Total-Count" = u64, description = "Jobs matching the filters"),
            ("X-Export-Truncated" = bool, description = "Present (true) when the file holds fewer jobs than match"),
        )),
        (status = 400, description = "Invalid format, field, filter or option; the message names it", body = crate::http::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn export(
    State(state): State<AppState>,
    user: AuthUser,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = ExportParams::parse(query.as_deref())?;
    let gzip = accepts_gzip(&headers);
    let span = tracing::Span::current();
    span.record("format", params.format.as_str());
    span.record("gzip", gzip);

    let snapshot = Snapshot::open(
        &state.pool,
        ExportQuery {
            user_id: user.id,
            filters: params.filters,
            fields: params.options.fields_for(params.format),
            limit: state.export.max_rows,
        },
    )
    .await?;

    if let Some(reason) = workers::engine::unwritable(params.format, snapshot.exported()) {
        return Err(ApiError::Validation(reason));
    }
    let matching = snapshot.matching();
    let truncated = snapshot.exported() < matching;
    let name = file_name(snapshot.taken_at(), params.format);
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, params.format.content_type())
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::VARY, "Accept-Encoding")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header("x-total-count", matching);
    if truncated {
        response = response.header("x-export-truncated", "true");
    }
    if gzip {
        response = response.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }

    let plan = ExportPlan {
        format: params.format,
        compression: if gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        csv: params.options.csv,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(BODY_CHUNKS_IN_FLIGHT);
    let timeout = state.export.timeout;
    let metrics = state.metrics.clone();
    tokio::spawn(
        async move {
            let _in_flight = InFlight::new(&metrics);
            let mut sink = ChannelSink::new(tx);
            match tokio::time::timeout(timeout, run_export(snapshot, plan, &mut sink)).await {
                Ok(Ok(summary)) => {
                    metrics.rows(plan.format.as_str(), "sync", summary.rows);
                    tracing::info!(
                        rows = summary.rows,
                        bytes = summary.bytes,
                        bytes_sent = summary.bytes_out,
                        truncated,
                        "export streamed"
                    )
                }
                Ok(Err(ExportError::Sink(SinkError::Closed))) => {
                    tracing::info!("client closed the connection before the export ended");
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "export failed mid-stream; breaking off the transfer");
                    sink.fail(io::Error::other("export failed")).await;
                }
                Err(_) => {
                    tracing::warn!(?timeout, "export exceeded its time limit; breaking off the transfer");
                    sink.fail(io::Error::other("export timed out")).await;
                }
            }
        }
        .instrument(span),
    );

    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    response
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding() {
        assert!(gz("gzip"));
        assert!(gz("br, gzip;q=0.5"));
        assert!(gz("GZIP"));
        assert!(gz("*"));
        assert!(!gz("gzip;q=0"));
        assert!(!gz("identity"));
        assert!(!gz("gzip;q=0, *"));
        assert!(!gz("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn params() {
        let p = ExportParams::parse(Some("format=csv&status=offer")).unwrap();
        assert_eq!(p.format, Format::Csv);
        assert_eq!(ExportParams::parse(None).unwrap().format, Format::Json);
        let msg = |q: &str| ExportParams::parse(Some(q)).unwrap_err().to_string();
        assert_eq!(msg("format=xml"), r#"format must be "json" or "csv""#);
        assert_eq!(
            ExportParams::parse(Some("format=ndjson")).unwrap().format,
            Format::Ndjson
        );
        let p = ExportParams::parse(Some(
            "format=csv&fields=status,company_name&fields=id&delimiter=semicolon&bom=true&escape_formulas=false",
        ))
        .unwrap();
        assert_eq!(
            p.options.fields.as_deref(),
            Some(
                &[
                    workers::Field::Status,
                    workers::Field::CompanyName,
                    workers::Field::Id
                ][..]
            )
        );
        assert!(p.options.csv.bom && !p.options.csv.escape_formulas);
        assert!(msg("fields=salary").starts_with("fields: unknown field \"salary\""));
        assert!(msg("fields=id,id").contains("twice"));
        assert!(msg("fields=").starts_with("fields"));
        assert!(msg("format=csv&bom=yes").starts_with("bom"));
        assert!(msg("format=csv&bom=true&bom=false").contains("only once"));
        assert!(msg("format=csv&delimiter=pipe").starts_with("delimiter"));
        assert!(msg("format=json&delimiter=tab").contains("only to format=csv"));
        assert_eq!(msg("format="), r#"format must be "json" or "csv""#);
        assert!(msg("format=pdf").contains("POST /api/exports"));
        assert!(msg("format=csv&format=json").contains("only once"));
        assert!(msg("limit=5").contains("\"limit\""));
        assert!(msg("status=hired").starts_with("status"));
    }
}
