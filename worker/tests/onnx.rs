//! ONNX export checked by an independent runtime: every exported model is
//! loaded with `tract-onnx` (pure Rust, its own ONNX parser and kernels) and
//! its logits are compared with this engine's on the same random inputs.
//! Covered: every zoo entry at 28x28x1 (width 0.25), 50 sampled
//! architectures from every preset, networks whose batch-norm statistics and
//! affine parameters have been moved away from their initial values by
//! training-mode passes, the pixel normalisation baked into the graph, a
//! dynamic batch dimension, LRN of an even size and the model's metadata.

use dfdx::tensor::TensorFromVec;
use rand::{Rng, SeedableRng};
use search::zoo::ZOO;
use search::{Architecture, InputShape, SearchSpace};
use tract_onnx::prelude::*;
use worker::data::ChannelStats;
use worker::net::{Mode, Network};

/// The largest difference allowed between the two runtimes' logits,
/// relative to the logit's size (absolute below 1).
const TOLERANCE: f32 = 1e-4;

fn mnist() -> InputShape {
    InputShape::new(1, 28, 28)
}

/// Logits of an exported model run by tract on `input` of `shape`.
fn tract_logits(model: &[u8], input: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &model[..])
        .expect("tract reads the model")
        .into_optimized()
        .expect("tract optimises the model")
        .into_runnable()
        .expect("tract plans the model");
    let x = Tensor::from_shape(&shape, input).expect("input tensor");
    let out = plan
        .run(tvec!(x.into_tvalue()))
        .expect("tract runs the model");
    let logits = out[0].to_plain_array_view::<f32>().expect("f32 logits");
    assert_eq!(logits.shape(), &[shape[0], logits.len() / shape[0]]);
    logits.iter().copied().collect()
}

/// Every node has a name of its own (onnxruntime refuses a model
/// otherwise, even where tract would not mind).
fn assert_names_are_unique(model: &[u8], label: &str) {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &model[..])
        .expect("a valid ONNX protobuf");
    let graph = proto.graph.expect("graph");
    let mut names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "{label}: duplicate node names");
}

/// Our engine's logits (inference mode) for already normalised `input`.
fn engine_logits(net: &mut Network, input: &[f32], batch: usize) -> Vec<f32> {
    let params = net.tensors();
    net.predict(&params, input.to_vec(), batch)
}

/// The largest difference, relative to the logit's size (absolute below 1).
fn worst_difference(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "logit counts differ");
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Exports `net` (no normalisation recorded: the input is the normalised
/// tensor), runs both engines on a random batch and checks the logits agree.
fn check_agrees(net: &mut Network, label: &str, seed: u64) {
    let input = net.architecture().input;
    let batch = 2;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..batch * input.channels * input.height * input.width)
        .map(|_| rng.gen_range(-2.0..2.0))
        .collect();
    let model = worker::onnx::to_onnx(net, &[]).unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_names_are_unique(&model, label);
    let ours = engine_logits(net, &x, batch);
    assert!(ours.iter().all(|v| v.is_finite()), "{label}: our logits");
    let theirs = tract_logits(
        &model,
        &x,
        [batch, input.channels, input.height, input.width],
    );
    let worst = worst_difference(&ours, &theirs);
    assert!(
        worst <= TOLERANCE,
        "{label}: logits differ by {worst:e}\nours   {ours:?}\ntract  {theirs:?}\n{}",
        net.architecture().to_json_pretty()
    );
}

/// Moves every batch norm's running statistics and every parameter away
/// from its initial value, as training does: a few training-mode passes on
/// shifted random data (which update the running statistics) and a random
/// perturbation of the parameters (gamma, beta, weights, biases).
fn train_a_little(net: &mut Network, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let input = net.architecture().input;
    for _ in 0..3 {
        let batch = 4;
        let x: Vec<f32> = (0..batch * input.channels * input.height * input.width)
            .map(|_| rng.gen_range(-1.0..3.0))
            .collect();
        let params = net.tensors();
        let dev = net.device().clone();
        let x = dev.tensor_from_vec(x, (batch, input.channels, input.height, input.width));
        let _ = net.forward(x, &params, Mode::Train);
    }
    for p in &mut net.params {
        for v in &mut p.data {
            *v += rng.gen_range(-0.05..0.05);
        }
    }
}

#[test]
fn every_zoo_entry_matches_an_independent_runtime() {
    for (i, entry) in ZOO.iter().enumerate() {
        let arch = entry.build(mnist(), 10, 0.25).expect("zoo builds");
        let mut net = Network::new(&arch, 7).expect("builds");
        check_agrees(&mut net, entry.name, i as u64);
    }
}

fn sampled_architectures_match(preset: &str, seed: u64) {
    let space = SearchSpace::preset(preset).expect("preset");
    let mut rng = search::seeded_rng(seed);
    for i in 0..50 {
        let arch = search::sample(&space, mnist(), 10, &mut rng).expect("samples");
        let mut net = Network::new(&arch, i).expect("builds");
        if i % 10 == 0 {
            train_a_little(&mut net, i);
        }
        check_agrees(&mut net, &format!("{preset} sample {i}"), seed + i);
    }
}

#[test]
fn fifty_micro_samples_match() {
    sampled_architectures_match("micro", 100);
}

#[test]
fn fifty_small_samples_match() {
    sampled_architectures_match("small", 200);
}

#[test]
fn fifty_classic_samples_match() {
    sampled_architectures_match("classic", 300);
}

#[test]
fn fifty_mobile_samples_match() {
    sampled_architectures_match("mobile", 400);
}

