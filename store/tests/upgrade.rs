//! A database written by the previous release (schema 0002, untyped result
//! JSON, baselines as `mutation = "baseline:NAME"`) opens with this one: the
//! migrations move baselines to their column, and every row reads back as
//! the typed result, progress and errors.

use std::path::{Path, PathBuf};

use sqlx::any::AnyPoolOptions;
use store::{testing, QueueConfig, Store, TrialState};

/// The previous release's migrations (0001 and 0002, unchanged) in a folder
/// of their own.
fn old_migrations(dialect: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    let dir = std::env::temp_dir().join(format!(
        "nas-old-migrations-{dialect}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp folder");
    for name in ["0001_initial.sql", "0002_leaderboard.sql"] {
        std::fs::copy(source.join(name), dir.join(name)).expect("copy a migration");
    }
    dir
}

/// Rows exactly as the previous release's worker and store wrote them.
const OLD_ROWS: [&str; 4] = [
    r#"INSERT INTO searches (name, spec, status, seed, max_trials, parallelism, labels, proposed, created_at)
       VALUES ('old', '{"name":"old","dataset":"fashion-mnist","baselines":["lenet5"]}', 'finished', 0, 2, 2, '', 2, 1)"#,
    r#"INSERT INTO trials (search_id, idx, architecture, arch_hash, mutation, state, attempt, max_attempts, errors,
       run_at, created_at, result, reward, accuracy, latency_ms, params, macs)
       VALUES (1, -1, '{"input":[1,28,28],"classes":10,"layers":[{"kind":"flatten"},{"kind":"dense","units":10}]}', 'h1',
       'baseline:lenet5', 'succeeded', 1, 3, '[]', 1, 1,
       '{"device":"x86_64 avx2 (1 thread)","epochs":1,"images_per_second":5120.5,"latency_ms":{"p50":0.193,"p90":0.25},"macs":7840,"params":7850,"reward":0.6919,"train_seconds":1.2,"val_accuracy":0.6919}',
       0.6919, 0.6919, 0.193, 7850, 7840)"#,
    r#"INSERT INTO trials (search_id, idx, architecture, arch_hash, parent_idx, mutation, state, attempt, max_attempts, errors,
       run_at, created_at, result, latency_ms, params, macs)
       VALUES (1, 0, '{"input":[1,28,28],"classes":10,"layers":[{"kind":"flatten"},{"kind":"dense","units":10}]}', 'h2',
       NULL, NULL, 'rejected', 1, 3, '[{"at_ms":5,"attempt":1,"error":"lease expired: worker a"}]', 1, 1,
       '{"device":"x86_64","latency_ms":{"p50":9.5,"p90":11.0},"macs":7840,"params":7850,"reason":"over the hard latency limit"}',
       9.5, 7850, 7840)"#,
    r#"INSERT INTO trials (search_id, idx, architecture, arch_hash, parent_idx, mutation, state, attempt, max_attempts, errors,
       run_at, created_at, progress)
       VALUES (1, 1, '{"input":[1,28,28],"classes":10,"layers":[{"kind":"flatten"},{"kind":"dense","units":10}]}', 'h3',
       0, 'units 10 -> 10', 'running', 1, 3, '[]', 1, 1,
       '{"epoch":1,"epochs":3,"train_loss":0.9,"val_accuracy":0.7}')"#,
];

/// Writes the old rows through `raw_url`, then opens `url` with this release.
async fn upgrade(raw_url: &str, url: &str, dialect: &str) {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(raw_url)
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(old_migrations(dialect))
        .await
        .expect("old migrations")
        .run(&pool)
        .await
        .expect("schema 0002");
    for sql in OLD_ROWS {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    // Weights stored whole in the artifact row, as releases before the
    // chunked blob layer did.
    sqlx::query(
        "INSERT INTO artifacts (trial_id, kind, bytes, created_at) VALUES (1, 'weights', $1, 1)",
    )
    .bind(b"old weights".to_vec())
    .execute(&pool)
    .await
    .expect("old weights");
    pool.close().await;

    let store = Store::connect(url, QueueConfig::default())
        .await
        .expect("the new release opens the old database");
    let trials = store.trials(1).await.expect("old rows read back typed");
    assert_eq!(trials.len(), 3);

    let baseline = &trials[0];
    assert_eq!(baseline.lineage.baseline.as_deref(), Some("lenet5"));
    assert_eq!(baseline.lineage.mutation, None, "the prefix is gone");
    let result = baseline.result.as_ref().expect("a result");
    assert_eq!((result.version, result.latency_ms.p50), (1, 0.193));
    assert_eq!(result.val_accuracy, Some(0.6919));

    assert_eq!(
        store.weights(baseline.id).await.expect("weights"),
        Some(b"old weights".to_vec()),
        "moved onto the chunked blob layer"
    );

    let rejected = &trials[1];
    assert_eq!(rejected.state, TrialState::Rejected);
    assert_eq!(rejected.errors.len(), 1);
    assert_eq!(rejected.errors[0].error, "lease expired: worker a");
    let reason = rejected.result.as_ref().and_then(|r| r.reason.clone());
    assert_eq!(reason.as_deref(), Some("over the hard latency limit"));

    let running = &trials[2];
    assert_eq!(running.lineage.mutation.as_deref(), Some("units 10 -> 10"));
    assert_eq!(running.progress.as_ref().map(|p| p.epochs), Some(3));

    let board = store
        .leaderboard(1, search::RankKey::Reward, 10, None)
        .await
        .expect("leaderboard");
    assert_eq!(board.entries[0].baseline.as_deref(), Some("lenet5"));
    assert_eq!(board.entries[0].blocks, "fc10");
    store.close().await;
}

#[tokio::test]
async fn an_sqlite_file_of_the_previous_release_opens_and_reads_typed() {
    let url = testing::fresh_sqlite_url();
    upgrade(&format!("{url}?mode=rwc"), &url, "sqlite").await;
}

#[tokio::test]
async fn a_postgres_database_of_the_previous_release_opens_and_reads_typed() {
    let url = testing::fresh_postgres_url()
        .await
        .expect("PostgreSQL at DATABASE_URL");
    upgrade(&url, &url, "postgres").await;
}
