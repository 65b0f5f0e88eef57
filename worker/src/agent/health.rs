//! What a worker process says of itself to a supervisor (Kubernetes'
//! probes, `nas worker --health-addr`): each agent's state, its current
//! trial and when it last heartbeat or polled the queue.
//!
//! An agent is **stalled** when it should be making calls to the store and
//! has not for [`Health::stale_after`]: one running a trial heartbeats every
//! few seconds, an idle one polls the queue; one waiting for cores (another
//! agent's final model holds them all) or pausing after an infrastructure
//! failure is expected to be quiet. A process with a stalled agent is not
//! alive (restart it: its trials' leases expire and another worker resumes
//! them from their checkpoints). It is **ready** when every agent reached
//! the store recently.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Registering with the store.
    Starting,
    /// Looking for a trial (polls the queue).
    Idle,
    /// Running a trial (heartbeats).
    Running,
    /// Waiting for its share of the cores (quiet by design).
    WaitingForCores,
    /// Pausing after an infrastructure failure (quiet by design).
    BackingOff,
    /// Stopped (shut down).
    Stopped,
}

impl AgentState {
    /// Whether an agent in this state calls the store regularly.
    fn calls_the_store(self) -> bool {
        matches!(self, Self::Starting | Self::Idle | Self::Running)
    }
}

#[derive(Debug, Clone)]
struct AgentRecord {
    state: AgentState,
    since: Instant,
    trial: Option<i64>,
    /// The agent's last call to the store (claim, heartbeat), answered or not.
    last_call: Instant,
    /// Its last answered heartbeat.
    last_heartbeat: Option<Instant>,
    /// Its last call the store answered.
    last_answer: Option<Instant>,
}

/// The health of a pool's agents, shared by them and the health endpoint.
#[derive(Debug)]
pub struct Health {
    agents: Mutex<BTreeMap<String, AgentRecord>>,
    stale_after: Duration,
}

/// One agent as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// The agent's worker id.
    pub worker_id: String,
    /// What it is doing.
    pub state: AgentState,
    /// Seconds in that state.
    pub state_seconds: f64,
    /// The trial it runs.
    pub current_trial: Option<i64>,
    /// Seconds since its last call to the store (claim or heartbeat).
    pub last_call_seconds: f64,
    /// Seconds since its last answered heartbeat.
    pub last_heartbeat_seconds: Option<f64>,
    /// Whether it should have called the store and has not for too long.
    pub stalled: bool,
}

/// The process as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// No agent stalled: `ok` or `stalled`.
    pub status: &'static str,
    /// Every agent reached the store within the stale window.
    pub ready: bool,
    /// Seconds after which a quiet agent counts as stalled.
    pub stale_after_seconds: f64,
    /// The agents, by worker id.
    pub agents: Vec<AgentHealth>,
}

impl HealthReport {
    /// Whether the process is alive (no agent stalled).
    pub fn alive(&self) -> bool {
        self.status == "ok"
    }
}