#[test]
fn fifty_full_samples_match() {
    sampled_architectures_match("full", 500);
}

#[test]
fn trained_batch_norm_statistics_are_exported() {
    for name in ["resnet18", "mobilenet_v2", "xception", "se_resnet50"] {
        let arch = search::zoo::build(name, mnist(), 10, 0.25).expect("zoo builds");
        let mut net = Network::new(&arch, 3).expect("builds");
        let before = worker::onnx::to_onnx(&net, &[]).expect("exports");
        train_a_little(&mut net, 9);
        assert!(
            net.stats
                .iter()
                .any(|(_, s)| s.mean.iter().any(|&m| m != 0.0)),
            "{name}: running statistics moved"
        );
        let after = worker::onnx::to_onnx(&net, &[]).expect("exports");
        assert_ne!(before, after, "{name}: the trained values are exported");
        check_agrees(&mut net, &format!("{name} after training passes"), 11);
    }
}

/// A trained model takes raw pixels: the graph applies the normalisation
/// the weights were trained with, exactly as the engine's batches do.
#[test]
fn raw_pixels_are_normalised_inside_the_graph_and_the_batch_is_dynamic() {
    let arch = search::zoo::build("fashion_cnn", mnist(), 10, 0.5).expect("zoo builds");
    let mut net = Network::new(&arch, 5).expect("builds");
    let stats = ChannelStats {
        mean: vec![0.2860],
        std: vec![0.3530],
    };
    net.set_input_normalization(Some(stats.clone()));
    let model = worker::onnx::to_onnx(&net, &[]).expect("exports");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for batch in [1, 3] {
        let pixels: Vec<f32> = (0..batch * 28 * 28)
            .map(|_| f32::from(rng.gen::<u8>()))
            .collect();
        let normalised: Vec<f32> = pixels
            .iter()
            .map(|p| p * (1.0 / (255.0 * stats.std[0])) + (-stats.mean[0] / stats.std[0]))
            .collect();
        let ours = engine_logits(&mut net, &normalised, batch);
        let theirs = tract_logits(&model, &pixels, [batch, 1, 28, 28]);
        let worst = worst_difference(&ours, &theirs);
        assert!(worst <= TOLERANCE, "batch {batch}: differ by {worst:e}");
    }
}

#[test]
fn lrn_of_an_even_size_is_spelled_out_and_matches() {
    let arch = Architecture::from_json(
        r#"{"input": [1, 12, 12], "classes": 5, "layers": [
            {"kind": "conv", "filters": 7, "kernel": 3, "activation": "relu"},
            {"kind": "lrn", "size": 4, "alpha": 0.5, "beta": 0.75, "k": 1.0},
            {"kind": "lrn", "size": 3, "alpha": 0.3, "beta": 0.6, "k": 2.0},
            {"kind": "global_avg_pool"},
            {"kind": "dense", "units": 5}
        ]}"#,
    )
    .expect("architecture");
    let mut net = Network::new(&arch, 1).expect("builds");
    check_agrees(&mut net, "lrn sizes 4 and 3", 2);
}

#[test]
fn metadata_names_the_architecture_input_and_trial() {
    let arch = search::zoo::build("lenet5", mnist(), 10, 0.25).expect("zoo builds");
    let mut net = Network::new(&arch, 5).expect("builds");
    net.set_input_normalization(Some(ChannelStats {
        mean: vec![0.13],
        std: vec![0.31],
    }));
    let extra = [("nas.trial".to_owned(), r#"{"trial_id": 42}"#.to_owned())];
    let model = worker::onnx::to_onnx(&net, &extra).expect("exports");
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &model[..])
        .expect("a valid ONNX protobuf");
    assert_eq!(proto.ir_version, worker::onnx::IR_VERSION);
    assert_eq!(
        proto.opset_import.first().map(|o| o.version),
        Some(worker::onnx::OPSET)
    );
    let meta = |key: &str| {
        proto
            .metadata_props
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    assert_eq!(meta(worker::onnx::HASH_KEY), Some(arch.canonical_hash()));
    assert_eq!(meta("nas.trial").as_deref(), Some(r#"{"trial_id": 42}"#));
    let exported = meta("nas.architecture").expect("architecture JSON");
    assert_eq!(
        Architecture::from_json(&exported)
            .expect("parses")
            .canonical_hash(),
        arch.canonical_hash()
    );
    let graph = proto.graph.expect("graph");
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, worker::onnx::PIXELS);
    assert_eq!(graph.output[0].name, worker::onnx::LOGITS);
    assert!(
        !graph.node.iter().any(|n| n.op_type == "Dropout"),
        "dropout is omitted"
    );
}

/// Weights saved after training carry their normalisation, and loading them
/// restores it, so a downloaded trial exports with a `pixels` input.
#[test]
fn the_normalisation_travels_with_the_weights() {
    let arch = search::zoo::build("lenet5", mnist(), 10, 0.25).expect("zoo builds");
    let mut trained = Network::new(&arch, 5).expect("builds");
    let stats = ChannelStats {
        mean: vec![0.25],
        std: vec![0.5],
    };
    trained.set_input_normalization(Some(stats.clone()));
    let bytes = worker::weights::to_bytes(&trained).expect("serialises");
    let mut loaded = Network::new(&arch, 6).expect("builds");
    assert_eq!(loaded.input_normalization(), None);
    worker::weights::load_bytes(&mut loaded, &bytes, std::path::Path::new("w.safetensors"))
        .expect("loads");
    assert_eq!(loaded.input_normalization(), Some(&stats));
}
