//! Strategy tests on a synthetic fitness: evolution beats random search on
//! average, a seeded run replays exactly, failures are handled.

use search::space::BlockOp;
use search::{
    propose, seeded_rng, Architecture, HistoryEntry, InputShape, Outcome, SearchSpace, Strategy,
};

const INPUT: InputShape = InputShape::new(1, 28, 28);

/// A deterministic stand-in for accuracy, in tests only: the genotype should
/// be seven blocks, each a 5x5 residual block of 64 channels, with a stem of
/// 32. Additive, so it rewards local improvement as real landscapes tend to.
fn synthetic_fitness(arch: &Architecture) -> f64 {
    let g = arch
        .genotype
        .as_ref()
        .expect("sampled architectures carry a genotype");
    let mut score = 0.0;
    for b in &g.blocks {
        score += match b.op {
            BlockOp::Residual => 1.0,
            BlockOp::Se => 0.6,
            BlockOp::Conv => 0.5,
            _ => 0.2,
        };
        score += if b.kernel == 5 { 0.5 } else { 0.0 };
        score += 0.5 - (b.channels as f64 - 64.0).abs() / 128.0;
    }
    score -= 1.5 * (g.blocks.len() as f64 - 7.0).abs();
    score += if g.stem_channels == 32 { 0.5 } else { 0.0 };
    score
}

/// Runs a search of `trials` trials, proposing `batch` at a time (workers in
/// parallel) and finishing them in order. Every seventh trial fails.
fn run(strategy: Strategy, seed: u64, trials: usize, batch: usize) -> Vec<HistoryEntry> {
    let space = SearchSpace::preset("full").expect("full");
    let mut rng = seeded_rng(seed);
    let mut history: Vec<HistoryEntry> = Vec::new();
    while history.len() < trials {
        let want = batch.min(trials - history.len());
        let proposals =
            propose(&strategy, &space, INPUT, 10, &history, want, &mut rng).expect("proposes");
        assert_eq!(
            proposals.len(),
            want,
            "the full space is far from exhausted"
        );
        for p in proposals {
            let outcome = if history.len() % 7 == 6 {
                Outcome::Failed
            } else {
                Outcome::Succeeded {
                    fitness: synthetic_fitness(&p.architecture),
                    rung: 0,
                    costs: None,
                }
            };
            history.push(HistoryEntry::new(p.architecture, outcome));
        }
    }
    history
}

fn best(history: &[HistoryEntry]) -> f64 {
    history
        .iter()
        .filter_map(|e| match e.outcome {
            Outcome::Succeeded { fitness, .. } => Some(fitness),
            _ => None,
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

#[test]
fn evolution_beats_random_on_average_over_seeds() {
    let seeds = 0..12u64;
    let mean = |strategy: Strategy| {
        seeds
            .clone()
            .map(|seed| best(&run(strategy, seed, 100, 1)))
            .sum::<f64>()
            / seeds.clone().count() as f64
    };
    let random = mean(Strategy::Random);
    let evolution = mean(Strategy::default());
    eprintln!("mean best-of-100 over 12 seeds: evolution {evolution:.3}, random {random:.3}");
    assert!(
        evolution > random,
        "mean best-of-100: evolution {evolution:.3} vs random {random:.3}"
    );
}

#[test]
fn a_seeded_run_replays_exactly() {
    for strategy in [Strategy::Random, Strategy::default()] {
        let hashes = |seed| -> Vec<String> {
            run(strategy, seed, 60, 3)
                .iter()
                .map(|e| e.architecture.canonical_hash())
                .collect()
        };
        assert_eq!(hashes(42), hashes(42), "{}", strategy.name());
        assert_ne!(hashes(42), hashes(43), "{}", strategy.name());
    }
}

#[test]
fn no_architecture_is_proposed_twice() {
    let history = run(Strategy::default(), 5, 150, 4);
    let mut hashes: Vec<String> = history
        .iter()
        .map(|e| e.architecture.canonical_hash())
        .collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), history.len());
}

#[test]
fn evolution_survives_a_history_of_only_failures() {
    let space = SearchSpace::preset("micro").expect("micro");
    let mut rng = seeded_rng(1);
    let strategy = Strategy::Evolution {
        population: 3,
        sample: 2,
    };
    let mut history = Vec::new();
    for _ in 0..5 {
        for p in propose(&strategy, &space, INPUT, 10, &history, 1, &mut rng).expect("proposes") {
            history.push(HistoryEntry::new(p.architecture, Outcome::Rejected));
        }
    }
    // All rejected: nothing to mutate, so it keeps sampling new candidates.
    assert_eq!(history.len(), 5);
}
