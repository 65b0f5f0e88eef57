//! Multi-fidelity search in the queue, on SQLite and PostgreSQL: ASHA's
//! rung decisions (promotions first, the top 1/eta go on, the rest stop
//! early, none twice), checkpoints kept between rungs and pruned at the
//! end, retries counted per rung, a crash mid-rung resuming from the last
//! checkpoint, the compute budget, and final training (top-k distinct
//! architectures, never seen by the search).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{fast, spec, worker};
use search::TrialResult;
use store::{Completion, EpochMetrics, SearchStatus, Store, StoreError, TrialPhase, TrialState};

fn done(reward: f64, epochs: u32) -> Completion {
    let mut result = TrialResult::synthetic(reward, 1.0, reward);
    result.epochs = Some(epochs);
    Completion::Succeeded {
        result,
        weights: Some(vec![1, 2, 3]),
    }
}

/// A reward for trial `index` at `rung`: not monotone in the index, so
/// promotions are not simply "the latest".
fn reward_of(index: i64, rung: usize) -> f64 {
    ((index * 7 + 3) % 10) as f64 / 10.0 + rung as f64 * 0.01
}

async fn asha_promotes_the_top_of_each_rung_and_stops_the_rest(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "asha", "dataset": "mnist", "strategy": {"kind": "random"},
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 9, "eta": 3},
                "budget": {"max_trials": 7, "parallelism": 1}}"#,
        ))
        .await
        .expect("create");
    let rungs = [1u32, 3, 9];
    // The rule, written out independently: at each rung, the rewards so far.
    let mut at_rung: HashMap<usize, Vec<f64>> = HashMap::new();
    let mut expected: HashMap<i64, (TrialState, usize)> = HashMap::new();
    let mut claims = 0;
    while let Some(t) = store.claim(&w).await.expect("claim") {
        claims += 1;
        assert_eq!(t.phase, TrialPhase::Search);
        let rung = rungs
            .iter()
            .position(|&r| r == t.target_epochs)
            .expect("targets are rung ends");
        if rung > 0 {
            assert_eq!(
                t.epochs_done,
                rungs[rung - 1],
                "{t:?}: resumes from the last rung"
            );
            assert_eq!(
                store.checkpoint(t.id).await.expect("read"),
                Some(vec![rung as u8 - 1]),
                "the checkpoint of the rung before is kept"
            );
        }
        store
            .save_checkpoint(t.id, t.attempt, t.target_epochs, &[rung as u8])
            .await
            .expect("checkpoint");
        assert_eq!(
            store.trial(t.id).await.expect("trial").checkpoint_bytes,
            Some(1),
            "its size is reported"
        );
        let reward = reward_of(t.index, rung);
        let rewards = at_rung.entry(rung).or_default();
        rewards.push(reward);
        let better = rewards.iter().filter(|&&r| r > reward).count();
        let goes = rung + 1 < rungs.len() && better < rewards.len().div_ceil(3);
        let state = match (goes, rung + 1 == rungs.len()) {
            (true, _) => TrialState::Pending,
            (false, true) => TrialState::Succeeded,
            (false, false) => TrialState::Stopped,
        };
        expected.insert(t.index, (state, rung));
        store
            .complete(t.id, t.attempt, done(reward, t.target_epochs))
            .await
            .expect("complete");
        let row = store.trial(t.id).await.expect("trial");
        assert_eq!(row.state, state, "trial {} at rung {rung}", t.index);
        assert_eq!(row.rung, Some(rung as i64));
        if state == TrialState::Stopped {
            let reason = row.result.and_then(|r| r.reason).unwrap_or_default();
            assert!(reason.starts_with("stopped early after rung"), "{reason}");
            assert_eq!(store.checkpoint(t.id).await.expect("read"), None, "pruned");
            assert_eq!(
                store.trial(t.id).await.expect("trial").checkpoint_bytes,
                None
            );
        }
        if goes {
            // Promotions come before new proposals.
            let next = store
                .claim(&w)
                .await
                .expect("claim")
                .expect("the promotion");
            assert_eq!(next.id, t.id, "the promoted trial is claimed first");
            store.release(next.id, next.attempt).await.expect("release");
        }
    }
    assert!(claims > 7, "some trials trained more than one rung");
    let search = store.search(id).await.expect("search");
    assert_eq!(search.status, SearchStatus::Finished);
    for t in store.trials(id).await.expect("trials") {
        let (state, rung) = expected[&t.index];
        assert!(
            matches!(state, TrialState::Succeeded | TrialState::Stopped),
            "trial {} ended {state:?}",
            t.index
        );
        assert_eq!((t.state, t.rung), (state, Some(rung as i64)));
        assert_eq!(store.checkpoint(t.id).await.expect("read"), None);
    }
    // The leaderboard ranks every trial with a rung result.
    let board = store
        .leaderboard(id, search::RankKey::Reward, 100, None)
        .await
        .expect("board");
    assert_eq!(board.total, 7);
    assert!(board.entries.iter().any(|e| e.state == TrialState::Stopped));
    assert!(board.entries.iter().any(|e| e.rung == 2 && e.epochs == 9));
}

