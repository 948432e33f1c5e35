//! Set and counter checkers: hand-made cases and randomized simulations with mutations.

mod common;

use checker::verdict::Judgement;
use checker::{check_counter, check_set, Completion, Event, Operation};
use common::{ev, pair, seeds, Rng};
use serde_json::{json, Value};

fn sorted(mut events: Vec<Event>) -> Vec<Operation> {
    events.sort_by_key(|e| e.time_ns);
    pair(events)
}

fn add(p: u64, element: i64, start: u64, end: Option<(&str, u64)>) -> Vec<Event> {
    let mut events = vec![ev(p, "invoke", "add", "s", json!(element), start)];
    if let Some((kind, t)) = end {
        events.push(ev(p, kind, "add", "s", json!(element), t));
    }
    events
}

fn read_set(p: u64, elements: Value, start: u64, end: u64) -> Vec<Event> {
    vec![
        ev(p, "invoke", "read", "s", Value::Null, start),
        ev(p, "ok", "read", "s", elements, end),
    ]
}

#[test]
fn set_all_acknowledged_present_is_valid() {
    let ops = sorted(
        [
            add(0, 1, 1, Some(("ok", 2))),
            add(1, 2, 1, Some(("info", 3))),
            add(2, 3, 1, Some(("fail", 3))),
            read_set(3, json!([1, 2]), 10, 11),
        ]
        .concat(),
    );
    let report = check_set(&ops).unwrap();
    assert_eq!(report.judgement, Judgement::Valid, "{report:?}");
    assert_eq!(report.keys[0].recovered, vec![json!(2)]);
}

#[test]
fn set_lost_unexpected_and_duplicated_are_listed() {
    let ops = sorted(
        [
            add(0, 1, 1, Some(("ok", 2))),
            add(1, 2, 1, Some(("ok", 3))),
            add(2, 4, 1, Some(("info", 3))),
            read_set(3, json!([2, 2, 9, 4]), 10, 11),
        ]
        .concat(),
    );
    let key = &check_set(&ops).unwrap().keys[0];
    assert_eq!(key.judgement, Judgement::Invalid);
    assert_eq!(key.lost, vec![json!(1)]);
    assert_eq!(key.unexpected, vec![json!(9)]);
    assert_eq!(key.duplicated, vec![json!(2)]);
}

#[test]
fn set_add_concurrent_with_final_read_may_be_missing() {
    let ops = sorted(
        [
            add(0, 1, 5, Some(("ok", 20))),
            read_set(1, json!([]), 10, 11),
        ]
        .concat(),
    );
    assert_eq!(check_set(&ops).unwrap().judgement, Judgement::Valid);
}

#[test]
fn set_element_read_before_its_add_was_invoked_is_unexpected() {
    let ops = sorted([read_set(1, json!([1]), 1, 2), add(0, 1, 5, Some(("ok", 6)))].concat());
    let report = check_set(&ops).unwrap();
    assert_eq!(report.keys[0].unexpected, vec![json!(1)]);
}

#[test]
fn set_without_final_read_is_unknown() {
    let ops = sorted(add(0, 1, 1, Some(("ok", 2))));
    assert_eq!(check_set(&ops).unwrap().judgement, Judgement::Unknown);
}

#[test]
fn set_failed_add_that_appears_is_unexpected() {
    let ops = sorted(
        [
            add(0, 1, 1, Some(("fail", 2))),
            read_set(1, json!([1]), 3, 4),
        ]
        .concat(),
    );
    assert_eq!(check_set(&ops).unwrap().keys[0].unexpected, vec![json!(1)]);
}

