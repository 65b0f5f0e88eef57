//! Networks built from architectures: parameter counts agree with `search`,
//! shapes and gradients flow through every layer kind.

use dfdx::prelude::*;
use search::zoo::ZOO;
use search::{InputShape, SearchSpace};
use worker::net::{Mode, Network};
use worker::ops::to_vec;

fn mnist() -> InputShape {
    InputShape::new(1, 28, 28)
}

#[test]
fn parameter_counts_equal_search_counts_over_the_zoo() {
    for entry in ZOO {
        for width in [1.0, 0.25] {
            let arch = entry.build(mnist(), 10, width).expect("zoo builds");
            let report = search::validate(&arch).expect("zoo validates");
            let net = Network::new(&arch, 1).expect("network builds");
            assert_eq!(
                net.param_count() as u64,
                report.params,
                "{} at width {width}",
                entry.name
            );
        }
    }
}

#[test]
fn parameter_counts_equal_search_counts_over_sampled_architectures() {
    let mut rng = search::seeded_rng(11);
    for preset in search::space::PRESETS {
        let space = SearchSpace::preset(preset).expect("preset");
        for _ in 0..25 {
            let arch =
                search::sample(&space, InputShape::new(3, 32, 32), 10, &mut rng).expect("samples");
            let report = search::validate(&arch).expect("valid");
            let net = Network::new(&arch, 2).expect("builds");
            assert_eq!(
                net.param_count() as u64,
                report.params,
                "{preset}: {}",
                arch.to_json_pretty()
            );
        }
    }
}

/// Every zoo entry at a small width: logits of the right shape, finite, and a
/// non-zero gradient for every parameter (no parameter silently cut off the tape).
#[test]
fn every_parameter_of_every_zoo_entry_gets_a_gradient() {
    for entry in ZOO {
        let arch = entry.build(mnist(), 10, 0.25).expect("zoo builds");
        let mut net = Network::new(&arch, 3).expect("builds");
        let dev = net.device().clone();
        let x: Tensor<(usize, usize, usize, usize), f32, Cpu> =
            dev.sample_normal_like(&(2, 1, 28, 28));
        let params = net.tensors();
        let logits = net.forward(x.leaky_traced(), &params, Mode::Train);
        assert_eq!(*logits.shape(), (2, 10), "{}", entry.name);
        let values = to_vec(&logits);
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{}: {values:?}",
            entry.name
        );
        let target = dev.tensor_from_vec(vec![0.1f32; 20], (2, 10));
        let mut grads = cross_entropy_with_logits_loss(logits, target).backward();
        for (p, t) in net.params.iter().zip(&params) {
            let g = grads.get_or_alloc_mut(&t.tensor).expect("alloc");
            assert!(
                g.iter().any(|&v| v != 0.0),
                "{}: {} has no gradient",
                entry.name,
                p.name
            );
        }
    }
}

#[test]
fn eval_mode_is_deterministic_and_batch_independent() {
    let arch = search::zoo::build("fashion_cnn", mnist(), 10, 0.5).expect("zoo");
    let mut net = Network::new(&arch, 4).expect("builds");
    let params = net.tensors();
    let images: Vec<f32> = (0..3 * 784)
        .map(|i| ((i * 37) % 255) as f32 / 255.0)
        .collect();
    let batch = net.predict(&params, images.clone(), 3);
    let single = net.predict(&params, images[784..2 * 784].to_vec(), 1);
    for (a, b) in batch[10..20].iter().zip(&single) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(batch, net.predict(&params, images, 3));
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let arch = search::zoo::build("lenet5", mnist(), 10, 1.0).expect("zoo");
    let a = Network::new(&arch, 5).expect("builds");
    let b = Network::new(&arch, 5).expect("builds");
    let c = Network::new(&arch, 6).expect("builds");
    assert_eq!(a.params, b.params);
    assert_ne!(a.params, c.params);
}
