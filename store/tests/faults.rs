//! Faults that must not hurt a search or its neighbours, on both backends:
//! a strategy that cannot propose, a row the rescuer cannot handle, a
//! search stopped under a running trial, non-finite rewards, rows written
//! before rewards were checked.

mod common;

use std::time::Duration;

use common::{fast, spec, worker};
use search::RankKey;
use sqlx::AnyPool;
use store::{testing, Completion, SearchStatus, Store, StoreError, TrialState};

fn done(reward: f64) -> Completion {
    Completion::Succeeded {
        result: search::TrialResult::synthetic(reward.clamp(0.0, 1.0), 1.0, reward),
        weights: None,
    }
}

const RANDOM: &str = r#"{"name": "s", "dataset": "mnist", "strategy": {"kind": "random"},
    "budget": {"max_trials": 3, "parallelism": 1}}"#;

/// The strategy fails after a trial trained: the result is kept, the search
/// fails with the reason, nothing is left pending.
async fn a_strategy_failure_keeps_the_result_and_fails_the_search(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(RANDOM)).await.expect("create");
    let t = store.claim(&w).await.expect("claim").expect("a trial");
    // A space stored by an older release that no longer checks out.
    let broken = r#"{"name":"s","dataset":"mnist","strategy":{"kind":"random"},"budget":{"max_trials":3,"parallelism":1},"space":{"ops":[],"channels":[8],"kernels":[3],"depth":{"min":1,"max":2},"stem":{"channels":[8]},"head":{"pooling":"global_avg"}}}"#;
    sqlx::query("UPDATE searches SET spec = $1 WHERE id = $2")
        .bind(broken)
        .bind(id)
        .execute(&pool)
        .await
        .expect("break the spec");
    // As a process that never read the search before finds it.
    let store = store::testing::another_process(&store);
    store
        .complete(t.id, t.attempt, done(0.8))
        .await
        .expect("the completion stands");
    let trial = store.trial(t.id).await.expect("trial");
    assert_eq!(trial.state, TrialState::Succeeded);
    assert_eq!(trial.reward, Some(0.8));
    let search = store.search(id).await.expect("search");
    assert_eq!(search.status, SearchStatus::Failed);
    let error = search.error.unwrap_or_default();
    assert!(error.contains("ops"), "{error}");
    assert!(store.claim(&w).await.expect("claim").is_none());
}

/// One trial whose row the rescuer cannot handle does not stop it from
/// rescuing another search's trial.
async fn the_rescuer_goes_on_past_a_row_it_cannot_handle(store: Store, pool: AnyPool) {
    let (a, b) = (worker("a", &[]), worker("b", &[]));
    let first = store.create_search(&spec(RANDOM)).await.expect("create");
    store.create_search(&spec(RANDOM)).await.expect("create");
    let ta = store.claim(&a).await.expect("claim").expect("trial");
    let tb = store.claim(&b).await.expect("claim").expect("trial");
    assert_ne!(ta.search_id, tb.search_id);
    let bad = if ta.search_id == first { ta.id } else { tb.id };
    let good = if bad == ta.id { tb.id } else { ta.id };
    sqlx::query("UPDATE trials SET errors = 'not json' WHERE id = $1")
        .bind(bad)
        .execute(&pool)
        .await
        .expect("break a row");
    tokio::time::sleep(store.config().lease + Duration::from_millis(100)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
    let rescued = store.trial(good).await.expect("trial");
    assert_eq!(rescued.state, TrialState::Pending, "{rescued:?}");
    assert_eq!(rescued.errors.len(), 1);
    assert!(matches!(store.trial(bad).await, Err(StoreError::Corrupt(m)) if m.contains("trial")));
}

/// A worker dies on a trial of a search that was cancelled meanwhile: the
/// trial ends cancelled instead of being retried, and nobody claims it.
async fn a_stopped_searchs_trial_is_not_retried(store: Store, _pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(RANDOM)).await.expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    store.cancel_search(id).await.expect("cancel");
    tokio::time::sleep(store.config().lease + Duration::from_millis(100)).await;
    assert_eq!(store.rescue_expired().await.expect("rescue"), 1);
    assert_eq!(
        store.trial(t.id).await.expect("trial").state,
        TrialState::Cancelled
    );
    assert!(store.claim(&w).await.expect("claim").is_none());
}

