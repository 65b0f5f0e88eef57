//! Genotypes: the decisions a search space makes for one candidate, how they
//! decode into an [`Architecture`], random sampling, and mutation.
//!
//! A genotype is a list of decisions: the stem's channels, per block an op, a
//! channel count and a kernel size, and the head's hidden units. Mutation
//! changes exactly one of them (or inserts or removes one block), the
//! neighbourhood regularized evolution explores.

use rand::seq::SliceRandom;
use rand::Rng;

use thiserror::Error;

use crate::arch::{Activation, Architecture, InputShape, Layer, Shortcut, ARCHITECTURE_VERSION};
use crate::build::{
    branches, conv, dense, dropout, flatten, global_avg_pool, max_pool, residual, se, separable,
};
pub use crate::genome::{BlockGene, Genotype};
use crate::space::{BlockOp, HeadPooling, SearchSpace, SpaceError};
use crate::validate::{validate, ValidationError};

/// Why sampling, decoding or mutating failed.
#[derive(Debug, Error)]
pub enum GenotypeError {
    /// The search space itself is invalid.
    #[error("invalid search space: {0}")]
    Space(#[from] SpaceError),
    /// The decoded network does not validate (a bug or an extreme input).
    #[error("decoded architecture is invalid: {0}")]
    Invalid(#[from] ValidationError),
    /// Mutation needs the genotype a search space recorded.
    #[error("the architecture has no genotype (it was not sampled from a search space), so it cannot be mutated")]
    NoGenotype,
    /// The space allows no neighbour (every decision has one choice).
    #[error("the search space allows no different neighbour of this architecture")]
    NoNeighbour,
}

fn block_layers(
    space: &SearchSpace,
    gene: &BlockGene,
    in_channels: usize,
    stride: usize,
) -> (Vec<Layer>, usize) {
    let act = space.activation;
    let bn = |c: crate::arch::Conv| if space.batch_norm { c.bn() } else { c };
    let k = gene.kernel;
    let c = gene.channels;
    match gene.op {
        BlockOp::Conv => (
            vec![bn(conv(c, k).stride(stride).same()).act(act).into()],
            c,
        ),
        BlockOp::Separable => {
            let s = separable(c, k).stride(stride).same();
            let s = if space.batch_norm { s.bn() } else { s };
            (vec![s.act(act).into()], c)
        }
        BlockOp::Se => (
            vec![
                bn(conv(c, k).stride(stride).same()).act(act).into(),
                se(space.se_reduction),
            ],
            c,
        ),
        BlockOp::Residual => {
            let shortcut = if stride == 1 && in_channels == c {
                Shortcut::Identity
            } else {
                Shortcut::Projection
            };
            let body = vec![
                bn(conv(c, k).stride(stride).same()).act(act).into(),
                bn(conv(c, k).same()).into(),
            ];
            (vec![residual(body, shortcut, act)], c)
        }
        BlockOp::Inception => {
            let b3 = (c / 2).max(1);
            let b5 = (c / 8).max(1);
            let bp = (c / 8).max(1);
            let b1 = c.saturating_sub(b3 + b5 + bp).max(1);
            let unit = |f: usize, k: usize| -> Layer { bn(conv(f, k).same()).act(act).into() };
            let mut layers = Vec::new();
            if stride > 1 {
                layers.push(max_pool(3, stride).same().into());
            }
            layers.push(branches(vec![
                vec![unit(b1, 1)],
                vec![unit((c / 4).max(1), 1), unit(b3, k)],
                vec![unit((c / 16).max(1), 1), unit(b5, k + 2)],
                vec![max_pool(3, 1).same().into(), unit(bp, 1)],
            ]));
            (layers, b1 + b3 + b5 + bp)
        }
        BlockOp::Pool => (vec![max_pool(k, stride).same().into()], in_channels),
    }
}

/// Turns a genotype into the network it describes, for an input and classes.
pub fn decode(
    space: &SearchSpace,
    genotype: &Genotype,
    input: InputShape,
    classes: usize,
) -> Result<Architecture, GenotypeError> {
    space.check()?;
    let act = space.activation;
    let stem = conv(genotype.stem_channels, space.stem.kernel)
        .stride(space.stem.stride)
        .same();
    let stem = if space.batch_norm { stem.bn() } else { stem };
    let mut layers: Vec<Layer> = vec![stem.act(act).into()];
    let mut channels = genotype.stem_channels;
    let downsample = space.downsample_indices(genotype.blocks.len());
    for (i, gene) in genotype.blocks.iter().enumerate() {
        let stride = if downsample.contains(&i) { 2 } else { 1 };
        let (block, out) = block_layers(space, gene, channels, stride);
        layers.extend(block);
        channels = out;
    }
    layers.push(match space.head.pooling {
        HeadPooling::GlobalAvg => global_avg_pool(),
        HeadPooling::Flatten => flatten(),
    });
    if genotype.head_hidden > 0 {
        layers.push(dense(genotype.head_hidden, act));
    }
    if space.head.dropout > 0.0 {
        layers.push(dropout(space.head.dropout));
    }
    layers.push(dense(classes, Activation::None));
    let arch = Architecture {
        version: ARCHITECTURE_VERSION,
        name: String::new(),
        input,
        classes,
        layers,
        genotype: Some(genotype.clone()),
    };
    validate(&arch)?;
    Ok(arch)
}

fn pick<R: Rng + ?Sized, T: Copy>(rng: &mut R, choices: &[T]) -> T {
    *choices
        .choose(rng)
        .expect("choice lists are checked non-empty by SearchSpace::check")
}

fn random_gene<R: Rng + ?Sized>(space: &SearchSpace, rng: &mut R) -> BlockGene {
    BlockGene {
        op: pick(rng, &space.ops),
        channels: pick(rng, &space.channels),
        kernel: pick(rng, &space.kernels),
    }
}

/// Draws a genotype uniformly: depth, then each decision independently.
pub fn sample_genotype<R: Rng + ?Sized>(space: &SearchSpace, rng: &mut R) -> Genotype {
    let depth = rng.gen_range(space.depth.min..=space.depth.max);
    Genotype {
        stem_channels: pick(rng, &space.stem.channels),
        blocks: (0..depth).map(|_| random_gene(space, rng)).collect(),
        head_hidden: pick(rng, &space.head.hidden),
    }
}

/// Samples a random architecture from a space. Always valid for a valid space.
pub fn sample<R: Rng + ?Sized>(
    space: &SearchSpace,
    input: InputShape,
    classes: usize,
    rng: &mut R,
) -> Result<Architecture, GenotypeError> {
    space.check()?;
    decode(space, &sample_genotype(space, rng), input, classes)
}

/// A neighbour produced by [`mutate`]: the architecture and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The mutated architecture (with its genotype).
    pub architecture: Architecture,
    /// The one decision that changed, e.g. `blocks[2].op: conv -> residual`.
    pub change: String,
}

/// The kinds of single-decision change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    Op,
    Channels,
    Kernel,
    Insert,
    Remove,
    Stem,
    Head,
}

