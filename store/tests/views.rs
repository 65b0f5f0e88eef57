//! The read views on both backends: leaderboards paged by cursor in every
//! sort order (checked against the in-memory ranking of the search crate),
//! the Pareto front, the search list, workers and the queue totals.

mod common;

use common::{fast, spec, worker};
use search::objective::{rank, RankKey, RankRow};
use store::{Completion, SearchStatus, Store, StoreError};

/// A search of `n` trials, all succeeded with figures that tie often.
async fn finished_search(store: &Store, n: u32) -> (i64, Vec<RankRow>) {
    let id = store
        .create_search(&spec(&format!(
            r#"{{"name": "lb", "dataset": "mnist", "strategy": {{"kind": "random"}}, "budget": {{"max_trials": {n}, "parallelism": {n}}}}}"#
        )))
        .await
        .expect("create");
    let w = worker("w", &[]);
    store.register_worker(&w).await.expect("register");
    let mut reference = Vec::new();
    while let Some(t) = store.claim(&w).await.expect("claim") {
        let k = t.index;
        // Coarse values: many equal accuracies, latencies and rewards.
        let accuracy = 0.5 + ((k * 7) % 5) as f64 * 0.1;
        let latency_ms = 1.0 + ((k * 3) % 4) as f64 * 0.5;
        let reward = if k % 3 == 0 {
            accuracy
        } else {
            accuracy - 0.01
        };
        let arch = search::Architecture::from_json(&t.architecture).expect("architecture");
        let report = search::validate(&arch).expect("valid");
        reference.push(RankRow {
            id: t.id,
            reward: Some(reward),
            accuracy: Some(accuracy),
            latency_ms: Some(latency_ms),
            params: report.params,
            macs: report.macs,
        });
        let done = Completion::Succeeded {
            result: search::TrialResult::synthetic(accuracy, latency_ms, reward),
            weights: None,
        };
        store
            .complete(t.id, t.attempt, done)
            .await
            .expect("complete");
    }
    assert_eq!(reference.len(), n as usize);
    (id, reference)
}

