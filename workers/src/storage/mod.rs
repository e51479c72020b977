//! Object storage for finished exports: an S3-compatible bucket, or a local directory.
//!
//! A background export streams its bytes into an [`Upload`] (a [`ByteSink`]) while it is
//! produced, then calls [`Upload::complete`]. The one rule this module exists to keep:
//! **a partial object is never visible under its key.** A key either does not exist, or holds
//! a whole file:
//!
//! - S3 buffers bytes and uploads them as parts of a multipart upload, which S3 only turns
//!   into an object on `CompleteMultipartUpload` (small files are a single `PutObject`).
//! - Local writes to a hidden `{key}.partial-{id}` file and renames it over `{key}` (atomic on
//!   one filesystem) after an fsync.
//!
//! Failed or abandoned uploads leave nothing readable. A crashed process can leave a pending
//! S3 multipart upload or a `.partial-` file: the caller stores [`Upload::upload_id`] and
//! cleans up with [`Storage::abort_upload`]; [`Storage::pending_uploads`] finds the rest.
//!
//! Every key is checked by [`validate_key`] on both backends, so a key can never name
//! something outside the bucket prefix layout or, for Local, outside the storage directory.

pub mod local;
pub mod s3;

use std::error::Error as StdError;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;

use crate::sink::{ByteSink, SinkError};

/// Longest key accepted, in bytes (S3's own limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Where exports are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// An S3-compatible bucket. Credentials come from the standard AWS chain (environment,
    /// profile, web identity, container or instance role), never from this struct.
    S3 {
        bucket: String,
        region: String,
        /// A non-AWS endpoint, e.g. `http://127.0.0.1:9000` for s3s-fs or MinIO.
        endpoint: Option<String>,
        /// `https://host/bucket/key` instead of `https://bucket.host/key` (most non-AWS servers).
        force_path_style: bool,
    },
    /// A directory on this machine; the HTTP front serves the files itself.
    Local { dir: PathBuf },
}

/// Headers an object is served with. S3 stores them with the object; Local does not store
/// them at all (the front knows them from the database when it serves a local file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: String,
    pub content_disposition: String,
    pub content_encoding: Option<String>,
}

/// Why a storage operation failed. Every variant names the operation and the object.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key is not acceptable (see [`validate_key`]); retrying cannot help.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The configuration cannot work (empty bucket name, part size below S3's minimum, ...).
    #[error("invalid storage configuration: {0}")]
    Config(String),
    /// The object does not exist.
    #[error("{op} {target}: no such object")]
    NotFound { op: &'static str, target: String },
    /// The server does not implement the operation (HTTP 501), e.g. `ListMultipartUploads`
    /// on s3s-fs 0.14.
    #[error("{op} {target}: not supported by the storage server: {message}")]
    Unsupported {
        op: &'static str,
        target: String,
        message: String,
    },
    /// An S3 request failed; `transient` tells network trouble, 5xx and throttling apart from
    /// refusals (4xx) that would fail again.
    #[error("{op} {target}: {message}")]
    S3 {
        op: &'static str,
        target: String,
        message: String,
        transient: bool,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A local filesystem operation failed.
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// Something that should not happen did (a malformed server answer, a part upload task
    /// that died, a use of an upload after it failed).
    #[error("{op} {target}: {message}")]
    Internal {
        op: &'static str,
        target: String,
        message: String,
    },
}

impl StorageError {
    /// Whether trying the same operation again later may succeed: network errors, timeouts,
    /// 5xx and throttling are transient; bad keys, missing buckets, access denied are not.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::S3 { transient, .. } => *transient,
            StorageError::Io { source, .. } => io_is_transient(source),
            StorageError::InvalidKey { .. }
            | StorageError::Config(_)
            | StorageError::NotFound { .. }
            | StorageError::Unsupported { .. }
            | StorageError::Internal { .. } => false,
        }
    }
}

/// Local errors that point at the request itself (permissions, a file where a directory
/// should be) are permanent; the rest (disk full, I/O hiccups, interrupted calls) may pass.
fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    !matches!(
        e.kind(),
        K::NotFound
            | K::PermissionDenied
            | K::AlreadyExists
            | K::InvalidInput
            | K::InvalidData
            | K::InvalidFilename
            | K::NotADirectory
            | K::IsADirectory
            | K::DirectoryNotEmpty
            | K::ReadOnlyFilesystem
            | K::Unsupported
            | K::FileTooLarge
    )
}