/// A non-finite reward is refused and the lease kept; rows written before
/// rewards were checked (NaN stored as NULL) do not break the views.
async fn rewards_are_finite_and_readers_tolerate_old_rows(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(RANDOM)).await.expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    let refused = store.complete(t.id, t.attempt, done(f64::NAN)).await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.trial(t.id).await.expect("trial").state,
        TrialState::Running
    );
    store
        .complete(t.id, t.attempt, done(0.5))
        .await
        .expect("complete");
    sqlx::query("UPDATE trials SET reward = NULL WHERE id = $1")
        .bind(t.id)
        .execute(&pool)
        .await
        .expect("an old NaN row");
    for key in [RankKey::Reward, RankKey::Accuracy, RankKey::Latency] {
        let page = store.leaderboard(id, key, 10, None).await.expect("page");
        assert!(page.entries.iter().all(|e| e.trial_id != t.id), "{key:?}");
    }
    store.pareto(id).await.expect("pareto");
    store.searches_page(None, None, 10).await.expect("searches");
}

/// A search with a long queue does not starve one submitted after it:
/// claims alternate between searches.
async fn claims_are_shared_between_searches(store: Store, _pool: AnyPool) {
    let w = worker("w", &[]);
    let big = store
        .create_search(&spec(
            r#"{"name": "big", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 40, "parallelism": 40}}"#,
        ))
        .await
        .expect("create");
    let small = store.create_search(&spec(RANDOM)).await.expect("create");
    let mut order = Vec::new();
    for _ in 0..4 {
        let t = store.claim(&w).await.expect("claim").expect("a trial");
        order.push(t.search_id);
    }
    assert!(
        order[..2].contains(&small),
        "the small search waits behind 40 trials: {order:?} (big {big}, small {small})"
    );
    assert!(order.contains(&big), "{order:?}");
}

/// Checkpoint bytes left in the database.
async fn checkpoints_left(pool: &AnyPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM artifacts WHERE kind = 'checkpoint'")
        .fetch_one(pool)
        .await
        .expect("count checkpoints")
}

const ASHA: &str = r#"{"name": "asha", "dataset": "mnist", "strategy": {"kind": "random"},
    "scheduler": {"kind": "asha", "min_epochs": 1, "max_epochs": 3, "eta": 3},
    "budget": {"max_trials": 3, "parallelism": 2}}"#;

/// Claims a trial, stores its checkpoint and ends its first rung with a
/// reward high enough to be promoted: it waits, pending, with its
/// checkpoint.
async fn promote_one(store: &Store, w: &store::WorkerInfo) -> i64 {
    let t = store.claim(w).await.expect("claim").expect("a trial");
    store
        .save_checkpoint(t.id, t.attempt, 1, b"rung one")
        .await
        .expect("checkpoint");
    store
        .complete(t.id, t.attempt, done(0.9))
        .await
        .expect("rung 1");
    let row = store.trial(t.id).await.expect("trial");
    assert_eq!(
        row.state,
        TrialState::Pending,
        "promoted: the first result of its rung"
    );
    t.id
}

/// A cancelled search keeps no checkpoint: its promoted trial, waiting for
/// its next rung, is cancelled and its checkpoint deleted with it.
async fn a_cancelled_search_keeps_no_checkpoint(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(ASHA)).await.expect("create");
    let promoted = promote_one(&store, &w).await;
    assert_eq!(checkpoints_left(&pool).await, 1);
    store.cancel_search(id).await.expect("cancel");
    assert_eq!(checkpoints_left(&pool).await, 0, "no checkpoint bytes left");
    let row = store.trial(promoted).await.expect("trial");
    assert_eq!(
        (row.state, row.checkpoint_bytes),
        (TrialState::Cancelled, None)
    );
}

