//! Trial states and search statuses as the SQL literals queries filter and
//! set by, derived from [`TrialState`] and [`SearchStatus`] (a test checks
//! they agree), so no query spells a state by hand.

#[cfg(test)]
use crate::{SearchStatus, TrialPhase, TrialState};

/// `'pending'`: [`TrialState::Pending`].
pub(crate) const PENDING: &str = "'pending'";
/// `'running'`: [`TrialState::Running`].
pub(crate) const RUNNING: &str = "'running'";
/// `'succeeded'`: [`TrialState::Succeeded`].
pub(crate) const SUCCEEDED: &str = "'succeeded'";
/// `'cancelled'`: [`TrialState::Cancelled`].
pub(crate) const CANCELLED: &str = "'cancelled'";
/// `'rejected'`: [`TrialState::Rejected`].
pub(crate) const REJECTED: &str = "'rejected'";
/// `'stopped'`: [`TrialState::Stopped`].
pub(crate) const STOPPED: &str = "'stopped'";
/// `'search'`: [`TrialPhase::Search`].
pub(crate) const PHASE_SEARCH: &str = "'search'";
/// `'final'`: [`TrialPhase::Final`].
pub(crate) const PHASE_FINAL: &str = "'final'";
/// `'running'`: [`SearchStatus::Running`].
pub(crate) const SEARCH_RUNNING: &str = "'running'";
/// `'cancelled'`: [`SearchStatus::Cancelled`].
pub(crate) const SEARCH_CANCELLED: &str = "'cancelled'";
/// `'failed'`: [`SearchStatus::Failed`].
pub(crate) const SEARCH_FAILED: &str = "'failed'";

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(name: &str) -> String {
        format!("'{name}'")
    }

    #[test]
    fn the_literals_are_the_enums_stored_names() {
        let trial = [
            (PENDING, TrialState::Pending),
            (RUNNING, TrialState::Running),
            (SUCCEEDED, TrialState::Succeeded),
            (CANCELLED, TrialState::Cancelled),
            (REJECTED, TrialState::Rejected),
            (STOPPED, TrialState::Stopped),
        ];
        for (literal, state) in trial {
            assert_eq!(literal, quoted(state.as_str()));
        }
        assert_eq!(PHASE_SEARCH, quoted(TrialPhase::Search.as_str()));
        assert_eq!(PHASE_FINAL, quoted(TrialPhase::Final.as_str()));
        assert_eq!(SEARCH_RUNNING, quoted(SearchStatus::Running.as_str()));
        assert_eq!(SEARCH_CANCELLED, quoted(SearchStatus::Cancelled.as_str()));
        assert_eq!(SEARCH_FAILED, quoted(SearchStatus::Failed.as_str()));
    }
}
