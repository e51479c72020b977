//! Lays a [`Report`] out on A4 pages with krilla: the summary page, then the jobs table.

use std::collections::HashMap;
use std::io;

use chrono::{DateTime, NaiveDate, Utc};
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

use super::fonts::{Face, FontSet};
use super::{Line, Report, STATUSES};

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 48.0;
const CONTENT: f32 = WIDTH - 2.0 * MARGIN;

/// Table rows on each page after the first.
pub const ROWS_PER_PAGE: usize = 48;
const ROW_HEIGHT: f32 = 13.5;
/// The jobs table: heading, width, and which part of a line it shows.
const COLUMNS: [(&str, f32); 5] = [
    ("Company", 130.0),
    ("Title", 160.0),
    ("Status", 58.0),
    ("Applied", 62.0),
    ("Location", 89.0),
];
/// Weeks the applications chart shows, ending with the last application.
pub const CHART_WEEKS: usize = 26;
/// Sources listed by name; the rest are summed as one bar.
const SOURCES_SHOWN: usize = 8;

type Rgb = (u8, u8, u8);
const INK: Rgb = (15, 23, 42);
const MUTED: Rgb = (100, 116, 139);
const PANEL: Rgb = (241, 245, 249);
const RULE: Rgb = (203, 213, 225);
const ACCENT: Rgb = (37, 99, 235);

fn status_color(status: &str) -> Rgb {
    match status {
        "saved" => (148, 163, 184),
        "applied" => (59, 130, 246),
        "interview" => (245, 158, 11),
        "offer" => (16, 185, 129),
        "rejected" => (239, 68, 68),
        _ => MUTED,
    }
}

/// Renders the whole report.
pub fn render(report: &Report) -> io::Result<Vec<u8>> {
    let fonts = FontSet::get();
    let mut faces = HashMap::new();
    for face in [fonts.regular, fonts.bold]
        .into_iter()
        .chain(fonts.fallbacks.iter().copied())
    {
        let font = Font::new(face.data.into(), face.index)
            .ok_or_else(|| io::Error::other("a report font could not be read"))?;
        faces.insert(key(&face), font);
    }

    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title("Job search report".to_owned())
            .creator("pipeline-export".to_owned())
            .language("en".to_owned()),
    );
    let table_pages = report.lines.len().div_ceil(ROWS_PER_PAGE);
    let pages = 1 + table_pages;
    // Draws one page: `draw` gets the page's canvas and its number (from 1).
    let mut number = 0;
    let mut add_page = |draw: &mut dyn FnMut(&mut Canvas)| {
        number += 1;
        let settings = PageSettings::from_wh(WIDTH, HEIGHT).expect("A4 is a valid size");
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        let mut canvas = Canvas {
            surface: &mut surface,
            fonts: &fonts,
            faces: &faces,
        };
        draw(&mut canvas);
        footer(&mut canvas, report, number, pages);
        surface.finish();
        page.finish();
    };
    add_page(&mut |canvas| summary(canvas, report));
    for (i, lines) in report.lines.chunks(ROWS_PER_PAGE).enumerate() {
        add_page(&mut |canvas| table(canvas, report, lines, i == 0));
    }
    document
        .finish()
        .map_err(|e| io::Error::other(format!("building the PDF: {e:?}")))
}

fn key(face: &Face) -> (usize, u32) {
    (face.data.as_ptr() as usize, face.index)
}

/// How a piece of text is set: its size in points, its weight and its colour.
#[derive(Clone, Copy)]
struct Style {
    size: f32,
    bold: bool,
    color: Rgb,
}

impl Style {
    const fn new(size: f32, bold: bool, color: Rgb) -> Style {
        Style { size, bold, color }
    }
}

/// A page's surface with the report's fonts: text, boxes and lines in points, y downwards.
struct Canvas<'c, 's> {
    surface: &'c mut Surface<'s>,
    fonts: &'c FontSet,
    faces: &'c HashMap<(usize, u32), Font>,
}

