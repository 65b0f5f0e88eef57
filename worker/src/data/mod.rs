//! Datasets held in memory as `u8` pixels, and what training needs from them.

mod batch;
mod catalog;
mod cifar;
mod download;
mod folder;
mod idx;
pub mod import;

use std::path::PathBuf;

use rand::seq::SliceRandom;
use search::InputShape;
use thiserror::Error;

pub use batch::{fill_batch, Augmentation};
pub use catalog::{default_data_dir, load_local};
pub use cifar::{load_cifar10_dir, read_cifar10_batch};
pub use download::{fetch, fetch_all, open_dataset, RemoteFile, Source, MIRROR_ENV};
pub use folder::{load_image_folder, ImageFolder};
pub use idx::{load_idx_dir, read_idx_images, read_idx_labels};

/// Why a dataset could not be read.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file's contents are not what its format requires.
    #[error("{}: at byte {offset}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset (in the decompressed stream for `.gz` files).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Two files of one dataset disagree (e.g. image and label counts).
    #[error("{reason}")]
    Mismatch {
        /// What disagrees.
        reason: String,
    },
    /// A download failed (network, HTTP status, truncated transfer).
    #[error("downloading {url}: {reason}")]
    Download {
        /// What was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A downloaded file does not have its published checksum.
    #[error("{}: checksum mismatch (md5 {actual}, expected {expected}); the download was discarded", file.display())]
    Checksum {
        /// The file.
        file: PathBuf,
        /// The published MD5.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// None of the expected files exist.
    #[error("{}: not found (tried {tried})", dir.display())]
    Missing {
        /// The folder searched.
        dir: PathBuf,
        /// The file names tried.
        tried: String,
    },
}

/// Labelled images in memory: `len()` images of `shape`, channel-major
/// (`c, h, w`), one byte per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Shape of one image.
    pub shape: InputShape,
    /// Number of classes (labels are `0..classes`).
    pub classes: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of one image.
    pub fn image(&self, index: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[index * size..(index + 1) * size]
    }

    /// Bytes per image.
    pub fn image_size(&self) -> usize {
        self.shape.channels * self.shape.height * self.shape.width
    }

    /// A new dataset of the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            shape: self.shape,
            classes: self.classes,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.subset(&(0..n).collect::<Vec<_>>())
    }

    /// Splits off a validation set: a seeded, stratified choice of
    /// `fraction` of each class. Returns `(train, validation)`.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let fraction = fraction.clamp(0.0, 1.0);
        let mut rng = search::seeded_rng(seed);
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for class in 0..self.classes {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&i| usize::from(self.labels[i]) == class)
                .collect();
            members.shuffle(&mut rng);
            let n_val = (members.len() as f64 * fraction).round() as usize;
            val.extend_from_slice(&members[..n_val]);
            train.extend_from_slice(&members[n_val..]);
        }
        train.sort_unstable();
        val.sort_unstable();
        (self.subset(&train), self.subset(&val))
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    pub fn channel_stats(&self) -> ChannelStats {
        let c = self.shape.channels;
        let plane = self.shape.height * self.shape.width;
        let mut sum = vec![0f64; c];
        let mut sum_sq = vec![0f64; c];
        for image in self.pixels.chunks_exact(c * plane) {
            for (ch, values) in image.chunks_exact(plane).enumerate() {
                for &v in values {
                    let x = f64::from(v) / 255.0;
                    sum[ch] += x;
                    sum_sq[ch] += x * x;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sum_sq
            .iter()
            .zip(&sum)
            .map(|(sq, s)| {
                let m = s / n;
                ((sq / n - m * m).max(0.0).sqrt().max(1e-6)) as f32
            })
            .collect();
        ChannelStats { mean, std }
    }
}

/// Per-channel normalisation: `x' = (x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChannelStats {
    /// Mean per channel, of pixels in [0, 1].
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl ChannelStats {
    /// The per-channel affine map of a raw pixel byte value `p` that this
    /// normalisation is: `p * scale + shift`, returned as `(scale, shift)`.
    /// Training batches and exported models both apply exactly this.
    pub fn pixel_affine(&self) -> (Vec<f32>, Vec<f32>) {
        let scale = self.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
        let shift = self
            .mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| -m / s)
            .collect();
        (scale, shift)
    }
}

/// A dataset's training and test parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training images (validation is carved from these).
    pub train: Dataset,
    /// Held-out test images.
    pub test: Dataset,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        Dataset {
            shape: InputShape::new(1, 2, 2),
            classes: 2,
            pixels: (0..40).map(|i| (i * 6) as u8).collect(),
            labels: (0..10).map(|i| (i % 2) as u8).collect(),
        }
    }

    #[test]
    fn validation_split_is_stratified_seeded_and_disjoint() {
        let d = toy();
        let (train, val) = d.split_validation(0.2, 7);
        assert_eq!((train.len(), val.len()), (8, 2));
        assert_eq!(val.labels.iter().filter(|&&l| l == 0).count(), 1);
        assert_eq!(d.split_validation(0.2, 7), (train.clone(), val.clone()));
        let mut all: Vec<&[u8]> = (0..train.len()).map(|i| train.image(i)).collect();
        all.extend((0..val.len()).map(|i| val.image(i)));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn channel_stats_of_known_pixels() {
        let d = Dataset {
            shape: InputShape::new(2, 1, 1),
            classes: 1,
            pixels: vec![0, 255, 255, 255],
            labels: vec![0, 0],
        };
        let s = d.channel_stats();
        assert!((s.mean[0] - 0.5).abs() < 1e-6 && (s.std[0] - 0.5).abs() < 1e-6);
        assert!((s.mean[1] - 1.0).abs() < 1e-6);
    }
}
