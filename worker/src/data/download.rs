//! Fetching the named datasets from their canonical sources on first use:
//! each file is downloaded to a `.part` file, checked against its published
//! MD5, then moved into place, so a cache folder only ever holds verified
//! files. A folder that already holds the files is used as it is (its files
//! are format-checked when read).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use search::dataset::{DatasetFormat, DatasetInfo};

use super::catalog::load_local;
use super::{DataError, Split};

/// One file of a dataset's distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name at the source and in the cache.
    pub name: String,
    /// Its published MD5, lowercase hex.
    pub md5: String,
}

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Base URL; a file's URL is `base_url + name`.
    pub base_url: String,
    /// The files to fetch.
    pub files: Vec<RemoteFile>,
    /// Whether the (single) file is a `.tar.gz` to unpack (CIFAR-10).
    pub unpack: bool,
}

/// Environment variable naming a mirror: files are then fetched from
/// `<mirror>/<dataset>/<file>` (air-gapped sites, tests).
pub const MIRROR_ENV: &str = "NAS_DATASET_MIRROR";

impl Source {
    /// The canonical source of `dataset` (or the mirror in `NAS_DATASET_MIRROR`).
    pub fn canonical(dataset: &DatasetInfo) -> Self {
        let base_url = match std::env::var(MIRROR_ENV) {
            Ok(mirror) if !mirror.is_empty() => {
                format!("{}/{}/", mirror.trim_end_matches('/'), dataset.name)
            }
            _ => dataset.source.to_owned(),
        };
        Self {
            base_url,
            files: dataset
                .files
                .iter()
                .map(|f| RemoteFile {
                    name: f.name.to_owned(),
                    md5: f.md5.to_owned(),
                })
                .collect(),
            unpack: dataset.format == DatasetFormat::Cifar10Binary,
        }
    }
}

/// Loads `dataset` from `data_dir/<name>/`, downloading it there first if
/// its files are not present.
/// A cached file that fails to read (truncated or damaged on disk) is
/// checked against its published MD5 and fetched again.
pub fn open_dataset(dataset: &DatasetInfo, data_dir: &Path) -> Result<Split, DataError> {
    match load_local(dataset, data_dir) {
        Err(DataError::Missing { .. }) => {
            let dir = data_dir.join(dataset.name);
            fetch_all(&Source::canonical(dataset), &dir)?;
            load_local(dataset, data_dir)
        }
        Err(DataError::Corrupt { file, reason, .. }) => {
            tracing::warn!(file = %file.display(), %reason, "a cached dataset file is damaged; fetching it again");
            let dir = data_dir.join(dataset.name);
            // Unpacked archives: drop the marker so the archive is fetched again.
            for f in dataset.files {
                let marker = dir.join(format!("{}.unpacked", f.name));
                if marker.is_file() && dataset.format == DatasetFormat::Cifar10Binary {
                    std::fs::remove_file(&marker).map_err(|e| io(&marker, e))?;
                }
            }
            fetch_all(&Source::canonical(dataset), &dir)?;
            load_local(dataset, data_dir)
        }
        other => other,
    }
}

/// Downloads and verifies every file of `source` into `dir` (skipping those
/// already there and verified), unpacking archives.
pub fn fetch_all(source: &Source, dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for file in &source.files {
        let dest = dir.join(&file.name);
        let marker = dir.join(format!("{}.unpacked", file.name));
        if source.unpack && marker.is_file() {
            continue;
        }
        if !(dest.is_file() && md5_of(&dest)? == file.md5) {
            fetch(
                &format!("{}{}", source.base_url, file.name),
                &dest,
                &file.md5,
            )?;
        }
        if source.unpack {
            unpack_tar_gz(&dest, dir)?;
            std::fs::write(&marker, b"").map_err(|e| io(&marker, e))?;
            std::fs::remove_file(&dest).map_err(|e| io(&dest, e))?;
        }
    }
    Ok(())
}

fn io(file: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        file: file.to_owned(),
        source,
    }
}

fn md5_of(file: &Path) -> Result<String, DataError> {
    let mut f = std::fs::File::open(file).map_err(|e| io(file, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(file, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` to `dest`, verifying its MD5; on any failure nothing is
/// left at `dest`.
pub fn fetch(url: &str, dest: &Path, md5: &str) -> Result<(), DataError> {
    // One temporary file per process and call: workers sharing a cache
    // folder never write into each other's download.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let part: PathBuf = dest.with_extension(format!("{}-{call}.part", std::process::id()));
    let download = |reason: String| DataError::Download {
        url: url.to_owned(),
        reason,
    };
    tracing::info!(%url, dest = %dest.display(), "downloading");
    let response = ureq::get(url).call().map_err(|e| download(e.to_string()))?;
    let expected_len = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.into_body().into_reader();
    let mut out = std::fs::File::create(&part).map_err(|e| io(&part, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let result = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(io(&part, e));
                }
            }
            Err(e) => {
                break Err(download(format!(
                    "connection failed after {total} bytes: {e}"
                )))
            }
        }
    };
    drop(out);
    let verdict = result.and_then(|()| {
        if let Some(len) = expected_len.filter(|&len| len != total) {
            return Err(download(format!("truncated: got {total} of {len} bytes")));
        }
        let actual = hex(&hasher.finalize());
        if actual != md5 {
            return Err(DataError::Checksum {
                file: dest.to_owned(),
                expected: md5.to_owned(),
                actual,
            });
        }
        std::fs::rename(&part, dest).map_err(|e| io(dest, e))
    });
    if verdict.is_err() {
        std::fs::remove_file(&part).ok();
    }
    verdict
}

/// Unpacks the regular files of a `.tar.gz` into `dir` (flattening paths to
/// their file names, which also keeps every entry inside `dir`).
fn unpack_tar_gz(archive: &Path, dir: &Path) -> Result<(), DataError> {
    let file = std::fs::File::open(archive).map_err(|e| io(archive, e))?;
    let corrupt = |reason: String| DataError::Corrupt {
        file: archive.to_owned(),
        offset: 0,
        reason,
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .into_owned();
        let Some(name) = path.file_name() else {
            continue;
        };
        let dest = dir.join(name);
        let mut out = std::fs::File::create(&dest).map_err(|e| io(&dest, e))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
