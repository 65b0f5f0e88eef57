//! Strategies: pure functions from (space, history, how many, seeded RNG) to
//! new candidates.
//!
//! - `random`: uniform samples from the space.
//! - `evolution`: regularized (aging) evolution, Real et al. 2019. The
//!   population is the `population` most recently finished successful trials
//!   (so the oldest dies as new ones finish); each child is a single-decision
//!   mutation of the best of `sample` members drawn at random. Until the
//!   population is full, candidates are random, as in the paper. Under a
//!   multi-fidelity scheduler "best" is best-informed: the highest rung
//!   reached, then fitness ([`crate::fidelity::best_informed_key`]), so a
//!   lucky one-epoch score does not outrank a network proven over 27.
//!   Under a Pareto objective (results carry [`Costs`]), "best" among
//!   members of the same rung is NSGA-II's: the lower non-dominated front
//!   among those members, then the larger crowding distance.
//!
//! Failed and rejected trials stay in the history: they are never proposed
//! again, but they are not members of the population (they have no fitness).
//! No strategy proposes an architecture already in the history or twice in one
//! call (by [canonical hash](crate::Architecture::canonical_hash)); when the
//! space is exhausted a strategy proposes fewer candidates than asked.

use std::cmp::Ordering;
use std::collections::HashSet;

use rand::seq::index::sample as sample_indices;
use rand::Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::arch::{Architecture, InputShape};
use crate::genotype::{mutate, sample, GenotypeError};
use crate::pareto::{self, Costs, Standing};
use crate::space::SearchSpace;

fn default_population() -> usize {
    20
}
fn default_sample() -> usize {
    5
}

/// A search strategy and its settings. JSON: `{"kind": "random"}` or
/// `{"kind": "evolution", "population": 20, "sample": 5}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Uniform random sampling.
    Random,
    /// Regularized (aging) evolution.
    Evolution {
        /// Population size `P` (default 20).
        #[serde(default = "default_population")]
        population: usize,
        /// Tournament size `S` (default 5).
        #[serde(default = "default_sample")]
        sample: usize,
    },
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::Evolution {
            population: default_population(),
            sample: default_sample(),
        }
    }
}

impl Strategy {
    /// The strategy's name (`random`, `evolution`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::Evolution { .. } => "evolution",
        }
    }

    /// Checks the settings; errors name the field.
    pub fn check(&self) -> Result<(), StrategyError> {
        if let Strategy::Evolution { population, sample } = *self {
            if population < 2 {
                return Err(StrategyError::Setting(
                    "population must be at least 2".into(),
                ));
            }
            if sample < 1 || sample > population {
                return Err(StrategyError::Setting(
                    "sample must be between 1 and population".into(),
                ));
            }
        }
        Ok(())
    }
}

/// How a finished (or still open) trial ended, as strategies see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Queued or running: not to be proposed again, no fitness yet.
    Pending,
    /// Trained and scored; higher fitness is better. Under a multi-fidelity
    /// scheduler the trial may still be training towards a higher rung (or
    /// have been stopped early): `rung` says how far its fitness is informed.
    Succeeded {
        /// The objective's reward at the highest rung reached.
        fitness: f64,
        /// The index of the highest rung reached (0 without a scheduler).
        rung: u32,
        /// Under a Pareto objective, its costs at that rung (each
        /// minimised): parents are then chosen by dominance.
        costs: Option<Costs>,
    },
    /// Crashed, diverged or timed out.
    Failed,
    /// Rejected before training (e.g. over the hard latency limit).
    Rejected,
}

/// One trial of the search so far, in the order trials finished.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The trial's architecture (with its genotype, for mutation).
    pub architecture: Architecture,
    /// Its [canonical hash](Architecture::canonical_hash), computed once.
    pub hash: String,
    /// How it ended.
    pub outcome: Outcome,
}

impl HistoryEntry {
    /// An entry for `architecture`, hashing it.
    pub fn new(architecture: Architecture, outcome: Outcome) -> Self {
        let hash = architecture.canonical_hash();
        Self::with_hash(architecture, hash, outcome)
    }

