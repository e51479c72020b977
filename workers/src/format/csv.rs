//! CSV as RFC 4180 writes it: a header row of field names, CRLF line endings, and a field
//! wrapped in double quotes when it holds a comma, a quote, CR or LF (quotes doubled inside).
//!
//! Choices where the contract is silent:
//! - NULL is an empty, unquoted cell; an empty string is `""`, so the two stay distinguishable
//!   (PostgreSQL's `COPY ... CSV` makes the same distinction).
//! - Tags are joined with `; ` and the joined text is escaped like any other cell; an empty
//!   tag list is an empty cell.
//! - Booleans are `true`/`false`; timestamps are RFC 3339 UTC (see [`crate::timestamp`]).
//! - In a file of one column (`fields=source`), a NULL makes an empty line, which most CSV
//!   readers skip; an empty string is still `""`. Choose a second field to keep every row.
//!
//! Options ([`CsvOptions`]): the delimiter (comma, semicolon as European Excel expects, or
//! tab); a UTF-8 byte order mark so Excel reads non-Latin text right; and, on by default,
//! OWASP's defence against CSV injection: a text cell that starts with `=`, `+`, `-`, `@`, a
//! tab or a CR is prefixed with a single quote, so a spreadsheet shows it as text instead of
//! running it as a formula. Numbers, booleans, ids and timestamps are never altered.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ExportMeta, RowWriter};
use crate::job::{Field, JobRecord, Value};
use crate::timestamp::write_rfc3339;

/// The character between cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delimiter {
    #[default]
    Comma,
    Semicolon,
    Tab,
}

impl Delimiter {
    pub const fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Delimiter::Comma => "comma",
            Delimiter::Semicolon => "semicolon",
            Delimiter::Tab => "tab",
        }
    }
}

impl FromStr for Delimiter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Delimiter::Comma, Delimiter::Semicolon, Delimiter::Tab]
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| "delimiter must be comma, semicolon or tab".to_owned())
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a CSV file is written. The default: comma, no BOM, formulas neutralised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvOptions {
    pub delimiter: Delimiter,
    pub bom: bool,
    pub escape_formulas: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: Delimiter::Comma,
            bom: false,
            escape_formulas: true,
        }
    }
}

impl CsvOptions {
    pub fn is_default(&self) -> bool {
        *self == CsvOptions::default()
    }
}

pub struct CsvWriter {
    fields: Vec<Field>,
    options: CsvOptions,
    /// Reused: the joined tags of a row.
    tags: Vec<u8>,
    /// Reused: a neutralised cell before escaping.
    scratch: Vec<u8>,
}

impl CsvWriter {
    pub fn new(fields: &[Field]) -> Self {
        Self::with_options(fields, CsvOptions::default())
    }

    pub fn with_options(fields: &[Field], options: CsvOptions) -> Self {
        CsvWriter {
            fields: fields.to_vec(),
            options,
            tags: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
        }
    }
}

/// A text cell: neutralised when it could start a formula, then escaped.
fn write_text(out: &mut Vec<u8>, s: &[u8], options: CsvOptions, scratch: &mut Vec<u8>) {
    let delimiter = options.delimiter.byte();
    if options.escape_formulas && starts_formula(s) {
        scratch.clear();
        scratch.push(b'\'');
        scratch.extend_from_slice(s);
        write_cell(out, scratch, delimiter);
    } else {
        write_cell(out, s, delimiter);
    }
}