/// Checks a key before any backend sees it.
///
/// Accepted: non-empty, at most [`MAX_KEY_LEN`] bytes, `/`-separated segments that are
/// neither empty, `.` nor `..`, no leading `/`, no backslash, no control character. This
/// keeps S3 keys portable and makes it impossible for a Local key to leave its directory.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("the key is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("the key starts with '/'");
    }
    if key.contains('\\') {
        return invalid("the key contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return invalid("the key contains a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("the key has an empty segment"),
            "." | ".." => return invalid("the key has a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a listing prefix: like a key, but it may be empty and may end in `/` or in part of
/// a segment (`exports/2026-` matches `exports/2026-03.csv`).
pub fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: prefix.to_owned(),
            reason,
        })
    };
    if prefix.len() > MAX_KEY_LEN {
        return invalid("the prefix is longer than 1024 bytes");
    }
    if prefix.starts_with('/') {
        return invalid("the prefix starts with '/'");
    }
    if prefix.contains('\\') {
        return invalid("the prefix contains a backslash");
    }
    if prefix.chars().any(char::is_control) {
        return invalid("the prefix contains a control character");
    }
    // Every segment but the last is complete and must be a valid one; the last may be partial.
    let mut segments: Vec<&str> = prefix.split('/').collect();
    segments.pop();
    for segment in segments {
        match segment {
            "" => return invalid("the prefix has an empty segment"),
            "." | ".." => return invalid("the prefix has a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// An object's bytes as a stream, with its length when the backend knows it.
pub struct ObjectStream {
    content_length: Option<u64>,
    inner: BoxStream<'static, Result<Bytes, StorageError>>,
}

impl ObjectStream {
    pub(crate) fn new(
        content_length: Option<u64>,
        inner: BoxStream<'static, Result<Bytes, StorageError>>,
    ) -> Self {
        ObjectStream {
            content_length,
            inner,
        }
    }

    /// The object's size in bytes, for a `Content-Length` header.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

impl Stream for ObjectStream {
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// A configured storage backend; cheap to clone (S3 clients share their connection pool).
#[derive(Clone, Debug)]
pub enum Storage {
    S3(s3::S3Storage),
    Local(local::LocalStorage),
}

impl Storage {
    /// Builds the backend. S3 takes credentials from the standard AWS chain; Local creates
    /// its directory.
    pub async fn from_config(cfg: &StorageConfig) -> Result<Storage, StorageError> {
        match cfg {
            StorageConfig::S3 {
                bucket,
                region,
                endpoint,
                force_path_style,
            } => {
                if region.trim().is_empty() {
                    return Err(StorageError::Config("the S3 region is empty".into()));
                }
                let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.clone()))
                    .load()
                    .await;
                let storage = s3::S3Storage::new(
                    &sdk_config,
                    bucket,
                    endpoint.as_deref(),
                    *force_path_style,
                )?;
                Ok(Storage::S3(storage))
            }
            StorageConfig::Local { dir } => {
                Ok(Storage::Local(local::LocalStorage::new(dir).await?))
            }
        }
    }

    /// For tests and `doctor`-style checks: S3 creates the bucket if missing (tolerating
    /// "already exists"); Local does nothing (its directory exists since `from_config`).
    pub async fn ensure_bucket(&self) -> Result<(), StorageError> {
        match self {
            Storage::S3(s) => s.ensure_bucket().await,
            Storage::Local(_) => Ok(()),
        }
    }

    /// Starts writing `key`. Nothing is visible under `key` until [`Upload::complete`].
    pub async fn begin_upload(&self, key: &str, meta: &ObjectMeta) -> Result<Upload, StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => Ok(Upload::S3(s.begin_upload(key, meta))),
            Storage::Local(l) => Ok(Upload::Local(l.begin_upload(key).await?)),
        }
    }

    /// Removes an object; a missing object is not an error (deleting twice is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => s.delete(key).await,
            Storage::Local(l) => l.delete(key).await,
        }
    }

    /// Whether an object exists under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.size(key).await?.is_some())
    }

    /// The object's size in bytes, `None` if it does not exist. (On S3 this is a HEAD, whose
    /// 404 cannot tell a missing key from a missing bucket; both are `None`.)
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => s.size(key).await,
            Storage::Local(l) => l.size(key).await,
        }
    }

    /// A presigned GET URL valid for `ttl` (S3, at most 7 days); `None` for Local (the HTTP
    /// front serves local files itself). The object is served with the headers of its
    /// [`ObjectMeta`].
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => s.presign_get(key, ttl).await.map(Some),
            Storage::Local(_) => Ok(None),
        }
    }

    /// Streams an object's bytes (the front uses it to serve Local files; works for S3 too).
    /// A missing object is [`StorageError::NotFound`].
    pub async fn read(&self, key: &str) -> Result<ObjectStream, StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => s.read(key).await,
            Storage::Local(l) => l.read(key).await,
        }
    }

    /// Aborts an upload left behind by an earlier attempt (its id from
    /// [`Upload::upload_id`]). An id that is already gone is not an error. Local removes the
    /// attempt's partial file.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        match self {
            Storage::S3(s) => s.abort_upload(key, upload_id).await,
            Storage::Local(l) => l.abort_upload(key, upload_id).await,
        }
    }

    /// Uploads in progress (or abandoned) whose key starts with `prefix`, as `(key,
    /// upload_id)`: S3 multipart uploads, Local partial files.
    ///
    /// S3 uses `ListMultipartUploads`; servers without it (s3s-fs 0.14) answer
    /// [`StorageError::Unsupported`]. On AWS, a bucket lifecycle rule
    /// (`AbortIncompleteMultipartUpload`) is the safety net for uploads nobody lists.
    pub async fn pending_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        validate_prefix(prefix)?;
        match self {
            Storage::S3(s) => s.pending_uploads(prefix).await,
            Storage::Local(l) => l.pending_uploads(prefix).await,
        }
    }
}

