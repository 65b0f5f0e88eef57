//! `nas arch check FILE`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use search::{validate, Architecture};

use super::{json_text, render_report};
use crate::cli::ArchCheckArgs;

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `nas arch check FILE [--json]`: parse, validate, print the report.
pub fn check(args: &ArchCheckArgs) -> anyhow::Result<String> {
    let text = read_input(&args.file)?;
    let arch = Architecture::from_json(&text).with_context(|| args.file.display().to_string())?;
    let report = validate(&arch)
        .with_context(|| format!("{}: invalid architecture", args.file.display()))?;
    if args.json {
        return json_text(&report);
    }
    Ok(render_report(&arch, &report))
}
