//! Test stores: a fresh SQLite file or a fresh PostgreSQL database per test.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection;
use store::{QueueConfig, SearchSpec, Store, WorkerInfo};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Queue timing short enough for tests.
pub fn fast() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_millis(300),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
    }
}

fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("nas_{tag}_{}_{n}_{nanos}", std::process::id())
}

/// A store on a new SQLite file.
pub async fn sqlite(config: QueueConfig) -> Store {
    let path = std::env::temp_dir().join(format!("{}.db", unique("sqlite")));
    Store::connect(&format!("sqlite://{}", path.display()), config)
        .await
        .expect("sqlite store")
}

/// The PostgreSQL server tests use: `DATABASE_URL` (as `.ci/run` sets it),
/// else the local default.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store on a new PostgreSQL database.
pub async fn postgres(config: QueueConfig) -> Store {
    let base = postgres_url();
    let name = unique("pg");
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.ok();
    let (prefix, _) = base.rsplit_once('/').expect("a database URL with a path");
    Store::connect(&format!("{prefix}/{name}"), config)
        .await
        .expect("postgres store")
}

/// A worker with the given labels.
pub fn worker(id: &str, labels: &[&str]) -> WorkerInfo {
    WorkerInfo {
        id: id.to_owned(),
        host: "test".into(),
        labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        threads: 1,
        device: "test cpu".into(),
    }
}

/// A spec from JSON.
pub fn spec(json: &str) -> SearchSpec {
    serde_json::from_str(json).expect("spec JSON")
}