impl Canvas<'_, '_> {
    fn fill(&mut self, color: Rgb) {
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(Fill {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            opacity: NormalizedF32::ONE,
            rule: Default::default(),
        }));
    }

    /// `text` with its baseline at `y`, starting at `x`, falling back to other fonts where
    /// the primary one lacks a character.
    fn text(&mut self, x: f32, y: f32, style: Style, text: &str) {
        let Style { size, bold, color } = style;
        self.fill(color);
        let mut x = x;
        for (face, run) in self.fonts.runs(text, bold) {
            let font = self.faces[&key(&face)].clone();
            self.surface.draw_text(
                Point::from_xy(x, y),
                font,
                size,
                run,
                false,
                TextDirection::Auto,
            );
            x += self.fonts.width(run, bold, size);
        }
    }

    /// `text` cut to `max` points wide.
    fn text_fit(&mut self, x: f32, y: f32, style: Style, text: &str, max: f32) {
        let fitted = self.fonts.fit(text, style.bold, style.size, max);
        self.text(x, y, style, &fitted);
    }

    /// `text` ending at `right`.
    fn text_right(&mut self, right: f32, y: f32, style: Style, text: &str) {
        let width = self.fonts.width(text, style.bold, style.size);
        self.text(right - width, y, style, text);
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        let Some(rect) = Rect::from_xywh(x, y, w.max(0.01), h.max(0.01)) else {
            return;
        };
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        if let Some(path) = path.finish() {
            self.fill(color);
            self.surface.draw_path(&path);
        }
    }

    fn line(&mut self, from: (f32, f32), to: (f32, f32), color: Rgb, width: f32) {
        let mut path = PathBuilder::new();
        path.move_to(from.0, from.1);
        path.line_to(to.0, to.1);
        if let Some(path) = path.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(Stroke {
                paint: rgb::Color::new(color.0, color.1, color.2).into(),
                width,
                ..Stroke::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
        }
    }
}

fn summary(c: &mut Canvas, r: &Report) {
    c.text(
        MARGIN,
        76.0,
        Style::new(22.0, true, INK),
        "Job search report",
    );
    c.text_fit(
        MARGIN,
        96.0,
        Style::new(10.0, false, MUTED),
        &period(r),
        CONTENT,
    );
    let exported = r.exported_at.map(|t| date_time(&t)).unwrap_or_default();
    let facts = format!(
        "Exported {exported} · {} · Filters: {}",
        plural(r.jobs, "job"),
        describe_filters(r)
    );
    c.text_fit(
        MARGIN,
        110.0,
        Style::new(9.0, false, MUTED),
        &facts,
        CONTENT,
    );

    // The four headline figures.
    let top = 126.0;
    let gap = 10.0;
    let w = (CONTENT - 3.0 * gap) / 4.0;
    let of_apps = |n: u64| {
        format!(
            "{} of {}",
            thousands(n as i64),
            plural(r.applications, "application")
        )
    };
    let figures = [
        (
            "Jobs",
            thousands(r.jobs as i64),
            format!("{} remote", thousands(r.remote as i64)),
        ),
        (
            "Applications",
            thousands(r.applications as i64),
            Report::rate(r.applications, r.jobs)
                .map_or("no jobs".into(), |p| format!("{p}% of jobs")),
        ),
        (
            "Interview rate",
            percent(r.interviewed, r.applications),
            of_apps(r.interviewed),
        ),
        (
            "Offer rate",
            percent(r.offers, r.applications),
            of_apps(r.offers),
        ),
    ];
    for (i, (label, value, note)) in figures.iter().enumerate() {
        let x = MARGIN + i as f32 * (w + gap);
        c.rect(x, top, w, 60.0, PANEL);
        c.text(x + 10.0, top + 16.0, Style::new(8.5, false, MUTED), label);
        c.text(x + 10.0, top + 38.0, Style::new(18.0, true, INK), value);
        c.text_fit(
            x + 10.0,
            top + 52.0,
            Style::new(8.0, false, MUTED),
            note,
            w - 20.0,
        );
    }

    // Totals by status and by source, side by side.
    let top = 214.0;
    let half = (CONTENT - 20.0) / 2.0;
    c.text(MARGIN, top, Style::new(12.0, true, INK), "By status");
    let statuses: Vec<(String, u64, Rgb)> = STATUSES
        .iter()
        .zip(r.by_status)
        .map(|(s, n)| (s.to_string(), n, status_color(s)))
        .chain((r.other_status > 0).then(|| ("other".to_owned(), r.other_status, MUTED)))
        .collect();
    bars(c, MARGIN, top + 12.0, half, &statuses);
    let x = MARGIN + half + 20.0;
    c.text(x, top, Style::new(12.0, true, INK), "By source");
    let sources: Vec<(String, u64, Rgb)> = r
        .top_sources(SOURCES_SHOWN)
        .into_iter()
        .map(|(s, n)| {
            let color = if s == super::OTHER_SOURCES {
                MUTED
            } else {
                ACCENT
            };
            (s, n, color)
        })
        .collect();
    bars(c, x, top + 12.0, half, &sources);

    week_chart(c, r, 400.0);
    salaries(c, r, 610.0);
}

