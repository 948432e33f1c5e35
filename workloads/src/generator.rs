//! Pure, seeded op streams.
//!
//! A [`Generator`] hands the next op to whichever logical client (worker) asks. The stream of
//! ops is a function of the seed alone; which worker takes which op depends on the timing of a
//! real run, which cannot be replayed.
//!
//! - **register**: workers are grouped, [`WorkloadSpec::clients_per_key`] to a group, and each
//!   group works on one key at a time, retiring it after [`WorkloadSpec::ops_per_key`] ops and
//!   taking a fresh one, as Jepsen's `independent` does: the checker's cost grows steeply with
//!   the ops open at once on one key, so each key's history stays short and its concurrency
//!   modest. Every group has its own stream (forked from the seed), so one group's pace does
//!   not shift another's ops. Writes and the new values of cas are unique per key (an
//!   increasing counter); a cas expects one of the last few values written, so it succeeds often
//!   enough to matter.
//! - **set**: adds of run-wide unique elements to [`WorkloadSpec::key_count`] sets.
//! - **counter**: increments by 1..=5 and reads of [`WorkloadSpec::key_count`] counters.
//!
//! [`Generator::final_reads`] lists the reads that end a run: every register key used, every
//! set, every counter.

use crate::op::{Op, ReadShape};
use crate::rng::Rng;
use crate::WorkloadKind;
use std::collections::VecDeque;

/// The most clients that may share one register key (the checker's cost grows steeply with it).
pub const CLIENTS_PER_KEY_MAX: usize = 16;

/// How many recently written values a register cas chooses its expected value from.
const CAS_CANDIDATES_MAX: usize = 3;

/// What a workload's clients do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkloadSpec {
    /// The workload.
    pub kind: WorkloadKind,
    /// Logical clients, each with one op open at a time.
    pub concurrency: usize,
    /// register: clients working on one key at a time.
    pub clients_per_key: usize,
    /// register: ops on a key before it is retired.
    pub ops_per_key: u64,
    /// set and counter: how many sets or counters.
    pub key_count: usize,
}

impl WorkloadSpec {
    /// The defaults for `kind` with `concurrency` clients: 5 clients and 200 ops per register
    /// key, 5 sets or counters.
    #[must_use]
    pub fn new(kind: WorkloadKind, concurrency: usize) -> WorkloadSpec {
        WorkloadSpec {
            kind,
            concurrency,
            clients_per_key: 5,
            ops_per_key: 200,
            key_count: 5,
        }
    }

    /// Checks the numbers; the error names the setting.
    ///
    /// # Errors
    /// A setting out of its range.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("concurrency: must be at least 1".into());
        }
        if self.clients_per_key == 0 || self.clients_per_key > CLIENTS_PER_KEY_MAX {
            return Err(format!(
                "clients per key: {} is not in 1..={CLIENTS_PER_KEY_MAX}",
                self.clients_per_key
            ));
        }
        if self.ops_per_key == 0 {
            return Err("ops per key: must be at least 1".into());
        }
        if self.key_count == 0 {
            return Err("key count: must be at least 1".into());
        }
        Ok(())
    }

    /// The number of register key groups: `concurrency / clients_per_key`, rounded up.
    #[must_use]
    pub fn group_count(&self) -> usize {
        self.concurrency.div_ceil(self.clients_per_key.max(1))
    }
}

/// One register group's stream.
#[derive(Clone, Debug)]
struct RegisterStream {
    rng: Rng,
    /// How many keys this group has retired; its current key is `r<serial * groups + group>`.
    key_serial: u64,
    /// Ops handed out on the current key. Invariant: `<= ops_per_key`.
    ops_on_key: u64,
    /// The next value to write (unique on the key, since keys are never reused).
    next_value: u64,
    /// The last values written or swapped in on the current key, newest last.
    recent: VecDeque<String>,
}

