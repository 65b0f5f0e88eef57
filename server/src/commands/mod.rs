//! One module per command family; each returns the text to print.

pub mod arch;
pub mod bench_api;
pub mod bench_queue;
pub mod bench_search;
pub mod calibrate;
pub mod client;
pub mod dataset;
pub mod queue;
pub mod serve;
pub mod space;
pub mod timing;
pub mod train;
pub mod up;
pub mod worker;
pub mod worker_health;
pub mod zoo;

use search::{Architecture, Report};

use crate::table::{human, thousands, Align, Table};

/// A Keras-summary-like table of an architecture: layer path, kind, output
/// shape, params and MACs, then the totals.
pub fn render_report(arch: &Architecture, report: &Report) -> String {
    let mut table = Table::new(&[
        ("layer", Align::Left),
        ("kind", Align::Left),
        ("output", Align::Left),
        ("params", Align::Right),
        ("MACs", Align::Right),
    ]);
    for row in &report.layers {
        table.row(vec![
            format!("{}{}", "  ".repeat(row.depth), row.path),
            row.kind.to_owned(),
            row.output.to_string(),
            thousands(row.params),
            thousands(row.macs),
        ]);
    }
    let title = if arch.name.is_empty() {
        String::new()
    } else {
        format!("{}\n", arch.name)
    };
    format!(
        "{title}input {}, {} classes\n{}\ntotal params: {}\ntotal MACs:   {} ({})\npeak activations (batch 1, f32): {} bytes\n",
        arch.input,
        arch.classes,
        table.render(),
        thousands(report.params),
        thousands(report.macs),
        human(report.macs),
        thousands(report.peak_activation_bytes),
    )
}

/// Pretty JSON of a serialisable value, newline-terminated.
pub fn json_text<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}
