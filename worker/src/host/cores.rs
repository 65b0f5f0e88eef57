//! The cores of one worker process, shared by its agents.
//!
//! Agents of a pool normally split the cores evenly (`threads` each). A
//! final model is the one long job a search ends with, and is often the
//! only work left: claimed while every other agent of the pool is idle, it
//! trains on **all** of the pool's threads, and the other agents stop
//! claiming until it ends. On small machines this is much faster than two
//! trainings side by side (measured on the 2-vCPU reference machine: one
//! two-thread training 574 img/s, two one-thread trainings 195 img/s
//! each), and a final model's wall time is what its user waits for.
//!
//! Claims go through [`CoreShare::claim_turn`] so that two agents cannot
//! both see the other idle and both take every core.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{watch, Mutex as AsyncMutex, OwnedMutexGuard};

/// How a pool's agents share its cores.
#[derive(Debug)]
pub struct CoreShare {
    /// Threads of one agent in normal, shared operation.
    per_agent: usize,
    /// Threads of the whole pool (what an exclusive final model gets).
    total: usize,
    /// Whether final models may take every core (see the module docs).
    exclusive_finals: bool,
    /// Agents with a trial running.
    busy: Mutex<usize>,
    /// True while a final model holds every core.
    exclusive: watch::Sender<bool>,
    /// Held from the claim to [`CoreShare::start`]: one claim at a time.
    claiming: Arc<AsyncMutex<()>>,
}

/// An agent's turn to claim; [`CoreShare::start`] turns it into a lease.
#[derive(Debug)]
pub struct ClaimTurn {
    _guard: OwnedMutexGuard<()>,
}

/// The threads one running trial may use; dropping it gives them back.
#[derive(Debug)]
pub struct CoreLease {
    share: Arc<CoreShare>,
    threads: usize,
    exclusive: bool,
}

impl CoreShare {
    /// A pool of `agents` agents with `per_agent` threads each.
    pub fn new(agents: usize, per_agent: usize, exclusive_finals: bool) -> Arc<Self> {
        Arc::new(Self {
            per_agent,
            total: per_agent.saturating_mul(agents).max(per_agent),
            exclusive_finals,
            busy: Mutex::new(0),
            exclusive: watch::channel(false).0,
            claiming: Arc::new(AsyncMutex::new(())),
        })
    }

    /// Waits until no final model holds every core, then for this agent's
    /// turn to claim. `None` if `stop` turned true meanwhile.
    pub async fn claim_turn(&self, stop: &mut watch::Receiver<bool>) -> Option<ClaimTurn> {
        loop {
            let mut exclusive = self.exclusive.subscribe();
            tokio::select! {
                waited = exclusive.wait_for(|held| !held) => { waited.ok()?; }
                _ = stop.wait_for(|stop| *stop) => return None,
            }
            let guard = self.claiming.clone().lock_owned().await;
            // A final model may have taken the cores while this agent
            // waited for the claim lock.
            if !*self.exclusive.borrow() {
                return Some(ClaimTurn { _guard: guard });
            }
        }
    }

    /// The lease of a trial claimed during `turn`: every thread of the pool
    /// for a final model claimed while all other agents are idle, else this
    /// agent's share.
    pub fn start(self: &Arc<Self>, turn: ClaimTurn, final_model: bool) -> CoreLease {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        let exclusive =
            final_model && self.exclusive_finals && *busy == 0 && self.total > self.per_agent;
        *busy += 1;
        if exclusive {
            self.exclusive.send_replace(true);
        }
        drop(busy);
        drop(turn);
        CoreLease {
            share: self.clone(),
            threads: if exclusive {
                self.total
            } else {
                self.per_agent
            },
            exclusive,
        }
    }
}

impl CoreLease {
    /// Training threads for this trial.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether this trial holds every core of the pool.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

impl Drop for CoreLease {
    fn drop(&mut self) {
        let mut busy = self
            .share
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *busy = busy.saturating_sub(1);
        if self.exclusive {
            self.share.exclusive.send_replace(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn never_stop() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    #[tokio::test]
    async fn a_final_model_claimed_on_an_idle_pool_takes_every_core() {
        let share = CoreShare::new(2, 1, true);
        let mut stop = never_stop();
        let turn = share.claim_turn(&mut stop).await.expect("turn");
        let lease = share.start(turn, true);
        assert_eq!(lease.threads(), 2);
        assert!(lease.is_exclusive());
        // The other agent cannot claim until the final model ends.
        let waiting = tokio::time::timeout(Duration::from_millis(50), share.claim_turn(&mut stop));
        assert!(waiting.await.is_err(), "claimed while the cores were held");
        drop(lease);
        let turn = tokio::time::timeout(Duration::from_secs(5), share.claim_turn(&mut stop))
            .await
            .expect("the cores came back")
            .expect("turn");
        assert_eq!(share.start(turn, false).threads(), 1);
    }

    #[tokio::test]
    async fn a_final_model_beside_a_running_trial_gets_its_share() {
        let share = CoreShare::new(2, 1, true);
        let mut stop = never_stop();
        let first = share.start(share.claim_turn(&mut stop).await.expect("turn"), false);
        let second = share.start(share.claim_turn(&mut stop).await.expect("turn"), true);
        assert_eq!((first.threads(), second.threads()), (1, 1));
        assert!(!second.is_exclusive());
    }

    #[tokio::test]
    async fn exclusive_finals_can_be_turned_off_and_a_lone_agent_keeps_its_threads() {
        let mut stop = never_stop();
        let off = CoreShare::new(2, 1, false);
        let lease = off.start(off.claim_turn(&mut stop).await.expect("turn"), true);
        assert_eq!(lease.threads(), 1);
        let lone = CoreShare::new(1, 2, true);
        let lease = lone.start(lone.claim_turn(&mut stop).await.expect("turn"), true);
        assert_eq!((lease.threads(), lease.is_exclusive()), (2, false));
    }

    #[tokio::test]
    async fn a_waiting_agent_stops_on_shutdown() {
        let share = CoreShare::new(2, 1, true);
        let (stop_tx, mut stop) = watch::channel(false);
        let _held = share.start(share.claim_turn(&mut stop).await.expect("turn"), true);
        let waiting = tokio::spawn({
            let share = share.clone();
            async move { share.claim_turn(&mut stop).await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop_tx.send_replace(true);
        assert!(waiting.await.expect("joined"), "the agent kept waiting");
    }
}
