//! Short text for people: a label per layer (architecture diagrams, layer
//! tables) and a one-line summary of a network's blocks (leaderboards).
//! Computed from the typed [`Architecture`], so the dashboard and the CLI
//! never interpret architecture JSON themselves.

use crate::arch::{Architecture, Layer, Pair, PoolOp, Shortcut};

fn size(p: Pair) -> String {
    format!("{}×{}", p.h(), p.w())
}

fn stride(p: Pair) -> String {
    if p == Pair::Square(1) {
        String::new()
    } else {
        format!(", /{p}")
    }
}

/// A short label of one layer, e.g. `conv 3×3, 16, /2` or `SE gate /4`.
pub fn layer_label(layer: &Layer) -> String {
    match layer {
        Layer::Conv(c) => {
            let groups = if c.groups > 1 {
                format!(", g{}", c.groups)
            } else {
                String::new()
            };
            format!(
                "conv {}, {}{}{groups}",
                size(c.kernel),
                c.filters,
                stride(c.stride)
            )
        }
        Layer::SeparableConv(s) => format!(
            "sep conv {}, {}{}",
            size(s.kernel),
            s.filters,
            stride(s.stride)
        ),
        Layer::Pool(p) => {
            let op = match p.op {
                PoolOp::Max => "max",
                PoolOp::Avg => "avg",
            };
            format!("{op} pool {}{}", size(p.kernel), stride(p.stride))
        }
        Layer::Dense(d) => format!("dense {}", d.units),
        Layer::Se(se) => format!("SE gate /{}", se.reduction),
        Layer::Dropout(d) => format!("dropout {}", d.rate),
        Layer::Activation(a) => a.function.name().to_owned(),
        Layer::Residual(r) => match r.shortcut {
            Shortcut::Identity => "residual, identity shortcut".to_owned(),
            Shortcut::Projection => "residual, projection shortcut".to_owned(),
        },
        Layer::Branches(b) => format!("{} branches, concatenated", b.branches.len()),
        Layer::GlobalAvgPool(_) | Layer::Flatten(_) | Layer::Lrn(_) => {
            layer.kind().replace('_', " ")
        }
    }
}

/// The label of every layer in the order of [`crate::Report::layers`]
/// (each composite before the layers nested in it).
pub fn layer_labels(arch: &Architecture) -> Vec<String> {
    fn walk(layers: &[Layer], out: &mut Vec<String>) {
        for layer in layers {
            out.push(layer_label(layer));
            match layer {
                Layer::Residual(r) => walk(&r.body, out),
                Layer::Branches(b) => b.branches.iter().for_each(|branch| walk(branch, out)),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&arch.layers, &mut out);
    out
}

/// One word for a top-level block, or `None` for layers that only reshape
/// or regularise (flatten, dropout, activation).
fn block_word(layer: &Layer) -> Option<String> {
    Some(match layer {
        Layer::Conv(c) => format!("conv{}-{}", c.kernel.h(), c.filters),
        Layer::SeparableConv(s) => format!("sep{}-{}", s.kernel.h(), s.filters),
        Layer::Pool(_) => "pool".to_owned(),
        Layer::GlobalAvgPool(_) => "gap".to_owned(),
        Layer::Dense(d) => format!("fc{}", d.units),
        Layer::Residual(_) => "res".to_owned(),
        Layer::Branches(_) => "incep".to_owned(),
        Layer::Se(_) => "se".to_owned(),
        Layer::Lrn(_) => "lrn".to_owned(),
        Layer::Flatten(_) | Layer::Dropout(_) | Layer::Activation(_) => return None,
    })
}

/// A one-line summary of a network's top-level blocks, repeats folded:
/// e.g. `conv3-16 → res×2 → se → gap → fc10`.
pub fn block_summary(arch: &Architecture) -> String {
    let mut folded: Vec<(String, usize)> = Vec::new();
    for word in arch.layers.iter().filter_map(block_word) {
        match folded.last_mut() {
            Some((last, n)) if *last == word => *n += 1,
            _ => folded.push((word, 1)),
        }
    }
    folded
        .into_iter()
        .map(|(w, n)| if n > 1 { format!("{w}×{n}") } else { w })
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_summaries_fold_repeats_and_skip_shape_layers() {
        let arch = Architecture::from_json(
            r#"{"input": [1, 8, 8], "classes": 10, "layers": [
                {"kind": "conv", "kernel": 3, "filters": 16, "padding": "same"},
                {"kind": "residual", "body": [{"kind": "conv", "kernel": 3, "filters": 16, "padding": "same"}]},
                {"kind": "residual", "body": [{"kind": "conv", "kernel": 3, "filters": 16, "padding": "same"}]},
                {"kind": "se"}, {"kind": "global_avg_pool"}, {"kind": "dropout", "rate": 0.2},
                {"kind": "dense", "units": 10}]}"#,
        )
        .expect("parses");
        assert_eq!(block_summary(&arch), "conv3-16 → res×2 → se → gap → fc10");
    }

    #[test]
    fn labels_name_the_settings_that_matter() {
        let arch = crate::zoo::build("resnet18", crate::InputShape::new(3, 32, 32), 10, 0.25)
            .expect("builds");
        let labels: Vec<String> = arch.layers.iter().map(layer_label).collect();
        assert!(labels[0].starts_with("conv 3×3, "), "{labels:?}");
        assert!(
            labels.iter().any(|l| l.contains("projection")),
            "{labels:?}"
        );
        assert!(labels.iter().any(|l| l.starts_with("dense ")), "{labels:?}");
    }

    #[test]
    fn there_is_a_label_for_every_row_of_the_report() {
        for entry in crate::zoo::ZOO.iter() {
            let arch = entry
                .build(entry.published_input, entry.published_classes, 0.25)
                .expect("builds");
            let report = crate::validate(&arch).expect("valid");
            assert_eq!(
                layer_labels(&arch).len(),
                report.layers.len(),
                "{}",
                entry.name
            );
        }
    }
}
