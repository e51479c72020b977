//! File formats. A format is a [`RowWriter`]: it appends bytes for the file's head, each row,
//! and the file's tail to a buffer that the engine drains. Adding a format means adding a
//! variant here and a writer beside `csv.rs` and `json.rs`.

mod csv;
mod json;
mod ndjson;
pub mod pdf;
mod xlsx;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use self::csv::{CsvOptions, CsvWriter, Delimiter};
pub use self::json::JsonWriter;
pub use self::ndjson::NdjsonWriter;
pub use self::pdf::{MAX_ROWS as PDF_MAX_ROWS, PdfWriter};
pub use self::xlsx::{MAX_ROWS as XLSX_MAX_ROWS, XlsxWriter};
use crate::filters::ExportFilters;
use crate::job::{Field, JobRecord};

/// What a file says about itself before its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportMeta {
    /// When the export's snapshot was taken.
    pub exported_at: DateTime<Utc>,
    /// How many jobs the file contains.
    pub total: u64,
}

/// Writes one export file, row by row, into a caller-owned buffer.
pub trait RowWriter: Send {
    fn begin(&mut self, out: &mut Vec<u8>, meta: &ExportMeta);
    fn row(&mut self, out: &mut Vec<u8>, job: &JobRecord);
    fn finish(&mut self, out: &mut Vec<u8>);

    /// A writer that builds its file aside (XLSX) hands it over here, after `finish`; the
    /// engine streams it. Blocking: the engine calls it on the blocking pool.
    fn take_file(&mut self) -> std::io::Result<Option<std::fs::File>> {
        Ok(None)
    }
}

/// A whole file in memory: `begin`, every row, `finish`. For the writers' tests and the fuzz
/// targets; the engine streams instead.
#[cfg(any(test, fuzzing))]
pub fn write_whole(writer: &mut dyn RowWriter, meta: &ExportMeta, jobs: &[JobRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    writer.begin(&mut out, meta);
    for job in jobs {
        writer.row(&mut out, job);
    }
    writer.finish(&mut out);
    out
}

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Ndjson,
    Xlsx,
    Pdf,
}

impl Format {
    /// Every format the engine writes (background exports offer them all).
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Csv,
        Format::Ndjson,
        Format::Xlsx,
        Format::Pdf,
    ];
    /// The formats of the documented synchronous endpoint.
    pub const SYNC: [Format; 2] = [Format::Json, Format::Csv];

    /// Whether the synchronous endpoint serves this format. A PDF report is built whole
    /// before its first byte and takes seconds for thousands of jobs: background only.
    pub const fn streams(self) -> bool {
        !matches!(self, Format::Pdf)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Xlsx => "xlsx",
            Format::Pdf => "pdf",
        }
    }

    /// How a background export of this format is compressed when the request does not say:
    /// gzip, except for formats that are compressed inside already (an xlsx is a zip
    /// archive, a pdf's streams are deflated), where gzip would gain little and make the
    /// file harder to open.
    pub const fn default_compression(self) -> crate::Compression {
        match self {
            Format::Xlsx | Format::Pdf => crate::Compression::None,
            Format::Json | Format::Csv | Format::Ndjson => crate::Compression::Gzip,
        }
    }

    /// The file name extension, without the dot.
    pub const fn extension(self) -> &'static str {
        self.as_str()
    }

    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Pdf => "application/pdf",
        }
    }

    /// The documented fields of this format, in the documented order.
    pub fn default_fields(self) -> &'static [Field] {
        match self {
            Format::Json | Format::Ndjson => &Field::ALL,
            // A spreadsheet gets the CSV columns.
            Format::Csv | Format::Xlsx => &Field::CSV,
            // A report reads what its summary and table show.
            Format::Pdf => &pdf::FIELDS,
        }
    }

    /// A writer of this format for rows that carry `fields`.
    /// `filters` are the export's, for formats that describe them (XLSX, PDF).
    pub fn writer(
        self,
        fields: &[Field],
        csv: CsvOptions,
        filters: &ExportFilters,
    ) -> Box<dyn RowWriter> {
        match self {
            Format::Xlsx => Box::new(XlsxWriter::new(
                fields,
                serde_json::to_string(filters).unwrap_or_default(),
            )),
            Format::Pdf => Box::new(PdfWriter::new(filters)),
            Format::Json => Box::new(JsonWriter::new(fields)),
            Format::Csv => Box::new(CsvWriter::with_options(fields, csv)),
            Format::Ndjson => Box::new(NdjsonWriter::new(fields)),
        }
    }

    /// `format must be "json" or "csv"`: the message for a format not among `accepted`.
    pub fn expected(accepted: &[Format]) -> String {
        let names: Vec<String> = accepted
            .iter()
            .map(|f| format!("\"{}\"", f.as_str()))
            .collect();
        match names.split_last() {
            Some((last, [])) => format!("format must be {last}"),
            Some((last, rest)) => format!("format must be {} or {last}", rest.join(", ")),
            None => "no format is available".to_owned(),
        }
    }
}