/// The op streams of one run.
#[derive(Clone, Debug)]
pub struct Generator {
    spec: WorkloadSpec,
    /// register: one stream per group.
    registers: Vec<RegisterStream>,
    /// set and counter: one stream for all workers.
    rng: Rng,
    /// set: the next element to add (unique over the run).
    next_element: u64,
}

impl Generator {
    /// The streams for `spec`, fixed by `seed`.
    ///
    /// # Panics
    /// If `spec` does not validate.
    #[must_use]
    pub fn new(spec: WorkloadSpec, seed: u64) -> Generator {
        spec.validate().expect("a validated workload spec");
        let mut root = Rng::new(seed);
        let registers = (0..spec.group_count())
            .map(|_| RegisterStream {
                rng: root.fork(),
                key_serial: 0,
                ops_on_key: 0,
                next_value: 1,
                recent: VecDeque::new(),
            })
            .collect();
        Generator {
            spec,
            registers,
            rng: root.fork(),
            next_element: 0,
        }
    }

    /// The spec the streams follow.
    #[must_use]
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// The next op for `worker` (in `0..concurrency`).
    pub fn next_op(&mut self, worker: usize) -> Op {
        match self.spec.kind {
            WorkloadKind::Register => {
                let groups = self.registers.len();
                let group = (worker / self.spec.clients_per_key).min(groups - 1);
                next_register_op(&mut self.registers[group], group, groups, &self.spec)
            }
            WorkloadKind::Set => {
                let key = format!("s{}", self.rng.index(self.spec.key_count));
                let element = self.next_element;
                self.next_element += 1;
                Op::Add { key, element }
            }
            WorkloadKind::Counter => {
                let key = format!("c{}", self.rng.index(self.spec.key_count));
                if self.rng.chance(0.3) {
                    Op::Read {
                        key,
                        shape: ReadShape::Integer,
                    }
                } else {
                    let delta = 1 + self.rng.below(5) as i64;
                    Op::Incr { key, delta }
                }
            }
        }
    }

    /// The reads that end a run: every register key handed out so far, or every set or counter.
    #[must_use]
    pub fn final_reads(&self) -> Vec<Op> {
        match self.spec.kind {
            WorkloadKind::Register => {
                let groups = self.registers.len() as u64;
                let mut out = Vec::new();
                for (g, s) in self.registers.iter().enumerate() {
                    // A key is used once it had an op; the current key may still be untouched.
                    let last = if s.ops_on_key > 0 {
                        s.key_serial + 1
                    } else {
                        s.key_serial
                    };
                    for serial in 0..last {
                        out.push(Op::Read {
                            key: register_key(serial, g as u64, groups),
                            shape: ReadShape::Value,
                        });
                    }
                }
                out
            }
            WorkloadKind::Set => (0..self.spec.key_count)
                .map(|i| Op::Read {
                    key: format!("s{i}"),
                    shape: ReadShape::Members,
                })
                .collect(),
            WorkloadKind::Counter => (0..self.spec.key_count)
                .map(|i| Op::Read {
                    key: format!("c{i}"),
                    shape: ReadShape::Integer,
                })
                .collect(),
        }
    }
}

fn register_key(serial: u64, group: u64, groups: u64) -> String {
    format!("r{}", serial * groups + group)
}

