//! `nas arch check FILE` and `nas arch onnx FILE --weights W`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use search::{validate, Architecture};

use super::{json_text, render_report};
use crate::cli::{ArchCheckArgs, ArchOnnxArgs};

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

/// `nas arch onnx FILE --weights W [--out model.onnx]`: the trained network
/// as an ONNX model.
pub fn onnx(args: &ArchOnnxArgs) -> anyhow::Result<String> {
    let text = read_input(&args.file)?;
    let arch = Architecture::from_json(&text).with_context(|| args.file.display().to_string())?;
    let mut net = worker::net::Network::new(&arch, 0)
        .with_context(|| format!("{}: invalid architecture", args.file.display()))?;
    if let Some(weights) = &args.weights {
        worker::weights::load(&mut net, weights)?;
    }
    let model = worker::onnx::to_onnx(&net, &[])?;
    std::fs::write(&args.out, &model).with_context(|| format!("writing {}", args.out.display()))?;
    let input = match net.input_normalization() {
        Some(_) => format!(
            "`{}` (raw pixels 0-255, N x {} x {} x {})",
            worker::onnx::PIXELS,
            arch.input.channels,
            arch.input.height,
            arch.input.width
        ),
        None => format!(
            "`{}` (normalised pixels: these weights do not record their normalisation)",
            worker::onnx::NORMALISED
        ),
    };
    Ok(format!(
        "{}: ONNX opset {}, {} bytes; input {input}, output `{}` ({} classes)\n",
        args.out.display(),
        worker::onnx::OPSET,
        model.len(),
        worker::onnx::LOGITS,
        arch.classes
    ))
}