/// Horizontal bars: a label, a bar as long as its share of the largest, and the count.
fn bars(c: &mut Canvas, x: f32, top: f32, width: f32, rows: &[(String, u64, Rgb)]) {
    let label_w = 78.0;
    let count_w = 44.0;
    let bar_max = width - label_w - count_w;
    let largest = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    for (i, (label, n, color)) in rows.iter().enumerate() {
        let y = top + i as f32 * 18.0;
        c.text_fit(
            x,
            y + 11.0,
            Style::new(9.0, false, INK),
            label,
            label_w - 6.0,
        );
        let len = bar_max * (*n as f32 / largest as f32);
        c.rect(x + label_w, y + 3.0, bar_max, 10.0, PANEL);
        if *n > 0 {
            c.rect(x + label_w, y + 3.0, len.max(1.5), 10.0, *color);
        }
        c.text_right(
            x + width,
            y + 11.0,
            Style::new(9.0, true, INK),
            &thousands(*n as i64),
        );
    }
    if rows.is_empty() {
        c.text(x, top + 11.0, Style::new(9.0, false, MUTED), "No jobs");
    }
}

fn week_chart(c: &mut Canvas, r: &Report, top: f32) {
    c.text(
        MARGIN,
        top,
        Style::new(12.0, true, INK),
        "Applications per week",
    );
    let weeks = r.recent_weeks(CHART_WEEKS);
    if weeks.is_empty() {
        c.text(
            MARGIN,
            top + 24.0,
            Style::new(9.0, false, MUTED),
            "No applications with an applied date.",
        );
        return;
    }
    let note = format!(
        "Weeks from Monday (UTC), by applied date{}",
        if r.first_applied.map(super::monday_of) < weeks.first().map(|w| w.0) {
            format!("; the last {CHART_WEEKS} weeks")
        } else {
            String::new()
        }
    );
    c.text(MARGIN, top + 14.0, Style::new(8.0, false, MUTED), &note);

    let axis_w = 28.0;
    let chart_top = top + 30.0;
    let chart_h = 130.0;
    let base = chart_top + chart_h;
    let left = MARGIN + axis_w;
    let width = CONTENT - axis_w;
    let largest = weeks.iter().map(|w| w.1).max().unwrap_or(0).max(1);
    // Gridlines at the largest value and about half of it, labelled.
    let half = if largest >= 2 { largest / 2 } else { 0 };
    for value in [largest, half] {
        if value == 0 {
            continue;
        }
        let y = base - chart_h * (value as f32 / largest as f32);
        c.line((left, y), (left + width, y), PANEL, 0.6);
        c.text_right(
            left - 5.0,
            y + 3.0,
            Style::new(7.5, false, MUTED),
            &thousands(value as i64),
        );
    }
    c.line((left, base), (left + width, base), RULE, 0.8);
    c.text_right(left - 5.0, base + 3.0, Style::new(7.5, false, MUTED), "0");

    let slot = width / weeks.len() as f32;
    let bar_w = (slot * 0.7).min(28.0);
    // A date label under every k-th bar, so that labels never overlap.
    let every = (55.0 / slot).ceil().max(1.0) as usize;
    for (i, (week, n)) in weeks.iter().enumerate() {
        let x = left + i as f32 * slot + (slot - bar_w) / 2.0;
        let h = chart_h * (*n as f32 / largest as f32);
        if *n > 0 {
            c.rect(x, base - h, bar_w, h, ACCENT);
            if bar_w >= 12.0 {
                let label = n.to_string();
                let lw = c.fonts.width(&label, false, 7.0);
                c.text(
                    x + (bar_w - lw) / 2.0,
                    base - h - 3.0,
                    Style::new(7.0, false, INK),
                    &label,
                );
            }
        }
        if i % every == 0 {
            let label = week.format("%-d %b").to_string();
            c.text(x, base + 12.0, Style::new(7.5, false, MUTED), &label);
        }
    }
    if let (Some((first, _)), Some((last, _))) = (weeks.first(), weeks.last()) {
        let span = format!(
            "{} to {}",
            day(*first),
            day(*last + chrono::Duration::days(6))
        );
        c.text_right(
            MARGIN + CONTENT,
            base + 26.0,
            Style::new(7.5, false, MUTED),
            &span,
        );
    }
}

