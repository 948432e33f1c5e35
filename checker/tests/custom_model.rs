//! A model written outside the crate, to show new models plug into the search unchanged, and to
//! exercise nondeterministic steps (several possible next states).

mod common;

use checker::error::ModelError;
use checker::values::ValueTable;
use checker::{check_linearizability, Budget, Encoded, Model, Operation, Verdict};
use common::{ev, pair};
use serde_json::{json, Value};

/// A sloppy counter: `bump` adds 1 or 2 (either may happen); `read` returns the count.
struct SloppyCounter;

#[derive(Debug, Clone, Copy)]
enum Input {
    Bump,
    Read,
}

impl Model for SloppyCounter {
    type State = i64;
    type Input = Input;
    type Output = i64;

    fn name(&self) -> &'static str {
        "sloppy counter"
    }

    fn init(&self) -> i64 {
        0
    }

    fn encode(
        &self,
        op: &Operation,
        _values: &mut ValueTable,
    ) -> Result<Encoded<Input, i64>, ModelError> {
        match op.f.as_str() {
            "bump" => Ok(Encoded::Op {
                input: Input::Bump,
                output: op.result().map(|_| 0),
            }),
            "read" => Ok(match op.result() {
                Some(v) => Encoded::Op {
                    input: Input::Read,
                    output: Some(v.as_i64().unwrap_or(0)),
                },
                None => Encoded::Skip,
            }),
            f => Err(ModelError::UnsupportedFunction {
                model: "sloppy counter",
                f: f.to_string(),
            }),
        }
    }

    fn step(&self, state: &i64, input: &Input, output: Option<&i64>, next: &mut Vec<i64>) {
        match input {
            Input::Bump => next.extend([state + 1, state + 2]),
            Input::Read => {
                if output.is_none_or(|v| v == state) {
                    next.push(*state);
                }
            }
        }
    }

    fn describe_op(&self, input: &Input, output: Option<&i64>, _values: &ValueTable) -> String {
        format!("{input:?} {output:?}")
    }

    fn describe_state(&self, state: &i64, _values: &ValueTable) -> String {
        state.to_string()
    }
}

fn history(reads: &[i64]) -> Vec<Operation> {
    let mut events = vec![
        ev(0, "invoke", "bump", "c", Value::Null, 1),
        ev(0, "ok", "bump", "c", Value::Null, 2),
        ev(0, "invoke", "bump", "c", Value::Null, 3),
        ev(0, "ok", "bump", "c", Value::Null, 4),
    ];
    for (i, r) in reads.iter().enumerate() {
        let t = 10 + 2 * i as u64;
        events.push(ev(1, "invoke", "read", "c", Value::Null, t));
        events.push(ev(1, "ok", "read", "c", json!(r), t + 1));
    }
    pair(events)
}

fn verdict(reads: &[i64]) -> Verdict {
    check_linearizability(&SloppyCounter, &history(reads), &Budget::unlimited())
        .unwrap()
        .verdict
}

#[test]
fn every_branch_of_a_nondeterministic_step_is_explored() {
    // Two bumps give 2, 3 or 4; the search must find the branch that fits.
    for ok in [2, 3, 4] {
        assert_eq!(verdict(&[ok, ok]), Verdict::Valid, "read {ok}");
    }
    for bad in [1, 5] {
        assert!(verdict(&[bad]).is_invalid(), "read {bad}");
    }
    // Reads must agree with each other.
    assert!(verdict(&[3, 4]).is_invalid());
}