fn other_choice<R: Rng + ?Sized, T: Copy + PartialEq>(
    rng: &mut R,
    choices: &[T],
    current: T,
) -> Option<T> {
    let others: Vec<T> = choices.iter().copied().filter(|c| *c != current).collect();
    others.choose(rng).copied()
}

/// Applies one random single-decision change to a genotype, or `None` when
/// the chosen move has no alternative here.
fn mutate_genotype<R: Rng + ?Sized>(
    space: &SearchSpace,
    g: &Genotype,
    rng: &mut R,
) -> Option<(Genotype, String)> {
    let moves = [
        Move::Op,
        Move::Channels,
        Move::Kernel,
        Move::Insert,
        Move::Remove,
        Move::Stem,
        Move::Head,
    ];
    let mv = pick(rng, &moves);
    let mut next = g.clone();
    let n = g.blocks.len();
    let change = match mv {
        Move::Op | Move::Channels | Move::Kernel => {
            if n == 0 {
                return None;
            }
            let i = rng.gen_range(0..n);
            let gene = &mut next.blocks[i];
            match mv {
                Move::Op => {
                    let op = other_choice(rng, &space.ops, gene.op)?;
                    let change = format!("blocks[{i}].op: {} -> {}", gene.op.name(), op.name());
                    gene.op = op;
                    change
                }
                Move::Channels => {
                    if !gene.op.has_channels() {
                        return None;
                    }
                    let c = other_choice(rng, &space.channels, gene.channels)?;
                    let change = format!("blocks[{i}].channels: {} -> {c}", gene.channels);
                    gene.channels = c;
                    change
                }
                _ => {
                    let k = other_choice(rng, &space.kernels, gene.kernel)?;
                    let change = format!("blocks[{i}].kernel: {} -> {k}", gene.kernel);
                    gene.kernel = k;
                    change
                }
            }
        }
        Move::Insert => {
            if n >= space.depth.max {
                return None;
            }
            let i = rng.gen_range(0..=n);
            let gene = random_gene(space, rng);
            next.blocks.insert(i, gene);
            format!("insert blocks[{i}]: {gene}")
        }
        Move::Remove => {
            if n <= space.depth.min || n == 0 {
                return None;
            }
            let i = rng.gen_range(0..n);
            let gene = next.blocks.remove(i);
            format!("remove blocks[{i}]: {gene}")
        }
        Move::Stem => {
            let c = other_choice(rng, &space.stem.channels, g.stem_channels)?;
            next.stem_channels = c;
            format!("stem_channels: {} -> {c}", g.stem_channels)
        }
        Move::Head => {
            let h = other_choice(rng, &space.head.hidden, g.head_hidden)?;
            next.head_hidden = h;
            format!("head_hidden: {} -> {h}", g.head_hidden)
        }
    };
    Some((next, change))
}

