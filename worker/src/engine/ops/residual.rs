//! The end of a residual block: the body's output plus the skip path, then
//! the block's activation, as one op.

use dfdx::prelude::*;
use search::arch::Activation;

use super::{act, add_into, release_grad, take_grad, to_vec, with_scratch, Map, Real};

/// `act(a + b)` for two maps of one shape. Panics if the shapes differ.
pub fn add_activate<E: Real, T: Tape<E, Cpu>>(
    a: Map<E, T>,
    b: Map<E, T>,
    act: Activation,
) -> Map<E, T> {
    let shape = *a.shape();
    assert_eq!(shape, *b.shape(), "add_activate: shapes");
    let (a, tape_a) = a.split_tape();
    let (b, tape_b) = b.split_tape();
    let mut tape = tape_a.merge(tape_b);
    let mut zs = to_vec(&a);
    with_scratch(zs.len(), |other: &mut [E]| {
        b.copy_into(other);
        add_into(&mut zs, other);
    });
    let (ys, kept) = if act == Activation::None {
        (zs, Vec::new())
    } else {
        let ys = act::forward(&zs, act);
        (ys, if T::OWNS_TAPE { zs } else { Vec::new() })
    };
    let y = a.device().tensor_from_vec(ys, shape);
    if T::OWNS_TAPE {
        let (ag, bg, yg) = (a.ghost(), b.ghost(), y.ghost());
        tape.add_backward_op(move |grads| {
            let mut dy = take_grad!(grads, &yg);
            act::backward_in_place(&mut dy, &kept, act);
            drop(kept);
            add_into(grads.get_or_alloc_mut(&ag)?, &dy);
            add_into(grads.get_or_alloc_mut(&bg)?, &dy);
            release_grad(dy)
        });
    }
    y.put_tape(tape)
}
