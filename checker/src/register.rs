//! The register model: one value per key, initially nil, with read, write and compare-and-set.
//!
//! History conventions: `read` invokes with null and its ok carries the value read (null: absent);
//! `write` invokes with the value to write; `cas` invokes with `[expected, new]` and an ok means the
//! swap happened (a cas whose comparison failed is recorded as `fail` and dropped). The results of
//! ok writes and cas are ignored.

use std::collections::HashSet;

use serde_json::Value;

use crate::error::ModelError;
use crate::model::{Encoded, Model, ModelOp};
use crate::operation::Operation;
use crate::values::{ValueId, ValueTable};

/// The register model (see the module docs for the history conventions).
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

/// A register operation's function and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(ValueId),
    /// Set the value to `new` if it equals `expected`.
    Cas {
        /// The value the cas compares with.
        expected: ValueId,
        /// The value it installs.
        new: ValueId,
    },
}

/// A register operation's observed result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutput {
    /// A read returned this value.
    Value(ValueId),
    /// A write or cas was acknowledged.
    Done,
}

impl Model for Register {
    type State = ValueId;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn name(&self) -> &'static str {
        "register"
    }

    fn init(&self) -> ValueId {
        ValueId::NIL
    }

    fn encode(
        &self,
        op: &Operation,
        values: &mut ValueTable,
    ) -> Result<Encoded<RegisterInput, RegisterOutput>, ModelError> {
        let result = op.result();
        match op.f.as_str() {
            "read" => Ok(match result {
                Some(value) => Encoded::Op {
                    input: RegisterInput::Read,
                    output: Some(RegisterOutput::Value(values.intern(value))),
                },
                // A read with no observed result constrains nothing.
                None => Encoded::Skip,
            }),
            "write" => Ok(Encoded::Op {
                input: RegisterInput::Write(values.intern(&op.value)),
                output: result.map(|_| RegisterOutput::Done),
            }),
            "cas" => match &op.value {
                Value::Array(pair) if pair.len() == 2 => Ok(Encoded::Op {
                    input: RegisterInput::Cas {
                        expected: values.intern(&pair[0]),
                        new: values.intern(&pair[1]),
                    },
                    output: result.map(|_| RegisterOutput::Done),
                }),
                other => Err(ModelError::BadValue {
                    f: op.f.clone(),
                    expected: "[expected, new]",
                    found: other.to_string(),
                }),
            },
            other => Err(ModelError::UnsupportedFunction {
                model: "register",
                f: other.to_string(),
            }),
        }
    }

    fn step(
        &self,
        state: &ValueId,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
        next: &mut Vec<ValueId>,
    ) {
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Value(v))) => {
                if v == state {
                    next.push(*state);
                }
            }
            (RegisterInput::Read, None) => next.push(*state),
            (RegisterInput::Write(v), None | Some(RegisterOutput::Done)) => next.push(*v),
            (RegisterInput::Cas { expected, new }, Some(RegisterOutput::Done)) => {
                if expected == state {
                    next.push(*new);
                }
            }
            // Unknown outcome: if the comparison held, taking effect means swapping; otherwise it
            // changed nothing.
            (RegisterInput::Cas { expected, new }, None) => {
                next.push(if expected == state { *new } else { *state });
            }
            (RegisterInput::Read, Some(RegisterOutput::Done))
            | (
                RegisterInput::Write(_) | RegisterInput::Cas { .. },
                Some(RegisterOutput::Value(_)),
            ) => {}
        }
    }

    fn is_read_only(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> bool {
        matches!(
            (input, output),
            (RegisterInput::Read, Some(RegisterOutput::Value(_)))
        )
    }

    /// An indeterminate write (or cas) of a value no read returned and no cas expected can be
    /// assumed never to have happened: any linearization placing it has one without it, since no
    /// operation could observe the value it installed.
    fn mark_removable(
        &self,
        ops: &[ModelOp<RegisterInput, RegisterOutput>],
        removable: &mut [bool],
    ) {
        let mut observed: HashSet<ValueId> = HashSet::new();
        for op in ops {
            match (&op.input, &op.output) {
                (RegisterInput::Read, Some(RegisterOutput::Value(v))) => {
                    observed.insert(*v);
                }
                (RegisterInput::Cas { expected, .. }, _) => {
                    observed.insert(*expected);
                }
                _ => {}
            }
        }
        for (op, removable) in ops.iter().zip(removable.iter_mut()) {
            if op.output.is_some() {
                continue;
            }
            *removable = match op.input {
                RegisterInput::Write(v) | RegisterInput::Cas { new: v, .. } => {
                    !observed.contains(&v)
                }
                RegisterInput::Read => true,
            };
        }
    }

    fn describe_op(
        &self,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
        values: &ValueTable,
    ) -> String {
        let text = match input {
            RegisterInput::Read => match output {
                Some(RegisterOutput::Value(v)) => format!("read -> {}", values.describe(*v)),
                _ => "read -> ?".to_string(),
            },
            RegisterInput::Write(v) => format!("write {}", values.describe(*v)),
            RegisterInput::Cas { expected, new } => format!(
                "cas {} -> {}",
                values.describe(*expected),
                values.describe(*new)
            ),
        };
        if output.is_none() && !matches!(input, RegisterInput::Read) {
            format!("{text} (outcome unknown)")
        } else {
            text
        }
    }

    fn describe_state(&self, state: &ValueId, values: &ValueTable) -> String {
        values.describe(*state)
    }
}
