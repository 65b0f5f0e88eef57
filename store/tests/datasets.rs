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

fn summary_of_shape(input: [usize; 3]) -> DatasetSummary {
    DatasetSummary { input, ..summary() }
}

fn recorded(spec: &std::sync::Arc<search::SearchSpec>) -> search::SearchSpec {
    (**spec).clone()
}

async fn searches_resolve_uploads_and_record_their_content(store: Store, _pool: AnyPool) {
    let first = store
        .put_dataset("pets", &summary_of_shape([1, 28, 28]), b"first pets")
        .await
        .expect("stored")
        .dataset
        .id;
    let by_name = store
        .create_search(&spec(
            r#"{"name": "by name", "dataset": "pets", "baselines": ["lenet5"], "budget": {"max_trials": 2}}"#,
        ))
        .await
        .expect("a search on an upload, by name");
    let stored = recorded(&store.search(by_name).await.expect("search").spec);
    assert_eq!(stored.dataset, "pets", "the name as given");
    assert_eq!(stored.dataset_id.as_deref(), Some(first.as_str()));
    // Baselines and proposals are built for the upload's two classes.
    for t in store.trials(by_name).await.expect("trials") {
        let json = store.architecture(t.id).await.expect("architecture");
        let arch = search::Architecture::from_json(&json).expect("arch");
        assert_eq!(arch.input, search::InputShape::new(1, 28, 28));
        assert_eq!(arch.classes, 2);
    }
    // The name moves to new content: the search keeps what it recorded.
    let second = store
        .put_dataset("pets", &summary_of_shape([3, 32, 32]), b"second pets")
        .await
        .expect("stored")
        .dataset
        .id;
    assert_ne!(first, second);
    let stored = recorded(&store.search(by_name).await.expect("search").spec);
    assert_eq!(stored.dataset_id.as_deref(), Some(first.as_str()));
    // By id, and pinned by a copied spec's dataset_id.
    let by_id = store
        .create_search(&spec(&format!(
            r#"{{"name": "by id", "dataset": "{first}", "budget": {{"max_trials": 1}}}}"#
        )))
        .await
        .expect("by id");
    let stored = recorded(&store.search(by_id).await.expect("search").spec);
    assert_eq!(stored.dataset_id.as_deref(), Some(first.as_str()));
    let pinned = store
        .create_search(&spec(&format!(
            r#"{{"name": "copied", "dataset": "pets", "dataset_id": "{first}", "budget": {{"max_trials": 1}}}}"#
        )))
        .await
        .expect("pinned");
    let stored = recorded(&store.search(pinned).await.expect("search").spec);
    assert_eq!(stored.dataset_id.as_deref(), Some(first.as_str()));
    // Unknown names list the known ones; unknown content is named.
    let err = store
        .create_search(&spec(r#"{"name": "x", "dataset": "petz"}"#))
        .await
        .expect_err("unknown");
    let StoreError::Spec(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.field, "dataset");
    for known in ["`petz`", "fashion-mnist", "pets"] {
        assert!(e.message.contains(known), "{e}");
    }
    let missing = "0".repeat(64);
    let err = store
        .create_search(&spec(&format!(
            r#"{{"name": "x", "dataset": "pets", "dataset_id": "{missing}"}}"#
        )))
        .await
        .expect_err("unknown content");
    assert!(
        matches!(&err, StoreError::Spec(e) if e.field == "dataset_id" && e.message.contains(&missing)),
        "{err}"
    );
    // The spec is checked against the dataset: the space's largest
    // networks on 2048x2048 images are over the limits.
    store
        .put_dataset("posters", &summary_of_shape([3, 2048, 2048]), b"posters")
        .await
        .expect("stored");
    let err = store
        .create_search(&spec(
            r#"{"name": "x", "dataset": "posters", "space": "micro"}"#,
        ))
        .await
        .expect_err("does not fit");
    assert!(
        matches!(&err, StoreError::Spec(e) if e.field == "space" && e.message.contains("posters")),
        "{err}"
    );
    assert!(store.searches().await.expect("searches").len() == 3);
}

async fn removal_waits_for_running_searches_and_frees_unused_content(store: Store, _pool: AnyPool) {
    let stored = store
        .put_dataset("digits", &summary_of_shape([1, 28, 28]), b"digit content")
        .await
        .expect("stored");
    let id = stored.dataset.id;
    // A running search uses it: removal is refused.
    let search = store
        .create_search(&spec(
            r#"{"name": "uses it", "dataset": "digits", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let err = store.remove_dataset("digits").await.expect_err("in use");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("running search"), "{err}");
    store.cancel_search(search).await.expect("cancel");
    // Now the name goes; the content stays while a search records it (a
    // final model may still be requested).
    store.remove_dataset("digits").await.expect("removed");
    assert!(matches!(
        store.dataset("digits").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.dataset_content(&id).await.expect("kept"),
        b"digit content"
    );
    // Content nothing records goes with its last name.
    let unused = store
        .put_dataset("scratch", &summary(), b"scratch content")
        .await
        .expect("stored")
        .dataset
        .id;
    store.remove_dataset("scratch").await.expect("removed");
    assert!(matches!(
        store.dataset_content(&unused).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.blob_chunk(&unused, 0).await,
        Err(StoreError::NotFound(_))
    ));
}

common::with_pool_on_both_backends!(
    content_is_stored_once_in_chunks_and_names_move,
    searches_resolve_uploads_and_record_their_content,
    removal_waits_for_running_searches_and_frees_unused_content,
);
