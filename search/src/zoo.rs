//! The reference zoo: classic CNNs written in the architecture format, so every
//! search can be compared with them.
//!
//! Each entry is a function of (input, classes, width multiplier). At its
//! published input size and width 1.0 an entry has exactly the published
//! number of trainable parameters (tested). For inputs smaller than 112
//! pixels, ImageNet-style entries swap their aggressive stem (large strided
//! kernel, early max-pool) for a stride-1 `3 x 3` one and pool with `"same"`
//! padding, the usual CIFAR-style adaptation, so they also run on 28x28 and
//! 32x32 images. The width multiplier scales every hidden channel and unit
//! count (never the number of classes).

use thiserror::Error;

use crate::arch::{Activation, Architecture, InputShape, Layer, Shortcut, ARCHITECTURE_VERSION};
use crate::build::{
    avg_pool, branches, conv, dense, dropout, flatten, global_avg_pool, lrn, max_pool, residual,
    scale_channels, se, separable,
};
use crate::validate::{validate, ValidationError};

use Activation::{Relu, Relu6, Tanh};

/// Inputs whose smaller side is below this use the small-input stem.
pub const SMALL_INPUT_BELOW: usize = 112;

/// What a zoo builder gets: the input, the classes and the width multiplier.
#[derive(Debug, Clone, Copy)]
struct Config {
    input: InputShape,
    classes: usize,
    width: f64,
}

impl Config {
    /// Scaled channel count.
    fn ch(&self, c: usize) -> usize {
        scale_channels(c, self.width)
    }
    /// Whether to use the small-input adaptation.
    fn small(&self) -> bool {
        self.input.height.min(self.input.width) < SMALL_INPUT_BELOW
    }
}

/// One reference architecture.
#[derive(Debug, Clone, Copy)]
pub struct ZooEntry {
    /// Short name used by the CLI and API (e.g. `resnet50`).
    pub name: &'static str,
    /// Human title and source.
    pub title: &'static str,
    /// The input it was published for.
    pub published_input: InputShape,
    /// The number of classes it was published for.
    pub published_classes: usize,
    builder: fn(&Config) -> Vec<Layer>,
}

impl ZooEntry {
    /// Builds the architecture for this input, number of classes and width
    /// multiplier, and checks that it is valid for that input.
    pub fn build(
        &self,
        input: InputShape,
        classes: usize,
        width: f64,
    ) -> Result<Architecture, ZooError> {
        if !(width.is_finite() && width > 0.0 && width <= 4.0) {
            return Err(ZooError::Width(width));
        }
        let config = Config {
            input,
            classes,
            width,
        };
        let arch = Architecture {
            version: ARCHITECTURE_VERSION,
            name: self.name.to_owned(),
            input,
            classes,
            layers: (self.builder)(&config),
            genotype: None,
        };
        validate(&arch).map_err(|source| ZooError::Invalid {
            name: self.name,
            input,
            source,
        })?;
        Ok(arch)
    }

    /// The architecture at its published input, classes and width 1.0.
    pub fn published(&self) -> Result<Architecture, ZooError> {
        self.build(self.published_input, self.published_classes, 1.0)
    }
}

/// Why a zoo architecture could not be built.
#[derive(Debug, Error)]
pub enum ZooError {
    /// No entry by that name.
    #[error("no zoo architecture named `{0}` (known: {known})", known = names().join(", "))]
    Unknown(String),
    /// The width multiplier is out of range.
    #[error("width multiplier {0} must be in (0, 4]")]
    Width(f64),
    /// The architecture does not fit the requested input.
    #[error("{name} does not fit input {input}: {source}")]
    Invalid {
        /// The zoo entry.
        name: &'static str,
        /// The requested input.
        input: InputShape,
        /// What validation said.
        source: ValidationError,
    },
}

const IMAGENET: InputShape = InputShape::new(3, 224, 224);

