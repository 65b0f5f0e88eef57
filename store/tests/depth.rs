//! Queue depth (what KEDA scales workers on) against the claim query, on
//! both backends, with trials in every state: the autoscaler and the queue
//! must agree on what "waiting" means.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{spec, worker};
use store::depth::Depth;
use store::{Completion, QueueConfig, Store, WorkerInfo};

/// A retry's backoff long enough to check that a retry not yet due is not
/// counted, and short enough to wait out.
fn fast() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_millis(1500),
        backoff_base: Duration::from_millis(800),
        backoff_max: Duration::from_secs(2),
    }
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// `(waiting, demand)` for workers offering `labels`.
async fn depths(store: &Store, labels: &[String]) -> (i64, i64) {
    let waiting = store
        .queue_depth(labels, Depth::Waiting)
        .await
        .expect("waiting");
    let demand = store
        .queue_depth(labels, Depth::Demand)
        .await
        .expect("demand");
    (waiting, demand)
}

/// Claims until the queue is empty for `w`; the trials claimed.
async fn drain(store: &Store, w: &WorkerInfo) -> BTreeSet<i64> {
    let mut claimed = BTreeSet::new();
    while let Some(t) = store.claim(w).await.expect("claim") {
        assert!(claimed.insert(t.id), "trial {} claimed twice", t.id);
    }
    claimed
}

async fn depth_counts_what_a_claim_can_take(store: Store) {
    let cpu = labels(&["cpu"]);
    let w = worker("w", &["cpu"]);
    let plain = store
        .create_search(&spec(
            r#"{"name": "a", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 20, "parallelism": 5}}"#,
        ))
        .await
        .expect("create");
    store
        .create_search(&spec(
            r#"{"name": "g", "dataset": "mnist", "labels": ["gpu"],
                "budget": {"max_trials": 2, "parallelism": 2}}"#,
        ))
        .await
        .expect("create");
    let cancelled = store
        .create_search(&spec(
            r#"{"name": "c", "dataset": "mnist", "budget": {"max_trials": 3, "parallelism": 3}}"#,
        ))
        .await
        .expect("create");
    store.cancel_search(cancelled).await.expect("cancel");
    assert_eq!(depths(&store, &cpu).await, (5, 5));

    // One trial of each kind in the plain search: succeeded (topped up),
    // failed with a retry not yet due, running with an expired lease,
    // running with a live one.
    let succeeded = store.claim(&w).await.expect("claim").expect("trial");
    assert_eq!(succeeded.search_id, plain);
    store
        .complete(
            succeeded.id,
            succeeded.attempt,
            Completion::Succeeded {
                result: search::TrialResult::synthetic(0.5, 1.0, 0.5),
                weights: None,
            },
        )
        .await
        .expect("complete");
    let expiring = store.claim(&w).await.expect("claim").expect("trial");
    tokio::time::sleep(store.config().lease + Duration::from_millis(100)).await;
    let retried = store.claim(&w).await.expect("claim").expect("trial");
    store
        .fail(retried.id, retried.attempt, "flaky", true)
        .await
        .expect("fail");
    let live = store.claim(&w).await.expect("claim").expect("trial");

    // Waiting for a cpu worker: 2 pending and due, and the expired lease (a
    // worker must run to rescue it). Not the retry (not due), the live
    // trial, the finished one, the gpu search's or the cancelled search's.
    // The autoscaler's demand adds the live trial: its worker stays.
    assert_eq!(depths(&store, &cpu).await, (3, 4));
    // A worker offering gpu too also sees the gpu search's two.
    assert_eq!(
        store
            .queue_depth(&labels(&["gpu", "cpu"]), Depth::Waiting)
            .await
            .expect("depth"),
        5
    );

    // The queue agrees: the rescue takes the expired trial, claims take
    // the two due ones, and then both say nothing is waiting.
    assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
    let first = drain(&store, &w).await;
    assert_eq!(first.len(), 2);
    assert!(!first.contains(&retried.id) && !first.contains(&expiring.id));
    assert_eq!(depths(&store, &cpu).await, (0, 3));

    // Once the backoffs are over, the retry and the rescued trial are due:
    // counted, then claimed, and nothing else (the running trials'
    // workers heartbeat meanwhile).
    tokio::time::sleep(store.config().backoff(1) + Duration::from_millis(200)).await;
    for id in first.iter().copied().chain([live.id]) {
        let attempt = if id == live.id { live.attempt } else { 1 };
        assert_eq!(
            store.heartbeat(id, attempt, None).await.expect("heartbeat"),
            store::Heartbeat::Continue
        );
    }
    assert_eq!(depths(&store, &cpu).await, (2, 5));
    let second = drain(&store, &w).await;
    assert_eq!(second, BTreeSet::from([retried.id, expiring.id]));
    assert_eq!(depths(&store, &cpu).await, (0, 5));
}

async fn bad_labels_are_refused(store: Store) {
    let err = store
        .queue_depth(&labels(&["cpu'; DROP TABLE trials; --"]), Depth::Demand)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("label"), "{err}");
}

common::on_both_backends!(depth_counts_what_a_claim_can_take, bad_labels_are_refused);
