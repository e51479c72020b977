//! Object storage against real services: s3s-fs (which checks SigV4) at `S3_ENDPOINT`, and
//! real temporary directories.
//!
//! The S3 tests fail, never skip, when s3s-fs is not running: start it with
//! `source infra/lib.sh && ensure_s3` (CI always does). Each test process uses its own bucket
//! and each test its own key prefix, so runs and tests never see each other's objects.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures::TryStreamExt;
use pipeline_export_workers::sink::{ByteSink, SinkError};
use pipeline_export_workers::storage::local::LocalStorage;
use pipeline_export_workers::storage::s3::S3Storage;
use pipeline_export_workers::storage::{ObjectMeta, Storage, StorageConfig, StorageError, Upload};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const PART_SIZE: usize = 5 * MIB;

// ---------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn s3_endpoint() -> String {
    env_or("S3_ENDPOINT", "http://127.0.0.1:9000")
}

/// One bucket per test process: `pe-storage-<seconds>-<random>`.
fn bucket() -> &'static str {
    static BUCKET: OnceLock<String> = OnceLock::new();
    BUCKET.get_or_init(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("pe-storage-{secs}-{}", &random[..8])
    })
}

/// A key prefix no other test (or run) uses.
fn prefix(test: &str) -> String {
    format!("t/{test}-{}/", uuid::Uuid::new_v4().simple())
}

/// Fails the test with instructions when s3s-fs is not listening.
async fn require_s3() {
    let endpoint = s3_endpoint();
    let authority = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint)
        .trim_end_matches('/');
    let connect = tokio::net::TcpStream::connect(authority.to_owned());
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "s3s-fs is not reachable at {endpoint} ({e}); start it with \
             `source infra/lib.sh && ensure_s3` (CI always starts it)"
        ),
        Err(_) => panic!(
            "s3s-fs at {endpoint} did not accept a connection within 3 s; start it with \
             `source infra/lib.sh && ensure_s3` (CI always starts it)"
        ),
    }
}

async fn sdk_config(secret: &str) -> SdkConfig {
    let credentials = Credentials::new(
        env_or("S3_TEST_ACCESS_KEY", "pipeline-test"),
        secret,
        None,
        None,
        "pipeline-export-storage-tests",
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await
}

fn secret() -> String {
    env_or("S3_TEST_SECRET_KEY", "pipeline-test-secret")
}

/// The storage under test, on this process's bucket, with 5 MiB parts.
async fn s3() -> Storage {
    require_s3().await;
    let config = sdk_config(&secret()).await;
    let storage = S3Storage::new(&config, bucket(), Some(&s3_endpoint()), true)
        .and_then(|s| s.with_part_size(PART_SIZE))
        .map(Storage::S3)
        .unwrap_or_else(|e| panic!("S3 storage: {e}"));
    storage
        .ensure_bucket()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {}: {e}", bucket()));
    storage
}

/// A plain SDK client, to look at the server's side of things (parts of an upload).
async fn raw_client() -> aws_sdk_s3::Client {
    let config = sdk_config(&secret()).await;
    let conf = aws_sdk_s3::config::Builder::from(&config)
        .endpoint_url(s3_endpoint())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn csv_meta() -> ObjectMeta {
    ObjectMeta {
        content_type: "text/csv; charset=utf-8".into(),
        content_disposition: "attachment; filename=\"pipeline-jobs-2026-03-01.csv\"".into(),
        content_encoding: Some("gzip".into()),
    }
}

/// Deterministic, incompressible-looking bytes (xorshift), different per `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `bytes` in chunks of uneven sizes (1 byte up to 1.5 MiB), through the `ByteSink`
/// interface the export engine uses.
async fn send_uneven(upload: &mut Upload, bytes: &[u8]) -> Result<(), SinkError> {
    const SIZES: [usize; 7] = [1, 65_536, 777_777, 3, 1_500_000, 12_345, 300_001];
    let mut offset = 0;
    let mut i = 0;
    while offset < bytes.len() {
        let n = SIZES[i % SIZES.len()].min(bytes.len() - offset);
        upload
            .send(Bytes::copy_from_slice(&bytes[offset..offset + n]))
            .await?;
        offset += n;
        i += 1;
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn read_all(storage: &Storage, key: &str) -> (Option<u64>, Vec<u8>) {
    let stream = storage
        .read(key)
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"));
    let len = stream.content_length();
    let chunks: Vec<Bytes> = stream
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("read body of {key}: {e}"));
    (len, chunks.concat())
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts the server no longer knows `upload_id`: it has no parts, and a new part for it is
/// refused. (s3s-fs 0.14 answers ListParts for any id, with the parts it still holds.)
async fn assert_upload_gone(key: &str, upload_id: &str) {
    let client = raw_client().await;
    match client
        .list_parts()
        .bucket(bucket())
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(out) => assert!(
            out.parts().is_empty(),
            "upload {upload_id} of {key} still has parts: {:?}",
            out.parts()
        ),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            assert_eq!(status, Some(404), "ListParts of an aborted upload: {e:?}");
        }
    }
    let refused = client
        .upload_part()
        .bucket(bucket())
        .key(key)
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"late part"))
        .send()
        .await;
    let status = match &refused {
        Ok(_) => panic!("the server still accepts parts for aborted upload {upload_id}"),
        Err(e) => e.raw_response().map(|r| r.status().as_u16()),
    };
    assert!(
        matches!(status, Some(403 | 404)),
        "a part for an aborted upload: {refused:?}"
    );
}

