//! `nas queue submit`, `nas queue status` and `nas queue depth`: the
//! database directly, for operators, autoscalers and for running searches
//! before the HTTP API is up.

use anyhow::Context;
use search::SearchSpec;
use store::depth::{depth_sql, Depth};
use store::{QueueConfig, Store};

use super::arch::read_input;
use crate::cli::{QueueDepthArgs, QueueStatusArgs, QueueSubmitArgs};
use crate::table::{Align, Table};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Stores a spec and prints the new search's id.
pub fn submit(args: &QueueSubmitArgs) -> anyhow::Result<String> {
    let text = read_input(&args.spec)?;
    let spec: SearchSpec = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid search spec", args.spec.display()))?;
    runtime()?.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default())
            .await?
            .with_limits(args.limits.limits());
        let id = store.create_search(&spec).await?;
        store.close().await;
        Ok(format!("{id}\n"))
    })
}

/// Prints every search, or one search's counts and best trials.
pub fn status(args: &QueueStatusArgs) -> anyhow::Result<String> {
    runtime()?.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default()).await?;
        let out = match args.id {
            None => {
                let mut table = Table::new(&[
                    ("id", Align::Right),
                    ("name", Align::Left),
                    ("status", Align::Left),
                    ("trials", Align::Right),
                ]);
                for s in store.searches().await? {
                    table.row(vec![
                        s.id.to_string(),
                        s.name,
                        format!("{:?}", s.status).to_lowercase(),
                        s.proposed.to_string(),
                    ]);
                }
                table.render()
            }
            Some(id) => {
                let search = store.search(id).await?;
                let counts = store.trial_counts(id).await?;
                let mut out = format!(
                    "search {id} ({}): {}\ntrials: {}\n\n",
                    search.name,
                    format!("{:?}", search.status).to_lowercase(),
                    counts
                        .iter()
                        .map(|(k, v)| format!("{v} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let top = (args.top as i64).clamp(1, store::ranking::MAX_PAGE);
                let board = store
                    .leaderboard(id, search::objective::RankKey::Reward, top, None)
                    .await?;
                out.push_str(&super::client::leaderboard_table(&board.entries));
                out
            }
        };
        store.close().await;
        Ok(out)
    })
}

/// Prints how many trials workers with `--labels` could claim now (with
/// `--demand`, plus those running), or with `--sql` the query that counts
/// them (the text KEDA's `postgresql` trigger runs).
pub fn depth(args: &QueueDepthArgs) -> anyhow::Result<String> {
    let depth = if args.demand {
        Depth::Demand
    } else {
        Depth::Waiting
    };
    let sql = depth_sql(&args.labels.labels, depth)?;
    if args.sql {
        return Ok(format!("{sql}\n"));
    }
    runtime()?.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default()).await?;
        let count = store.queue_depth(&args.labels.labels, depth).await?;
        store.close().await;
        Ok(format!("{count}\n"))
    })
}
