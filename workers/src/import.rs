//! Restore: a JSON export file (as this service writes it, gzipped or not) back into the
//! caller's jobs, upserted by id.
//!
//! The file is read as a stream: a blocking task parses the envelope with serde and hands
//! each job over a bounded channel, so memory holds one batch whatever the file's size.
//! Everything happens in one transaction: jobs are staged in a temporary table, then merged
//! with set-based statements; an invalid file (not JSON, not an export, cut short) rolls
//! back and nothing is written. A `dry_run` does all of it and rolls back too.
//!
//! - A job whose id is the caller's is updated when it differs (a soft-deleted one is
//!   restored), and counted unchanged otherwise.
//! - A job whose id is unknown is created with that id.
//! - A job whose id belongs to another user is never touched: it is created with a new id
//!   (`reassigned` counts them).
//! - A job that cannot be stored (a field missing or of the wrong type, an unknown status,
//!   a score outside 0–100, an id twice in the file) is rejected; the response names the
//!   first few by their index in `jobs`. The others are imported.
//!
//! Only complete exports restore: every one of the 22 fields must be present, so a file made
//! with `fields=` cannot silently blank the fields it lacks.

use std::fmt;
use std::io::{BufRead, BufReader, Read};

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::filters::Status;
use crate::job::Field;

/// Jobs staged per statement.
const BATCH: usize = 1000;
/// Rejections described in the response (all are counted).
pub const MAX_ERRORS: usize = 20;

/// One job as an export file holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedJob {
    id: Uuid,
    company_name: String,
    job_title: String,
    status: String,
    source: Option<String>,
    location: Option<String>,
    is_remote: bool,
    job_url: Option<String>,
    job_description: Option<String>,
    salary_range_min: Option<i32>,
    salary_range_max: Option<i32>,
    ai_match_score: Option<i32>,
    ai_reasoning: Option<String>,
    notes: Option<String>,
    tags: Vec<String>,
    applied_at: Option<DateTime<Utc>>,
    interview_at: Option<DateTime<Utc>>,
    offer_at: Option<DateTime<Utc>>,
    rejected_at: Option<DateTime<Utc>>,
    scraped_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ImportedJob {
    /// Checks a job object: all 22 fields, the right types, values the table accepts.
    fn from_value(value: serde_json::Value) -> Result<ImportedJob, String> {
        let object = value
            .as_object()
            .ok_or_else(|| "a job must be a JSON object".to_owned())?;
        if let Some(missing) = Field::ALL.iter().find(|f| !object.contains_key(f.name())) {
            return Err(format!(
                "{} is missing (only complete JSON exports can be restored)",
                missing.name()
            ));
        }
        let job: ImportedJob = serde_json::from_value(value).map_err(|e| e.to_string())?;
        if job.status.parse::<Status>().is_err() {
            return Err(format!(
                "status {:?} is not one of saved, applied, interview, offer, rejected",
                job.status
            ));
        }
        if job.ai_match_score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err("ai_match_score must be from 0 to 100".into());
        }
        Ok(job)
    }
}