/// Every reference architecture, in chronological order.
pub const ZOO: &[ZooEntry] = &[
    ZooEntry {
        name: "lenet5",
        title: "LeNet-5 (LeCun et al. 1998)",
        published_input: InputShape::new(1, 32, 32),
        published_classes: 10,
        builder: lenet5,
    },
    ZooEntry {
        name: "alexnet",
        title: "AlexNet, single tower (Krizhevsky et al. 2012)",
        published_input: InputShape::new(3, 227, 227),
        published_classes: 1000,
        builder: alexnet,
    },
    ZooEntry {
        name: "vgg16",
        title: "VGG-16 (Simonyan & Zisserman 2014)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: vgg16,
    },
    ZooEntry {
        name: "googlenet",
        title: "GoogLeNet / Inception v1, no auxiliary heads (Szegedy et al. 2014)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: googlenet,
    },
    ZooEntry {
        name: "resnet18",
        title: "ResNet-18 (He et al. 2015; torchvision)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: resnet18,
    },
    ZooEntry {
        name: "resnet50",
        title: "ResNet-50 (He et al. 2015; torchvision v1.5)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: resnet50,
    },
    ZooEntry {
        name: "xception",
        title: "Xception (Chollet 2017; Keras)",
        published_input: InputShape::new(3, 299, 299),
        published_classes: 1000,
        builder: xception,
    },
    ZooEntry {
        name: "se_resnet50",
        title: "SE-ResNet-50 (Hu et al. 2018)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: se_resnet50,
    },
    ZooEntry {
        name: "mobilenet_v1",
        title: "MobileNet v1 (Howard et al. 2017; Keras)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: mobilenet_v1,
    },
    ZooEntry {
        name: "mobilenet_v2",
        title: "MobileNet v2 (Sandler et al. 2018; torchvision)",
        published_input: IMAGENET,
        published_classes: 1000,
        builder: mobilenet_v2,
    },
    ZooEntry {
        name: "fashion_cnn",
        title: "The classic Keras Fashion-MNIST CNN",
        published_input: InputShape::new(1, 28, 28),
        published_classes: 10,
        builder: fashion_cnn,
    },
];

/// The names of every zoo entry.
pub fn names() -> Vec<&'static str> {
    ZOO.iter().map(|e| e.name).collect()
}

/// The zoo entry with this name.
pub fn entry(name: &str) -> Result<&'static ZooEntry, ZooError> {
    ZOO.iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ZooError::Unknown(name.to_owned()))
}

/// Builds the named zoo architecture for an input, classes and width.
pub fn build(
    name: &str,
    input: InputShape,
    classes: usize,
    width: f64,
) -> Result<Architecture, ZooError> {
    entry(name)?.build(input, classes, width)
}

fn lenet5(c: &Config) -> Vec<Layer> {
    // LeNet-5 was designed for 32x32; smaller digits are zero-padded to it
    // (the usual padding=2 on 28x28 MNIST).
    let side = c.input.height.min(c.input.width);
    let pad = 32usize.saturating_sub(side).div_ceil(2);
    vec![
        conv(c.ch(6), 5).pad(pad).act(Tanh).into(),
        avg_pool(2, 2).into(),
        conv(c.ch(16), 5).act(Tanh).into(),
        avg_pool(2, 2).into(),
        conv(c.ch(120), 5).act(Tanh).into(),
        flatten(),
        dense(c.ch(84), Tanh),
        dense(c.classes, Activation::None),
    ]
}

fn alexnet(c: &Config) -> Vec<Layer> {
    let small = c.small();
    let pool = || {
        if small {
            max_pool(3, 2).same().into()
        } else {
            max_pool(3, 2).into()
        }
    };
    let stem = if small {
        conv(c.ch(96), 3).same().act(Relu)
    } else {
        conv(c.ch(96), 11).stride(4).act(Relu)
    };
    vec![
        stem.into(),
        lrn(),
        pool(),
        conv(c.ch(256), 5).pad(2).act(Relu).into(),
        lrn(),
        pool(),
        conv(c.ch(384), 3).pad(1).act(Relu).into(),
        conv(c.ch(384), 3).pad(1).act(Relu).into(),
        conv(c.ch(256), 3).pad(1).act(Relu).into(),
        pool(),
        flatten(),
        dropout(0.5),
        dense(c.ch(4096), Relu),
        dropout(0.5),
        dense(c.ch(4096), Relu),
        dense(c.classes, Activation::None),
    ]
}

fn vgg16(c: &Config) -> Vec<Layer> {
    let small = c.small();
    let mut layers = Vec::new();
    for (filters, repeats) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
        for _ in 0..repeats {
            layers.push(conv(c.ch(filters), 3).pad(1).act(Relu).into());
        }
        let pool = max_pool(2, 2);
        layers.push(if small { pool.same() } else { pool }.into());
    }
    layers.extend([
        flatten(),
        dense(c.ch(4096), Relu),
        dropout(0.5),
        dense(c.ch(4096), Relu),
        dropout(0.5),
        dense(c.classes, Activation::None),
    ]);
    layers
}

