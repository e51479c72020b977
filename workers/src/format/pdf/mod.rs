//! PDF: a report a person hands to a career counselor (background exports and backups only).
//!
//! Page one sums the search up: the period, how many jobs, applications, interview and offer
//! rates, totals by status and by source, applications per week as a bar chart, and salary
//! ranges. The pages after it list the jobs (company, title, status, applied date,
//! location), newest first like every export, with the header repeated on each page.
//!
//! Unlike the other formats a report is not streamed: its first page needs every row. The
//! writer keeps the counts and one short line per job, so a report is capped at
//! [`MAX_ROWS`] jobs (a larger export is refused before it starts), and the document is
//! built at the end, on the blocking pool, into a temporary file the engine streams out.
//!
//! Definitions (also in the README): a job counts as an *application* when it has an
//! `applied_at` or a status past `saved`; as *interviewed* when it has an `interview_at` or
//! the status `interview` or `offer`; as an *offer* when it has an `offer_at` or the status
//! `offer`. The interview and offer rates are shares of applications. Weeks start on
//! Monday (UTC) and count applications by `applied_at`.

mod fonts;
mod render;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

pub use self::fonts::{SYSTEM_FALLBACKS, use_fallback_fonts};
use super::{ExportMeta, RowWriter};
use crate::filters::ExportFilters;
use crate::job::{Field, JobRecord};

/// Most jobs one report lists (about 200 pages).
pub const MAX_ROWS: u64 = 10_000;

/// The fields a report reads; the only ones its query selects.
pub const FIELDS: [Field; 11] = [
    Field::CompanyName,
    Field::JobTitle,
    Field::Status,
    Field::Source,
    Field::Location,
    Field::IsRemote,
    Field::SalaryRangeMin,
    Field::SalaryRangeMax,
    Field::AppliedAt,
    Field::InterviewAt,
    Field::OfferAt,
];

/// The pipeline's statuses, in the order a search moves through them.
pub const STATUSES: [&str; 5] = ["saved", "applied", "interview", "offer", "rejected"];

/// The label of the sources beyond the largest few (in parentheses, like `(none)`, so that
/// it cannot be taken for a source of that name).
pub const OTHER_SOURCES: &str = "(other sources)";

/// One line of the jobs table.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub company: String,
    pub title: String,
    pub status: String,
    pub applied: Option<NaiveDate>,
    pub location: String,
}

/// Lowest, median and highest of some salaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub jobs: usize,
    pub lowest: i32,
    pub median_min: i32,
    pub median_max: i32,
    pub highest: i32,
}

/// Everything the report shows, gathered row by row.
#[derive(Debug, Default)]
pub struct Report {
    pub exported_at: Option<DateTime<Utc>>,
    pub filters: ExportFilters,
    pub jobs: u64,
    pub by_status: [u64; 5],
    /// Jobs with a status the pipeline does not know (never in a valid database).
    pub other_status: u64,
    pub by_source: HashMap<String, u64>,
    pub remote: u64,
    pub applications: u64,
    pub interviewed: u64,
    pub offers: u64,
    /// Applications per week, keyed by the week's Monday.
    pub weeks: BTreeMap<NaiveDate, u64>,
    pub first_applied: Option<NaiveDate>,
    pub last_applied: Option<NaiveDate>,
    /// (min, max) salary of every job that has one, and whether it is an offer.
    pub salaries: Vec<(Option<i32>, Option<i32>, bool)>,
    pub lines: Vec<Line>,
}