/// A search that fails (its strategy cannot go on) keeps no checkpoint of
/// the trials it cancels.
async fn a_failed_search_keeps_no_checkpoint(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(ASHA)).await.expect("create");
    let other = store.claim(&w).await.expect("claim").expect("second trial");
    let promoted = promote_one(&store, &w).await;
    assert_ne!(other.id, promoted);
    // A space stored by an older release that no longer checks out: the
    // next top-up fails the search.
    let broken = ASHA.replace(
        r#""budget""#,
        r#""space": {"ops":[],"channels":[8],"kernels":[3],"depth":{"min":1,"max":2},"stem":{"channels":[8]},"head":{"pooling":"global_avg"}}, "budget""#,
    );
    let broken: serde_json::Value = serde_json::from_str(&broken).expect("JSON");
    sqlx::query("UPDATE searches SET spec = $1 WHERE id = $2")
        .bind(broken.to_string())
        .bind(id)
        .execute(&pool)
        .await
        .expect("break the spec");
    // As a process that never read the search before finds it.
    let store = store::testing::another_process(&store);
    store
        .complete(other.id, other.attempt, done(0.1))
        .await
        .expect("the completion stands");
    assert_eq!(
        store.search(id).await.expect("search").status,
        SearchStatus::Failed
    );
    assert_eq!(
        store.trial(promoted).await.expect("trial").state,
        TrialState::Cancelled
    );
    assert_eq!(checkpoints_left(&pool).await, 0, "no checkpoint bytes left");
}

/// Promotions come first across searches: a search's promoted trial is
/// claimed before another search's new trial, even when that search has
/// waited longer; searches then take turns again.
async fn promotions_come_first_across_searches(store: Store, _pool: AnyPool) {
    let w = worker("w", &[]);
    let a = store.create_search(&spec(ASHA)).await.expect("create a");
    let b = store.create_search(&spec(ASHA)).await.expect("create b");
    // Search a is claimed from (and so b has waited longer) ...
    let promoted = promote_one(&store, &w).await;
    assert_eq!(store.trial(promoted).await.expect("trial").search_id, a);
    // ... yet a's promotion goes before b's new trials.
    let next = store.claim(&w).await.expect("claim").expect("a trial");
    assert_eq!(next.id, promoted, "the promotion first");
    assert_eq!(next.target_epochs, 3);
    // With no promotion waiting, b (claimed from longest ago) has its turn.
    let then = store.claim(&w).await.expect("claim").expect("a trial");
    assert_eq!(then.search_id, b, "fairness between searches is kept");
    // Each search with a promotion waiting gets one claim in turn.
    store
        .complete(then.id, then.attempt, done(0.9))
        .await
        .expect("b's rung 1");
    let b_again = store.claim(&w).await.expect("claim").expect("a trial");
    assert_eq!(b_again.search_id, b, "b's promotion before a's new trial");
    assert_eq!(b_again.id, then.id);
}

/// A settle that fails after the completion committed does not turn the
/// completion into an error: the result is kept and the worker told so.
async fn a_settle_failure_after_commit_keeps_the_completion(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store
        .create_search(&spec(
            r#"{"name": "one", "dataset": "mnist", "strategy": {"kind": "random"},
                "budget": {"max_trials": 1, "parallelism": 1}}"#,
        ))
        .await
        .expect("create");
    let t = store.claim(&w).await.expect("claim").expect("trial");
    // The completion itself does not read the spec (a rejected trial ends
    // no rung and the search is fully proposed); the settle after it does.
    sqlx::query("UPDATE searches SET spec = 'not a spec' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("break the spec");
    let mut result = search::TrialResult::synthetic(0.5, 9.0, 0.5);
    result.reward = None;
    result.val_accuracy = None;
    store
        .complete(t.id, t.attempt, Completion::Rejected { result })
        .await
        .expect("committed, so reported as done");
    assert_eq!(
        store.trial(t.id).await.expect("trial").state,
        TrialState::Rejected
    );
}

