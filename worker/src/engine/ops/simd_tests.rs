//! Which vector path runs, and that the narrower ones give the same results.

use super::*;

/// What the CPU offers, asked of the CPU itself rather than of `pulp`.
fn cpu_path() -> SimdPath {
    #[cfg(target_arch = "x86_64")]
    {
        let v4 = ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"];
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512cd" => std::arch::is_x86_feature_detected!("avx512cd"),
            "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            _ => false,
        };
        // x86-64-v3 as `pulp` defines it.
        let v3 = std::arch::is_x86_feature_detected!("sse4.2")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("lzcnt");
        if v3 && v4.iter().all(|f| has(f)) {
            SimdPath::Avx512
        } else if v3 {
            SimdPath::Avx2
        } else {
            SimdPath::Scalar
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    SimdPath::Scalar
}

#[test]
fn the_widest_path_the_cpu_has_runs_unless_narrowed() {
    let path = simd_path();
    eprintln!(
        "simd path: {} (cpu offers {})",
        path.name(),
        cpu_path().name()
    );
    match std::env::var("NAS_SIMD").as_deref() {
        Ok("scalar") => assert_eq!(path, SimdPath::Scalar),
        Ok("avx2") if cpu_path() != SimdPath::Scalar => assert_eq!(path, SimdPath::Avx2),
        _ => assert_eq!(path, cpu_path(), "dispatch is not the widest the CPU has"),
    }
}

#[test]
fn narrowing_never_widens() {
    let detected = pulp::Arch::new();
    assert_eq!(arch_path(narrowed(detected, "scalar")), SimdPath::Scalar);
    assert_eq!(
        arch_path(narrowed(detected, "nonsense")),
        arch_path(detected)
    );
    let avx2 = arch_path(narrowed(detected, "avx2"));
    match arch_path(detected) {
        SimdPath::Scalar => assert_eq!(avx2, SimdPath::Scalar),
        _ => assert_eq!(avx2, SimdPath::Avx2),
    }
}

/// The element-wise kernels on every path give what the scalar path gives
/// (the activations and the strided gathers; the paths differ only in width).
#[test]
fn every_path_computes_the_same_values() {
    let detected = pulp::Arch::new();
    let xs: Vec<f32> = (0..1000)
        .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
        .collect();
    let run = |arch: pulp::Arch| {
        arch.dispatch(
            #[inline(always)]
            || {
                let mut ys = xs.clone();
                act::in_place(&mut ys, search::arch::Activation::Swish);
                ys
            },
        )
    };
    let scalar = run(pulp::Arch::Scalar);
    for wanted in ["avx2", ""] {
        let other = run(narrowed(detected, wanted));
        for (a, b) in scalar.iter().zip(&other) {
            assert!(
                (a - b).abs() <= 1e-6 * a.abs().max(1.0),
                "{wanted}: {a} vs {b}"
            );
        }
    }
}
