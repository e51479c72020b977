//! The export pipeline: snapshot rows → format writer → compression → sink.

use bytes::Bytes;
use futures::TryStreamExt;

use crate::compress::{Compression, Encoder};
use crate::format::{CsvOptions, ExportMeta, Format};
use crate::query::Snapshot;
use crate::sink::{ByteSink, SinkError};

/// Bytes gathered before a chunk goes to the compressor and the sink. Memory per export is
/// about this, times the chunks a sink holds in flight.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// How to write an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPlan {
    pub format: Format,
    pub compression: Compression,
    /// How CSV is written (ignored by other formats).
    pub csv: CsvOptions,
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub rows: u64,
    /// Size of the file before compression.
    pub bytes: u64,
    /// Bytes handed to the sink (after compression).
    pub bytes_out: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error while exporting: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The snapshot promised one number of rows and delivered another; the file is not
    /// complete and must not be presented as such.
    #[error("export wrote {written} rows but its snapshot counted {expected}")]
    RowCount { expected: u64, written: u64 },
    /// The export cannot be written in this format (an XLSX of more rows than Excel holds).
    #[error("{0}")]
    Unwritable(String),
    /// The format's writer failed (building a workbook).
    #[error("writing the file: {0}")]
    Writer(std::io::Error),
}

/// Why `total` jobs cannot be written as `format`, if they cannot.
pub fn unwritable(format: Format, total: u64) -> Option<String> {
    match format {
        Format::Xlsx if total > crate::format::XLSX_MAX_ROWS => Some(format!(
            "an xlsx file holds at most 1,048,575 jobs and this export has {total}; \
             use format=csv (Excel opens it too) or narrow it with filters"
        )),
        Format::Pdf if total > crate::format::PDF_MAX_ROWS => Some(format!(
            "a pdf report lists at most 10,000 jobs and this export has {total}; \
             narrow it with filters (e.g. created_from) or use format=xlsx or csv"
        )),
        _ => None,
    }
}

/// Writes the snapshot's rows to `sink` and closes the snapshot.
///
/// On error the sink has received an incomplete file: the caller must make that visible
/// (break the HTTP transfer, abort the upload).
pub async fn run_export<S: ByteSink>(
    mut snapshot: Snapshot,
    plan: ExportPlan,
    sink: &mut S,
) -> Result<ExportSummary, ExportError> {
    let meta = ExportMeta {
        exported_at: snapshot.taken_at(),
        total: snapshot.exported(),
    };
    if let Some(reason) = unwritable(plan.format, meta.total) {
        return Err(ExportError::Unwritable(reason));
    }
    let query = snapshot.query();
    let mut writer = plan.format.writer(&query.fields, plan.csv, &query.filters);
    let mut out = Output {
        encoder: Some(plan.compression.encoder()),
        compressing: None,
        buf: Vec::with_capacity(CHUNK_SIZE + CHUNK_SIZE / 4),
        summary: ExportSummary::default(),
    };

    writer.begin(&mut out.buf, &meta);
    {
        let mut rows = snapshot.rows();
        while let Some(job) = rows.try_next().await? {
            writer.row(&mut out.buf, &job);
            out.summary.rows += 1;
            // Progress between chunks too: a workbook built aside sends none until the end.
            if out.summary.rows.is_multiple_of(1024) {
                sink.rows_written(out.summary.rows);
            }
            if out.buf.len() >= CHUNK_SIZE {
                out.flush(sink).await?;
            }
        }
    }
    writer.finish(&mut out.buf);
    // A file built aside (XLSX) is built on the blocking pool, then streamed like the rest.
    let (_writer, file) = tokio::task::spawn_blocking(move || {
        let file = writer.take_file();
        (writer, file)
    })
    .await
    .map_err(|e| ExportError::Writer(std::io::Error::other(e)))?;
    if let Some(file) = file.map_err(ExportError::Writer)? {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::from_std(file);
        loop {
            let start = out.buf.len();
            out.buf.resize(start + CHUNK_SIZE, 0);
            let n = file
                .read(&mut out.buf[start..])
                .await
                .map_err(ExportError::Writer)?;
            out.buf.truncate(start + n);
            if n == 0 {
                break;
            }
            if out.buf.len() >= CHUNK_SIZE {
                out.flush(sink).await?;
            }
        }
    }
    out.flush(sink).await?;
    let summary = out.finish(sink).await?;
    snapshot.close().await?;

    if summary.rows != meta.total {
        return Err(ExportError::RowCount {
            expected: meta.total,
            written: summary.rows,
        });
    }
    Ok(summary)
}

