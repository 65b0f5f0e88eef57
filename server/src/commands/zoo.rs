//! `nas zoo list` and `nas zoo show`.

use anyhow::Context;
use search::validate;
use search::zoo::{self, ZOO};
use serde::Serialize;

use super::{json_text, render_report};
use crate::cli::{ZooListArgs, ZooShowArgs};
use crate::table::{human, thousands, Align, Table};

/// One row of `nas zoo list --json`.
#[derive(Debug, Serialize)]
pub struct ZooRow {
    /// Entry name.
    pub name: &'static str,
    /// Title and source.
    pub title: &'static str,
    /// Published input as `[c, h, w]`.
    pub input: [usize; 3],
    /// Published number of classes.
    pub classes: usize,
    /// Trainable parameters at the published input.
    pub params: u64,
    /// Multiply-accumulates for one image at the published input.
    pub macs: u64,
}

/// The zoo at each entry's published input and classes.
pub fn rows() -> anyhow::Result<Vec<ZooRow>> {
    ZOO.iter()
        .map(|entry| {
            let arch = entry.published()?;
            let report = validate(&arch).with_context(|| format!("zoo entry {}", entry.name))?;
            Ok(ZooRow {
                name: entry.name,
                title: entry.title,
                input: arch.input.into(),
                classes: arch.classes,
                params: report.params,
                macs: report.macs,
            })
        })
        .collect()
}

/// `nas zoo list [--json]`.
pub fn list(args: &ZooListArgs) -> anyhow::Result<String> {
    let rows = rows()?;
    if args.json {
        return json_text(&rows);
    }
    let mut table = Table::new(&[
        ("name", Align::Left),
        ("input", Align::Left),
        ("classes", Align::Right),
        ("params", Align::Right),
        ("MACs", Align::Right),
        ("architecture", Align::Left),
    ]);
    for r in rows {
        let [c, h, w] = r.input;
        table.row(vec![
            r.name.to_owned(),
            format!("{h}x{w}x{c}"),
            r.classes.to_string(),
            thousands(r.params),
            human(r.macs),
            r.title.to_owned(),
        ]);
    }
    Ok(table.render())
}

/// `nas zoo show NAME [--input HxWxC] [--classes N] [--width W] [--json]`.
pub fn show(args: &ZooShowArgs) -> anyhow::Result<String> {
    let entry = zoo::entry(&args.name)?;
    let input = args.input.unwrap_or(entry.published_input);
    let classes = args.classes.unwrap_or(entry.published_classes);
    let arch = entry.build(input, classes, args.width)?;
    if args.json {
        return Ok(arch.to_json_pretty() + "\n");
    }
    let report = validate(&arch)?;
    Ok(render_report(&arch, &report))
}
