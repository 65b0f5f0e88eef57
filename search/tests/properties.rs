//! Property tests: every sample and mutation from every preset is valid and
//! one decision away; the JSON form round-trips; the canonical hash ignores
//! formatting.

use proptest::prelude::*;
use search::space::PRESETS;
use search::{
    mutate, sample, seeded_rng, validate, Architecture, Genotype, InputShape, SearchSpace,
};
use serde_json::Value;

fn input_shape() -> impl Strategy<Value = InputShape> {
    (1usize..=3, 1usize..=40, 1usize..=40).prop_map(|(c, h, w)| InputShape::new(c, h, w))
}

/// Whether two genotypes differ in exactly one decision: one of the stem,
/// head or a block's op / channels / kernel, or one block inserted or removed.
fn one_decision_apart(a: &Genotype, b: &Genotype) -> bool {
    let scalar = usize::from(a.stem_channels != b.stem_channels)
        + usize::from(a.head_hidden != b.head_hidden);
    if a.blocks.len() == b.blocks.len() {
        let fields: usize = a
            .blocks
            .iter()
            .zip(&b.blocks)
            .map(|(x, y)| {
                usize::from(x.op != y.op)
                    + usize::from(x.channels != y.channels)
                    + usize::from(x.kernel != y.kernel)
            })
            .sum();
        return scalar + fields == 1;
    }
    let (long, short) = if a.blocks.len() > b.blocks.len() {
        (a, b)
    } else {
        (b, a)
    };
    scalar == 0
        && long.blocks.len() == short.blocks.len() + 1
        && (0..long.blocks.len()).any(|i| {
            let mut removed = long.blocks.clone();
            removed.remove(i);
            removed == short.blocks
        })
}

/// Writes JSON with every object's keys in reverse order and odd spacing.
fn reordered(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("\n  {} :  {}", Value::String(k.clone()), reordered(v)))
                .collect();
            format!("{{{}}}", parts.join(" ,"))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(reordered).collect();
            format!("[ {} ]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// Drops fields whose value is the documented default.
fn strip_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A pool's stride defaults to its kernel, not to 1.
            let is_pool = map.get("kind") == Some(&Value::from("pool"));
            let defaults = [
                ("stride", Value::from(1)),
                ("dilation", Value::from(1)),
                ("groups", Value::from(1)),
                ("depth_multiplier", Value::from(1)),
                ("bias", Value::from(true)),
                ("batch_norm", Value::from(false)),
                ("activation", Value::from("none")),
                ("activation_after", Value::from("none")),
                ("padding", Value::from("valid")),
                ("shortcut", Value::from("identity")),
                ("version", Value::from(1)),
            ];
            for (key, default) in defaults {
                if is_pool && key == "stride" {
                    continue;
                }
                if map.get(key) == Some(&default) {
                    map.remove(key);
                }
            }
            map.values_mut().for_each(strip_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn samples_and_mutation_chains_are_valid_and_one_decision_apart(
        preset in prop::sample::select(PRESETS.to_vec()),
        seed in any::<u64>(),
        input in input_shape(),
        classes in 1usize..=20,
    ) {
        let space = SearchSpace::preset(preset).expect("preset");
        let mut rng = seeded_rng(seed);
        let mut arch = sample(&space, input, classes, &mut rng).expect("sample is valid");
        validate(&arch).expect("sample validates");
        for _ in 0..4 {
            let child = mutate(&space, &arch, &mut rng).expect("a neighbour exists");
            let report = validate(&child.architecture).expect("mutant validates");
            prop_assert_eq!(report.output, search::Shape::Flat(classes));
            let before = arch.genotype.as_ref().expect("genotype");
            let after = child.architecture.genotype.as_ref().expect("genotype");
            prop_assert!(
                one_decision_apart(before, after),
                "{} -> {} ({})", before.summary(), after.summary(), child.change
            );
            prop_assert_ne!(arch.canonical_hash(), child.architecture.canonical_hash());
            arch = child.architecture;
        }
    }

    #[test]
    fn json_round_trip_is_lossless_and_hash_ignores_formatting(
        preset in prop::sample::select(PRESETS.to_vec()),
        seed in any::<u64>(),
        input in input_shape(),
    ) {
        let space = SearchSpace::preset(preset).expect("preset");
        let arch = sample(&space, input, 10, &mut seeded_rng(seed)).expect("valid");
        let compact = serde_json::to_string(&arch).expect("json");
        let back = Architecture::from_json(&compact).expect("round trip");
        prop_assert_eq!(&back, &arch);
        let pretty = Architecture::from_json(&arch.to_json_pretty()).expect("pretty");
        prop_assert_eq!(&pretty, &arch);

        let value = serde_json::to_value(&arch).expect("value");
        let shuffled = Architecture::from_json(&reordered(&value)).expect("reordered keys");
        prop_assert_eq!(shuffled.canonical_hash(), arch.canonical_hash());
        let mut sparse = value.clone();
        strip_defaults(&mut sparse);
        let sparse = Architecture::from_value(sparse).expect("defaults left out");
        prop_assert_eq!(sparse.canonical_hash(), arch.canonical_hash());
        prop_assert_eq!(validate(&sparse).expect("valid"), validate(&arch).expect("valid"));
    }
}

#[test]
fn zoo_architectures_round_trip_through_json() {
    for entry in search::zoo::ZOO {
        let arch = entry
            .build(InputShape::new(3, 32, 32), 10, 0.5)
            .expect("builds");
        let back = Architecture::from_json(&arch.to_json_pretty()).expect("parses");
        assert_eq!(back, arch, "{}", entry.name);
        assert_eq!(back.canonical_hash(), arch.canonical_hash());
    }
}

#[test]
fn the_hash_is_stable_across_releases() {
    // A fixed architecture's hash is part of the stored data (deduplication
    // across a search's history): changing it is a format change.
    let json = r#"{"input":[1,28,28],"classes":10,"layers":[
        {"kind":"conv","filters":8,"kernel":3,"padding":"same","activation":"relu"},
        {"kind":"global_avg_pool"},{"kind":"dense","units":10}]}"#;
    let arch = Architecture::from_json(json).expect("parses");
    assert_eq!(
        arch.canonical_json(),
        r#"{"classes":10,"input":[1,28,28],"layers":[{"activation":"relu","batch_norm":false,"bias":true,"dilation":1,"filters":8,"groups":1,"kernel":3,"kind":"conv","padding":"same","stride":1},{"kind":"global_avg_pool"},{"activation":"none","bias":true,"kind":"dense","units":10}],"name":"","version":1}"#
    );
}
