//! The Wing & Gong search with Lowe's refinements, over one key's sub-history.
//!
//! Pure: values in, values out. It reads no clock (time limits arrive through the injected
//! [`Deadline`](crate::budget::Deadline) of the [`Budget`]), spawns no threads and does no I/O.
//!
//! The walk: take the first entry of the time-ordered list. If it is a call, try to apply its
//! operation to the model; if that is possible and the resulting (linearized set, state) pair is new
//! to the cache, linearize it (lift its entries, push it on the stack) and start again from the
//! head; otherwise move to the next entry. If it is a return, the operation returning there was not
//! placed before its deadline: undo the last linearized operation (unlift it, pop it) and continue
//! with the entry after its call. An empty stack at that point means no linearization exists.
//! The walk succeeds once every operation with a known outcome is placed; operations with unknown
//! outcomes can always be placed after those (or be taken never to have happened).

use serde::Serialize;

use crate::bitset::Bitset;
use crate::budget::Budget;
use crate::cache::SeenCache;
use crate::entry_list::{EntryList, NodeIndex, OpTimes};
use crate::model::{Model, ModelOp};

/// How many longest partial linearizations a failed search keeps.
pub const PREFIXES_MAX: usize = 4;

/// Steps between two looks at the deadline (the first look is at the first step).
const DEADLINE_CHECK_STEPS: u64 = 4096;

/// Why a search gave up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum UnknownReason {
    /// The deadline passed.
    Deadline,
    /// The search remembered `Budget::states_max` states.
    StatesMax {
        /// The limit reached.
        states_max: u64,
    },
    /// The cache outgrew `Budget::cache_bytes_max`.
    CacheBytesMax {
        /// The limit reached.
        cache_bytes_max: u64,
    },
}

impl std::fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownReason::Deadline => write!(f, "the time limit ran out"),
            UnknownReason::StatesMax { states_max } => {
                write!(f, "the search explored its limit of {states_max} states")
            }
            UnknownReason::CacheBytesMax { cache_bytes_max } => {
                write!(
                    f,
                    "the search cache reached its limit of {cache_bytes_max} bytes"
                )
            }
        }
    }
}

/// One partial linearization that could go no further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialLinearization {
    /// Operation indices in linearization order, each with the index of the model's next state
    /// chosen (always 0 for deterministic models).
    pub steps: Vec<(usize, usize)>,
    /// The operation whose return was reached before it could be placed.
    pub failing_op: usize,
}

/// The outcome of one search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchOutcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; the longest partial linearizations found, longest first (at least one).
    NotLinearizable(Vec<PartialLinearization>),
    /// The budget ran out first.
    Unknown(UnknownReason),
}

/// The outcome and how much work it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    /// The answer.
    pub outcome: SearchOutcome,
    /// Distinct (linearized set, state) pairs explored.
    pub states_explored: u64,
}

struct Frame<S> {
    call: NodeIndex,
    // The model state before this operation was applied.
    state_before: S,
    // Which of the model's next states was taken.
    alt: usize,
    // A read-only operation linearized as soon as it was possible: if the configuration after it
    // fails, so does the one before it (see `search`), so backtracking goes on past it.
    forced: bool,
}

/// A linearization order: (operation, alternative) per step.
type Steps = Vec<(usize, usize)>;

/// Keeps the longest partial linearizations seen, copying only what changed since the last save
/// (a full copy at every new maximum would cost quadratic time on long histories).
struct Longest {
    // The longest stack seen so far at a dead end, as (operation, alternative) steps.
    best: Option<(Steps, usize)>,
    // The stack's entries below this depth have not changed since `best` was saved.
    unchanged_below: usize,
    // Other dead ends of the same length: (length shared with `best`, the rest, failing op).
    others: Vec<(usize, Steps, usize)>,
}

impl Longest {
    fn new() -> Self {
        Longest {
            best: None,
            unchanged_below: 0,
            others: Vec::new(),
        }
    }

    /// Must be called after every pop, with the stack's new depth.
    fn popped(&mut self, depth: usize) {
        self.unchanged_below = self.unchanged_below.min(depth);
    }

