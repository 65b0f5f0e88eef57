//! One conformance suite, run against SQLite and PostgreSQL: claim order,
//! labels, leases and fencing, rescue and backoff, max attempts, release,
//! cancel, top-up up to the budget, search completion.

mod common;

use std::time::Duration;

use common::{fast, spec, worker};
use store::{Completion, Heartbeat, SearchStatus, Store, StoreError, TrialState};

fn done(reward: f64) -> Completion {
    Completion::Succeeded {
        result: search::TrialResult::synthetic(reward, 1.0, reward),
        weights: None,
    }
}

async fn claim_order_and_top_up_to_the_budget(store: Store) {
    let w = worker("w1", &[]);
    store.register_worker(&w).await.expect("register");
    let id = store
        .create_search(&spec(r#"{"name": "s", "dataset": "mnist", "budget": {"max_trials": 5, "parallelism": 2}, "strategy": {"kind": "random"}}"#))
        .await
        .expect("create");
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 2, "parallelism 2 queues two trials");
    let mut seen = Vec::new();
    while let Some(t) = store.claim(&w).await.expect("claim") {
        assert_eq!(t.attempt, 1);
        seen.push(t.index);
        store
            .complete(t.id, t.attempt, done(0.5 + t.index as f64 / 100.0))
            .await
            .expect("complete");
    }
    assert_eq!(
        seen,
        [0, 1, 2, 3, 4],
        "oldest first, topped up after each completion"
    );
    let search = store.search(id).await.expect("search");
    assert_eq!(search.status, SearchStatus::Finished);
    assert_eq!(search.proposed, 5);
    assert!(store
        .trials(id)
        .await
        .expect("trials")
        .iter()
        .all(|t| t.state == TrialState::Succeeded));
}

async fn labels_restrict_who_claims(store: Store) {
    let plain = worker("plain", &["cpu"]);
    let gpu = worker("gpu", &["cpu", "gpu"]);
    store
        .create_search(&spec(
            r#"{"name": "g", "dataset": "mnist", "labels": ["gpu"], "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    assert!(
        store.claim(&plain).await.expect("claim").is_none(),
        "a worker without the label gets nothing"
    );
    assert!(store.claim(&gpu).await.expect("claim").is_some());
}

async fn a_lost_lease_is_fenced_rescued_and_retried(store: Store) {
    let (a, b) = (worker("a", &[]), worker("b", &[]));
    let id = store
        .create_search(&spec(
            r#"{"name": "l", "dataset": "mnist", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let first = store.claim(&a).await.expect("claim").expect("a trial");
    assert_eq!(
        store
            .heartbeat(
                first.id,
                1,
                Some(&search::TrialProgress {
                    epoch: 1,
                    epochs: 2,
                    train_loss: 0.5,
                    val_accuracy: None,
                }),
            )
            .await
            .expect("hb"),
        Heartbeat::Continue
    );
    tokio::time::sleep(store.config().lease + Duration::from_millis(50)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
    let t = store.trial(first.id).await.expect("trial");
    assert_eq!((t.state, t.attempt), (TrialState::Pending, 1));
    assert!(
        t.errors
            .iter()
            .any(|e| e.error.contains("lease expired: worker a")),
        "{:?}",
        t.errors
    );
    // Backoff: not claimable at once, then claimable as attempt 2.
    assert!(
        store.claim(&b).await.expect("claim").is_none(),
        "backoff holds the retry"
    );
    tokio::time::sleep(store.config().backoff(1) + Duration::from_millis(50)).await;
    let second = store.claim(&b).await.expect("claim").expect("retry");
    assert_eq!((second.id, second.attempt), (first.id, 2));
    // The presumed-dead worker comes back: fenced everywhere.
    assert_eq!(
        store.heartbeat(first.id, 1, None).await.expect("hb"),
        Heartbeat::LeaseLost
    );
    assert!(matches!(
        store.complete(first.id, 1, done(0.9)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        store.fail(first.id, 1, "late", true).await,
        Err(StoreError::LeaseLost { .. })
    ));
    store
        .complete(second.id, 2, done(0.7))
        .await
        .expect("the live attempt completes");
    assert!(
        matches!(
            store.complete(second.id, 2, done(0.1)).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "one final result"
    );
    let t = store.trial(first.id).await.expect("trial");
    assert_eq!((t.state, t.reward), (TrialState::Succeeded, Some(0.7)));
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
}

async fn attempts_run_out_and_every_error_is_kept(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "f", "dataset": "mnist", "max_attempts": 2, "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store
        .fail(t.id, 1, "out of memory", true)
        .await
        .expect("fail 1");
    tokio::time::sleep(store.config().backoff(1) + Duration::from_millis(50)).await;
    let t = store.claim(&w).await.expect("claim").expect("retry");
    assert_eq!(t.attempt, 2);
    store
        .fail(t.id, 2, "out of memory again", true)
        .await
        .expect("fail 2");
    let row = store.trial(t.id).await.expect("trial");
    assert_eq!(row.state, TrialState::Failed);
    assert_eq!(row.errors.len(), 2, "{:?}", row.errors);
    assert_eq!(
        row.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
    // A permanent error fails at once.
    let id = store
        .create_search(&spec(
            r#"{"name": "p", "dataset": "mnist", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store
        .fail(t.id, 1, "invalid architecture", false)
        .await
        .expect("fail");
    assert_eq!(
        store.trial(t.id).await.expect("trial").state,
        TrialState::Failed
    );
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
}

async fn release_hands_back_without_using_an_attempt(store: Store) {
    let w = worker("w", &[]);
    store
        .create_search(&spec(
            r#"{"name": "r", "dataset": "mnist", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store.release(t.id, t.attempt).await.expect("release");
    let again = store.claim(&w).await.expect("claim").expect("at once");
    assert_eq!((again.id, again.attempt), (t.id, 1));
}

async fn cancel_stops_pending_at_once_and_running_at_heartbeat(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "c", "dataset": "mnist", "budget": {"max_trials": 10, "parallelism": 3}}"#,
        ))
        .await
        .expect("create");
    let running = store.claim(&w).await.expect("claim").expect("trial");
    store.cancel_search(id).await.expect("cancel");
    let counts = store.trial_counts(id).await.expect("counts");
    assert_eq!(counts.get("cancelled"), Some(&2));
    assert_eq!(counts.get("running"), Some(&1));
    assert!(store.claim(&w).await.expect("claim").is_none());
    assert_eq!(
        store.heartbeat(running.id, 1, None).await.expect("hb"),
        Heartbeat::Cancel
    );
    store
        .complete(running.id, 1, Completion::Cancelled)
        .await
        .expect("stop");
    assert_eq!(
        store.trial(running.id).await.expect("trial").state,
        TrialState::Cancelled
    );
    let search = store.search(id).await.expect("search");
    assert_eq!(
        (search.status, search.proposed),
        (SearchStatus::Cancelled, 3),
        "no top-up after a cancel"
    );
    assert!(matches!(
        store.cancel_search(id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.cancel_search(id + 1000).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn metrics_and_weights_are_kept_per_attempt(store: Store) {
    let w = worker("w", &[]);
    store
        .create_search(&spec(
            r#"{"name": "m", "dataset": "mnist", "budget": {"max_trials": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    let m = store::EpochMetrics {
        epoch: 1,
        train_loss: 0.5,
        train_accuracy: 0.8,
        val_accuracy: Some(0.75),
        seconds: 1.5,
    };
    store.record_epoch(t.id, 1, &m).await.expect("metrics");
    assert!(
        matches!(
            store.record_epoch(t.id, 2, &m).await,
            Err(StoreError::LeaseLost { .. })
        ),
        "fenced"
    );
    let weights = vec![1u8, 2, 3, 255];
    store
        .complete(
            t.id,
            1,
            Completion::Succeeded {
                result: search::TrialResult::synthetic(0.75, 1.0, 0.75),
                weights: Some(weights.clone()),
            },
        )
        .await
        .expect("complete");
    assert_eq!(
        store.epoch_metrics(t.id, 1).await.expect("metrics"),
        vec![m]
    );
    assert_eq!(store.weights(t.id).await.expect("weights"), Some(weights));
}

async fn evolution_records_lineage(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "e", "dataset": "mnist", "strategy": {"kind": "evolution", "population": 3, "sample": 2}, "budget": {"max_trials": 8, "parallelism": 1}}"#,
        ))
        .await
        .expect("create");
    while let Some(t) = store.claim(&w).await.expect("claim") {
        store
            .complete(t.id, t.attempt, done(t.index as f64))
            .await
            .expect("complete");
    }
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 8);
    assert!(
        trials[..3].iter().all(|t| t.lineage.parent_index.is_none()),
        "the population starts random"
    );
    assert!(
        trials[3..]
            .iter()
            .all(|t| t.lineage.parent_index.is_some_and(|p| p < t.index)),
        "then children of earlier trials"
    );
}

async fn bad_specs_are_refused_and_nothing_is_stored(store: Store) {
    let err = store
        .create_search(&spec(r#"{"name": "x", "dataset": "imagenet"}"#))
        .await
        .expect_err("bad");
    assert!(
        err.to_string()
            .contains("dataset: unknown dataset `imagenet`"),
        "{err}"
    );
    assert!(store.searches().await.expect("list").is_empty());
}

common::on_both_backends!(
    claim_order_and_top_up_to_the_budget,
    labels_restrict_who_claims,
    a_lost_lease_is_fenced_rescued_and_retried,
    attempts_run_out_and_every_error_is_kept,
    release_hands_back_without_using_an_attempt,
    cancel_stops_pending_at_once_and_running_at_heartbeat,
    metrics_and_weights_are_kept_per_attempt,
    evolution_records_lineage,
    bad_specs_are_refused_and_nothing_is_stored,
);
