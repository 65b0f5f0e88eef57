//! Uploaded datasets on a worker: fetched from the store once into the
//! data dir's cache, read from the cache after that, fetched again when
//! the cached file is damaged; content the store does not hold is a
//! permanent error.

use search::InputShape;
use store::{testing, QueueConfig, Store};
use worker::data::import::CanonicalDataset;
use worker::data::{Dataset, Split};
use worker::uploads::{cache_path, fetches, load_uploaded, UploadError};

fn toy() -> CanonicalDataset {
    let part = |n: usize| Dataset {
        shape: InputShape::new(1, 3, 3),
        classes: 2,
        pixels: (0..n * 9).map(|i| (i * 7 % 256) as u8).collect(),
        labels: (0..n).map(|i| (i % 2) as u8).collect(),
    };
    CanonicalDataset {
        class_names: vec!["no".into(), "yes".into()],
        split: Split {
            train: part(12),
            test: part(4),
        },
    }
}

#[tokio::test]
async fn fetched_once_read_from_cache_and_fetched_again_when_damaged() {
    let store = Store::connect(&testing::fresh_sqlite_url(), QueueConfig::default())
        .await
        .expect("store");
    let dataset = toy();
    let id = store
        .put_dataset("toy", &dataset.summary("npz", true, 0), &dataset.to_bytes())
        .await
        .expect("stored")
        .dataset
        .id;
    let dir = std::env::temp_dir().join(format!("nas-uploads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let before = fetches();
    let loaded = load_uploaded(&store, &id, &dir).await.expect("fetched");
    assert_eq!(loaded, dataset);
    assert_eq!(fetches() - before, 1);
    assert!(cache_path(&dir, &id).exists());
    // From the cache: no fetch.
    let again = load_uploaded(&store, &id, &dir).await.expect("cached");
    assert_eq!(again, dataset);
    assert_eq!(fetches() - before, 1, "read from the cache");
    // A damaged cache file is fetched again, and the data is right.
    let path = cache_path(&dir, &id);
    let mut bytes = std::fs::read(&path).expect("cached bytes");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("damage");
    let repaired = load_uploaded(&store, &id, &dir).await.expect("refetched");
    assert_eq!(repaired, dataset);
    assert_eq!(fetches() - before, 2, "fetched again");
    // Content the store does not hold: permanent, naming it.
    let missing = "a".repeat(64);
    let err = load_uploaded(&store, &missing, &dir)
        .await
        .expect_err("not stored");
    assert!(
        matches!(err, UploadError::Unavailable { .. }) && !err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains(&missing), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
