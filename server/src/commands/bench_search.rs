//! `nas bench search`: search quality at equal compute. Runs each strategy
//! (random, evolution, evolution + ASHA under the reward; evolution or
//! random + multi-objective ASHA under a Pareto objective) with several
//! seeds on a real dataset, each search limited to the same number of
//! training epochs (`budget.max_epochs_total`), with in-process workers on
//! an embedded database; then trains each search's final models (the same
//! number for every strategy) from scratch and tests them once. Prints, per
//! run and per strategy, the best validation reward, the best final
//! model's test accuracy, and the hypervolume of the tested front (every
//! run in the same box); `--out` writes every run, with its best-so-far
//! curve over compute and its tested front, as JSON (for plotting).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use search::SearchSpec;
use serde::{Deserialize, Serialize};
use store::{QueueConfig, SearchStatus, Store, TrialPhase};
use tokio::sync::watch;
use worker::pool::AgentPool;

use crate::cli::SearchBenchArgs;
use crate::table::{Align, Table};

/// One point of a best-so-far curve: compute spent, best reward by then.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    epochs: i64,
    best_reward: f64,
}

/// One search of the benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    strategy: String,
    seed: u64,
    trials: usize,
    epochs_trained: i64,
    best_val_reward: f64,
    best_val_accuracy: f64,
    final_test_accuracy: Option<f64>,
    final_latency_ms: Option<f64>,
    final_params: Option<u64>,
    final_reward: Option<f64>,
    search_seconds: f64,
    final_seconds: f64,
    /// How many trials ended at each number of epochs trained (with ASHA:
    /// how far the trials got), keyed by epochs.
    #[serde(default)]
    trials_by_epochs: std::collections::BTreeMap<i64, usize>,
    /// The reward's latency mode the run was scored with.
    #[serde(default)]
    latency_mode: Option<String>,
    curve: Vec<Step>,
    /// Every tested final model: (test accuracy, latency ms).
    #[serde(default)]
    tested: Vec<(f64, f64)>,
    /// The hypervolume of the tested final models in the benchmark's box.
    #[serde(default)]
    tested_hypervolume: Option<f64>,
    /// The hypervolume of the validated search trials in the same box.
    #[serde(default)]
    validated_hypervolume: Option<f64>,
}

/// The box every run's hypervolume is measured in.
fn bench_bounds(args: &SearchBenchArgs) -> search::pareto::Bounds {
    use search::pareto::Costs;
    search::pareto::Bounds {
        ideal: Costs::new(&[-1.0, 0.0]),
        reference: Costs::new(&[-args.reference_accuracy, reference_ms(args)]),
    }
}

fn reference_ms(args: &SearchBenchArgs) -> f64 {
    args.reference_ms.unwrap_or(2.0 * args.target_ms)
}

/// The hypervolume of (accuracy, latency) points in the benchmark's box.
fn plane_hypervolume(args: &SearchBenchArgs, points: &[(f64, f64)]) -> f64 {
    let costs: Vec<search::pareto::Costs> = points
        .iter()
        .map(|&(accuracy, latency)| search::pareto::Costs::new(&[-accuracy, latency]))
        .collect();
    search::pareto::hypervolume(&costs, &bench_bounds(args))
}

