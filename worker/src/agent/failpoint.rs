//! Failure injection for the fault-tolerance tests: with `NAS_FAILPOINT`
//! set to a stage's name, a worker process aborts when it reaches that
//! stage, exactly as if it had been killed there (no cleanup, no hand-back).
//! `stage:n` aborts at the n-th time the process reaches it (e.g.
//! `checkpoint:3`: while saving its third checkpoint). Unset (always, in
//! production) it does nothing.
//!
//! Stages, in the order a trial passes them: `after_claim`, `dataset`,
//! `resume` (reading the checkpoint of a promoted or retried trial),
//! `latency`, `training` (after the first epoch), `checkpoint` (before
//! storing an epoch's checkpoint), `weights`, `completion`.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming the stage to abort at.
pub const FAILPOINT_ENV: &str = "NAS_FAILPOINT";

/// Every stage a failpoint can name that every trial passes.
pub const STAGES: [&str; 6] = [
    "after_claim",
    "dataset",
    "latency",
    "training",
    "weights",
    "completion",
];

/// Times this process reached the stage `NAS_FAILPOINT` names.
static REACHED: AtomicUsize = AtomicUsize::new(0);

/// Aborts the process if `NAS_FAILPOINT` names `stage` (and, for
/// `stage:n`, this is the n-th time).
pub fn hit(stage: &str) {
    let Ok(wanted) = std::env::var(FAILPOINT_ENV) else {
        return;
    };
    let (name, nth) = match wanted.split_once(':') {
        Some((name, n)) => (name, n.parse::<usize>().unwrap_or(1)),
        None => (wanted.as_str(), 1),
    };
    if name != stage {
        return;
    }
    if REACHED.fetch_add(1, Ordering::SeqCst) + 1 >= nth {
        tracing::error!(stage, "failpoint reached: aborting the process");
        std::process::abort();
    }
}
