//! Activations applied inside our fused ops (after a convolution, a batch
//! norm or a residual sum), on plain slices, parallel and vectorised, so a
//! network's element-wise work does not run through dfdx's single-threaded
//! kernels and their extra tensors.
//!
//! The backward passes work from the pre-activation value `z` (kept or
//! recomputed by the op), never from the output, so every activation,
//! swish included, has one rule.

use dfdx::prelude::*;
use rayon::prelude::*;
use search::arch::Activation;

use super::{add_into, real, release_grad, simd, take_grad, to_vec, Real};

/// One activation's value and slope as functions of the pre-activation `z`.
pub(super) trait ActFn {
    /// `f(z)`.
    fn value<E: Real>(z: E) -> E;
    /// `f'(z)`; at a kink, the slope PyTorch uses (0 for ReLU at 0, 0 for
    /// ReLU6 at 0 and 6).
    fn slope<E: Real>(z: E) -> E;
}

/// The identity.
pub(super) struct Identity;
/// `max(z, 0)`.
pub(super) struct Relu;
/// `min(max(z, 0), 6)`.
pub(super) struct Relu6;
/// `tanh(z)`.
pub(super) struct Tanh;
/// `1 / (1 + e^-z)`.
pub(super) struct Sigmoid;
/// `z * sigmoid(z)`.
pub(super) struct Swish;

/// `e^x` in `f32` without a libm call, so loops over it vectorise: `x =
/// n ln2 + r` with `|r| <= ln2 / 2`, a degree-7 Taylor polynomial for
/// `e^r` (relative error below 1e-7) and `2^n` put into the exponent bits.
/// Inputs are clamped to `[-87.3, 88.3]`, where `e^x` stays a normal float.
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer, which lands in the low bits.
    const ROUNDER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let power = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    p * f32::from_bits(((power + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid<E: Real>(z: E) -> E {
    (E::one() + (-z).activation_exp()).recip()
}

/// `tanh(z)`: an odd polynomial near 0, `(1 - e^-2|z|) / (1 + e^-2|z|)`
/// with the sign of `z` elsewhere (no cancellation either way).
#[inline(always)]
fn tanh<E: Real>(z: E) -> E {
    let a = z.abs();
    if a < real::<E>(0.25) {
        let z2 = z * z;
        z * (E::one()
            + z2 * (real::<E>(-1.0 / 3.0)
                + z2 * (real::<E>(2.0 / 15.0)
                    + z2 * (real::<E>(-17.0 / 315.0) + z2 * real::<E>(62.0 / 2835.0)))))
    } else {
        let e = (real::<E>(-2.0) * a).activation_exp();
        let t = (E::one() - e) / (E::one() + e);
        if z < E::zero() {
            -t
        } else {
            t
        }
    }
}

impl ActFn for Identity {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        z
    }
    #[inline(always)]
    fn slope<E: Real>(_: E) -> E {
        E::one()
    }
}

impl ActFn for Relu {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        if z > E::zero() {
            z
        } else {
            E::zero()
        }
    }
    #[inline(always)]
    fn slope<E: Real>(z: E) -> E {
        if z > E::zero() {
            E::one()
        } else {
            E::zero()
        }
    }
}

impl ActFn for Relu6 {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        let six = real::<E>(6.0);
        if z > six {
            six
        } else if z > E::zero() {
            z
        } else {
            E::zero()
        }
    }
    #[inline(always)]
    fn slope<E: Real>(z: E) -> E {
        if z > E::zero() && z < real::<E>(6.0) {
            E::one()
        } else {
            E::zero()
        }
    }
}

impl ActFn for Tanh {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        tanh(z)
    }
    #[inline(always)]
    fn slope<E: Real>(z: E) -> E {
        let t = tanh(z);
        E::one() - t * t
    }
}

impl ActFn for Sigmoid {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        sigmoid(z)
    }
    #[inline(always)]
    fn slope<E: Real>(z: E) -> E {
        let s = sigmoid(z);
        s * (E::one() - s)
    }
}