/// The spec of one run.
fn spec_of(args: &SearchBenchArgs, strategy: &str, seed: u64) -> anyhow::Result<SearchSpec> {
    let (kind, asha, pareto) = match strategy {
        "random" => ("random", false, false),
        "evolution" => ("evolution", false, false),
        "evolution+asha" => ("evolution", true, false),
        "random+asha" => ("random", true, false),
        "pareto-evolution+asha" => ("evolution", true, true),
        "pareto-random+asha" => ("random", true, true),
        other => bail!(
            "unknown strategy `{other}`: use random, evolution, evolution+asha, random+asha, \
             pareto-evolution+asha or pareto-random+asha"
        ),
    };
    let mut objective = if pareto {
        serde_json::json!({"kind": "pareto", "metrics": ["accuracy", "latency"], "latency": {},
            "reference": {"accuracy": args.reference_accuracy, "latency_ms": reference_ms(args)}})
    } else {
        serde_json::json!({"latency": {"target_ms": args.target_ms, "mode": args.latency_mode.as_str()}})
    };
    if let Some(max_ms) = args.max_ms {
        objective["latency"]["max_ms"] = max_ms.into();
    }
    let strategy = if kind == "evolution" {
        serde_json::json!({"kind": "evolution", "population": args.population, "sample": args.sample})
    } else {
        serde_json::json!({"kind": "random"})
    };
    let scheduler = if asha {
        serde_json::json!({"kind": "asha", "min_epochs": 1, "max_epochs": args.asha_max_epochs, "eta": args.eta})
    } else {
        serde_json::json!({"kind": "none"})
    };
    let spec = serde_json::json!({
        "name": format!("bench {}", strategy["kind"]),
        "dataset": args.dataset, "space": args.space, "seed": seed,
        "strategy": strategy, "scheduler": scheduler,
        "objective": objective,
        "budget": {
            "max_trials": 100_000, "parallelism": args.workers, "epochs": args.epochs_per_trial,
            "max_epochs_total": args.epochs_total, "max_train_samples": args.max_train_samples
        },
        "training": {"batch_size": 64, "learning_rate": 0.002},
        "final": {"top_k": args.final_top_k, "epochs": args.final_epochs, "training": {
            "batch_size": 64, "learning_rate": 0.002,
            "schedule": {"kind": "cosine", "warmup_epochs": 1},
            "augmentation": {"crop_padding": 2, "horizontal_flip": args.flip}
        }}
    });
    let spec: SearchSpec = serde_json::from_value(spec)?;
    spec.check()?;
    Ok(spec)
}

/// Best-so-far reward over compute from a search's rung results.
fn curve(results: &[store::RungResult]) -> Vec<Step> {
    let mut trained = std::collections::HashMap::new();
    let (mut spent, mut best) = (0i64, f64::NEG_INFINITY);
    let mut steps = Vec::new();
    for r in results {
        let before = trained.insert(r.trial_id, r.epochs).unwrap_or(0);
        spent += r.epochs - before;
        best = best.max(r.reward);
        steps.push(Step {
            epochs: spent,
            best_reward: best,
        });
    }
    steps
}

/// How many trials ended at each number of epochs trained.
fn trials_by_epochs(results: &[store::RungResult]) -> std::collections::BTreeMap<i64, usize> {
    let mut furthest = std::collections::HashMap::new();
    for r in results {
        let epochs = furthest.entry(r.trial_id).or_insert(0);
        *epochs = r.epochs.max(*epochs);
    }
    let mut counts = std::collections::BTreeMap::new();
    for epochs in furthest.into_values() {
        *counts.entry(epochs).or_insert(0) += 1;
    }
    counts
}

/// One search of `strategy` with `seed`, start to end, on a database of
/// its own, and what it found.
async fn one_run(args: &SearchBenchArgs, strategy: &str, seed: u64) -> anyhow::Result<Run> {
    let file = std::env::temp_dir().join(format!(
        "nas-bench-search-{}-{strategy}-{seed}.db",
        std::process::id()
    ));
    let url = format!("sqlite://{}", file.display());
    let store = Store::connect(&url, QueueConfig::default()).await?;
    let (id, timing) = search_to_the_end(args, &store, strategy, seed).await?;
    let run = summarise_run(args, &store, id, strategy, seed, timing).await?;
    let _ = std::fs::remove_file(&file);
    Ok(run)
}

/// Wall time of a run: the search phase (up to the first final model) and
/// in all, seconds.
struct RunTiming {
    search_seconds: f64,
    total_seconds: f64,
}