/// Whether a spreadsheet could take a cell starting like this for a formula (OWASP).
fn starts_formula(s: &[u8]) -> bool {
    matches!(s.first(), Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

impl RowWriter for CsvWriter {
    fn begin(&mut self, out: &mut Vec<u8>, _meta: &ExportMeta) {
        if self.options.bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        let delimiter = self.options.delimiter.byte();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            write_cell(out, field.name().as_bytes(), delimiter);
        }
        out.extend_from_slice(b"\r\n");
    }

    fn row(&mut self, out: &mut Vec<u8>, job: &JobRecord) {
        let delimiter = self.options.delimiter.byte();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            match job.value(*field) {
                Value::Null => {}
                Value::Text(s) => write_text(out, s.as_bytes(), self.options, &mut self.scratch),
                Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Value::Uuid(u) => {
                    let mut buf = uuid::Uuid::encode_buffer();
                    out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
                }
                Value::Time(t) => write_rfc3339(out, t),
                Value::Tags(tags) => {
                    if tags.is_empty() {
                        continue;
                    }
                    self.tags.clear();
                    for (j, tag) in tags.iter().enumerate() {
                        if j > 0 {
                            self.tags.extend_from_slice(b"; ");
                        }
                        self.tags.extend_from_slice(tag.as_bytes());
                    }
                    write_text(out, &self.tags, self.options, &mut self.scratch);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// One cell: quoted when it holds the delimiter, a quote, CR or LF (quotes doubled), and
/// `""` when empty (an empty cell without quotes is NULL).
fn write_cell(out: &mut Vec<u8>, s: &[u8], delimiter: u8) {
    if s.is_empty() {
        out.extend_from_slice(b"\"\"");
        return;
    }
    if !s
        .iter()
        .any(|&b| b == delimiter || matches!(b, b'"' | b'\r' | b'\n'))
    {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for part in s.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    fn meta() -> ExportMeta {
        ExportMeta {
            exported_at: Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(),
            total: 1,
        }
    }

    fn write(fields: &[Field], jobs: &[JobRecord]) -> String {
        write_with(fields, jobs, CsvOptions::default())
    }

    fn write_with(fields: &[Field], jobs: &[JobRecord], options: CsvOptions) -> String {
        let mut w = CsvWriter::with_options(fields, options);
        String::from_utf8(crate::format::write_whole(&mut w, &meta(), jobs)).unwrap()
    }

    fn spec_example() -> JobRecord {
        JobRecord {
            id: "123e4567-e89b-12d3-a456-426614174000".parse().unwrap(),
            company_name: "Acme Corp".into(),
            job_title: "Senior Backend Engineer".into(),
            status: "interview".into(),
            source: Some("linkedin".into()),
            location: Some("San Francisco, CA".into()),
            is_remote: true,
            job_url: Some("https://acme.com/careers/123".into()),
            salary_range_min: Some(180000),
            salary_range_max: Some(250000),
            ai_match_score: Some(87),
            notes: Some("Met recruiter at tech conference".into()),
            tags: vec!["high-priority".into(), "backend".into()],
            applied_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap()),
            interview_at: Some(Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap()),
            created_at: Utc.with_ymd_and_hms(2026, 2, 28, 15, 0, 0).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2026, 3, 4, 9, 0, 0).unwrap(),
            ..JobRecord::default()
        }
    }

    #[test]
    fn matches_the_documented_example() {
        let csv = write(&Field::CSV, &[spec_example()]);
        assert_eq!(
            csv,
            "id,company_name,job_title,status,source,location,is_remote,job_url,salary_range_min,salary_range_max,ai_match_score,notes,tags,applied_at,interview_at,offer_at,rejected_at,created_at,updated_at\r\n\
             123e4567-e89b-12d3-a456-426614174000,Acme Corp,Senior Backend Engineer,interview,linkedin,\"San Francisco, CA\",true,https://acme.com/careers/123,180000,250000,87,Met recruiter at tech conference,high-priority; backend,2026-03-01T10:30:00Z,2026-03-10T14:00:00Z,,,2026-02-28T15:00:00Z,2026-03-04T09:00:00Z\r\n"
        );
    }

    #[test]
    fn escaping_cases() {
        let cases = [
            (Some("plain"), "plain"),
            (Some("a,b"), "\"a,b\""),
            (Some("say \"hi\""), "\"say \"\"hi\"\"\""),
            (Some("\""), "\"\"\"\""),
            (Some("line1\nline2"), "\"line1\nline2\""),
            (Some("cr\r\nlf"), "\"cr\r\nlf\""),
            (Some("日本語 🚀 émoji"), "日本語 🚀 émoji"),
            (Some(" padded "), " padded "),
            (Some(""), "\"\""),
            (None, ""),
        ];
        for (notes, expected) in cases {
            let job = JobRecord {
                notes: notes.map(str::to_owned),
                ..JobRecord::default()
            };
            let csv = write(&[Field::Notes], &[job]);
            assert_eq!(csv, format!("notes\r\n{expected}\r\n"), "notes = {notes:?}");
        }
    }

    #[test]
    fn tags_are_joined_then_escaped() {
        let job = |tags: &[&str]| JobRecord {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..JobRecord::default()
        };
        assert_eq!(write(&[Field::Tags], &[job(&[])]), "tags\r\n\r\n");
        assert_eq!(write(&[Field::Tags], &[job(&["a"])]), "tags\r\na\r\n");
        assert_eq!(
            write(&[Field::Tags], &[job(&["a,b", "c"])]),
            "tags\r\n\"a,b; c\"\r\n"
        );
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            any::<String>(),
            "[ a-z,\"\r\n;]{0,12}",
            Just(String::new()),
        ])
    }

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (-2_000_000_000_000_000i64..8_000_000_000_000_000)
            .prop_map(|us| Utc.timestamp_micros(us).unwrap())
    }

    prop_compose! {
        fn arb_job()(
            id in any::<u128>(),
            company_name in any::<String>(),
            job_title in "[^\u{0}]{0,20}",
            source in opt_text(),
            location in opt_text(),
            notes in opt_text(),
            job_url in opt_text(),
            is_remote in any::<bool>(),
            salary in prop::option::of(any::<i32>()),
            score in prop::option::of(0i32..=100),
            tags in prop::collection::vec("[a-z0-9 ,\"-]{1,8}", 0..4),
            applied_at in prop::option::of(time()),
            created_at in time(),
        ) -> JobRecord {
            JobRecord {
                id: uuid::Uuid::from_u128(id),
                company_name,
                job_title,
                status: "applied".into(),
                source,
                location,
                is_remote,
                job_url,
                salary_range_min: salary,
                ai_match_score: score,
                notes,
                tags,
                applied_at,
                created_at,
                updated_at: created_at,
                ..JobRecord::default()
            }
        }
    }

    /// What a cell reads back as: the value, with a leading quote on text that could start a
    /// formula when formulas are neutralised.
    fn expected_cell(v: Value<'_>, escape_formulas: bool) -> Option<String> {
        let text = |s: String| {
            if escape_formulas && starts_formula(s.as_bytes()) {
                format!("'{s}")
            } else {
                s
            }
        };
        Some(match v {
            Value::Null => return None,
            Value::Text(s) => text(s.to_owned()),
            Value::Int(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Uuid(u) => u.to_string(),
            Value::Time(t) => crate::timestamp::to_rfc3339(t),
            Value::Tags([]) => return None,
            Value::Tags(t) => text(t.join("; ")),
        })
    }

    fn arb_options() -> impl Strategy<Value = CsvOptions> {
        (
            prop_oneof![
                Just(Delimiter::Comma),
                Just(Delimiter::Semicolon),
                Just(Delimiter::Tab)
            ],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(delimiter, bom, escape_formulas)| CsvOptions {
                delimiter,
                bom,
                escape_formulas,
            })
    }

    #[test]
    fn formulas_are_neutralised_by_default_and_numbers_never() {
        let job = JobRecord {
            company_name: "=HYPERLINK(\"http://evil\",\"x\")".into(),
            job_title: "+1 engineer".into(),
            notes: Some("-2+3".into()),
            location: Some("@SUM(A1)".into()),
            source: Some("\tindeed".into()),
            salary_range_min: Some(-5),
            tags: vec!["=cmd".into()],
            ..spec_example()
        };
        let fields = [
            Field::CompanyName,
            Field::JobTitle,
            Field::Notes,
            Field::Location,
            Field::Source,
            Field::SalaryRangeMin,
            Field::Tags,
        ];
        let csv = write(&fields, std::slice::from_ref(&job));
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",'+1 engineer,'-2+3,'@SUM(A1),'\tindeed,-5,'=cmd"
        );
        let off = CsvOptions {
            escape_formulas: false,
            ..CsvOptions::default()
        };
        let csv = write_with(&fields, &[job], off);
        assert!(csv.contains("\r\n\"=HYPERLINK("), "{csv}");
    }

    #[test]
    fn bom_and_delimiters() {
        let options = CsvOptions {
            delimiter: Delimiter::Semicolon,
            bom: true,
            escape_formulas: true,
        };
        let csv = write_with(
            &[Field::CompanyName, Field::Location],
            &[spec_example()],
            options,
        );
        assert_eq!(
            csv,
            "\u{feff}company_name;location\r\nAcme Corp;San Francisco, CA\r\n"
        );
        let tab = CsvOptions {
            delimiter: Delimiter::Tab,
            ..CsvOptions::default()
        };
        let csv = write_with(
            &[Field::CompanyName, Field::Location],
            &[spec_example()],
            tab,
        );
        assert_eq!(
            csv,
            "company_name\tlocation\r\nAcme Corp\tSan Francisco, CA\r\n"
        );
    }

    proptest! {
        #[test]
        fn parses_back_to_the_original_values(
            jobs in prop::collection::vec(arb_job(), 0..8),
            options in arb_options(),
        ) {
            let csv = write_with(&Field::CSV, &jobs, options);
            prop_assert_eq!(csv.starts_with('\u{feff}'), options.bom);
            let mut reader = ::csv::ReaderBuilder::new()
                .delimiter(options.delimiter.byte())
                .from_reader(csv.as_bytes());
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
            let names: Vec<&str> = Field::CSV.iter().map(|f| f.name()).collect();
            prop_assert_eq!(header, names);
            let mut records = reader.byte_records();
            for job in &jobs {
                let record = records.next().expect("one record per job").unwrap();
                prop_assert_eq!(record.len(), Field::CSV.len());
                for (i, field) in Field::CSV.iter().enumerate() {
                    let cell = std::str::from_utf8(&record[i]).unwrap();
                    match expected_cell(job.value(*field), options.escape_formulas) {
                        // NULL is the only value written as an empty unquoted cell.
                        None => prop_assert_eq!(cell, ""),
                        Some(v) => prop_assert_eq!(cell, v.as_str()),
                    }
                }
            }
            prop_assert!(records.next().is_none());
        }
    }
}
