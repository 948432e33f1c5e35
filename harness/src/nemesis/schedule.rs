//! The seeded fault schedule: fault, heal, fault, heal... every `interval`.
//!
//! The first fault starts half an interval in (the cluster serves for a moment first), lasts
//! one interval, and the next starts one interval after its heal; a fault whose heal would
//! pass the time limit is not planned, so the run ends healed. Faults are drawn so that every
//! kind comes up in turn (in a shuffled order each round) and every variant of a kind before any
//! variant repeats: a default run (partition, 60 s, 5 s interval) shows every partition shape.

use super::fault::{Fault, FaultKind};
use serde::Serialize;
use std::time::Duration;
use workloads::Rng;

/// One planned fault and its heal, as offsets from the start of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    /// When the fault starts.
    pub start: Duration,
    /// When it is healed. Invariant: `start < heal`.
    pub heal: Duration,
    /// The fault.
    pub fault: Fault,
    /// The seed for its choices at run time (which nodes, which links).
    pub seed: u64,
}

/// The schedule for `kinds` over `time_limit` with faults and heals `interval` apart.
#[must_use]
pub fn schedule(
    seed: u64,
    kinds: &[FaultKind],
    time_limit: Duration,
    interval: Duration,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if kinds.is_empty() || interval.is_zero() {
        return steps;
    }
    let mut rng = Rng::new(seed);
    // One deck of variants per kind, reshuffled when it runs out.
    let mut decks: Vec<(FaultKind, Vec<Fault>)> = kinds.iter().map(|k| (*k, Vec::new())).collect();
    let mut round: Vec<usize> = Vec::new();
    let mut start = interval / 2;
    while start + interval <= time_limit {
        if round.is_empty() {
            round = (0..decks.len()).collect();
            rng.shuffle(&mut round);
        }
        let (kind, deck) = &mut decks[round.pop().expect("refilled above")];
        if deck.is_empty() {
            *deck = kind.variants();
            rng.shuffle(deck);
        }
        let fault = deck.pop().expect("refilled above");
        steps.push(Step {
            start,
            heal: start + interval,
            fault,
            seed: rng.next_u64(),
        });
        start += 2 * interval;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Shape;
    use std::collections::BTreeSet;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_default_run_shows_every_partition_shape_and_ends_healed() {
        let steps = schedule(1, &[FaultKind::Partition], 60 * S, 5 * S);
        assert_eq!(steps.len(), 6);
        let shapes: BTreeSet<String> = steps.iter().map(|s| s.fault.name()).collect();
        assert_eq!(shapes.len(), Shape::ALL.len());
        for w in steps.windows(2) {
            assert!(w[0].heal < w[1].start);
        }
        assert!(steps.iter().all(|s| s.start < s.heal && s.heal <= 60 * S));
    }

    #[test]
    fn kinds_take_turns() {
        let kinds = [FaultKind::Partition, FaultKind::Kill, FaultKind::Pause];
        let steps = schedule(9, &kinds, 300 * S, 5 * S);
        for chunk in steps.chunks(3).filter(|c| c.len() == 3) {
            let seen: BTreeSet<FaultKind> = chunk.iter().map(|s| s.fault.kind()).collect();
            assert_eq!(seen.len(), 3);
        }
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let kinds = FaultKind::ALL;
        assert_eq!(
            schedule(4, &kinds, 120 * S, 3 * S),
            schedule(4, &kinds, 120 * S, 3 * S)
        );
        assert_ne!(
            schedule(4, &kinds, 120 * S, 3 * S),
            schedule(5, &kinds, 120 * S, 3 * S)
        );
    }

    #[test]
    fn no_faults_or_too_short_a_run_plans_nothing() {
        assert!(schedule(1, &[], 60 * S, 5 * S).is_empty());
        assert!(schedule(1, &[FaultKind::Kill], 7 * S, 5 * S).is_empty());
        assert_eq!(schedule(1, &[FaultKind::Kill], 8 * S, 5 * S).len(), 1);
    }
}