async fn retries_are_counted_per_rung_and_a_crash_resumes_from_the_checkpoint(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "retry", "dataset": "mnist", "max_attempts": 3,
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
                "budget": {"max_trials": 1, "parallelism": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store
        .complete(t.id, t.attempt, done(0.5, 1))
        .await
        .expect("rung 1");
    // Rung 2, attempt 2 overall but the first of this rung: it may retry.
    let t = store.claim(&w).await.expect("claim").expect("promoted");
    assert_eq!((t.attempt, t.target_epochs), (2, 3));
    store
        .fail(t.id, t.attempt, "worker hiccup", true)
        .await
        .expect("fail");
    assert_eq!(
        store.trial(t.id).await.expect("trial").state,
        TrialState::Pending,
        "a promoted trial has its own attempts: the second overall is the first of its rung"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let t = store.claim(&w).await.expect("claim").expect("retried");
    assert_eq!(t.attempt, 3);
    let epoch = |e: i64| EpochMetrics {
        epoch: e,
        train_loss: 1.0 / e as f64,
        train_accuracy: 0.5,
        val_accuracy: Some(0.5),
        seconds: 1.0,
    };
    store
        .record_epoch(t.id, t.attempt, &epoch(2))
        .await
        .expect("epoch 2");
    store
        .save_checkpoint(t.id, t.attempt, 2, b"epoch two")
        .await
        .expect("checkpoint");
    // The worker dies: its lease expires and the rescuer re-queues it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let t = store.claim(&w).await.expect("claim");
    let t = match t {
        Some(t) => t,
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            store
                .claim(&w)
                .await
                .expect("claim")
                .expect("after backoff")
        }
    };
    assert_eq!(
        (t.epochs_done, t.target_epochs),
        (2, 3),
        "resumes after epoch 2"
    );
    assert_eq!(
        store.checkpoint(t.id).await.expect("read").as_deref(),
        Some(&b"epoch two"[..])
    );
    store
        .record_epoch(t.id, t.attempt, &epoch(3))
        .await
        .expect("epoch 3");
    let curve: Vec<i64> = store
        .epoch_metrics(t.id, t.attempt)
        .await
        .expect("metrics")
        .iter()
        .map(|m| m.epoch)
        .collect();
    assert_eq!(curve, [2, 3], "one curve across attempts");
    // A stale attempt cannot write a checkpoint.
    let stale = store.save_checkpoint(t.id, t.attempt - 1, 3, b"x").await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost { .. })),
        "{stale:?}"
    );
    store
        .complete(t.id, t.attempt, done(0.6, 3))
        .await
        .expect("last rung");
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
    assert_eq!(store.checkpoint(t.id).await.expect("read"), None);
}

