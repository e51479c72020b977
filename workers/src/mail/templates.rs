//! The two export emails (and their scheduled-backup variants), as plain text and as simple inline-styled HTML (no external images,
//! fonts or stylesheets). Every value put into the HTML goes through [`escape_html`].

use std::fmt;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Email;

/// What a "your export is ready" email says. Built by the worker from the database.
#[derive(Clone)]
pub struct ExportFacts {
    pub to: String,
    pub export_id: Uuid,
    pub file_name: String,
    /// `csv` or `json`.
    pub format: String,
    /// `none` or `gzip`.
    pub compression: String,
    pub row_count: u64,
    pub byte_size: u64,
    pub expires_at: DateTime<Utc>,
    /// The download link; presigned, so it is a secret until it expires.
    pub link: String,
    pub created_at: DateTime<Utc>,
    /// Set when the export is a scheduled backup.
    pub backup: Option<BackupFacts>,
}

/// What a backup's email adds: which schedule, when the next backup runs, how to pause.
#[derive(Clone)]
pub struct BackupFacts {
    pub schedule_name: String,
    /// `every Monday at 08:00 (Africa/Nairobi)`.
    pub cadence: String,
    /// `Monday, 7 December 2026 at 08:00 (Africa/Nairobi)`; `None` while paused.
    pub next_run: Option<String>,
    pub keep_last: i32,
    /// The signed pause link; a secret like the download link.
    pub pause_link: String,
}

impl fmt::Debug for BackupFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupFacts")
            .field("schedule_name", &self.schedule_name)
            .field("cadence", &self.cadence)
            .field("next_run", &self.next_run)
            .field("keep_last", &self.keep_last)
            .field("pause_link", &"<redacted>")
            .finish()
    }
}

impl BackupFacts {
    fn next_line(&self) -> String {
        match &self.next_run {
            Some(at) => format!("The next backup runs {at}."),
            None => {
                "This schedule is paused: no further backups run until you resume it.".to_owned()
            }
        }
    }

    fn text(&self) -> String {
        format!(
            "This is your scheduled backup \"{name}\", which runs {cadence}.\n\
             {next}\n\
             \n\
             To pause these backups, open:\n\
             \n\
             {pause}\n",
            name = self.schedule_name,
            cadence = self.cadence,
            next = self.next_line(),
            pause = self.pause_link,
        )
    }

    fn html(&self) -> String {
        format!(
            "<p style=\"padding:12px 16px;background:#f6f8fa;border-left:4px solid #1f6feb\">\
             This is your scheduled backup <strong>{name}</strong>, which runs {cadence}.<br>{next}</p>\n\
             <p style=\"{MUTED_STYLE}\">Don't need these backups any more? \
             <a href=\"{pause}\" style=\"color:#1f6feb\">Pause this schedule</a>.</p>\n",
            name = escape_html(&self.schedule_name),
            cadence = escape_html(&self.cadence),
            next = escape_html(&self.next_line()),
            pause = escape_html(&self.pause_link),
        )
    }
}

