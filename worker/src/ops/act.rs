//! Activations applied inside our fused ops (after a convolution, a batch
//! norm or a residual sum), on plain slices, parallel and vectorised, so a
//! network's element-wise work does not run through dfdx's single-threaded
//! kernels and their extra tensors.
//!
//! The backward passes work from the pre-activation value `z` (kept or
//! recomputed by the op), never from the output, so every activation,
//! swish included, has one rule.

use rayon::prelude::*;
use search::arch::Activation;

use super::{real, simd, Real};

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

fn sigmoid<E: Real>(z: E) -> E {
    (E::one() + (-z).exp()).recip()
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
    fn value<E: Real>(z: E) -> E {
        z.tanh()
    }
    fn slope<E: Real>(z: E) -> E {
        let t = z.tanh();
        E::one() - t * t
    }
}

impl ActFn for Sigmoid {
    fn value<E: Real>(z: E) -> E {
        sigmoid(z)
    }
    fn slope<E: Real>(z: E) -> E {
        let s = sigmoid(z);
        s * (E::one() - s)
    }
}

impl ActFn for Swish {
    fn value<E: Real>(z: E) -> E {
        z * sigmoid(z)
    }
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

/// Turns `d` from the gradient at `act(z)` into the gradient at `z`, in place.
pub(super) fn backward_in_place<E: Real>(d: &mut [E], zs: &[E], act: Activation) {
    if act == Activation::None {
        return;
    }
    with_act!(act, A => d.par_chunks_mut(CHUNK).zip(zs.par_chunks(CHUNK)).for_each(|(d, z)| {
        simd(|| d.iter_mut().zip(z).for_each(|(d, &z)| *d *= A::slope(z)))
    }));
}
