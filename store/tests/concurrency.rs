//! Many workers race for trials: each trial is claimed exactly once and
//! completed exactly once (a trivial evaluator stands in for training).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use store::{Completion, SearchStatus, Store, TrialState};

async fn race(store: Store, workers: usize, trials: u32) {
    let store = Arc::new(store);
    let id = store
        .create_search(&common::spec(&format!(
            r#"{{"name": "race", "dataset": "cifar10", "space": "full", "strategy": {{"kind": "random"}},
                "budget": {{"max_trials": {trials}, "parallelism": {trials}}}}}"#
        )))
        .await
        .expect("create");
    let claims: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let mut handles = Vec::new();
    for n in 0..workers {
        let (store, claims) = (store.clone(), claims.clone());
        handles.push(tokio::spawn(async move {
            let w = common::worker(&format!("w{n}"), &[]);
            store.register_worker(&w).await.expect("register");
            while let Some(t) = store.claim(&w).await.expect("claim") {
                *claims.lock().expect("lock").entry(t.id).or_default() += 1;
                let done = Completion::Succeeded {
                    result: search::TrialResult::synthetic(0.5, 1.0, t.index as f64),
                    weights: None,
                };
                store
                    .complete(t.id, t.attempt, done)
                    .await
                    .expect("complete");
            }
        }));
    }
    for h in handles {
        h.await.expect("worker task");
    }
    let claims = claims.lock().expect("lock").clone();
    assert_eq!(claims.len(), trials as usize, "every trial claimed");
    assert!(claims.values().all(|&c| c == 1), "no trial claimed twice");
    let rows = store.trials(id).await.expect("trials");
    assert_eq!(rows.len(), trials as usize);
    assert!(rows
        .iter()
        .all(|t| t.state == TrialState::Succeeded && t.attempt == 1));
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_race_for_a_thousand_trials_on_postgres() {
    race(common::postgres(common::fast()).await, 8, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_race_on_sqlite() {
    race(common::sqlite(common::fast()).await, 4, 200).await;
}

/// More completions at once than SQLite's pool has connections, each
/// settling its search (its last trial): every search finishes. A settle
/// that took a second connection while holding the write lock waited out
/// the busy timeout behind the writers holding the rest and failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_concurrent_completions_than_connections_all_settle_on_sqlite() {
    let store = Arc::new(common::sqlite(common::fast()).await);
    let searches = 20;
    let w = common::worker("w", &[]);
    let mut claimed = Vec::new();
    for n in 0..searches {
        let id = store
            .create_search(&common::spec(&format!(
                r#"{{"name": "s{n}", "dataset": "mnist", "strategy": {{"kind": "random"}},
                    "budget": {{"max_trials": 1, "parallelism": 1}}}}"#
            )))
            .await
            .expect("create");
        let t = store.claim(&w).await.expect("claim").expect("its trial");
        assert_eq!(t.search_id, id);
        claimed.push(t);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(claimed.len()));
    let handles: Vec<_> = claimed
        .into_iter()
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let done = Completion::Succeeded {
                    result: search::TrialResult::synthetic(0.5, 1.0, 0.5),
                    weights: None,
                };
                store.complete(t.id, t.attempt, done).await
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task").expect("complete");
    }
    for s in store.searches().await.expect("searches") {
        assert_eq!(s.status, SearchStatus::Finished, "search {} settled", s.id);
    }
}