/// Leaves the link out: it carries the download token.
impl fmt::Debug for ExportFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportFacts")
            .field("to", &self.to)
            .field("export_id", &self.export_id)
            .field("file_name", &self.file_name)
            .field("format", &self.format)
            .field("compression", &self.compression)
            .field("row_count", &self.row_count)
            .field("byte_size", &self.byte_size)
            .field("expires_at", &self.expires_at)
            .field("link", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What a "your export failed" email says. Built by the worker from the database.
#[derive(Debug, Clone)]
pub struct FailureFacts {
    pub to: String,
    pub export_id: Uuid,
    pub file_name: String,
    pub error_code: String,
    /// A reason a user can read; technical details belong in the logs, not here.
    pub error_message: String,
    pub created_at: DateTime<Utc>,
    /// Set when the export is a scheduled backup.
    pub backup: Option<BackupFacts>,
}

/// Longest error message quoted in a failure email, in characters.
const MAX_REASON_CHARS: usize = 500;

/// Shared look of both emails.
const BODY_STYLE: &str = "margin:0;padding:24px;background:#f4f5f7;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#1f2328;font-size:15px;line-height:1.5";
const CARD_STYLE: &str =
    "max-width:560px;margin:0 auto;background:#ffffff;border-radius:8px;padding:28px";
const LABEL_STYLE: &str =
    "padding:4px 16px 4px 0;color:#57606a;white-space:nowrap;vertical-align:top";
const VALUE_STYLE: &str = "padding:4px 0;vertical-align:top";
const BUTTON_STYLE: &str = "display:inline-block;padding:12px 22px;background:#1f6feb;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:bold";
const MUTED_STYLE: &str = "color:#57606a;font-size:13px";

/// "Your PIPELINE export is ready": file, jobs, size, format, expiry and the link.
pub fn export_ready_email(f: &ExportFacts) -> Email {
    let jobs = count_jobs(f.row_count);
    let job_count = group_thousands(f.row_count);
    let size = human_size(f.byte_size);
    let format = describe_format(&f.format, &f.compression);
    let requested = readable_time(f.created_at);
    let expires = readable_time(f.expires_at);
    let (what, kept_label, kept, validity) = match &f.backup {
        None => (
            "export",
            "Expires",
            expires.clone(),
            format!("The link works until {expires}; after that, start a new export."),
        ),
        Some(b) => (
            "backup",
            "Kept",
            format!("while it is one of the newest {} backups", b.keep_last),
            format!(
                "The link works while this backup is kept (until {} newer backups exist), \
                 at most until {expires}.",
                b.keep_last
            ),
        ),
    };
    let backup_text = f
        .backup
        .as_ref()
        .map(|b| format!("\n{}", b.text()))
        .unwrap_or_default();
    let backup_html = f.backup.as_ref().map(BackupFacts::html).unwrap_or_default();

    let text = format!(
        "Hello,\n\
         \n\
         Your PIPELINE {what} of {jobs} is ready to download.\n\
         \n\
         File:      {file}\n\
         Jobs:      {job_count}\n\
         Size:      {size}\n\
         Format:    {format}\n\
         Requested: {requested}\n\
         {kept_label}:{pad}{kept}\n\
         \n\
         Download it here:\n\
         \n\
         {link}\n\
         \n\
         {validity} Anyone with the \
         link can download the file, so please do not forward this email.\n\
         {backup_text}\
         \n\
         Export id: {id}\n\
         \n\
         -- \n\
         PIPELINE\n",
        file = f.file_name,
        link = f.link,
        pad = " ".repeat(10 - kept_label.len()),
        id = f.export_id,
    );

    let rows = [
        ("File", f.file_name.as_str()),
        ("Jobs", job_count.as_str()),
        ("Size", size.as_str()),
        ("Format", format.as_str()),
        ("Requested", requested.as_str()),
        (kept_label, kept.as_str()),
    ];
    let link = escape_html(&f.link);
    let content = format!(
        "<h1 style=\"margin:0 0 16px;font-size:20px\">{title}</h1>\n\
         <p>Your {what} of {jobs} is ready to download.</p>\n\
         {table}\
         <p style=\"margin:24px 0\"><a href=\"{link}\" style=\"{BUTTON_STYLE}\">Download {file}</a></p>\n\
         <p>{validity} Anyone with the \
         link can download the file, so please do not forward this email.</p>\n\
         {backup_html}\
         <p style=\"{MUTED_STYLE}\">If the button does not work, copy this link into your \
         browser:<br><a href=\"{link}\" style=\"color:#1f6feb;word-break:break-all\">{link}</a></p>\n\
         <p style=\"{MUTED_STYLE}\">Export id: {id}</p>\n",
        table = facts_table(&rows),
        file = escape_html(&f.file_name),
        jobs = escape_html(&jobs),
        validity = escape_html(&validity),
        title = escape_html(&ready_title(f.backup.as_ref())),
        id = f.export_id,
    );

    let subject = match &f.backup {
        None => format!("Your PIPELINE export is ready: {}", f.file_name),
        Some(b) => format!(
            "Your PIPELINE backup \"{}\" is ready: {}",
            b.schedule_name, f.file_name
        ),
    };
    Email {
        to: f.to.clone(),
        subject,
        text,
        html: page(&ready_title(f.backup.as_ref()), &content),
        message_id: format!("export-{}-ready@pipeline-export", f.export_id),
    }
}

fn ready_title(backup: Option<&BackupFacts>) -> String {
    match backup {
        None => "Your PIPELINE export is ready".to_owned(),
        Some(_) => "Your PIPELINE backup is ready".to_owned(),
    }
}

/// "Your PIPELINE export failed": the reason, and what to do (retry, then support).
pub fn export_failed_email(f: &FailureFacts) -> Email {
    let reason = readable_reason(&f.error_message);
    let requested = readable_time(f.created_at);
    let backup_text = f
        .backup
        .as_ref()
        .map(|b| format!("\n{}", b.text()))
        .unwrap_or_default();
    let backup_html = f.backup.as_ref().map(BackupFacts::html).unwrap_or_default();

    let text = format!(
        "Hello,\n\
         \n\
         We could not create your PIPELINE export {file}.\n\
         \n\
         Reason: {reason}\n\
         (error code {code})\n\
         \n\
         What to do:\n\
         - Start the export again; most failures are temporary.\n\
         - If it fails again, contact support and quote export id {id}.\n\
         \n\
         Requested: {requested}\n\
         Export id: {id}\n\
         {backup_text}\
         \n\
         -- \n\
         PIPELINE\n",
        file = f.file_name,
        code = f.error_code,
        id = f.export_id,
    );

    let content = format!(
        "<h1 style=\"margin:0 0 16px;font-size:20px\">Your PIPELINE export failed</h1>\n\
         <p>We could not create your PIPELINE export <strong>{file}</strong>.</p>\n\
         <p style=\"padding:12px 16px;background:#fff1f0;border-left:4px solid #cf222e\">\
         {reason}<br><span style=\"{MUTED_STYLE}\">error code {code}</span></p>\n\
         <p style=\"margin-bottom:4px\"><strong>What to do</strong></p>\n\
         <ul style=\"margin-top:0\">\n\
         <li>Start the export again; most failures are temporary.</li>\n\
         <li>If it fails again, contact support and quote export id <code>{id}</code>.</li>\n\
         </ul>\n\
         <p style=\"{MUTED_STYLE}\">Requested: {requested}<br>Export id: {id}</p>\n\
         {backup_html}",
        file = escape_html(&f.file_name),
        reason = escape_html(&reason),
        code = escape_html(&f.error_code),
        requested = escape_html(&requested),
        id = f.export_id,
    );

    let subject = match &f.backup {
        None => "Your PIPELINE export failed".to_owned(),
        Some(b) => format!("Your PIPELINE backup \"{}\" failed", b.schedule_name),
    };
    Email {
        to: f.to.clone(),
        subject,
        text,
        html: page("Your PIPELINE export failed", &content),
        message_id: format!("export-{}-failed@pipeline-export", f.export_id),
    }
}

/// Escapes the five characters that matter in HTML text and in quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A byte count the way people read it, in SI units: `512 bytes`, `1.2 MB`, `3.4 GB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    match bytes {
        1 => "1 byte".to_owned(),
        0..1000 => format!("{bytes} bytes"),
        _ => {
            let mut value = bytes as f64 / 1000.0;
            let mut unit = 0;
            // 999.95 would print as "1000.0": move up a unit instead.
            while value >= 999.95 && unit < UNITS.len() - 1 {
                value /= 1000.0;
                unit += 1;
            }
            format!("{value:.1} {}", UNITS[unit])
        }
    }
}

