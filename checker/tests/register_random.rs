//! Randomized register tests: simulated linearizable histories must be valid, and altered small
//! ones must be flagged exactly when a brute-force checker says so.
//!
//! Every case prints its seed on failure; `CHECKER_SEED=N cargo test -p checker --test
//! register_random` replays one case.

mod common;

use checker::{
    check_linearizability, check_linearizability_with_workers, Budget, Completion, Operation,
    Register, Verdict,
};
use common::{
    brute_force_linearizable, memo_brute_force_linearizable, pair, seeds, simulate, Rng, SimOptions,
};
use serde_json::{json, Value};

fn random_options(rng: &mut Rng, ops_max: u64, keys_max: u64) -> SimOptions {
    SimOptions {
        concurrency: 1 + rng.below(5) as usize,
        ops: 1 + rng.below(ops_max) as usize,
        keys: 1 + rng.below(keys_max) as usize,
        info_percent: [0, 5, 20, 40][rng.below(4) as usize],
        values: 2 + rng.below(4),
        leave_pending: rng.chance(30),
    }
}

#[test]
fn simulated_histories_are_valid() {
    for seed in seeds(1, 2000) {
        let mut rng = Rng::new(seed);
        let options = random_options(&mut rng, 80, 3);
        let ops = pair(simulate(&mut rng, options));
        let report = check_linearizability(&Register, &ops, &Budget::unlimited()).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Valid,
            "seed {seed} ({options:?}): replay with CHECKER_SEED={seed}"
        );
        let single =
            check_linearizability_with_workers(&Register, &ops, &Budget::unlimited(), 1).unwrap();
        assert_eq!(single.verdict, Verdict::Valid, "seed {seed}: one worker");
    }
}

#[test]
fn larger_simulated_histories_are_valid() {
    for seed in seeds(2, 100) {
        let mut rng = Rng::new(seed);
        let options = SimOptions {
            concurrency: 8,
            ops: 2000,
            keys: 4,
            info_percent: 5,
            values: 1_000_000,
            leave_pending: true,
        };
        let ops = pair(simulate(&mut rng, options));
        let report = check_linearizability(&Register, &ops, &Budget::unlimited()).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Valid,
            "seed {seed}: CHECKER_SEED={seed}"
        );
    }
}

/// Replaces the result of the `which`-th ok read; returns false if there is none.
fn alter_a_read(rng: &mut Rng, ops: &mut [Operation], values: u64) -> bool {
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "read" && ops[i].result().is_some())
        .collect();
    if reads.is_empty() {
        return false;
    }
    let i = reads[rng.below(reads.len() as u64) as usize];
    let Completion::Ok { value, .. } = &mut ops[i].completion else {
        unreachable!("an ok read")
    };
    loop {
        // Values one beyond the written range were never written.
        let candidate = match rng.below(values + 2) {
            0 => Value::Null,
            n => json!(n - 1),
        };
        if &candidate != value {
            *value = candidate;
            return true;
        }
    }
}

