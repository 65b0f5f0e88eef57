//! Failure injection for the fault-tolerance tests: with `NAS_FAILPOINT`
//! set to a stage's name, a worker process aborts when it reaches that
//! stage, exactly as if it had been killed there (no cleanup, no hand-back).
//! Unset (always, in production) it does nothing.
//!
//! Stages, in the order a trial passes them: `after_claim`, `dataset`,
//! `latency`, `training` (after the first epoch), `weights`, `completion`.

/// The environment variable naming the stage to abort at.
pub const FAILPOINT_ENV: &str = "NAS_FAILPOINT";

/// Every stage a failpoint can name.
pub const STAGES: [&str; 6] = [
    "after_claim",
    "dataset",
    "latency",
    "training",
    "weights",
    "completion",
];

/// Aborts the process if `NAS_FAILPOINT` names `stage`.
pub fn hit(stage: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|wanted| wanted == stage) {
        tracing::error!(stage, "failpoint reached: aborting the process");
        std::process::abort();
    }
}
