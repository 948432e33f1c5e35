//! Throughput of the Raft core alone: a 3-node group in memory, 100-byte proposals in batches,
//! messages handed straight from one `RawNode` to another, storage a no-op. Prints committed
//! entries per second and heap allocations per committed entry.
//!
//! Run with `cargo bench -p kvs --bench raft`. `KVS_BENCH_ENTRIES` (default 2,000,000) and
//! `KVS_BENCH_BATCH` (default 4096) change the workload.

// The counting allocator must implement `GlobalAlloc`, an unsafe trait; this is the only
// unsafe code in the workspace, confined to this benchmark, and it just forwards to `System`.
#![allow(unsafe_code)]

use bytes::Bytes;
use kvs::raft::{
    Config, EntryKind, Message, NodeId, RawNode, Restored, Role, Snapshot, SnapshotMeta,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counts allocations (not frees) made through the global allocator.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counter is a relaxed atomic.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Entries applied between two compactions (keeps the in-memory logs bounded).
const COMPACT_EVERY_ENTRIES: u64 = 65_536;

struct Group {
    nodes: Vec<RawNode>,
    queue: VecDeque<Message>,
    applied: Vec<u64>,
    last_compacted: Vec<u64>,
}

impl Group {
    fn new() -> Group {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let nodes = (1..=3)
            .map(|id| {
                let mut c = Config::new(NodeId(id), voters.clone(), 1);
                c.msg_bytes_max = 1 << 20;
                c.inflight_msgs_max = 256;
                c.inflight_bytes_max = 64 << 20;
                RawNode::new(c, Restored::default()).expect("valid config")
            })
            .collect();
        Group {
            nodes,
            queue: VecDeque::new(),
            applied: vec![0; 3],
            last_compacted: vec![0; 3],
        }
    }

    /// Handles every Ready and delivers every message until the group is quiet. Returns the
    /// normal entries the leader (node 1) applied.
    fn pump(&mut self) -> u64 {
        let mut committed = 0;
        loop {
            for i in 0..self.nodes.len() {
                while self.nodes[i].has_ready() {
                    let mut rd = self.nodes[i].ready();
                    // "Persist": nothing to do in memory. Then send.
                    self.queue.extend(std::mem::take(&mut rd.messages));
                    if let Some(last) = rd.committed_entries.last() {
                        self.applied[i] = last.index.0;
                    }
                    if i == 0 {
                        committed += rd
                            .committed_entries
                            .iter()
                            .filter(|e| e.kind == EntryKind::Normal)
                            .count() as u64;
                    }
                    self.nodes[i].advance(rd);
                    self.maybe_compact(i);
                }
            }
            if self.queue.is_empty() {
                return committed;
            }
            while let Some(m) = self.queue.pop_front() {
                let to = (m.to.0 - 1) as usize;
                self.nodes[to].step(m).expect("well-addressed");
            }
        }
    }

    fn maybe_compact(&mut self, i: usize) {
        let applied = self.applied[i];
        if applied - self.last_compacted[i] < COMPACT_EVERY_ENTRIES {
            return;
        }
        let st = self.nodes[i].status();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: st.applied,
                term: st.term,
                voters: (1..=3).map(NodeId).collect(),
            },
            data: Bytes::new(),
        };
        self.nodes[i].compact(snapshot);
        self.last_compacted[i] = applied;
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let total = env_u64("KVS_BENCH_ENTRIES", 2_000_000);
    let batch = env_u64("KVS_BENCH_BATCH", 4096);
    let mut group = Group::new();
    group.nodes[0].campaign();
    group.pump();
    assert_eq!(group.nodes[0].status().role, Role::Leader);
    let payload = Bytes::from(vec![0x5a_u8; 100]);

    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut committed = 0;
    while committed < total {
        for _ in 0..batch {
            group.nodes[0]
                .propose(payload.clone())
                .expect("leader accepts");
        }
        committed += group.pump();
    }
    let elapsed = started.elapsed();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let st = group.nodes[0].status();
    assert_eq!(st.role, Role::Leader, "leadership must not change");
    println!(
        "raft core, 3 nodes in memory, 100-byte entries, batches of {batch}: {committed} entries \
         committed in {elapsed:.2?} = {:.0} entries/s; {allocations} heap allocations = {:.4} \
         per committed entry",
        committed as f64 / elapsed.as_secs_f64(),
        allocations as f64 / committed as f64
    );
}