async fn the_compute_budget_bounds_the_epochs_trained(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "compute", "dataset": "mnist", "strategy": {"kind": "random"},
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 2},
                "budget": {"max_trials": 100, "parallelism": 2, "max_epochs_total": 6}}"#,
        ))
        .await
        .expect("create");
    let mut trained = 0;
    let mut units = 0;
    while let Some(t) = store.claim(&w).await.expect("claim") {
        units += 1;
        trained += t.target_epochs - t.epochs_done;
        store
            .save_checkpoint(t.id, t.attempt, t.target_epochs, b"c")
            .await
            .expect("checkpoint");
        store
            .complete(
                t.id,
                t.attempt,
                done(reward_of(t.index, 0), t.target_epochs),
            )
            .await
            .expect("complete");
        assert!(units < 50, "the search ends");
    }
    assert!(
        trained <= 6,
        "{trained} epochs trained over a 6-epoch budget"
    );
    assert!(trained >= 5, "the budget is used: {trained}");
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
}

async fn final_training_retrains_the_top_distinct_architectures(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "final", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 4, "parallelism": 2}, "final": {"top_k": 2, "epochs": 5}}"#,
        ))
        .await
        .expect("create");
    let mut finals = Vec::new();
    while let Some(t) = store.claim(&w).await.expect("claim") {
        match t.phase {
            TrialPhase::Search => {
                assert!(
                    store.final_models(id).await.expect("finals").is_empty(),
                    "no final model while the search runs"
                );
                store
                    .complete(t.id, t.attempt, done(0.1 * (t.index + 1) as f64, 1))
                    .await
                    .expect("complete");
            }
            TrialPhase::Final => {
                assert_eq!(t.target_epochs, 5);
                assert!(t.final_training.as_ref().is_some_and(|s| s.top_k == 2));
                let mut result = TrialResult::synthetic(0.0, 1.0, 0.9);
                result.val_accuracy = None;
                result.test_accuracy = Some(0.9 - 0.01 * finals.len() as f64);
                finals.push(t.id);
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
    assert_eq!(finals.len(), 2);
    let models = store.final_models(id).await.expect("finals");
    let sources: Vec<Option<i64>> = models.iter().map(|m| m.source_index).collect();
    assert_eq!(sources, [Some(3), Some(2)], "the two best, best first");
    assert!(models
        .iter()
        .all(|m| m.test_accuracy.is_some() && m.phase == TrialPhase::Final));
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Finished
    );
    // Final models are not candidates: not ranked, not bred from.
    let board = store
        .leaderboard(id, search::RankKey::Reward, 100, None)
        .await
        .expect("board");
    assert_eq!(board.total, 4);
    let err = store
        .request_final(id, &search::FinalTraining::default())
        .await
        .expect_err("once");
    assert!(
        err.to_string().contains("already has final models"),
        "{err}"
    );
}

async fn final_training_on_request_is_refused_while_running_and_bounded(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "later", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 2, "parallelism": 1}}"#,
        ))
        .await
        .expect("create");
    let err = store
        .request_final(id, &search::FinalTraining::default())
        .await
        .expect_err("running");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("still running"), "{err}");
    while let Some(t) = store.claim(&w).await.expect("claim") {
        store
            .complete(t.id, t.attempt, done(0.5, 1))
            .await
            .expect("complete");
    }
    let too_many = search::FinalTraining {
        top_k: 3,
        ..Default::default()
    };
    let err = store.request_final(id, &too_many).await.expect_err("top_k");
    assert!(err.to_string().contains("final.top_k"), "{err}");
    let one = search::FinalTraining {
        top_k: 1,
        epochs: 2,
        ..Default::default()
    };
    assert_eq!(store.request_final(id, &one).await.expect("queued"), 1);
    let again = store.request_final(id, &one).await.expect_err("twice");
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    assert!(
        again.to_string().contains("already requested"),
        "a second request is told the first was taken: {again}"
    );
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Running,
        "running again while its final model trains"
    );
    let t = store.claim(&w).await.expect("claim").expect("final");
    assert_eq!((t.phase, t.target_epochs), (TrialPhase::Final, 2));
    assert_eq!(
        store
            .request_final(404_404, &one)
            .await
            .map_err(|e| e.to_string()),
        Err("search 404404 not found".into())
    );
}

