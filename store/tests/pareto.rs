//! Multi-objective search in the queue, on SQLite and PostgreSQL:
//! multi-objective ASHA's rung decisions (the top 1/eta by non-dominated
//! sorting and crowding go on, in the completing transaction), a crashed
//! attempt neither losing nor doubling a rung result, racing workers
//! recording each rung once, final models spread along the validated front,
//! the fronts and hypervolumes of the views, and the leaderboard by rank.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fast, spec, worker};
use search::pareto::{goes_on_by_dominance, Costs};
use search::{RankKey, TrialResult};
use store::{Completion, SearchStatus, Store, StoreError, TrialPhase, TrialState};

/// Accuracy and latency of trial `index` at `rung`: scattered, so fronts
/// have several members and dominated points, and rising with the rung.
fn figures(index: i64, rung: usize) -> (f64, f64) {
    let accuracy = 0.5 + ((index * 7 + 3) % 10) as f64 / 25.0 + rung as f64 * 0.01;
    let latency = 0.1 + ((index * 3 + 1) % 7) as f64 / 10.0;
    (accuracy, latency)
}

fn done(index: i64, rung: usize, epochs: u32) -> Completion {
    let (accuracy, latency) = figures(index, rung);
    let mut result = TrialResult::synthetic(accuracy, latency, accuracy);
    result.epochs = Some(epochs);
    Completion::Succeeded {
        result,
        weights: None,
    }
}

const PARETO_ASHA: &str = r#"{"name": "moasha", "dataset": "mnist", "strategy": {"kind": "random"},
    "objective": {"kind": "pareto", "metrics": ["accuracy", "latency"], "latency": {"max_ms": 2}},
    "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 9, "eta": 3},
    "budget": {"max_trials": 9, "parallelism": 1}}"#;

async fn mo_asha_promotes_by_dominance_and_a_crash_doubles_nothing(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(PARETO_ASHA))
        .await
        .expect("create");
    let rungs = [1u32, 3, 9];
    // Each rung's points so far, recorded by the test.
    let mut at_rung: HashMap<usize, Vec<Costs>> = HashMap::new();
    let mut crashed = false;
    while let Some(t) = store.claim(&w).await.expect("claim") {
        let rung = rungs
            .iter()
            .position(|&r| r == t.target_epochs)
            .expect("a rung end");
        let t = if !crashed && rung == 1 {
            // The first promoted trial's worker dies mid-rung: its lease
            // expires, the rescuer queues it again, a new attempt claims it,
            // and the dead attempt's late report is refused.
            crashed = true;
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
            let again = loop {
                if let Some(again) = store.claim(&w).await.expect("claim") {
                    break again;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(again.id, t.id);
            let late = store
                .complete(t.id, t.attempt, done(t.index, rung, 3))
                .await;
            assert!(
                matches!(late, Err(StoreError::LeaseLost { .. })),
                "{late:?}"
            );
            again
        } else {
            t
        };
        let (accuracy, latency) = figures(t.index, rung);
        let points = at_rung.entry(rung).or_default();
        points.push(Costs::new(&[-accuracy, latency]));
        let last = rung + 1 == rungs.len();
        let goes = !last && goes_on_by_dominance(points, points.len() - 1, 3).0;
        store
            .complete(t.id, t.attempt, done(t.index, rung, t.target_epochs))
            .await
            .expect("complete");
        let row = store.trial(t.id).await.expect("trial");
        let want = match (goes, last) {
            (true, _) => TrialState::Pending,
            (false, true) => TrialState::Succeeded,
            (false, false) => TrialState::Stopped,
        };
        assert_eq!(row.state, want, "trial {} at rung {rung}", t.index);
        if want == TrialState::Stopped {
            let reason = row.result.and_then(|r| r.reason).unwrap_or_default();
            assert!(reason.contains("by non-dominated sorting"), "{reason}");
        }
    }
    assert!(crashed, "a trial was promoted");
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
    // One rung result per trial and rung reached, with its figures.
    let results = store.rung_results(id).await.expect("rungs");
    let recorded: usize = at_rung.values().map(Vec::len).sum();
    assert_eq!(results.len(), recorded, "no rung result lost or doubled");
    let mut seen = std::collections::HashSet::new();
    for r in &results {
        assert!(seen.insert((r.trial_id, r.rung)), "{r:?} twice");
        assert!(r.accuracy.is_some() && r.latency_ms.is_some(), "{r:?}");
    }
    assert!(
        results.iter().any(|r| r.rung == 2),
        "some trial reached the top"
    );
}

/// Racing workers on one Pareto search: every rung result is recorded once
/// and every trial ends once.
async fn racing_workers_record_each_rung_once(store: Store) {
    let store = Arc::new(store);
    let id = store
        .create_search(&spec(
            r#"{"name": "race", "dataset": "mnist", "strategy": {"kind": "random"},
                "objective": {"kind": "pareto", "metrics": ["accuracy", "latency", "params"],
                              "reference": {"latency_ms": 2, "params": 10000000}},
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 9, "eta": 3},
                "budget": {"max_trials": 30, "parallelism": 6}}"#,
        ))
        .await
        .expect("create");
    let units: Arc<Mutex<HashMap<(i64, u32), usize>>> = Arc::default();
    let mut handles = Vec::new();
    for n in 0..4 {
        let (store, units) = (store.clone(), units.clone());
        handles.push(tokio::spawn(async move {
            let w = worker(&format!("w{n}"), &[]);
            while let Some(t) = store.claim(&w).await.expect("claim") {
                *units
                    .lock()
                    .expect("lock")
                    .entry((t.id, t.target_epochs))
                    .or_default() += 1;
                let rung = [1u32, 3, 9]
                    .iter()
                    .position(|&r| r == t.target_epochs)
                    .unwrap_or(0);
                store
                    .complete(t.id, t.attempt, done(t.index, rung, t.target_epochs))
                    .await
                    .expect("complete");
            }
        }));
    }
    for h in handles {
        h.await.expect("worker task");
    }
    let units = units.lock().expect("lock").clone();
    assert!(units.values().all(|&n| n == 1), "a unit of work ran twice");
    let results = store.rung_results(id).await.expect("rungs");
    assert_eq!(results.len(), units.len(), "one rung result per unit");
    let trials = store.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 30);
    assert!(trials
        .iter()
        .all(|t| matches!(t.state, TrialState::Succeeded | TrialState::Stopped)));
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
}