/// `1 job`, `1,234 jobs`.
pub fn count_jobs(n: u64) -> String {
    if n == 1 {
        "1 job".to_owned()
    } else {
        format!("{} jobs", group_thousands(n))
    }
}

/// `1234567` → `1,234,567`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `CSV`, `JSON, gzip-compressed`, `PDF report`.
pub fn describe_format(format: &str, compression: &str) -> String {
    let name = match format.to_ascii_lowercase().as_str() {
        "csv" => "CSV".to_owned(),
        "json" => "JSON".to_owned(),
        "ndjson" => "NDJSON".to_owned(),
        "xlsx" => "Excel workbook".to_owned(),
        "pdf" => "PDF report".to_owned(),
        _ => format.to_owned(),
    };
    match compression.trim() {
        "" | "none" => name,
        other => format!("{name}, {other}-compressed"),
    }
}

/// `Wednesday, 11 March 2026 at 10:30 UTC`.
pub fn readable_time(at: DateTime<Utc>) -> String {
    at.format("%A, %-d %B %Y at %H:%M UTC").to_string()
}

/// The error message, or a generic sentence when it is empty; cut when very long.
fn readable_reason(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() {
        return "An unexpected error stopped the export.".to_owned();
    }
    match message.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// A two-column table of label / value, values escaped.
fn facts_table(rows: &[(&str, &str)]) -> String {
    let mut out = String::from(
        "<table role=\"presentation\" cellpadding=\"0\" cellspacing=\"0\" style=\"border-collapse:collapse\">\n",
    );
    for (label, value) in rows {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "<tr><td style=\"{LABEL_STYLE}\">{}</td><td style=\"{VALUE_STYLE}\">{}</td></tr>",
            escape_html(label),
            escape_html(value)
        );
    }
    out.push_str("</table>\n");
    out
}

