//! The dataset catalogue: every dataset a search may name, as pure data
//! (input shape, classes, split sizes, file format, canonical source, files
//! and their checksums). The worker downloads and reads datasets from these
//! entries; the spec, the API and the dashboard list them from here.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::InputShape;

/// How a dataset's files are laid out on disk.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// Four gzipped IDX files: training and test images and labels (MNIST's format).
    Idx,
    /// One `.tar.gz` of CIFAR-10 binary batches, unpacked after download.
    Cifar10Binary,
}

/// One file of a dataset's published distribution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatasetFile {
    /// File name at the source and in the cache folder.
    pub name: &'static str,
    /// Its published MD5, lowercase hex.
    pub md5: &'static str,
}

/// A dataset a search may name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatasetInfo {
    /// The name used in specs and on the command line, e.g. `fashion-mnist`.
    pub name: &'static str,
    /// What it is, for people.
    pub description: &'static str,
    /// Shape of one image, `[channels, height, width]`.
    #[cfg_attr(feature = "openapi", schema(value_type = [u32; 3]))]
    pub input: InputShape,
    /// Number of classes.
    pub classes: usize,
    /// Class names in label order (label `i` is `class_names[i]`).
    pub class_names: &'static [&'static str],
    /// Images in the published training split.
    pub train_images: usize,
    /// Images in the published test split.
    pub test_images: usize,
    /// How its files are laid out.
    pub format: DatasetFormat,
    /// Base URL of the canonical source; a file's URL is `source + name`.
    pub source: &'static str,
    /// The files to fetch, with their checksums.
    pub files: &'static [DatasetFile],
}

/// What the store keeps of an uploaded dataset besides its content: the
/// shape, the classes and how many images each split holds per class.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Shape of one image, `[channels, height, width]`.
    pub input: [usize; 3],
    /// Class names in label order (label `i` is `class_names[i]`).
    pub class_names: Vec<String>,
    /// Training images per class (validation is carved from these).
    pub train_per_class: Vec<u64>,
    /// Held-out test images per class (only final models see them).
    pub test_per_class: Vec<u64>,
    /// The upload's format: `image_folder`, `npz`, `csv` or `idx`.
    pub format: String,
    /// Whether the data gave its own test split (else it was carved,
    /// stratified and seeded, at upload).
    pub test_given: bool,
    /// Files of the upload passed over (not images).
    pub skipped: u64,
}

impl DatasetSummary {
    /// What a search needs of this upload, known as `name`.
    pub fn facts(&self, name: &str, id: &str) -> DatasetFacts {
        DatasetFacts {
            name: name.to_owned(),
            id: Some(id.to_owned()),
            input: self.input.into(),
            class_names: self.class_names.clone(),
        }
    }
}

/// What a search needs to know of its dataset, wherever it comes from
/// (the catalogue or an upload): its name, the shape of one image and the
/// classes. The spec, the space, the baselines and the strategy are
/// checked and sampled against these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetFacts {
    /// How people name it: a catalogue name or an upload's name.
    pub name: String,
    /// An upload's content id (SHA-256, hex); `None` for the catalogue.
    pub id: Option<String>,
    /// Shape of one image.
    pub input: InputShape,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

impl DatasetFacts {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }
}

impl DatasetInfo {
    /// What a search needs of this catalogue dataset.
    pub fn facts(&self) -> DatasetFacts {
        DatasetFacts {
            name: self.name.to_owned(),
            id: None,
            input: self.input,
            class_names: self.class_names.iter().map(|&c| c.to_owned()).collect(),
        }
    }
}

/// Whether `text` has the form of a content id: 64 lowercase hex digits
/// (a SHA-256).
pub fn is_content_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const IDX_FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

const fn idx_files(md5: [&'static str; 4]) -> [DatasetFile; 4] {
    [
        DatasetFile {
            name: IDX_FILE_NAMES[0],
            md5: md5[0],
        },
        DatasetFile {
            name: IDX_FILE_NAMES[1],
            md5: md5[1],
        },
        DatasetFile {
            name: IDX_FILE_NAMES[2],
            md5: md5[2],
        },
        DatasetFile {
            name: IDX_FILE_NAMES[3],
            md5: md5[3],
        },
    ]
}

const MNIST_FILES: [DatasetFile; 4] = idx_files([
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
]);

const FASHION_MNIST_FILES: [DatasetFile; 4] = idx_files([
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
]);

const CIFAR10_FILES: [DatasetFile; 1] = [DatasetFile {
    name: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
}];

/// Every dataset a search may name. Adding one here (and, for a new
/// [`DatasetFormat`], a reader in the worker) is all it takes.
pub const CATALOG: [DatasetInfo; 3] = [
    DatasetInfo {
        name: "mnist",
        description: "MNIST handwritten digits, 28x28 grey",
        input: InputShape::new(1, 28, 28),
        classes: 10,
        class_names: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        train_images: 60_000,
        test_images: 10_000,
        format: DatasetFormat::Idx,
        source: "https://ossci-datasets.s3.amazonaws.com/mnist/",
        files: &MNIST_FILES,
    },
    DatasetInfo {
        name: "fashion-mnist",
        description: "Fashion-MNIST clothing images, 28x28 grey",
        input: InputShape::new(1, 28, 28),
        classes: 10,
        class_names: &[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        train_images: 60_000,
        test_images: 10_000,
        format: DatasetFormat::Idx,
        source: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files: &FASHION_MNIST_FILES,
    },
    DatasetInfo {
        name: "cifar10",
        description: "CIFAR-10 small photographs, 32x32 RGB",
        input: InputShape::new(3, 32, 32),
        classes: 10,
        class_names: &[
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        train_images: 50_000,
        test_images: 10_000,
        format: DatasetFormat::Cifar10Binary,
        source: "https://www.cs.toronto.edu/~kriz/",
        files: &CIFAR10_FILES,
    },
];

/// A dataset name the catalogue does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown dataset `{name}`; known: {}", names().join(", "))]
pub struct UnknownDataset {
    /// The name asked for.
    pub name: String,
}

/// The catalogue entry named `name`.
pub fn dataset(name: &str) -> Result<&'static DatasetInfo, UnknownDataset> {
    CATALOG
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| UnknownDataset {
            name: name.to_owned(),
        })
}

/// Every dataset's name, in catalogue order.
pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|d| d.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_entries_are_complete() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for d in &CATALOG {
            assert!(!d.files.is_empty(), "{}", d.name);
            assert!(d.files.iter().all(|f| f.md5.len() == 32), "{}", d.name);
            assert!(d.source.ends_with('/'), "{}", d.name);
            assert_eq!(d.class_names.len(), d.classes, "{}", d.name);
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it_and_the_known_ones() {
        let err = dataset("imagenet").expect_err("unknown").to_string();
        assert!(
            err.contains("`imagenet`") && err.contains("fashion-mnist"),
            "{err}"
        );
        assert_eq!(
            dataset("cifar10").map(|d| d.input),
            Ok(InputShape::new(3, 32, 32))
        );
    }
}
