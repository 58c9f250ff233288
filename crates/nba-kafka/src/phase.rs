//! Where a stage's Kafka shell stands: the states [`run_stage`] moves
//! through, one at a time, shown on `/readyz` and `/metrics` as they change
//! (a revoke's drain runs inside the consumer's poll, so the scrape the run
//! loop renders could not show it).
//!
//! ```text
//! Starting ─► CatchingUp ─► Joining ─► Restoring ─► Running ─► Stopping
//!                              ▲                      │
//!                              └────── Draining ◄─────┘  (a revoke)
//! ```
//!
//! [`run_stage`]: crate::run_stage

use std::sync::atomic::{AtomicU8, Ordering};

/// One state of a stage's shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the brokers and opening its clients.
    Starting,
    /// Reading its broadcast topics (the model) up to where they ended at
    /// start, before it decides anything.
    CatchingUp,
    /// Subscribed, waiting for the group to assign it partitions.
    Joining,
    /// Given partitions: restoring their state from the changelog and
    /// recalling the answers it published, before reading them.
    Restoring,
    /// Reading its partitions: the only ready state.
    Running,
    /// Partitions are being revoked: publishing what it holds in memory,
    /// waiting for every acknowledgement, committing.
    Draining,
    /// Stopping: draining, committing and handing its partitions back.
    Stopping,
}

impl Phase {
    /// Every phase, in the order a run goes through them.
    pub(crate) const ALL: [Phase; 7] = [
        Phase::Starting,
        Phase::CatchingUp,
        Phase::Joining,
        Phase::Restoring,
        Phase::Running,
        Phase::Draining,
        Phase::Stopping,
    ];

    /// Its label on `/metrics`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::CatchingUp => "catching_up",
            Phase::Joining => "joining",
            Phase::Restoring => "restoring",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
        }
    }

    /// What `/readyz` says while in it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Phase::Starting => "starting: waiting for the brokers",
            Phase::CatchingUp => "catching up with the broadcast topics",
            Phase::Joining => "joining the group: no partitions assigned yet",
            Phase::Restoring => "restoring the state of newly assigned partitions",
            Phase::Running => "running",
            Phase::Draining => "draining and committing before partitions are revoked",
            Phase::Stopping => "stopping",
        }
    }
}

/// The current phase, shared by the run loop, the consumer's rebalance
/// callbacks and the HTTP server.
#[derive(Debug)]
pub(crate) struct PhaseCell(AtomicU8);

impl Default for PhaseCell {
    fn default() -> Self {
        Self(AtomicU8::new(0))
    }
}

impl PhaseCell {
    pub(crate) fn get(&self) -> Phase {
        Phase::ALL[usize::from(self.0.load(Ordering::Relaxed)).min(Phase::ALL.len() - 1)]
    }

    pub(crate) fn set(&self, phase: Phase) {
        let index = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        self.0.store(index as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_gives_back_every_phase_it_was_given() {
        let cell = PhaseCell::default();
        assert_eq!(cell.get(), Phase::Starting);
        for phase in Phase::ALL {
            cell.set(phase);
            assert_eq!(cell.get(), phase);
        }
        let names: std::collections::BTreeSet<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Phase::ALL.len());
    }
}
