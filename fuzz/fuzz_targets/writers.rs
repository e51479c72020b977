//! The CSV, JSON and NDJSON writers, on any jobs PostgreSQL could hold, any field subset and
//! any CSV options.
//!
//! Holds: the output parses back to the input. CSV read by the `csv` crate gives every cell
//! (NULL an empty cell, formula-looking text prefixed with `'` when neutralised);
//! a complete JSON file read by the import gives back exactly the jobs, in order, and its
//! `total`; NDJSON lines read as the import reads jobs give them back; a field subset has
//! exactly its fields, in the caller's order, with the complete file's values.
#![no_main]

use chrono::{DateTime, TimeZone, Timelike, Utc};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use workers::filters::Status;
use workers::format::{CsvOptions, Delimiter, ExportMeta, Format, write_whole};
use workers::job::Value;
use workers::{Field, JobRecord};

/// An instant in years 1 to 9999 (what the filters and RFC 3339 both allow), in every
/// precision chrono holds: whole seconds, milliseconds, microseconds (PostgreSQL's),
/// nanoseconds, and now and then a leap second.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Micros(i64);

impl Micros {
    fn time(self) -> DateTime<Utc> {
        const FIRST: i64 = -62_135_596_800_000_000; // 0001-01-01
        const SPAN: i64 = 315_537_897_599_999_999; // to 9999-12-31T23:59:59.999999
        let t = Utc
            .timestamp_micros(FIRST + self.0.rem_euclid(SPAN))
            .unwrap();
        let micros = t.nanosecond() / 1_000;
        let nanos = match self.0 & 7 {
            0 | 1 => 0,
            2 | 3 => micros / 1_000 * 1_000_000,
            4 | 5 => micros * 1_000,
            6 => micros * 1_000 + (self.0 >> 3).rem_euclid(1_000) as u32,
            // A leap second: 23:59:60 and a fraction, as chrono carries it.
            _ => {
                let leap =
                    t.date_naive()
                        .and_hms_nano_opt(23, 59, 59, 1_000_000_000 + micros * 1_000);
                return leap.map_or(t, |l| l.and_utc());
            }
        };
        t.with_nanosecond(nanos).unwrap()
    }
}

#[derive(Arbitrary, Debug)]
struct Job {
    id: u128,
    company_name: String,
    job_title: String,
    status: u8,
    source: Option<String>,
    location: Option<String>,
    is_remote: bool,
    job_url: Option<String>,
    job_description: Option<String>,
    salary_range_min: Option<i32>,
    salary_range_max: Option<i32>,
    ai_match_score: Option<u8>,
    ai_reasoning: Option<String>,
    notes: Option<String>,
    tags: Vec<String>,
    times: [Option<Micros>; 5],
    created_at: Micros,
    updated_at: Micros,
}