    /// An entry whose canonical hash is already known (stored with the trial).
    pub fn with_hash(architecture: Architecture, hash: String, outcome: Outcome) -> Self {
        Self {
            architecture,
            hash,
            outcome,
        }
    }
}

/// A candidate proposed by a strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The architecture to train.
    pub architecture: Architecture,
    /// The history index of the parent it was mutated from, if any.
    pub parent: Option<usize>,
    /// What the mutation changed, if any.
    pub change: Option<String>,
}

/// Why a strategy could not propose.
#[derive(Debug, Error)]
pub enum StrategyError {
    /// A strategy setting is out of range.
    #[error("strategy: {0}")]
    Setting(String),
    /// Sampling or mutation failed (an invalid space).
    #[error(transparent)]
    Genotype(#[from] GenotypeError),
}

/// How many draws a strategy makes for one slot before it concludes that the
/// space has no new architecture left.
const ATTEMPTS_PER_PROPOSAL: usize = 200;

/// Proposes up to `count` new, distinct architectures.
pub fn propose<R: Rng + ?Sized>(
    strategy: &Strategy,
    space: &SearchSpace,
    input: InputShape,
    classes: usize,
    history: &[HistoryEntry],
    count: usize,
    rng: &mut R,
) -> Result<Vec<Proposal>, StrategyError> {
    let mut seen: HashSet<String> = history.iter().map(|e| e.hash.clone()).collect();
    propose_unseen(
        strategy, space, input, classes, history, &mut seen, count, rng, None,
    )
}

/// Draws of one proposal a screen may turn down; the last draw is kept
/// whatever the screen says (the worker measures it, or refuses it).
pub const MAX_SCREENED_DRAWS: usize = 8;

/// Judges a candidate before it is queued (a worker's latency predictor,
/// say): `false` asks the strategy for another draw, up to
/// [`MAX_SCREENED_DRAWS`] per proposal.
pub type Screen<'a> = &'a dyn Fn(&Architecture) -> bool;

/// [`propose`] for callers that keep the set of canonical hashes already
/// tried (`seen`, which must cover `history`) between calls, so a proposal
/// costs nothing per past trial; the proposals' hashes are added to it.
/// With a `screen`, a proposal it turns down is drawn again (see
/// [`MAX_SCREENED_DRAWS`]).
#[allow(clippy::too_many_arguments)]
pub fn propose_unseen<R: Rng + ?Sized>(
    strategy: &Strategy,
    space: &SearchSpace,
    input: InputShape,
    classes: usize,
    history: &[HistoryEntry],
    seen: &mut HashSet<String>,
    count: usize,
    rng: &mut R,
    screen: Option<Screen<'_>>,
) -> Result<Vec<Proposal>, StrategyError> {
    strategy.check()?;
    space.check().map_err(GenotypeError::from)?;
    let mut proposals: Vec<Proposal> = Vec::with_capacity(count);
    for _ in 0..count {
        let draw = Draw {
            strategy,
            space,
            input,
            classes,
            history,
            queued: proposals.len(),
        };
        let mut proposal = draw.one(seen, rng)?;
        if let Some(screen) = screen {
            let mut draws = 1;
            while draws < MAX_SCREENED_DRAWS
                && proposal.as_ref().is_some_and(|p| !screen(&p.architecture))
            {
                proposal = draw.one(seen, rng)?;
                draws += 1;
            }
        }
        let Some(proposal) = proposal else {
            break;
        };
        seen.insert(proposal.architecture.canonical_hash());
        proposals.push(proposal);
    }
    Ok(proposals)
}

/// What one proposal is drawn from.
struct Draw<'a> {
    strategy: &'a Strategy,
    space: &'a SearchSpace,
    input: InputShape,
    classes: usize,
    history: &'a [HistoryEntry],
    /// Proposals already made in this call.
    queued: usize,
}

