//! `nas calibrate`: this machine's speed factor against the reference
//! device, from the reference networks' latency (what a worker measures
//! when it starts; see `worker::latency::calibrate`).

use serde_json::json;
use worker::latency::calibrate::{calibrate, speed_factor, Calibration, REFERENCE_SET};
use worker::latency::LatencyConfig;

use super::timing::Timing;

use crate::cli::CalibrateArgs;
use crate::table::{Align, Table};

/// The median of `values` (not empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Calibrates `--repeat` times; prints each network's median p50 against
/// the reference device's, the factor of each run, and the factor of the
/// medians.
pub fn run(args: &CalibrateArgs) -> anyhow::Result<String> {
    let config = LatencyConfig {
        threads: args.threads,
        ..args.protocol.config()
    };
    let timing = Timing::from_args(&args.basis)?;
    let meter = timing.meter(config);
    let runs: Vec<Calibration> = (0..args.repeat)
        .map(|_| calibrate(&meter))
        .collect::<Result<_, _>>()?;
    let rows: Vec<(String, f64, f64)> = REFERENCE_SET
        .iter()
        .enumerate()
        .map(|(i, reference)| {
            let mut p50s: Vec<f64> = runs.iter().map(|r| r.points[i].p50_ms).collect();
            (
                reference.label(),
                median(&mut p50s),
                reference.reference_p50_ms,
            )
        })
        .collect();
    let pairs: Vec<(f64, f64)> = rows.iter().map(|(_, p50, r)| (*p50, *r)).collect();
    let factor = speed_factor(&pairs).unwrap_or(1.0);
    let factors: Vec<f64> = runs.iter().map(|r| r.speed_factor).collect();
    if args.json {
        let networks: Vec<_> = rows
            .iter()
            .map(|(network, p50, reference)| {
                json!({"network": network, "p50_ms": p50, "reference_p50_ms": reference})
            })
            .collect();
        let out = json!({
            "speed_factor": factor,
            "run_factors": factors,
            "threads": args.threads,
            "networks": networks,
        });
        return Ok(format!("{out}\n"));
    }
    let mut table = Table::new(&[
        ("network", Align::Left),
        ("p50 here", Align::Right),
        ("reference", Align::Right),
        ("ratio", Align::Right),
    ]);
    for (network, p50, reference) in &rows {
        table.row(vec![
            network.clone(),
            format!("{p50:.3} ms"),
            format!("{reference:.3} ms"),
            format!("{:.2}", p50 / reference),
        ]);
    }
    let each = factors
        .iter()
        .map(|f| format!("{f:.3}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "{}speed factor {factor:.3} (latency here / on the reference device; each run: {each})\n",
        table.render()
    ))
}
