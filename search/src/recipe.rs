//! The training recipe: optimiser, learning-rate schedule, augmentation and
//! label smoothing, as a spec names them and the worker applies them. Pure
//! data and the schedule's arithmetic; the optimiser's state lives in the
//! worker.

use serde::{Deserialize, Serialize};

use crate::spec_error::SpecError;

/// Which optimiser, with its hyper-parameters (the learning rate comes from
/// the schedule). Follows PyTorch's definitions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with momentum (heavy-ball or Nesterov).
    Sgd {
        /// Momentum in `[0, 1)` (default 0.9).
        #[serde(default = "default_momentum")]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, exclusive_maximum = 1))]
        momentum: f32,
        /// Nesterov momentum (default false).
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient (default 5e-4).
        #[serde(default = "default_sgd_decay")]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        weight_decay: f32,
    },
    /// Adam; weight decay is added to the gradient (L2).
    Adam {
        /// L2 penalty (default 0).
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        weight_decay: f32,
    },
    /// AdamW: weight decay applied to the weights directly.
    #[serde(rename = "adamw")]
    AdamW {
        /// Decoupled decay (default 0.01).
        #[serde(default = "default_adamw_decay")]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
        weight_decay: f32,
    },
}

fn default_momentum() -> f32 {
    0.9
}
fn default_sgd_decay() -> f32 {
    5e-4
}
fn default_adamw_decay() -> f32 {
    0.01
}

impl Default for OptimizerKind {
    fn default() -> Self {
        Self::adam()
    }
}

impl OptimizerKind {
    /// SGD with its defaults (momentum 0.9, no Nesterov, decay 5e-4).
    pub fn sgd() -> Self {
        Self::Sgd {
            momentum: default_momentum(),
            nesterov: false,
            weight_decay: default_sgd_decay(),
        }
    }
    /// Adam with its defaults.
    pub fn adam() -> Self {
        Self::Adam { weight_decay: 0.0 }
    }
    /// AdamW with its defaults.
    pub fn adamw() -> Self {
        Self::AdamW {
            weight_decay: default_adamw_decay(),
        }
    }

    /// Parses `sgd`, `nesterov`, `adam` or `adamw` (with default hyper-parameters).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sgd" => Some(Self::sgd()),
            "nesterov" => Some(Self::Sgd {
                momentum: default_momentum(),
                nesterov: true,
                weight_decay: default_sgd_decay(),
            }),
            "adam" => Some(Self::adam()),
            "adamw" => Some(Self::adamw()),
            _ => None,
        }
    }

    /// The learning rate people start with for this optimiser.
    pub fn default_lr(&self) -> f64 {
        match self {
            Self::Sgd { .. } => 0.05,
            Self::Adam { .. } | Self::AdamW { .. } => 1e-3,
        }
    }

    /// Checks the hyper-parameters; `field` prefixes the error's field.
    pub fn check(&self, field: &str) -> Result<(), SpecError> {
        let decay = match *self {
            Self::Sgd {
                momentum,
                weight_decay,
                ..
            } => {
                if !(momentum.is_finite() && (0.0..1.0).contains(&momentum)) {
                    return Err(SpecError::field(
                        &format!("{field}.momentum"),
                        "must be in [0, 1)",
                    ));
                }
                weight_decay
            }
            Self::Adam { weight_decay } | Self::AdamW { weight_decay } => weight_decay,
        };
        if !(decay.is_finite() && (0.0..=1.0).contains(&decay)) {
            return Err(SpecError::field(
                &format!("{field}.weight_decay"),
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }
}

/// How the learning rate changes over a run. The horizon is the run's
/// planned length (for a multi-fidelity trial, its largest rung), so a
/// trial resumed between rungs follows the same curve as one trained
/// straight through.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Linear warm-up from 0 over `warmup_epochs`, then cosine decay to 0.
    Cosine {
        /// Epochs of linear warm-up (default 0).
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
        warmup_epochs: f64,
    },
    /// One-cycle (Smith & Topin; PyTorch's `OneCycleLR` with cosine
    /// annealing): from base/25 up to the base rate over `pct_start` of the
    /// run, then down to base/25e4.
    OneCycle {
        /// Fraction of the run spent rising (default 0.3).
        #[serde(default = "default_pct_start")]
        #[cfg_attr(
            feature = "openapi",
            schema(exclusive_minimum = 0, exclusive_maximum = 1)
        )]
        pct_start: f64,
    },
}

fn default_pct_start() -> f64 {
    0.3
}

/// One-cycle's starting rate is the base divided by this.
const ONE_CYCLE_DIV: f64 = 25.0;
/// One-cycle's final rate is the starting one divided by this.
const ONE_CYCLE_FINAL_DIV: f64 = 1e4;

/// Cosine interpolation from `from` (at `t = 0`) to `to` (at `t = 1`).
fn cosine(from: f64, to: f64, t: f64) -> f64 {
    to + (from - to) * 0.5 * (1.0 + (std::f64::consts::PI * t.clamp(0.0, 1.0)).cos())
}