/// Final models spread along the validated front; the tested front and the
/// hypervolumes follow; the leaderboard sorts by non-dominated rank.
async fn final_models_spread_along_the_front(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "front", "dataset": "mnist", "strategy": {"kind": "random"},
                "objective": {"kind": "pareto", "metrics": ["accuracy", "latency"],
                              "reference": {"accuracy": 0.5, "latency_ms": 2}},
                "budget": {"max_trials": 6, "parallelism": 1}, "final": {"top_k": 3, "epochs": 2}}"#,
        ))
        .await
        .expect("create");
    // Three accurate slow networks, two fast ones, one dominated.
    let plane = [
        (0.930, 1.80),
        (0.929, 1.70),
        (0.928, 1.75),
        (0.910, 0.20),
        (0.880, 0.10),
        (0.700, 1.90),
    ];
    let mut finals = Vec::new();
    while let Some(t) = store.claim(&w).await.expect("claim") {
        match t.phase {
            TrialPhase::Search => {
                let (accuracy, latency) = plane[t.index as usize];
                let result = TrialResult::synthetic(accuracy, latency, accuracy);
                store
                    .complete(
                        t.id,
                        t.attempt,
                        Completion::Succeeded {
                            result,
                            weights: None,
                        },
                    )
                    .await
                    .expect("complete");
            }
            TrialPhase::Final => {
                let source = store
                    .trial(t.id)
                    .await
                    .expect("trial")
                    .source_index
                    .expect("a source");
                let (accuracy, latency) = plane[source as usize];
                let mut result = TrialResult::synthetic(accuracy - 0.01, latency, 0.0);
                result.val_accuracy = None;
                result.test_accuracy = Some(accuracy - 0.01);
                finals.push(source);
                store
                    .complete(
                        t.id,
                        t.attempt,
                        Completion::Succeeded {
                            result,
                            weights: None,
                        },
                    )
                    .await
                    .expect("final");
            }
        }
    }
    finals.sort_unstable();
    // The two fast ones and one accurate one, not the three most accurate.
    assert_eq!(finals.len(), 3);
    assert!(finals.contains(&3) && finals.contains(&4), "{finals:?}");
    assert!(
        finals.iter().filter(|&&s| s <= 2).count() == 1,
        "{finals:?}"
    );
    // Final models are listed fastest first.
    let models = store.final_models(id).await.expect("finals");
    let latencies: Vec<f64> = models
        .iter()
        .filter_map(|m| m.result.as_ref().map(|r| r.latency_ms.p50))
        .collect();
    assert!(latencies.windows(2).all(|w| w[0] <= w[1]), "{latencies:?}");

    let fronts = store.fronts(id).await.expect("fronts");
    assert_eq!(fronts.tested.len(), 3);
    assert!(fronts.tested.iter().all(|t| t.on_front));
    let front: Vec<i64> = fronts
        .points
        .iter()
        .filter(|p| p.on_front)
        .map(|p| p.index)
        .collect();
    assert_eq!(front, [4, 3, 1, 0], "[2] is dominated by [1], [5] by all");
    assert!(fronts.points.iter().all(|p| (p.front == 0) == p.on_front));
    let h = fronts.hypervolume.expect("a reference point");
    assert_eq!(h.reference, vec![0.5, 2.0]);
    // By hand: the validated front's staircase in the box [0.5, 1] x [0, 2].
    let by_hand = {
        let mut steps: Vec<(f64, f64)> =
            vec![(0.10, 0.880), (0.20, 0.910), (1.70, 0.929), (1.80, 0.930)];
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut area = 0.0;
        let mut best = 0.5;
        for (latency, accuracy) in steps {
            area += (2.0 - latency) * (accuracy - best);
            best = accuracy;
        }
        area / (0.5 * 2.0)
    };
    assert!(
        (h.validated - by_hand).abs() < 1e-9,
        "{} vs {by_hand}",
        h.validated
    );
    let tested = h.tested.expect("tested");
    assert!(tested > 0.0 && tested < h.validated, "{tested}");
    assert_eq!(h.over_compute.len(), 6);
    assert!(h
        .over_compute
        .windows(2)
        .all(|w| w[0].hypervolume <= w[1].hypervolume && w[0].epochs < w[1].epochs));
    assert!((h.over_compute[5].hypervolume - h.validated).abs() < 1e-12);

    // The leaderboard by rank: the front first, most accurate first inside it.
    let board = store
        .leaderboard(id, RankKey::Rank, 4, None)
        .await
        .expect("board");
    assert_eq!(board.total, 6);
    let order: Vec<(i64, Option<i64>)> = board.entries.iter().map(|e| (e.index, e.front)).collect();
    assert_eq!(
        order,
        [(0, Some(0)), (1, Some(0)), (3, Some(0)), (4, Some(0))]
    );
    let rest = store
        .leaderboard(id, RankKey::Rank, 4, board.next_cursor.as_deref())
        .await
        .expect("page 2");
    let order: Vec<(i64, i64, Option<i64>)> = rest
        .entries
        .iter()
        .map(|e| (e.rank, e.index, e.front))
        .collect();
    assert_eq!(order, [(5, 2, Some(1)), (6, 5, Some(2))]);
    assert!(rest.next_cursor.is_none());
}