impl ActFn for Swish {
    #[inline(always)]
    fn value<E: Real>(z: E) -> E {
        z * sigmoid(z)
    }
    #[inline(always)]
    fn slope<E: Real>(z: E) -> E {
        let s = sigmoid(z);
        s * (E::one() + z * (E::one() - s))
    }
}

/// Runs `$body` with the type alias `$a` naming the [`ActFn`] of
/// activation `$act`, so each loop is compiled (and vectorised) for one
/// activation instead of branching per element.
macro_rules! with_act {
    ($act:expr, $a:ident => $body:expr) => {
        match $act {
            Activation::None => {
                type $a = $crate::ops::act::Identity;
                $body
            }
            Activation::Relu => {
                type $a = $crate::ops::act::Relu;
                $body
            }
            Activation::Relu6 => {
                type $a = $crate::ops::act::Relu6;
                $body
            }
            Activation::Tanh => {
                type $a = $crate::ops::act::Tanh;
                $body
            }
            Activation::Sigmoid => {
                type $a = $crate::ops::act::Sigmoid;
                $body
            }
            Activation::Swish => {
                type $a = $crate::ops::act::Swish;
                $body
            }
        }
    };
}
pub(super) use with_act;

/// Elements per parallel task in the plain element-wise loops.
const CHUNK: usize = 1 << 14;

/// `act(z)` for every element.
pub(super) fn forward<E: Real>(zs: &[E], act: Activation) -> Vec<E> {
    let mut ys = vec![E::zero(); zs.len()];
    with_act!(act, A => ys.par_chunks_mut(CHUNK).zip(zs.par_chunks(CHUNK)).for_each(|(y, z)| {
        simd(|| y.iter_mut().zip(z).for_each(|(y, &z)| *y = A::value(z)))
    }));
    ys
}

/// `y = act(y)` for every element, on the calling thread (the inference
/// path's epilogue; its maps are small).
pub(crate) fn in_place<E: Real>(ys: &mut [E], act: Activation) {
    if act == Activation::None {
        return;
    }
    with_act!(act, A => simd(|| ys.iter_mut().for_each(|y| *y = A::value(*y))));
}

/// `y = act(a + b)` for every element, on the calling thread.
pub(crate) fn add_into_activated<E: Real>(a: &[E], b: &[E], act: Activation, ys: &mut [E]) {
    with_act!(act, A => simd(#[inline(always)] || {
        for ((y, &a), &b) in ys.iter_mut().zip(a).zip(b) {
            *y = A::value(a + b);
        }
    }));
}

/// Turns `d` from the gradient at `act(z)` into the gradient at `z`, in place.
pub(super) fn backward_in_place<E: Real>(d: &mut [E], zs: &[E], act: Activation) {
    if act == Activation::None {
        return;
    }
    with_act!(act, A => d.par_chunks_mut(CHUNK).zip(zs.par_chunks(CHUNK)).for_each(|(d, z)| {
        simd(|| d.iter_mut().zip(z).for_each(|(d, &z)| *d *= A::slope(z)))
    }));
}

/// `act(x)` for a tensor of any shape (a dense layer's output, or an
/// activation layer of its own), recorded on the tape.
pub fn activate<S: Shape, E: Real, T: Tape<E, Cpu>>(
    x: Tensor<S, E, Cpu, T>,
    act: Activation,
) -> Tensor<S, E, Cpu, T> {
    if act == Activation::None {
        return x;
    }
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let zs = to_vec(&x);
    let y = x.device().tensor_from_vec(forward(&zs, act), shape);
    if T::OWNS_TAPE {
        let (xg, yg) = (x.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let mut dy = take_grad!(grads, &yg);
            backward_in_place(&mut dy, &zs, act);
            add_into(grads.get_or_alloc_mut(&xg)?, &dy);
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