/// Epochs trained and not kept are charged to the compute budget and
/// counted per search: epochs past the last stored checkpoint when the
/// checkpoint save failed (a promoted trial does not advance past what it
/// can resume) or the attempt crashed, and epochs trained again when a
/// checkpoint could not be resumed from.
async fn epochs_trained_and_not_kept_are_charged_to_the_budget(store: Store) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "waste", "dataset": "mnist", "max_attempts": 3,
                "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
                "budget": {"max_trials": 1, "parallelism": 1, "max_epochs_total": 50}}"#,
        ))
        .await
        .expect("create");
    let epoch = |e: i64| EpochMetrics {
        epoch: e,
        train_loss: 1.0,
        train_accuracy: 0.5,
        val_accuracy: Some(0.5),
        seconds: 1.0,
    };
    let search = || async { store.search(id).await.expect("search") };
    // Rung 1: epoch 1 trained, its checkpoint save failed; promoted.
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store
        .record_epoch(t.id, t.attempt, &epoch(1))
        .await
        .expect("epoch");
    store
        .complete(t.id, t.attempt, done(0.5, 1))
        .await
        .expect("rung 1");
    let row = store.trial(t.id).await.expect("trial");
    assert_eq!(row.state, TrialState::Pending);
    assert_eq!(row.epochs_done, 0, "nothing to resume from: no checkpoint");
    assert_eq!(search().await.epochs_wasted, 1, "epoch 1 is trained again");
    assert_eq!(search().await.epochs_committed, 1 + 2 + 1);
    // Rung 2, attempt 1: epochs 1 and 2 trained, checkpoint after 1, crash.
    let t = store.claim(&w).await.expect("claim").expect("promoted");
    assert_eq!((t.epochs_done, t.target_epochs), (0, 3));
    for e in 1..=2 {
        store
            .record_epoch(t.id, t.attempt, &epoch(e))
            .await
            .expect("epoch");
    }
    store
        .save_checkpoint(t.id, t.attempt, 1, b"one")
        .await
        .expect("checkpoint");
    store
        .fail(t.id, t.attempt, "worker crashed", true)
        .await
        .expect("fail");
    assert_eq!(search().await.epochs_wasted, 2, "epoch 2 was lost");
    // Rung 2, attempt 2: the checkpoint does not load, so it trains all
    // three epochs from scratch.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let t = loop {
        if let Some(t) = store.claim(&w).await.expect("claim") {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t.epochs_done, 1);
    for e in 1..=3 {
        store
            .record_epoch(t.id, t.attempt, &epoch(e))
            .await
            .expect("epoch");
    }
    store
        .complete(t.id, t.attempt, done(0.6, 3))
        .await
        .expect("last rung");
    let s = search().await;
    assert_eq!(s.epochs_wasted, 3, "epoch 1 was trained again");
    assert_eq!(
        s.epochs_committed,
        3 + 3,
        "three epochs of rungs, three wasted"
    );
    assert_eq!(s.status, SearchStatus::Finished);
}

common::on_both_backends!(
    epochs_trained_and_not_kept_are_charged_to_the_budget,
    asha_promotes_the_top_of_each_rung_and_stops_the_rest,
    retries_are_counted_per_rung_and_a_crash_resumes_from_the_checkpoint,
    the_compute_budget_bounds_the_epochs_trained,
    final_training_retrains_the_top_distinct_architectures,
    final_training_on_request_is_refused_while_running_and_bounded,
);