/// One inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max-pool -> 1x1.
fn inception(c: &Config, [b1, r3, b3, r5, b5, pool_proj]: [usize; 6]) -> Layer {
    branches(vec![
        vec![conv(c.ch(b1), 1).act(Relu).into()],
        vec![
            conv(c.ch(r3), 1).act(Relu).into(),
            conv(c.ch(b3), 3).pad(1).act(Relu).into(),
        ],
        vec![
            conv(c.ch(r5), 1).act(Relu).into(),
            conv(c.ch(b5), 5).pad(2).act(Relu).into(),
        ],
        vec![
            max_pool(3, 1).pad(1).into(),
            conv(c.ch(pool_proj), 1).act(Relu).into(),
        ],
    ])
}

fn googlenet(c: &Config) -> Vec<Layer> {
    let mut layers: Vec<Layer> = if c.small() {
        vec![conv(c.ch(64), 3).same().act(Relu).into()]
    } else {
        vec![
            conv(c.ch(64), 7).stride(2).pad(3).act(Relu).into(),
            max_pool(3, 2).same().into(),
        ]
    };
    layers.extend([
        lrn(),
        conv(c.ch(64), 1).act(Relu).into(),
        conv(c.ch(192), 3).pad(1).act(Relu).into(),
        lrn(),
        max_pool(3, 2).same().into(),
        inception(c, [64, 96, 128, 16, 32, 32]),
        inception(c, [128, 128, 192, 32, 96, 64]),
        max_pool(3, 2).same().into(),
        inception(c, [192, 96, 208, 16, 48, 64]),
        inception(c, [160, 112, 224, 24, 64, 64]),
        inception(c, [128, 128, 256, 24, 64, 64]),
        inception(c, [112, 144, 288, 32, 64, 64]),
        inception(c, [256, 160, 320, 32, 128, 128]),
        max_pool(3, 2).same().into(),
        inception(c, [256, 160, 320, 32, 128, 128]),
        inception(c, [384, 192, 384, 48, 128, 128]),
        global_avg_pool(),
        dropout(0.4),
        dense(c.classes, Activation::None),
    ]);
    layers
}

/// The ResNet stem: 7x7/2 conv + 3x3/2 max-pool, or a 3x3/1 conv for small inputs.
fn resnet_stem(c: &Config) -> Vec<Layer> {
    if c.small() {
        vec![conv(c.ch(64), 3).pad(1).bn().act(Relu).into()]
    } else {
        vec![
            conv(c.ch(64), 7).stride(2).pad(3).bn().act(Relu).into(),
            max_pool(3, 2).pad(1).into(),
        ]
    }
}

fn shortcut_for(stride: usize, in_channels: usize, out_channels: usize) -> Shortcut {
    if stride == 1 && in_channels == out_channels {
        Shortcut::Identity
    } else {
        Shortcut::Projection
    }
}

fn basic_block(in_ch: usize, out_ch: usize, stride: usize) -> Layer {
    residual(
        vec![
            conv(out_ch, 3).stride(stride).pad(1).bn().act(Relu).into(),
            conv(out_ch, 3).pad(1).bn().into(),
        ],
        shortcut_for(stride, in_ch, out_ch),
        Relu,
    )
}

fn bottleneck(in_ch: usize, mid: usize, stride: usize, se_reduction: Option<usize>) -> Layer {
    let out_ch = mid * 4;
    let mut body: Vec<Layer> = vec![
        conv(mid, 1).bn().act(Relu).into(),
        conv(mid, 3).stride(stride).pad(1).bn().act(Relu).into(),
        conv(out_ch, 1).bn().into(),
    ];
    if let Some(r) = se_reduction {
        body.push(se(r));
    }
    residual(body, shortcut_for(stride, in_ch, out_ch), Relu)
}

fn resnet(
    c: &Config,
    bottlenecks: bool,
    blocks: [usize; 4],
    se_reduction: Option<usize>,
) -> Vec<Layer> {
    let mut layers = resnet_stem(c);
    let mut channels = c.ch(64);
    for (stage, &count) in blocks.iter().enumerate() {
        let mid = c.ch(64 << stage);
        for i in 0..count {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            if bottlenecks {
                layers.push(bottleneck(channels, mid, stride, se_reduction));
                channels = mid * 4;
            } else {
                layers.push(basic_block(channels, mid, stride));
                channels = mid;
            }
        }
    }
    layers.extend([global_avg_pool(), dense(c.classes, Activation::None)]);
    layers
}

fn resnet18(c: &Config) -> Vec<Layer> {
    resnet(c, false, [2, 2, 2, 2], None)
}