    fn offer<S>(&mut self, stack: &[Frame<S>], list: &EntryList, failing_op: usize) {
        let step = |f: &Frame<S>| (list.op(f.call), f.alt);
        let len = stack.len();
        match &mut self.best {
            Some((best, failing)) if len > best.len() => {
                let keep = self.unchanged_below.min(best.len());
                debug_assert!(best[..keep]
                    .iter()
                    .copied()
                    .eq(stack[..keep].iter().map(step)));
                best.truncate(keep);
                best.extend(stack[keep..].iter().map(step));
                *failing = failing_op;
                self.unchanged_below = len;
                self.others.clear();
            }
            Some((best, _)) if len == best.len() && self.others.len() + 1 < PREFIXES_MAX => {
                let shared = self.unchanged_below.min(len);
                debug_assert!(best[..shared]
                    .iter()
                    .copied()
                    .eq(stack[..shared].iter().map(step)));
                let rest = stack[shared..].iter().map(step).collect();
                self.others.push((shared, rest, failing_op));
            }
            Some(_) => {}
            None => {
                self.best = Some((stack.iter().map(step).collect(), failing_op));
                self.unchanged_below = len;
            }
        }
    }

    fn into_found(self) -> Vec<PartialLinearization> {
        let Some((best, failing_op)) = self.best else {
            return Vec::new();
        };
        let mut found = vec![PartialLinearization {
            steps: best.clone(),
            failing_op,
        }];
        for (shared, rest, failing_op) in self.others {
            let mut steps = best[..shared].to_vec();
            steps.extend(rest);
            let candidate = PartialLinearization { steps, failing_op };
            if !found.contains(&candidate) {
                found.push(candidate);
            }
        }
        found
    }
}

/// The budget limit the cache has passed, if any.
fn over_budget<S: Clone + Eq + std::hash::Hash>(
    cache: &SeenCache<S>,
    budget: &Budget,
) -> Option<UnknownReason> {
    if cache.len() > budget.states_max {
        return Some(UnknownReason::StatesMax {
            states_max: budget.states_max,
        });
    }
    if cache.bytes() > budget.cache_bytes_max {
        return Some(UnknownReason::CacheBytesMax {
            cache_bytes_max: budget.cache_bytes_max,
        });
    }
    None
}

