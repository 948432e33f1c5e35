//! A cache of recently appended or read entries, bounded by payload bytes, evicting the oldest
//! insertion first. Pure memory; no I/O.

use super::GroupId;
use crate::raft::{Entry, LogIndex};
use std::collections::{HashMap, VecDeque};

/// Recently used entries keyed by (group, index).
#[derive(Debug)]
pub(crate) struct EntryCache {
    // Invariant: `bytes` is the sum of `Entry::size_bytes` over `entries`, and
    // `bytes <= bytes_max` after every public call.
    entries: HashMap<(GroupId, LogIndex), (Entry, u64)>,
    // Insertion order with a generation number; a key whose generation no longer matches the
    // map's was removed or replaced since and is skipped on eviction.
    order: VecDeque<(GroupId, LogIndex, u64)>,
    bytes: u64,
    bytes_max: u64,
    generation_next: u64,
}

impl EntryCache {
    /// An empty cache holding at most `bytes_max` bytes of entries.
    pub(crate) fn new(bytes_max: u64) -> EntryCache {
        EntryCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            bytes_max,
            generation_next: 0,
        }
    }

    /// The cached entry at (group, index), if any.
    pub(crate) fn get(&self, group: GroupId, index: LogIndex) -> Option<&Entry> {
        self.entries.get(&(group, index)).map(|(e, _)| e)
    }

    /// Caches `entry` (replacing any entry cached at its index), evicting the oldest.
    pub(crate) fn insert(&mut self, group: GroupId, entry: Entry) {
        if entry.size_bytes() > self.bytes_max {
            self.remove(group, entry.index);
            return;
        }
        let generation = self.generation_next;
        self.generation_next += 1;
        self.bytes += entry.size_bytes();
        let key = (group, entry.index);
        if let Some((old, _)) = self.entries.insert(key, (entry, generation)) {
            self.bytes -= old.size_bytes();
        }
        self.order.push_back((key.0, key.1, generation));
        while self.bytes > self.bytes_max {
            let (g, i, gen) = self.order.pop_front().expect("bytes > 0 means entries");
            if self
                .entries
                .get(&(g, i))
                .is_some_and(|(_, live)| *live == gen)
            {
                let (old, _) = self.entries.remove(&(g, i)).expect("just seen");
                self.bytes -= old.size_bytes();
            }
        }
        // Keep the order queue from growing with stale keys (removals do not touch it).
        if self.order.len() > 2 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.order
                .retain(|(g, i, gen)| entries.get(&(*g, *i)).is_some_and(|(_, live)| live == gen));
        }
        debug_assert!(self.bytes <= self.bytes_max);
    }

    /// Forgets the entry at (group, index).
    pub(crate) fn remove(&mut self, group: GroupId, index: LogIndex) {
        if let Some((old, _)) = self.entries.remove(&(group, index)) {
            self.bytes -= old.size_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{EntryKind, Term};
    use bytes::Bytes;

    fn entry(index: u64) -> Entry {
        Entry {
            term: Term(1),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; 76]),
        }
    }

    #[test]
    fn evicts_oldest_first_within_the_byte_bound() {
        let mut cache = EntryCache::new(300); // three 100-byte entries
        for i in 1..=5 {
            cache.insert(GroupId(1), entry(i));
        }
        assert!(cache.get(GroupId(1), LogIndex(2)).is_none());
        assert!(cache.get(GroupId(1), LogIndex(3)).is_some());
        assert!(cache.get(GroupId(1), LogIndex(5)).is_some());
        cache.remove(GroupId(1), LogIndex(5));
        assert!(cache.get(GroupId(1), LogIndex(5)).is_none());
    }
}
