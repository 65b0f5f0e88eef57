//! `nas space sample`, `nas space show` and `nas space latency`.

use anyhow::Context;
use search::{sample as sample_space, seeded_rng, validate, SearchSpace};

use super::{arch::read_input, json_text, render_report};
use worker::latency::predict::Predictor;

use crate::cli::{SpaceLatencyArgs, SpaceSampleArgs, SpaceShowArgs, SpaceSource};

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

/// `nas space latency`: the batch-1 latency distribution of `--samples`
/// networks drawn from a space, measured on this machine as workers
/// measure trials, and the share within 0.5x-2x of `--target-ms`.
pub fn latency(args: &SpaceLatencyArgs) -> anyhow::Result<String> {
    let space = load(&args.source)?;
    let mut rng = seeded_rng(args.seed);
    let config = worker::latency::LatencyConfig {
        threads: args.threads,
        ..Default::default()
    };
    let timing = super::timing::Timing::from_args(&args.basis)?;
    let meter = timing.meter(config);
    let mut rows = Vec::with_capacity(usize::from(args.samples));
    let mut predictor = Predictor::new();
    let mut predictions = Vec::new();
    for i in 0..args.samples {
        let arch = sample_space(&space, args.input, args.classes, &mut rng)?;
        if i == args.fit && args.fit > 0 {
            predictor.fit();
        }
        let predicted = (i >= args.fit).then(|| predictor.predict(&arch)).flatten();
        let mut net = worker::net::Network::new(&arch, 0)?;
        let measured = worker::latency::measure_with(&mut net, &meter)?;
        if i < args.fit {
            predictor.observe(&arch, measured.p50);
        } else if let Some(p) = predicted {
            predictions.push((p, measured.p50, net.report().macs as f64));
        }
        rows.push((measured.p50, net.param_count()));
    }
    let mut latencies: Vec<f64> = rows.iter().map(|r| r.0).collect();
    latencies.sort_by(f64::total_cmp);
    let mut params: Vec<usize> = rows.iter().map(|r| r.1).collect();
    params.sort_unstable();
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let target = args.target_ms;
    let within = latencies
        .iter()
        .filter(|&&l| l >= target * 0.5 && l <= target * 2.0)
        .count();
    let summary = serde_json::json!({
        "space": space.name,
        "input": args.input.to_string(),
        "samples": args.samples,
        "threads": args.threads,
        "latency_ms": {
            "min": latencies[0], "p10": quantile(0.1), "p25": quantile(0.25), "p50": quantile(0.5),
            "p75": quantile(0.75), "p90": quantile(0.9), "max": quantile(1.0),
        },
        "params": {"min": params[0], "p50": params[params.len() / 2], "max": params[params.len() - 1]},
        "target_ms": target,
        "within_half_to_double_of_target": within as f64 / latencies.len() as f64,
        "predictor": prediction_errors(&predictions, args.fit),
    });
    json_text(&summary)
}

/// How the predictor did on the held-out networks (`predicted, measured,
/// MACs` each), beside a MACs-only baseline (measured = a + b MACs,
/// least squares on the same held-out set: the best any MACs-proportional
/// model could do).
fn prediction_errors(rows: &[(f64, f64, f64)], fitted_on: u16) -> serde_json::Value {
    if rows.is_empty() {
        return serde_json::Value::Null;
    }
    let summary = |errors: Vec<f64>| {
        let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        serde_json::json!({
            "within_10pct": abs.iter().filter(|e| **e <= 0.10).count() as f64 / abs.len() as f64,
            "within_20pct": abs.iter().filter(|e| **e <= 0.20).count() as f64 / abs.len() as f64,
            "median_abs_error": abs[abs.len() / 2],
            "worst_abs_error": abs[abs.len() - 1],
        })
    };
    let n = rows.len() as f64;
    let (mx, my) = (
        rows.iter().map(|r| r.2).sum::<f64>() / n,
        rows.iter().map(|r| r.1).sum::<f64>() / n,
    );
    let sxx: f64 = rows.iter().map(|r| (r.2 - mx).powi(2)).sum();
    let sxy: f64 = rows.iter().map(|r| (r.2 - mx) * (r.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = my - slope * mx;
    serde_json::json!({
        "fitted_on": fitted_on,
        "held_out": rows.len(),
        "per_layer_model": summary(rows.iter().map(|r| r.0 / r.1 - 1.0).collect()),
        "macs_only_baseline": summary(rows.iter().map(|r| (intercept + slope * r.2) / r.1 - 1.0).collect()),
    })
}