/// The whole HTML document around `content` (already escaped).
fn page(title: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n\
         <html lang=\"en\">\n\
         <head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head>\n\
         <body style=\"{BODY_STYLE}\">\n\
         <div style=\"{CARD_STYLE}\">\n\
         {content}\
         </div>\n\
         <p style=\"text-align:center;{MUTED_STYLE}\">PIPELINE</p>\n\
         </body>\n\
         </html>\n",
        title = escape_html(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn export_id() -> Uuid {
        Uuid::parse_str("0195a3c2-7f00-7000-8000-000000000001").unwrap()
    }

    fn ready() -> ExportFacts {
        ExportFacts {
            to: "user@example.com".to_owned(),
            export_id: export_id(),
            file_name: "pipeline-jobs-2026-03-04.csv.gz".to_owned(),
            format: "csv".to_owned(),
            compression: "gzip".to_owned(),
            row_count: 12_345,
            byte_size: 1_234_567,
            expires_at: Utc.with_ymd_and_hms(2026, 3, 11, 10, 30, 0).unwrap(),
            link: "https://files.example.com/e/1?X-Amz-Signature=abc&X-Amz-Expires=604800"
                .to_owned(),
            created_at: Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap(),
            backup: None,
        }
    }

    fn backup() -> BackupFacts {
        BackupFacts {
            schedule_name: "Monday <backup>".to_owned(),
            cadence: "every Monday at 08:00 (Africa/Nairobi)".to_owned(),
            next_run: Some("Monday, 9 March 2026 at 08:00 (Africa/Nairobi)".to_owned()),
            keep_last: 4,
            pause_link: "https://exports.example.com/p/abc.1.p.def".to_owned(),
        }
    }

    #[test]
    fn backup_emails_name_the_schedule_the_next_run_and_the_pause_link() {
        let mut facts = ready();
        facts.backup = Some(backup());
        let e = export_ready_email(&facts);
        assert_eq!(
            e.subject,
            "Your PIPELINE backup \"Monday <backup>\" is ready: pipeline-jobs-2026-03-04.csv.gz"
        );
        assert!(e.text.contains("Monday <backup>"), "{}", e.text);
        assert!(e.html.contains("Monday &lt;backup&gt;"), "{}", e.html);
        for body in [&e.text, &e.html] {
            assert!(
                body.contains("Monday, 9 March 2026 at 08:00 (Africa/Nairobi)"),
                "{body}"
            );
            assert!(
                body.contains("https://exports.example.com/p/abc.1.p.def"),
                "{body}"
            );
            assert!(body.contains("newest 4 backups"), "{body}");
        }
        let mut failure = failed();
        let mut paused = backup();
        paused.next_run = None;
        failure.backup = Some(paused);
        let e = export_failed_email(&failure);
        assert_eq!(e.subject, "Your PIPELINE backup \"Monday <backup>\" failed");
        assert!(e.text.contains("paused"), "{}", e.text);
        assert!(e.html.contains("/p/abc.1.p.def"), "{}", e.html);
    }

    fn failed() -> FailureFacts {
        FailureFacts {
            to: "user@example.com".to_owned(),
            export_id: export_id(),
            file_name: "pipeline-jobs-2026-03-04.json".to_owned(),
            error_code: "DATABASE_UNAVAILABLE".to_owned(),
            error_message: "The database did not answer in time.".to_owned(),
            created_at: Utc.with_ymd_and_hms(2026, 3, 4, 10, 30, 0).unwrap(),
            backup: None,
        }
    }

    #[test]
    fn ready_email_states_the_facts() {
        let e = export_ready_email(&ready());
        assert_eq!(e.to, "user@example.com");
        assert_eq!(
            e.subject,
            "Your PIPELINE export is ready: pipeline-jobs-2026-03-04.csv.gz"
        );
        assert_eq!(
            e.message_id,
            "export-0195a3c2-7f00-7000-8000-000000000001-ready@pipeline-export"
        );
        for body in [&e.text, &e.html] {
            assert!(body.contains("pipeline-jobs-2026-03-04.csv.gz"), "{body}");
            assert!(body.contains("12,345 jobs"), "{body}");
            assert!(body.contains("1.2 MB"), "{body}");
            assert!(body.contains("CSV, gzip-compressed"), "{body}");
            assert!(
                body.contains("Wednesday, 11 March 2026 at 10:30 UTC"),
                "{body}"
            );
            assert!(
                body.contains("0195a3c2-7f00-7000-8000-000000000001"),
                "{body}"
            );
        }
        // The link stands on its own line in the text part...
        assert!(
            e.text
                .lines()
                .any(|l| l
                    == "https://files.example.com/e/1?X-Amz-Signature=abc&X-Amz-Expires=604800"),
            "{}",
            e.text
        );
        // ...and is a button (with its `&` escaped) in the HTML part.
        assert!(e.html.contains(
            "<a href=\"https://files.example.com/e/1?X-Amz-Signature=abc&amp;X-Amz-Expires=604800\" style=\"display:inline-block"
        ), "{}", e.html);
        assert!(!e.html.contains("abc&X-Amz"), "{}", e.html);
    }

    #[test]
    fn failed_email_gives_the_reason_and_what_to_do() {
        let e = export_failed_email(&failed());
        assert_eq!(e.subject, "Your PIPELINE export failed");
        assert_eq!(
            e.message_id,
            "export-0195a3c2-7f00-7000-8000-000000000001-failed@pipeline-export"
        );
        for body in [&e.text, &e.html] {
            assert!(
                body.contains("The database did not answer in time."),
                "{body}"
            );
            assert!(body.contains("DATABASE_UNAVAILABLE"), "{body}");
            assert!(body.contains("pipeline-jobs-2026-03-04.json"), "{body}");
            assert!(body.contains("again"), "{body}");
            assert!(body.contains("contact support"), "{body}");
            assert!(
                body.contains("0195a3c2-7f00-7000-8000-000000000001"),
                "{body}"
            );
        }
    }

    #[test]
    fn message_ids_are_deterministic_per_export_and_kind() {
        assert_eq!(
            export_ready_email(&ready()).message_id,
            export_ready_email(&ready()).message_id
        );
        assert_ne!(
            export_ready_email(&ready()).message_id,
            export_failed_email(&failed()).message_id
        );
        let mut other = ready();
        other.export_id = Uuid::new_v4();
        assert_ne!(
            export_ready_email(&ready()).message_id,
            export_ready_email(&other).message_id
        );
    }

    #[test]
    fn every_interpolated_value_is_escaped_in_html() {
        let evil = "<script>alert(\"x\")</script>'&";
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;";
        let mut r = ready();
        r.file_name = evil.to_owned();
        r.format = evil.to_owned();
        r.compression = evil.to_owned();
        r.link = format!("https://x.example/\"><script>{evil}");
        let html = export_ready_email(&r).html;
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("\"><script"), "{html}");
        assert!(html.contains(escaped), "{html}");

        let mut f = failed();
        f.file_name = evil.to_owned();
        f.error_code = evil.to_owned();
        f.error_message = evil.to_owned();
        let html = export_failed_email(&f).html;
        assert!(!html.contains("<script>"), "{html}");
        assert_eq!(html.matches(escaped).count(), 3, "{html}");
    }

    #[test]
    fn escape_html_handles_each_special_character() {
        assert_eq!(escape_html("plain"), "plain");
        assert_eq!(
            escape_html("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape_html("&amp;"), "&amp;amp;");
        assert_eq!(escape_html("é ✓"), "é ✓");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        let cases = [
            (0, "0 bytes"),
            (1, "1 byte"),
            (999, "999 bytes"),
            (1_000, "1.0 kB"),
            (1_234, "1.2 kB"),
            (999_949, "999.9 kB"),
            (999_950, "1.0 MB"),
            (1_200_000, "1.2 MB"),
            (1_234_567, "1.2 MB"),
            (346_000_000, "346.0 MB"),
            (57_000_000_000, "57.0 GB"),
            (u64::MAX, "18.4 EB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(human_size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn counts_and_formats_read_well() {
        assert_eq!(count_jobs(0), "0 jobs");
        assert_eq!(count_jobs(1), "1 job");
        assert_eq!(count_jobs(999), "999 jobs");
        assert_eq!(count_jobs(1_000), "1,000 jobs");
        assert_eq!(count_jobs(1_000_000), "1,000,000 jobs");
        assert_eq!(describe_format("json", "none"), "JSON");
        assert_eq!(describe_format("CSV", ""), "CSV");
        assert_eq!(describe_format("csv", "gzip"), "CSV, gzip-compressed");
        assert_eq!(describe_format("xlsx", "none"), "Excel workbook");
        assert_eq!(describe_format("pdf", "none"), "PDF report");
        assert_eq!(describe_format("ndjson", "gzip"), "NDJSON, gzip-compressed");
    }

    #[test]
    fn reasons_fall_back_and_are_cut() {
        let mut f = failed();
        f.error_message = "  ".to_owned();
        assert!(
            export_failed_email(&f)
                .text
                .contains("An unexpected error stopped the export.")
        );
        let long = "é".repeat(2 * MAX_REASON_CHARS);
        let cut = readable_reason(&long);
        assert_eq!(cut.chars().count(), MAX_REASON_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn html_has_no_external_resources() {
        for html in [
            export_ready_email(&ready()).html,
            export_failed_email(&failed()).html,
        ] {
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<link"), "{html}");
            assert!(!html.contains("@import"), "{html}");
            assert!(!html.contains("src="), "{html}");
        }
    }

    #[test]
    fn debug_hides_the_link() {
        assert!(!format!("{:?}", ready()).contains("X-Amz-Signature"));
    }
}
