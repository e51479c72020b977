//! The Local backend: files under one directory, written atomically.
//!
//! An upload writes `{dir}/{key}.partial-{id}` and, on `complete`, fsyncs it and renames it
//! to `{dir}/{key}`, so a reader sees either no file or the whole file. Only the bytes are
//! stored: Content-Type, Content-Disposition and Content-Encoding are not (the HTTP front
//! knows them from the database when it serves a local file).
//!
//! Keys are validated (see [`super::validate_key`]) before they are joined to the directory,
//! so no key can reach outside it. Symbolic links placed inside the directory by someone
//! with access to the machine are followed like any other path; the service never creates
//! them.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::{ObjectStream, StorageError, validate_key};

/// Marks a file as an upload in progress: `{name}.partial-{uuid}`. Keys may not contain it
/// in their file name, so a finished object is never mistaken for a pending one.
const PARTIAL_MARKER: &str = ".partial-";

/// Bytes read at a time when streaming a file out.
const READ_CHUNK: usize = 64 * 1024;

/// A directory holding exports.
#[derive(Clone, Debug)]
pub struct LocalStorage {
    /// Absolute and canonical, so the paths in errors are unambiguous.
    dir: PathBuf,
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        op,
        target: path.display().to_string(),
        source,
    }
}

impl LocalStorage {
    /// Uses `dir`, creating it (and its parents) if missing.
    pub async fn new(dir: impl AsRef<Path>) -> Result<LocalStorage, StorageError> {
        let dir = dir.as_ref();
        if dir.as_os_str().is_empty() {
            return Err(StorageError::Config(
                "the local storage directory is empty".into(),
            ));
        }
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error("create storage directory", dir, e))?;
        let dir = tokio::fs::canonicalize(dir)
            .await
            .map_err(|e| io_error("resolve storage directory", dir, e))?;
        Ok(LocalStorage { dir })
    }

    /// The storage directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`, after checking the key.
    pub fn path_for(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        let name = key.rsplit('/').next().unwrap_or(key);
        if name.contains(PARTIAL_MARKER) {
            return Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: "'.partial-' in a file name is reserved for uploads in progress",
            });
        }
        let path = self.dir.join(key);
        // Guaranteed by validate_key; checked again because escaping the directory is the
        // one thing this backend must never do.
        if !path.starts_with(&self.dir) {
            return Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: "the key leads outside the storage directory",
            });
        }
        Ok(path)
    }

    pub(crate) async fn begin_upload(&self, key: &str) -> Result<LocalUpload, StorageError> {
        let final_path = self.path_for(key)?;
        if let Some(parent) = final_path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error("create directory for", parent, e))?;
        }
        let id = Uuid::new_v4().to_string();
        let partial_path = partial_path(&final_path, &id);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial_path)
            .await
            .map_err(|e| io_error("create", &partial_path, e))?;
        Ok(LocalUpload {
            key: key.to_owned(),
            id,
            file: Some(file),
            partial_path,
            final_path,
        })
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_for(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(io_error("delete", &path, e)),
        }
    }

    pub(crate) async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.path_for(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(io_error("stat", &path, e)),
        }
    }

    pub(crate) async fn read(&self, key: &str) -> Result<ObjectStream, StorageError> {
        let path = self.path_for(key)?;
        let not_found = || StorageError::NotFound {
            op: "read",
            target: path.display().to_string(),
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if gone(&e) => return Err(not_found()),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error("stat", &path, e))?;
        if !meta.is_file() {
            return Err(not_found());
        }
        let stream = futures::stream::unfold(Some((file, path)), |state| async move {
            let (mut file, path) = state?;
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            match file.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), Some((file, path)))),
                // The stream ends after its first error.
                Err(e) => Some((Err(io_error("read", &path, e)), None)),
            }
        });
        Ok(ObjectStream::new(Some(meta.len()), Box::pin(stream)))
    }

    /// Removes the partial file of an earlier attempt. An id that is not one of ours, or a
    /// file already gone, is nothing to do.
    pub(crate) async fn abort_upload(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StorageError> {
        let final_path = self.path_for(key)?;
        // Re-formatting the parsed id keeps anything but a UUID out of the path.
        let Ok(id) = Uuid::parse_str(upload_id) else {
            return Ok(());
        };
        let path = partial_path(&final_path, &id.to_string());
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(io_error("remove partial upload", &path, e)),
        }
    }

    /// Partial files whose key starts with `prefix`, as `(key, upload_id)`, sorted.
    pub(crate) async fn pending_uploads(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        // Only the directory named by the prefix's complete segments can hold matches.
        let base = match prefix.rfind('/') {
            Some(i) => self.dir.join(&prefix[..i]),
            None => self.dir.clone(),
        };
        let mut found = Vec::new();
        let mut dirs = vec![base];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(io_error("list", &dir, e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| io_error("list", &dir, e))?
            {
                let path = entry.path();
                // Not following symbolic links keeps the walk inside the directory.
                let file_type = entry
                    .file_type()
                    .await
                    .map_err(|e| io_error("stat", &path, e))?;
                if file_type.is_dir() {
                    dirs.push(path);
                } else if file_type.is_file()
                    && let Some(pending) = self.pending_of(&path)
                    && pending.0.starts_with(prefix)
                {
                    found.push(pending);
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// `(key, upload_id)` if `path` is a partial file, i.e. `{dir}/{key}.partial-{uuid}`.
    fn pending_of(&self, path: &Path) -> Option<(String, String)> {
        let relative = path.strip_prefix(&self.dir).ok()?.to_str()?;
        let (key, id) = relative.rsplit_once(PARTIAL_MARKER)?;
        let id = Uuid::parse_str(id).ok()?;
        if key.ends_with('/') || validate_key(key).is_err() {
            return None;
        }
        Some((key.to_owned(), id.to_string()))
    }
}

fn partial_path(final_path: &Path, id: &str) -> PathBuf {
    let mut name = final_path.file_name().unwrap_or_default().to_os_string();
    name.push(PARTIAL_MARKER);
    name.push(id);
    final_path.with_file_name(name)
}

/// A missing file, or a missing directory on the way to it.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// A file being written under a temporary name.
#[derive(Debug)]
pub struct LocalUpload {
    key: String,
    id: String,
    /// `None` once an error removed the partial file: the upload refuses further bytes.
    file: Option<tokio::fs::File>,
    partial_path: PathBuf,
    final_path: PathBuf,
}

impl LocalUpload {
    pub fn upload_id(&self) -> &str {
        &self.id
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn file(&mut self, op: &'static str) -> Result<&mut tokio::fs::File, StorageError> {
        let target = self.partial_path.display().to_string();
        self.file.as_mut().ok_or_else(|| StorageError::Internal {
            op,
            target,
            message: "an earlier error already discarded this upload".into(),
        })
    }

    pub(crate) async fn send(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let result = self.file("write")?.write_all(&chunk).await;
        if let Err(e) = result {
            let error = io_error("write", &self.partial_path, e);
            self.discard().await;
            return Err(error);
        }
        Ok(())
    }

    /// Closes and removes the partial file; a failure to remove is logged (the file is
    /// invisible under the key either way, and `pending_uploads` still finds it).
    async fn discard(&mut self) {
        self.file = None;
        match tokio::fs::remove_file(&self.partial_path).await {
            Ok(()) => {}
            Err(e) if gone(&e) => {}
            Err(e) => tracing::warn!(
                path = %self.partial_path.display(),
                error = %e,
                "could not remove the partial file of a failed upload"
            ),
        }
    }

    pub(crate) async fn complete(mut self) -> Result<(), StorageError> {
        match self.finish().await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.discard().await;
                Err(e)
            }
        }
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        let partial = self.partial_path.clone();
        let file = self.file("complete")?;
        file.flush()
            .await
            .map_err(|e| io_error("flush", &partial, e))?;
        // The bytes must be on disk before the name points at them, or a power cut could
        // leave a whole-looking file with holes.
        file.sync_all()
            .await
            .map_err(|e| io_error("fsync", &partial, e))?;
        self.file = None;
        tokio::fs::rename(&partial, &self.final_path)
            .await
            .map_err(|e| io_error("rename into place", &self.final_path, e))?;
        // Make the rename itself durable. The object is already whole and visible, so a
        // failure here is only worth a warning.
        if let Some(parent) = self.final_path.parent() {
            let synced = match tokio::fs::File::open(parent).await {
                Ok(dir) => dir.sync_all().await,
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                tracing::warn!(dir = %parent.display(), error = %e, "could not fsync the directory");
            }
        }
        Ok(())
    }

    pub(crate) async fn abort(mut self) -> Result<(), StorageError> {
        self.file = None;
        match tokio::fs::remove_file(&self.partial_path).await {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(io_error("remove partial upload", &self.partial_path, e)),
        }
    }
}
