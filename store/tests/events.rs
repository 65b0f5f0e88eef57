//! Events reach other processes' stores on PostgreSQL (LISTEN/NOTIFY), and
//! this process's subscribers on both backends.

mod common;

use std::time::Duration;

use store::{Event, Store};

async fn next_queued(rx: &mut tokio::sync::broadcast::Receiver<Event>, search: i64) {
    let wait = async {
        loop {
            if let Ok(Event::TrialsQueued { search_id, .. }) = rx.recv().await {
                if search_id == search {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the event arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_store_on_the_same_postgres_database_hears_the_events() {
    let url = store::testing::fresh_postgres_url()
        .await
        .expect("postgres");
    let a = Store::connect(&url, common::fast()).await.expect("a");
    let b = Store::connect(&url, common::fast()).await.expect("b");
    let mut heard_by_b = b.subscribe();
    // Give b's listener a moment to LISTEN.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = a
        .create_search(&common::spec(r#"{"name": "n", "dataset": "mnist"}"#))
        .await
        .expect("create");
    next_queued(&mut heard_by_b, id).await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_subscribers_hear_events_on_sqlite() {
    let store = common::sqlite(common::fast()).await;
    let mut rx = store.subscribe();
    let id = store
        .create_search(&common::spec(r#"{"name": "n", "dataset": "mnist"}"#))
        .await
        .expect("create");
    next_queued(&mut rx, id).await;
}