/// A search whose stored spec no longer reads (written by another release)
/// fails its claimed trial for good, naming the reason, rather than
/// failing every claim of every worker.
async fn an_unreadable_spec_fails_the_claimed_trial(store: Store, pool: AnyPool) {
    let w = worker("w", &[]);
    let id = store.create_search(&spec(RANDOM)).await.expect("create");
    sqlx::query("UPDATE searches SET spec = $1 WHERE id = $2")
        .bind(r#"{"name": "s", "a_field_from_another_release": 1}"#)
        .bind(id)
        .execute(&pool)
        .await
        .expect("break the spec");
    let store = store::testing::another_process(&store);
    assert!(store.claim(&w).await.expect("the claim answers").is_none());
    let trials = store.trials(id).await.expect("trials");
    let failed = trials
        .iter()
        .find(|t| t.state == TrialState::Failed)
        .expect("a failed trial");
    assert!(
        failed.errors.iter().any(|e| e.error.contains("spec")),
        "{failed:?}"
    );
    let search = store.search(id).await;
    assert!(
        matches!(search, Err(StoreError::Corrupt(_))),
        "its row cannot be read as a search either: {search:?}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM searches WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "failed", "the search cannot go on");
}

common::with_pool_on_both_backends!(
    a_strategy_failure_keeps_the_result_and_fails_the_search,
    the_rescuer_goes_on_past_a_row_it_cannot_handle,
    a_stopped_searchs_trial_is_not_retried,
    rewards_are_finite_and_readers_tolerate_old_rows,
    claims_are_shared_between_searches,
    a_cancelled_search_keeps_no_checkpoint,
    a_failed_search_keeps_no_checkpoint,
    an_unreadable_spec_fails_the_claimed_trial,
    promotions_come_first_across_searches,
    a_settle_failure_after_commit_keeps_the_completion,
);

/// Two processes (two stores) complete trials of one search in turn: each
/// keeps its own cached history, yet no architecture is proposed twice and
/// the strategy sees every outcome.
async fn two_processes_share_a_search(url: String) {
    let a = Store::connect(&url, fast()).await.expect("store a");
    let b = Store::connect(&url, fast()).await.expect("store b");
    let id = a
        .create_search(&spec(
            r#"{"name": "shared", "dataset": "mnist", "space": "mobile",
                "strategy": {"kind": "evolution", "population": 4, "sample": 2},
                "budget": {"max_trials": 24, "parallelism": 3}}"#,
        ))
        .await
        .expect("create");
    let w = worker("w", &[]);
    let mut turn = 0usize;
    loop {
        let store = if turn.is_multiple_of(2) { &a } else { &b };
        let Some(t) = store.claim(&w).await.expect("claim") else {
            break;
        };
        let reward = 0.1 + (t.index as f64 * 0.37).fract() * 0.8;
        store
            .complete(t.id, t.attempt, done(reward))
            .await
            .expect("complete");
        turn += 1;
    }
    let trials = a.trials(id).await.expect("trials");
    assert_eq!(trials.len(), 24);
    let mut hashes: Vec<String> = Vec::new();
    for t in &trials {
        let json = a.architecture(t.id).await.expect("architecture");
        hashes.push(
            search::Architecture::from_json(&json)
                .expect("parses")
                .canonical_hash(),
        );
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 24, "an architecture was proposed twice");
    assert!(
        trials
            .iter()
            .skip(4)
            .any(|t| t.lineage.parent_index.is_some()),
        "evolution bred from the shared history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_search_on_sqlite() {
    two_processes_share_a_search(testing::fresh_sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_search_on_postgres() {
    two_processes_share_a_search(
        testing::fresh_postgres_url()
            .await
            .expect("PostgreSQL at DATABASE_URL"),
    )
    .await;
}