impl FromStr for Format {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Format::ALL.into_iter().find(|f| f.as_str() == s).ok_or(())
    }
}

impl TryFrom<String> for Format {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|()| format!("unknown format {s:?}"))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller chose about a file beyond its format: which fields, in which order, and how
/// CSV is written. The default is the documented file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileOptions {
    /// A subset of the fields in the caller's order; `None` for the format's documented set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Field>>,
    #[serde(skip_serializing_if = "CsvOptions::is_default")]
    pub csv: CsvOptions,
}

/// The query parameters (and body fields) [`FileOptions`] reads.
pub const FILE_OPTION_PARAMS: [&str; 4] = ["fields", "bom", "delimiter", "escape_formulas"];

impl FileOptions {
    /// The fields a file of `format` carries.
    pub fn fields_for(&self, format: Format) -> Vec<Field> {
        self.fields
            .clone()
            .unwrap_or_else(|| format.default_fields().to_vec())
    }

    /// Sets `fields` from names (each may hold several, comma-separated). Errors name the
    /// offending field.
    pub fn set_fields<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let mut fields = self.fields.take().unwrap_or_default();
        for name in names.into_iter().flat_map(|n| n.split(',')).map(str::trim) {
            let field = Field::from_name(name).ok_or_else(|| {
                format!(
                    "fields: unknown field {:?}; accepted: {}",
                    name.chars().take(40).collect::<String>(),
                    Field::ALL.map(Field::name).join(", ")
                )
            })?;
            if fields.contains(&field) {
                return Err(format!("fields: {name:?} is listed twice"));
            }
            fields.push(field);
        }
        if fields.is_empty() {
            return Err("fields: name at least one field".into());
        }
        self.fields = Some(fields);
        Ok(())
    }

    /// Takes one query parameter. `Ok(false)` when `name` is not a file option.
    pub fn accept_param(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let boolean = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{name} must be true or false")),
        };
        match name {
            "fields" => self.set_fields([value])?,
            "bom" => self.csv.bom = boolean(value)?,
            "escape_formulas" => self.csv.escape_formulas = boolean(value)?,
            "delimiter" => self.csv.delimiter = value.parse()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// CSV options make sense only for CSV; a PDF report has a fixed layout.
    pub fn validate(&self, format: Format) -> Result<(), String> {
        if format == Format::Pdf && self.fields.is_some() {
            return Err(
                "fields: a pdf report has a fixed layout; choose fields with csv, json, ndjson or xlsx"
                    .into(),
            );
        }
        if format != Format::Csv && !self.csv.is_default() {
            return Err(format!(
                "bom, delimiter and escape_formulas apply only to format=csv (not {format})"
            ));
        }
        Ok(())
    }
}

/// The documented file name: `pipeline-jobs-YYYY-MM-DD.{ext}` (the UTC date of `at`).
pub fn file_name(at: DateTime<Utc>, format: Format) -> String {
    format!(
        "pipeline-jobs-{}.{}",
        at.format("%Y-%m-%d"),
        format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_documented_error_message() {
        assert_eq!(
            Format::expected(&Format::SYNC),
            r#"format must be "json" or "csv""#
        );
        assert_eq!(
            Format::expected(&Format::ALL),
            r#"format must be "json", "csv", "ndjson", "xlsx" or "pdf""#
        );
    }

    #[test]
    fn file_names_use_the_utc_date() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 23, 59, 59).unwrap();
        assert_eq!(file_name(t, Format::Json), "pipeline-jobs-2026-03-04.json");
        assert_eq!(file_name(t, Format::Csv), "pipeline-jobs-2026-03-04.csv");
    }
}
