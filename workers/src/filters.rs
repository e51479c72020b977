//! Filters that narrow an export. Every filter is optional and they combine with AND.
//!
//! - `status`, `source`: the job matches any of the given values (repeat the parameter or
//!   separate values with commas).
//! - `tag`: the job carries every given tag.
//! - `created_from` (inclusive), `created_to` (exclusive), `updated_since` (inclusive):
//!   RFC 3339 instants, or `YYYY-MM-DD` meaning midnight UTC of that day.
//!
//! Filters are always applied as bound parameters, never spliced into SQL.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Most values one list filter may carry, and the longest value; bounds the query's size.
pub const MAX_VALUES: usize = 100;
pub const MAX_VALUE_LEN: usize = 200;

/// An application's status, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Saved,
    Applied,
    Interview,
    Offer,
    Rejected,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Saved,
        Status::Applied,
        Status::Interview,
        Status::Offer,
        Status::Rejected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Saved => "saved",
            Status::Applied => "applied",
            Status::Interview => "interview",
            Status::Offer => "offer",
            Status::Rejected => "rejected",
        }
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filter value that cannot be used; names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub param: String,
    pub message: String,
}

impl FilterError {
    fn new(param: &str, message: impl Into<String>) -> Self {
        FilterError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// The filters of one export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFilters {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_to: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_since: Option<DateTime<Utc>>,
}

impl ExportFilters {
    /// The names of the filter parameters.
    pub const PARAMS: [&'static str; 6] = [
        "status",
        "source",
        "tag",
        "created_from",
        "created_to",
        "updated_since",
    ];

    /// Takes one `name=value` parameter. Returns `Ok(false)` when `name` is not a filter, so
    /// the caller can reject unknown parameters with its own context.
    pub fn accept_param(&mut self, name: &str, value: &str) -> Result<bool, FilterError> {
        match name {
            "status" => {
                for item in list_items(name, value, self.status.len())? {
                    let status = item.parse::<Status>().map_err(|()| {
                        FilterError::new(
                            name,
                            format!(
                                "status must be one of saved, applied, interview, offer, rejected (got {:?})",
                                truncate(item)
                            ),
                        )
                    })?;
                    if !self.status.contains(&status) {
                        self.status.push(status);
                    }
                }
            }
            "source" => {
                let items = list_items(name, value, self.source.len())?;
                push_unique(&mut self.source, items);
            }
            "tag" => {
                let items = list_items(name, value, self.tag.len())?;
                push_unique(&mut self.tag, items);
            }
            "created_from" => set_once(&mut self.created_from, name, value)?,
            "created_to" => set_once(&mut self.created_to, name, value)?,
            "updated_since" => set_once(&mut self.updated_since, name, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the filters as a whole (a date range must not be empty). Also re-checks what
    /// [`accept_param`](Self::accept_param) checks, for filters that arrived another way
    /// (a JSON body, a stored export).
    pub fn validate(&self) -> Result<(), FilterError> {
        for (name, values) in [("source", &self.source), ("tag", &self.tag)] {
            if values.len() > MAX_VALUES {
                return Err(too_many(name));
            }
            for v in values {
                check_item(name, v)?;
            }
        }
        if self.status.len() > MAX_VALUES {
            return Err(too_many("status"));
        }
        if let (Some(from), Some(to)) = (self.created_from, self.created_to)
            && from >= to
        {
            return Err(FilterError::new(
                "created_to",
                "created_to must be later than created_from (created_from is inclusive, created_to exclusive)",
            ));
        }
        Ok(())
    }

    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == ExportFilters::default()
    }
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant (any offset, kept as UTC).
/// Years are 1 to 9999: what both formats mean, and well inside PostgreSQL's range.
pub fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    let value = value.trim();
    let t = match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(day) => day.and_hms_opt(0, 0, 0)?.and_utc(),
        Err(_) => DateTime::parse_from_rfc3339(value)
            .ok()?
            .with_timezone(&Utc),
    };
    (1..=9999).contains(&t.year()).then_some(t)
}

fn set_once(slot: &mut Option<DateTime<Utc>>, name: &str, value: &str) -> Result<(), FilterError> {
    if slot.is_some() {
        return Err(FilterError::new(
            name,
            format!("{name} may be given only once"),
        ));
    }
    let t = parse_instant(value).ok_or_else(|| {
        FilterError::new(
            name,
            format!(
                "{name} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp such as 2026-03-01T10:30:00Z (got {:?})",
                truncate(value)
            ),
        )
    })?;
    *slot = Some(t);
    Ok(())
}

fn list_items<'v>(name: &str, value: &'v str, already: usize) -> Result<Vec<&'v str>, FilterError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if already + items.len() > MAX_VALUES {
        return Err(too_many(name));
    }
    for item in &items {
        check_item(name, item)?;
    }
    Ok(items)
}