fn resnet50(c: &Config) -> Vec<Layer> {
    resnet(c, true, [3, 4, 6, 3], None)
}

fn se_resnet50(c: &Config) -> Vec<Layer> {
    resnet(c, true, [3, 4, 6, 3], Some(16))
}

fn xception(c: &Config) -> Vec<Layer> {
    let sep = |f: usize| separable(c.ch(f), 3).same().bn();
    let relu = || crate::build::activation(Relu);
    let mut layers: Vec<Layer> = if c.small() {
        vec![
            conv(c.ch(32), 3).same().bn().act(Relu).into(),
            conv(c.ch(64), 3).same().bn().act(Relu).into(),
        ]
    } else {
        vec![
            conv(c.ch(32), 3).stride(2).bn().act(Relu).into(),
            conv(c.ch(64), 3).bn().act(Relu).into(),
        ]
    };
    // Entry flow: block 2 starts without an activation, blocks 3 and 4 with one.
    for (i, f) in [128, 256, 728].into_iter().enumerate() {
        let mut body = Vec::new();
        if i > 0 {
            body.push(relu());
        }
        body.extend([
            sep(f).act(Relu).into(),
            sep(f).into(),
            max_pool(3, 2).same().into(),
        ]);
        layers.push(residual(body, Shortcut::Projection, Activation::None));
    }
    // Middle flow: eight identity blocks of three separable convolutions.
    for _ in 0..8 {
        let mut body = Vec::new();
        for _ in 0..3 {
            body.extend([relu(), sep(728).into()]);
        }
        layers.push(residual(body, Shortcut::Identity, Activation::None));
    }
    // Exit flow.
    layers.push(residual(
        vec![
            relu(),
            sep(728).act(Relu).into(),
            sep(1024).into(),
            max_pool(3, 2).same().into(),
        ],
        Shortcut::Projection,
        Activation::None,
    ));
    layers.extend([
        sep(1536).act(Relu).into(),
        sep(2048).act(Relu).into(),
        global_avg_pool(),
        dense(c.classes, Activation::None),
    ]);
    layers
}

fn mobilenet_v1(c: &Config) -> Vec<Layer> {
    let first_stride = if c.small() { 1 } else { 2 };
    let mut channels = c.ch(32);
    let mut layers: Vec<Layer> = vec![conv(channels, 3)
        .stride(first_stride)
        .same()
        .bn()
        .act(Relu6)
        .into()];
    let plan = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    for (filters, stride) in plan {
        let out = c.ch(filters);
        layers.push(
            conv(channels, 3)
                .groups(channels)
                .stride(stride)
                .same()
                .bn()
                .act(Relu6)
                .into(),
        );
        layers.push(conv(out, 1).bn().act(Relu6).into());
        channels = out;
    }
    layers.extend([
        global_avg_pool(),
        dropout(1e-3),
        dense(c.classes, Activation::None),
    ]);
    layers
}

/// Channels rounded to a multiple of 8 (never down by more than 10%), as
/// MobileNet v2 does.
fn make_divisible(value: f64) -> usize {
    let divisor = 8.0;
    let rounded = ((value + divisor / 2.0) / divisor).floor() * divisor;
    let rounded = rounded.max(divisor);
    let rounded = if rounded < 0.9 * value {
        rounded + divisor
    } else {
        rounded
    };
    rounded as usize
}

fn mobilenet_v2(c: &Config) -> Vec<Layer> {
    let small = c.small();
    let mut channels = make_divisible(32.0 * c.width);
    let mut layers: Vec<Layer> = vec![conv(channels, 3)
        .stride(if small { 1 } else { 2 })
        .pad(1)
        .bn()
        .act(Relu6)
        .into()];
    let plan: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    for (expansion, filters, repeats, first_stride) in plan {
        let out = make_divisible(filters as f64 * c.width);
        for i in 0..repeats {
            let stride = if i == 0 { first_stride } else { 1 };
            let hidden = channels * expansion;
            let mut body: Vec<Layer> = Vec::new();
            if expansion != 1 {
                body.push(conv(hidden, 1).bn().act(Relu6).into());
            }
            body.push(
                conv(hidden, 3)
                    .groups(hidden)
                    .stride(stride)
                    .pad(1)
                    .bn()
                    .act(Relu6)
                    .into(),
            );
            body.push(conv(out, 1).bn().into());
            if stride == 1 && channels == out {
                layers.push(residual(body, Shortcut::Identity, Activation::None));
            } else {
                layers.extend(body);
            }
            channels = out;
        }
    }
    let last = make_divisible(1280.0 * c.width.max(1.0));
    layers.extend([
        conv(last, 1).bn().act(Relu6).into(),
        global_avg_pool(),
        dropout(0.2),
        dense(c.classes, Activation::None),
    ]);
    layers
}

