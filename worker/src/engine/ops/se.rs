//! The gating of a squeeze-and-excitation block: each feature-map plane
//! scaled by its own gate value.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{add_into, release_grad, simd, take_grad, to_vec, Flat, Map, Real};

/// `y = plane * gate`.
#[inline(always)]
fn scale_plane<E: Real>(plane: &[E], gate: E, y: &mut [E]) {
    simd(|| y.iter_mut().zip(plane).for_each(|(y, &v)| *y = v * gate))
}

/// Every `hw`-element plane of `xs` times its gate, into `ys`, on the
/// calling thread (the inference path).
pub(crate) fn channel_scale_into<E: Real>(xs: &[E], gates: &[E], hw: usize, ys: &mut [E]) {
    for ((y, plane), &g) in ys
        .chunks_exact_mut(hw.max(1))
        .zip(xs.chunks_exact(hw.max(1)))
        .zip(gates)
    {
        scale_plane(plane, g, y);
    }
}

/// `y[i, c, :, :] = x[i, c, :, :] * gate[i, c]` for `x: N x C x H x W` and
/// `gate: N x C`. Panics if the gate's shape is not `N x C`.
pub fn channel_scale<E: Real, T: Tape<E, Cpu>>(x: Map<E, T>, gate: Flat<E, T>) -> Map<E, T> {
    let (n, c, h, w) = *x.shape();
    let hw = (h * w).max(1);
    assert_eq!(*gate.shape(), (n, c), "channel_scale: gate shape");
    let (x, tape_x) = x.split_tape();
    let (gate, tape_g) = gate.split_tape();
    let mut tape = tape_x.merge(tape_g);
    let xs = to_vec(&x);
    let gs = to_vec(&gate);
    let mut ys = vec![E::zero(); xs.len()];
    ys.par_chunks_mut(hw)
        .zip(xs.par_chunks(hw))
        .zip(&gs)
        .for_each(|((y, plane), &g)| scale_plane(plane, g, y));
    let y = x.device().tensor_from_vec(ys, (n, c, h, w));
    if T::OWNS_TAPE {
        let (xg, gg, yg) = (x.ghost(), gate.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let dy = take_grad!(grads, &yg);
            let dx = grads.get_or_alloc_mut(&xg)?;
            let dgate: Vec<E> = dx
                .par_chunks_mut(hw)
                .zip(dy.par_chunks(hw))
                .zip(xs.par_chunks(hw))
                .zip(&gs)
                .map(|(((dx, dy), plane), &g)| {
                    simd(
                        #[inline(always)]
                        || {
                            let mut dot = E::zero();
                            for ((d, &gy), &v) in dx.iter_mut().zip(dy).zip(plane) {
                                *d += gy * g;
                                dot += gy * v;
                            }
                            dot
                        },
                    )
                })
                .collect();
            add_into(grads.get_or_alloc_mut(&gg)?, &dgate);
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
