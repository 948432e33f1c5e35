//! Shared test helpers: a seeded PRNG, history builders, a simulated linearizable register and a
//! brute-force linearizability checker for small histories.
#![allow(dead_code, missing_docs)]

use checker::{pair_history, Event, EventType, History, Operation};
use serde_json::{json, Value};

/// splitmix64: small, seedable, good enough for test generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability percent/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds a randomized test runs: just `CHECKER_SEED` if set, else `count` seeds (or
/// `CHECKER_CASES` if set, for longer soak runs) derived from `base`.
pub fn seeds(base: u64, count: u64) -> Vec<u64> {
    if let Ok(text) = std::env::var("CHECKER_SEED") {
        let seed = text.trim().parse().expect("CHECKER_SEED is an integer");
        return vec![seed];
    }
    let count = std::env::var("CHECKER_CASES")
        .map(|text| text.trim().parse().expect("CHECKER_CASES is an integer"))
        .unwrap_or(count);
    let mut rng = Rng::new(base);
    (0..count).map(|_| rng.next_u64()).collect()
}

/// Builds events tersely: `ev(process, "invoke", "write", "k", json!(1), time)`.
pub fn ev(process: u64, kind: &str, f: &str, key: &str, value: Value, time_ns: u64) -> Event {
    let kind = match kind {
        "invoke" => EventType::Invoke,
        "ok" => EventType::Ok,
        "fail" => EventType::Fail,
        "info" => EventType::Info,
        other => panic!("bad kind {other}"),
    };
    Event::new(process, kind, f, key, value, time_ns)
}

pub fn pair(events: Vec<Event>) -> Vec<Operation> {
    pair_history(&History::from_events(events)).expect("well-formed test history")
}

/// Options of the simulated register.
#[derive(Debug, Clone, Copy)]
pub struct SimOptions {
    /// Client slots running concurrently.
    pub concurrency: usize,
    /// Operations to invoke in all.
    pub ops: usize,
    /// Keys to spread them over.
    pub keys: usize,
    /// Percent of completions that become info.
    pub info_percent: u64,
    /// Values written are drawn from 0..values.
    pub values: u64,
    /// Whether the history may end with operations still open.
    pub leave_pending: bool,
}

#[derive(Debug, Clone)]
struct InFlight {
    process: u64,
    f: &'static str,
    key: String,
    value: Value,
    // The result once the operation took effect: the read value, or whether the cas swapped.
    result: Option<Value>,
}

/// Runs a linearizable register (one per key) under random interleavings and records its history.
/// Every operation takes effect atomically at one random moment between its invoke and its ok;
/// an info operation may take effect at any later moment, or never.
pub fn simulate(rng: &mut Rng, options: SimOptions) -> Vec<Event> {
    let mut registers: Vec<Value> = vec![Value::Null; options.keys];
    let mut slots: Vec<Option<InFlight>> = vec![None; options.concurrency];
    let mut process_of: Vec<u64> = (0..options.concurrency as u64).collect();
    let mut next_process = options.concurrency as u64;
    let mut orphans: Vec<InFlight> = Vec::new();
    let mut events = Vec::new();
    let mut invoked = 0;
    let mut time = 0u64;
    let key_name = |k: usize| format!("k{k}");
    let apply = |registers: &mut Vec<Value>, op: &mut InFlight| {
        let k: usize = op.key[1..].parse().expect("key index");
        let result = match op.f {
            "read" => registers[k].clone(),
            "write" => {
                registers[k] = op.value.clone();
                Value::Null
            }
            _ => {
                let swapped = registers[k] == op.value[0];
                if swapped {
                    registers[k] = op.value[1].clone();
                }
                Value::Bool(swapped)
            }
        };
        op.result = Some(result);
    };
    loop {
        let busy = slots.iter().any(Option::is_some);
        if invoked >= options.ops && (!busy || options.leave_pending && rng.chance(20)) {
            break;
        }
        time += 1 + rng.below(3);
        // Orphaned (info) operations sometimes take effect late.
        if !orphans.is_empty() && rng.chance(10) {
            let i = rng.below(orphans.len() as u64) as usize;
            let mut op = orphans.swap_remove(i);
            if rng.chance(50) {
                apply(&mut registers, &mut op);
            }
            continue;
        }
        let s = rng.below(options.concurrency as u64) as usize;
        match &mut slots[s] {
            None => {
                if invoked >= options.ops {
                    continue;
                }
                invoked += 1;
                let key = key_name(rng.below(options.keys as u64) as usize);
                let (f, value) = match rng.below(10) {
                    0..=3 => ("read", Value::Null),
                    4..=7 => ("write", json!(rng.below(options.values))),
                    _ => {
                        let expected = if rng.chance(20) {
                            Value::Null
                        } else {
                            json!(rng.below(options.values))
                        };
                        ("cas", json!([expected, rng.below(options.values)]))
                    }
                };
                let process = process_of[s];
                events.push(Event::new(
                    process,
                    EventType::Invoke,
                    f,
                    key.clone(),
                    value.clone(),
                    time,
                ));
                slots[s] = Some(InFlight {
                    process,
                    f,
                    key,
                    value,
                    result: None,
                });
            }
            Some(op) if op.result.is_none() && rng.chance(70) => apply(&mut registers, op),
            Some(_) => {
                let mut op = slots[s].take().expect("busy slot");
                if rng.chance(options.info_percent) {
                    events.push(Event::new(
                        op.process,
                        EventType::Info,
                        op.f,
                        op.key.clone(),
                        Value::Null,
                        time,
                    ));
                    process_of[s] = next_process;
                    next_process += 1;
                    if op.result.is_none() {
                        orphans.push(op);
                    }
                    continue;
                }
                if op.result.is_none() {
                    apply(&mut registers, &mut op);
                }
                let result = op.result.take().expect("applied");
                let (kind, value) = match op.f {
                    "read" => (EventType::Ok, result),
                    "write" => (EventType::Ok, op.value.clone()),
                    _ if result == Value::Bool(true) => (EventType::Ok, op.value.clone()),
                    _ => (EventType::Fail, op.value.clone()),
                };
                events.push(Event::new(op.process, kind, op.f, op.key, value, time));
            }
        }
    }
    events
}

