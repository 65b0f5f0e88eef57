//! Optimisers over a list of flat parameters: SGD (momentum, weight decay),
//! Adam (L2 weight decay) and AdamW (decoupled weight decay), as PyTorch
//! defines them.

pub use search::recipe::{OptimizerKind, Schedule};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// An optimiser's state for one network.
#[derive(Debug, Clone)]
pub struct Optimizer {
    kind: OptimizerKind,
    /// Momentum (SGD) or first moment (Adam) per parameter.
    first: Vec<Vec<f32>>,
    /// Second moment (Adam) per parameter.
    second: Vec<Vec<f32>>,
    steps: i32,
}

impl Optimizer {
    /// State for parameters of the given lengths.
    pub fn new(kind: OptimizerKind, lengths: impl IntoIterator<Item = usize>) -> Self {
        let first: Vec<Vec<f32>> = lengths.into_iter().map(|n| vec![0.0; n]).collect();
        let second = match kind {
            OptimizerKind::Sgd { .. } => Vec::new(),
            _ => first.clone(),
        };
        Self {
            kind,
            first,
            second,
            steps: 0,
        }
    }

    /// The optimiser's state, for a checkpoint: its kind, the first and
    /// second moments per parameter (the second empty for SGD) and the
    /// steps taken.
    pub fn state(&self) -> (OptimizerKind, &[Vec<f32>], &[Vec<f32>], i32) {
        (self.kind, &self.first, &self.second, self.steps)
    }

    /// An optimiser resumed from a checkpoint's state (see [`Optimizer::state`]).
    pub fn from_state(
        kind: OptimizerKind,
        first: Vec<Vec<f32>>,
        second: Vec<Vec<f32>>,
        steps: i32,
    ) -> Self {
        Self {
            kind,
            first,
            second,
            steps,
        }
    }

    /// Starts a step (advances Adam's bias correction). Call once per batch,
    /// before [`Optimizer::update`] on each parameter.
    pub fn begin_step(&mut self) {
        self.steps = self.steps.saturating_add(1);
    }

    /// Updates parameter `index` in place from its gradient, at rate `lr`.
    pub fn update(&mut self, index: usize, param: &mut [f32], grad: &[f32], lr: f32) {
        let m = &mut self.first[index];
        match self.kind {
            OptimizerKind::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                for ((p, &g), v) in param.iter_mut().zip(grad).zip(m.iter_mut()) {
                    let g = g + weight_decay * *p;
                    *v = momentum * *v + g;
                    let step = if nesterov { g + momentum * *v } else { *v };
                    *p -= lr * step;
                }
            }
            OptimizerKind::Adam { weight_decay } | OptimizerKind::AdamW { weight_decay } => {
                let decoupled = matches!(self.kind, OptimizerKind::AdamW { .. });
                let v = &mut self.second[index];
                let c1 = 1.0 - BETA1.powi(self.steps.max(1));
                let c2 = 1.0 - BETA2.powi(self.steps.max(1));
                for (((p, &g), m), v) in param
                    .iter_mut()
                    .zip(grad)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    let g = if decoupled { g } else { g + weight_decay * *p };
                    if decoupled {
                        *p -= lr * weight_decay * *p;
                    }
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + EPSILON);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimising `(p - 3)^2` from 0: each optimiser gets close.
    #[test]
    fn optimisers_minimise_a_quadratic() {
        for (kind, lr) in [
            (
                OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                    weight_decay: 0.0,
                },
                0.05,
            ),
            (
                OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.0,
                },
                0.05,
            ),
            (OptimizerKind::adam(), 0.1),
            (OptimizerKind::AdamW { weight_decay: 0.0 }, 0.1),
        ] {
            let mut opt = Optimizer::new(kind, [1]);
            let mut p = [0.0f32];
            for _ in 0..300 {
                opt.begin_step();
                let g = [2.0 * (p[0] - 3.0)];
                opt.update(0, &mut p, &g, lr);
            }
            assert!((p[0] - 3.0).abs() < 0.05, "{kind:?}: {}", p[0]);
        }
    }

    /// First Adam step moves each weight by `lr` against its gradient's sign.
    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let mut opt = Optimizer::new(OptimizerKind::adam(), [2]);
        let mut p = [1.0f32, 1.0];
        opt.begin_step();
        opt.update(0, &mut p, &[0.5, -2.0], 0.01);
        assert!(
            (p[0] - 0.99).abs() < 1e-6 && (p[1] - 1.01).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn adamw_decays_weights_without_gradient_and_adam_l2_does_through_it() {
        let mut w = Optimizer::new(OptimizerKind::AdamW { weight_decay: 0.1 }, [1]);
        let mut p = [2.0f32];
        w.begin_step();
        w.update(0, &mut p, &[0.0], 0.1);
        assert!((p[0] - 1.98).abs() < 1e-6, "{p:?}");
    }
}