impl Report {
    pub fn add(&mut self, job: &JobRecord) {
        self.jobs += 1;
        match STATUSES.iter().position(|s| *s == job.status) {
            Some(i) => self.by_status[i] += 1,
            None => self.other_status += 1,
        }
        let source = job.source.as_deref().unwrap_or("").trim();
        *self
            .by_source
            .entry(if source.is_empty() { "(none)" } else { source }.to_owned())
            .or_default() += 1;
        self.remote += u64::from(job.is_remote);

        let status = job.status.as_str();
        let applied = job.applied_at.is_some() || status != "saved";
        let interviewed = job.interview_at.is_some() || matches!(status, "interview" | "offer");
        let offer = job.offer_at.is_some() || status == "offer";
        self.applications += u64::from(applied);
        self.interviewed += u64::from(interviewed);
        self.offers += u64::from(offer);

        let applied_on = job.applied_at.map(|t| t.date_naive());
        if let Some(day) = applied_on {
            *self.weeks.entry(monday_of(day)).or_default() += 1;
            self.first_applied = Some(self.first_applied.map_or(day, |d| d.min(day)));
            self.last_applied = Some(self.last_applied.map_or(day, |d| d.max(day)));
        }
        if job.salary_range_min.is_some() || job.salary_range_max.is_some() {
            self.salaries
                .push((job.salary_range_min, job.salary_range_max, offer));
        }
        self.lines.push(Line {
            company: job.company_name.clone(),
            title: job.job_title.clone(),
            status: job.status.clone(),
            applied: applied_on,
            location: match (&job.location, job.is_remote) {
                (Some(l), true) if !l.to_lowercase().contains("remote") => format!("{l} (remote)"),
                (Some(l), _) => l.clone(),
                (None, true) => "Remote".to_owned(),
                (None, false) => String::new(),
            },
        });
    }

    /// The most common sources, at most `n`, the rest summed as [`OTHER_SOURCES`].
    pub fn top_sources(&self, n: usize) -> Vec<(String, u64)> {
        let mut sources: Vec<(String, u64)> = self
            .by_source
            .iter()
            .map(|(s, c)| (s.clone(), *c))
            .collect();
        sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if sources.len() > n {
            let rest: u64 = sources[n - 1..].iter().map(|s| s.1).sum();
            sources.truncate(n - 1);
            sources.push((OTHER_SOURCES.to_owned(), rest));
        }
        sources
    }

    /// Applications per week over the last `n` weeks that end with the last application,
    /// empty weeks included, oldest first.
    pub fn recent_weeks(&self, n: usize) -> Vec<(NaiveDate, u64)> {
        let (Some(first), Some(last)) = (self.first_applied, self.last_applied) else {
            return Vec::new();
        };
        let last = monday_of(last);
        let mut week = monday_of(first).max(last - Duration::weeks(n as i64 - 1));
        let mut out = Vec::new();
        while week <= last {
            out.push((week, self.weeks.get(&week).copied().unwrap_or(0)));
            week += Duration::weeks(1);
        }
        out
    }

    /// The salary spread of all jobs with a salary (`offers_only` = of offers).
    pub fn spread(&self, offers_only: bool) -> Option<Spread> {
        let chosen = self.salaries.iter().filter(|s| !offers_only || s.2);
        // A job with only one end of a range counts it for both.
        let mut mins: Vec<i32> = chosen.clone().filter_map(|s| s.0.or(s.1)).collect();
        let mut maxs: Vec<i32> = chosen.filter_map(|s| s.1.or(s.0)).collect();
        if mins.is_empty() {
            return None;
        }
        mins.sort_unstable();
        maxs.sort_unstable();
        Some(Spread {
            jobs: mins.len(),
            lowest: mins[0],
            median_min: median(&mins),
            median_max: median(&maxs),
            highest: *maxs.last().expect("as many maxima as minima"),
        })
    }

    /// `part` as a whole percentage of `whole`.
    pub fn rate(part: u64, whole: u64) -> Option<u64> {
        (whole > 0).then(|| (part * 100 + whole / 2) / whole)
    }
}

fn median(sorted: &[i32]) -> i32 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        ((i64::from(sorted[n / 2 - 1]) + i64::from(sorted[n / 2])) / 2) as i32
    }
}

