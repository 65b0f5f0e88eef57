//! A user's own data, turned into one [`CanonicalDataset`]: an image folder
//! as `.zip`, `.tar` or `.tar.gz`, a NumPy `.npz` (`x_train`, `y_train`,
//! optionally `x_test`, `y_test`), a CSV with a label column and a column
//! per pixel, or the four IDX files in an archive. The format is detected
//! from the content, not the name. Everything is decoded once, checked, and
//! given a held-out test split: the data's own, or one carved stratified
//! and seeded (`test_fraction`). Every input is bounded
//! ([`ImportLimits`]), and every refusal names the file, entry, row or
//! field at fault.

mod archive;
mod canonical;
mod csv;
mod images;
mod npz;
mod samples;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use search::InputShape;
use thiserror::Error;

use self::archive::{ArchiveKind, Entry};
pub use self::canonical::CanonicalDataset;
pub use self::samples::{sample_grid, SAMPLES_PER_CLASS};
use crate::data::{Dataset, Split};

/// Why an upload could not become a dataset. Each names what is at fault.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The upload could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Nothing in it.
    #[error("the upload is empty: no images")]
    Empty,
    /// Not one of the accepted formats, or broken as a whole.
    #[error("{0}")]
    Format(String),
    /// One entry of an archive is refused.
    #[error("{entry}: {reason}")]
    Entry {
        /// The entry's name in the archive.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// One row of a CSV is refused (rows count from 1, the header being 1).
    #[error("row {row}{}: {reason}", column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
    Row {
        /// The line.
        row: usize,
        /// The column, where one is at fault.
        column: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// An option is wrong for this data.
    #[error("{field}: {reason}")]
    Field {
        /// The option.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A bound on what an upload may hold was passed.
    #[error("more {what} than the limit of {limit}")]
    Bound {
        /// What was counted.
        what: String,
        /// The bound.
        limit: u64,
    },
    /// Images of different sizes without `resize`.
    #[error("{entry} is {}x{}, but {first} is {}x{}: pass resize (e.g. 32x32) to bring every image to one size", size.0, size.1, first_size.0, first_size.1)]
    MixedSizes {
        /// The first image of another size.
        entry: String,
        /// Its height and width.
        size: (usize, usize),
        /// The first image.
        first: String,
        /// Its height and width.
        first_size: (usize, usize),
    },
    /// A class has too few images in a split to learn from or test on.
    #[error("class `{class}` has {count} image(s) in the {split} split; each class needs at least {MIN_PER_CLASS}")]
    TooFewImages {
        /// The class.
        class: String,
        /// train or test.
        split: &'static str,
        /// Images it has there.
        count: usize,
    },
    /// Canonical bytes that do not read back.
    #[error("canonical dataset: at byte {offset}: {reason}")]
    Canonical {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl ImportError {
    fn io(file: &Path, source: std::io::Error) -> Self {
        Self::Io {
            file: file.to_owned(),
            source,
        }
    }
}

/// Fewest images of a class in each split.
pub const MIN_PER_CLASS: usize = 2;

/// What an upload may hold at most.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportLimits {
    /// Bytes an archive may unpack to (a compression bomb stops here).
    pub max_unpacked_bytes: u64,
    /// Entries an archive may hold.
    pub max_entries: usize,
    /// Classes (labels are one byte: at most 256).
    pub max_classes: usize,
    /// Images in all.
    pub max_images: usize,
    /// Widest and tallest image decoded, pixels.
    pub max_side: u32,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_unpacked_bytes: 2 << 30,
            max_entries: 500_000,
            max_classes: 256,
            max_images: 500_000,
            max_side: 4096,
        }
    }
}

/// How an upload is read.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// Bring every image to this height and width (otherwise they must
    /// share one size).
    pub resize: Option<(usize, usize)>,
    /// 1 (grayscale) or 3 (RGB); default: the first image's.
    pub channels: Option<usize>,
    /// The CSV column holding labels.
    pub label_column: String,
    /// For data without a test split: the fraction of each class held out.
    pub test_fraction: f64,
    /// Seeds the carving of the test split.
    pub seed: u64,
    /// Bounds on the upload.
    pub limits: ImportLimits,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            resize: None,
            channels: None,
            label_column: "label".into(),
            test_fraction: 0.15,
            seed: 0,
            limits: ImportLimits::default(),
        }
    }
}