/// A simulated set: adds of distinct elements take effect at a random moment; some end in info
/// (and then may or may not take effect); a final read after everything returns the true set.
fn simulate_set(rng: &mut Rng) -> (Vec<Event>, Vec<i64>) {
    let mut set: Vec<i64> = Vec::new();
    let mut events = Vec::new();
    let mut time = 0;
    let processes = 1 + rng.below(5);
    let adds = rng.below(40) as i64;
    // (process, element, applied)
    let mut open: Vec<(u64, i64, bool)> = Vec::new();
    let mut next_element = 0;
    let mut next_process = processes;
    let mut idle: Vec<u64> = (0..processes).collect();
    while next_element < adds || !open.is_empty() {
        time += 1;
        if !idle.is_empty() && next_element < adds && rng.chance(40) {
            let p = idle.pop().unwrap();
            events.push(ev(p, "invoke", "add", "s", json!(next_element), time));
            open.push((p, next_element, false));
            next_element += 1;
            continue;
        }
        if open.is_empty() {
            continue;
        }
        let i = rng.below(open.len() as u64) as usize;
        let (p, element, applied) = open[i];
        if !applied && rng.chance(50) {
            set.push(element);
            open[i].2 = true;
            continue;
        }
        open.swap_remove(i);
        match rng.below(10) {
            0 => {
                events.push(ev(p, "info", "add", "s", Value::Null, time));
                if rng.chance(50) && !applied {
                    set.push(element);
                }
                idle.push(next_process);
                next_process += 1;
            }
            1 if !applied => {
                events.push(ev(p, "fail", "add", "s", json!(element), time));
                idle.push(p);
            }
            _ => {
                if !applied {
                    set.push(element);
                }
                events.push(ev(p, "ok", "add", "s", json!(element), time));
                idle.push(p);
            }
        }
    }
    events.extend(read_set(next_process + 1, json!(set), time + 1, time + 2));
    (events, set)
}

#[test]
fn set_randomized_valid_and_mutations_flagged() {
    for seed in seeds(4, 1000) {
        let mut rng = Rng::new(seed);
        let (events, _) = simulate_set(&mut rng);
        let mut ops = pair(events);
        assert_eq!(
            check_set(&ops).unwrap().judgement,
            Judgement::Valid,
            "seed {seed}: CHECKER_SEED={seed}"
        );
        let last = ops.len() - 1;
        let acknowledged = ops_acknowledged(&ops);
        let Completion::Ok { value, .. } = &mut ops[last].completion else {
            panic!("final read is ok")
        };
        let elements = value.as_array_mut().unwrap();
        let expect_in: fn(&checker::set::SetKeyReport) -> &Vec<Value>;
        let expected;
        match rng.below(3) {
            0 if !acknowledged.is_empty() => {
                let gone = json!(acknowledged[rng.below(acknowledged.len() as u64) as usize]);
                elements.retain(|e| e != &gone);
                expect_in = |k| &k.lost;
                expected = gone;
            }
            1 if !elements.is_empty() => {
                let again = elements[0].clone();
                elements.push(again.clone());
                expect_in = |k| &k.duplicated;
                expected = again;
            }
            _ => {
                elements.push(json!(1_000_000));
                expect_in = |k| &k.unexpected;
                expected = json!(1_000_000);
            }
        }
        let report = check_set(&ops).unwrap();
        assert_eq!(report.judgement, Judgement::Invalid, "seed {seed}");
        assert_eq!(expect_in(&report.keys[0]), &vec![expected], "seed {seed}");
    }
}

fn ops_acknowledged(ops: &[Operation]) -> Vec<i64> {
    ops.iter()
        .filter(|op| op.f == "add" && op.result().is_some())
        .map(|op| op.value.as_i64().unwrap())
        .collect()
}

fn incr(p: u64, delta: i64, start: u64, end: Option<(&str, u64)>) -> Vec<Event> {
    let mut events = vec![ev(p, "invoke", "incr", "c", json!(delta), start)];
    if let Some((kind, t)) = end {
        events.push(ev(p, kind, "incr", "c", Value::Null, t));
    }
    events
}

fn read_counter(p: u64, value: i64, start: u64, end: u64) -> Vec<Event> {
    vec![
        ev(p, "invoke", "read", "c", Value::Null, start),
        ev(p, "ok", "read", "c", json!(value), end),
    ]
}

#[test]
fn counter_bounds_hand_made() {
    let base = [
        incr(0, 1, 1, Some(("ok", 2))),
        incr(1, 2, 3, Some(("info", 4))),
        incr(2, 5, 15, Some(("ok", 30))),
    ]
    .concat();
    // Read during [10, 20]: at least 1, at most 1 + 2 + 5.
    for (value, valid) in [(0, false), (1, true), (3, true), (8, true), (9, false)] {
        let ops = sorted([base.clone(), read_counter(9, value, 10, 20)].concat());
        let report = check_counter(&ops).unwrap();
        let expected = if valid {
            Judgement::Valid
        } else {
            Judgement::Invalid
        };
        assert_eq!(report.judgement, expected, "read {value}: {report:?}");
        if !valid {
            let a = &report.keys[0].anomalies[0];
            assert_eq!((a.lower, a.upper), (1, 8));
        }
    }
}

