//! CIFAR-10 binary batches: records of one label byte then 3,072 pixel bytes
//! (1,024 red, 1,024 green, 1,024 blue, row-major), 10,000 records a file.

use std::path::{Path, PathBuf};

use search::InputShape;

use super::{DataError, Dataset, Split};

const RECORD: usize = 1 + 3 * 32 * 32;
/// The training batches, then the test batch.
const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST_FILE: &str = "test_batch.bin";

/// Reads one CIFAR-10 binary batch file into `(pixels, labels)`.
pub fn read_cifar10_batch(file: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(file).map_err(|source| DataError::Io {
        file: file.to_owned(),
        source,
    })?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(DataError::Corrupt {
            file: file.to_owned(),
            offset: (bytes.len() - bytes.len() % RECORD) as u64,
            reason: format!(
                "file is {} bytes, not a whole number of {RECORD}-byte records (truncated?)",
                bytes.len()
            ),
        });
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * (RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(DataError::Corrupt {
                file: file.to_owned(),
                offset: (i * RECORD) as u64,
                reason: format!(
                    "label {} of record {i} is not a CIFAR-10 class (0-9)",
                    record[0]
                ),
            });
        }
        labels.push(record[0]);
        pixels.extend_from_slice(&record[1..]);
    }
    Ok(Dataset {
        shape: InputShape::new(3, 32, 32),
        classes: 10,
        pixels,
        labels,
    })
}

/// The folder holding the batch files: `dir` itself or the archive's
/// `cifar-10-batches-bin` inside it.
fn batches_dir(dir: &Path) -> Result<PathBuf, DataError> {
    for candidate in [dir.to_owned(), dir.join("cifar-10-batches-bin")] {
        if candidate.join(TEST_FILE).is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::Missing {
        dir: dir.to_owned(),
        tried: format!("{TEST_FILE}, cifar-10-batches-bin/{TEST_FILE}"),
    })
}

fn concat(parts: Vec<Dataset>) -> Dataset {
    let mut all = Dataset {
        shape: InputShape::new(3, 32, 32),
        classes: 10,
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for part in parts {
        all.pixels.extend(part.pixels);
        all.labels.extend(part.labels);
    }
    all
}

/// Loads CIFAR-10's five training batches and its test batch from `dir`.
pub fn load_cifar10_dir(dir: &Path) -> Result<Split, DataError> {
    let dir = batches_dir(dir)?;
    let train = TRAIN_FILES
        .iter()
        .map(|f| read_cifar10_batch(&dir.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Split {
        train: concat(train),
        test: read_cifar10_batch(&dir.join(TEST_FILE))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, records: usize, label: u8) -> PathBuf {
        let mut bytes = Vec::new();
        for i in 0..records {
            bytes.push(label);
            bytes.extend((0..RECORD - 1).map(|p| ((p + i) % 256) as u8));
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn reads_batches_and_names_a_truncated_file() {
        let dir = std::env::temp_dir().join(format!("nas-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (i, f) in TRAIN_FILES.iter().enumerate() {
            write(&dir, f, 2, i as u8);
        }
        let test = write(&dir, TEST_FILE, 3, 9);
        let split = load_cifar10_dir(&dir).expect("loads");
        assert_eq!((split.train.len(), split.test.len()), (10, 3));
        assert_eq!(split.train.labels[4], 2);
        assert_eq!(split.train.image(1)[..2], [1, 2]);
        // Cut the last record short.
        let bytes = std::fs::read(&test).expect("read");
        std::fs::write(&test, &bytes[..bytes.len() - 10]).expect("write");
        let err = load_cifar10_dir(&dir).expect_err("truncated").to_string();
        assert!(
            err.contains("test_batch.bin")
                && err.contains("at byte 6146")
                && err.contains("truncated"),
            "{err}"
        );
        // A bad label.
        let mut bytes = bytes.clone();
        bytes[RECORD] = 42;
        std::fs::write(&test, &bytes).expect("write");
        let err = load_cifar10_dir(&dir).expect_err("bad label").to_string();
        assert!(
            err.contains("at byte 3073") && err.contains("label 42"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