/// An object being written. Bytes go in with [`ByteSink::send`]; the object appears, whole,
/// at [`Upload::complete`]. [`Upload::abort`] leaves nothing behind.
///
/// Dropping an upload without either behaves like a crash: the S3 multipart upload or the
/// Local partial file stays pending (invisible under the key) until
/// [`Storage::abort_upload`] removes it.
#[derive(Debug)]
pub enum Upload {
    S3(s3::S3Upload),
    Local(local::LocalUpload),
}

impl Upload {
    /// Id of the multipart upload once one was started (S3: only after the first full part,
    /// so small files never get one), or of the partial file (Local). The caller stores it so
    /// a later attempt can abort a crashed attempt's upload.
    pub fn upload_id(&self) -> Option<&str> {
        match self {
            Upload::S3(u) => u.upload_id(),
            Upload::Local(u) => Some(u.upload_id()),
        }
    }

    /// The key being written.
    pub fn key(&self) -> &str {
        match self {
            Upload::S3(u) => u.key(),
            Upload::Local(u) => u.key(),
        }
    }

    /// Makes the object visible under its key, whole. On error nothing is visible and
    /// nothing is left pending (best effort for S3: the abort itself may fail).
    pub async fn complete(self) -> Result<(), StorageError> {
        match self {
            Upload::S3(u) => u.complete().await,
            Upload::Local(u) => u.complete().await,
        }
    }

    /// Discards everything sent so far; nothing is left behind.
    pub async fn abort(self) -> Result<(), StorageError> {
        match self {
            Upload::S3(u) => u.abort().await,
            Upload::Local(u) => u.abort().await,
        }
    }

    async fn send_chunk(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        match self {
            Upload::S3(u) => u.send(chunk).await,
            Upload::Local(u) => u.send(chunk).await,
        }
    }
}

impl ByteSink for Upload {
    /// Hands a chunk to the upload. An error has already cleaned up what it could (S3 aborts
    /// its multipart upload); the upload then refuses further bytes.
    async fn send(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        self.send_chunk(chunk)
            .await
            .map_err(|e| SinkError::Failed(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "exports/0b7c/pipeline-jobs-2026-03-01.csv.gz",
            "a/b/c.d",
            "..a/b..",
            "...",
            "ünïcode/ファイル.json",
        ] {
            assert!(validate_key(key).is_ok(), "{key:?} should be accepted");
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
    }

    #[test]
    fn rejects_bad_keys() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}b",
            "a\u{85}b",
        ] {
            let err = validate_key(key).expect_err(key);
            assert!(matches!(err, StorageError::InvalidKey { .. }), "{key:?}");
            assert!(!err.is_transient());
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn prefixes() {
        for p in ["", "a/", "a/b", "exports/2026-", "a/."] {
            assert!(validate_prefix(p).is_ok(), "{p:?}");
        }
        for p in ["/a", "../", "a/../b", "a//b", "a\\b", "a\0"] {
            assert!(validate_prefix(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        let io = |kind| StorageError::Io {
            op: "write",
            target: "k".into(),
            source: Error::from(kind),
        };
        assert!(!io(ErrorKind::PermissionDenied).is_transient());
        assert!(io(ErrorKind::StorageFull).is_transient());
        assert!(io(ErrorKind::Interrupted).is_transient());
    }
}
