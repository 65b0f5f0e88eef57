//! No training beside a latency measurement on the same host.
//!
//! Every agent of a host opens the same pair of lock files (by default in
//! the temporary folder; [`HostGate::ENV`] moves them, e.g. onto a volume
//! that the worker containers of one machine share). A training or
//! validation batch holds the `batch` lock shared; an agent that measures
//! first takes the `intent` lock exclusively (so no new batch starts), then
//! the `batch` lock exclusively (so the batches in flight end), measures,
//! and lets go. Trainers touch the `intent` lock only for an instant before
//! each batch, so a waiting measurement is never starved. The locks are the
//! kernel's `flock`s: one per open file, so agents in one process exclude
//! each other just as separate processes do, and a crashed process's locks
//! vanish with it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One agent's handle on its host's latency gate.
#[derive(Debug)]
pub struct HostGate {
    path: PathBuf,
    intent: File,
    batch: File,
    paused_nanos: AtomicU64,
}

/// A training or validation batch in progress: holds measurements off
/// until it is dropped.
#[derive(Debug)]
#[must_use = "the batch lock is let go when the turn is dropped"]
pub struct BatchTurn<'g> {
    gate: &'g HostGate,
}

/// The host is quiet (no batch of any agent runs) until this is dropped.
#[derive(Debug)]
#[must_use = "the host is quiet only while this is held"]
pub struct Quiet<'g> {
    gate: &'g HostGate,
    /// How long the measurement waited for the host to go quiet.
    pub waited: Duration,
}

impl HostGate {
    /// Environment variable naming the lock file (all agents of a host must
    /// agree on it).
    pub const ENV: &'static str = "NAS_LATENCY_LOCK";

    /// The lock file: `$NAS_LATENCY_LOCK`, else `nas-latency.lock` in the
    /// temporary folder.
    pub fn default_path() -> PathBuf {
        std::env::var_os(Self::ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(
                || std::env::temp_dir().join("nas-latency.lock"),
                PathBuf::from,
            )
    }

    /// Opens (creating if needed) the gate at `path` and `path.batch`.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
        };
        let mut batch_path = path.as_os_str().to_owned();
        batch_path.push(".batch");
        Ok(Self {
            path: path.to_owned(),
            intent: open(path)?,
            batch: open(Path::new(&batch_path))?,
            paused_nanos: AtomicU64::new(0),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits while a measurement is on, then holds measurements off until
    /// the turn is dropped. Call before each batch.
    pub fn batch(&self) -> io::Result<BatchTurn<'_>> {
        let started = Instant::now();
        self.intent.lock_shared()?;
        self.intent.unlock()?;
        self.batch.lock_shared()?;
        let waited = started.elapsed().as_nanos();
        self.paused_nanos
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
        Ok(BatchTurn { gate: self })
    }

    /// Stops new batches on the host, waits for those in flight, and keeps
    /// the host quiet until the guard is dropped. Call to measure.
    pub fn quiet(&self) -> io::Result<Quiet<'_>> {
        let started = Instant::now();
        self.intent.lock()?;
        if let Err(e) = self.batch.lock() {
            let _ = self.intent.unlock();
            return Err(e);
        }
        Ok(Quiet {
            gate: self,
            waited: started.elapsed(),
        })
    }

    /// Time this agent's batches spent waiting for measurements so far
    /// (plus the few microseconds each turn's locking costs).
    pub fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused_nanos.load(Ordering::Relaxed))
    }
}

impl Drop for BatchTurn<'_> {
    fn drop(&mut self) {
        let _ = self.gate.batch.unlock();
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        let _ = self.gate.batch.unlock();
        let _ = self.gate.intent.unlock();
    }
}

/// Opens the gate at `path` for one agent; a lock file that cannot be
/// opened is logged and means no coordination (never an error).
pub fn open_or_warn(path: &Path) -> Option<Arc<HostGate>> {
    match HostGate::open(path) {
        Ok(gate) => Some(Arc::new(gate)),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot open the latency lock file; latency is measured beside training");
            None
        }
    }
}

/// A batch turn of `gate` when there is one; a gate that fails (a lock file
/// gone read-only) is logged and ignored, never fatal to training.
pub fn turn(gate: Option<&HostGate>) -> Option<BatchTurn<'_>> {
    gate.and_then(|g| {
        g.batch()
            .map_err(|e| tracing::warn!(error = %e, path = %g.path().display(), "latency gate unavailable for this batch"))
            .ok()
    })
}

/// Runs `f` inside a [`turn`] of `gate`.
pub fn in_turn<T>(gate: Option<&HostGate>, f: impl FnOnce() -> T) -> T {
    let turn = turn(gate);
    let out = f();
    drop(turn);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn temp_lock(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nas-gate-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("latency.lock")
    }

    #[test]
    fn no_batch_of_another_agent_runs_while_the_host_is_quiet() {
        let path = temp_lock("quiet");
        let log: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trainers: Vec<_> = (0..2)
            .map(|_| {
                let (path, log, stop) = (path.clone(), log.clone(), stop.clone());
                std::thread::spawn(move || {
                    let gate = HostGate::open(&path).expect("gate");
                    while !stop.load(Ordering::Relaxed) {
                        let turn = gate.batch().expect("turn");
                        let start = Instant::now();
                        std::thread::sleep(Duration::from_millis(3));
                        log.lock().expect("log").push((start, Instant::now()));
                        drop(turn);
                    }
                    gate.paused()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let measurer = HostGate::open(&path).expect("gate");
        let mut windows = Vec::new();
        for _ in 0..5 {
            let quiet = measurer.quiet().expect("quiet");
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(20));
            windows.push((start, Instant::now()));
            drop(quiet);
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let paused: Vec<Duration> = trainers
            .into_iter()
            .map(|t| t.join().expect("trainer"))
            .collect();
        let batches = log.lock().expect("log").clone();
        assert!(batches.len() > 10, "the trainers ran between measurements");
        for (q0, q1) in &windows {
            for (b0, b1) in &batches {
                assert!(b1 <= q0 || b0 >= q1, "a batch ran during a measurement");
            }
        }
        // Between them the trainers waited out most of the 5 x 20 ms.
        let total: Duration = paused.iter().sum();
        assert!(total >= Duration::from_millis(100), "paused {total:?}");
    }

    #[test]
    fn in_turn_runs_without_a_gate() {
        assert_eq!(in_turn(None, || 7), 7);
        let gate = HostGate::open(&temp_lock("none")).expect("gate");
        assert_eq!(in_turn(Some(&gate), || 8), 8);
        // The turn is over: the same agent can make the host quiet.
        drop(gate.quiet().expect("quiet"));
    }
}
