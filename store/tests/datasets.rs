//! Uploaded datasets in the store, on SQLite and PostgreSQL: content kept
//! once by its hash and in chunks, names that move without touching
//! content, reads checked against the hash, and removal refused while a
//! running search uses the dataset.

mod common;

use common::spec;
use search::DatasetSummary;
use sqlx::AnyPool;
use store::blobs::{content_id, CHUNK_BYTES};
use store::{Store, StoreError};

fn summary() -> DatasetSummary {
    DatasetSummary {
        input: [1, 2, 2],
        class_names: vec!["cat".into(), "dog".into()],
        train_per_class: vec![8, 8],
        test_per_class: vec![2, 2],
        format: "image_folder".into(),
        test_given: false,
        skipped: 0,
    }
}

async fn content_is_stored_once_in_chunks_and_names_move(store: Store, _pool: AnyPool) {
    // Bigger than two chunks, so it is split.
    let content: Vec<u8> = (0..2 * CHUNK_BYTES + 10).map(|i| (i % 251) as u8).collect();
    let first = store
        .put_dataset("pets", &summary(), &content)
        .await
        .expect("stored");
    assert!(first.new_content);
    assert_eq!(first.dataset.id, content_id(&content));
    assert_eq!(first.dataset.chunks, 3);
    assert_eq!(first.dataset.bytes, content.len() as i64);
    assert_eq!(first.dataset.summary, summary());
    // The same content again, under another name: stored once.
    let again = store
        .put_dataset("pets-copy", &summary(), &content)
        .await
        .expect("stored");
    assert!(!again.new_content, "the same content is stored once");
    assert_eq!(again.dataset.id, first.dataset.id);
    let names: Vec<String> = store
        .datasets()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["pets", "pets-copy"]);
    // Read back whole, checked against its id; by name or by id.
    assert_eq!(
        store
            .dataset_content(&first.dataset.id)
            .await
            .expect("read"),
        content
    );
    assert_eq!(
        store.dataset(&first.dataset.id).await.expect("by id").id,
        first.dataset.id
    );
    // New content under an old name moves the name; the old content stays
    // under its other name.
    let newer = store
        .put_dataset("pets", &summary(), b"other content")
        .await
        .expect("stored");
    assert_ne!(newer.dataset.id, first.dataset.id);
    assert_eq!(
        store.dataset("pets-copy").await.expect("kept").id,
        first.dataset.id
    );
    // Bad names are refused before anything is written.
    for bad in ["", "../x", "mnist", "has space", &"x".repeat(65)] {
        let err = store
            .put_dataset(bad, &summary(), b"x")
            .await
            .expect_err(bad);
        assert!(matches!(err, StoreError::Invalid(_)), "{bad}: {err}");
    }
    assert!(matches!(
        store.dataset("nope").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn removal_waits_for_running_searches_and_frees_unused_content(store: Store, pool: AnyPool) {
    let stored = store
        .put_dataset("digits", &summary(), b"digit content")
        .await
        .expect("stored");
    let id = stored.dataset.id;
    // A running search names it: removal is refused.
    let search = store
        .create_search(&spec(
            r#"{"name": "uses it", "dataset": "mnist", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    // (Searches on uploaded datasets are submitted by name once the spec
    // resolves them; here the stored spec is edited to name it.)
    let raw = store.search(search).await.expect("search").spec;
    let mut spec_json: serde_json::Value = serde_json::from_str(&raw).expect("json");
    spec_json["dataset"] = serde_json::Value::from("digits");
    sqlx::query("UPDATE searches SET spec = $1 WHERE id = $2")
        .bind(spec_json.to_string())
        .bind(search)
        .execute(&pool)
        .await
        .expect("spec");
    let err = store.remove_dataset("digits").await.expect_err("in use");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("running search"), "{err}");
    store.cancel_search(search).await.expect("cancel");
    // Now it goes; the content stays while the (ended) search names it by
    // name only, so nothing records its id: the content goes too.
    store.remove_dataset("digits").await.expect("removed");
    assert!(matches!(
        store.dataset("digits").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.dataset_content(&id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.blob_chunk(&id, 0).await,
        Err(StoreError::NotFound(_))
    ));
}

common::with_pool_on_both_backends!(
    content_is_stored_once_in_chunks_and_names_move,
    removal_waits_for_running_searches_and_frees_unused_content,
);
