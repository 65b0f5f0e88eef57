//! `nas space sample` and `nas space show`.

use anyhow::Context;
use search::{sample as sample_space, seeded_rng, validate, SearchSpace};

use super::{arch::read_input, json_text, render_report};
use crate::cli::{SpaceSampleArgs, SpaceShowArgs, SpaceSource};

/// Loads the space a command names: a JSON file, or a preset.
pub fn load(source: &SpaceSource) -> anyhow::Result<SearchSpace> {
    match &source.space {
        Some(path) => {
            let text = read_input(path)?;
            SearchSpace::from_json(&text).with_context(|| path.display().to_string())
        }
        None => Ok(SearchSpace::preset(&source.preset)?),
    }
}

/// `nas space sample --preset P --seed S [--input HxWxC] [--classes N] [--json]`.
pub fn sample(args: &SpaceSampleArgs) -> anyhow::Result<String> {
    let space = load(&args.source)?;
    let mut rng = seeded_rng(args.seed);
    let arch = sample_space(&space, args.input, args.classes, &mut rng)?;
    if args.json {
        return Ok(arch.to_json_pretty() + "\n");
    }
    let report = validate(&arch)?;
    let genotype = arch
        .genotype
        .as_ref()
        .map(|g| format!("genotype: {}\n", g.summary()))
        .unwrap_or_default();
    Ok(format!(
        "space {} seed {}\n{genotype}hash {}\n{}",
        space.name,
        args.seed,
        arch.canonical_hash(),
        render_report(&arch, &report)
    ))
}

/// `nas space show PRESET`: the preset as JSON.
pub fn show(args: &SpaceShowArgs) -> anyhow::Result<String> {
    json_text(&SearchSpace::preset(&args.preset)?)
}