/// Searches for a linearization of `ops` (one key) whose real-time order is given by `times`.
///
/// # Panics
/// If `ops` and `times` differ in length.
pub fn search<M: Model>(
    model: &M,
    ops: &[ModelOp<M::Input, M::Output>],
    times: &[OpTimes],
    budget: &Budget,
) -> SearchResult {
    assert_eq!(ops.len(), times.len(), "one time per operation");
    let mut list = EntryList::new(times);
    // Operations with a known outcome not yet linearized.
    let mut required = times.iter().filter(|t| t.return_ns.is_some()).count();
    let mut cache: SeenCache<M::State> = SeenCache::new();
    let done = |outcome, cache: &SeenCache<M::State>| SearchResult {
        outcome,
        states_explored: cache.len(),
    };
    if required == 0 {
        return done(SearchOutcome::Linearizable, &cache);
    }
    let mut state = model.init();
    let mut linearized = Bitset::new(ops.len());
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut next_states: Vec<M::State> = Vec::new();
    let mut longest = Longest::new();
    let mut entry = list.first();
    // True right after an operation was linearized (or at the start): a new configuration.
    let mut fresh = true;
    let mut steps: u64 = 0;
    loop {
        steps += 1;
        if steps % DEADLINE_CHECK_STEPS == 1 {
            if let Some(deadline) = &budget.deadline {
                if deadline.expired() {
                    return done(SearchOutcome::Unknown(UnknownReason::Deadline), &cache);
                }
            }
        }
        if fresh {
            fresh = false;
            // Lowe-style pruning for read-only operations: if a read-only operation can be
            // linearized now (its call comes before every pending return, and it is possible in
            // the current state), then some linearization from here exists iff one exists that
            // places it next: moving it to the front keeps every state, and nothing pending must
            // precede it. So place it without branching.
            let mut scan = list.first();
            let mut forced = None;
            while let Some(call) = scan.filter(|&e| list.is_call(e)) {
                let op = list.op(call);
                if model.is_read_only(&ops[op].input, ops[op].output.as_ref()) {
                    next_states.clear();
                    model.step(
                        &state,
                        &ops[op].input,
                        ops[op].output.as_ref(),
                        &mut next_states,
                    );
                    if !next_states.is_empty() {
                        forced = Some(call);
                        break;
                    }
                }
                scan = list.next(call);
            }
            if let Some(call) = forced {
                let op = list.op(call);
                linearized.insert(op);
                let next = next_states.swap_remove(0);
                debug_assert_eq!(next, state, "read-only operations keep the state");
                if !cache.insert(&linearized, &next) {
                    // Explored before and failed, so this configuration fails too.
                    linearized.remove(op);
                    entry = None;
                } else {
                    if let Some(reason) = over_budget(&cache, budget) {
                        return done(SearchOutcome::Unknown(reason), &cache);
                    }
                    let state_before = std::mem::replace(&mut state, next);
                    stack.push(Frame {
                        call,
                        state_before,
                        alt: 0,
                        forced: true,
                    });
                    list.lift(call);
                    if times[op].return_ns.is_some() {
                        required -= 1;
                        if required == 0 {
                            return done(SearchOutcome::Linearizable, &cache);
                        }
                    }
                    entry = list.first();
                    fresh = true;
                    continue;
                }
            }
        }
        if let Some(call) = entry.filter(|&e| list.is_call(e)) {
            let op = list.op(call);
            next_states.clear();
            model.step(
                &state,
                &ops[op].input,
                ops[op].output.as_ref(),
                &mut next_states,
            );
            linearized.insert(op);
            let chosen = next_states
                .iter()
                .position(|s| cache.insert(&linearized, s));
            let Some(alt) = chosen else {
                linearized.remove(op);
                entry = list.next(call);
                continue;
            };
            if let Some(reason) = over_budget(&cache, budget) {
                return done(SearchOutcome::Unknown(reason), &cache);
            }
            let state_before = std::mem::replace(&mut state, next_states.swap_remove(alt));
            stack.push(Frame {
                call,
                state_before,
                alt,
                forced: false,
            });
            list.lift(call);
            if times[op].return_ns.is_some() {
                required -= 1;
                if required == 0 {
                    return done(SearchOutcome::Linearizable, &cache);
                }
            }
            entry = list.first();
            fresh = true;
        } else {
            // Either the operation returning here was not placed in time, or the entries ran out
            // after an unlifted operation: backtrack.
            if let Some(ret) = entry {
                longest.offer(&stack, &list, list.op(ret));
            }
            loop {
                let Some(frame) = stack.pop() else {
                    let found = longest.into_found();
                    debug_assert!(!found.is_empty(), "every dead end chain starts at a return");
                    return done(SearchOutcome::NotLinearizable(found), &cache);
                };
                longest.popped(stack.len());
                let op = list.op(frame.call);
                state = frame.state_before;
                if !frame.forced {
                    // A nondeterministic model may offer further next states for the same
                    // placement.
                    next_states.clear();
                    model.step(
                        &state,
                        &ops[op].input,
                        ops[op].output.as_ref(),
                        &mut next_states,
                    );
                    let retry = (frame.alt + 1..next_states.len())
                        .find(|&alt| cache.insert(&linearized, &next_states[alt]));
                    if let Some(alt) = retry {
                        let next = next_states.swap_remove(alt);
                        let state_before = std::mem::replace(&mut state, next);
                        stack.push(Frame {
                            call: frame.call,
                            state_before,
                            alt,
                            forced: false,
                        });
                        entry = list.first();
                        fresh = true;
                        break;
                    }
                }
                linearized.remove(op);
                list.unlift(frame.call);
                if times[op].return_ns.is_some() {
                    required += 1;
                }
                if frame.forced {
                    // The configuration before a forced operation fails with it.
                    continue;
                }
                entry = list.next(frame.call);
                break;
            }
        }
    }
}