/// The job as the writers see it; how the round-trip tests compare a file with its rows.
#[cfg(any(test, fuzzing))]
impl From<&ImportedJob> for crate::job::JobRecord {
    fn from(j: &ImportedJob) -> crate::job::JobRecord {
        crate::job::JobRecord {
            id: j.id,
            company_name: j.company_name.clone(),
            job_title: j.job_title.clone(),
            status: j.status.clone(),
            source: j.source.clone(),
            location: j.location.clone(),
            is_remote: j.is_remote,
            job_url: j.job_url.clone(),
            job_description: j.job_description.clone(),
            salary_range_min: j.salary_range_min,
            salary_range_max: j.salary_range_max,
            ai_match_score: j.ai_match_score,
            ai_reasoning: j.ai_reasoning.clone(),
            notes: j.notes.clone(),
            tags: j.tags.clone(),
            applied_at: j.applied_at,
            interview_at: j.interview_at,
            offer_at: j.offer_at,
            rejected_at: j.rejected_at,
            scraped_at: j.scraped_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// What the import makes of a file, without a database: the number of jobs it holds (or why
/// it is refused) and each job as it would be staged (`Ok`) or rejected. For the `import`
/// and `writers` fuzz targets (`fuzz/`, built with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub fn read_file(
    bytes: &[u8],
) -> (
    Result<u64, String>,
    Vec<Result<(u64, crate::job::JobRecord), Rejection>>,
) {
    let (tx, mut rx) = mpsc::channel(BATCH);
    std::thread::scope(|scope| {
        let parser = scope.spawn(move || parse(bytes, &tx).map_err(|e| e.to_string()));
        let mut items = Vec::new();
        while let Some(item) = rx.blocking_recv() {
            items.push(match item {
                Item::Job(index, job) => Ok((index, crate::job::JobRecord::from(&*job))),
                Item::Rejected(rejection) => Err(rejection),
            });
        }
        (parser.join().expect("the parser does not panic"), items)
    })
}

/// One line of an NDJSON export read as one job of a JSON export: the job, or why it would
/// be rejected. For the `writers` fuzz target.
#[cfg(fuzzing)]
pub fn read_job(value: serde_json::Value) -> Result<crate::job::JobRecord, String> {
    ImportedJob::from_value(value).map(|job| crate::job::JobRecord::from(&job))
}

/// A rejected job: where it is in the file and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Its position in `jobs`, from 0.
    pub index: u64,
    pub id: Option<Uuid>,
    pub reason: String,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub dry_run: bool,
    /// Jobs in the file.
    pub total: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Of `created`: jobs whose id belonged to someone else, created with a new id.
    pub reassigned: u64,
    /// The first [`MAX_ERRORS`] rejections.
    pub errors: Vec<Rejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not a JSON export; nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What the parser hands to the loader.
enum Item {
    Job(u64, Box<ImportedJob>),
    Rejected(Rejection),
}

/// Imports the export file read from `reader` into `user_id`'s jobs. `reader` is read on a
/// blocking thread (gzip is recognised by its magic bytes).
pub async fn import<R: Read + Send + 'static>(
    pool: &PgPool,
    user_id: Uuid,
    reader: R,
    dry_run: bool,
) -> Result<ImportSummary, ImportError> {
    let (tx, mut rx) = mpsc::channel::<Item>(BATCH * 2);
    let parser = tokio::task::spawn_blocking(move || parse(reader, &tx));

    let mut db = pool.begin().await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE import_rows ( \
           ord bigint NOT NULL, id uuid NOT NULL, company_name text NOT NULL, job_title text NOT NULL, \
           status text NOT NULL, source text, location text, is_remote boolean NOT NULL, job_url text, \
           job_description text, salary_range_min integer, salary_range_max integer, \
           ai_match_score integer, ai_reasoning text, notes text, tags text[] NOT NULL, \
           applied_at timestamptz, interview_at timestamptz, offer_at timestamptz, \
           rejected_at timestamptz, scraped_at timestamptz, created_at timestamptz NOT NULL, \
           updated_at timestamptz NOT NULL, reassigned boolean NOT NULL DEFAULT false \
         ) ON COMMIT DROP",
    )
    .execute(&mut *db)
    .await?;

    let mut summary = ImportSummary {
        dry_run,
        ..ImportSummary::default()
    };
    let mut batch: Vec<(u64, Box<ImportedJob>)> = Vec::with_capacity(BATCH);
    while let Some(item) = rx.recv().await {
        match item {
            Item::Job(index, job) => {
                batch.push((index, job));
                if batch.len() == BATCH {
                    stage(&mut db, &mut batch).await?;
                }
            }
            Item::Rejected(rejection) => reject(&mut summary, rejection),
        }
    }
    let total = parser
        .await
        .map_err(|e| ImportError::Invalid(format!("the file could not be read: {e}")))??;
    stage(&mut db, &mut batch).await?;
    summary.total = total;

    // An id twice in the file: neither copy is imported.
    let twice: Vec<(i64, Uuid)> = sqlx::query_as(
        "DELETE FROM import_rows WHERE id IN \
           (SELECT id FROM import_rows GROUP BY id HAVING count(*) > 1) \
         RETURNING ord, id",
    )
    .fetch_all(&mut *db)
    .await?;
    let mut twice = twice;
    twice.sort();
    for (ord, id) in twice {
        reject(
            &mut summary,
            Rejection {
                index: ord as u64,
                id: Some(id),
                reason: "this id appears more than once in the file".into(),
            },
        );
    }
    summary.errors.sort_by_key(|r| r.index);
    summary.errors.truncate(MAX_ERRORS);

    // Someone else's ids are never touched: those jobs get new ids.
    summary.reassigned = sqlx::query(
        "UPDATE import_rows i SET id = gen_random_uuid(), reassigned = true \
         FROM jobs j WHERE j.id = i.id AND j.user_id <> $1",
    )
    .bind(user_id)
    .execute(&mut *db)
    .await?
    .rows_affected();

