//! Realistic demo data: a user with N varied jobs, loaded with `COPY` so a million rows take
//! seconds. The data exercises every export path: all statuses and sources, NULLs next to
//! empty strings, salaries, tags, notes with commas, quotes, CR/LF, non-Latin text and emoji,
//! and internal columns (`ai_parsed_data`, `last_synced_at`) that exports must leave out.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use workers::timestamp::write_rfc3339;

const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex, Inc.",
    "Initech",
    "\"Quoted\" Labs",
    "O'Reilly Media",
    "Smith & Sons",
    "Zürich Versicherung",
    "株式会社テスト",
    "Яндекс",
    "شركة المثال",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Pied Piper",
    "Vandelay Industries",
    "Soylent, Corp.",
    "Tyrell Corporation",
    "Cyberdyne Systems",
    "Nakatomi Trading",
    "Café Olé 🚀",
    "Wonka Industries",
    "Aperture Science",
    "Black Mesa",
    "Massive Dynamic",
];

const TITLES: &[&str] = &[
    "Senior Backend Engineer",
    "Staff Software Engineer",
    "Frontend Developer (React)",
    "Data Engineer",
    "Site Reliability Engineer",
    "Engineering Manager",
    "Product Designer",
    "Machine Learning Engineer",
    "Platform Engineer, Infrastructure",
    "Full-Stack Developer",
    "Développeur Rust",
    "バックエンドエンジニア",
    "Principal Engineer \"Payments\"",
    "DevOps Engineer / SRE",
];

const SOURCES: &[&str] = &[
    "linkedin",
    "indeed",
    "referral",
    "company_site",
    "glassdoor",
    "wellfound",
    "hackernews",
    "recruiter",
    "other",
];

const LOCATIONS: &[&str] = &[
    "San Francisco, CA",
    "New York, NY",
    "Berlin, Germany",
    "London, UK",
    "東京, 日本",
    "São Paulo, Brazil",
    "Nairobi, Kenya",
    "Remote",
    "Zürich",
    "Austin, TX",
];

const TAGS: &[&str] = &[
    "high-priority",
    "backend",
    "remote-first",
    "dream-job",
    "visa-sponsor",
    "follow-up",
    "référence",
    "急募",
    "🚀",
    "startup",
    "big-tech",
];

const NOTES: &[&str] = &[
    "Met recruiter at tech conference",
    "Referred by Sam, follow up next week",
    "They said: \"we'll get back to you\"",
    "Call went well.\nSecond round: system design.\nBring questions!",
    "Windows line endings\r\nin this note",
    "Salary negotiable, equity 0.1%",
    "面接は来週の火曜日です",
    "Собеседование прошло хорошо 👍",
    "🎉🎉 offer incoming?",
    "Comma, quote \" and newline\n all at once",
    "=SUM(A1:A2) looks like a formula",
    "",
    "  leading and trailing spaces  ",
    "Tab\tseparated\tthoughts",
    "Backslash \\ and a path C:\\jobs\\notes.txt",
];

/// The result of a seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub user_id: Uuid,
    pub created_user: bool,
    pub jobs: u64,
}

/// Adds `jobs` generated jobs to the user with `email` (created if missing). With
/// `replace`, the user's existing jobs are deleted first. The same `rng_seed` gives the same
/// data, apart from ids and times relative to now.
pub async fn seed(
    pool: &PgPool,
    email: &str,
    jobs: u64,
    replace: bool,
    rng_seed: u64,
) -> anyhow::Result<SeedReport> {
    seed_with_progress(pool, email, jobs, replace, rng_seed, |_| {}).await
}

/// [`seed`], telling `on_rows` how many jobs have been sent so far (about every 1 MiB).
pub async fn seed_with_progress(
    pool: &PgPool,
    email: &str,
    jobs: u64,
    replace: bool,
    rng_seed: u64,
    mut on_rows: impl FnMut(u64),
) -> anyhow::Result<SeedReport> {
    let (user_id, created_user) = crate::db::ensure_user(pool, email).await?;
    let mut tx = pool.begin().await?;
    if replace {
        sqlx::query("DELETE FROM jobs WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .context("deleting the user's jobs")?;
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY jobs (user_id, company_name, job_title, status, source, location, is_remote, \
             job_url, job_description, salary_range_min, salary_range_max, ai_match_score, \
             ai_reasoning, ai_parsed_data, notes, tags, applied_at, interview_at, offer_at, \
             rejected_at, scraped_at, created_at, updated_at, last_synced_at) FROM STDIN",
        )
        .await
        .context("starting COPY into jobs")?;

    let mut generator = Generator::new(rng_seed, user_id, Utc::now());
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..jobs {
        generator.row(i, &mut buf);
        if buf.len() >= 1 << 20 {
            copy.send(&buf[..]).await.context("sending rows")?;
            buf.clear();
            on_rows(i + 1);
        }
    }
    if !buf.is_empty() {
        copy.send(&buf[..]).await.context("sending rows")?;
    }
    on_rows(jobs);
    let inserted = copy.finish().await.context("finishing COPY")?;
    tx.commit().await?;
    // Fresh statistics so the first exports get good plans.
    sqlx::query("ANALYZE jobs").execute(pool).await?;
    Ok(SeedReport {
        user_id,
        created_user,
        jobs: inserted,
    })
}

/// SplitMix64: small, fast, and reproducible; quality is ample for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn micros(&mut self, max: Duration) -> Duration {
        Duration::microseconds(self.below(max.num_microseconds().unwrap_or(1).max(1) as u64) as i64)
    }
}

struct Generator {
    rng: Rng,
    user_id: String,
    now: DateTime<Utc>,
}

