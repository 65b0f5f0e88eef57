//! The one form every imported dataset is stored in: `u8` pixels
//! (channel-major), `u8` labels, class names and a fixed train/test split,
//! as one self-describing blob whose SHA-256 is the dataset's id.
//!
//! Layout: the magic `NASDS\x01`, a little-endian `u32` header length, the
//! header as JSON (`shape`, `class_names`, `train`, `test`: image counts),
//! then the training pixels, training labels, test pixels and test labels.
//! The hash is of these bytes, so two uploads of the same decoded images,
//! labels, names and split (whatever their encodings) are one dataset.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use search::InputShape;

use crate::data::{Dataset, Split};

use super::ImportError;

const MAGIC: &[u8; 6] = b"NASDS\x01";

/// Largest header a blob may declare, bytes (class names included).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// A dataset in its canonical form: what is stored, fetched and trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalDataset {
    /// Class names in label order (label `i` is `class_names[i]`).
    pub class_names: Vec<String>,
    /// The training images (validation is carved from these per search)
    /// and the held-out test images (only final models see them).
    pub split: Split,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    shape: [usize; 3],
    class_names: Vec<String>,
    train: usize,
    test: usize,
}

impl CanonicalDataset {
    /// The shape of one image.
    pub fn shape(&self) -> InputShape {
        self.split.train.shape
    }

    /// Images per class in the training and the test split.
    pub fn per_class(&self) -> (Vec<usize>, Vec<usize>) {
        let count = |d: &Dataset| {
            let mut n = vec![0; self.class_names.len()];
            for &l in &d.labels {
                if let Some(c) = n.get_mut(usize::from(l)) {
                    *c += 1;
                }
            }
            n
        };
        (count(&self.split.train), count(&self.split.test))
    }

    /// Its summary (shape, classes, images per split and class), with
    /// how it was uploaded: its `format`, whether the data gave its test
    /// split and how many files were passed over.
    pub fn summary(&self, format: &str, test_given: bool, skipped: u64) -> search::DatasetSummary {
        let (train, test) = self.per_class();
        let shape = self.shape();
        search::DatasetSummary {
            input: [shape.channels, shape.height, shape.width],
            class_names: self.class_names.clone(),
            train_per_class: train.into_iter().map(|n| n as u64).collect(),
            test_per_class: test.into_iter().map(|n| n as u64).collect(),
            format: format.to_owned(),
            test_given,
            skipped,
        }
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let shape = self.shape();
        let header = Header {
            shape: [shape.channels, shape.height, shape.width],
            class_names: self.class_names.clone(),
            train: self.split.train.len(),
            test: self.split.test.len(),
        };
        // A struct of numbers and strings always serialises.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let (train, test) = (&self.split.train, &self.split.test);
        let mut out = Vec::with_capacity(
            MAGIC.len()
                + 4
                + header.len()
                + train.pixels.len()
                + train.labels.len()
                + test.pixels.len()
                + test.labels.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for part in [&train.pixels, &train.labels, &test.pixels, &test.labels] {
            out.extend_from_slice(part);
        }
        out
    }

    /// Reads canonical bytes back; anything else is an error naming the
    /// offset where it stops making sense.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ImportError> {
        let corrupt = |offset: usize, reason: &str| ImportError::Canonical {
            offset: offset as u64,
            reason: reason.to_owned(),
        };
        if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt(0, "not a canonical dataset (magic NASDS\\x01)"));
        }
        let at = MAGIC.len();
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let start = at + 4;
        if len > MAX_HEADER_BYTES || bytes.len() < start + len {
            return Err(corrupt(at, "the header runs past the end"));
        }
        let header: Header = serde_json::from_slice(&bytes[start..start + len])
            .map_err(|e| corrupt(start, &format!("header: {e}")))?;
        let [channels, height, width] = header.shape;
        let shape = InputShape::new(channels, height, width);
        let image = channels
            .checked_mul(height)
            .and_then(|p| p.checked_mul(width))
            .ok_or_else(|| corrupt(start, "the image size overflows"))?;
        let classes = header.class_names.len();
        let mut offset = start + len;
        let mut take = |n: usize| -> Result<Vec<u8>, ImportError> {
            let end = offset
                .checked_add(n)
                .filter(|&end| end <= bytes.len())
                .ok_or_else(|| corrupt(offset, "the data ends early: truncated"))?;
            let part = bytes[offset..end].to_vec();
            offset = end;
            Ok(part)
        };
        let mut part = |count: usize| -> Result<Dataset, ImportError> {
            let pixels = take(
                count
                    .checked_mul(image)
                    .ok_or_else(|| corrupt(start, "the pixel count overflows"))?,
            )?;
            let labels = take(count)?;
            Ok(Dataset {
                shape,
                classes,
                pixels,
                labels,
            })
        };
        let train = part(header.train)?;
        let test = part(header.test)?;
        if offset != bytes.len() {
            return Err(corrupt(offset, "unexpected bytes after the data"));
        }
        if let Some(bad) = train
            .labels
            .iter()
            .chain(&test.labels)
            .find(|&&l| usize::from(l) >= classes)
        {
            return Err(corrupt(
                start,
                &format!("label {bad} with {classes} classes"),
            ));
        }
        Ok(Self {
            class_names: header.class_names,
            split: Split { train, test },
        })
    }

    /// The dataset's id: the SHA-256 of its canonical bytes, in hex.
    pub fn content_hash(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