/// Brute force: is there an order of the operations (all of one key), consistent with real time,
/// in which every read and cas is right? Operations with an unknown outcome may be left out.
/// Tries every permutation; only for a handful of operations.
pub fn brute_force_linearizable(ops: &[Operation]) -> bool {
    assert!(ops.len() <= 10, "brute force is for tiny histories");
    fn go(ops: &[Operation], placed: &mut Vec<bool>, value: &Value) -> bool {
        let all_ok_placed = ops
            .iter()
            .zip(placed.iter())
            .all(|(op, &p)| p || op.return_ns().is_none());
        if all_ok_placed {
            return true;
        }
        for i in 0..ops.len() {
            if placed[i] {
                continue;
            }
            // Every operation that returned by this one's invoke must come first.
            let ready = ops
                .iter()
                .zip(placed.iter())
                .all(|(other, &p)| p || other.return_ns().is_none_or(|r| r > ops[i].invoke_ns));
            if !ready {
                continue;
            }
            let op = &ops[i];
            let next = match op.f.as_str() {
                "read" => match op.result() {
                    Some(v) if v != value => None,
                    _ => Some(value.clone()),
                },
                "write" => Some(op.value.clone()),
                "cas" => {
                    if &op.value[0] == value {
                        Some(op.value[1].clone())
                    } else if op.return_ns().is_some() {
                        None
                    } else {
                        Some(value.clone())
                    }
                }
                other => panic!("unknown f {other}"),
            };
            if let Some(next) = next {
                placed[i] = true;
                if go(ops, placed, &next) {
                    return true;
                }
                placed[i] = false;
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], &Value::Null)
}

/// Brute force with memoization of dead ends (placed set, value), for histories of up to 20
/// operations on one key. Same semantics as [`brute_force_linearizable`].
pub fn memo_brute_force_linearizable(ops: &[Operation]) -> bool {
    use std::collections::HashSet;
    assert!(ops.len() <= 20);
    fn go(
        ops: &[Operation],
        placed: u32,
        value: &Value,
        dead: &mut HashSet<(u32, String)>,
    ) -> bool {
        let all_ok_placed =
            (0..ops.len()).all(|i| placed & (1 << i) != 0 || ops[i].return_ns().is_none());
        if all_ok_placed {
            return true;
        }
        let memo_key = (placed, value.to_string());
        if dead.contains(&memo_key) {
            return false;
        }
        for i in 0..ops.len() {
            if placed & (1 << i) != 0 {
                continue;
            }
            let ready = (0..ops.len()).all(|j| {
                placed & (1 << j) != 0 || ops[j].return_ns().is_none_or(|r| r > ops[i].invoke_ns)
            });
            if !ready {
                continue;
            }
            let op = &ops[i];
            let next = match op.f.as_str() {
                "read" => match op.result() {
                    Some(v) if v != value => None,
                    _ => Some(value.clone()),
                },
                "write" => Some(op.value.clone()),
                _ => {
                    if &op.value[0] == value {
                        Some(op.value[1].clone())
                    } else if op.return_ns().is_some() {
                        None
                    } else {
                        Some(value.clone())
                    }
                }
            };
            if let Some(next) = next {
                if go(ops, placed | (1 << i), &next, dead) {
                    return true;
                }
            }
        }
        dead.insert(memo_key);
        false
    }
    go(ops, 0, &Value::Null, &mut HashSet::new())
}
