//! The S3 backend: multipart uploads that only become an object when completed.
//!
//! Retries of single requests are the SDK's (standard mode, exponential backoff, 3 attempts);
//! this module decides what a failed upload leaves behind: nothing.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::{ObjectMeta, ObjectStream, StorageError};

/// Default part size: big enough that a 10,000-part upload holds 80 GB, small enough that a
/// few parts in memory are cheap.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's largest part.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// S3's highest part number.
const MAX_PARTS: i32 = 10_000;
/// Parts uploading at once. With the part being filled, an upload holds at most
/// `(MAX_PARTS_IN_FLIGHT + 1) × part_size` bytes (24 MiB at the default part size).
pub const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Attempts per request, the SDK's standard-mode default, set explicitly so it cannot drift.
const MAX_ATTEMPTS: u32 = 3;

/// Error codes S3 (and compatible servers) use for throttling or passing trouble.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "BandwidthLimitExceeded",
];

/// A bucket, with a client configured for it.
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    part_size: usize,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// A client for `bucket` from an SDK configuration (region and credentials), with an
    /// optional custom endpoint. [`super::Storage::from_config`] passes the standard AWS
    /// chain; tests pass static credentials.
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        bucket: &str,
        endpoint: Option<&str>,
        force_path_style: bool,
    ) -> Result<S3Storage, StorageError> {
        if bucket.trim().is_empty() {
            return Err(StorageError::Config("the S3 bucket name is empty".into()));
        }
        if sdk_config.region().is_none() {
            return Err(StorageError::Config("no S3 region is configured".into()));
        }
        let mut builder = aws_sdk_s3::config::Builder::from(sdk_config)
            .force_path_style(force_path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(endpoint) = endpoint.filter(|e| !e.trim().is_empty()) {
            // Caught here, a typo is a clear startup error instead of failing every request.
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(StorageError::Config(format!(
                    "the S3 endpoint {endpoint:?} must start with http:// or https://"
                )));
            }
            builder = builder.endpoint_url(endpoint);
        }
        Ok(S3Storage {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_owned(),
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets the size of multipart parts (tests use the 5 MiB minimum to get several parts
    /// out of little data). Outside 5 MiB..=5 GiB is a configuration error.
    pub fn with_part_size(mut self, part_size: usize) -> Result<S3Storage, StorageError> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(StorageError::Config(format!(
                "part size {part_size} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE} bytes)"
            )));
        }
        self.part_size = part_size;
        Ok(self)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    fn target(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    pub(crate) async fn ensure_bucket(&self) -> Result<(), StorageError> {
        let target = format!("s3://{}", self.bucket);
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
            Err(e) => return Err(s3_error("check bucket", target, e)),
        }
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region that must not be named as a location constraint.
        if let Some(region) = self.client.config().region().map(|r| r.as_ref())
            && region != "us-east-1"
        {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            // Someone (another test, another instance) created it between our two calls.
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_error("create bucket", target, e)),
        }
    }

    pub(crate) fn begin_upload(&self, key: &str, meta: &ObjectMeta) -> S3Upload {
        S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            meta: meta.clone(),
            part_size: self.part_size,
            buf: BytesMut::new(),
            upload_id: None,
            next_part: 1,
            done: Vec::new(),
            in_flight: VecDeque::new(),
            failed: false,
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match s3_error("delete", self.target(key), e) {
                // S3 answers 204 for a missing key; some compatible servers say NoSuchKey.
                StorageError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => match s3_error("head", self.target(key), e) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<String, StorageError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| {
            StorageError::Config(format!(
                "presigned URL lifetime {ttl:?} is not allowed: {e}"
            ))
        })?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign", self.target(key), e))?;
        Ok(request.uri().to_owned())
    }

    pub(crate) async fn read(&self, key: &str) -> Result<ObjectStream, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("get", self.target(key), e))?;
        let len = out.content_length().and_then(|n| u64::try_from(n).ok());
        let state = Some((out.body, self.target(key)));
        let stream = futures::stream::unfold(state, |state| async move {
            let (mut body, target) = state?;
            match body.next().await {
                Some(Ok(bytes)) => Some((Ok(bytes), Some((body, target)))),
                // The stream ends after its first error.
                Some(Err(e)) => Some((
                    Err(StorageError::S3 {
                        op: "read body of",
                        message: format!("the download broke off: {}", DisplayErrorContext(&e)),
                        target,
                        transient: true,
                        source: Box::new(e),
                    }),
                    None,
                )),
                None => None,
            }
        });
        Ok(ObjectStream::new(len, Box::pin(stream)))
    }

    pub(crate) async fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        abort_multipart(&self.client, &self.bucket, key, upload_id).await
    }

    pub(crate) async fn pending_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let target = self.target(prefix);
        let mut found = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut upload_id_marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|e| s3_error("list multipart uploads under", target.clone(), e))?;
            for upload in out.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    found.push((key.to_owned(), id.to_owned()));
                }
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            upload_id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && upload_id_marker.is_none() {
                // A truncated page without markers would loop forever.
                return Err(StorageError::Internal {
                    op: "list multipart uploads under",
                    target,
                    message: "the server said the list is truncated but gave no marker".into(),
                });
            }
        }
        Ok(found)
    }
}

