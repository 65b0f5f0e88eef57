//! `nas bench queue`: how many trials per second the queue moves through
//! claim + complete, with N concurrent workers and a trivial evaluator, and
//! proof that no trial was claimed twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use search::{SearchSpec, TrialResult};
use store::{Completion, QueueConfig, Store, WorkerInfo};

use crate::cli::QueueBenchArgs;
use crate::table::{thousands, Align, Table};

/// One run: `workers` tasks drain a search of `trials` trials.
async fn one_run(store: &Store, workers: usize, trials: u32) -> anyhow::Result<(f64, usize)> {
    let spec: SearchSpec = serde_json::from_value(serde_json::json!({
        "name": format!("queue-bench-{workers}"), "dataset": "cifar10", "space": "full",
        "strategy": {"kind": "random"}, "budget": {"max_trials": trials, "parallelism": trials.min(search::spec::bounds::MAX_PARALLELISM)}
    }))?;
    store.create_search(&spec).await?;
    let claims: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..workers {
        let (store, claims) = (store.clone(), claims.clone());
        tasks.push(tokio::spawn(async move {
            let w = WorkerInfo {
                id: format!("bench-{n}"),
                host: "bench".into(),
                labels: vec![],
                threads: 1,
                device: "-".into(),
                profile: None,
            };
            store.register_worker(&w).await?;
            while let Some(t) = store.claim(&w).await? {
                if let Ok(mut c) = claims.lock() {
                    *c.entry(t.id).or_default() += 1;
                }
                store
                    .complete(
                        t.id,
                        t.attempt,
                        Completion::Succeeded {
                            result: TrialResult::synthetic(0.5, 1.0, 0.5),
                            weights: None,
                        },
                    )
                    .await?;
            }
            Ok::<_, store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await.context("worker task")??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let claims = claims
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let doubles = claims.values().filter(|&&c| c != 1).count();
    if claims.len() != trials as usize {
        bail!("{} of {trials} trials were claimed", claims.len());
    }
    Ok((f64::from(trials) / seconds, doubles))
}

/// Runs the benchmark for each worker count and prints a table.
pub fn run(args: &QueueBenchArgs) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default()).await?;
        let mut table = Table::new(&[
            ("backend", Align::Left),
            ("workers", Align::Right),
            ("trials", Align::Right),
            ("trials/s", Align::Right),
            ("double claims", Align::Right),
        ]);
        for &workers in &args.workers {
            let (rate, doubles) = one_run(&store, workers.max(1), args.trials).await?;
            table.row(vec![
                format!("{:?}", store.backend()),
                workers.to_string(),
                thousands(u64::from(args.trials)),
                thousands(rate as u64),
                doubles.to_string(),
            ]);
        }
        store.close().await;
        Ok(table.render())
    })
}