/// The formats an upload may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    /// An image folder in an archive.
    ImageFolder,
    /// NumPy arrays.
    Npz,
    /// A CSV of pixels.
    Csv,
    /// The four IDX files in an archive.
    Idx,
}

/// An upload, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The dataset.
    pub dataset: CanonicalDataset,
    /// What it was.
    pub format: UploadFormat,
    /// Whether the data gave its own test split (else it was carved).
    pub test_given: bool,
    /// Files passed over (not images, links).
    pub skipped: usize,
}

impl UploadFormat {
    /// Its name in summaries: `image_folder`, `npz`, `csv` or `idx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImageFolder => "image_folder",
            Self::Npz => "npz",
            Self::Csv => "csv",
            Self::Idx => "idx",
        }
    }
}

impl Imported {
    /// What the store keeps of it besides the content.
    pub fn summary(&self) -> search::DatasetSummary {
        self.dataset
            .summary(self.format.as_str(), self.test_given, self.skipped as u64)
    }
}

/// Reads the upload at `path` into a canonical dataset.
pub fn import(path: &Path, options: &ImportOptions) -> Result<Imported, ImportError> {
    check_options(options)?;
    let mut head = [0u8; 512];
    let read = {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| ImportError::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match file
                .read(&mut head[n..])
                .map_err(|e| ImportError::io(path, e))?
            {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    let head = &head[..read];
    if head.is_empty() {
        return Err(ImportError::Empty);
    }
    let kind = if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::TarGz)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(ArchiveKind::Tar)
    } else {
        None
    };
    let Some(kind) = kind else {
        return import_csv(path, options);
    };
    let (entries, links) = archive::read_entries(path, kind, &options.limits)?;
    if entries.is_empty() {
        return Err(ImportError::Empty);
    }
    let mut imported = if entries.iter().any(|e| e.name.ends_with(".npy")) {
        import_npz(&entries, options)?
    } else if entries.iter().any(|e| e.name.contains("idx3-ubyte")) {
        import_idx(&entries, options)?
    } else {
        import_folder(&entries, options)?
    };
    imported.skipped += links;
    Ok(imported)
}

fn check_options(options: &ImportOptions) -> Result<(), ImportError> {
    let field = |field: &str, reason: &str| ImportError::Field {
        field: field.into(),
        reason: reason.into(),
    };
    if let Some(c) = options.channels {
        if c != 1 && c != 3 {
            return Err(field("channels", "must be 1 or 3"));
        }
    }
    if let Some((h, w)) = options.resize {
        let side = options.limits.max_side as usize;
        if !(1..=side).contains(&h) || !(1..=side).contains(&w) {
            return Err(field("resize", &format!("each side must be 1 to {side}")));
        }
    }
    if !(options.test_fraction > 0.0 && options.test_fraction < 0.9) {
        return Err(field("test_fraction", "must be in (0, 0.9)"));
    }
    if options.label_column.trim().is_empty() {
        return Err(field("label_column", "must not be empty"));
    }
    Ok(())
}

/// Labels as given (numbers or names) mapped to `0..classes`: class names
/// sorted (numerically when every label is an integer).
fn label_map(raw: &[String], limits: &ImportLimits) -> Result<(Vec<String>, Vec<u8>), ImportError> {
    let mut names: Vec<String> = raw
        .iter()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    if names.len() > limits.max_classes.min(256) {
        return Err(ImportError::Bound {
            what: "classes".into(),
            limit: limits.max_classes.min(256) as u64,
        });
    }
    let index: BTreeMap<&str, u8> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u8))
        .collect();
    let labels = raw.iter().map(|l| index[l.as_str()]).collect();
    Ok((names, labels))
}

fn import_csv(path: &Path, options: &ImportOptions) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::io(path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ImportError::Format(format!(
            "not a zip, tar, tar.gz or .npz archive, and not a UTF-8 CSV (byte {}): accepted are image folders as .zip/.tar/.tar.gz, .npz, .csv and IDX files in an archive",
            e.valid_up_to()
        ))
    })?;
    let (shape, pixels, raw) = csv::read(text, &options.label_column, options.limits.max_images)?;
    let (class_names, labels) = label_map(&raw, &options.limits)?;
    let train = Dataset {
        shape,
        classes: class_names.len(),
        pixels,
        labels,
    };
    finish(class_names, train, None, UploadFormat::Csv, 0, options)
}