fn fashion_cnn(c: &Config) -> Vec<Layer> {
    vec![
        conv(c.ch(64), 7).same().act(Relu).into(),
        max_pool(2, 2).into(),
        conv(c.ch(128), 3).same().act(Relu).into(),
        conv(c.ch(128), 3).same().act(Relu).into(),
        max_pool(2, 2).into(),
        conv(c.ch(256), 3).same().act(Relu).into(),
        conv(c.ch(256), 3).same().act(Relu).into(),
        max_pool(2, 2).into(),
        flatten(),
        dense(c.ch(128), Relu),
        dropout(0.5),
        dense(c.ch(64), Relu),
        dropout(0.5),
        dense(c.classes, Activation::None),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(name: &str) -> u64 {
        let arch = entry(name).expect("known").published().expect("builds");
        validate(&arch).expect("valid").params
    }

    #[test]
    fn published_parameter_counts_are_exact() {
        assert_eq!(params("lenet5"), 61_706);
        assert_eq!(params("alexnet"), 62_378_344);
        assert_eq!(params("vgg16"), 138_357_544);
        assert_eq!(params("resnet18"), 11_689_512);
        assert_eq!(params("resnet50"), 25_557_032);
        assert_eq!(params("mobilenet_v1"), 4_231_976);
        assert_eq!(params("mobilenet_v2"), 3_504_872);
        assert_eq!(params("xception"), 22_855_952);
        assert_eq!(params("fashion_cnn"), 1_413_834);
    }

    #[test]
    fn published_parameter_counts_within_tolerance() {
        let within = |value: u64, target: f64, tolerance: f64| {
            let rel = (value as f64 - target).abs() / target;
            assert!(rel <= tolerance, "{value} is {rel:.4} away from {target}");
        };
        within(params("googlenet"), 6.8e6, 0.03);
        within(params("se_resnet50"), 28.1e6, 0.01);
    }

    #[test]
    fn published_macs_match_known_figures() {
        let macs = |name: &str| {
            let arch = entry(name).expect("known").published().expect("builds");
            validate(&arch).expect("valid").macs as f64
        };
        // torchvision reports 4.09 GFLOPs (multiply-adds) for ResNet-50,
        // 1.81 for ResNet-18, 15.47 for VGG-16, 0.30 for MobileNet v2.
        for (name, published) in [
            ("resnet50", 4.09e9),
            ("resnet18", 1.81e9),
            ("vgg16", 15.47e9),
            ("mobilenet_v2", 0.30e9),
        ] {
            let rel = (macs(name) - published).abs() / published;
            assert!(rel < 0.03, "{name}: {} vs {published}", macs(name));
        }
    }

    #[test]
    fn every_entry_fits_small_inputs_with_a_width_multiplier() {
        for entry in ZOO {
            for input in [InputShape::new(1, 28, 28), InputShape::new(3, 32, 32)] {
                for width in [1.0, 0.5, 0.25] {
                    let arch = entry
                        .build(input, 10, width)
                        .unwrap_or_else(|e| panic!("{} at {input} x{width}: {e}", entry.name));
                    let report = validate(&arch).expect("valid");
                    assert!(report.params > 0);
                }
            }
        }
    }

    #[test]
    fn width_multiplier_shrinks_networks() {
        let input = InputShape::new(1, 28, 28);
        for entry in ZOO {
            let full = validate(&entry.build(input, 10, 1.0).expect("builds")).expect("valid");
            let half = validate(&entry.build(input, 10, 0.5).expect("builds")).expect("valid");
            assert!(half.params < full.params, "{}", entry.name);
        }
    }

    #[test]
    fn unknown_name_and_bad_width_are_errors() {
        assert!(matches!(entry("lenet6"), Err(ZooError::Unknown(_))));
        let e = build("lenet5", InputShape::new(1, 28, 28), 10, 0.0);
        assert!(matches!(e, Err(ZooError::Width(_))));
    }

    #[test]
    fn too_small_inputs_are_reported_not_panics() {
        let e = build("fashion_cnn", InputShape::new(1, 4, 4), 10, 1.0);
        assert!(matches!(e, Err(ZooError::Invalid { .. })), "{e:?}");
    }
}
