//! The datasets the product knows by name, and where their files live.

use std::path::{Path, PathBuf};

use super::{DataError, Split};

/// A dataset known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownDataset {
    /// MNIST digits, 28x28x1, 10 classes.
    Mnist,
    /// Fashion-MNIST, 28x28x1, 10 classes.
    FashionMnist,
    /// CIFAR-10, 32x32x3, 10 classes.
    Cifar10,
}

impl KnownDataset {
    /// Every known dataset.
    pub const ALL: [KnownDataset; 3] = [Self::Mnist, Self::FashionMnist, Self::Cifar10];

    /// The name used on the command line and in specs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
            Self::Cifar10 => "cifar10",
        }
    }

    /// Looks a dataset up by name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The input shape of its images.
    pub fn input(self) -> search::InputShape {
        store::spec::dataset_shape(self.name())
            .map_or(search::InputShape::new(1, 28, 28), |(input, _)| input)
    }
}

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

/// Loads `dataset` from `data_dir/<name>/`.
pub fn load_local(dataset: KnownDataset, data_dir: &Path) -> Result<Split, DataError> {
    let dir = data_dir.join(dataset.name());
    match dataset {
        KnownDataset::Mnist | KnownDataset::FashionMnist => super::load_idx_dir(&dir),
        KnownDataset::Cifar10 => super::load_cifar10_dir(&dir),
    }
}