impl Draw<'_> {
    /// One new candidate (`None`: the strategy has nothing new to offer).
    fn one<R: Rng + ?Sized>(
        &self,
        seen: &HashSet<String>,
        rng: &mut R,
    ) -> Result<Option<Proposal>, StrategyError> {
        let (space, input, classes) = (self.space, self.input, self.classes);
        match self.strategy {
            Strategy::Random => random_unseen(space, input, classes, seen, rng),
            Strategy::Evolution { population, sample } => {
                // Slots already filled (or being filled) towards the initial population.
                let alive = self
                    .history
                    .iter()
                    .filter(|e| matches!(e.outcome, Outcome::Pending | Outcome::Succeeded { .. }))
                    .count()
                    + self.queued;
                let members = population_members(self.history, *population);
                if alive < *population || members.is_empty() {
                    random_unseen(space, input, classes, seen, rng)
                } else {
                    match evolve(space, self.history, &members, *sample, seen, rng)? {
                        Some(p) => Ok(Some(p)),
                        // Every neighbour tried is known: fall back to a fresh sample.
                        None => random_unseen(space, input, classes, seen, rng),
                    }
                }
            }
        }
    }
}

fn random_unseen<R: Rng + ?Sized>(
    space: &SearchSpace,
    input: InputShape,
    classes: usize,
    seen: &HashSet<String>,
    rng: &mut R,
) -> Result<Option<Proposal>, StrategyError> {
    for _ in 0..ATTEMPTS_PER_PROPOSAL {
        let architecture = sample(space, input, classes, rng)?;
        if !seen.contains(&architecture.canonical_hash()) {
            return Ok(Some(Proposal {
                architecture,
                parent: None,
                change: None,
            }));
        }
    }
    Ok(None)
}

/// The history indices of the `population` most recently finished successful
/// trials with a finite fitness and a genotype, oldest first.
fn population_members(history: &[HistoryEntry], population: usize) -> Vec<usize> {
    let mut members: Vec<usize> = history
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, e)| {
            matches!(e.outcome, Outcome::Succeeded { fitness, .. } if fitness.is_finite())
                && e.architecture.genotype.is_some()
        })
        .map(|(i, _)| i)
        .take(population)
        .collect();
    members.reverse();
    members
}

/// A member's [best-informed](crate::fidelity::best_informed_key) standing:
/// highest rung reached, then fitness.
fn standing(entry: &HistoryEntry) -> (u32, f64) {
    match entry.outcome {
        Outcome::Succeeded { fitness, rung, .. } => {
            crate::fidelity::best_informed_key(rung, fitness)
        }
        _ => (0, f64::NEG_INFINITY),
    }
}

