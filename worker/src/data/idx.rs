//! The IDX format of the MNIST and Fashion-MNIST distributions: a 4-byte
//! magic (`0, 0, type, dims`), `dims` big-endian `u32` sizes, then raw bytes.
//! Files may be gzip-compressed (`.gz`), detected by their content.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use search::InputShape;

use super::{DataError, Dataset, Split};

/// The IDX element type code for unsigned bytes.
const UNSIGNED_BYTE: u8 = 0x08;

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> DataError {
    DataError::Corrupt {
        file: file.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Reads a whole file, decompressing gzip if the content is gzip.
fn read_bytes(file: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        file: file.to_owned(),
        source,
    };
    let raw = std::fs::read(file).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        if let Err(e) = GzDecoder::new(raw.as_slice()).read_to_end(&mut out) {
            return Err(corrupt(
                file,
                out.len() as u64,
                format!("gzip stream is damaged or truncated ({e})"),
            ));
        }
        return Ok(out);
    }
    Ok(raw)
}

/// Parses an IDX file of unsigned bytes with `expected_dims` dimensions;
/// returns the sizes and the data.
pub(super) fn parse(
    file: &Path,
    bytes: &[u8],
    expected_dims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    if bytes.len() < 4 {
        return Err(corrupt(
            file,
            bytes.len() as u64,
            "file ends inside the 4-byte IDX magic number",
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(corrupt(
            file,
            0,
            format!(
                "not an IDX file: magic starts {:02x} {:02x}, expected 00 00",
                bytes[0], bytes[1]
            ),
        ));
    }
    if bytes[2] != UNSIGNED_BYTE {
        return Err(corrupt(
            file,
            2,
            format!(
                "element type 0x{:02x} is not unsigned byte (0x08)",
                bytes[2]
            ),
        ));
    }
    let dims = usize::from(bytes[3]);
    if dims != expected_dims {
        return Err(corrupt(
            file,
            3,
            format!("{dims} dimensions, expected {expected_dims}"),
        ));
    }
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(corrupt(
            file,
            bytes.len() as u64,
            format!("file ends inside the header of {header} bytes"),
        ));
    }
    let sizes: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| corrupt(file, 4, format!("sizes {sizes:?} overflow")))?;
    let actual = bytes.len() - header;
    if actual < expected {
        return Err(corrupt(
            file,
            bytes.len() as u64,
            format!(
                "file ends after {actual} of {expected} data bytes (sizes {sizes:?}): truncated"
            ),
        ));
    }
    if actual > expected {
        return Err(corrupt(
            file,
            (header + expected) as u64,
            format!("{} unexpected bytes after the data", actual - expected),
        ));
    }
    Ok((sizes, bytes[header..].to_vec()))
}

/// Reads an IDX image file (`count x height x width` bytes).
pub fn read_idx_images(file: &Path) -> Result<(InputShape, Vec<u8>), DataError> {
    let bytes = read_bytes(file)?;
    let (sizes, pixels) = parse(file, &bytes, 3)?;
    if sizes[1] == 0 || sizes[2] == 0 {
        return Err(corrupt(
            file,
            8,
            format!("image size {}x{} is empty", sizes[1], sizes[2]),
        ));
    }
    Ok((InputShape::new(1, sizes[1], sizes[2]), pixels))
}

/// Reads an IDX label file (`count` bytes).
pub fn read_idx_labels(file: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_bytes(file)?;
    Ok(parse(file, &bytes, 1)?.1)
}

/// The file in `dir` named `stem.gz` or `stem`, whichever exists.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DataError::Missing {
            dir: dir.to_owned(),
            tried: format!("{stem}.gz, {stem}"),
        })
}

fn load_part(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let images_file = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_file = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (shape, pixels) = read_idx_images(&images_file)?;
    let labels = read_idx_labels(&labels_file)?;
    let count = pixels.len() / (shape.height * shape.width);
    if count != labels.len() {
        return Err(DataError::Mismatch {
            reason: format!(
                "{} holds {count} images but {} holds {} labels",
                images_file.display(),
                labels_file.display(),
                labels.len()
            ),
        });
    }
    let classes = labels
        .iter()
        .copied()
        .max()
        .map_or(0, |m| usize::from(m) + 1);
    Ok(Dataset {
        shape,
        classes,
        pixels,
        labels,
    })
}

/// Loads a folder in the layout of the MNIST distributions:
/// `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
pub fn load_idx_dir(dir: &Path) -> Result<Split, DataError> {
    let mut train = load_part(dir, "train")?;
    let mut test = load_part(dir, "t10k")?;
    if train.shape != test.shape {
        return Err(DataError::Mismatch {
            reason: format!(
                "{}: train images are {} but test images are {}",
                dir.display(),
                train.shape,
                test.shape
            ),
        });
    }
    let classes = train.classes.max(test.classes);
    train.classes = classes;
    test.classes = classes;
    Ok(Split { train, test })
}