/// A chunk being compressed on the blocking pool: the encoder and input buffer come back
/// with the output.
type Compressing = tokio::task::JoinHandle<(Encoder, Vec<u8>, Option<Vec<u8>>)>;

/// The writer's buffer on its way to the sink. Compression runs on the blocking pool, one
/// chunk behind the writer, so formatting chunk N+1 overlaps compressing chunk N (on two
/// cores this is most of gzip's cost); at most one chunk is being compressed at a time.
struct Output {
    /// `None` while a chunk is being compressed.
    encoder: Option<Encoder>,
    compressing: Option<Compressing>,
    buf: Vec<u8>,
    summary: ExportSummary,
}

impl Output {
    async fn flush<S: ByteSink>(&mut self, sink: &mut S) -> Result<(), SinkError> {
        self.summary.bytes += self.buf.len() as u64;
        let spare = self.collect(sink).await?;
        let mut encoder = self.encoder.take().expect("collect returned the encoder");
        if matches!(encoder, Encoder::Identity) {
            let chunk = encoder.encode(&mut self.buf);
            self.encoder = Some(encoder);
            return self.send(sink, chunk).await;
        }
        let input = std::mem::replace(&mut self.buf, spare.unwrap_or_default());
        self.compressing = Some(tokio::task::spawn_blocking(move || {
            let mut input = input;
            let output = encoder.encode(&mut input);
            (encoder, input, output)
        }));
        Ok(())
    }

    /// Waits for the chunk being compressed, if any, and sends its output. Returns its
    /// (emptied) input buffer for reuse.
    async fn collect<S: ByteSink>(&mut self, sink: &mut S) -> Result<Option<Vec<u8>>, SinkError> {
        let Some(job) = self.compressing.take() else {
            return Ok(None);
        };
        let (encoder, spare, output) = job.await.map_err(|e| SinkError::Failed(Box::new(e)))?;
        self.encoder = Some(encoder);
        self.send(sink, output).await?;
        Ok(Some(spare))
    }

    async fn send<S: ByteSink>(
        &mut self,
        sink: &mut S,
        chunk: Option<Vec<u8>>,
    ) -> Result<(), SinkError> {
        if let Some(chunk) = chunk {
            self.summary.bytes_out += chunk.len() as u64;
            sink.rows_written(self.summary.rows);
            sink.send(Bytes::from(chunk)).await?;
        }
        Ok(())
    }

    async fn finish<S: ByteSink>(mut self, sink: &mut S) -> Result<ExportSummary, SinkError> {
        self.collect(sink).await?;
        let encoder = self.encoder.take().expect("collect returned the encoder");
        let tail = encoder.finish();
        self.send(sink, tail).await?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_xlsx_past_excels_rows_is_refused_before_it_starts() {
        assert_eq!(unwritable(Format::Xlsx, 1_048_575), None);
        let reason = unwritable(Format::Xlsx, 1_048_576).unwrap();
        assert!(
            reason.contains("1,048,575") && reason.contains("csv"),
            "{reason}"
        );
        assert_eq!(unwritable(Format::Csv, 5_000_000), None);
        assert_eq!(unwritable(Format::Pdf, 10_000), None);
        let reason = unwritable(Format::Pdf, 10_001).unwrap();
        assert!(
            reason.contains("10,000") && reason.contains("filters"),
            "{reason}"
        );
    }
}