fn import_npz(entries: &[Entry], options: &ImportOptions) -> Result<Imported, ImportError> {
    let ((shape, pixels, raw), test) = npz::read(entries)?;
    let as_text = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>();
    let mut all = as_text(&raw);
    if let Some((test_shape, _, test_raw)) = &test {
        if *test_shape != shape {
            return Err(ImportError::Format(format!(
                "x_train images are {shape:?} but x_test images are {test_shape:?}"
            )));
        }
        all.extend(as_text(test_raw));
    }
    let (class_names, labels) = label_map(&all, &options.limits)?;
    let (train_labels, test_labels) = labels.split_at(raw.len());
    let classes = class_names.len();
    let train = Dataset {
        shape,
        classes,
        pixels,
        labels: train_labels.to_vec(),
    };
    let test = test.map(|(_, pixels, _)| Dataset {
        shape,
        classes,
        pixels,
        labels: test_labels.to_vec(),
    });
    finish(class_names, train, test, UploadFormat::Npz, 0, options)
}

fn import_idx(entries: &[Entry], options: &ImportOptions) -> Result<Imported, ImportError> {
    let find = |part: &str, kind: &str| {
        entries
            .iter()
            .find(|e| {
                let base = e.name.rsplit('/').next().unwrap_or(&e.name);
                base.starts_with(part) && base.contains(kind)
            })
            .ok_or_else(|| {
                ImportError::Format(format!(
                    "an IDX archive needs {part}-images-idx3-ubyte and {part}-labels-idx1-ubyte (and t10k-... for a test split); no {part}-...{kind} found"
                ))
            })
    };
    let read = |part: &str| -> Result<Dataset, ImportError> {
        let images = find(part, "idx3-ubyte")?;
        let labels = find(part, "idx1-ubyte")?;
        let gunzip = |e: &Entry| -> Result<Vec<u8>, ImportError> {
            if !e.bytes.starts_with(&[0x1f, 0x8b]) {
                return Ok(e.bytes.clone());
            }
            let mut out = Vec::new();
            use std::io::Read;
            flate2::read::GzDecoder::new(e.bytes.as_slice())
                .take(options.limits.max_unpacked_bytes)
                .read_to_end(&mut out)
                .map_err(|err| ImportError::Entry {
                    entry: e.name.clone(),
                    reason: format!("cannot be unpacked: {err}"),
                })?;
            Ok(out)
        };
        let corrupt = |e: crate::data::DataError| ImportError::Format(e.to_string());
        let (sizes, pixels) =
            super::idx::parse(Path::new(&images.name), &gunzip(images)?, 3).map_err(corrupt)?;
        let (_, label_bytes) =
            super::idx::parse(Path::new(&labels.name), &gunzip(labels)?, 1).map_err(corrupt)?;
        if label_bytes.len() != sizes[0] {
            return Err(ImportError::Format(format!(
                "{} holds {} images but {} holds {} labels",
                images.name,
                sizes[0],
                labels.name,
                label_bytes.len()
            )));
        }
        let labels = label_bytes;
        Ok(Dataset {
            shape: InputShape::new(1, sizes[1], sizes[2]),
            classes: 0,
            pixels,
            labels,
        })
    };
    let train = read("train")?;
    let test = match find("t10k", "idx3-ubyte") {
        Ok(_) => Some(read("t10k")?),
        Err(_) => None,
    };
    let raw: Vec<String> = train
        .labels
        .iter()
        .chain(test.iter().flat_map(|t| &t.labels))
        .map(u8::to_string)
        .collect();
    let (class_names, labels) = label_map(&raw, &options.limits)?;
    let classes = class_names.len();
    let (train_labels, test_labels) = labels.split_at(train.len());
    let train = Dataset {
        classes,
        labels: train_labels.to_vec(),
        ..train
    };
    let test = test.map(|t| Dataset {
        classes,
        labels: test_labels.to_vec(),
        ..t
    });
    finish(class_names, train, test, UploadFormat::Idx, 0, options)
}