#[test]
fn altered_small_histories_agree_with_brute_force() {
    let mut checked = 0;
    let mut flagged = 0;
    for seed in seeds(3, 4000) {
        let mut rng = Rng::new(seed);
        let options = SimOptions {
            keys: 1,
            ..random_options(&mut rng, 8, 1)
        };
        let mut ops = pair(simulate(&mut rng, options));
        assert!(ops.len() <= 8);
        assert!(brute_force_linearizable(&ops), "seed {seed}: simulation");
        let before = check_linearizability(&Register, &ops, &Budget::unlimited()).unwrap();
        assert_eq!(
            before.verdict,
            Verdict::Valid,
            "seed {seed}: CHECKER_SEED={seed}"
        );
        if !alter_a_read(&mut rng, &mut ops, options.values) {
            continue;
        }
        let expected_valid = brute_force_linearizable(&ops);
        let verdict = check_linearizability(&Register, &ops, &Budget::unlimited())
            .unwrap()
            .verdict;
        checked += 1;
        if !expected_valid {
            flagged += 1;
        }
        match (&verdict, expected_valid) {
            (Verdict::Valid, true) => {}
            (Verdict::Invalid { anomalies }, false) => {
                let a = &anomalies[0];
                assert!(
                    !a.longest_prefixes[0].contains(&a.failing_op),
                    "seed {seed}: the failing op is not in the prefix"
                );
                for prefix in &a.longest_prefixes {
                    assert_legal_prefix(&ops, prefix, seed);
                }
            }
            _ => panic!(
                "seed {seed}: checker says {verdict:?}, brute force says valid = {expected_valid}; \
                 replay with CHECKER_SEED={seed}\n{ops:#?}"
            ),
        }
    }
    if std::env::var("CHECKER_SEED").is_err() {
        assert!(checked > 2000, "enough altered cases ({checked})");
        assert!(
            flagged > checked / 10 && flagged < checked,
            "a meaningful mix: {flagged} of {checked} flagged"
        );
    }
}

/// A reported prefix must be a legal sequential run of the register that respects real time: every
/// operation that returned before a prefix operation was invoked comes earlier in the prefix.
fn assert_legal_prefix(ops: &[Operation], prefix: &[checker::OpId], seed: u64) {
    let mut value = Value::Null;
    for (position, id) in prefix.iter().enumerate() {
        let op = &ops[id.0];
        for (other_id, other) in ops.iter().enumerate() {
            if other.key == op.key && other.return_ns().is_some_and(|r| r <= op.invoke_ns) {
                assert!(
                    prefix[..position].contains(&checker::OpId(other_id)),
                    "seed {seed}: prefix breaks real-time order at {position}"
                );
            }
        }
        match op.f.as_str() {
            "read" => assert_eq!(op.result(), Some(&value), "seed {seed}: prefix read"),
            "write" => value = op.value.clone(),
            _ => {
                if op.value[0] == value {
                    value = op.value[1].clone();
                } else {
                    assert!(op.is_indeterminate(), "seed {seed}: prefix cas");
                }
            }
        }
    }
}

#[test]
fn altered_medium_histories_agree_with_memoized_brute_force() {
    let (mut checked, mut flagged) = (0, 0);
    for seed in seeds(6, 1500) {
        let mut rng = Rng::new(seed);
        let options = SimOptions {
            concurrency: 2 + rng.below(6) as usize,
            ops: 16,
            keys: 1,
            info_percent: [5, 20, 40][rng.below(3) as usize],
            values: 2 + rng.below(3),
            leave_pending: rng.chance(30),
        };
        let mut ops = pair(simulate(&mut rng, options));
        if !alter_a_read(&mut rng, &mut ops, options.values) {
            continue;
        }
        let expected_valid = memo_brute_force_linearizable(&ops);
        checked += 1;
        flagged += usize::from(!expected_valid);
        let two =
            check_linearizability_with_workers(&Register, &ops, &Budget::unlimited(), 2).unwrap();
        let one =
            check_linearizability_with_workers(&Register, &ops, &Budget::unlimited(), 1).unwrap();
        assert_eq!(
            one, two,
            "seed {seed}: reports differ with the worker count"
        );
        assert_eq!(
            two.verdict.is_valid(),
            expected_valid,
            "seed {seed}: checker says {:?}, brute force says valid = {expected_valid}; \
             replay with CHECKER_SEED={seed}",
            two.verdict
        );
        if let Verdict::Invalid { anomalies } = &two.verdict {
            for prefix in &anomalies[0].longest_prefixes {
                assert_legal_prefix(&ops, prefix, seed);
            }
        }
    }
    if std::env::var("CHECKER_SEED").is_err() {
        assert!(
            flagged > checked / 10 && flagged < checked * 9 / 10,
            "a meaningful mix: {flagged} of {checked} flagged"
        );
    }
}