impl Health {
    /// Health with agents counted stalled after `stale_after` without a call.
    pub fn new(stale_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            agents: Mutex::new(BTreeMap::new()),
            stale_after,
        })
    }

    /// The stale window.
    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    fn with(&self, worker_id: &str, change: impl FnOnce(&mut AgentRecord, Instant)) {
        let now = Instant::now();
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        let record = agents
            .entry(worker_id.to_owned())
            .or_insert_with(|| AgentRecord {
                state: AgentState::Starting,
                since: now,
                trial: None,
                last_call: now,
                last_heartbeat: None,
                last_answer: None,
            });
        change(record, now);
    }

    /// The agent is now in `state` (with `trial` when running one).
    pub fn set_state(&self, worker_id: &str, state: AgentState, trial: Option<i64>) {
        self.with(worker_id, |r, now| {
            if r.state != state {
                r.since = now;
                // Quiet states end with a fresh window.
                r.last_call = now;
            }
            r.state = state;
            r.trial = trial;
        });
    }

    /// The agent called the store; `answered` if the store replied.
    pub fn called_store(&self, worker_id: &str, answered: bool) {
        self.with(worker_id, |r, now| {
            r.last_call = now;
            if answered {
                r.last_answer = Some(now);
            }
        });
    }

    /// The agent's heartbeat for its trial was answered.
    pub fn heartbeat(&self, worker_id: &str) {
        self.with(worker_id, |r, now| {
            r.last_call = now;
            r.last_answer = Some(now);
            r.last_heartbeat = Some(now);
        });
    }

    /// The report now.
    pub fn report(&self) -> HealthReport {
        let now = Instant::now();
        let agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        let secs = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
        let stale = self.stale_after.as_secs_f64();
        let reported: Vec<AgentHealth> = agents
            .iter()
            .map(|(id, r)| AgentHealth {
                worker_id: id.clone(),
                state: r.state,
                state_seconds: secs(r.since),
                current_trial: r.trial,
                last_call_seconds: secs(r.last_call),
                last_heartbeat_seconds: r.last_heartbeat.map(secs),
                stalled: r.state.calls_the_store() && secs(r.last_call) > stale,
            })
            .collect();
        let ready = !agents.is_empty()
            && agents.values().all(|r| {
                r.state == AgentState::Stopped || r.last_answer.is_some_and(|t| secs(t) <= stale)
            });
        HealthReport {
            status: if reported.iter().any(|a| a.stalled) {
                "stalled"
            } else {
                "ok"
            },
            ready,
            stale_after_seconds: stale,
            agents: reported,
        }
    }
}

/// One agent's handle on its pool's [`Health`] (does nothing without one).
#[derive(Debug, Clone, Default)]
pub struct HealthHandle {
    health: Option<Arc<Health>>,
    worker_id: String,
}

impl HealthHandle {
    /// The handle of agent `worker_id` on `health`.
    pub fn new(health: Option<Arc<Health>>, worker_id: &str) -> Self {
        Self {
            health,
            worker_id: worker_id.to_owned(),
        }
    }

    /// See [`Health::set_state`].
    pub fn state(&self, state: AgentState, trial: Option<i64>) {
        if let Some(h) = &self.health {
            h.set_state(&self.worker_id, state, trial);
        }
    }

    /// See [`Health::called_store`].
    pub fn called_store(&self, answered: bool) {
        if let Some(h) = &self.health {
            h.called_store(&self.worker_id, answered);
        }
    }

    /// A heartbeat's outcome: answered (see [`Health::heartbeat`]) or not.
    pub fn heartbeat(&self, answered: bool) {
        match &self.health {
            Some(h) if answered => h.heartbeat(&self.worker_id),
            Some(h) => h.called_store(&self.worker_id, false),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_agent_stalls_unless_quiet_by_design() {
        let health = Health::new(Duration::from_millis(30));
        health.set_state("a", AgentState::Idle, None);
        health.called_store("a", true);
        let report = health.report();
        assert!(report.alive() && report.ready, "{report:?}");
        std::thread::sleep(Duration::from_millis(50));
        let report = health.report();
        assert!(!report.alive(), "no poll for longer than the window");
        assert!(!report.ready);
        health.set_state("a", AgentState::WaitingForCores, None);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            health.report().alive(),
            "waiting for cores is quiet by design"
        );
        health.set_state("a", AgentState::Running, Some(7));
        health.heartbeat("a");
        let report = health.report();
        assert!(report.alive() && report.ready);
        assert_eq!(report.agents[0].current_trial, Some(7));
        assert!(report.agents[0].last_heartbeat_seconds.is_some());
    }

    #[test]
    fn unanswered_calls_keep_it_alive_but_not_ready() {
        let health = Health::new(Duration::from_millis(30));
        health.set_state("a", AgentState::Idle, None);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(15));
            health.called_store("a", false);
        }
        let report = health.report();
        assert!(report.alive(), "the loop turns: the database is away");
        assert!(!report.ready, "{report:?}");
    }
}