#[test]
fn counter_null_delta_is_one_and_bad_value_is_an_error() {
    let ops = sorted(
        [
            vec![
                ev(0, "invoke", "incr", "c", Value::Null, 1),
                ev(0, "ok", "incr", "c", json!(1), 2),
            ],
            read_counter(1, 1, 3, 4),
        ]
        .concat(),
    );
    assert_eq!(check_counter(&ops).unwrap().judgement, Judgement::Valid);
    let bad = sorted(read_counter(1, 0, 3, 4))
        .into_iter()
        .map(|mut op| {
            op.completion = Completion::Ok {
                time_ns: 4,
                value: json!("x"),
            };
            op
        })
        .collect::<Vec<_>>();
    assert!(check_counter(&bad).is_err());
}

/// Naive bounds straight from the definition, for non-negative deltas.
fn naive_bounds(ops: &[Operation], read: &Operation) -> (i64, i64) {
    let start = read.invoke_ns;
    let end = read.return_ns().unwrap();
    let mut lower = 0;
    let mut upper = 0;
    for op in ops.iter().filter(|op| op.f == "incr") {
        let delta = op.value.as_i64().unwrap();
        if op.return_ns().is_some_and(|r| r <= start) {
            lower += delta;
        }
        if op.invoke_ns < end {
            upper += delta;
        }
    }
    (lower, upper)
}

#[test]
fn counter_randomized_matches_naive_bounds() {
    for seed in seeds(5, 1000) {
        let mut rng = Rng::new(seed);
        let mut counter = 0i64;
        let mut events = Vec::new();
        let processes = 1 + rng.below(5);
        // (process, is_read, delta, applied value)
        let mut open: Vec<(u64, bool, i64, Option<i64>)> = Vec::new();
        let mut idle: Vec<u64> = (0..processes).collect();
        let mut next_process = processes;
        let total = rng.below(40);
        let mut invoked = 0;
        let mut time = 0;
        while invoked < total || !open.is_empty() {
            time += 1;
            if !idle.is_empty() && invoked < total && rng.chance(40) {
                invoked += 1;
                let p = idle.pop().unwrap();
                if rng.chance(50) {
                    events.push(ev(p, "invoke", "read", "c", Value::Null, time));
                    open.push((p, true, 0, None));
                } else {
                    let delta = 1 + rng.below(3) as i64;
                    events.push(ev(p, "invoke", "incr", "c", json!(delta), time));
                    open.push((p, false, delta, None));
                }
                continue;
            }
            if open.is_empty() {
                continue;
            }
            let i = rng.below(open.len() as u64) as usize;
            let (p, is_read, delta, applied) = open[i];
            if applied.is_none() && rng.chance(50) {
                if !is_read {
                    counter += delta;
                }
                open[i].3 = Some(counter);
                continue;
            }
            open.swap_remove(i);
            let f = if is_read { "read" } else { "incr" };
            if rng.chance(10) {
                events.push(ev(p, "info", f, "c", Value::Null, time));
                if applied.is_none() && !is_read && rng.chance(50) {
                    counter += delta;
                }
                idle.push(next_process);
                next_process += 1;
                continue;
            }
            let value = match applied {
                Some(v) => v,
                None => {
                    if !is_read {
                        counter += delta;
                    }
                    counter
                }
            };
            events.push(ev(p, "ok", f, "c", json!(value), time));
            idle.push(p);
        }
        let mut ops = pair(events);
        let report = check_counter(&ops).unwrap();
        assert_eq!(
            report.judgement,
            Judgement::Valid,
            "seed {seed}: CHECKER_SEED={seed}"
        );
        // Alter one read to a random value and compare with the naive bounds.
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].f == "read" && ops[i].result().is_some())
            .collect();
        if reads.is_empty() {
            continue;
        }
        let i = reads[rng.below(reads.len() as u64) as usize];
        let altered = rng.below(100) as i64 - 10;
        if let Completion::Ok { value, .. } = &mut ops[i].completion {
            *value = json!(altered);
        }
        let (lower, upper) = naive_bounds(&ops, &ops[i]);
        let expected = if (lower..=upper).contains(&altered) {
            Judgement::Valid
        } else {
            Judgement::Invalid
        };
        let report = check_counter(&ops).unwrap();
        assert_eq!(
            report.judgement, expected,
            "seed {seed}: CHECKER_SEED={seed}"
        );
    }
}