impl Generator {
    fn new(seed: u64, user_id: Uuid, now: DateTime<Utc>) -> Self {
        Generator {
            rng: Rng(seed),
            user_id: user_id.to_string(),
            now,
        }
    }

    /// Appends one row in COPY text format.
    fn row(&mut self, i: u64, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let company = r.pick(COMPANIES);
        let status = match r.below(100) {
            0..25 => "saved",
            25..60 => "applied",
            60..75 => "interview",
            75..80 => "offer",
            _ => "rejected",
        };
        // Old enough that every later event of the application is in the past.
        let created = self.now - Duration::days(90) - r.micros(Duration::days(365));
        let applied = (status != "saved" && (status != "rejected" || r.chance(85)))
            .then(|| created + r.micros(Duration::days(7)));
        let interview = (matches!(status, "interview" | "offer")
            || (status == "rejected" && r.chance(30)))
        .then(|| applied.unwrap_or(created) + Duration::days(3) + r.micros(Duration::days(21)));
        let offer = (status == "offer").then(|| {
            interview.unwrap_or(created) + Duration::days(2) + r.micros(Duration::days(14))
        });
        let rejected = (status == "rejected").then(|| {
            interview.or(applied).unwrap_or(created)
                + Duration::days(1)
                + r.micros(Duration::days(30))
        });
        let scraped = r
            .chance(30)
            .then(|| created - r.micros(Duration::hours(48)));
        let updated = [applied, interview, offer, rejected]
            .into_iter()
            .flatten()
            .fold(created, DateTime::max)
            .min(self.now);
        let synced = r.chance(20).then(|| updated + r.micros(Duration::hours(1)));

        let salary_min = r.chance(70).then(|| 50_000 + 5_000 * r.below(40) as i64);
        let salary_max = salary_min
            .filter(|_| r.chance(85))
            .map(|min| min + 10_000 + 5_000 * r.below(16) as i64);
        let score = r.chance(70).then(|| r.below(101));
        let source = r.chance(90).then(|| r.pick(SOURCES));
        let location = r.chance(90).then(|| r.pick(LOCATIONS));
        let remote = location == Some("Remote") || r.chance(35);
        let slug: String = company
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase();
        let url = r.chance(90).then(|| {
            format!(
                "https://careers.{}.example/jobs/{}?ref=pipeline&id={i}",
                if slug.is_empty() { "company" } else { &slug },
                r.below(100_000)
            )
        });
        let title = r.pick(TITLES);
        let description = r.chance(60).then(|| {
            format!(
                "{company} is hiring a {title}.\n\nYou will build scalable APIs, own services end to end, \
                 and mentor others. Requirements: {} years of experience, \"ownership\", and curiosity.\n\
                 Benefits: remote-friendly, 4 weeks PTO, learning budget.",
                2 + r.below(8)
            )
        });
        let reasoning = score.map(|s| {
            format!("Match {s}/100: overlapping skills in distributed systems, APIs; gaps: domain experience")
        });
        let parsed = r.chance(50).then(|| {
            format!(
                "{{\"skills\": [\"rust\", \"postgres\"], \"seniority\": \"{}\"}}",
                if r.chance(50) { "senior" } else { "mid" }
            )
        });
        let notes = r.chance(60).then(|| r.pick(NOTES));
        let tag_count = r.below(4) as usize;
        let mut tags: Vec<&str> = Vec::with_capacity(tag_count);
        for _ in 0..tag_count {
            let t = r.pick(TAGS);
            if !tags.contains(&t) {
                tags.push(t);
            }
        }

        let mut w = RowWriter { out, first: true };
        w.text(Some(&self.user_id));
        w.text(Some(company));
        w.text(Some(title));
        w.text(Some(status));
        w.text(source);
        w.text(location);
        w.text(Some(if remote { "t" } else { "f" }));
        w.text(url.as_deref());
        w.text(description.as_deref());
        w.int(salary_min);
        w.int(salary_max);
        w.int(score.map(|s| s as i64));
        w.text(reasoning.as_deref());
        w.text(parsed.as_deref());
        w.text(notes);
        w.text(Some(&array_literal(&tags)));
        for t in [
            applied,
            interview,
            offer,
            rejected,
            scraped,
            Some(created),
            Some(updated),
            synced,
        ] {
            w.time(t);
        }
        w.out.push(b'\n');
    }
}

/// A PostgreSQL array literal: `{"a","b"}` with `"` and `\` escaped.
fn array_literal(items: &[&str]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Writes COPY text-format fields: tab-separated, `\N` for NULL, backslash escapes.
struct RowWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl RowWriter<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(b'\t');
        }
        self.first = false;
    }

    fn text(&mut self, v: Option<&str>) {
        self.sep();
        let Some(v) = v else {
            self.out.extend_from_slice(b"\\N");
            return;
        };
        for &b in v.as_bytes() {
            match b {
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                _ => self.out.push(b),
            }
        }
    }

    fn int(&mut self, v: Option<i64>) {
        match v {
            Some(n) => self.text(Some(itoa::Buffer::new().format(n))),
            None => self.text(None),
        }
    }

    fn time(&mut self, v: Option<DateTime<Utc>>) {
        self.sep();
        match v {
            Some(t) => write_rfc3339(self.out, &t),
            None => self.out.extend_from_slice(b"\\N"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_escape_quotes_and_backslashes() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(
            array_literal(&["a", "b\"c", "d\\e"]),
            r#"{"a","b\"c","d\\e"}"#
        );
    }

    #[test]
    fn rows_have_every_column_and_one_line() {
        let mut g = Generator::new(7, Uuid::nil(), Utc::now());
        for i in 0..2_000 {
            let mut out = Vec::new();
            g.row(i, &mut out);
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(out.last(), Some(&b'\n'));
            assert_eq!(out.iter().filter(|&&b| b == b'\t').count(), 23);
        }
    }
}
