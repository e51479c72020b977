//! The sync endpoint's query string and a background export's `filters` body, as any client
//! could send them. Input: a query string, then (after the first newline) a JSON body.
//!
//! Holds: no panic; a refusal is a `400 VALIDATION_ERROR` with a message; accepted filters
//! validate, read back the same once stored as JSON (as the worker reads them) and mean the
//! same sent either way (as a body and as a query string); the SQL text depends only on which
//! filters are set, never on their values, and binds one value per placeholder.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use pipeline_export::http::{ApiError, ExportParams, parse_filters};
use workers::format::FileOptions;
use workers::{ExportFilters, ExportQuery, Format, Status};

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    match ExportParams::parse(Some(&String::from_utf8_lossy(query))) {
        Ok(params) => {
            check_options(&params.options, params.format);
            check_filters(&params.filters, &params.options.fields_for(params.format));
        }
        Err(e) => check_refusal(&e),
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        match parse_filters(&map) {
            Ok(filters) => check_filters(&filters, Format::Json.default_fields()),
            Err(e) => check_refusal(&e),
        }
    }
});

fn check_refusal(e: &ApiError) {
    assert_eq!(e.code(), "VALIDATION_ERROR", "{e:?}");
    assert!(!e.to_string().is_empty());
}

fn check_options(options: &FileOptions, format: Format) {
    options.validate(format).expect("accepted options validate");
    let stored = serde_json::to_string(options).unwrap();
    let back: FileOptions = serde_json::from_str(&stored).expect("stored options read back");
    assert_eq!(&back, options);
}

fn check_filters(filters: &ExportFilters, fields: &[workers::Field]) {
    filters.validate().expect("accepted filters validate");

    // Stored with the export, read back by the worker.
    let stored = serde_json::to_string(filters).unwrap();
    let back: ExportFilters = serde_json::from_str(&stored).expect("stored filters read back");
    assert_eq!(&back, filters, "{stored}");

    // The stored form sent as a request body means the same filters.
    let serde_json::Value::Object(body) = serde_json::to_value(filters).unwrap() else {
        panic!("filters serialise to an object");
    };
    let again = parse_filters(&body).expect("the same filters as a body are accepted");
    assert_eq!(&again, filters, "{stored}");

    // And as a query string.
    let mut query = form_urlencoded::Serializer::new(String::new());
    for status in &filters.status {
        query.append_pair("status", status.as_str());
    }
    for (name, values) in [("source", &filters.source), ("tag", &filters.tag)] {
        for value in values {
            query.append_pair(name, value);
        }
    }
    for (name, time) in [
        ("created_from", filters.created_from),
        ("created_to", filters.created_to),
        ("updated_since", filters.updated_since),
    ] {
        if let Some(t) = time {
            query.append_pair(name, &workers::timestamp::to_rfc3339(&t));
        }
    }
    let query = query.finish();
    let again =
        ExportParams::parse(Some(&query)).expect("the same filters as a query are accepted");
    assert_eq!(&again.filters, filters, "{query}");

    // The statement's text is the same with any other values of the same filters.
    let statement_of = |filters: ExportFilters| ExportQuery {
        user_id: uuid::Uuid::nil(),
        filters,
        fields: fields.to_vec(),
        limit: None,
    };
    let (sql, binds) = statement_of(filters.clone()).select_statement();
    let some = |set: bool| if set { vec!["x".to_owned()] } else { vec![] };
    let epoch = Utc.timestamp_opt(0, 0).unwrap();
    let other = ExportFilters {
        status: if filters.status.is_empty() {
            vec![]
        } else {
            vec![Status::Saved]
        },
        source: some(!filters.source.is_empty()),
        tag: some(!filters.tag.is_empty()),
        created_from: filters.created_from.map(|_| epoch),
        created_to: filters.created_to.map(|_| epoch),
        updated_since: filters.updated_since.map(|_| epoch),
    };
    assert_eq!(sql, statement_of(other).select_statement().0);
    assert_eq!(sql.matches('$').count(), binds, "{sql}");
    for n in 1..=binds {
        assert!(sql.contains(&format!("${n}")), "{sql}");
    }
}
