//! Fresh databases for tests (this crate's and the others'): a new SQLite
//! file or a new PostgreSQL database each call, so tests never share state.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

use crate::{Store, StoreError};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("nas_{tag}_{}_{n}_{nanos}", std::process::id())
}

/// `store` as another process on the same database sees it: the same
/// connections, nothing cached. For tests that change rows behind a
/// store's back, as an older release or another machine would have written
/// them (a process reads each search's spec once and keeps it).
pub fn another_process(store: &Store) -> Store {
    Store {
        specs: crate::specs::spec_cache(),
        totals: Default::default(),
        changes: Default::default(),
        pages: Default::default(),
        histories: Default::default(),
        ..store.clone()
    }
}

/// The PostgreSQL server for tests: `DATABASE_URL` (as `.ci/run` sets it),
/// else `postgres://postgres@127.0.0.1:5432/test`.
pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The URL of a new, empty PostgreSQL database on the test server.
pub async fn fresh_postgres_url() -> Result<String, StoreError> {
    let base = postgres_server_url();
    let name = unique("pg");
    let mut admin = sqlx::PgConnection::connect(&base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let (prefix, _) = base
        .rsplit_once('/')
        .ok_or_else(|| StoreError::Url(base.clone()))?;
    Ok(format!("{prefix}/{name}"))
}

/// The URL of a new SQLite file in the temporary folder.
pub fn fresh_sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("{}.db", unique("sqlite")));
    format!("sqlite://{}", path.display())
}
