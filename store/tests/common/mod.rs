//! Test stores on fresh databases, and small builders.

#![allow(dead_code, unused_macros, unused_imports)]

use std::time::Duration;

use search::SearchSpec;
use store::{testing, QueueConfig, Store, WorkerInfo};

/// Queue timing short enough for tests.
pub fn fast() -> QueueConfig {
    QueueConfig {
        lease: Duration::from_millis(300),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
    }
}

/// A store on a new SQLite file.
pub async fn sqlite(config: QueueConfig) -> Store {
    Store::connect(&testing::fresh_sqlite_url(), config)
        .await
        .expect("sqlite store")
}

/// A store on a new PostgreSQL database.
pub async fn postgres(config: QueueConfig) -> Store {
    let url = testing::fresh_postgres_url()
        .await
        .expect("PostgreSQL at DATABASE_URL");
    Store::connect(&url, config).await.expect("postgres store")
}

/// A store and a raw connection to the same database, to write rows the
/// way old releases or hand edits could.
pub async fn store_and_pool(url: String) -> (Store, sqlx::AnyPool) {
    let store = Store::connect(&url, fast()).await.expect("store");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("raw pool");
    (store, pool)
}

/// A worker with the given labels.
pub fn worker(id: &str, labels: &[&str]) -> WorkerInfo {
    WorkerInfo {
        id: id.to_owned(),
        host: "test".into(),
        labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        threads: 1,
        device: "test cpu".into(),
        profile: None,
    }
}

/// A spec from JSON.
pub fn spec(json: &str) -> SearchSpec {
    serde_json::from_str(json).expect("spec JSON")
}

/// Runs each named `async fn(Store)` of the calling test file once on a
/// fresh SQLite file and once on a fresh PostgreSQL database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::sqlite(super::fast()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::postgres(super::fast()).await).await;
                }
            )*
        }
    };
}

pub(crate) use on_both_backends;

/// Runs each named `async fn(Store, AnyPool)` of the calling test file on a
/// fresh SQLite file and a fresh PostgreSQL database, with a raw pool on
/// the same database.
macro_rules! with_pool_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let url = store::testing::fresh_sqlite_url();
                    let (store, pool) = super::common::store_and_pool(url).await;
                    super::$name(store, pool).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let url = store::testing::fresh_postgres_url().await.expect("PostgreSQL at DATABASE_URL");
                    let (store, pool) = super::common::store_and_pool(url).await;
                    super::$name(store, pool).await;
                }
            )*
        }
    };
}

pub(crate) use with_pool_on_both_backends;
