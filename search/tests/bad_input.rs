//! Bad input never panics: arbitrary JSON, and valid architectures with
//! random fields replaced, are either accepted or rejected with an error.

use proptest::prelude::*;
use search::arch::LayerKind;
use search::{validate, Architecture, InputShape, SearchSpace};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "version",
    "name",
    "input",
    "classes",
    "layers",
    "kind",
    "filters",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "batch_norm",
    "activation",
    "op",
    "units",
    "rate",
    "function",
    "body",
    "shortcut",
    "activation_after",
    "branches",
    "reduction",
    "size",
    "depth_multiplier",
];
/// Values that are not layer kinds but appear in architectures (and some that don't).
const OTHER_WORDS: &[&str] = &[
    "same",
    "valid",
    "max",
    "avg",
    "relu",
    "projection",
    "identity",
    "warp",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..70).prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1 << 20),
            Just(1 << 21),
            Just(1 << 40),
            Just(i64::MAX)
        ]
        .prop_map(Value::from),
        Just(json!(u64::MAX)),
        (-2.0f64..2.0).prop_map(Value::from),
        prop::sample::select(LayerKind::names()).prop_map(Value::from),
        prop::sample::select(OTHER_WORDS).prop_map(Value::from),
        (1usize..6, 1usize..6).prop_map(|(a, b)| json!([a, b])),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(KEYS), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// Every JSON pointer into a value.
fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{prefix}/{k}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn seeds() -> Vec<Value> {
    let mut values: Vec<Value> = ["lenet5", "googlenet", "mobilenet_v2", "xception"]
        .iter()
        .map(|n| {
            let arch = search::zoo::build(n, InputShape::new(1, 28, 28), 10, 0.25).expect("zoo");
            serde_json::to_value(arch).expect("json")
        })
        .collect();
    let space = SearchSpace::preset("full").expect("full");
    let arch = search::sample(
        &space,
        InputShape::new(3, 16, 16),
        4,
        &mut search::seeded_rng(2),
    )
    .expect("sample");
    values.push(serde_json::to_value(arch).expect("json"));
    values
}

fn check_does_not_panic(value: &Value) {
    if let Ok(arch) = Architecture::from_json(&value.to_string()) {
        if let Ok(report) = validate(&arch) {
            assert_eq!(report.output, search::Shape::Flat(arch.classes));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        check_does_not_panic(&value);
    }

    #[test]
    fn corrupted_architectures_never_panic(
        which in 0usize..5,
        edits in prop::collection::vec((any::<prop::sample::Index>(), leaf()), 1..4),
    ) {
        let mut value = seeds().swap_remove(which);
        for (index, replacement) in edits {
            let mut all = Vec::new();
            pointers(&value, String::new(), &mut all);
            let target = index.get(&all).clone();
            if let Some(slot) = value.pointer_mut(&target) {
                *slot = replacement;
            }
        }
        check_does_not_panic(&value);
    }
}

#[test]
fn malformed_json_is_a_clear_error() {
    let e = Architecture::from_json("{\"input\": [1, 28, 28], \"layers\": [").expect_err("cut");
    assert!(e.to_string().contains("invalid architecture JSON"), "{e}");
    let e = Architecture::from_json("[]").expect_err("not an object");
    assert!(e.to_string().contains("invalid architecture JSON"), "{e}");
}

#[test]
fn each_kind_of_mistake_gets_its_own_message() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"conv","filters":4,"kernel":3},{"kind":"teleport"}]}"#,
            "layers[1]",
        ),
        (
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"dense","units":-2}]}"#,
            "layers[0]",
        ),
        (
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"conv","filters":4,"kernel":3,"padding":"full"}]}"#,
            "padding",
        ),
    ];
    for (json, expected) in cases {
        let e = Architecture::from_json(json).expect_err("rejected");
        assert!(e.to_string().contains(expected), "{e}");
    }
    let invalid: &[(&str, &str, &str)] = &[
        (
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"residual","body":[{"kind":"conv","filters":4,"kernel":3,"padding":1}]},{"kind":"flatten"},{"kind":"dense","units":2}]}"#,
            "layers[0]",
            "identity shortcut",
        ),
        (
            r#"{"input":[1,8,8],"classes":2,"layers":[{"kind":"conv","filters":4,"kernel":9},{"kind":"flatten"},{"kind":"dense","units":2}]}"#,
            "layers[0]",
            "below 1",
        ),
        (
            r#"{"input":[4,8,8],"classes":2,"layers":[{"kind":"conv","filters":4,"kernel":3,"groups":3},{"kind":"flatten"},{"kind":"dense","units":2}]}"#,
            "layers[0]",
            "groups",
        ),
    ];
    for (json, path, reason) in invalid {
        let arch = Architecture::from_json(json).expect("well-formed");
        let e = validate(&arch).expect_err("invalid");
        assert_eq!(&e.path, path);
        assert!(e.reason.contains(reason), "{e}");
    }
}
