//! IDX loading on the shared datasets, and clear errors on damaged files.

use std::io::Write;
use std::path::{Path, PathBuf};

use worker::data::{load_idx_dir, read_idx_images, read_idx_labels, DataError};

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nas-idx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn loads_fashion_mnist_and_mnist() {
    let split = load_idx_dir(&shared("fashion-mnist")).expect("fashion-mnist loads");
    assert_eq!((split.train.len(), split.test.len()), (60_000, 10_000));
    assert_eq!(split.train.shape, search::InputShape::new(1, 28, 28));
    assert_eq!(split.train.classes, 10);
    for class in 0..10u8 {
        assert_eq!(
            split.train.labels.iter().filter(|&&l| l == class).count(),
            6_000
        );
    }
    let stats = split.train.channel_stats();
    // Fashion-MNIST's well-known statistics: mean 0.286, std 0.353.
    assert!((stats.mean[0] - 0.286).abs() < 0.002, "{stats:?}");
    assert!((stats.std[0] - 0.353).abs() < 0.002, "{stats:?}");

    let mnist = load_idx_dir(&shared("mnist")).expect("mnist loads");
    assert_eq!((mnist.train.len(), mnist.test.len()), (8_004, 1_996));
}

/// A small valid IDX image file: 3 images of 2x2.
fn images_idx() -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend(0..12u8);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("compress");
    enc.finish().expect("compress")
}

fn corrupt_case(name: &str, bytes: &[u8]) -> (PathBuf, DataError) {
    let file = temp_dir("corrupt").join(name);
    std::fs::write(&file, bytes).expect("write");
    let err = read_idx_images(&file).expect_err("rejected");
    (file, err)
}

#[test]
fn raw_and_gzip_files_read_the_same() {
    let dir = temp_dir("ok");
    std::fs::write(dir.join("raw"), images_idx()).expect("write");
    std::fs::write(dir.join("packed.gz"), gzip(&images_idx())).expect("write");
    let raw = read_idx_images(&dir.join("raw")).expect("raw");
    let packed = read_idx_images(&dir.join("packed.gz")).expect("gz");
    assert_eq!(raw, packed);
    assert_eq!(raw.1.len(), 12);
}

#[test]
fn damaged_files_name_the_file_and_offset() {
    let expect = |name: &str, bytes: Vec<u8>, offset: u64, words: &str| {
        let (file, err) = corrupt_case(name, &bytes);
        match &err {
            DataError::Corrupt {
                file: f,
                offset: o,
                reason,
            } => {
                assert_eq!(f, &file);
                assert_eq!(*o, offset, "{err}");
                assert!(reason.contains(words), "{err}");
            }
            other => panic!("{name}: {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(name) && text.contains(&format!("byte {offset}")),
            "{text}"
        );
    };
    let full = images_idx();
    expect("short", full[..2].to_vec(), 2, "magic");
    expect(
        "magic",
        [vec![1, 2], full[2..].to_vec()].concat(),
        0,
        "not an IDX file",
    );
    let mut float = full.clone();
    float[2] = 0x0d;
    expect("float", float, 2, "unsigned byte");
    let mut labels_as_images = full.clone();
    labels_as_images[3] = 1;
    expect("dims", labels_as_images, 3, "dimensions");
    expect("header", full[..10].to_vec(), 10, "header");
    expect("truncated", full[..20].to_vec(), 20, "truncated");
    expect(
        "trailing",
        [full.clone(), vec![9, 9]].concat(),
        28,
        "after the data",
    );
    let packed = gzip(&full);
    expect("cut.gz", packed[..packed.len() - 6].to_vec(), 28, "gzip");
}

#[test]
fn missing_and_mismatched_folders_are_errors() {
    let dir = temp_dir("mismatch");
    assert!(matches!(load_idx_dir(&dir), Err(DataError::Missing { .. })));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images_idx()).expect("write");
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images_idx()).expect("write");
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 2, 1, 0],
    )
    .expect("write");
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 3, 1, 0, 1],
    )
    .expect("write");
    let err = load_idx_dir(&dir).expect_err("3 images, 2 labels");
    assert!(err.to_string().contains("3 images but"), "{err}");
    let labels = read_idx_labels(&dir.join("t10k-labels-idx1-ubyte")).expect("labels");
    assert_eq!(labels, vec![1, 0, 1]);
}