    const COLUMNS: &str = "company_name, job_title, status, source, location, is_remote, job_url, \
         job_description, salary_range_min, salary_range_max, ai_match_score, ai_reasoning, notes, \
         tags, applied_at, interview_at, offer_at, rejected_at, scraped_at, created_at, updated_at";
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM import_rows")
        .fetch_one(&mut *db)
        .await?;
    summary.updated = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs j SET ({COLUMNS}, deleted_at) = ROW({cols}, NULL::timestamptz) \
         FROM import_rows i WHERE j.id = i.id AND j.user_id = $1 \
         AND (j.deleted_at IS NOT NULL OR ({jcols}) IS DISTINCT FROM ({cols}))",
        cols = prefixed("i", COLUMNS),
        jcols = prefixed("j", COLUMNS),
    )))
    .bind(user_id)
    .execute(&mut *db)
    .await?
    .rows_affected();
    summary.created = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (id, user_id, {COLUMNS}) \
         SELECT i.id, $1, {cols} FROM import_rows i \
         WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = i.id)",
        cols = prefixed("i", COLUMNS),
    )))
    .bind(user_id)
    .execute(&mut *db)
    .await?
    .rows_affected();
    summary.unchanged = (staged as u64).saturating_sub(summary.updated + summary.created);

    if dry_run {
        db.rollback().await?;
    } else {
        db.commit().await?;
    }
    Ok(summary)
}

fn reject(summary: &mut ImportSummary, rejection: Rejection) {
    summary.rejected += 1;
    if summary.errors.len() < MAX_ERRORS {
        summary.errors.push(rejection);
    }
}

/// `a, b` → `i.a, i.b`.
fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a batch into `import_rows` with one statement (a column per array).
async fn stage(
    db: &mut sqlx::PgConnection,
    batch: &mut Vec<(u64, Box<ImportedJob>)>,
) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($f:ident) => {
            batch.iter().map(|(_, j)| j.$f.clone()).collect::<Vec<_>>()
        };
    }
    let ord: Vec<i64> = batch.iter().map(|(i, _)| *i as i64).collect();
    // Tags travel as JSON arrays and become text[] in SQL (a 2-D array cannot be ragged).
    let tags: Vec<String> = batch
        .iter()
        .map(|(_, j)| serde_json::to_string(&j.tags).expect("strings serialise"))
        .collect();
    sqlx::query(
        "INSERT INTO import_rows (ord, id, company_name, job_title, status, source, location, \
           is_remote, job_url, job_description, salary_range_min, salary_range_max, ai_match_score, \
           ai_reasoning, notes, tags, applied_at, interview_at, offer_at, rejected_at, scraped_at, \
           created_at, updated_at) \
         SELECT ord, id, company_name, job_title, status, source, location, is_remote, job_url, \
           job_description, salary_range_min, salary_range_max, ai_match_score, ai_reasoning, notes, \
           ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), applied_at, interview_at, offer_at, \
           rejected_at, scraped_at, created_at, updated_at \
         FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::text[], $8::bool[], $9::text[], $10::text[], $11::int[], $12::int[], $13::int[], \
           $14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[], \
           $19::timestamptz[], $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], \
           $23::timestamptz[]) \
         AS t(ord, id, company_name, job_title, status, source, location, is_remote, job_url, \
           job_description, salary_range_min, salary_range_max, ai_match_score, ai_reasoning, notes, \
           tags, applied_at, interview_at, offer_at, rejected_at, scraped_at, created_at, updated_at)",
    )
    .bind(ord)
    .bind(column!(id))
    .bind(column!(company_name))
    .bind(column!(job_title))
    .bind(column!(status))
    .bind(column!(source))
    .bind(column!(location))
    .bind(column!(is_remote))
    .bind(column!(job_url))
    .bind(column!(job_description))
    .bind(column!(salary_range_min))
    .bind(column!(salary_range_max))
    .bind(column!(ai_match_score))
    .bind(column!(ai_reasoning))
    .bind(column!(notes))
    .bind(tags)
    .bind(column!(applied_at))
    .bind(column!(interview_at))
    .bind(column!(offer_at))
    .bind(column!(rejected_at))
    .bind(column!(scraped_at))
    .bind(column!(created_at))
    .bind(column!(updated_at))
    .execute(db)
    .await?;
    batch.clear();
    Ok(())
}

