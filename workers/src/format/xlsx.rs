//! XLSX: a real Excel workbook, written in constant memory.
//!
//! Rows go to the worksheet as they arrive (rust_xlsxwriter's constant-memory mode keeps
//! only the current row and spills the rest to a temporary file); the workbook is zipped
//! into a temporary file at the end, which the engine then streams out. Memory stays flat
//! whatever the number of rows; the first byte leaves only once the whole file is built.
//!
//! The `Jobs` sheet: a bold header row of field names, frozen and with an autofilter; typed
//! cells (numbers as numbers, booleans as booleans, timestamps as Excel date-times in UTC
//! with a `yyyy-mm-dd hh:mm:ss` format, tags as their `; `-joined text); fixed column widths
//! by field. Every text is written as a string cell, which a spreadsheet never evaluates,
//! so formula injection cannot happen here. The `Export` sheet holds the export's metadata.
//! Excel's limit is 1,048,576 rows, header included: [`MAX_ROWS`] jobs.

use std::fs::File;
use std::io;

use rust_xlsxwriter::{Format as CellFormat, Workbook, Worksheet, XlsxError};

use super::{ExportMeta, RowWriter};
use crate::job::{Field, JobRecord, Value};

/// Most jobs one workbook holds (Excel's 1,048,576 rows less the header).
pub const MAX_ROWS: u64 = 1_048_575;

pub struct XlsxWriter {
    fields: Vec<Field>,
    /// What the `Export` sheet says about the filters.
    filters: String,
    workbook: Workbook,
    sheet: Option<Worksheet>,
    rows: u32,
    bold: CellFormat,
    datetime: CellFormat,
    meta: Option<ExportMeta>,
    /// The first write error; reported when the file is taken.
    error: Option<XlsxError>,
}

impl XlsxWriter {
    pub fn new(fields: &[Field], filters: String) -> Self {
        let mut workbook = Workbook::new();
        let mut sheet = workbook.new_worksheet_with_constant_memory();
        let _ = sheet.set_name("Jobs");
        XlsxWriter {
            fields: fields.to_vec(),
            filters,
            workbook,
            sheet: Some(sheet),
            rows: 0,
            bold: CellFormat::new().set_bold(),
            datetime: CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            meta: None,
            error: None,
        }
    }

    fn keep(&mut self, result: Result<(), XlsxError>) {
        if let Err(e) = result
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    fn write_row(&mut self, job: &JobRecord) -> Result<(), XlsxError> {
        let row = self.rows + 1;
        let sheet = self
            .sheet
            .as_mut()
            .expect("the sheet until the file is taken");
        for (col, field) in self.fields.iter().enumerate() {
            let col = col as u16;
            match job.value(*field) {
                Value::Null => {}
                Value::Text(s) => {
                    sheet.write_string(row, col, s)?;
                }
                Value::Int(n) => {
                    sheet.write_number(row, col, f64::from(n))?;
                }
                Value::Bool(b) => {
                    sheet.write_boolean(row, col, b)?;
                }
                Value::Uuid(u) => {
                    sheet.write_string(row, col, u.to_string())?;
                }
                Value::Time(t) => {
                    sheet.write_datetime_with_format(row, col, t.naive_utc(), &self.datetime)?;
                }
                Value::Tags([]) => {}
                Value::Tags(tags) => {
                    sheet.write_string(row, col, tags.join("; "))?;
                }
            }
        }
        self.rows = row;
        Ok(())
    }

    fn build(&mut self) -> Result<File, XlsxError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut sheet = self.sheet.take().expect("the file is taken once");
        if self.rows > 0 && !self.fields.is_empty() {
            sheet.autofilter(0, 0, self.rows, (self.fields.len() - 1) as u16)?;
        }
        self.workbook.push_worksheet(sheet);

        let about = self.workbook.add_worksheet();
        about.set_name("Export")?;
        about.set_column_width(0, 16)?;
        about.set_column_width(1, 60)?;
        let meta = self.meta.unwrap_or(ExportMeta {
            exported_at: chrono::Utc::now(),
            total: u64::from(self.rows),
        });
        let lines = [
            (
                "Exported at",
                crate::timestamp::to_rfc3339(&meta.exported_at),
            ),
            ("Jobs", meta.total.to_string()),
            ("Filters", self.filters.clone()),
            ("Times", "UTC".to_owned()),
            ("Source", "PIPELINE export".to_owned()),
        ];
        for (i, (label, value)) in lines.iter().enumerate() {
            about.write_string_with_format(i as u32, 0, *label, &self.bold)?;
            about.write_string(i as u32, 1, value)?;
        }

        let path = std::env::temp_dir().join(format!(
            "pipeline-export-{}.xlsx",
            uuid::Uuid::new_v4().simple()
        ));
        let saved = self.workbook.save(&path);
        let file = saved.and_then(|()| File::open(&path).map_err(XlsxError::IoError));
        // Unlinked at once: the open handle keeps the data until it is dropped.
        let _ = std::fs::remove_file(&path);
        file
    }
}

/// A width that suits the field's values, in characters.
fn width(field: Field) -> f64 {
    match field {
        Field::Id => 38.0,
        Field::IsRemote | Field::AiMatchScore | Field::Status => 12.0,
        Field::SalaryRangeMin | Field::SalaryRangeMax => 16.0,
        Field::AppliedAt
        | Field::InterviewAt
        | Field::OfferAt
        | Field::RejectedAt
        | Field::ScrapedAt
        | Field::CreatedAt
        | Field::UpdatedAt => 20.0,
        Field::JobDescription | Field::AiReasoning | Field::Notes => 50.0,
        _ => 28.0,
    }
}

impl RowWriter for XlsxWriter {
    fn begin(&mut self, _out: &mut Vec<u8>, meta: &ExportMeta) {
        self.meta = Some(*meta);
        let fields = self.fields.clone();
        let bold = self.bold.clone();
        let sheet = self
            .sheet
            .as_mut()
            .expect("the sheet until the file is taken");
        let mut result = sheet.set_freeze_panes(1, 0).map(|_| ());
        for (col, field) in fields.iter().enumerate() {
            if result.is_err() {
                break;
            }
            result = sheet
                .set_column_width(col as u16, width(*field))
                .and_then(|s| s.write_string_with_format(0, col as u16, field.name(), &bold))
                .map(|_| ());
        }
        self.keep(result);
    }

    fn row(&mut self, _out: &mut Vec<u8>, job: &JobRecord) {
        if self.error.is_none() {
            let result = self.write_row(job);
            self.keep(result);
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    fn take_file(&mut self) -> io::Result<Option<File>> {
        self.build()
            .map(Some)
            .map_err(|e| io::Error::other(format!("writing the workbook: {e}")))
    }
}