fn monday_of(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

pub struct PdfWriter {
    report: Report,
}

impl PdfWriter {
    pub fn new(filters: &ExportFilters) -> Self {
        PdfWriter {
            report: Report {
                filters: filters.clone(),
                ..Report::default()
            },
        }
    }
}

impl RowWriter for PdfWriter {
    fn begin(&mut self, _out: &mut Vec<u8>, meta: &ExportMeta) {
        self.report.exported_at = Some(meta.exported_at);
    }

    fn row(&mut self, _out: &mut Vec<u8>, job: &JobRecord) {
        self.report.add(job);
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    fn take_file(&mut self) -> io::Result<Option<File>> {
        let report = std::mem::take(&mut self.report);
        let pdf = render::render(&report)?;
        let mut file = tempfile()?;
        io::Write::write_all(&mut file, &pdf)?;
        io::Seek::rewind(&mut file)?;
        Ok(Some(file))
    }
}

/// A file in the temporary directory, unlinked at once: the handle keeps it until dropped.
pub(crate) fn tempfile() -> io::Result<File> {
    let path = std::env::temp_dir().join(format!(
        "pipeline-export-{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn job(
        status: &str,
        applied: Option<(i32, u32, u32)>,
        salary: (Option<i32>, Option<i32>),
    ) -> JobRecord {
        JobRecord {
            company_name: "Acme".into(),
            job_title: "Engineer".into(),
            status: status.into(),
            applied_at: applied.map(|(y, m, d)| Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap()),
            salary_range_min: salary.0,
            salary_range_max: salary.1,
            ..JobRecord::default()
        }
    }

    #[test]
    fn counts_rates_weeks_and_salaries() {
        let mut r = Report::default();
        r.add(&job("saved", None, (None, None)));
        r.add(&job("applied", Some((2026, 3, 2)), (Some(100), Some(150))));
        r.add(&job("applied", Some((2026, 3, 8)), (Some(120), None)));
        r.add(&job("interview", Some((2026, 3, 18)), (None, None)));
        r.add(&job("offer", Some((2026, 3, 3)), (Some(200), Some(260))));
        r.add(&job("rejected", None, (None, None)));
        assert_eq!(r.jobs, 6);
        assert_eq!(r.by_status, [1, 2, 1, 1, 1]);
        // Rejected without a date still went past `saved`.
        assert_eq!((r.applications, r.interviewed, r.offers), (5, 2, 1));
        assert_eq!(Report::rate(r.interviewed, r.applications), Some(40));
        assert_eq!(Report::rate(1, 0), None);
        let monday = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        // 2 and 3 and 8 March are one week (Monday the 2nd); the 18th is two weeks later.
        assert_eq!(
            r.recent_weeks(52),
            [(monday(2), 3), (monday(9), 0), (monday(16), 1)]
        );
        assert_eq!(r.recent_weeks(2), [(monday(9), 0), (monday(16), 1)]);
        let all = r.spread(false).unwrap();
        assert_eq!(
            (
                all.jobs,
                all.lowest,
                all.median_min,
                all.median_max,
                all.highest
            ),
            (3, 100, 120, 150, 260)
        );
        assert_eq!(r.spread(true).unwrap().median_min, 200);
        assert_eq!(r.lines.len(), 6);
        assert_eq!(r.lines[1].applied, Some(monday(2)));
    }

    #[test]
    fn sources_beyond_the_top_are_summed() {
        let mut r = Report::default();
        for (source, n) in [("linkedin", 5), ("indeed", 3), ("referral", 2), ("x", 1)] {
            for _ in 0..n {
                r.add(&JobRecord {
                    source: Some(source.into()),
                    status: "saved".into(),
                    ..JobRecord::default()
                });
            }
        }
        r.add(&JobRecord {
            status: "saved".into(),
            ..JobRecord::default()
        });
        assert_eq!(
            r.top_sources(3),
            [
                ("linkedin".to_owned(), 5),
                ("indeed".to_owned(), 3),
                (OTHER_SOURCES.to_owned(), 4)
            ]
        );
        assert_eq!(r.top_sources(10).len(), 5);
    }
}