fn import_folder(entries: &[Entry], options: &ImportOptions) -> Result<Imported, ImportError> {
    let folder = images::read(entries, options)?;
    let classes = folder.class_names.len();
    let dataset = |d: images::Decoded| Dataset {
        shape: folder.shape,
        classes,
        pixels: d.pixels,
        labels: d.labels,
    };
    let train = dataset(folder.train);
    let test = folder.test.map(dataset);
    finish(
        folder.class_names,
        train,
        test,
        UploadFormat::ImageFolder,
        folder.skipped,
        options,
    )
}

/// Applies `resize` and `channels` to array data (image folders apply them
/// while decoding), carves the test split if none was given, and checks
/// the bounds and the images per class.
fn finish(
    class_names: Vec<String>,
    train: Dataset,
    test: Option<Dataset>,
    format: UploadFormat,
    skipped: usize,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let reshape = |d: Dataset| -> Dataset {
        if format == UploadFormat::ImageFolder {
            d
        } else {
            reshaped(d, options)
        }
    };
    let train = reshape(train);
    let test = test.map(reshape);
    let images = train.len() + test.as_ref().map_or(0, Dataset::len);
    if images == 0 {
        return Err(ImportError::Empty);
    }
    if images > options.limits.max_images {
        return Err(ImportError::Bound {
            what: "images".into(),
            limit: options.limits.max_images as u64,
        });
    }
    let test_given = test.is_some();
    let split = match test {
        Some(test) => Split { train, test },
        None => carve(train, options.test_fraction, options.seed),
    };
    let dataset = CanonicalDataset { class_names, split };
    let (train_counts, test_counts) = dataset.per_class();
    for (split, counts) in [("train", &train_counts), ("test", &test_counts)] {
        if let Some((class, &count)) = counts.iter().enumerate().find(|(_, &n)| n < MIN_PER_CLASS) {
            return Err(ImportError::TooFewImages {
                class: dataset.class_names[class].clone(),
                split,
                count,
            });
        }
    }
    Ok(Imported {
        dataset,
        format,
        test_given,
        skipped,
    })
}

/// `data` resized (bilinear) and converted to the asked channels.
fn reshaped(data: Dataset, options: &ImportOptions) -> Dataset {
    let from = data.shape;
    let (h, w) = options.resize.unwrap_or((from.height, from.width));
    let c = options.channels.unwrap_or(from.channels);
    if (h, w, c) == (from.height, from.width, from.channels) {
        return data;
    }
    let to = InputShape::new(c, h, w);
    let mut pixels = Vec::with_capacity(data.len() * c * h * w);
    for i in 0..data.len() {
        let image = data.image(i);
        let plane = from.height * from.width;
        let rgb: Vec<u8> = (0..plane)
            .flat_map(|p| (0..3).map(move |ch| image[ch.min(from.channels - 1) * plane + p]))
            .collect();
        let buffer = image::RgbImage::from_raw(from.width as u32, from.height as u32, rgb)
            .map(image::DynamicImage::ImageRgb8);
        let Some(mut img) = buffer else { continue };
        if (h, w) != (from.height, from.width) {
            img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
        }
        if c == 1 {
            pixels.extend_from_slice(img.to_luma8().as_raw());
        } else {
            let raw = img.to_rgb8().into_raw();
            for ch in 0..3 {
                pixels.extend(raw.iter().skip(ch).step_by(3));
            }
        }
    }
    Dataset {
        shape: to,
        pixels,
        ..data
    }
}

/// A stratified, seeded test split: in each class, `fraction` of its images
/// (at least [`MIN_PER_CLASS`] where the class has twice that) are held out.
fn carve(data: Dataset, fraction: f64, seed: u64) -> Split {
    let mut rng = search::seeded_rng(seed);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); data.classes];
    for (i, &l) in data.labels.iter().enumerate() {
        by_class[usize::from(l)].push(i);
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut members in by_class {
        members.shuffle(&mut rng);
        let n = members.len();
        let mut held = ((n as f64) * fraction).round() as usize;
        if n >= 2 * MIN_PER_CLASS {
            held = held.max(MIN_PER_CLASS);
        }
        let held = held.min(n);
        test.extend_from_slice(&members[..held]);
        train.extend_from_slice(&members[held..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    Split {
        train: data.subset(&train),
        test: data.subset(&test),
    }
}
