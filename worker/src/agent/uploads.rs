//! Uploaded datasets on a worker. A search on an upload records the
//! content's id; a worker fetches that content from the store it already
//! reaches (a chunk at a time, hashed as it arrives) into
//! `<data dir>/uploads/<id>.nasds`, and reads it from there after that.
//!
//! Once per machine: every agent of every process sharing the data dir
//! takes the kernel's `flock` on `<id>.lock` before it looks, so one
//! fetches while the others wait and then find the file. A cached file
//! that does not hash to its id is removed and fetched again. Nothing is
//! ever visible under the final name half written: a fetch writes
//! `<id>.part` and renames it once the hash matches.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use store::{Store, StoreError};
use thiserror::Error;
use tracing::{info, warn};

use crate::data::import::CanonicalDataset;

/// Fetches from the store this process has made (for tests and logs).
static FETCHES: AtomicU64 = AtomicU64::new(0);

/// Why an uploaded dataset could not be had.
#[derive(Debug, Error)]
pub enum UploadError {
    /// The store does not hold the content (removed since the search
    /// recorded it) or holds it corrupt: retrying will not help.
    #[error("dataset {id}: {reason}")]
    Unavailable {
        /// The content id.
        id: String,
        /// What the store said.
        reason: String,
    },
    /// The store could not be read just now (retry later).
    #[error("dataset {id}: reading the store: {source}")]
    Store {
        /// The content id.
        id: String,
        /// What went wrong.
        source: StoreError,
    },
    /// The local cache could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The content arrived but does not hash to its id, or does not
    /// decode.
    #[error("dataset {id}: {reason}")]
    Corrupt {
        /// The content id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

impl UploadError {
    /// Whether retrying later may succeed (a store or disk hiccup), as
    /// opposed to content that is gone or broken.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store { .. } | Self::Io { .. })
    }
}

/// How many times this process has fetched a dataset from the store.
pub fn fetches() -> u64 {
    FETCHES.load(Ordering::Relaxed)
}

/// Where the content `id` is cached under `data_dir`.
pub fn cache_path(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join("uploads").join(format!("{id}.nasds"))
}

/// The uploaded dataset `id` (its class names and split), from the cache under `data_dir`, fetched
/// from `store` first if the cache lacks it or holds it damaged.
pub async fn load_uploaded(
    store: &Store,
    id: &str,
    data_dir: &Path,
) -> Result<CanonicalDataset, UploadError> {
    if !search::dataset::is_content_id(id) {
        return Err(UploadError::Unavailable {
            id: id.to_owned(),
            reason: "not a content id".into(),
        });
    }
    let path = cache_path(data_dir, id);
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UploadError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let lock_path = dir.join(format!("{id}.lock"));
    let lock = blocking(&lock_path, {
        let lock_path = lock_path.clone();
        move || {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(io(&lock_path))?;
            file.lock().map_err(io(&lock_path))?;
            Ok(file)
        }
    })
    .await?;
    let cached = blocking(&path, {
        let (path, id) = (path.clone(), id.to_owned());
        move || read_cached(&path, &id)
    })
    .await?;
    let bytes = match cached {
        Some(bytes) => bytes,
        None => fetch(store, id, &path).await?,
    };
    drop(lock);
    let id = id.to_owned();
    blocking(&path, move || {
        CanonicalDataset::from_bytes(&bytes).map_err(|e| UploadError::Corrupt {
            id,
            reason: e.to_string(),
        })
    })
    .await
}

/// Runs `work` (file I/O about `path`) on a blocking thread.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, UploadError> + Send + 'static,
) -> Result<T, UploadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| UploadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?
}

/// The cached bytes of `id` at `path` if they hash to it; a file that
/// does not is removed (and `None` returned, so it is fetched again).
fn read_cached(path: &Path, id: &str) -> Result<Option<Vec<u8>>, UploadError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file
            .read_to_end(&mut bytes)
            .map_err(|source| UploadError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(UploadError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if hex(&Sha256::digest(&bytes)) == id {
        return Ok(Some(bytes));
    }
    warn!(path = %path.display(), "the cached dataset does not hash to its id; fetching it again");
    fs::remove_file(path).map_err(|source| UploadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(None)
}

/// Fetches `id` from the store a chunk at a time into `path` (through a
/// `.part` file, renamed once the hash matches) and returns its bytes.
async fn fetch(store: &Store, id: &str, path: &Path) -> Result<Vec<u8>, UploadError> {
    let started = Instant::now();
    let from_store = |source: StoreError| match source {
        StoreError::NotFound(_) | StoreError::Corrupt(_) => UploadError::Unavailable {
            id: id.to_owned(),
            reason: source.to_string(),
        },
        source => UploadError::Store {
            id: id.to_owned(),
            source,
        },
    };
    let (_, size, chunks) = store.dataset_content_info(id).await.map_err(from_store)?;
    let part = path.with_extension("part");
    let io = |source| UploadError::Io {
        path: part.clone(),
        source,
    };
    let mut file = File::create(&part).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for seq in 0..chunks {
        let chunk = store.blob_chunk(id, seq).await.map_err(from_store)?;
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(io)?;
        bytes.extend_from_slice(&chunk);
    }
    let actual = hex(&hasher.finalize());
    if actual != id {
        drop(file);
        let _ = fs::remove_file(&part);
        return Err(UploadError::Corrupt {
            id: id.to_owned(),
            reason: format!("the store's chunks hash to {actual}"),
        });
    }
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&part, path).map_err(io)?;
    FETCHES.fetch_add(1, Ordering::Relaxed);
    info!(
        dataset = id,
        bytes = bytes.len(),
        chunks,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "dataset fetched from the store"
    );
    Ok(bytes)
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
