//! A cache of each group's most recent entries, bounded by bytes. Pure memory; no I/O.
//!
//! Per group it holds a contiguous run of live entries ending at the group's last index (the
//! entries a leader sends to followers that keep up, and what a restarted node loads first).
//! Appends go to the back; when the cache is over its byte bound, the oldest entries of the
//! largest groups are evicted first. No hashing per entry: an append is a few `push_back`s.

use super::GroupId;
use crate::raft::{Entry, LogIndex};
use std::collections::{HashMap, VecDeque};

/// Recent entries per group.
#[derive(Debug)]
pub(crate) struct EntryCache {
    // Invariant: every run holds consecutive indexes; `bytes` is the sum of
    // `Entry::size_bytes` over all runs; `bytes <= bytes_max` after every call.
    runs: HashMap<GroupId, Run>,
    bytes: u64,
    bytes_max: u64,
}

#[derive(Debug, Default)]
struct Run {
    entries: VecDeque<Entry>,
    bytes: u64,
}

impl Run {
    fn position(&self, index: LogIndex) -> Option<usize> {
        let front = self.entries.front()?.index;
        let offset = usize::try_from(index.0.checked_sub(front.0)?).ok()?;
        (offset < self.entries.len()).then_some(offset)
    }

    fn pop_front(&mut self) -> u64 {
        let e = self.entries.pop_front().expect("non-empty run");
        self.bytes -= e.size_bytes();
        e.size_bytes()
    }

    fn pop_back(&mut self) -> u64 {
        let e = self.entries.pop_back().expect("non-empty run");
        self.bytes -= e.size_bytes();
        e.size_bytes()
    }
}

impl EntryCache {
    /// An empty cache holding at most `bytes_max` bytes of entries.
    pub(crate) fn new(bytes_max: u64) -> EntryCache {
        EntryCache {
            runs: HashMap::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// The cached entry at (group, index), if any.
    pub(crate) fn get(&self, group: GroupId, index: LogIndex) -> Option<&Entry> {
        let run = self.runs.get(&group)?;
        run.position(index).map(|k| &run.entries[k])
    }

    /// Mirrors an append of consecutive `entries` to the group's log: entries at and after
    /// the first one's index are replaced; a run that does not touch the new entries is
    /// dropped.
    pub(crate) fn append(&mut self, group: GroupId, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let run = self.runs.entry(group).or_default();
        let attaches = match (run.entries.front(), run.entries.back()) {
            (Some(front), Some(back)) => {
                first.index > front.index && first.index <= back.index.next()
            }
            _ => true,
        };
        let mut freed = 0;
        if attaches {
            while run.entries.back().is_some_and(|e| e.index >= first.index) {
                freed += run.pop_back();
            }
        } else {
            while !run.entries.is_empty() {
                freed += run.pop_back();
            }
        }
        for e in entries {
            run.bytes += e.size_bytes();
            run.entries.push_back(e.clone());
        }
        self.bytes = self.bytes - freed + entries.iter().map(Entry::size_bytes).sum::<u64>();
        self.evict(group);
    }

    /// Drops the group's cached entries outside `first..=last` (after a truncation, a
    /// compaction or a snapshot).
    pub(crate) fn retain_range(&mut self, group: GroupId, first: LogIndex, last: LogIndex) {
        let Some(run) = self.runs.get_mut(&group) else {
            return;
        };
        let mut freed = 0;
        while run.entries.front().is_some_and(|e| e.index < first) {
            freed += run.pop_front();
        }
        while run.entries.back().is_some_and(|e| e.index > last) {
            freed += run.pop_back();
        }
        self.bytes -= freed;
    }

    /// Evicts oldest entries until within the bound: first from `group` while it holds more
    /// than an even share, then from the largest runs.
    fn evict(&mut self, group: GroupId) {
        if self.bytes <= self.bytes_max {
            return;
        }
        let share = self.bytes_max / self.runs.len() as u64;
        let run = self.runs.get_mut(&group).expect("just appended");
        while self.bytes > self.bytes_max && run.bytes > share {
            self.bytes -= run.pop_front();
        }
        while self.bytes > self.bytes_max {
            let largest = self
                .runs
                .values_mut()
                .max_by_key(|r| r.bytes)
                .expect("bytes > 0 means a run");
            self.bytes -= largest.pop_front();
        }
        debug_assert!(self.bytes <= self.bytes_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{EntryKind, Term};
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; 76]), // 100 bytes with the header estimate
        }
    }

    fn run(first: u64, count: u64, term: u64) -> Vec<Entry> {
        (first..first + count).map(|i| entry(i, term)).collect()
    }

    #[test]
    fn evicts_oldest_first_within_the_byte_bound() {
        let mut cache = EntryCache::new(300); // three entries
        cache.append(GroupId(1), &run(1, 5, 1));
        assert!(cache.get(GroupId(1), LogIndex(2)).is_none());
        assert!(cache.get(GroupId(1), LogIndex(3)).is_some());
        assert!(cache.get(GroupId(1), LogIndex(5)).is_some());
        // Group 2 goes over its even share (150 bytes): its own oldest entry goes first, then
        // the oldest of the largest run.
        cache.append(GroupId(2), &run(1, 2, 1));
        assert!(cache.get(GroupId(2), LogIndex(1)).is_none());
        assert!(cache.get(GroupId(2), LogIndex(2)).is_some());
        assert!(cache.get(GroupId(1), LogIndex(3)).is_none());
        assert!(cache.get(GroupId(1), LogIndex(4)).is_some());
        assert_eq!(cache.bytes, 300);
    }

    #[test]
    fn follows_overwrites_gaps_and_compaction() {
        let mut cache = EntryCache::new(10_000);
        cache.append(GroupId(1), &run(1, 10, 1));
        cache.append(GroupId(1), &run(7, 2, 2));
        assert_eq!(cache.get(GroupId(1), LogIndex(7)).unwrap().term, Term(2));
        assert!(cache.get(GroupId(1), LogIndex(9)).is_none());
        cache.retain_range(GroupId(1), LogIndex(4), LogIndex(8));
        assert!(cache.get(GroupId(1), LogIndex(3)).is_none());
        assert!(cache.get(GroupId(1), LogIndex(4)).is_some());
        cache.append(GroupId(1), &run(20, 1, 3));
        assert!(cache.get(GroupId(1), LogIndex(4)).is_none());
        assert!(cache.get(GroupId(1), LogIndex(20)).is_some());
        cache.append(GroupId(1), &run(2, 1, 3));
        assert!(cache.get(GroupId(1), LogIndex(20)).is_none());
        assert_eq!(cache.bytes, 100);
    }
}
