//! Uploads of a user's own data turned into canonical datasets: every
//! accepted format (image folders as zip, tar and tar.gz, with or without a
//! test split; `.npz`; CSV; IDX files in an archive), the same content in
//! two encodings giving one content hash, and every kind of bad input
//! refused with an error naming the entry, row or field.

use std::io::Write;
use std::path::PathBuf;

use worker::data::import::{
    import, CanonicalDataset, ImportError, ImportLimits, ImportOptions, UploadFormat,
};

/// A temporary file with `bytes`, removed at the end of the test process.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nas-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A `side`×`side` image, gray or RGB, whose pixels encode `seed`.
fn image_pixels(seed: u8, side: u32, rgb: bool) -> image::DynamicImage {
    if rgb {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(side, side, |x, y| {
            image::Rgb([seed, (x * 7) as u8, (y * 13) as u8])
        }))
    } else {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(side, side, |x, y| {
            image::Luma([seed.wrapping_add((x + 3 * y) as u8)])
        }))
    }
}

fn png(seed: u8, side: u32, rgb: bool) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image_pixels(seed, side, rgb)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        out.start_file(*name, options).expect("entry");
        out.write_all(bytes).expect("write");
    }
    out.finish().expect("zip").into_inner()
}

fn tar_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .expect("entry");
    }
    builder.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    out.write_all(bytes).expect("gzip");
    out.finish().expect("gzip")
}

/// `per_class` gray 8x8 images of classes `cat` and `dog`, under `prefix`.
fn folder_entries(prefix: &str, per_class: u8) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    for (c, class) in ["cat", "dog"].iter().enumerate() {
        for i in 0..per_class {
            entries.push((
                format!("{prefix}{class}/{i}.png"),
                png(c as u8 * 100 + i, 8, false),
            ));
        }
    }
    entries
}

fn refs(entries: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect()
}

fn options() -> ImportOptions {
    ImportOptions::default()
}

