//! Gradient checks: every op's backward pass against central finite
//! differences in `f64`, on random inputs, plus direct-loop references for
//! the forward passes.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use search::arch::Activation;

use super::*;

type Taped = OwnedTape<f64, Cpu>;
/// One evaluation: output values, taped output, parameter tensors, input tensor.
type Run = (
    Vec<f64>,
    Map<f64, Taped>,
    Vec<Param<f64>>,
    Map<f64, NoneTape>,
);

/// A scalar loss `sum(y * r)` with a fixed random `r`, so every output
/// element's gradient matters and differs.
fn weighted_sum(y: &[f64], r: &[f64]) -> f64 {
    y.iter().zip(r).map(|(a, b)| a * b).sum()
}

fn random(rng: &mut impl Rng, len: usize) -> Vec<f64> {
    (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// Checks the gradients of `f(x, params)` with respect to `x` (if
/// `input_grad`) and every parameter, and returns the worst relative error.
fn check(
    shape: (usize, usize, usize, usize),
    param_lens: &[usize],
    input_grad: bool,
    f: impl Fn(Map<f64, Taped>, &[Param<f64>]) -> Map<f64, Taped>,
) -> f64 {
    let dev = Cpu::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let x0 = random(&mut rng, shape.0 * shape.1 * shape.2 * shape.3);
    let p0: Vec<Vec<f64>> = param_lens.iter().map(|&n| random(&mut rng, n)).collect();
    let run = |x: &[f64], ps: &[Vec<f64>]| -> Run {
        let xt = dev.tensor_from_vec(x.to_vec(), shape);
        let pts: Vec<Param<f64>> = ps.iter().map(|p| Param::new(&dev, p.clone())).collect();
        let y = f(xt.clone().leaky_traced(), &pts);
        (to_vec(&y), y, pts, xt)
    };
    let (y0, y, pts, xt) = run(&x0, &p0);
    let r = random(&mut rng, y0.len());
    let rt = dev.tensor_from_vec(r.clone(), *y.shape());
    let loss = (y * rt).sum::<(), _>();
    let grads = loss.backward();
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    let mut compare = |analytic: Vec<f64>, numeric: Vec<f64>, what: &str| {
        let diff: f64 = analytic
            .iter()
            .zip(&numeric)
            .map(|(a, n)| (a - n).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt().max(1e-12);
        assert!(
            norm > 1e-9,
            "{what}: the numeric gradient is zero, the check proves nothing"
        );
        worst = worst.max(diff / norm);
        assert!(
            diff / norm < 1e-6,
            "{what}: relative gradient error {}",
            diff / norm
        );
    };
    if input_grad {
        let numeric: Vec<f64> = (0..x0.len())
            .map(|i| {
                let (mut plus, mut minus) = (x0.clone(), x0.clone());
                plus[i] += eps;
                minus[i] -= eps;
                (weighted_sum(&run(&plus, &p0).0, &r) - weighted_sum(&run(&minus, &p0).0, &r))
                    / (2.0 * eps)
            })
            .collect();
        compare(grads.get(&xt).as_vec(), numeric, "input");
    }
    for (j, pt) in pts.iter().enumerate() {
        let numeric: Vec<f64> = (0..p0[j].len())
            .map(|i| {
                let (mut plus, mut minus) = (p0.clone(), p0.clone());
                plus[j][i] += eps;
                minus[j][i] -= eps;
                (weighted_sum(&run(&x0, &plus).0, &r) - weighted_sum(&run(&x0, &minus).0, &r))
                    / (2.0 * eps)
            })
            .collect();
        compare(
            grads.get(&pt.tensor).as_vec(),
            numeric,
            &format!("param {j}"),
        );
    }
    worst
}

fn conv_spec(
    c: usize,
    o: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pad: [usize; 4],
    g: usize,
) -> Conv2dSpec {
    Conv2dSpec {
        in_channels: c,
        out_channels: o,
        kernel: k,
        stride: s,
        dilation: d,
        padding: pad,
        groups: g,
    }
}

/// A direct 7-loop convolution, the reference for the im2col one.
fn naive_conv(
    x: &[f64],
    (n, c, h, w): (usize, usize, usize, usize),
    wt: &[f64],
    b: &[f64],
    s: Conv2dSpec,
) -> Vec<f64> {
    let (oh, ow) = s.output_size(h, w);
    let (cg, og) = (c / s.groups, s.out_channels / s.groups);
    let mut y = vec![0.0; n * s.out_channels * oh * ow];
    for i in 0..n {
        for o in 0..s.out_channels {
            let g = o / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.get(o).copied().unwrap_or(0.0);
                    for ci in 0..cg {
                        for ki in 0..s.kernel.0 {
                            for kj in 0..s.kernel.1 {
                                let iy = (oy * s.stride.0 + ki * s.dilation.0) as isize
                                    - s.padding[0] as isize;
                                let ix = (ox * s.stride.1 + kj * s.dilation.1) as isize
                                    - s.padding[2] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv =
                                    x[((i * c + g * cg + ci) * h + iy as usize) * w + ix as usize];
                                let wv = wt[((o * cg + ci) * s.kernel.0 + ki) * s.kernel.1 + kj];
                                acc += xv * wv;
                            }
                        }
                    }
                    y[((i * s.out_channels + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// The convolutions the network builder produces, in every corner we support.
fn conv_cases() -> Vec<((usize, usize, usize, usize), Conv2dSpec)> {
    vec![
        (
            (2, 3, 6, 5),
            conv_spec(3, 4, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        ),
        (
            (2, 2, 7, 7),
            conv_spec(2, 3, (3, 3), (2, 2), (1, 1), [0, 1, 0, 1], 1),
        ),
        (
            (1, 2, 7, 6),
            conv_spec(2, 2, (3, 2), (1, 2), (2, 1), [2, 2, 0, 1], 1),
        ),
        (
            (2, 4, 5, 5),
            conv_spec(4, 6, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 2),
        ),
        (
            (2, 3, 5, 6),
            conv_spec(3, 6, (3, 3), (2, 1), (1, 1), [1, 1, 1, 1], 3),
        ),
        (
            (3, 4, 4, 3),
            conv_spec(4, 5, (1, 1), (1, 1), (1, 1), [0; 4], 1),
        ),
        (
            (2, 4, 5, 5),
            conv_spec(4, 2, (1, 1), (2, 2), (1, 1), [0; 4], 2),
        ),
        (
            (2, 1, 8, 8),
            conv_spec(1, 3, (5, 5), (1, 1), (1, 1), [0; 4], 1),
        ),
        // Stride 2 through the stride phases: a 5 x 5 window with "same"
        // padding (taps before the first phase row), odd and even sizes,
        // groups, and runs of two images sharing one GEMM.
        (
            (4, 3, 8, 7),
            conv_spec(3, 4, (5, 5), (2, 2), (1, 1), [2, 2, 2, 2], 1),
        ),
        (
            (2, 4, 6, 9),
            conv_spec(4, 4, (3, 3), (2, 2), (1, 1), [1, 0, 1, 1], 2),
        ),
        // Batches of 4 and 5 images: runs of several images share one GEMM
        // (groups, "same" padding as plane shifts, stride 2, a short last run).
        (
            (4, 4, 5, 5),
            conv_spec(4, 6, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 2),
        ),
        (
            (5, 2, 6, 5),
            conv_spec(2, 3, (3, 3), (2, 1), (1, 1), [1, 1, 1, 1], 1),
        ),
        (
            (5, 3, 4, 4),
            conv_spec(3, 2, (1, 1), (1, 1), (1, 1), [0; 4], 1),
        ),
        // 8 or more channels per group: the weight gradient from pixel-major
        // operands (same padding; uneven kernel, stride, dilation and
        // padding with groups); and the same for 1 x 1, which does not use them.
        (
            (2, 8, 5, 4),
            conv_spec(8, 3, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        ),
        (
            (2, 16, 6, 5),
            conv_spec(16, 4, (3, 2), (2, 1), (1, 2), [1, 0, 2, 1], 2),
        ),
        (
            (3, 8, 3, 3),
            conv_spec(8, 2, (1, 1), (1, 1), (1, 1), [0; 4], 1),
        ),
        // Depthwise (the direct kernels): same padding, stride 2 with
        // asymmetric padding, a multiplier with dilation and uneven strides,
        // and a 5 x 5 kernel wider than the padding.
        (
            (2, 4, 7, 6),
            conv_spec(4, 4, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 4),
        ),
        (
            (2, 3, 7, 7),
            conv_spec(3, 3, (3, 3), (2, 2), (1, 1), [0, 1, 0, 1], 3),
        ),
        (
            (1, 2, 8, 7),
            conv_spec(2, 4, (3, 2), (1, 2), (2, 1), [2, 2, 0, 1], 2),
        ),
        (
            (2, 2, 6, 6),
            conv_spec(2, 2, (5, 5), (1, 1), (1, 1), [1, 2, 2, 1], 2),
        ),
        // Depthwise channels-last (16+ channels, multiplier 1, several
        // images): same padding, and stride 2 with dilation and uneven padding.
        (
            (2, 16, 5, 5),
            conv_spec(16, 16, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 16),
        ),
        (
            (3, 16, 7, 6),
            conv_spec(16, 16, (3, 2), (2, 1), (2, 1), [2, 1, 0, 1], 16),
        ),
        // Depthwise as whole-plane shifts (stride 1, as many output as input
        // columns): dilated with a multiplier, and uneven vertical padding.
        (
            (2, 3, 6, 7),
            conv_spec(3, 6, (3, 3), (1, 1), (2, 2), [2, 2, 2, 2], 3),
        ),
        (
            (1, 2, 5, 6),
            conv_spec(2, 2, (3, 3), (1, 1), (1, 1), [0, 2, 1, 1], 2),
        ),
    ]
}

#[test]
fn conv2d_forward_matches_direct_loops() {
    let dev = Cpu::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (shape, spec) in conv_cases() {
        let x = random(&mut rng, shape.0 * shape.1 * shape.2 * shape.3);
        let wt = random(&mut rng, spec.weight_len());
        let b = random(&mut rng, spec.out_channels);
        let expected = naive_conv(&x, shape, &wt, &b, spec);
        let y = conv2d(
            dev.tensor_from_vec(x, shape),
            &Param::new(&dev, wt),
            Some(&Param::new(&dev, b)),
            spec,
            true,
        );
        let got = y.as_vec();
        assert_eq!(got.len(), expected.len(), "{spec:?}");
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-12, "{spec:?}: {g} vs {e}");
        }
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for (shape, spec) in conv_cases() {
        check(
            shape,
            &[spec.weight_len(), spec.out_channels],
            true,
            |x, p| conv2d(x, &p[0], Some(&p[1]), spec, true),
        );
        // Without a bias, and without the input gradient (a first layer).
        check(shape, &[spec.weight_len()], false, |x, p| {
            conv2d(x, &p[0], None, spec, false)
        });
    }
}

#[test]
fn conv2d_without_input_grad_leaves_the_input_gradient_zero() {
    let dev = Cpu::default();
    let spec = conv_spec(1, 2, (3, 3), (1, 1), (1, 1), [1; 4], 1);
    let x: Map<f64, NoneTape> = dev.sample_uniform_like(&(2, 1, 4, 4));
    let w = Param::new(&dev, vec![0.5; spec.weight_len()]);
    let loss = conv2d(x.clone().leaky_traced(), &w, None, spec, false).sum::<(), _>();
    let mut grads = loss.backward();
    let w_grad = grads.get(&w.tensor).as_vec();
    let x_grad = grads.get_or_alloc_mut(&x).expect("allocates");
    assert!(x_grad.iter().all(|&g| g == 0.0));
    assert!(w_grad.iter().any(|&g| g != 0.0));
}

fn pool_cases() -> Vec<((usize, usize, usize, usize), Pool2dSpec)> {
    let spec = |k, s, padding| Pool2dSpec {
        kernel: k,
        stride: s,
        padding,
    };
    vec![
        ((2, 2, 6, 6), spec((2, 2), (2, 2), [0; 4])),
        ((1, 3, 7, 7), spec((3, 3), (2, 2), [1, 1, 1, 1])),
        ((2, 1, 5, 6), spec((3, 3), (1, 1), [1, 1, 1, 1])),
        ((1, 2, 5, 4), spec((3, 2), (2, 1), [0, 1, 0, 0])),
        ((2, 2, 5, 5), spec((2, 2), (2, 2), [0, 1, 0, 1])),
        ((1, 2, 9, 8), spec((5, 5), (3, 3), [2, 2, 2, 2])),
    ]
}

#[test]
fn pooling_gradients_match_finite_differences() {
    for (shape, spec) in pool_cases() {
        check(shape, &[], true, |x, _| max_pool2d(x, spec));
        check(shape, &[], true, |x, _| avg_pool2d(x, spec));
    }
}

#[test]
fn inference_pooling_equals_the_training_ops() {
    let dev = Cpu::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for (shape, spec) in pool_cases() {
        let (n, c, h, w) = shape;
        let xs = random(&mut rng, n * c * h * w);
        let x = dev.tensor_from_vec(xs.clone(), shape);
        let (oh, ow) = spec.output_size(h, w);
        for max in [true, false] {
            let expected = if max {
                to_vec(&max_pool2d(x.clone(), spec))
            } else {
                to_vec(&avg_pool2d(x.clone(), spec))
            };
            let mut got = vec![f64::NAN; n * c * oh * ow];
            infer::pool_into(max, &xs, (h, w), spec, &mut got);
            for (g, e) in got.iter().zip(&expected) {
                assert!((g - e).abs() < 1e-12, "{spec:?} max={max}: {g} vs {e}");
            }
        }
    }
}

#[test]
fn max_pool_routes_a_tied_gradient_to_one_input() {
    let dev = Cpu::default();
    let x: Map<f64, NoneTape> = dev.tensor_from_vec(vec![1.0; 16], (1, 1, 4, 4));
    let spec = Pool2dSpec {
        kernel: (2, 2),
        stride: (2, 2),
        padding: [0; 4],
    };
    let grads = max_pool2d(x.clone().leaky_traced(), spec)
        .sum::<(), _>()
        .backward();
    let g = grads.get(&x).as_vec();
    assert_eq!(g.iter().sum::<f64>(), 4.0);
    assert_eq!(g.iter().filter(|&&v| v == 1.0).count(), 4, "{g:?}");
    assert_eq!(
        g[0], 1.0,
        "the first maximum of the window gets the gradient"
    );
}

#[test]
fn avg_pool_excludes_padding_from_the_count() {
    let dev = Cpu::default();
    let x: Map<f64, NoneTape> = dev.tensor_from_vec(vec![2.0; 9], (1, 1, 3, 3));
    let spec = Pool2dSpec {
        kernel: (3, 3),
        stride: (1, 1),
        padding: [1; 4],
    };
    assert!(avg_pool2d(x, spec)
        .as_vec()
        .iter()
        .all(|&v| (v - 2.0).abs() < 1e-12));
}

fn train_bn<'a>(p: &'a [Param<f64>], stats: &'a mut RunningStats<f64>) -> BatchNormArgs<'a, f64> {
    BatchNormArgs {
        gamma: &p[0],
        beta: &p[1],
        stats,
        mode: BatchNormMode::Train,
    }
}

#[test]
fn batch_norm_gradients_match_finite_differences() {
    for (shape, act) in [(3, 2, 3, 3), (4, 3, 1, 1), (1, 2, 4, 3)]
        .into_iter()
        .zip(Activation::ALL.into_iter().cycle())
        .chain(Activation::ALL.into_iter().map(|a| ((2, 3, 2, 2), a)))
    {
        let c = shape.1;
        check(shape, &[c, c], true, |x, p| {
            let mut stats = RunningStats::new(c);
            batch_norm2d(x, train_bn(p, &mut stats), act)
        });
        check(shape, &[c, c], true, |x, p| {
            let mut stats = RunningStats {
                mean: vec![0.3; c],
                var: vec![0.7; c],
            };
            let bn = BatchNormArgs {
                mode: BatchNormMode::Eval,
                ..train_bn(p, &mut stats)
            };
            batch_norm2d(x, bn, act)
        });
    }
}

#[test]
fn fused_conv_blocks_match_finite_differences() {
    let cases = [
        conv_spec(3, 4, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1),
        conv_spec(4, 4, (3, 3), (2, 2), (1, 1), [1, 0, 1, 0], 4),
        conv_spec(2, 6, (1, 1), (1, 1), (1, 1), [0; 4], 2),
    ];
    for (spec, act) in cases.into_iter().zip(Activation::ALL.into_iter().skip(1)) {
        let (c, o) = (spec.in_channels, spec.out_channels);
        let shape = (3, c, 5, 4);
        // Convolution, batch norm and activation (a bias before a batch
        // norm in training has no gradient: the batch mean absorbs it).
        check(shape, &[spec.weight_len(), o, o], true, |x, p| {
            let mut stats = RunningStats::new(o);
            conv_block(
                x,
                &p[0],
                None,
                spec,
                true,
                Some(train_bn(&p[1..], &mut stats)),
                act,
            )
        });
        // Convolution and activation, no batch norm.
        check(shape, &[spec.weight_len(), o], true, |x, p| {
            conv_block(x, &p[0], Some(&p[1]), spec, true, None, act)
        });
    }
}

#[test]
fn fused_conv_block_equals_its_parts() {
    let dev = Cpu::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let spec = conv_spec(3, 5, (3, 3), (1, 1), (1, 1), [1, 1, 1, 1], 1);
    let x: Map<f64, NoneTape> = dev.tensor_from_vec(random(&mut rng, 2 * 3 * 6 * 6), (2, 3, 6, 6));
    let p: Vec<Param<f64>> = [spec.weight_len(), 5, 5, 5]
        .iter()
        .map(|&n| Param::new(&dev, random(&mut rng, n)))
        .collect();
    let (mut s1, mut s2) = (RunningStats::new(5), RunningStats::new(5));
    let bn = |stats| BatchNormArgs {
        gamma: &p[2],
        beta: &p[3],
        stats,
        mode: BatchNormMode::Train,
    };
    let fused = conv_block(
        x.clone(),
        &p[0],
        Some(&p[1]),
        spec,
        true,
        Some(bn(&mut s1)),
        Activation::Relu6,
    );
    let conv = conv2d(x, &p[0], Some(&p[1]), spec, true);
    let parts = batch_norm2d(conv, bn(&mut s2), Activation::None).clamp(0.0, 6.0);
    for (a, b) in fused.as_vec().iter().zip(parts.as_vec()) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(s1, s2);
}

#[test]
fn activations_match_their_definitions() {
    let zs = [-7.0, -1.5, -0.25, 0.0, 0.5, 2.0, 6.5];
    let expect = |a: Activation, z: f64| -> f64 {
        match a {
            Activation::None => z,
            Activation::Relu => z.max(0.0),
            Activation::Relu6 => z.clamp(0.0, 6.0),
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
            Activation::Swish => z / (1.0 + (-z).exp()),
        }
    };
    for a in Activation::ALL {
        let ys = act::forward(&zs, a);
        for (&z, y) in zs.iter().zip(ys) {
            assert!((y - expect(a, z)).abs() < 1e-12, "{a:?}({z}) = {y}");
        }
    }
}

#[test]
fn activation_layers_match_finite_differences() {
    for act in Activation::ALL.into_iter().skip(1) {
        check((2, 3, 2, 3), &[], true, |x, _| activate(x * 2.0, act));
    }
}

#[test]
fn the_f32_activations_are_accurate() {
    let (mut worst_exp, mut worst_tanh, mut worst_sigmoid) = (0.0f64, 0.0f64, 0.0f64);
    for i in -20_000..=20_000 {
        let z = i as f32 * 0.004; // -80 to 80
        let exact = f64::from(z).exp();
        worst_exp = worst_exp.max(((f64::from(act::exp_f32(z)) - exact) / exact).abs());
        let ys = act::forward(&[z], Activation::Tanh);
        worst_tanh = worst_tanh.max((f64::from(ys[0]) - f64::from(z).tanh()).abs());
        let ys = act::forward(&[z], Activation::Sigmoid);
        worst_sigmoid =
            worst_sigmoid.max((f64::from(ys[0]) - 1.0 / (1.0 + (-exact.ln()).exp())).abs());
    }
    assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
    assert!(worst_tanh < 3e-7, "tanh absolute error {worst_tanh}");
    assert!(
        worst_sigmoid < 3e-7,
        "sigmoid absolute error {worst_sigmoid}"
    );
    assert!(act::exp_f32(-200.0) >= 0.0 && act::exp_f32(200.0).is_finite());
}

#[test]
fn residual_sums_match_finite_differences() {
    for act in Activation::ALL {
        let shape = (2, 3, 3, 2);
        let spec = conv_spec(3, 3, (1, 1), (1, 1), (1, 1), [0; 4], 1);
        // The body is a 1x1 convolution of x; the skip is x itself, so x's
        // gradient is the sum of both paths.
        check(shape, &[spec.weight_len()], true, |x, p| {
            let body = conv2d(x.retaped::<Taped>(), &p[0], None, spec, true);
            add_activate(body, x, act)
        });
    }
}

#[test]
fn squeeze_and_excitation_matches_finite_differences() {
    let (n, c) = (3, 4);
    check((n, c, 3, 2), &[c * c], true, |x, p| {
        let pooled = global_avg_pool(x.retaped::<Taped>());
        let w = p[0].tensor.retaped::<Taped>().reshape_like(&(c, c));
        let gate = pooled.matmul(w).sigmoid();
        channel_scale(x, gate)
    });
}

#[test]
fn batch_norm_normalises_and_tracks_running_statistics() {
    let dev = Cpu::default();
    let xs: Vec<f64> = (0..32).map(|i| i as f64).collect();
    let x: Map<f64, NoneTape> = dev.tensor_from_vec(xs, (4, 2, 2, 2));
    let ones = Param::new(&dev, vec![1.0; 2]);
    let zeros = Param::new(&dev, vec![0.0; 2]);
    let mut stats = RunningStats::new(2);
    let bn = BatchNormArgs {
        gamma: &ones,
        beta: &zeros,
        stats: &mut stats,
        mode: BatchNormMode::Train,
    };
    let y = batch_norm2d(x, bn, Activation::None).as_vec();
    for ch in 0..2 {
        let vals: Vec<f64> = (0..4)
            .flat_map(|i| y[(i * 2 + ch) * 4..(i * 2 + ch + 1) * 4].to_vec())
            .collect();
        let mean = vals.iter().sum::<f64>() / 16.0;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 16.0;
        assert!(
            mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-3,
            "channel {ch}: {mean} {var}"
        );
    }
    // Channel 0 holds 0..4, 8..12, 16..20, 24..28: mean 13.5.
    assert!((stats.mean[0] - 1.35).abs() < 1e-9, "{:?}", stats.mean);
    assert!(stats.var[0] > 1.0);
}

#[test]
fn lrn_gradients_match_finite_differences() {
    for size in [5, 4, 1] {
        let spec = LrnSpec {
            size,
            alpha: 0.5,
            beta: 0.75,
            k: 2.0,
        };
        check((2, 6, 2, 3), &[], true, |x, _| lrn(x, spec));
    }
}

#[test]
fn lrn_matches_its_definition() {
    let dev = Cpu::default();
    let xs: Vec<f64> = (0..5).map(|i| f64::from(i) - 2.0).collect();
    let spec = LrnSpec {
        size: 3,
        alpha: 0.3,
        beta: 0.75,
        k: 2.0,
    };
    let y = lrn(dev.tensor_from_vec(xs.clone(), (1, 5, 1, 1)), spec).as_vec();
    for c in 0..5_usize {
        let lo = c.saturating_sub(1);
        let hi = (c + 1).min(4);
        let sum: f64 = (lo..=hi).map(|j| xs[j] * xs[j]).sum();
        let want = xs[c] / (2.0 + 0.1 * sum).powf(0.75);
        assert!((y[c] - want).abs() < 1e-12, "{c}: {} vs {want}", y[c]);
    }
}