impl Schedule {
    /// The cosine schedule without warm-up.
    pub fn cosine() -> Self {
        Self::Cosine { warmup_epochs: 0.0 }
    }

    /// The rate at `step` (0-based) of `total` planned steps, for base rate
    /// `base`, with `steps_per_epoch` steps in an epoch.
    pub fn rate(&self, base: f64, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
        let total = total.max(1) as f64;
        let step = step as f64;
        match *self {
            Self::Constant => base,
            Self::Cosine { warmup_epochs } => {
                let warmup = (warmup_epochs * steps_per_epoch as f64).min(total);
                if step < warmup {
                    base * (step + 1.0) / warmup
                } else {
                    cosine(base, 0.0, (step - warmup) / (total - warmup).max(1.0))
                }
            }
            Self::OneCycle { pct_start } => {
                let start = base / ONE_CYCLE_DIV;
                let end = start / ONE_CYCLE_FINAL_DIV;
                let rise = (pct_start * total).max(1.0);
                if step < rise {
                    cosine(start, base, step / rise)
                } else {
                    cosine(base, end, (step - rise) / (total - rise).max(1.0))
                }
            }
        }
    }

    /// Checks the schedule's numbers; `field` names it in errors.
    pub fn check(&self, field: &str) -> Result<(), SpecError> {
        match *self {
            Self::Constant => Ok(()),
            Self::Cosine { warmup_epochs } => {
                if !(warmup_epochs.is_finite() && (0.0..=100.0).contains(&warmup_epochs)) {
                    return Err(SpecError::field(
                        &format!("{field}.warmup_epochs"),
                        "must be between 0 and 100",
                    ));
                }
                Ok(())
            }
            Self::OneCycle { pct_start } => {
                if !(pct_start.is_finite() && pct_start > 0.0 && pct_start < 1.0) {
                    return Err(SpecError::field(
                        &format!("{field}.pct_start"),
                        "must be in (0, 1)",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Training-time augmentation (both off by default: right for digits; for
/// clothing or natural images, crop padding 2-4 and flips help).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augmentation {
    /// Random-crop padding in pixels (0: off; at most 16).
    #[cfg_attr(feature = "openapi", schema(maximum = 16))]
    pub crop_padding: u32,
    /// Random horizontal flips.
    pub horizontal_flip: bool,
}

/// Largest crop padding.
pub const MAX_CROP_PADDING: u32 = 16;
/// Largest label smoothing.
pub const MAX_LABEL_SMOOTHING: f64 = 0.5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_goes_from_base_to_zero_after_its_warm_up() {
        let s = Schedule::cosine();
        assert_eq!(s.rate(0.1, 0, 100, 10), 0.1);
        assert!((s.rate(0.1, 50, 100, 10) - 0.05).abs() < 1e-12);
        assert!(s.rate(0.1, 100, 100, 10).abs() < 1e-12);
        let warm = Schedule::Cosine { warmup_epochs: 2.0 };
        assert!((warm.rate(0.1, 0, 100, 10) - 0.005).abs() < 1e-12);
        assert!((warm.rate(0.1, 19, 100, 10) - 0.1).abs() < 1e-12);
        assert!(warm.rate(0.1, 60, 100, 10) < 0.1);
        assert_eq!(Schedule::Constant.rate(0.1, 70, 100, 10), 0.1);
    }

    #[test]
    fn one_cycle_rises_to_the_base_then_falls_far_below_the_start() {
        let s = Schedule::OneCycle { pct_start: 0.3 };
        let start = s.rate(1.0, 0, 100, 10);
        assert!((start - 0.04).abs() < 1e-12, "{start}");
        assert!((s.rate(1.0, 30, 100, 10) - 1.0).abs() < 1e-12);
        let end = s.rate(1.0, 100, 100, 10);
        assert!(end < start / 1000.0, "{end}");
    }

    #[test]
    fn recipes_read_from_json_with_defaults() {
        let sgd: OptimizerKind =
            serde_json::from_str(r#"{"kind": "sgd", "nesterov": true}"#).expect("sgd");
        assert_eq!(
            sgd,
            OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4
            }
        );
        let adamw: OptimizerKind = serde_json::from_str(r#"{"kind": "adamw"}"#).expect("adamw");
        assert_eq!(adamw, OptimizerKind::adamw());
        let cosine: Schedule =
            serde_json::from_str(r#"{"kind": "cosine", "warmup_epochs": 1}"#).expect("cosine");
        assert_eq!(cosine, Schedule::Cosine { warmup_epochs: 1.0 });
        assert!(
            OptimizerKind::Sgd {
                momentum: 1.0,
                nesterov: false,
                weight_decay: 0.0
            }
            .check("training.optimizer")
            .expect_err("momentum 1 is refused")
            .field
                == "training.optimizer.momentum"
        );
    }
}