/// Parts the server holds for `upload_id`.
async fn parts_of(key: &str, upload_id: &str) -> usize {
    raw_client()
        .await
        .list_parts()
        .bucket(bucket())
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListParts {key} {upload_id}: {e:?}"))
        .parts()
        .len()
}

/// What `pending_uploads` says about `prefix`. s3s-fs 0.14 does not implement
/// `ListMultipartUploads`; that must surface as `Unsupported` (a permanent error), and the
/// caller of this helper then checks the server's side with ListParts instead.
async fn pending(storage: &Storage, prefix: &str) -> Option<Vec<(String, String)>> {
    match storage.pending_uploads(prefix).await {
        Ok(list) => Some(list),
        Err(e @ StorageError::Unsupported { .. }) => {
            assert!(!e.is_transient());
            eprintln!(
                "note: the S3 server does not implement ListMultipartUploads ({e}); \
                 checked the upload with ListParts instead"
            );
            None
        }
        Err(e) => panic!("pending_uploads({prefix}): {e:?}"),
    }
}

fn assert_invalid_key<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(e @ StorageError::InvalidKey { .. }) => assert!(!e.is_transient(), "{what}"),
        other => panic!("{what}: expected InvalidKey, got {other:?}"),
    }
}

const BAD_KEYS: &[&str] = &[
    "",
    "../escape.txt",
    "../secret.txt",
    "a/../../escape.txt",
    "a/../b",
    "./a",
    "a/./b",
    "..",
    "/tmp/escape.txt",
    "/etc/passwd",
    "a//b",
    "a/",
    "..\\escape.txt",
    "a\\b",
    "a\0b",
    "a\nb",
    "a\rb",
];

