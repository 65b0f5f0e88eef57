//! `nas bench seed`: fills a database with one search of N finished trials
//! (real architectures from the `full` space, synthetic accuracies and
//! latencies, the objective's real reward) so the API can be load-tested on a
//! leaderboard of realistic size without training N networks.

use anyhow::Context;
use rand::{Rng, SeedableRng};
use search::{SearchSpec, TrialResult};
use store::{Completion, QueueConfig, Store, WorkerInfo};

use crate::cli::SeedBenchArgs;
use crate::table::{Align, Table};

/// Creates the search, completes every trial, prints the search id.
pub fn seed(args: &SeedBenchArgs) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::connect(&args.database_url, QueueConfig::default()).await?;
        let spec: SearchSpec = serde_json::from_value(serde_json::json!({
            "name": format!("synthetic leaderboard ({} trials)", args.trials),
            "dataset": "cifar10", "space": "full", "strategy": {"kind": "random"},
            "objective": {"latency": {"target_ms": 2.0}},
            "budget": {"max_trials": args.trials, "parallelism": args.trials.min(search::spec::bounds::MAX_PARALLELISM)}
        }))?;
        let objective = spec.objective.clone();
        let id = store.create_search(&spec).await?;
        let worker = WorkerInfo {
            id: "seed".into(),
            host: "bench".into(),
            labels: vec![],
            threads: 1,
            device: "synthetic".into(),
        profile: None,
        };
        store.register_worker(&worker).await?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(args.trials));
        let mut completions_ms = Vec::new();
        while let Some(trial) = store.claim(&worker).await? {
            let accuracy: f64 = rng.gen_range(0.3..0.95);
            let latency_ms: f64 = rng.gen_range(0.05..20.0);
            let reward = objective.reward(accuracy, latency_ms);
            let started = std::time::Instant::now();
            store
                .complete(
                    trial.id,
                    trial.attempt,
                    Completion::Succeeded {
                        result: TrialResult::synthetic(accuracy, latency_ms, reward),
                        weights: None,
                    },
                )
                .await
                .with_context(|| format!("completing trial {}", trial.id))?;
            completions_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        store.close().await;
        eprint!("{}", completion_latency_table(&completions_ms));
        Ok(format!("{id}\n"))
    })
}

/// Completion latency (the completing transaction with its top-up) by how
/// many trials had finished: p50 and p99 over windows of 1,000 completions.
fn completion_latency_table(ms: &[f64]) -> String {
    let mut table = Table::new(&[
        ("finished trials", Align::Left),
        ("p50 ms", Align::Right),
        ("p99 ms", Align::Right),
    ]);
    let window = 1000.min(ms.len().max(1));
    let mut start = 0;
    while start < ms.len() {
        let end = (start + window).min(ms.len());
        let mut slice = ms[start..end].to_vec();
        slice.sort_by(f64::total_cmp);
        let at = |q: f64| slice[((slice.len() - 1) as f64 * q).round() as usize];
        table.row(vec![
            format!("{}-{}", start + 1, end),
            format!("{:.2}", at(0.5)),
            format!("{:.2}", at(0.99)),
        ]);
        start = end;
    }
    table.render()
}
