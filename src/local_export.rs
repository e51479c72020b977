//! `pipeline-export export`: an operator's export of one user's jobs to a local file or
//! stdout, through the same engine as `GET /api/export`.
//!
//! Its options are the endpoint's query parameters (`--format`, `--filter status=offer`,
//! `--fields`, `--delimiter`, `--bom`, `--escape-formulas`), parsed by the endpoint's own
//! parser, so both accept and refuse the same things and write the same bytes. There is no
//! row cap. A file is written under a hidden temporary name and renamed once complete, so a
//! failed export never leaves a file that looks whole; on stdout a failure is the exit code.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use uuid::Uuid;
use workers::engine::{ExportPlan, run_export};
use workers::sink::WriterSink;
use workers::{Compression, ExportQuery, Snapshot};

use crate::http::ExportParams;
use crate::progress;

/// Where the file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
    /// The endpoint's file name (`pipeline-jobs-YYYY-MM-DD.csv[.gz]`) in this directory.
    DefaultName(PathBuf),
}

#[derive(Debug)]
pub struct LocalExport {
    pub user_id: Uuid,
    /// As [`parse`] read them from the endpoint's query string.
    pub params: ExportParams,
    pub gzip: bool,
    pub output: Output,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub rows: u64,
    pub bytes: u64,
    /// `None` for stdout.
    pub path: Option<PathBuf>,
    pub seconds: f64,
}

/// Checks the options (the endpoint's rules); the error message names the option at fault.
pub fn parse(query: &str) -> Result<ExportParams, String> {
    ExportParams::parse(Some(query)).map_err(|e| e.to_string())
}

/// Writes the export; `None` when stdout's reader went away before the end (`| head`).
pub async fn run(pool: &sqlx::PgPool, export: LocalExport) -> anyhow::Result<Option<Written>> {
    let started = Instant::now();
    let params = export.params;
    let snapshot = Snapshot::open(
        pool,
        ExportQuery {
            user_id: export.user_id,
            filters: params.filters,
            fields: params.options.fields_for(params.format),
            limit: None,
        },
    )
    .await
    .context("opening the export's snapshot")?;
    if let Some(reason) = workers::engine::unwritable(params.format, snapshot.exported()) {
        anyhow::bail!(reason);
    }
    let compression = if export.gzip {
        Compression::Gzip
    } else {
        Compression::None
    };
    let plan = ExportPlan {
        format: params.format,
        compression,
        csv: params.options.csv,
    };
    let bar = progress::rows(snapshot.exported(), "exporting");
    let on_rows = {
        let bar = bar.clone();
        move |rows| bar.set_position(rows)
    };
    let name = workers::exports::export_file_name(snapshot.taken_at(), params.format, compression);
    let path = match export.output {
        Output::Stdout => None,
        // A directory gets the default name inside it.
        Output::File(dir) if dir.is_dir() => Some(dir.join(name)),
        Output::File(path) => Some(path),
        Output::DefaultName(dir) => Some(dir.join(name)),
    };
    let result = match &path {
        None => {
            let mut sink = WriterSink::new(tokio::io::stdout(), on_rows);
            match run_export(snapshot, plan, &mut sink).await {
                Ok(summary) => sink.finish().await.map(|_| summary).map_err(Into::into),
                // The reader went away (`| head`): what it read is what it wanted.
                Err(workers::engine::ExportError::Sink(workers::sink::SinkError::Closed)) => {
                    bar.finish_and_clear();
                    return Ok(None);
                }
                Err(e) => Err(e.into()),
            }
        }
        Some(path) => write_file(path, snapshot, plan, on_rows).await,
    };
    bar.finish_and_clear();
    let summary = result?;
    Ok(Some(Written {
        rows: summary.rows,
        bytes: summary.bytes_out,
        path,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Writes `{dir}/.{name}.partial-{pid}`, syncs it, and renames it to `path`.
async fn write_file(
    path: &Path,
    snapshot: Snapshot,
    plan: ExportPlan,
    on_rows: impl FnMut(u64) + Send,
) -> anyhow::Result<workers::engine::ExportSummary> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let partial = dir.join(format!(".{file_name}.partial-{}", std::process::id()));
    let file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("creating {}", partial.display()))?;
    let written = async {
        let mut sink = WriterSink::new(tokio::io::BufWriter::new(file), on_rows);
        let summary = run_export(snapshot, plan, &mut sink).await?;
        let file = sink.finish().await?.into_inner();
        file.sync_all().await?;
        tokio::fs::rename(&partial, path)
            .await
            .with_context(|| format!("renaming to {}", path.display()))?;
        anyhow::Ok(summary)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}
