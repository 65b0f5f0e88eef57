//! Connecting, per-backend SQL differences, migrations, write transactions.

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

use crate::{Backend, Store, StoreError};

static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Opens a pool on `url` and applies the backend's migrations.
pub(crate) async fn connect(url: &str) -> Result<(AnyPool, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let (url, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (url.to_owned(), Backend::Postgres)
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        (sqlite_url(path), Backend::Sqlite)
    } else if url.contains("://") {
        return Err(StoreError::Url(url.to_owned()));
    } else {
        (sqlite_url(url), Backend::Sqlite)
    };
    let options = AnyConnectOptions::from_str(&url)?;
    let pool = match backend {
        Backend::Postgres => {
            AnyPoolOptions::new()
                .max_connections(32)
                .connect_with(options)
                .await?
        }
        Backend::Sqlite => {
            AnyPoolOptions::new()
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA busy_timeout = 30000",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA synchronous = NORMAL",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?
        }
    };
    match backend {
        Backend::Postgres => POSTGRES.run(&pool).await?,
        Backend::Sqlite => SQLITE.run(&pool).await?,
    }
    Ok((pool, backend))
}

fn sqlite_url(path: &str) -> String {
    let path = if path.is_empty() { "nas.db" } else { path };
    if path.contains('?') {
        format!("sqlite://{path}")
    } else {
        format!("sqlite://{path}?mode=rwc")
    }
}

impl Store {
    /// A transaction that may write: SQLite takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers never deadlock on an upgrade.
    pub(crate) async fn write_tx(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    /// Row lock for a read that precedes an update of the same rows.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Row lock that skips rows other transactions hold (the claim path).
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// The database's clock, Unix milliseconds. Leases, retry times and
    /// claims all use it, so workers with skewed clocks agree on what
    /// "expired" and "due" mean.
    pub(crate) async fn db_now_ms(&self) -> Result<i64, StoreError> {
        use sqlx::Row;
        Ok(sqlx::query(self.now_sql())
            .fetch_one(&self.pool)
            .await?
            .try_get("now")?)
    }

    /// [`Store::db_now_ms`] read inside `tx`, on the connection that holds
    /// it: a writer holding SQLite's write lock must not wait for a second
    /// pooled connection, which the writers queued behind it may all hold.
    pub(crate) async fn db_now_ms_in(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<i64, StoreError> {
        use sqlx::Row;
        Ok(sqlx::query(self.now_sql())
            .fetch_one(&mut **tx)
            .await?
            .try_get("now")?)
    }

    fn now_sql(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now"
            }
            Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS now"
            }
        }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}