fn salaries(c: &mut Canvas, r: &Report, top: f32) {
    c.text(MARGIN, top, Style::new(12.0, true, INK), "Salary ranges");
    let cols = [
        (MARGIN, "", 130.0),
        (MARGIN + 130.0, "Jobs", 60.0),
        (MARGIN + 190.0, "Lowest", 90.0),
        (MARGIN + 280.0, "Median range", 130.0),
        (MARGIN + 410.0, "Highest", 89.0),
    ];
    let header_y = top + 22.0;
    for (x, heading, _) in cols {
        c.text(x, header_y, Style::new(8.5, true, MUTED), heading);
    }
    c.line(
        (MARGIN, header_y + 5.0),
        (MARGIN + CONTENT, header_y + 5.0),
        RULE,
        0.6,
    );
    let rows = [
        ("Jobs with a salary", r.spread(false)),
        ("Offers", r.spread(true)),
    ];
    for (i, (label, spread)) in rows.iter().enumerate() {
        let y = header_y + 20.0 + i as f32 * 17.0;
        c.text(cols[0].0, y, Style::new(9.0, false, INK), label);
        match spread {
            Some(s) => {
                let values = [
                    thousands(s.jobs as i64),
                    thousands(i64::from(s.lowest)),
                    format!(
                        "{} – {}",
                        thousands(i64::from(s.median_min)),
                        thousands(i64::from(s.median_max))
                    ),
                    thousands(i64::from(s.highest)),
                ];
                for ((x, _, w), value) in cols[1..].iter().zip(values) {
                    c.text_fit(*x, y, Style::new(9.0, false, INK), &value, w - 6.0);
                }
            }
            None => c.text(cols[1].0, y, Style::new(9.0, false, MUTED), "none"),
        }
    }
    c.text(MARGIN, header_y + 58.0, Style::new(7.5, false, MUTED), "Salaries as stored on the jobs, in their own currency; a job with one end of a range counts it for both.");
}