#[test]
fn an_image_folder_as_zip_tar_and_tar_gz_reads_the_same() {
    let mut entries = folder_entries("pets/", 10);
    entries.push(("pets/README.txt".into(), b"my pets".to_vec()));
    let entries = refs(&entries);
    let mut hashes = Vec::new();
    for (name, bytes) in [
        ("pets.zip", zip_of(&entries)),
        ("pets.tar", tar_of(&entries)),
        ("pets.tgz", gzip(&tar_of(&entries))),
    ] {
        let imported = import(&file(name, &bytes), &options()).expect(name);
        assert_eq!(imported.format, UploadFormat::ImageFolder);
        assert_eq!(imported.dataset.class_names, ["cat", "dog"], "{name}");
        assert_eq!(
            imported.skipped, 1,
            "{name}: the README is skipped and counted"
        );
        assert!(!imported.test_given);
        let (train, test) = imported.dataset.per_class();
        assert_eq!(
            train,
            [8, 8],
            "{name}: 15% of each class held out, at least 2"
        );
        assert_eq!(test, [2, 2]);
        assert_eq!(imported.dataset.shape(), search::InputShape::new(1, 8, 8));
        hashes.push(CanonicalDataset::content_hash(&imported.dataset.to_bytes()));
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

#[test]
fn a_train_and_test_layout_keeps_its_split_and_resize_and_channels_apply() {
    let mut entries = folder_entries("train/", 3);
    entries.extend(folder_entries("test/", 2));
    // An RGB image of another size: fine with resize and channels.
    entries.push(("train/dog/big.jpg".into(), {
        let mut out = std::io::Cursor::new(Vec::new());
        image_pixels(9, 20, true)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .expect("jpeg");
        out.into_inner()
    }));
    let upload = file("split.zip", &zip_of(&refs(&entries)));
    let opts = ImportOptions {
        resize: Some((6, 5)),
        channels: Some(3),
        ..options()
    };
    let imported = import(&upload, &opts).expect("imports");
    assert!(imported.test_given);
    assert_eq!(imported.dataset.per_class(), (vec![3, 4], vec![2, 2]));
    assert_eq!(imported.dataset.shape(), search::InputShape::new(3, 6, 5));
    assert_eq!(
        imported.dataset.split.train.pixels.len(),
        7 * 3 * 6 * 5,
        "every image resized and in three channels"
    );
    // Without resize the odd one out is named, with both sizes.
    let err = import(&upload, &options()).expect_err("mixed sizes");
    let message = err.to_string();
    assert!(
        message.contains("train/dog/big.jpg is 20x20") && message.contains("8x8"),
        "{message}"
    );
}

/// A `.npy` array of `u8` with `shape`.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn an_npz_in_kerass_layout_reads_and_matches_the_same_images_as_a_folder() {
    // The images of `folder_entries("", 10)`, as arrays (N x H x W, uint8).
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..2u8 {
        for i in 0..10u8 {
            x.extend_from_slice(image_pixels(c * 100 + i, 8, false).to_luma8().as_raw());
            y.extend_from_slice(&i64::from(c).to_le_bytes());
        }
    }
    let npz = zip_of(&[
        ("x_train.npy", npy("|u1", &[20, 8, 8], &x)),
        ("y_train.npy", npy("<i8", &[20], &y)),
    ]);
    let imported = import(&file("pets.npz", &npz), &options()).expect("npz");
    assert_eq!(imported.format, UploadFormat::Npz);
    assert_eq!(imported.dataset.class_names, ["0", "1"]);
    // The same images, labels and split as a folder of classes 0 and 1:
    // one canonical form, one hash.
    let folder: Vec<(String, Vec<u8>)> = folder_entries("", 10)
        .into_iter()
        .map(|(n, b)| (n.replace("cat/", "0/").replace("dog/", "1/"), b))
        .collect();
    let from_folder =
        import(&file("same.zip", &zip_of(&refs(&folder))), &options()).expect("folder");
    assert_eq!(
        CanonicalDataset::content_hash(&imported.dataset.to_bytes()),
        CanonicalDataset::content_hash(&from_folder.dataset.to_bytes()),
        "the hash is of the decoded content, not the encoding"
    );
    // With a test split, channels last.
    let rgb: Vec<u8> = (0..(6 * 4 * 4 * 3)).map(|v| v as u8).collect();
    let with_test = zip_of(&[
        ("x_train.npy", npy("|u1", &[6, 4, 4, 3], &rgb)),
        ("y_train.npy", npy("|u1", &[6], &[0, 1, 2, 0, 1, 2])),
        ("x_test.npy", npy("|u1", &[6, 4, 4, 3], &rgb)),
        ("y_test.npy", npy("|u1", &[6], &[2, 1, 0, 2, 1, 0])),
    ]);
    let imported = import(&file("rgb.npz", &with_test), &options()).expect("npz");
    assert!(imported.test_given);
    assert_eq!(imported.dataset.shape(), search::InputShape::new(3, 4, 4));
    // Channel-major: the first image's red plane is bytes 0, 3, 6, ...
    assert_eq!(imported.dataset.split.train.pixels[..3], [0, 3, 6]);
}

#[test]
fn a_csv_in_kaggles_layout_reads_with_its_label_column() {
    // Twelve 2x2 images; the label column is named and need not be first.
    let csv = |extra_column: bool| {
        let mut text = String::from(if extra_column { "id," } else { "" });
        text.push_str("pixel0,pixel1,pixel2,pixel3,digit\n");
        for i in 0..12 {
            if extra_column {
                text.push_str(&format!("{i},"));
            }
            text.push_str(&format!("{},{},0,255,{}\n", i * 10, 255 - i, i % 3));
        }
        text
    };
    let digit = ImportOptions {
        label_column: "digit".into(),
        ..options()
    };
    // Any other column is a pixel column: five of them are not a square.
    let err = import(&file("digits-id.csv", csv(true).as_bytes()), &digit).expect_err("5 pixels");
    assert!(err.to_string().contains("not a square"), "{err}");
    let imported = import(&file("digits.csv", csv(false).as_bytes()), &digit).expect("csv");
    assert_eq!(imported.format, UploadFormat::Csv);
    assert_eq!(imported.dataset.class_names, ["0", "1", "2"]);
    assert_eq!(imported.dataset.shape(), search::InputShape::new(1, 2, 2));
    let (train, test) = imported.dataset.per_class();
    assert_eq!(
        (train.iter().sum::<usize>(), test.iter().sum::<usize>()),
        (6, 6),
        "at least two of each class held out"
    );
}

#[test]
fn the_four_idx_files_in_an_archive_read_with_their_test_split() {
    let idx = |dims: &[u32], data: &[u8]| {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    };
    let images: Vec<u8> = (0..6 * 3 * 3).map(|v| v as u8).collect();
    let labels = [0u8, 1, 0, 1, 0, 1];
    let archive = tar_of(&[
        ("mine/train-images-idx3-ubyte", idx(&[6, 3, 3], &images)),
        ("mine/train-labels-idx1-ubyte", idx(&[6], &labels)),
        (
            "mine/t10k-images-idx3-ubyte.gz",
            gzip(&idx(&[4, 3, 3], &images[..36])),
        ),
        (
            "mine/t10k-labels-idx1-ubyte.gz",
            gzip(&idx(&[4], &labels[..4])),
        ),
    ]);
    let imported = import(&file("idx.tar", &archive), &options()).expect("idx");
    assert_eq!(imported.format, UploadFormat::Idx);
    assert!(imported.test_given);
    assert_eq!(imported.dataset.per_class(), (vec![3, 3], vec![2, 2]));
    // Truncated: the file and the offset are named.
    let broken = tar_of(&[
        ("train-images-idx3-ubyte", idx(&[6, 3, 3], &images[..20])),
        ("train-labels-idx1-ubyte", idx(&[6], &labels)),
    ]);
    let err = import(&file("broken-idx.tar", &broken), &options()).expect_err("truncated");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte")
            && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn canonical_bytes_round_trip_and_refuse_damage() {
    let upload = file("rt.zip", &zip_of(&refs(&folder_entries("", 4))));
    let dataset = import(&upload, &options()).expect("imports").dataset;
    let bytes = dataset.to_bytes();
    assert_eq!(
        CanonicalDataset::from_bytes(&bytes).expect("reads"),
        dataset
    );
    let err = CanonicalDataset::from_bytes(&bytes[..bytes.len() - 1]).expect_err("cut");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(CanonicalDataset::from_bytes(b"garbage").is_err());
}

fn refused(name: &str, bytes: &[u8], opts: &ImportOptions) -> String {
    import(&file(name, bytes), opts)
        .expect_err(name)
        .to_string()
}

#[test]
fn bad_uploads_are_refused_naming_what_is_wrong() {
    let good = folder_entries("", 4);
    // A corrupt PNG and a truncated JPEG: named.
    let mut corrupt = refs(&good);
    corrupt.push(("cat/broken.png", b"\x89PNG\r\n\x1a\nnot really".to_vec()));
    let message = refused("corrupt.zip", &zip_of(&corrupt), &options());
    assert!(message.contains("cat/broken.png"), "{message}");
    let mut truncated = refs(&good);
    let jpeg = {
        let mut out = std::io::Cursor::new(Vec::new());
        image_pixels(1, 8, true)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .expect("jpeg");
        out.into_inner()
    };
    truncated.push(("dog/cut.jpg", jpeg[..jpeg.len() / 2].to_vec()));
    let message = refused("truncated.zip", &zip_of(&truncated), &options());
    assert!(message.contains("dog/cut.jpg"), "{message}");
    // Entries that climb out or start at the root: refused, never written.
    for evil in ["../evil.png", "/etc/evil.png"] {
        let mut entries = refs(&good);
        entries.push((evil, png(1, 8, false)));
        let message = refused("evil.zip", &zip_of(&entries), &options());
        assert!(message.contains(evil), "{message}");
    }
    // A compression bomb stops at the unpacked-bytes bound, and says so.
    let bomb = zip_of(&[("cat/zeros.png", vec![0u8; 8 << 20])]);
    assert!(
        bomb.len() < 100_000,
        "it compresses to {} bytes",
        bomb.len()
    );
    let small = ImportOptions {
        limits: ImportLimits {
            max_unpacked_bytes: 1 << 20,
            ..ImportLimits::default()
        },
        ..options()
    };
    let message = refused("bomb.zip", &bomb, &small);
    assert!(
        message.contains("unpacked bytes") && message.contains("1048576"),
        "{message}"
    );
    // Too many entries, classes or images: the bound is named.
    let few = |limits: ImportLimits| ImportOptions {
        limits,
        ..options()
    };
    let message = refused(
        "many.zip",
        &zip_of(&refs(&good)),
        &few(ImportLimits {
            max_entries: 3,
            ..ImportLimits::default()
        }),
    );
    assert!(message.contains("archive entries"), "{message}");
    let message = refused(
        "classes.zip",
        &zip_of(&refs(&good)),
        &few(ImportLimits {
            max_classes: 1,
            ..ImportLimits::default()
        }),
    );
    assert!(message.contains("classes"), "{message}");
    let message = refused(
        "images.zip",
        &zip_of(&refs(&good)),
        &few(ImportLimits {
            max_images: 5,
            ..ImportLimits::default()
        }),
    );
    assert!(message.contains("images"), "{message}");
    // A class with one image: too few for a train and a test split.
    let mut lonely = refs(&good);
    lonely.push(("owl/1.png", png(7, 8, false)));
    let message = refused("lonely.zip", &zip_of(&lonely), &options());
    assert!(message.contains("class `owl`"), "{message}");
    // CSV: a non-numeric pixel and a short row, with row and column.
    let message = refused(
        "bad.csv",
        b"label,p0,p1,p2,p3\n1,0,0,0,0\n2,0,x,0,0\n",
        &options(),
    );
    assert!(message.contains("row 3, column `p1`"), "{message}");
    let message = refused("short.csv", b"label,p0,p1,p2,p3\n1,0,0,0\n", &options());
    assert!(
        message.contains("row 2") && message.contains("4 columns"),
        "{message}"
    );
    let message = refused("nolabel.csv", b"digit,p0,p1,p2,p3\n1,0,0,0,0\n", &options());
    assert!(message.contains("label_column"), "{message}");
    // npz: float images, or no y_train.
    let message = refused(
        "float.npz",
        &zip_of(&[
            ("x_train.npy", npy("<f4", &[1, 2, 2], &[0; 16])),
            ("y_train.npy", npy("|u1", &[1], &[0])),
        ]),
        &options(),
    );
    assert!(
        message.contains("x_train.npy") && message.contains("uint8"),
        "{message}"
    );
    let message = refused(
        "half.npz",
        &zip_of(&[("x_train.npy", npy("|u1", &[1, 2, 2], &[0; 4]))]),
        &options(),
    );
    assert!(message.contains("y_train"), "{message}");
    // Empty: an empty file, and an archive with nothing in it.
    assert!(matches!(
        import(&file("empty.bin", b""), &options()),
        Err(ImportError::Empty)
    ));
    assert!(matches!(
        import(&file("empty.zip", &zip_of(&[])), &options()),
        Err(ImportError::Empty)
    ));
    // Options out of range name the option.
    for (opts, field) in [
        (
            ImportOptions {
                channels: Some(2),
                ..options()
            },
            "channels",
        ),
        (
            ImportOptions {
                test_fraction: 0.0,
                ..options()
            },
            "test_fraction",
        ),
    ] {
        let message = refused("ok.zip", &zip_of(&refs(&good)), &opts);
        assert!(message.starts_with(field), "{message}");
    }
}