/// Parses the file on the blocking thread, sending each job; returns how many jobs it held.
fn parse<R: Read>(reader: R, tx: &mpsc::Sender<Item>) -> Result<u64, ImportError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let head = reader
        .fill_buf()
        .map_err(|e| ImportError::Invalid(format!("the file could not be read: {e}")))?;
    let gzipped = head.starts_with(&[0x1f, 0x8b]);
    let source: Box<dyn Read> = if gzipped {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    let mut de = serde_json::Deserializer::from_reader(source);
    let envelope = EnvelopeSeed { tx }
        .deserialize(&mut de)
        .map_err(|e| invalid(&e))?;
    de.end().map_err(|e| invalid(&e))?;
    if let Some(total) = envelope.total
        && total != envelope.jobs
    {
        return Err(ImportError::Invalid(format!(
            "the file says it holds {total} jobs but holds {}; is it complete?",
            envelope.jobs
        )));
    }
    Ok(envelope.jobs)
}

fn invalid(e: &serde_json::Error) -> ImportError {
    let what = match e.classify() {
        serde_json::error::Category::Io => "the file could not be read",
        serde_json::error::Category::Eof => "the file ends too early (is it complete?)",
        _ => "this is not a JSON export of PIPELINE",
    };
    ImportError::Invalid(format!("{what}: {e}"))
}

struct Envelope {
    total: Option<u64>,
    jobs: u64,
}

/// `{"exported_at": ..., "total": N, "jobs": [...]}`, streaming `jobs` to the loader.
struct EnvelopeSeed<'a> {
    tx: &'a mpsc::Sender<Item>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Envelope, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an export object with exported_at, total and jobs")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut total = None;
        let mut jobs = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "exported_at" => {
                    map.next_value::<IgnoredAny>()?;
                }
                "total" => total = Some(map.next_value::<u64>()?),
                "jobs" => jobs = Some(map.next_value_seed(JobsSeed { tx: self.tx })?),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "unexpected key {:?}; an export has exported_at, total and jobs",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        let jobs = jobs.ok_or_else(|| serde::de::Error::custom("the export has no jobs list"))?;
        Ok(Envelope { total, jobs })
    }
}

struct JobsSeed<'a> {
    tx: &'a mpsc::Sender<Item>,
}