fn next_register_op(
    s: &mut RegisterStream,
    group: usize,
    groups: usize,
    spec: &WorkloadSpec,
) -> Op {
    if s.ops_on_key >= spec.ops_per_key {
        s.key_serial += 1;
        s.ops_on_key = 0;
        s.recent.clear();
    }
    s.ops_on_key += 1;
    let key = register_key(s.key_serial, group as u64, groups as u64);
    let roll = s.rng.below(10);
    if roll < 4 {
        return Op::Read {
            key,
            shape: ReadShape::Value,
        };
    }
    let value = s.next_value.to_string();
    s.next_value += 1;
    let op = if roll < 7 || s.recent.is_empty() {
        Op::Write {
            key,
            value: value.clone(),
        }
    } else {
        // Mostly the newest value (the likeliest to be current, so the swap often happens),
        // sometimes an older one (a swap that must fail).
        let newest = s.recent.len() - 1;
        let pick = if s.rng.chance(0.7) {
            newest
        } else {
            s.rng.index(s.recent.len())
        };
        let expected = s.recent[pick].clone();
        Op::Cas {
            key,
            expected,
            new: value.clone(),
        }
    };
    if s.recent.len() == CAS_CANDIDATES_MAX {
        s.recent.pop_front();
    }
    s.recent.push_back(value);
    op
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn stream(kind: WorkloadKind, seed: u64, n: usize) -> Vec<Op> {
        let mut g = Generator::new(WorkloadSpec::new(kind, 10), seed);
        (0..n).map(|i| g.next_op(i % 10)).collect()
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        for kind in WorkloadKind::ALL {
            assert_eq!(stream(kind, 7, 2_000), stream(kind, 7, 2_000), "{kind}");
            assert_ne!(stream(kind, 7, 2_000), stream(kind, 8, 2_000), "{kind}");
        }
    }

    #[test]
    fn one_group_stream_does_not_depend_on_the_others_pace() {
        let spec = WorkloadSpec::new(WorkloadKind::Register, 10);
        let mut a = Generator::new(spec.clone(), 3);
        let mut b = Generator::new(spec, 3);
        // Group 0 (workers 0..5) alone in `a`; interleaved with group 1 in `b`.
        let only: Vec<Op> = (0..300).map(|_| a.next_op(0)).collect();
        let mut mixed = Vec::new();
        for i in 0..600 {
            let op = b.next_op(if i % 2 == 0 { 1 } else { 7 });
            if i % 2 == 0 {
                mixed.push(op);
            }
        }
        assert_eq!(only, mixed);
    }

    #[test]
    fn register_keys_rotate_and_values_are_unique_per_key() {
        let mut spec = WorkloadSpec::new(WorkloadKind::Register, 10);
        spec.ops_per_key = 50;
        let mut g = Generator::new(spec, 11);
        let mut per_key: HashMap<String, usize> = HashMap::new();
        let mut written: HashSet<(String, String)> = HashSet::new();
        let mut cas = 0;
        for i in 0..1_000 {
            let op = g.next_op(i % 10);
            *per_key.entry(op.key().to_string()).or_default() += 1;
            match &op {
                Op::Write { key, value }
                | Op::Cas {
                    key, new: value, ..
                } => {
                    assert!(written.insert((key.clone(), value.clone())), "{op:?}");
                    cas += usize::from(matches!(op, Op::Cas { .. }));
                }
                _ => {}
            }
        }
        assert_eq!(per_key.len(), 20, "2 groups x 10 keys of 50 ops");
        assert!(per_key.values().all(|n| *n == 50));
        assert!(cas > 100, "cas ops: {cas}");
        let finals = g.final_reads();
        assert_eq!(finals.len(), 20);
        assert!(finals.iter().all(|op| per_key.contains_key(op.key())));
    }

    #[test]
    fn set_elements_are_unique_and_counter_deltas_positive() {
        let ops = stream(WorkloadKind::Set, 1, 1_000);
        let elements: HashSet<u64> = ops
            .iter()
            .map(|op| match op {
                Op::Add { element, .. } => *element,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(elements.len(), 1_000);
        let ops = stream(WorkloadKind::Counter, 1, 1_000);
        let reads = ops.iter().filter(|op| op.is_read()).count();
        assert!((200..400).contains(&reads), "{reads}");
        assert!(ops
            .iter()
            .all(|op| !matches!(op, Op::Incr { delta, .. } if !(1..=5).contains(delta))));
    }

    #[test]
    fn bad_specs_name_the_setting() {
        let mut spec = WorkloadSpec::new(WorkloadKind::Register, 0);
        assert!(spec.validate().unwrap_err().contains("concurrency"));
        spec.concurrency = 4;
        spec.clients_per_key = 99;
        assert!(spec.validate().unwrap_err().contains("clients per key"));
    }
}