/// Submits the search to `store` and runs in-process workers until it
/// ends.
async fn search_to_the_end(
    args: &SearchBenchArgs,
    store: &Store,
    strategy: &str,
    seed: u64,
) -> anyhow::Result<(i64, RunTiming)> {
    let spec = spec_of(args, strategy, seed)?;
    let id = store.create_search(&spec).await?;
    let data_dir = args.datasets.resolve();
    let mut pool = AgentPool::new(
        args.workers as usize,
        Some(args.threads),
        &["cpu".to_owned()],
        data_dir,
    )?;
    // As `nas up` does: latency on the relative basis and a seeded predictor,
    // so every run of the benchmark measures latency the way searches do.
    super::worker::calibrate(&mut pool, true)?;
    let (stop, stopped) = watch::channel(false);
    let agents = pool.spawn(store, &stopped);
    let start = Instant::now();
    let mut search_seconds = None;
    loop {
        let search = store.search(id).await?;
        if search_seconds.is_none() && !store.final_models(id).await?.is_empty() {
            search_seconds = Some(start.elapsed().as_secs_f64());
        }
        if search.status != SearchStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let total = start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for agent in agents {
        agent.await.context("worker task")??;
    }
    let timing = RunTiming {
        search_seconds: search_seconds.unwrap_or(total),
        total_seconds: total,
    };
    Ok((id, timing))
}

/// What the run found: its best validated trial, its final models, its
/// fronts' hypervolumes and its compute.
async fn summarise_run(
    args: &SearchBenchArgs,
    store: &Store,
    id: i64,
    strategy: &str,
    seed: u64,
    timing: RunTiming,
) -> anyhow::Result<Run> {
    let results = store.rung_results(id).await?;
    let trials = store.trials(id).await?;
    let search_trials: Vec<_> = trials
        .iter()
        .filter(|t| t.phase == TrialPhase::Search && t.lineage.baseline.is_none())
        .collect();
    let best = search_trials
        .iter()
        .filter_map(|t| Some((t.reward?, t.result.as_ref()?.val_accuracy?)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((f64::NAN, f64::NAN));
    let finals = store.final_models(id).await?;
    let tested: Vec<(f64, f64)> = finals
        .iter()
        .filter(|m| m.lineage.baseline.is_none())
        .filter_map(|m| Some((m.test_accuracy?, m.result.as_ref()?.latency_ms.p50)))
        .collect();
    let validated: Vec<(f64, f64)> = search_trials
        .iter()
        .filter_map(|t| {
            Some((
                t.result.as_ref()?.val_accuracy?,
                t.result.as_ref()?.latency_ms.p50,
            ))
        })
        .collect();
    // The best final model: the most accurate.
    let model = finals
        .iter()
        .filter(|m| m.test_accuracy.is_some() && m.lineage.baseline.is_none())
        .max_by(|a, b| {
            a.test_accuracy
                .unwrap_or(0.0)
                .total_cmp(&b.test_accuracy.unwrap_or(0.0))
        });
    let result = model.and_then(|m| m.result.as_ref());
    Ok(Run {
        strategy: strategy.to_owned(),
        seed,
        trials: search_trials.len(),
        epochs_trained: curve(&results).last().map_or(0, |s| s.epochs),
        best_val_reward: best.0,
        best_val_accuracy: best.1,
        final_test_accuracy: model.and_then(|m| m.test_accuracy),
        final_latency_ms: result.map(|r| r.latency_ms.p50),
        final_params: result.map(|r| r.params),
        final_reward: model.and_then(|m| m.reward),
        search_seconds: timing.search_seconds,
        final_seconds: timing.total_seconds - timing.search_seconds,
        trials_by_epochs: trials_by_epochs(&results),
        latency_mode: Some(args.latency_mode.as_str().to_owned()),
        curve: curve(&results),
        tested_hypervolume: (!tested.is_empty()).then(|| plane_hypervolume(args, &tested)),
        validated_hypervolume: Some(plane_hypervolume(args, &validated)),
        tested,
    })
}

fn mean_and_spread(values: &[f64]) -> String {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return "-".into();
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    format!("{mean:.4} ± {sd:.4}")
}

/// Runs every strategy with every seed, one search at a time, writing the
/// runs file after each (with `--resume`, runs already in it are kept).
pub fn run(args: &SearchBenchArgs) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs = earlier_runs(args)?;
    // Seed by seed, every strategy within a seed: a benchmark cut short
    // still compares the strategies on the seeds it finished.
    for seed in 0..u64::from(args.seeds) {
        for strategy in &args.strategies {
            if runs
                .iter()
                .any(|r| &r.strategy == strategy && r.seed == seed)
            {
                continue;
            }
            let run = runtime.block_on(one_run(args, strategy, seed))?;
            eprintln!(
                "{strategy} seed {seed}: {} trials, {} epochs, best val reward {:.4} (acc {:.4}), final test {:?} at {:?} ms, \
                 tested front {:?} (hypervolume {:?}), {:.0} s + {:.0} s, trials by epochs trained {:?}",
                run.trials, run.epochs_trained, run.best_val_reward, run.best_val_accuracy,
                run.final_test_accuracy, run.final_latency_ms, run.tested, run.tested_hypervolume,
                run.search_seconds, run.final_seconds, run.trials_by_epochs
            );
            runs.push(run);
            if let Some(out) = &args.out {
                std::fs::write(out, serde_json::to_string_pretty(&runs)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
        }
    }
    Ok(format!(
        "{} on {}, space {}, {} epochs of {} images per search, {} target {} ms, {} final model(s) each, \
         hypervolume box: accuracy {} to 1, latency 0 to {} ms, {} worker(s) x {} thread(s)\n{}{}",
        "search quality at equal compute",
        args.dataset,
        args.space,
        args.epochs_total,
        args.max_train_samples,
        args.latency_mode.as_str(),
        args.target_ms,
        args.final_top_k,
        args.reference_accuracy,
        reference_ms(args),
        args.workers,
        args.threads,
        strategy_table(args, &runs),
        dominance_cost(1000, mean_trial_seconds(&runs))
    ))
}

/// The runs already in `--out`, with `--resume` (none otherwise).
fn earlier_runs(args: &SearchBenchArgs) -> anyhow::Result<Vec<Run>> {
    Ok(match &args.out {
        Some(out) if args.resume && out.exists() => {
            let text = std::fs::read_to_string(out)
                .with_context(|| format!("reading {}", out.display()))?;
            serde_json::from_str::<Vec<Run>>(&text)
                .with_context(|| format!("{} is not a runs file", out.display()))?
        }
        _ => Vec::new(),
    })
}

/// Mean wall time of a search trial over `runs`, seconds.
fn mean_trial_seconds(runs: &[Run]) -> f64 {
    let trial_seconds: Vec<f64> = runs
        .iter()
        .filter(|r| r.trials > 0)
        .map(|r| r.search_seconds / r.trials as f64)
        .collect();
    trial_seconds.iter().sum::<f64>() / trial_seconds.len().max(1) as f64
}

/// One row per strategy: the mean and spread of its runs' figures.
fn strategy_table(args: &SearchBenchArgs, runs: &[Run]) -> String {
    let mut table = Table::new(&[
        ("strategy", Align::Left),
        ("runs", Align::Right),
        ("best val reward", Align::Right),
        ("final test acc", Align::Right),
        ("final latency ms", Align::Right),
        ("tested HV", Align::Right),
        ("validated HV", Align::Right),
        ("trials", Align::Right),
        ("search s", Align::Right),
    ]);
    for strategy in &args.strategies {
        let mine: Vec<&Run> = runs.iter().filter(|r| &r.strategy == strategy).collect();
        let of = |f: &dyn Fn(&Run) -> Option<f64>| -> Vec<f64> {
            mine.iter().filter_map(|r| f(r)).collect()
        };
        table.row(vec![
            strategy.clone(),
            mine.len().to_string(),
            mean_and_spread(&of(&|r| Some(r.best_val_reward))),
            mean_and_spread(&of(&|r| r.final_test_accuracy)),
            mean_and_spread(&of(&|r| r.final_latency_ms)),
            mean_and_spread(&of(&|r| r.tested_hypervolume)),
            mean_and_spread(&of(&|r| r.validated_hypervolume)),
            mean_and_spread(&of(&|r| Some(r.trials as f64))),
            mean_and_spread(&of(&|r| Some(r.search_seconds))),
        ]);
    }
    table.render()
}

/// What ranking by dominance costs a search of `trials` trials: every
/// multi-objective ASHA decision (one per rung result, each ranking the
/// rung's results so far, as the store does), NSGA-II parent choice over a
/// population of 20 per proposal, and the final pick and hypervolumes,
/// timed on synthetic points; compared with `trial_seconds`, the mean
/// wall time of a trial in the runs above.
fn dominance_cost(trials: usize, trial_seconds: f64) -> String {
    use search::pareto::{self, Bounds, Costs};
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let points: Vec<Costs> = (0..trials)
        .map(|_| {
            let latency = 0.02 + next() * 2.0;
            Costs::new(&[-(0.8 + 0.15 * next() * latency.sqrt().min(1.0)), latency])
        })
        .collect();
    let bounds = Bounds {
        ideal: Costs::new(&[-1.0, 0.0]),
        reference: Costs::new(&[0.0, 2.0]),
    };
    let start = Instant::now();
    // Rung 0 sees every trial; eta 3 leaves a third for the next rung, and so on.
    let mut rung_size = trials;
    while rung_size >= 1 {
        for n in 1..=rung_size {
            std::hint::black_box(pareto::goes_on_by_dominance(&points[..n], n - 1, 3));
        }
        rung_size /= 3;
    }
    for n in 0..trials {
        let start = n.saturating_sub(20);
        std::hint::black_box(pareto::standings(&points[start..=n]));
    }
    std::hint::black_box(pareto::spread(&points, 20, &bounds));
    std::hint::black_box(pareto::hypervolume(&points, &bounds));
    let seconds = start.elapsed().as_secs_f64();
    let search_seconds = trial_seconds * trials as f64;
    format!(
        "dominance sorting, crowding and hypervolume for a {trials}-trial search: {seconds:.2} s in all; \
         at this run's mean trial time ({trial_seconds:.1} s) that is {:.3}% of the search's wall time\n",
        if search_seconds > 0.0 { 100.0 * seconds / search_seconds } else { f64::NAN }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rung(trial_id: i64, epochs: i64, reward: f64) -> store::RungResult {
        store::RungResult {
            trial_id,
            rung: 0,
            epochs,
            reward,
            accuracy: None,
            latency_ms: None,
            goes_on: false,
            recorded_at: 0,
        }
    }

    #[test]
    fn trials_are_counted_where_they_stopped_and_compute_only_once() {
        // Trial 1 stops after one epoch; trial 2 is promoted from 1 to 3.
        let results = [rung(1, 1, 0.5), rung(2, 1, 0.7), rung(2, 3, 0.8)];
        let counts = trials_by_epochs(&results);
        assert_eq!(counts.into_iter().collect::<Vec<_>>(), vec![(1, 1), (3, 1)]);
        let spent: Vec<i64> = curve(&results).iter().map(|s| s.epochs).collect();
        assert_eq!(spent, vec![1, 2, 4]);
        assert_eq!(curve(&results).last().map(|s| s.best_reward), Some(0.8));
    }

    #[test]
    fn the_latency_mode_reaches_the_spec() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SearchBenchArgs,
        }
        let soft = Wrapper::try_parse_from(["bench", "--latency-mode", "soft"]).expect("parses");
        let spec = spec_of(&soft.args, "evolution+asha", 0).expect("valid spec");
        let json = serde_json::to_value(&spec).expect("serialises");
        assert_eq!(json["objective"]["latency"]["mode"], "soft");
        let default = Wrapper::try_parse_from(["bench"]).expect("parses");
        let spec = spec_of(&default.args, "random", 0).expect("valid spec");
        let json = serde_json::to_value(&spec).expect("serialises");
        assert_eq!(json["objective"]["latency"]["mode"], "hard");
    }
}