/// A trial rejected over the latency limit trained nothing: its epochs go
/// back to the compute budget, so rejections do not end a search early.
async fn a_rejected_trial_gives_its_epochs_back(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "limit", "dataset": "mnist", "strategy": {"kind": "random"},
                "objective": {"kind": "pareto", "metrics": ["accuracy", "latency"], "latency": {"max_ms": 1}},
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
                "budget": {"max_trials": 20, "parallelism": 1, "max_epochs_total": 2}}"#,
        ))
        .await
        .expect("create");
    let mut rejected = 0;
    let mut trained = 0;
    while let Some(t) = store.claim(&w).await.expect("claim") {
        if rejected < 5 {
            rejected += 1;
            let result = TrialResult::synthetic(0.0, 5.0, 0.0);
            store
                .complete(t.id, t.attempt, Completion::Rejected { result })
                .await
                .expect("reject");
            assert_eq!(store.search(id).await.expect("search").epochs_committed, 1);
        } else {
            trained += 1;
            store
                .complete(t.id, t.attempt, done(t.index, 0, 1))
                .await
                .expect("complete");
        }
    }
    assert_eq!(
        (rejected, trained),
        (5, 2),
        "the budget bought two trained trials"
    );
    let search = store.search(id).await.expect("search");
    assert_eq!(
        (search.status, search.epochs_committed),
        (SearchStatus::Finished, 2)
    );
}