/// Every operation refuses every bad key before touching the backend.
async fn assert_rejects_bad_keys(storage: &Storage) {
    let long = "k".repeat(1025);
    let keys = BAD_KEYS
        .iter()
        .copied()
        .chain(std::iter::once(long.as_str()));
    for key in keys {
        let what = |op: &str| format!("{op}({key:?})");
        assert_invalid_key(
            storage.begin_upload(key, &csv_meta()).await,
            &what("begin_upload"),
        );
        assert_invalid_key(storage.delete(key).await, &what("delete"));
        assert_invalid_key(storage.exists(key).await, &what("exists"));
        assert_invalid_key(storage.size(key).await, &what("size"));
        assert_invalid_key(
            storage.presign_get(key, Duration::from_secs(60)).await,
            &what("presign_get"),
        );
        assert_invalid_key(storage.read(key).await, &what("read"));
        assert_invalid_key(
            storage
                .abort_upload(key, "00000000-0000-0000-0000-000000000000")
                .await,
            &what("abort_upload"),
        );
    }
    for prefix in ["../", "/etc/", "a/../", "a//", "..\\"] {
        assert_invalid_key(
            storage.pending_uploads(prefix).await,
            &format!("pending_uploads({prefix:?})"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn s3_small_object_is_one_put_served_with_its_headers() {
    let storage = s3().await;
    let key = format!("{}small.csv.gz", prefix("small"));
    let bytes = data(200_000, 1);

    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    send_uneven(&mut upload, &bytes).await.unwrap();
    assert_eq!(
        upload.upload_id(),
        None,
        "less than a part needs no multipart upload"
    );
    assert!(
        !storage.exists(&key).await.unwrap(),
        "visible before complete"
    );
    upload.complete().await.unwrap();

    assert_eq!(storage.size(&key).await.unwrap(), Some(bytes.len() as u64));
    let url = storage
        .presign_get(&key, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("S3 presigns");
    let response = get(&url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        header(&response, "content-disposition"),
        Some("attachment; filename=\"pipeline-jobs-2026-03-01.csv\"")
    );
    assert_eq!(header(&response, "content-encoding"), Some("gzip"));
    let body = response.bytes().await.unwrap();
    assert!(body[..] == bytes[..], "presigned download differs");

    let (len, read) = read_all(&storage, &key).await;
    assert_eq!(len, Some(bytes.len() as u64));
    assert!(read == bytes, "read() differs");

    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn s3_multipart_upload_of_12_mib_in_uneven_chunks() {
    let storage = s3().await;
    let key = format!("{}big.csv", prefix("multipart"));
    let bytes = data(12 * MIB + 12_345, 2);
    let meta = ObjectMeta {
        content_encoding: None,
        ..csv_meta()
    };

    let mut upload = storage.begin_upload(&key, &meta).await.unwrap();
    send_uneven(&mut upload, &bytes[..6 * MIB]).await.unwrap();
    assert!(
        upload.upload_id().is_some(),
        "a full part starts the multipart upload"
    );
    send_uneven(&mut upload, &bytes[6 * MIB..]).await.unwrap();
    assert!(
        !storage.exists(&key).await.unwrap(),
        "visible before complete"
    );
    upload.complete().await.unwrap();

    assert_eq!(storage.size(&key).await.unwrap(), Some(bytes.len() as u64));
    let url = storage
        .presign_get(&key, Duration::from_secs(300))
        .await
        .unwrap()
        .expect("S3 presigns");
    let response = get(&url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        header(&response, "content-disposition"),
        Some("attachment; filename=\"pipeline-jobs-2026-03-01.csv\"")
    );
    assert_eq!(header(&response, "content-encoding"), None);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), bytes.len());
    assert_eq!(sha256(&body), sha256(&bytes));

    let (len, read) = read_all(&storage, &key).await;
    assert_eq!(len, Some(bytes.len() as u64));
    assert_eq!(sha256(&read), sha256(&bytes));

    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn s3_abort_after_parts_leaves_nothing() {
    let storage = s3().await;
    let prefix = prefix("abort");
    let key = format!("{prefix}aborted.csv");

    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    send_uneven(&mut upload, &data(11 * MIB, 3)).await.unwrap();
    let upload_id = upload.upload_id().expect("two parts were sent").to_owned();
    upload.abort().await.unwrap();

    assert!(!storage.exists(&key).await.unwrap());
    assert_eq!(storage.size(&key).await.unwrap(), None);
    if let Some(list) = pending(&storage, &prefix).await {
        assert!(list.is_empty(), "pending after abort: {list:?}");
    }
    assert_upload_gone(&key, &upload_id).await;
}

#[tokio::test]
async fn s3_crashed_attempt_stays_pending_until_abort_upload() {
    let storage = s3().await;
    let prefix = prefix("crash");
    let key = format!("{prefix}crashed.csv");

    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    // Three parts: the third waits for the first to finish, so at least one is stored.
    send_uneven(&mut upload, &data(16 * MIB, 4)).await.unwrap();
    let upload_id = upload.upload_id().expect("parts were sent").to_owned();
    drop(upload); // the "crash": neither complete nor abort
    // Let cancelled part requests settle on the server.
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        !storage.exists(&key).await.unwrap(),
        "a crashed upload is never visible"
    );
    assert!(
        parts_of(&key, &upload_id).await >= 1,
        "the crashed upload's parts are kept"
    );
    if let Some(list) = pending(&storage, &prefix).await {
        assert_eq!(list, vec![(key.clone(), upload_id.clone())]);
    }

    // The next attempt cleans up with the id the crashed one stored.
    storage.abort_upload(&key, &upload_id).await.unwrap();
    assert_upload_gone(&key, &upload_id).await;
    if let Some(list) = pending(&storage, &prefix).await {
        assert!(list.is_empty(), "pending after abort_upload: {list:?}");
    }
    assert!(!storage.exists(&key).await.unwrap());
}

#[tokio::test]
async fn s3_failed_part_aborts_the_upload_and_refuses_more() {
    let storage = s3().await;
    let key = format!("{}vanishing.csv", prefix("fail"));

    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    send_uneven(&mut upload, &data(PART_SIZE + 10, 5))
        .await
        .unwrap();
    let upload_id = upload.upload_id().expect("a part was sent").to_owned();
    // Wait for the first part to be stored, so the abort below cannot race with it.
    let mut waited = 0;
    while parts_of(&key, &upload_id).await == 0 {
        assert!(waited < 100, "part 1 was not stored within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    // The multipart upload disappears behind the upload's back (an operator, a lifecycle
    // rule): the next parts fail.
    raw_client()
        .await
        .abort_multipart_upload()
        .bucket(bucket())
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();

    let more = data(4 * PART_SIZE, 6);
    let error = match send_uneven(&mut upload, &more).await {
        Err(SinkError::Failed(e)) => e,
        other => panic!("sending into a vanished upload: {other:?}"),
    };
    let error = error
        .downcast::<StorageError>()
        .expect("the sink error is a StorageError");
    // Not asserted: whether this error is transient. s3s-fs refuses the part (403) before
    // reading its body and closes the connection, so the client sees either the 403
    // (permanent) or a broken pipe while still sending (a network error, transient).
    // Permanence of refusals is covered by `s3_errors_say_whether_to_retry`.
    assert!(
        error.to_string().contains(&key),
        "the error names the object: {error}"
    );
    // The failed upload tried to abort; its id is kept only while no abort was confirmed,
    // which is the case here: s3s-fs answers 403 (not NoSuchUpload) for an upload that no
    // longer exists. Either way the caller can see what may still need cleaning up.
    assert!(
        upload.upload_id().is_none_or(|id| id == upload_id),
        "the upload id is kept for a cleanup or cleared by a confirmed abort"
    );
    assert!(
        upload.send(Bytes::from_static(b"more")).await.is_err(),
        "a failed upload refuses bytes"
    );
    assert!(
        upload.complete().await.is_err(),
        "a failed upload cannot complete"
    );
    assert!(!storage.exists(&key).await.unwrap());
}

#[tokio::test]
async fn s3_tampered_presigned_url_is_refused() {
    let storage = s3().await;
    let key = format!("{}signed.csv", prefix("tamper"));
    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    upload
        .send(Bytes::from_static(b"id,company\n1,Acme\n"))
        .await
        .unwrap();
    upload.complete().await.unwrap();

    let url = storage
        .presign_get(&key, Duration::from_secs(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get(&url).await.status(), 200, "the untouched URL works");

    let marker = "X-Amz-Signature=";
    let at = url.find(marker).expect("a SigV4 presigned URL") + marker.len();
    let mut tampered = url.clone().into_bytes();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_ne!(tampered, url);
    assert_eq!(get(&tampered).await.status(), 403);

    // Another object's name under the same signature is refused too.
    let other = url.replacen("signed.csv", "signes.csv", 1);
    assert_eq!(get(&other).await.status(), 403);

    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn s3_expired_presigned_url_is_refused() {
    let storage = s3().await;
    let key = format!("{}short.csv", prefix("expiry"));
    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    upload.send(Bytes::from_static(b"id\n1\n")).await.unwrap();
    upload.complete().await.unwrap();

    let url = storage
        .presign_get(&key, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&url).await.status(), 403);

    storage.delete(&key).await.unwrap();
}

#[tokio::test]
async fn s3_delete_is_idempotent() {
    let storage = s3().await;
    let key = format!("{}gone.csv", prefix("delete"));
    let mut upload = storage.begin_upload(&key, &csv_meta()).await.unwrap();
    upload.send(Bytes::from_static(b"x")).await.unwrap();
    upload.complete().await.unwrap();
    assert!(storage.exists(&key).await.unwrap());

    storage.delete(&key).await.unwrap();
    assert!(!storage.exists(&key).await.unwrap());
    storage.delete(&key).await.unwrap();
    storage
        .delete(&format!("{}never-existed", prefix("delete")))
        .await
        .unwrap();

    match storage.read(&key).await {
        Err(e @ StorageError::NotFound { .. }) => assert!(!e.is_transient()),
        other => panic!("reading a deleted object: {other:?}"),
    }
}

#[tokio::test]
async fn s3_rejects_bad_keys() {
    let storage = s3().await;
    assert_rejects_bad_keys(&storage).await;
}

#[tokio::test]
async fn s3_errors_say_whether_to_retry() {
    require_s3().await;
    let key = format!("{}e.csv", prefix("errors"));

    // Wrong secret: a signature the server refuses (403), permanent.
    let config = sdk_config("not-the-secret").await;
    let wrong = Storage::S3(S3Storage::new(&config, bucket(), Some(&s3_endpoint()), true).unwrap());
    let mut upload = wrong.begin_upload(&key, &csv_meta()).await.unwrap();
    upload.send(Bytes::from_static(b"x")).await.unwrap();
    let error = upload.complete().await.unwrap_err();
    assert!(
        !error.is_transient(),
        "bad credentials are permanent: {error}"
    );
    assert!(error.to_string().contains("403"), "{error}");

    // No such bucket: permanent. (DeleteObject, because s3s-fs 0.14 creates a missing
    // bucket's directory on PutObject instead of refusing it.)
    let config = sdk_config(&secret()).await;
    let missing = format!("pe-missing-{}", uuid::Uuid::new_v4().simple());
    let nobucket =
        Storage::S3(S3Storage::new(&config, &missing, Some(&s3_endpoint()), true).unwrap());
    let error = nobucket.delete(&key).await.unwrap_err();
    assert!(
        !error.is_transient(),
        "a missing bucket is permanent: {error}"
    );
    assert!(error.to_string().contains(&missing), "{error}");
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");

    // Nobody listening: a network error, transient.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let down = Storage::S3(S3Storage::new(&config, bucket(), Some(&endpoint), true).unwrap());
    let error = down.size(&key).await.unwrap_err();
    assert!(
        error.is_transient(),
        "a refused connection is transient: {error}"
    );

    // Configuration mistakes are caught before any request.
    let bad = StorageConfig::S3 {
        bucket: String::new(),
        region: "us-east-1".into(),
        endpoint: None,
        force_path_style: true,
    };
    assert!(matches!(
        Storage::from_config(&bad).await,
        Err(StorageError::Config(_))
    ));
    let bad = StorageConfig::S3 {
        bucket: "b".into(),
        region: " ".into(),
        endpoint: None,
        force_path_style: true,
    };
    assert!(matches!(
        Storage::from_config(&bad).await,
        Err(StorageError::Config(_))
    ));
    assert!(matches!(
        S3Storage::new(&config, bucket(), Some("127.0.0.1:9000"), true),
        Err(StorageError::Config(_))
    ));
    let s3 = S3Storage::new(&config, bucket(), Some(&s3_endpoint()), true).unwrap();
    assert!(s3.clone().with_part_size(5 * MIB - 1).is_err());
    assert_eq!(s3.part_size(), 8 * MIB, "the default part size");
}

// ---------------------------------------------------------------------------------------
// Local
// ---------------------------------------------------------------------------------------

async fn local(root: &Path) -> Storage {
    let config = StorageConfig::Local {
        dir: root.join("exports").join("nested"),
    };
    Storage::from_config(&config)
        .await
        .unwrap_or_else(|e| panic!("local storage: {e}"))
}

fn local_dir(storage: &Storage) -> PathBuf {
    match storage {
        Storage::Local(l) => l.dir().to_path_buf(),
        Storage::S3(_) => unreachable!("a local storage"),
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn local_complete_is_atomic_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = local(tmp.path()).await;
    let dir = local_dir(&storage);
    assert!(dir.is_dir(), "from_config creates the directory");
    let key = "user-1/pipeline-jobs.csv";
    let final_path = dir.join(key);
    let bytes = data(3 * MIB + 7, 7);

    let mut upload = storage.begin_upload(key, &csv_meta()).await.unwrap();
    let id = upload.upload_id().expect("a partial file id").to_owned();
    send_uneven(&mut upload, &bytes).await.unwrap();
    assert!(
        !final_path.exists(),
        "the final path exists before complete"
    );
    assert!(!storage.exists(key).await.unwrap());
    assert_eq!(
        files_under(&dir),
        vec![format!("{key}.partial-{id}")],
        "only the partial file exists while writing"
    );
    assert_eq!(
        storage.pending_uploads("user-1/").await.unwrap(),
        vec![(key.to_owned(), id.clone())]
    );
    assert_eq!(
        storage.pending_uploads("user-1/pipe").await.unwrap().len(),
        1
    );
    assert!(storage.pending_uploads("user-2/").await.unwrap().is_empty());
    upload.complete().await.unwrap();

    assert!(final_path.is_file());
    assert_eq!(
        files_under(&dir),
        vec![key.to_owned()],
        "no partial file left"
    );
    assert!(storage.pending_uploads("").await.unwrap().is_empty());
    assert_eq!(std::fs::read(&final_path).unwrap(), bytes);
    assert_eq!(storage.size(key).await.unwrap(), Some(bytes.len() as u64));
    let (len, read) = read_all(&storage, key).await;
    assert_eq!(len, Some(bytes.len() as u64));
    assert_eq!(sha256(&read), sha256(&bytes));
    assert_eq!(
        storage
            .presign_get(key, Duration::from_secs(60))
            .await
            .unwrap(),
        None,
        "the front serves local files itself"
    );

    // A second upload replaces the object in one step, never mixing the two.
    let newer = data(1000, 8);
    let mut upload = storage.begin_upload(key, &csv_meta()).await.unwrap();
    upload.send(Bytes::from(newer.clone())).await.unwrap();
    assert_eq!(
        std::fs::read(&final_path).unwrap(),
        bytes,
        "old file intact until complete"
    );
    upload.complete().await.unwrap();
    assert_eq!(std::fs::read(&final_path).unwrap(), newer);
}

#[tokio::test]
async fn local_abort_removes_the_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = local(tmp.path()).await;
    let dir = local_dir(&storage);
    let key = "user-1/aborted.json";

    let mut upload = storage.begin_upload(key, &csv_meta()).await.unwrap();
    send_uneven(&mut upload, &data(2 * MIB, 9)).await.unwrap();
    upload.abort().await.unwrap();

    assert!(
        files_under(&dir).is_empty(),
        "left behind: {:?}",
        files_under(&dir)
    );
    assert!(!storage.exists(key).await.unwrap());
    assert!(storage.pending_uploads("user-1/").await.unwrap().is_empty());
}

#[tokio::test]
async fn local_crashed_attempt_stays_pending_until_abort_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = local(tmp.path()).await;
    let dir = local_dir(&storage);
    let key = "user-1/crashed.csv";

    let mut upload = storage.begin_upload(key, &csv_meta()).await.unwrap();
    send_uneven(&mut upload, &data(MIB, 10)).await.unwrap();
    let id = upload.upload_id().unwrap().to_owned();
    drop(upload);

    assert!(!storage.exists(key).await.unwrap());
    assert_eq!(
        storage.pending_uploads("user-1/").await.unwrap(),
        vec![(key.to_owned(), id.clone())]
    );
    storage.abort_upload(key, &id).await.unwrap();
    assert!(files_under(&dir).is_empty());
    assert!(storage.pending_uploads("").await.unwrap().is_empty());
    // Unknown or already removed ids are nothing to do.
    storage.abort_upload(key, &id).await.unwrap();
    storage
        .abort_upload(key, "not-a-uuid/../../x")
        .await
        .unwrap();
}

#[tokio::test]
async fn local_delete_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = local(tmp.path()).await;
    let key = "a/b/c.csv";
    let mut upload = storage.begin_upload(key, &csv_meta()).await.unwrap();
    upload.send(Bytes::from_static(b"x")).await.unwrap();
    upload.complete().await.unwrap();
    assert!(storage.exists(key).await.unwrap());

    storage.delete(key).await.unwrap();
    assert!(!storage.exists(key).await.unwrap());
    storage.delete(key).await.unwrap();
    storage.delete("never/existed.csv").await.unwrap();
    assert_eq!(storage.size(key).await.unwrap(), None);
    match storage.read(key).await {
        Err(e @ StorageError::NotFound { .. }) => assert!(!e.is_transient()),
        other => panic!("reading a deleted file: {other:?}"),
    }
}

#[tokio::test]
async fn local_never_leaves_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("secret.txt"), b"do not touch").unwrap();
    let storage = Storage::Local(LocalStorage::new(root.join("store")).await.unwrap());

    assert_rejects_bad_keys(&storage).await;
    // The name of a partial file is reserved, so an object never looks pending.
    assert_invalid_key(
        storage
            .begin_upload(
                "x.partial-00000000-0000-0000-0000-000000000000",
                &csv_meta(),
            )
            .await,
        "a reserved name",
    );

    assert_eq!(
        files_under(root),
        vec!["secret.txt".to_owned()],
        "nothing written outside (or inside) the storage directory"
    );
    assert_eq!(
        std::fs::read(root.join("secret.txt")).unwrap(),
        b"do not touch"
    );
}