/// How many random moves [`mutate`] tries before concluding that the space
/// allows no neighbour.
const MUTATION_ATTEMPTS: usize = 64;

/// Returns a valid neighbour of `arch` that differs in exactly one decision
/// (an op, a channel count, a kernel size, the stem or head width, or one
/// block inserted or removed) and describes a different network.
pub fn mutate<R: Rng + ?Sized>(
    space: &SearchSpace,
    arch: &Architecture,
    rng: &mut R,
) -> Result<Mutation, GenotypeError> {
    space.check()?;
    let genotype = arch.genotype.as_ref().ok_or(GenotypeError::NoGenotype)?;
    let original = arch.canonical_hash();
    for _ in 0..MUTATION_ATTEMPTS {
        let Some((next, change)) = mutate_genotype(space, genotype, rng) else {
            continue;
        };
        let candidate = decode(space, &next, arch.input, arch.classes)?;
        if candidate.canonical_hash() != original {
            return Ok(Mutation {
                architecture: candidate,
                change,
            });
        }
    }
    Err(GenotypeError::NoNeighbour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn samples_are_valid_and_carry_their_genotype() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for name in crate::space::PRESETS {
            let space = SearchSpace::preset(name).expect("preset");
            for _ in 0..50 {
                let arch = sample(&space, InputShape::new(1, 28, 28), 10, &mut rng).expect("valid");
                let g = arch.genotype.as_ref().expect("genotype");
                assert!((space.depth.min..=space.depth.max).contains(&g.blocks.len()));
            }
        }
    }

    #[test]
    fn residual_blocks_project_only_when_needed() {
        let space = SearchSpace::preset("micro").expect("micro");
        let g = Genotype {
            stem_channels: 4,
            blocks: vec![
                BlockGene {
                    op: BlockOp::Residual,
                    channels: 4,
                    kernel: 3,
                },
                BlockGene {
                    op: BlockOp::Residual,
                    channels: 8,
                    kernel: 3,
                },
            ],
            head_hidden: 0,
        };
        let arch = decode(&space, &g, InputShape::new(1, 8, 8), 2).expect("valid");
        let shortcuts: Vec<Shortcut> = arch
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Residual(r) => Some(r.shortcut),
                _ => None,
            })
            .collect();
        // Block 1 downsamples (0.5 * 2) and widens: projection.
        assert_eq!(shortcuts, vec![Shortcut::Identity, Shortcut::Projection]);
    }

    #[test]
    fn mutation_needs_a_genotype() {
        let space = SearchSpace::preset("micro").expect("micro");
        let arch = crate::zoo::build("lenet5", InputShape::new(1, 28, 28), 10, 1.0).expect("zoo");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(matches!(
            mutate(&space, &arch, &mut rng),
            Err(GenotypeError::NoGenotype)
        ));
    }

    #[test]
    fn a_space_with_one_network_has_no_neighbour() {
        let mut space = SearchSpace::preset("micro").expect("micro");
        space.ops = vec![BlockOp::Conv];
        space.channels = vec![4];
        space.depth.max = 1;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let arch = sample(&space, InputShape::new(1, 8, 8), 2, &mut rng).expect("valid");
        assert!(matches!(
            mutate(&space, &arch, &mut rng),
            Err(GenotypeError::NoNeighbour)
        ));
    }
}