/// Under a Pareto objective (every member has costs), each member's
/// NSGA-II standing among the members that reached the same rung, by
/// history index; `None` otherwise.
fn dominance_standings(
    history: &[HistoryEntry],
    members: &[usize],
) -> Option<std::collections::HashMap<usize, Standing>> {
    let costs: Vec<(usize, u32, Costs)> = members
        .iter()
        .map(|&i| match history[i].outcome {
            Outcome::Succeeded {
                rung,
                costs: Some(c),
                ..
            } => Some((i, rung, c)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut out = std::collections::HashMap::with_capacity(costs.len());
    let mut rungs: Vec<u32> = costs.iter().map(|&(_, r, _)| r).collect();
    rungs.sort_unstable();
    rungs.dedup();
    for rung in rungs {
        let group: Vec<&(usize, u32, Costs)> = costs.iter().filter(|c| c.1 == rung).collect();
        let points: Vec<Costs> = group.iter().map(|c| c.2).collect();
        for (member, standing) in group.iter().zip(pareto::standings(&points)) {
            out.insert(member.0, standing);
        }
    }
    Some(out)
}

fn evolve<R: Rng + ?Sized>(
    space: &SearchSpace,
    history: &[HistoryEntry],
    members: &[usize],
    tournament: usize,
    seen: &HashSet<String>,
    rng: &mut R,
) -> Result<Option<Proposal>, StrategyError> {
    let dominance = dominance_standings(history, members);
    for _ in 0..ATTEMPTS_PER_PROPOSAL {
        let drawn = sample_indices(rng, members.len(), tournament.min(members.len()));
        // The best-informed of the sample (highest rung, then fitness, or
        // under a Pareto objective front and crowding); among equals, the
        // youngest.
        let parent = drawn.iter().map(|k| members[k]).max_by(|&a, &b| {
            let ((rung_a, fit_a), (rung_b, fit_b)) = (standing(&history[a]), standing(&history[b]));
            let within_rung = match &dominance {
                Some(d) => match (d.get(&a), d.get(&b)) {
                    (Some(sa), Some(sb)) => pareto::compare(sb, sa),
                    _ => Ordering::Equal,
                },
                None => fit_a.total_cmp(&fit_b),
            };
            rung_a.cmp(&rung_b).then(within_rung).then(a.cmp(&b))
        });
        let Some(parent) = parent else {
            return Ok(None);
        };
        let child = match mutate(space, &history[parent].architecture, rng) {
            Ok(child) => child,
            Err(GenotypeError::NoNeighbour) => continue,
            Err(e) => return Err(e.into()),
        };
        if !seen.contains(&child.architecture.canonical_hash()) {
            return Ok(Some(Proposal {
                architecture: child.architecture,
                parent: Some(parent),
                change: Some(child.change),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const INPUT: InputShape = InputShape::new(1, 28, 28);

    #[test]
    fn a_screen_draws_again_up_to_its_bound_and_keeps_what_it_accepts() {
        let space = SearchSpace::preset("small").expect("preset");
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut screened = |count: usize, screen: Screen<'_>| {
            let mut seen = HashSet::new();
            propose_unseen(
                &Strategy::Random,
                &space,
                INPUT,
                10,
                &[],
                &mut seen,
                count,
                &mut rng,
                Some(screen),
            )
            .expect("ok")
        };
        // Accept about half the networks (by their hash).
        let half = |a: &Architecture| a.canonical_hash().as_bytes()[0].is_multiple_of(2);
        let got = screened(6, &half);
        assert_eq!(got.len(), 6);
        assert!(got.iter().all(|p| half(&p.architecture)), "screened draws");
        // A screen that accepts nothing costs MAX_SCREENED_DRAWS draws per
        // proposal and still proposes.
        let calls = std::cell::Cell::new(0);
        let never = |_: &Architecture| {
            calls.set(calls.get() + 1);
            false
        };
        assert_eq!(screened(3, &never).len(), 3);
        assert_eq!(calls.get(), 3 * (MAX_SCREENED_DRAWS - 1));
    }

    #[test]
    fn strategy_json_and_checks() {
        let s: Strategy = serde_json::from_str(r#"{"kind":"evolution"}"#).expect("parses");
        assert_eq!(s, Strategy::default());
        let s: Strategy = serde_json::from_str(r#"{"kind":"random"}"#).expect("parses");
        assert_eq!(s, Strategy::Random);
        let s = Strategy::Evolution {
            population: 4,
            sample: 5,
        };
        assert!(s.check().is_err());
        assert!(serde_json::from_str::<Strategy>(r#"{"kind":"annealing"}"#).is_err());
    }

    #[test]
    fn random_proposals_are_distinct_and_exhaust_tiny_spaces() {
        let mut space = SearchSpace::preset("micro").expect("micro");
        space.ops = vec![crate::space::BlockOp::Conv];
        space.depth.max = 1;
        // Exactly two networks: one block of 4 or 8 channels.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let got = propose(&Strategy::Random, &space, INPUT, 10, &[], 5, &mut rng).expect("ok");
        assert_eq!(got.len(), 2);
        assert_ne!(
            got[0].architecture.canonical_hash(),
            got[1].architecture.canonical_hash()
        );
        let history: Vec<HistoryEntry> = got
            .into_iter()
            .map(|p| HistoryEntry::new(p.architecture, Outcome::Failed))
            .collect();
        let more =
            propose(&Strategy::Random, &space, INPUT, 10, &history, 5, &mut rng).expect("ok");
        assert!(more.is_empty(), "failed trials must not be proposed again");
    }

    #[test]
    fn evolution_is_random_until_the_population_is_full_then_mutates_the_best() {
        let space = SearchSpace::preset("mobile").expect("mobile");
        let strategy = Strategy::Evolution {
            population: 4,
            sample: 4,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let first = propose(&strategy, &space, INPUT, 10, &[], 6, &mut rng).expect("ok");
        assert_eq!(first.len(), 6);
        assert!(first.iter().all(|p| p.parent.is_none()));
        let history: Vec<HistoryEntry> = first
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                HistoryEntry::new(
                    p.architecture,
                    // The most recent four are the population; index 3 is the fittest.
                    match i {
                        3 => Outcome::Succeeded {
                            fitness: 0.9,
                            rung: 0,
                            costs: None,
                        },
                        5 => Outcome::Rejected,
                        _ => Outcome::Succeeded {
                            rung: 0,
                            fitness: 0.1 * i as f64,
                            costs: None,
                        },
                    },
                )
            })
            .collect();
        let next = propose(&strategy, &space, INPUT, 10, &history, 3, &mut rng).expect("ok");
        assert_eq!(next.len(), 3);
        for p in &next {
            // Tournament of the whole population (S = P): always the best.
            assert_eq!(p.parent, Some(3));
            assert!(p.change.is_some());
        }
    }

    /// Under a multi-fidelity scheduler the parent is the best-informed
    /// member: a higher rung beats a higher reward from a lower rung.
    #[test]
    fn evolution_prefers_the_highest_rung_then_the_reward() {
        let space = SearchSpace::preset("mobile").expect("mobile");
        let strategy = Strategy::Evolution {
            population: 4,
            sample: 4,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let first = propose(&strategy, &space, INPUT, 10, &[], 4, &mut rng).expect("ok");
        let outcomes = [
            (0.95, 0), // lucky after one epoch
            (0.80, 2), // proven over the most epochs, lower reward
            (0.70, 2),
            (0.90, 1),
        ];
        let history: Vec<HistoryEntry> = first
            .into_iter()
            .zip(outcomes)
            .map(|(p, (fitness, rung))| {
                HistoryEntry::new(
                    p.architecture,
                    Outcome::Succeeded {
                        fitness,
                        rung,
                        costs: None,
                    },
                )
            })
            .collect();
        let next = propose(&strategy, &space, INPUT, 10, &history, 3, &mut rng).expect("ok");
        assert!(
            next.iter().all(|p| p.parent == Some(1)),
            "{:?}",
            next.iter().map(|p| p.parent).collect::<Vec<_>>()
        );
    }

    /// Under a Pareto objective the parent is chosen by NSGA-II among the
    /// members of the highest rung: the non-dominated one wins even with a
    /// lower reward, and a higher rung still comes first.
    #[test]
    fn pareto_evolution_chooses_parents_by_front_within_the_highest_rung() {
        let space = SearchSpace::preset("mobile").expect("mobile");
        let strategy = Strategy::Evolution {
            population: 5,
            sample: 5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let first = propose(&strategy, &space, INPUT, 10, &[], 5, &mut rng).expect("ok");
        // (reward, rung, accuracy, latency)
        let outcomes = [
            (0.99, 0, 0.99, 0.01), // dominates everything, but at rung 0
            (0.90, 1, 0.90, 1.00), // dominated by [3]
            (0.95, 1, 0.85, 0.90), // dominated by [3] (higher reward, a worse point)
            (0.20, 1, 0.91, 0.50), // non-dominated at rung 1, alone on its front
            (0.80, 1, 0.80, 2.00), // dominated
        ];
        let history: Vec<HistoryEntry> = first
            .into_iter()
            .zip(outcomes)
            .map(|(p, (fitness, rung, accuracy, latency))| {
                HistoryEntry::new(
                    p.architecture,
                    Outcome::Succeeded {
                        fitness,
                        rung,
                        costs: Some(Costs::new(&[-accuracy, latency])),
                    },
                )
            })
            .collect();
        let next = propose(&strategy, &space, INPUT, 10, &history, 3, &mut rng).expect("ok");
        assert!(
            next.iter().all(|p| p.parent == Some(3)),
            "{:?}",
            next.iter().map(|p| p.parent).collect::<Vec<_>>()
        );
    }
}