impl<'de> DeserializeSeed<'de> for JobsSeed<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for JobsSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of jobs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut index = 0u64;
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            let id = value
                .get("id")
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::try_parse(s).ok());
            let item = match ImportedJob::from_value(value) {
                Ok(job) => Item::Job(index, Box::new(job)),
                Err(reason) => Item::Rejected(Rejection { index, id, reason }),
            };
            if self.tx.blocking_send(item).is_err() {
                return Err(serde::de::Error::custom("the import was abandoned"));
            }
            index += 1;
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> (Result<u64, String>, Vec<String>) {
        let (tx, mut rx) = mpsc::channel(1000);
        let result =
            parse(std::io::Cursor::new(s.as_bytes().to_vec()), &tx).map_err(|e| e.to_string());
        drop(tx);
        let mut items = Vec::new();
        while let Ok(item) = rx.try_recv() {
            items.push(match item {
                Item::Job(i, j) => format!("{i}:{}", j.company_name),
                Item::Rejected(r) => format!("{}:rejected:{}", r.index, r.reason),
            });
        }
        (result, items)
    }

    fn job(id: &str, company: &str) -> serde_json::Value {
        let mut j = serde_json::json!({
            "id": id, "company_name": company, "job_title": "Engineer", "status": "applied",
            "is_remote": false, "tags": [], "created_at": "2026-03-01T00:00:00Z",
            "updated_at": "2026-03-01T00:00:00Z"
        });
        for f in Field::ALL {
            j.as_object_mut()
                .unwrap()
                .entry(f.name())
                .or_insert(serde_json::Value::Null);
        }
        j
    }

    #[test]
    fn streams_jobs_and_rejects_bad_ones_by_index() {
        let mut bad = job("00000000-0000-0000-0000-000000000002", "B");
        bad["status"] = "hired".into();
        let mut missing = job("00000000-0000-0000-0000-000000000003", "C");
        missing.as_object_mut().unwrap().remove("notes");
        let file = serde_json::json!({
            "exported_at": "2026-03-01T00:00:00Z", "total": 3,
            "jobs": [job("00000000-0000-0000-0000-000000000001", "A"), bad, missing]
        });
        let (result, items) = parse_str(&file.to_string());
        assert_eq!(result, Ok(3));
        assert_eq!(items[0], "0:A");
        assert!(
            items[1].starts_with("1:rejected:status \"hired\""),
            "{items:?}"
        );
        assert!(
            items[2].starts_with("2:rejected:notes is missing"),
            "{items:?}"
        );
    }

    mod round_trip {
        use super::super::*;
        use crate::format::{ExportMeta, Format, write_whole};
        use crate::job::JobRecord;
        use chrono::TimeZone;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            // Quotes, backslashes, newlines, control characters, emoji, long text.
            prop_oneof![
                any::<String>(),
                "[\"\\\\\n\r\t\u{0}-\u{1f}\u{7f}é東😀]{0,40}",
                "x{0,2000}",
            ]
        }

        fn time() -> impl Strategy<Value = DateTime<Utc>> {
            (0i64..4_000_000_000, 0u32..1_000_000)
                .prop_map(|(s, us)| Utc.timestamp_opt(s, us * 1000).unwrap())
        }

        prop_compose! {
            fn job()(
                id in any::<u128>(),
                company_name in text(),
                job_title in text(),
                status in prop::sample::select(vec!["saved", "applied", "interview", "offer", "rejected"]),
                notes in prop::option::of(text()),
                source in prop::option::of(text()),
                is_remote in any::<bool>(),
                salary in prop::option::of(any::<i32>()),
                score in prop::option::of(0i32..=100),
                tags in prop::collection::vec(text(), 0..4),
                applied_at in prop::option::of(time()),
                created_at in time(),
                updated_at in time(),
            ) -> JobRecord {
                JobRecord {
                    id: Uuid::from_u128(id),
                    company_name,
                    job_title,
                    status: status.into(),
                    notes,
                    source,
                    is_remote,
                    salary_range_max: salary,
                    ai_match_score: score,
                    tags,
                    applied_at,
                    created_at,
                    updated_at,
                    ..JobRecord::default()
                }
            }
        }

        fn write(format: Format, jobs: &[JobRecord]) -> Vec<u8> {
            let mut w = format.writer(&Field::ALL, Default::default(), &Default::default());
            let meta = ExportMeta {
                exported_at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
                total: jobs.len() as u64,
            };
            write_whole(&mut *w, &meta, jobs)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Whatever the JSON writer writes, the import reads back as the same jobs.
            #[test]
            fn the_import_reads_back_what_the_json_writer_wrote(jobs in prop::collection::vec(job(), 0..6)) {
                let file = write(Format::Json, &jobs);
                let (tx, mut rx) = mpsc::channel(100);
                let total = parse(std::io::Cursor::new(file), &tx).map_err(|e| e.to_string());
                drop(tx);
                prop_assert_eq!(total, Ok(jobs.len() as u64));
                for (i, expected) in jobs.iter().enumerate() {
                    match rx.try_recv().unwrap() {
                        Item::Job(index, job) => {
                            prop_assert_eq!(index, i as u64);
                            prop_assert_eq!(&JobRecord::from(&*job), expected);
                        }
                        Item::Rejected(r) => prop_assert!(false, "rejected: {:?}", r),
                    }
                }
            }

            /// NDJSON lines parse back to the same jobs.
            #[test]
            fn ndjson_lines_read_back(jobs in prop::collection::vec(job(), 0..6)) {
                let file = String::from_utf8(write(Format::Ndjson, &jobs)).unwrap();
                let lines: Vec<&str> = file.split_terminator('\n').collect();
                prop_assert_eq!(lines.len(), jobs.len());
                for (line, expected) in lines.iter().zip(&jobs) {
                    let value: serde_json::Value = serde_json::from_str(line).unwrap();
                    let job = ImportedJob::from_value(value).unwrap();
                    prop_assert_eq!(&JobRecord::from(&job), expected);
                }
            }
        }
    }

    #[test]
    fn invalid_files_say_why() {
        for (file, says) in [
            ("", "ends too early"),
            ("not json", "not a JSON export"),
            ("[1, 2]", "not a JSON export"),
            (r#"{"jobs": [{"id": 1}"#, "ends too early"),
            (r#"{"exported_at": "x", "total": 0}"#, "no jobs list"),
            (r#"{"total": 0, "jobs": [], "extra": 1}"#, "unexpected key"),
            (
                r#"{"total": 5, "jobs": []}"#,
                "says it holds 5 jobs but holds 0",
            ),
            (r#"{"total": 0, "jobs": []} trailing"#, "not a JSON export"),
        ] {
            let (result, _) = parse_str(file);
            let message = result.unwrap_err();
            assert!(message.contains(says), "{file:?}: {message}");
        }
    }
}