fn table(c: &mut Canvas, r: &Report, lines: &[Line], first: bool) {
    let heading = if first {
        format!("Jobs ({})", thousands(r.jobs as i64))
    } else {
        "Jobs (continued)".to_owned()
    };
    c.text(MARGIN, 72.0, Style::new(14.0, true, INK), &heading);
    let header_top = 84.0;
    c.rect(MARGIN, header_top, CONTENT, 16.0, PANEL);
    let mut x = MARGIN;
    for (name, w) in COLUMNS {
        c.text(x + 4.0, header_top + 11.0, Style::new(8.5, true, INK), name);
        x += w;
    }
    for (i, line) in lines.iter().enumerate() {
        let top = header_top + 18.0 + i as f32 * ROW_HEIGHT;
        if i % 2 == 1 {
            c.rect(MARGIN, top, CONTENT, ROW_HEIGHT, (248, 250, 252));
        }
        let applied = line.applied.map(|d| d.to_string()).unwrap_or_default();
        let cells = [
            line.company.as_str(),
            line.title.as_str(),
            line.status.as_str(),
            applied.as_str(),
            line.location.as_str(),
        ];
        let mut x = MARGIN;
        for (col, (cell, (_, w))) in cells.iter().zip(COLUMNS).enumerate() {
            let color = if col == 2 { status_color(cell) } else { INK };
            c.text_fit(
                x + 4.0,
                top + 9.5,
                Style::new(8.0, col == 2, color),
                cell,
                w - 8.0,
            );
            x += w;
        }
    }
}

fn footer(c: &mut Canvas, r: &Report, page: usize, pages: usize) {
    let y = HEIGHT - 28.0;
    c.line((MARGIN, y - 10.0), (MARGIN + CONTENT, y - 10.0), RULE, 0.5);
    let exported = r.exported_at.map(|t| date_time(&t)).unwrap_or_default();
    c.text(
        MARGIN,
        y,
        Style::new(7.5, false, MUTED),
        &format!("PIPELINE export · {exported}"),
    );
    c.text_right(
        MARGIN + CONTENT,
        y,
        Style::new(7.5, false, MUTED),
        &format!("Page {page} of {pages}"),
    );
}

/// The title's period: the filters' dates if they set one, else the applications' span.
fn period(r: &Report) -> String {
    let f = &r.filters;
    match (f.created_from, f.created_to) {
        (Some(from), Some(to)) => format!("Jobs added from {} to {}", day_of(&from), day_of(&to)),
        (Some(from), None) => format!("Jobs added since {}", day_of(&from)),
        (None, Some(to)) => format!("Jobs added before {}", day_of(&to)),
        (None, None) => match (r.first_applied, r.last_applied) {
            (Some(a), Some(b)) if a == b => format!("Applications on {}", day(a)),
            (Some(a), Some(b)) => format!("Applications from {} to {}", day(a), day(b)),
            _ => "No applications with an applied date yet".to_owned(),
        },
    }
}

fn describe_filters(r: &Report) -> String {
    let f = &r.filters;
    let mut parts = Vec::new();
    if !f.status.is_empty() {
        let names: Vec<&str> = f.status.iter().map(|s| s.as_str()).collect();
        parts.push(format!("status {}", names.join(", ")));
    }
    if !f.source.is_empty() {
        parts.push(format!("source {}", f.source.join(", ")));
    }
    if !f.tag.is_empty() {
        parts.push(format!("tags {}", f.tag.join(" + ")));
    }
    if let Some(t) = f.updated_since {
        parts.push(format!("changed since {}", date_time(&t)));
    }
    if parts.is_empty() && f.created_from.is_none() && f.created_to.is_none() {
        "none (every job)".to_owned()
    } else if parts.is_empty() {
        "the period above".to_owned()
    } else {
        parts.join("; ")
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%-d %b %Y").to_string()
}

fn day_of(t: &DateTime<Utc>) -> String {
    day(t.date_naive())
}

fn date_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn percent(part: u64, whole: u64) -> String {
    Report::rate(part, whole).map_or("–".to_owned(), |p| format!("{p}%"))
}

fn plural(n: u64, noun: &str) -> String {
    format!(
        "{} {noun}{}",
        thousands(n as i64),
        if n == 1 { "" } else { "s" }
    )
}

/// `1234567` → `1,234,567`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1234567), "-1,234,567");
    }

    #[test]
    fn an_empty_report_is_still_a_pdf() {
        let pdf = render(&Report::default()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
