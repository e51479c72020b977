//! JSON laid out as the documented example: an envelope with `exported_at`, `total` and
//! `jobs` in that order, two-space indentation, one field per line, tags inline.
//!
//! Strings are escaped per RFC 8259 (quote, backslash and control characters); everything
//! else, including non-Latin text and emoji, is written as UTF-8.

use super::{ExportMeta, RowWriter};
use crate::job::{Field, JobRecord, Value};
use crate::timestamp::write_rfc3339;

pub struct JsonWriter {
    /// `"name": ` for each field, with its indentation, built once.
    keys: Vec<(Field, Vec<u8>)>,
    rows: u64,
}

impl JsonWriter {
    pub fn new(fields: &[Field]) -> Self {
        let keys = fields
            .iter()
            .map(|f| {
                let mut key = b"      ".to_vec();
                write_str(&mut key, f.name());
                key.extend_from_slice(b": ");
                (*f, key)
            })
            .collect();
        JsonWriter { keys, rows: 0 }
    }
}

impl RowWriter for JsonWriter {
    fn begin(&mut self, out: &mut Vec<u8>, meta: &ExportMeta) {
        out.extend_from_slice(b"{\n  \"exported_at\": \"");
        write_rfc3339(out, &meta.exported_at);
        out.extend_from_slice(b"\",\n  \"total\": ");
        out.extend_from_slice(itoa::Buffer::new().format(meta.total).as_bytes());
        out.extend_from_slice(b",\n  \"jobs\": [");
    }

    fn row(&mut self, out: &mut Vec<u8>, job: &JobRecord) {
        out.extend_from_slice(if self.rows == 0 {
            b"\n    {\n"
        } else {
            b",\n    {\n"
        });
        self.rows += 1;
        for (i, (field, key)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",\n");
            }
            out.extend_from_slice(key);
            write_value(out, job.value(*field));
        }
        out.extend_from_slice(b"\n    }");
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.rows > 0 {
            out.extend_from_slice(b"\n  ");
        }
        out.extend_from_slice(b"]\n}\n");
    }
}

/// Appends one value as JSON.
pub(crate) fn write_value(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Text(s) => write_str(out, s),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Uuid(u) => {
            let mut buf = uuid::Uuid::encode_buffer();
            out.push(b'"');
            out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
            out.push(b'"');
        }
        Value::Time(t) => {
            out.push(b'"');
            write_rfc3339(out, t);
            out.push(b'"');
        }
        Value::Tags(tags) => {
            out.push(b'[');
            for (i, tag) in tags.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_str(out, tag);
            }
            out.push(b']');
        }
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn write(fields: &[Field], jobs: &[JobRecord], total: u64) -> String {
        let meta = ExportMeta {
            exported_at: Utc.with_ymd_and_hms(2026, 3, 4, 12, 0, 0).unwrap(),
            total,
        };
        let out = crate::format::write_whole(&mut JsonWriter::new(fields), &meta, jobs);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_the_documented_example_byte_for_byte() {
        let job = JobRecord {
            id: "123e4567-e89b-12d3-a456-426614174000".parse().unwrap(),
            company_name: "Acme Corp".into(),
            job_title: "Senior Backend Engineer".into(),
            status: "interview".into(),
            source: Some("linkedin".into()),
            location: Some("San Francisco, CA".into()),
            is_remote: true,
            job_url: Some("https://acme.com/careers/senior-backend-engineer".into()),
            job_description: Some("Build scalable APIs...".into()),
            salary_range_min: Some(180000),
            salary_range_max: Some(250000),
            ai_match_score: Some(87),
            ai_reasoning: Some(
                "Strong match: 5+ years Go experience, distributed systems expertise".into(),
            ),
            notes: Some("Met recruiter at tech conference".into()),
            tags: vec!["high-priority".into(), "backend".into()],
            applied_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap()),
            interview_at: Some(Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap()),
            created_at: Utc.with_ymd_and_hms(2026, 2, 28, 15, 0, 0).unwrap(),
            updated_at: Utc.with_ymd_and_hms(2026, 3, 4, 9, 0, 0).unwrap(),
            ..JobRecord::default()
        };
        let expected = r#"{
  "exported_at": "2026-03-04T12:00:00Z",
  "total": 42,
  "jobs": [
    {
      "id": "123e4567-e89b-12d3-a456-426614174000",
      "company_name": "Acme Corp",
      "job_title": "Senior Backend Engineer",
      "status": "interview",
      "source": "linkedin",
      "location": "San Francisco, CA",
      "is_remote": true,
      "job_url": "https://acme.com/careers/senior-backend-engineer",
      "job_description": "Build scalable APIs...",
      "salary_range_min": 180000,
      "salary_range_max": 250000,
      "ai_match_score": 87,
      "ai_reasoning": "Strong match: 5+ years Go experience, distributed systems expertise",
      "notes": "Met recruiter at tech conference",
      "tags": ["high-priority", "backend"],
      "applied_at": "2026-03-01T10:30:00Z",
      "interview_at": "2026-03-10T14:00:00Z",
      "offer_at": null,
      "rejected_at": null,
      "scraped_at": null,
      "created_at": "2026-02-28T15:00:00Z",
      "updated_at": "2026-03-04T09:00:00Z"
    }
  ]
}
"#;
        assert_eq!(write(&Field::ALL, &[job], 42), expected);
    }

    #[test]
    fn empty_export() {
        assert_eq!(
            write(&Field::ALL, &[], 0),
            "{\n  \"exported_at\": \"2026-03-04T12:00:00Z\",\n  \"total\": 0,\n  \"jobs\": []\n}\n"
        );
    }

    #[test]
    fn several_rows_are_valid_json_in_order() {
        let jobs: Vec<_> = (0..3)
            .map(|i| JobRecord {
                company_name: format!("c{i}"),
                ..JobRecord::default()
            })
            .collect();
        let v: serde_json::Value = serde_json::from_str(&write(&Field::ALL, &jobs, 3)).unwrap();
        let names: Vec<_> = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["company_name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["c0", "c1", "c2"]);
        assert_eq!(v["total"], 3);
    }

    proptest! {
        #[test]
        fn strings_round_trip(s in any::<String>()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn tags_round_trip(tags in prop::collection::vec(any::<String>(), 0..5)) {
            let mut out = Vec::new();
            write_value(&mut out, Value::Tags(&tags));
            let back: Vec<String> = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, tags);
        }
    }
}
