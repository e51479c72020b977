//! NDJSON: one compact JSON object per job and line, with the JSON export's fields, order and
//! value formats; no envelope, so files can be split, concatenated and streamed line by line.

use super::json::{write_str, write_value};
use super::{ExportMeta, RowWriter};
use crate::job::{Field, JobRecord};

pub struct NdjsonWriter {
    /// `"name":` for each field, built once.
    keys: Vec<(Field, Vec<u8>)>,
}

impl NdjsonWriter {
    pub fn new(fields: &[Field]) -> Self {
        let keys = fields
            .iter()
            .map(|f| {
                let mut key = Vec::new();
                write_str(&mut key, f.name());
                key.push(b':');
                (*f, key)
            })
            .collect();
        NdjsonWriter { keys }
    }
}

impl RowWriter for NdjsonWriter {
    fn begin(&mut self, _out: &mut Vec<u8>, _meta: &ExportMeta) {}

    fn row(&mut self, out: &mut Vec<u8>, job: &JobRecord) {
        out.push(b'{');
        for (i, (field, key)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            write_value(out, job.value(*field));
        }
        out.extend_from_slice(b"}\n");
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn one_object_per_line_with_the_json_fields() {
        let mut w = NdjsonWriter::new(&Field::ALL);
        let meta = ExportMeta {
            exported_at: Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(),
            total: 2,
        };
        let mut out = Vec::new();
        w.begin(&mut out, &meta);
        for name in ["a\nb", "c"] {
            let job = JobRecord {
                company_name: name.into(),
                tags: vec!["x".into()],
                ..JobRecord::default()
            };
            w.row(&mut out, &job);
        }
        w.finish(&mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["company_name"], "a\nb");
        assert_eq!(first["tags"], serde_json::json!(["x"]));
        assert_eq!(first["offer_at"], serde_json::Value::Null);
        assert!(
            lines[0]
                .starts_with("{\"id\":\"00000000-0000-0000-0000-000000000000\",\"company_name\":")
        );
        assert_eq!(first.as_object().unwrap().len(), 22);
    }
}