/// Runs a Pareto search of the six trials of `plane` (accuracy, latency,
/// images per second) with `final` settings to its end; returns the
/// search trials its final models retrain, sorted.
async fn finals_of(store: &Store, plane: &[(f64, f64, f64)], finals: &str) -> Vec<i64> {
    let w = worker("w", &[]);
    store
        .create_search(&spec(&format!(
            r#"{{"name": "budget", "dataset": "mnist", "strategy": {{"kind": "random"}},
                "objective": {{"kind": "pareto", "metrics": ["accuracy", "latency"],
                              "reference": {{"accuracy": 0.5, "latency_ms": 2}}}},
                "budget": {{"max_trials": {}, "parallelism": 1}}, "final": {finals}}}"#,
            plane.len()
        )))
        .await
        .expect("create");
    let mut sources = Vec::new();
    while let Some(t) = store.claim(&w).await.expect("claim") {
        let result = match t.phase {
            TrialPhase::Search => {
                let (accuracy, latency, per_second) = plane[t.index as usize];
                let mut result = TrialResult::synthetic(accuracy, latency, accuracy);
                result.images_per_second = Some(per_second);
                result
            }
            TrialPhase::Final => {
                let trial = store.trial(t.id).await.expect("trial");
                sources.push(trial.source_index.expect("a source"));
                let mut result = TrialResult::synthetic(0.9, 1.0, 0.0);
                result.val_accuracy = None;
                result.test_accuracy = Some(0.9);
                result
            }
        };
        store
            .complete(
                t.id,
                t.attempt,
                Completion::Succeeded {
                    result,
                    weights: None,
                },
            )
            .await
            .expect("complete");
    }
    sources.sort_unstable();
    sources
}

/// `final.max_seconds`: the final models are those of the spread along the
/// front whose training, estimated from their search throughput, fits; a
/// slow pick is passed over for a faster one; if none fits, the fastest
/// trains alone.
async fn final_models_fit_their_time_budget(store: Store) {
    // MNIST: 60,000 training images, 2 epochs: 120,000 images a model.
    // The accurate ones at 1,000 images/s (120 s), the fast ones at 6,000
    // and 12,000 (20 s and 10 s).
    let plane = [
        (0.930, 1.80, 1_000.0),
        (0.929, 1.70, 1_000.0),
        (0.928, 1.75, 1_000.0),
        (0.910, 0.20, 6_000.0),
        (0.880, 0.10, 12_000.0),
        (0.700, 1.90, 1_000.0),
    ];
    let unbounded = finals_of(&store, &plane, r#"{"top_k": 3, "epochs": 2}"#).await;
    assert_eq!(unbounded.len(), 3);
    assert!(unbounded.iter().any(|&s| s <= 2), "{unbounded:?}");
    let within = finals_of(
        &store,
        &plane,
        r#"{"top_k": 3, "epochs": 2, "max_seconds": 100}"#,
    )
    .await;
    assert_eq!(within, vec![3, 4], "no 120 s model fits beside 30 s");
    let roomy = finals_of(
        &store,
        &plane,
        r#"{"top_k": 3, "epochs": 2, "max_seconds": 200}"#,
    )
    .await;
    assert_eq!(roomy.len(), 3, "{roomy:?}");
    let tight = finals_of(
        &store,
        &plane,
        r#"{"top_k": 3, "epochs": 2, "max_seconds": 5}"#,
    )
    .await;
    assert_eq!(tight, vec![4], "none fits: the fastest alone");
}

common::on_both_backends!(
    a_rejected_trial_gives_its_epochs_back,
    mo_asha_promotes_by_dominance_and_a_crash_doubles_nothing,
    racing_workers_record_each_rung_once,
    final_models_spread_along_the_front,
    final_models_fit_their_time_budget,
);
