//! The import parser on any bytes (and, when the first byte is 0, the rest gzipped): what
//! `POST /api/import` reads before anything reaches the database.
//!
//! Holds: no panic, no unbounded recursion; a refused file says why in one of the documented
//! ways; an accepted file's count equals the jobs handed over, indexed from 0 in order, each
//! imported or rejected with a reason; accepted jobs written out again by the JSON writer read
//! back the same.
#![no_main]

use std::io::Write;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use workers::format::{ExportMeta, Format, write_whole};
use workers::{Field, JobRecord};

fuzz_target!(|data: &[u8]| {
    let file = match data.split_first() {
        Some((0, rest)) => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).unwrap();
            gz.finish().unwrap()
        }
        _ => data.to_vec(),
    };
    let (total, items) = workers::import::read_file(&file);
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok((index, _)) => assert_eq!(*index, i as u64),
            Err(rejection) => {
                assert_eq!(rejection.index, i as u64);
                assert!(!rejection.reason.is_empty());
            }
        }
    }
    match total {
        Ok(n) => {
            assert_eq!(n, items.len() as u64);
            let jobs: Vec<JobRecord> = items
                .into_iter()
                .filter_map(|i| i.ok().map(|(_, j)| j))
                .collect();
            let meta = ExportMeta {
                exported_at: Utc.timestamp_opt(0, 0).unwrap(),
                total: jobs.len() as u64,
            };
            let mut writer =
                Format::Json.writer(&Field::ALL, Default::default(), &Default::default());
            let out = write_whole(&mut *writer, &meta, &jobs);
            let (again, items) = workers::import::read_file(&out);
            assert_eq!(again, Ok(jobs.len() as u64));
            let back: Vec<JobRecord> = items
                .into_iter()
                .map(|i| i.expect("re-written jobs are accepted").1)
                .collect();
            assert_eq!(back, jobs);
        }
        Err(message) => assert!(
            [
                "the file could not be read",
                "the file ends too early",
                "this is not a JSON export of PIPELINE",
                "the file says it holds",
            ]
            .iter()
            .any(|p| message.starts_with(p)),
            "{message}"
        ),
    }
});
