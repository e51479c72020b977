//! Where an export's bytes go: an HTTP body, an object upload, a file.

use std::future::Future;

use bytes::Bytes;

/// Why a sink stopped taking bytes.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The receiver went away (a client hung up): the export stops, nothing to retry.
    #[error("the receiver closed the stream")]
    Closed,
    /// The sink failed (an upload, a disk); may be worth retrying.
    #[error("{0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Receives an export's bytes in order, one chunk at a time.
///
/// `send` is awaited before the next chunk is produced, so a slow sink slows the export down
/// instead of letting chunks pile up in memory.
pub trait ByteSink: Send {
    fn send(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Told, before each chunk, how many rows the export has written so far (for progress).
    fn rows_written(&mut self, _rows: u64) {}
}

/// A sink into any async writer (a file, stdout), telling `on_rows` of progress.
pub struct WriterSink<W, F> {
    writer: W,
    on_rows: F,
}

impl<W, F> WriterSink<W, F>
where
    W: tokio::io::AsyncWrite + Unpin + Send,
    F: FnMut(u64) + Send,
{
    pub fn new(writer: W, on_rows: F) -> Self {
        WriterSink { writer, on_rows }
    }

    /// Flushes and returns the writer.
    pub async fn finish(mut self) -> std::io::Result<W> {
        use tokio::io::AsyncWriteExt;
        self.writer.flush().await?;
        Ok(self.writer)
    }
}

impl<W, F> ByteSink for WriterSink<W, F>
where
    W: tokio::io::AsyncWrite + Unpin + Send,
    F: FnMut(u64) + Send,
{
    async fn send(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        use tokio::io::AsyncWriteExt;
        match self.writer.write_all(&chunk).await {
            Ok(()) => Ok(()),
            // A reader that went away (`| head`): stop quietly, like any Unix tool.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(SinkError::Closed),
            Err(e) => Err(SinkError::Failed(Box::new(e))),
        }
    }

    fn rows_written(&mut self, rows: u64) {
        (self.on_rows)(rows);
    }
}

/// A sink into a bounded channel, e.g. the body of an HTTP response.
pub struct ChannelSink<E> {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, E>>,
}

impl<E> ChannelSink<E> {
    pub fn new(tx: tokio::sync::mpsc::Sender<Result<Bytes, E>>) -> Self {
        ChannelSink { tx }
    }

    /// Ends the stream with an error, so the receiver sees a broken transfer rather than a
    /// file that looks complete.
    pub async fn fail(self, error: E) {
        let _ = self.tx.send(Err(error)).await;
    }
}

impl<E: Send> ByteSink for ChannelSink<E> {
    async fn send(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        self.tx.send(Ok(chunk)).await.map_err(|_| SinkError::Closed)
    }
}
