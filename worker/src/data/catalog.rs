//! Where the catalogue's datasets live on disk, and reading them from there
//! (the catalogue itself is [`search::dataset`]).

use std::path::{Path, PathBuf};

use search::dataset::{DatasetFormat, DatasetInfo};

use super::{DataError, Split};

/// The data folder: `NAS_DATA_DIR`, else the user's cache folder
/// (`$XDG_CACHE_HOME/nas/datasets` or `~/.cache/nas/datasets`).
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NAS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("nas").join("datasets")
}

/// Loads `dataset` from `data_dir/<name>/`, reading its files by their format.
pub fn load_local(dataset: &DatasetInfo, data_dir: &Path) -> Result<Split, DataError> {
    let dir = data_dir.join(dataset.name);
    match dataset.format {
        DatasetFormat::Idx => super::load_idx_dir(&dir),
        DatasetFormat::Cifar10Binary => super::load_cifar10_dir(&dir),
    }
}
