//! Multi-fidelity scheduling: how many epochs a trial trains before it is
//! judged, and whether it goes on. Asynchronous successive halving (ASHA;
//! Li et al., "A System for Massively Parallel Hyperparameter Tuning",
//! MLSys 2020) as pure functions; the store applies them in the transaction
//! that records a rung's result.

use serde::{Deserialize, Serialize};

use crate::spec_error::SpecError;

/// Largest `eta`.
pub const MAX_ETA: u32 = 16;

/// Whether trials are trained once to a fixed budget or through rungs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scheduler {
    /// Every trial trains `budget.epochs` epochs, no early stopping.
    #[default]
    None,
    /// Asynchronous successive halving. Rungs end at `min_epochs · eta^k`
    /// epochs (the last at `max_epochs`). A trial that ends a rung goes on
    /// to the next if it ranks in the top `ceil(n / eta)` of the `n` trials
    /// that have ended that rung so far (itself included), otherwise it
    /// ends `stopped` (early). It goes on from its checkpoint, on any
    /// worker.
    Asha {
        /// Epochs of the first rung (default 1).
        #[serde(default = "default_min_epochs")]
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
        min_epochs: u32,
        /// Epochs of the last rung (default 27).
        #[serde(default = "default_max_epochs")]
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
        max_epochs: u32,
        /// Reduction factor: about 1 in `eta` trials goes on at each rung
        /// (default 3, at least 2).
        #[serde(default = "default_eta")]
        #[cfg_attr(feature = "openapi", schema(minimum = 2, maximum = 16))]
        eta: u32,
    },
}

fn default_min_epochs() -> u32 {
    1
}
fn default_max_epochs() -> u32 {
    27
}
fn default_eta() -> u32 {
    3
}

impl Scheduler {
    /// ASHA with its defaults (1 to 27 epochs, eta 3: rungs at 1, 3, 9, 27).
    pub fn asha() -> Self {
        Self::Asha {
            min_epochs: default_min_epochs(),
            max_epochs: default_max_epochs(),
            eta: default_eta(),
        }
    }

    /// The epoch at which each rung ends, ascending; the last is the most
    /// any trial trains. Without a scheduler, one rung of `epochs`.
    pub fn rungs(&self, epochs: u32) -> Vec<u32> {
        match *self {
            Self::None => vec![epochs],
            Self::Asha {
                min_epochs,
                max_epochs,
                eta,
            } => {
                let mut rungs = Vec::new();
                let mut r = u64::from(min_epochs.max(1));
                while r < u64::from(max_epochs) {
                    rungs.push(r as u32);
                    r *= u64::from(eta.max(2));
                }
                rungs.push(max_epochs);
                rungs
            }
        }
    }

    /// Checks the numbers, naming the field (`scheduler.eta`, ...).
    pub fn check(&self, max_epochs_bound: u32) -> Result<(), SpecError> {
        if let Self::Asha {
            min_epochs,
            max_epochs,
            eta,
        } = *self
        {
            if !(2..=MAX_ETA).contains(&eta) {
                return Err(SpecError::field(
                    "scheduler.eta",
                    format!("must be between 2 and {MAX_ETA} (about 1 in eta trials goes on at each rung)"),
                ));
            }
            if min_epochs == 0 {
                return Err(SpecError::field(
                    "scheduler.min_epochs",
                    "must be at least 1",
                ));
            }
            if max_epochs > max_epochs_bound {
                return Err(SpecError::field(
                    "scheduler.max_epochs",
                    format!("must be at most {max_epochs_bound}"),
                ));
            }
            if min_epochs > max_epochs {
                return Err(SpecError::field(
                    "scheduler.min_epochs",
                    format!("must not exceed scheduler.max_epochs ({max_epochs})"),
                ));
            }
        }
        Ok(())
    }

    /// The reduction factor (`None` without a scheduler).
    pub fn eta(&self) -> Option<u32> {
        match *self {
            Self::None => None,
            Self::Asha { eta, .. } => Some(eta),
        }
    }
}

/// ASHA's rule: a trial with `reward` that has just ended a rung goes on
/// if it ranks in the top `ceil(n / eta)` of the `n` rewards recorded at
/// that rung (`rung_rewards`, its own included). Ties go on. The first
/// trial at a rung always goes on, so a search never stalls waiting for a
/// rung to fill; the price is noisy early decisions, which ASHA accepts.
pub fn goes_on(reward: f64, rung_rewards: &[f64], eta: u32) -> bool {
    let n = rung_rewards.len().max(1);
    let better = rung_rewards.iter().filter(|&&r| r > reward).count();
    better < n.div_ceil(eta.max(2) as usize)
}

/// How well informed a trial's result is, for choosing parents and final
/// models: the highest rung reached first, then the reward. A network
/// trained 27 epochs that scores 0.91 is better evidence than one scored
/// 0.92 after 1 epoch had it been trained on, the low rungs' rewards are
/// noisy and biased towards networks that learn fast, so a result is only
/// compared on reward with results of the same rung.
pub fn best_informed_key(rung: u32, reward: f64) -> (u32, f64) {
    (rung, reward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_grow_by_eta_up_to_the_maximum() {
        assert_eq!(Scheduler::asha().rungs(5), vec![1, 3, 9, 27]);
        let s = Scheduler::Asha {
            min_epochs: 2,
            max_epochs: 20,
            eta: 3,
        };
        assert_eq!(s.rungs(5), vec![2, 6, 18, 20]);
        let one = Scheduler::Asha {
            min_epochs: 4,
            max_epochs: 4,
            eta: 2,
        };
        assert_eq!(one.rungs(1), vec![4]);
        assert_eq!(Scheduler::None.rungs(5), vec![5]);
    }

    #[test]
    fn the_top_third_goes_on_and_the_first_always_does() {
        assert!(goes_on(0.5, &[0.5], 3));
        assert!(!goes_on(0.4, &[0.5, 0.4], 3));
        assert!(goes_on(0.6, &[0.5, 0.6], 3));
        // Four results at eta 3: the top two go on.
        assert!(goes_on(0.7, &[0.9, 0.7, 0.5, 0.6], 3));
        assert!(!goes_on(0.6, &[0.9, 0.7, 0.5, 0.6], 3));
        // Ties go on.
        assert!(goes_on(0.5, &[0.5, 0.5, 0.5], 3));
    }

    #[test]
    fn bad_numbers_name_their_field() {
        let check = |s: Scheduler| s.check(1000).expect_err("refused").field;
        let asha = |min_epochs, max_epochs, eta| Scheduler::Asha {
            min_epochs,
            max_epochs,
            eta,
        };
        assert_eq!(check(asha(1, 27, 1)), "scheduler.eta");
        assert_eq!(check(asha(9, 3, 3)), "scheduler.min_epochs");
        assert_eq!(check(asha(0, 3, 3)), "scheduler.min_epochs");
        assert_eq!(check(asha(1, 5000, 3)), "scheduler.max_epochs");
        assert!(Scheduler::asha().check(1000).is_ok());
    }
}
