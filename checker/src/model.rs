//! The model trait: the sequential specification a history is checked against.
//!
//! A model describes one key's object (the checker splits a multi-key history per key before it
//! searches). The search in [`crate::search`] only talks to this trait, so a new model is a new
//! file implementing it and nothing else changes.

use std::fmt::Debug;
use std::hash::Hash;

use crate::error::ModelError;
use crate::operation::Operation;
use crate::values::ValueTable;

/// What [`Model::encode`] makes of a recorded operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoded<I, O> {
    /// The operation as the model sees it; `output` is `None` when the outcome is unknown.
    Op {
        /// The model input (function and arguments).
        input: I,
        /// The observed result, `None` for info or pending operations.
        output: Option<O>,
    },
    /// The operation constrains nothing and can be left out of the search (say, a read whose
    /// result was never seen).
    Skip,
}

/// One encoded operation of a sub-history.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOp<I, O> {
    /// The model input.
    pub input: I,
    /// The observed result, `None` when unknown.
    pub output: Option<O>,
}

/// A sequential specification for one key.
///
/// Contract: for an operation with an unknown output (`None`), [`Model::step`] must yield at least
/// one next state from every state: an indeterminate operation can always be placed, because it
/// might have done nothing observable. The search relies on this to stop as soon as every completed
/// operation is placed.
pub trait Model: Sync {
    /// The object's state; hashed into the search's cache, so keep it small.
    type State: Clone + Eq + Hash + Debug + Send;
    /// An operation's function and arguments.
    type Input: Clone + Debug + Send + Sync;
    /// An operation's observed result.
    type Output: Clone + Debug + Send + Sync;

    /// A short name for messages ("register").
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Reads a recorded operation into model terms, interning values in `values`.
    ///
    /// # Errors
    /// [`ModelError`] when the function is unknown or the values do not have the needed shape.
    fn encode(
        &self,
        op: &Operation,
        values: &mut ValueTable,
    ) -> Result<Encoded<Self::Input, Self::Output>, ModelError>;

    /// Pushes onto `next` every state that applying `input` in `state` can lead to while producing
    /// `output` (`None`: any output). Pushes nothing when the operation is impossible in `state`.
    /// `next` arrives empty.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
        next: &mut Vec<Self::State>,
    );

    /// True if the operation never changes the state: wherever [`Model::step`] allows it, the only
    /// next state is the state itself (a read with a known result). The search then places such
    /// an operation as soon as it is possible, without branching. The default says false, which is
    /// always safe.
    fn is_read_only(&self, input: &Self::Input, output: Option<&Self::Output>) -> bool {
        let _ = (input, output);
        false
    }

    /// Marks indeterminate operations whose removal cannot change the verdict (for example a write
    /// of a value nobody ever observed). The default removes nothing. `removable[i]` starts false.
    fn mark_removable(&self, ops: &[ModelOp<Self::Input, Self::Output>], removable: &mut [bool]) {
        let _ = (ops, removable);
    }

    /// A short human form of an operation ("write 3", "read -> nil", "cas 1 -> 2").
    fn describe_op(
        &self,
        input: &Self::Input,
        output: Option<&Self::Output>,
        values: &ValueTable,
    ) -> String;

    /// A short human form of a state.
    fn describe_state(&self, state: &Self::State, values: &ValueTable) -> String;
}