async fn leaderboards_page_through_every_sort_like_the_reference(store: Store) {
    let (id, reference) = finished_search(&store, 23).await;
    for key in [
        RankKey::Reward,
        RankKey::Accuracy,
        RankKey::Latency,
        RankKey::Params,
        RankKey::Macs,
    ] {
        let mut expected = reference.clone();
        rank(&mut expected, key);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .leaderboard(id, key, 5, cursor.as_deref())
                .await
                .expect("page");
            assert_eq!(page.total, 23);
            assert!(page.entries.len() <= 5);
            seen.extend(page.entries.iter().map(|e| (e.rank, e.trial_id)));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let want: Vec<(i64, i64)> = expected
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64 + 1, r.id))
            .collect();
        assert_eq!(seen, want, "sorted by {key:?}");
    }
    let first = store
        .leaderboard(id, RankKey::Latency, 5, None)
        .await
        .expect("page");
    let cursor = first.next_cursor.expect("more pages");
    assert!(matches!(
        store
            .leaderboard(id, RankKey::Reward, 5, Some(&cursor))
            .await,
        Err(StoreError::BadCursor(_))
    ));
    assert!(matches!(
        store
            .leaderboard(id, RankKey::Reward, 5, Some("garbage"))
            .await,
        Err(StoreError::BadCursor(_))
    ));
    assert!(matches!(
        store.leaderboard(id + 1, RankKey::Reward, 5, None).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn the_pareto_front_is_exactly_the_non_dominated_trials(store: Store) {
    let (id, reference) = finished_search(&store, 17).await;
    let points = store.pareto(id).await.expect("pareto");
    assert_eq!(points.len(), 17);
    let dominated = |acc: f64, lat: f64| {
        reference.iter().any(|r| {
            let (a, l) = (r.accuracy.unwrap_or(0.0), r.latency_ms.unwrap_or(0.0));
            a >= acc && l <= lat && (a > acc || l < lat)
        })
    };
    for p in &points {
        assert_eq!(p.on_front, !dominated(p.accuracy, p.latency_ms), "{p:?}");
    }
    assert!(points.iter().any(|p| p.on_front));
    assert!(points
        .windows(2)
        .all(|w| w[0].latency_ms <= w[1].latency_ms));
}

async fn searches_page_by_status_and_workers_and_totals_show(store: Store) {
    let mut ids = Vec::new();
    for k in 0..5 {
        let id = store
            .create_search(&spec(&format!(
                r#"{{"name": "s{k}", "dataset": "mnist", "budget": {{"max_trials": 1, "parallelism": 1}}}}"#
            )))
            .await
            .expect("create");
        ids.push(id);
    }
    store.cancel_search(ids[1]).await.expect("cancel");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.searches_page(None, cursor, 2).await.expect("page");
        seen.extend(page.searches.iter().map(|s| s.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let cancelled = store
        .searches_page(Some(SearchStatus::Cancelled), None, 10)
        .await
        .expect("filtered");
    assert_eq!(
        cancelled.searches.iter().map(|s| s.id).collect::<Vec<_>>(),
        [ids[3]]
    );

    let profile = store::DeviceProfile {
        cpu: "Test CPU".into(),
        logical_cpus: 2,
        isa: vec!["avx2".into(), "fma".into()],
        memory_mib: Some(24_000),
        latency_threads: 1,
        speed_factor: Some(1.25),
        runtimes: vec!["nas".into(), "onnxruntime".into()],
        references: vec![store::LatencyReference {
            runtime: "nas".into(),
            threads: 1,
            network: "mobilenet_v1@0.25".into(),
            p50_ms: 0.9,
            drift: 1.02,
            established_at: 1,
        }],
    };
    let w = store::WorkerInfo {
        profile: Some(profile.clone()),
        ..worker("busy", &["cpu"])
    };
    store.register_worker(&w).await.expect("register");
    let t = store.claim(&w).await.expect("claim").expect("a trial");
    let workers = store.workers().await.expect("workers");
    assert_eq!(workers.len(), 1);
    assert_eq!(
        workers[0].profile.as_ref(),
        Some(&profile),
        "the device profile is kept"
    );
    assert_eq!(
        (
            workers[0].current_trial,
            workers[0].alive,
            workers[0].labels.clone()
        ),
        (Some(t.id), true, vec!["cpu".to_owned()])
    );
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(stats.trials.get("running"), Some(&1));
    assert_eq!(stats.trials.get("cancelled"), Some(&1));
    assert_eq!(stats.queue_depth, 3);
    assert_eq!(stats.searches.get("running"), Some(&4));
    assert_eq!(stats.workers_alive, 1);
    // A worker silent for longer than a lease is shown, but not alive.
    tokio::time::sleep(fast().lease * 2).await;
    let workers = store.workers().await.expect("workers");
    assert!(!workers[0].alive);
    assert_eq!(store.queue_stats().await.expect("stats").workers_alive, 0);
}

async fn a_served_page_is_never_staler_than_the_last_finished_trial(store: Store) {
    let id = store
        .create_search(&spec(
            r#"{"name": "live", "dataset": "mnist", "strategy": {"kind": "random"}, "budget": {"max_trials": 3, "parallelism": 3}}"#,
        ))
        .await
        .expect("create");
    let w = worker("w", &[]);
    store.register_worker(&w).await.expect("register");
    let mut seen = Vec::new();
    for (k, reward) in [0.5, 0.9, 0.7].into_iter().enumerate() {
        let t = store.claim(&w).await.expect("claim").expect("trial");
        let done = Completion::Succeeded {
            result: search::TrialResult::synthetic(reward, 1.0, reward),
            weights: None,
        };
        store
            .complete(t.id, t.attempt, done)
            .await
            .expect("complete");
        // Asked twice at once, right after the change: both see it.
        let (a, b) = tokio::join!(
            store.leaderboard(id, RankKey::Reward, 10, None),
            store.leaderboard(id, RankKey::Reward, 10, None)
        );
        let (a, b) = (a.expect("page"), b.expect("page"));
        assert_eq!(a, b);
        assert_eq!((a.total, a.entries.len()), (k as i64 + 1, k + 1));
        seen.push(a.entries[0].reward);
    }
    assert_eq!(seen, [0.5, 0.9, 0.9]);
}

async fn baselines_train_first_outside_the_budget_and_are_marked(store: Store) {
    let bad = store
        .create_search(&spec(
            r#"{"name": "b", "dataset": "mnist", "baselines": ["lenet5", "resnet9000"]}"#,
        ))
        .await;
    assert!(
        matches!(&bad, Err(StoreError::Spec(e)) if e.field == "baselines[1]"),
        "{bad:?}"
    );
    let id = store
        .create_search(&spec(
            r#"{"name": "b", "dataset": "mnist", "baselines": ["lenet5"], "strategy": {"kind": "random"}, "budget": {"max_trials": 2, "parallelism": 2},
                "objective": {"kind": "pareto", "metrics": ["accuracy", "latency"], "reference": {"latency_ms": 10}},
                "final": {"top_k": 1, "epochs": 1}}"#,
        ))
        .await
        .expect("create");
    let w = worker("w", &[]);
    store.register_worker(&w).await.expect("register");
    let mut order = Vec::new();
    let mut finals = 0;
    while let Some(t) = store.claim(&w).await.expect("claim") {
        let mut result = search::TrialResult::synthetic(0.5, 1.0 + t.index as f64, 0.5);
        if t.phase == store::TrialPhase::Final {
            finals += 1;
            result.val_accuracy = None;
            result.test_accuracy = Some(0.9);
            result.latency_ms = search::LatencyMs::of(1.0 + finals as f64, 1.1 + finals as f64);
        } else {
            order.push(t.index);
        }
        let done = Completion::Succeeded {
            result,
            weights: None,
        };
        store
            .complete(t.id, t.attempt, done)
            .await
            .expect("complete");
    }
    assert_eq!(
        order,
        [-1, 0, 1],
        "the baseline first, then the budget's two trials"
    );
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
    let board = store
        .leaderboard(id, RankKey::Latency, 10, None)
        .await
        .expect("board");
    let marks: Vec<Option<&str>> = board
        .entries
        .iter()
        .map(|e| e.baseline.as_deref())
        .collect();
    assert_eq!(marks, [Some("lenet5"), None, None]);
    assert_eq!(board.entries[0].params, Some(61_706));
    let pareto = store.pareto(id).await.expect("pareto");
    assert_eq!(pareto.iter().filter(|p| p.baseline.is_some()).count(), 1);
    // The baseline is trained and tested with the final recipe beside the
    // final model: a reference point of the tested front, not on it.
    assert_eq!(finals, 2);
    let models = store.final_models(id).await.expect("finals");
    let sources: Vec<(Option<i64>, Option<&str>)> = models
        .iter()
        .map(|m| (m.source_index, m.lineage.baseline.as_deref()))
        .collect();
    assert_eq!(sources.len(), 2);
    assert!(sources.contains(&(Some(-1), Some("lenet5"))), "{sources:?}");
    let fronts = store.fronts(id).await.expect("fronts");
    let tested: Vec<(Option<&str>, bool)> = fronts
        .tested
        .iter()
        .map(|t| (t.baseline.as_deref(), t.on_front))
        .collect();
    assert_eq!(tested.len(), 2);
    assert!(tested.contains(&(Some("lenet5"), false)), "{tested:?}");
    assert!(tested.contains(&(None, true)), "{tested:?}");
}

async fn a_search_no_live_worker_may_run_says_what_it_waits_for(store: Store) {
    let id = store
        .create_search(&spec(
            r#"{"name": "ort", "dataset": "mnist", "strategy": {"kind": "random"}, "budget": {"max_trials": 2, "parallelism": 2},
                "objective": {"latency": {"target_ms": 1.0, "runtime": "onnxruntime"}}}"#,
        ))
        .await
        .expect("create");
    assert_eq!(
        store.waiting_for(id).await.expect("waiting"),
        Some(vec!["onnxruntime".to_owned()]),
        "no worker at all"
    );
    // A live worker without onnxruntime cannot claim it, and it still waits.
    let plain = worker("plain", &["cpu"]);
    store.register_worker(&plain).await.expect("register");
    assert_eq!(store.claim(&plain).await.expect("claim"), None);
    assert_eq!(
        store.waiting_for(id).await.expect("waiting"),
        Some(vec!["onnxruntime".to_owned()])
    );
    // One with it may: nothing to report, and it claims.
    let ort = worker("ort", &["cpu", "onnxruntime"]);
    store.register_worker(&ort).await.expect("register");
    assert_eq!(store.waiting_for(id).await.expect("waiting"), None);
    let t = store.claim(&ort).await.expect("claim").expect("a trial");
    assert_eq!(t.search_id, id);
    // Profiles can be replaced (a re-established latency reference).
    let profile = store::DeviceProfile {
        cpu: "Test CPU".into(),
        speed_factor: Some(0.9),
        ..Default::default()
    };
    store
        .update_device_profile("ort", &profile)
        .await
        .expect("update");
    let workers = store.workers().await.expect("workers");
    let ort_row = workers.iter().find(|w| w.id == "ort").expect("ort");
    assert_eq!(ort_row.profile.as_ref(), Some(&profile));
}

common::on_both_backends!(
    a_search_no_live_worker_may_run_says_what_it_waits_for,
    baselines_train_first_outside_the_budget_and_are_marked,
    a_served_page_is_never_staler_than_the_last_finished_trial,
    leaderboards_page_through_every_sort_like_the_reference,
    the_pareto_front_is_exactly_the_non_dominated_trials,
    searches_page_by_status_and_workers_and_totals_show,
);