impl Job {
    fn record(&self) -> JobRecord {
        let t = |i: usize| self.times[i].map(Micros::time);
        JobRecord {
            id: uuid::Uuid::from_u128(self.id),
            company_name: self.company_name.clone(),
            job_title: self.job_title.clone(),
            status: Status::ALL[usize::from(self.status) % 5]
                .as_str()
                .to_owned(),
            source: self.source.clone(),
            location: self.location.clone(),
            is_remote: self.is_remote,
            job_url: self.job_url.clone(),
            job_description: self.job_description.clone(),
            salary_range_min: self.salary_range_min,
            salary_range_max: self.salary_range_max,
            ai_match_score: self.ai_match_score.map(|s| i32::from(s % 101)),
            ai_reasoning: self.ai_reasoning.clone(),
            notes: self.notes.clone(),
            tags: self.tags.clone(),
            applied_at: t(0),
            interview_at: t(1),
            offer_at: t(2),
            rejected_at: t(3),
            scraped_at: t(4),
            created_at: self.created_at.time(),
            updated_at: self.updated_at.time(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    jobs: Vec<Job>,
    /// Indices into the 22 fields; the subset is their first occurrences, in order.
    fields: Vec<u8>,
    delimiter: u8,
    bom: bool,
    escape_formulas: bool,
}

fuzz_target!(|input: Input| {
    let jobs: Vec<JobRecord> = input.jobs.iter().map(Job::record).collect();
    let mut subset: Vec<Field> = Vec::new();
    for i in &input.fields {
        let field = Field::ALL[usize::from(*i) % Field::ALL.len()];
        if !subset.contains(&field) {
            subset.push(field);
        }
    }
    let options = CsvOptions {
        delimiter: [Delimiter::Comma, Delimiter::Semicolon, Delimiter::Tab]
            [usize::from(input.delimiter) % 3],
        bom: input.bom,
        escape_formulas: input.escape_formulas,
    };

    check_csv(&jobs, &Field::CSV, options);
    if !subset.is_empty() {
        check_csv(&jobs, &subset, options);
    }

    // A complete JSON file is what the import restores: it must give back every job.
    let json = write(Format::Json, &Field::ALL, &jobs, CsvOptions::default());
    let (total, items) = workers::import::read_file(&json);
    assert_eq!(total, Ok(jobs.len() as u64));
    assert_eq!(items.len(), jobs.len());
    for (i, (item, job)) in items.into_iter().zip(&jobs).enumerate() {
        let (index, read) = item.expect("a written job is never rejected");
        assert_eq!(index, i as u64);
        assert_eq!(&read, job);
    }
    let full: Json = serde_json::from_slice(&json).expect("JSON output parses");
    let full = full["jobs"].as_array().unwrap();

    // NDJSON: one job per line, each the import's job.
    let ndjson = String::from_utf8(write(
        Format::Ndjson,
        &Field::ALL,
        &jobs,
        CsvOptions::default(),
    ))
    .expect("NDJSON is UTF-8");
    let lines: Vec<&str> = ndjson.split_terminator('\n').collect();
    assert_eq!(lines.len(), jobs.len());
    for (line, job) in lines.iter().zip(&jobs) {
        let value: Json = serde_json::from_str(line).expect("each line parses");
        assert_eq!(&workers::import::read_job(value).unwrap(), job);
    }

    // A subset: exactly its fields, in order, with the complete file's values.
    if !subset.is_empty() {
        let names: Vec<&str> = subset.iter().map(|f| f.name()).collect();
        let json = write(Format::Json, &subset, &jobs, CsvOptions::default());
        let file: File = serde_json::from_slice(&json).expect("JSON subset parses");
        assert_eq!(file.total, jobs.len() as u64);
        let ndjson = write(Format::Ndjson, &subset, &jobs, CsvOptions::default());
        let lines: Vec<Members> = String::from_utf8(ndjson)
            .unwrap()
            .split_terminator('\n')
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for objects in [&file.jobs, &lines] {
            assert_eq!(objects.len(), jobs.len());
            for (object, whole) in objects.iter().zip(full) {
                let keys: Vec<&str> = object.0.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(keys, names);
                for (k, v) in &object.0 {
                    assert_eq!(v, &whole[k], "{k}");
                }
            }
        }
    }
});

/// A JSON file's envelope, its jobs' members in file order.
#[derive(serde::Deserialize)]
struct File {
    total: u64,
    jobs: Vec<Members>,
}

/// A JSON object's members in the order the file has them (serde_json's own map sorts them).
struct Members(Vec<(String, Json)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(InOrder)
    }
}

fn write(format: Format, fields: &[Field], jobs: &[JobRecord], csv: CsvOptions) -> Vec<u8> {
    let meta = ExportMeta {
        exported_at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
        total: jobs.len() as u64,
    };
    write_whole(
        &mut *format.writer(fields, csv, &Default::default()),
        &meta,
        jobs,
    )
}

/// What a CSV cell must read back as, worked out here rather than by the writer's code:
/// NULL for NULL and an empty tag list (an empty cell: the reader does not show that it is
/// unquoted, which the unit tests check); text, tags joined with `; `, with a `'` before
/// what a spreadsheet could run as a formula (OWASP: `=`, `+`, `-`, `@`, tab, CR) when
/// formulas are neutralised; numbers, booleans and ids as they are. Timestamps are compared
/// as instants.
enum Cell {
    Null,
    Text(String),
    Time(DateTime<Utc>),
}

fn expected_cell(value: Value<'_>, escape_formulas: bool) -> Cell {
    let text = |s: String| {
        let formula = matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
        Cell::Text(if escape_formulas && formula {
            format!("'{s}")
        } else {
            s
        })
    };
    match value {
        Value::Null | Value::Tags([]) => Cell::Null,
        Value::Text(s) => text(s.to_owned()),
        Value::Tags(tags) => text(tags.join("; ")),
        Value::Int(n) => Cell::Text(n.to_string()),
        Value::Bool(b) => Cell::Text(if b { "true" } else { "false" }.to_owned()),
        Value::Uuid(u) => Cell::Text(u.hyphenated().to_string()),
        Value::Time(t) => Cell::Time(*t),
    }
}

fn check_csv(jobs: &[JobRecord], fields: &[Field], options: CsvOptions) {
    let csv = write(Format::Csv, fields, jobs, options);
    assert_eq!(csv.starts_with("\u{feff}".as_bytes()), options.bom);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.delimiter.byte())
        .from_reader(&csv[..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    assert_eq!(header, names);
    let mut records = reader.byte_records();
    for job in jobs {
        let cells: Vec<Cell> = fields
            .iter()
            .map(|f| expected_cell(job.value(*f), options.escape_formulas))
            .collect();
        if let [Cell::Null] = cells[..] {
            // A one-column row holding NULL is an empty line, which CSV readers skip
            // (documented in `format::csv`).
            continue;
        }
        let record = records.next().expect("one record per job").unwrap();
        assert_eq!(record.len(), fields.len());
        for (i, expected) in cells.iter().enumerate() {
            let cell = std::str::from_utf8(&record[i]).expect("cells are UTF-8");
            let name = fields[i].name();
            match expected {
                Cell::Null => assert_eq!(cell, "", "{name}"),
                Cell::Text(text) => assert_eq!(cell, text, "{name}"),
                Cell::Time(t) => {
                    assert!(cell.ends_with('Z'), "{name}: {cell}");
                    let read = DateTime::parse_from_rfc3339(cell).expect("an RFC 3339 instant");
                    assert_eq!(&read.with_timezone(&Utc), t, "{name}: {cell}");
                }
            }
        }
    }
    assert!(records.next().is_none());
}