/// An object being written to S3.
///
/// Bytes are buffered up to `part_size`; the first full part starts the multipart upload
/// (with the object's headers) and is uploaded in a background task, at most
/// [`MAX_PARTS_IN_FLIGHT`] at a time, so the export keeps producing while parts travel. An
/// object smaller than one part is a single `PutObject` at `complete`.
pub struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    part_size: usize,
    buf: BytesMut,
    upload_id: Option<String>,
    next_part: i32,
    /// Finished parts, in part-number order.
    done: Vec<CompletedPart>,
    /// Parts uploading, oldest first.
    in_flight: VecDeque<JoinHandle<Result<CompletedPart, StorageError>>>,
    /// Set once an error aborted the upload: later sends and `complete` refuse.
    failed: bool,
}

impl fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Upload")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("upload_id", &self.upload_id)
            .field("buffered", &self.buf.len())
            .field("parts_done", &self.done.len())
            .field("parts_in_flight", &self.in_flight.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn target(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    fn refuse_if_failed(&self, op: &'static str) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Internal {
                op,
                target: self.target(),
                message: "an earlier error already aborted this upload".into(),
            });
        }
        Ok(())
    }

    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.refuse_if_failed("upload")?;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (self.part_size - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == self.part_size {
                let part = std::mem::take(&mut self.buf).freeze();
                if let Err(e) = self.push_part(part).await {
                    return Err(self.fail(e).await);
                }
            }
        }
        Ok(())
    }

    /// Starts the multipart upload if needed, then uploads `part` in the background once
    /// fewer than [`MAX_PARTS_IN_FLIGHT`] are travelling.
    async fn push_part(&mut self, part: Bytes) -> Result<(), StorageError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.create_multipart().await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        if self.next_part > MAX_PARTS {
            return Err(StorageError::Internal {
                op: "upload part of",
                target: self.target(),
                message: format!(
                    "the object needs more than {MAX_PARTS} parts of {} bytes",
                    self.part_size
                ),
            });
        }
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            self.wait_oldest_part().await?;
        }
        let part_number = self.next_part;
        self.next_part += 1;
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        let key = self.key.clone();
        self.in_flight.push_back(tokio::spawn(async move {
            let target = format!("s3://{bucket}/{key}");
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| s3_error("upload part of", target.clone(), e))?;
            let e_tag = out.e_tag().ok_or_else(|| StorageError::Internal {
                op: "upload part of",
                target,
                message: format!("the server returned no ETag for part {part_number}"),
            })?;
            Ok(CompletedPart::builder()
                .part_number(part_number)
                .e_tag(e_tag)
                .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_owned))
                .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_owned))
                .set_checksum_sha1(out.checksum_sha1().map(str::to_owned))
                .set_checksum_sha256(out.checksum_sha256().map(str::to_owned))
                .build())
        }));
        Ok(())
    }

    async fn wait_oldest_part(&mut self) -> Result<(), StorageError> {
        let Some(handle) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let part = handle.await.map_err(|e| StorageError::Internal {
            op: "upload part of",
            target: self.target(),
            message: format!("the part upload task died: {e}"),
        })??;
        self.done.push(part);
        Ok(())
    }

    async fn create_multipart(&self) -> Result<String, StorageError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(&self.meta.content_type)
            .content_disposition(&self.meta.content_disposition)
            .set_content_encoding(self.meta.content_encoding.clone())
            .send()
            .await
            .map_err(|e| s3_error("start multipart upload of", self.target(), e))?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::Internal {
                op: "start multipart upload of",
                target: self.target(),
                message: "the server returned no upload id".into(),
            })
    }

    /// Lets the part uploads settle, aborts the multipart upload (best effort: the error
    /// being returned matters more than a failed cleanup, which is logged) and marks the
    /// upload failed. Returns `error` for the caller to pass on. When the abort fails the
    /// upload id is kept, so [`Self::abort`] tries again and reports the outcome, and the
    /// caller can record the id for a later cleanup.
    async fn fail(&mut self, error: StorageError) -> StorageError {
        self.failed = true;
        self.buf = BytesMut::new();
        self.settle_parts().await;
        if let Some(upload_id) = self.upload_id.clone() {
            match abort_multipart(&self.client, &self.bucket, &self.key, &upload_id).await {
                Ok(()) => self.upload_id = None,
                Err(abort_error) => tracing::warn!(
                    key = %self.key,
                    upload_id = %upload_id,
                    error = %abort_error,
                    "could not abort the multipart upload of a failed export; it stays pending"
                ),
            }
        }
        error
    }

    pub(crate) async fn complete(mut self) -> Result<(), StorageError> {
        self.refuse_if_failed("complete")?;
        if self.upload_id.is_none() {
            // Smaller than one part: a single PutObject is atomic by itself.
            let body = std::mem::take(&mut self.buf).freeze();
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.meta.content_type)
                .content_disposition(&self.meta.content_disposition)
                .set_content_encoding(self.meta.content_encoding.clone())
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error("put", self.target(), e))?;
            return Ok(());
        }
        match self.finish_multipart().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn finish_multipart(&mut self) -> Result<(), StorageError> {
        if !self.buf.is_empty() {
            // The last part may be smaller than the minimum.
            let last = std::mem::take(&mut self.buf).freeze();
            self.push_part(last).await?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest_part().await?;
        }
        let Some(upload_id) = self.upload_id.clone() else {
            return Ok(());
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.done)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("complete multipart upload of", self.target(), e))?;
        // Completed: there is nothing left to abort.
        self.upload_id = None;
        Ok(())
    }

    /// Waits for the parts still travelling, ignoring their outcome. Aborting while a part
    /// request is under way could let the server store that part after the abort, leaving
    /// an orphan; once every request has been answered, the abort removes everything.
    async fn settle_parts(&mut self) {
        for handle in self.in_flight.drain(..) {
            let _ = handle.await;
        }
    }

    pub(crate) async fn abort(mut self) -> Result<(), StorageError> {
        self.settle_parts().await;
        match self.upload_id.take() {
            Some(upload_id) => {
                abort_multipart(&self.client, &self.bucket, &self.key, &upload_id).await
            }
            None => Ok(()),
        }
    }
}