fn check_item(name: &str, item: &str) -> Result<(), FilterError> {
    if item.is_empty() {
        return Err(FilterError::new(name, format!("{name} must not be empty")));
    }
    if item.len() > MAX_VALUE_LEN {
        return Err(FilterError::new(
            name,
            format!("{name} values are at most {MAX_VALUE_LEN} bytes long"),
        ));
    }
    Ok(())
}

fn too_many(name: &str) -> FilterError {
    FilterError::new(name, format!("{name} takes at most {MAX_VALUES} values"))
}

fn push_unique(list: &mut Vec<String>, items: Vec<&str>) {
    for item in items {
        if !list.iter().any(|v| v == item) {
            list.push(item.to_owned());
        }
    }
}

/// Echoes a bad value back at most 40 characters long.
fn truncate(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &value[..i]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn parse(pairs: &[(&str, &str)]) -> Result<ExportFilters, FilterError> {
        let mut f = ExportFilters::default();
        for (k, v) in pairs {
            assert!(f.accept_param(k, v)?, "{k} is a filter");
        }
        f.validate()?;
        Ok(f)
    }

    #[test]
    fn lists_accept_repeats_and_commas() {
        let f = parse(&[
            ("status", "applied, interview"),
            ("status", "offer"),
            ("status", "applied"),
            ("tag", "a"),
            ("tag", "b,a"),
        ])
        .unwrap();
        assert_eq!(
            f.status,
            vec![Status::Applied, Status::Interview, Status::Offer]
        );
        assert_eq!(f.tag, vec!["a", "b"]);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let e = parse(&[("status", "hired")]).unwrap_err();
        assert_eq!(e.param, "status");
        assert!(
            e.message
                .contains("saved, applied, interview, offer, rejected")
        );
        assert_eq!(parse(&[("source", "a,,b")]).unwrap_err().param, "source");
        assert_eq!(
            parse(&[("created_from", "yesterday")]).unwrap_err().param,
            "created_from"
        );
        assert_eq!(
            parse(&[
                ("updated_since", "2026-01-01"),
                ("updated_since", "2026-01-02")
            ])
            .unwrap_err()
            .param,
            "updated_since"
        );
        assert_eq!(
            parse(&[("created_from", "2026-02-01"), ("created_to", "2026-01-01")])
                .unwrap_err()
                .param,
            "created_to"
        );
    }

    #[test]
    fn unknown_parameters_are_left_to_the_caller() {
        let mut f = ExportFilters::default();
        assert_eq!(f.accept_param("user_id", "x"), Ok(false));
    }

    #[test]
    fn dates_and_instants() {
        assert_eq!(
            parse_instant("2026-03-01"),
            Some(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(
            parse_instant("2026-03-01T12:00:00+02:00"),
            Some(Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap())
        );
        assert_eq!(parse_instant("2026-02-30"), None);
        assert_eq!(parse_instant("-5000-01-01"), None);
        assert_eq!(parse_instant("+12026-01-01"), None);
        assert_eq!(parse_instant("0000-01-01"), None);
        assert!(parse_instant("0001-01-01").is_some());
        assert!(parse_instant("9999-12-31T23:59:59Z").is_some());
        assert_eq!(parse_instant("1'; DROP TABLE jobs; --"), None);
    }

    #[test]
    fn limits_bound_the_query() {
        let many = vec!["x"; MAX_VALUES + 1].join(",");
        assert_eq!(parse(&[("tag", &many)]).unwrap_err().param, "tag");
        let long = "x".repeat(MAX_VALUE_LEN + 1);
        assert_eq!(parse(&[("source", &long)]).unwrap_err().param, "source");
    }

    #[test]
    fn serde_form_is_compact_and_strict() {
        let f = parse(&[("status", "offer"), ("created_from", "2026-01-01")]).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"status":["offer"],"created_from":"2026-01-01T00:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<ExportFilters>(&json).unwrap(), f);
        assert!(serde_json::from_str::<ExportFilters>(r#"{"user_id":"x"}"#).is_err());
    }
}