impl Drop for S3Upload {
    /// Stops part uploads still travelling (nobody would wait for them). The multipart
    /// upload itself stays pending, as after a crash, for [`super::Storage::abort_upload`].
    fn drop(&mut self) {
        for handle in self.in_flight.drain(..) {
            handle.abort();
        }
    }
}

async fn abort_multipart(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), StorageError> {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Already aborted or completed: the goal (nothing pending) is reached.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
        Err(e) => match s3_error(
            "abort multipart upload of",
            format!("s3://{bucket}/{key}"),
            e,
        ) {
            StorageError::NotFound { .. } => Ok(()),
            other => Err(other),
        },
    }
}

/// Turns an SDK error into a [`StorageError`] that says what failed and whether it is worth
/// another try.
fn s3_error<E>(op: &'static str, target: String, err: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_owned);
    let transient = match &err {
        SdkError::ServiceError(_) => {
            status.is_some_and(|s| s >= 500 || s == 429)
                || code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        // Bad input (e.g. an invalid header value): the same request fails again.
        SdkError::ConstructionFailure(_) => false,
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(_) => format!(
            "HTTP {}{}{}",
            status.map_or_else(|| "?".to_owned(), |s| s.to_string()),
            code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
            err.message().map(|m| format!(": {m}")).unwrap_or_default(),
        ),
        _ => DisplayErrorContext(&err).to_string(),
    };
    if matches!(code.as_deref(), Some("NoSuchKey" | "NotFound"))
        || (code.is_none() && status == Some(404))
    {
        return StorageError::NotFound { op, target };
    }
    if status == Some(501) || code.as_deref() == Some("NotImplemented") {
        return StorageError::Unsupported {
            op,
            target,
            message,
        };
    }
    StorageError::S3 {
        op,
        target,
        message,
        transient,
        source: Box::new(err),
    }
}
